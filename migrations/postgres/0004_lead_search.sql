-- Full-text search over leads. `leads.search_text` holds normalized words (lower-case, accents
-- folded, punctuation turned into spaces, plus trailing runs of the phone number's digits),
-- written by the application. A query word must start one of those words.
--
-- Why a table of words and not a GIN index over a tsvector: under row-level security PostgreSQL
-- evaluates a query's conditions only after the policy's, unless the condition's operator is
-- leakproof, and the text-search match operator is not. A GIN index over `leads` therefore cannot
-- be used by the app role (a million-row organization searched in seconds). Text comparisons are
-- leakproof, so a B-tree over (org_id, term) answers `term >= 'garc' AND term < 'garc' || max`
-- under the policy. A trigger keeps the words in step with `search_text`; deleting a lead
-- deletes its words (foreign key).

CREATE TABLE lead_search_terms (
    org_id TEXT NOT NULL,
    term TEXT COLLATE "C" NOT NULL,
    lead_id TEXT NOT NULL,
    PRIMARY KEY (org_id, term, lead_id),
    FOREIGN KEY (org_id, lead_id) REFERENCES leads (org_id, id) ON DELETE CASCADE
);
CREATE INDEX lead_search_terms_by_lead ON lead_search_terms (org_id, lead_id);

ALTER TABLE lead_search_terms ENABLE ROW LEVEL SECURITY;
ALTER TABLE lead_search_terms FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON lead_search_terms
    USING (org_id = current_setting('app.org_id', true))
    WITH CHECK (org_id = current_setting('app.org_id', true));

CREATE FUNCTION lead_search_terms_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM lead_search_terms WHERE org_id = OLD.org_id AND lead_id = OLD.id;
    END IF;
    INSERT INTO lead_search_terms (org_id, term, lead_id)
        SELECT DISTINCT NEW.org_id, word, NEW.id
        FROM unnest(string_to_array(NEW.search_text, ' ')) AS word
        WHERE word <> '';
    RETURN NULL;
END
$$;

CREATE TRIGGER leads_search_terms AFTER INSERT OR UPDATE OF search_text ON leads
    FOR EACH ROW EXECUTE FUNCTION lead_search_terms_sync();

-- The lead list's common shapes get their own indexes, on active (not archived) leads only:
-- newest first per pipeline, by stage, by assignee, by source, priority, by name, and counts per
-- stage for the dashboard (the stage index covers them). They end with `number`, the default
-- sort, so a filtered page is read in order and stops after one page.
DROP INDEX leads_by_pipeline_stage;
DROP INDEX leads_by_assignee;
CREATE INDEX leads_active_by_number ON leads (org_id, pipeline_id, number) WHERE archived_at IS NULL;
CREATE INDEX leads_active_by_stage ON leads (org_id, pipeline_id, stage, number) WHERE archived_at IS NULL;
CREATE INDEX leads_active_by_assignee ON leads (org_id, assigned_to, number) WHERE archived_at IS NULL;
CREATE INDEX leads_active_by_source ON leads (org_id, source, number) WHERE archived_at IS NULL;
CREATE INDEX leads_active_priority ON leads (org_id, number) WHERE archived_at IS NULL AND is_priority;
CREATE INDEX leads_active_by_last_name ON leads (org_id, last_name, id) WHERE archived_at IS NULL;
CREATE INDEX leads_active_by_created ON leads (org_id, pipeline_id, created_at) WHERE archived_at IS NULL;
