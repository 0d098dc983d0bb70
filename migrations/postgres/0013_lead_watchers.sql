-- People who follow a lead: they hear of its stage changes as its owner does.

CREATE TABLE lead_watchers (
    org_id TEXT NOT NULL,
    lead_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, lead_id, user_id),
    FOREIGN KEY (org_id, lead_id) REFERENCES leads (org_id, id) ON DELETE CASCADE
);

ALTER TABLE lead_watchers ENABLE ROW LEVEL SECURITY;
ALTER TABLE lead_watchers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON lead_watchers
    USING (org_id = current_setting('app.org_id', true))
    WITH CHECK (org_id = current_setting('app.org_id', true));
