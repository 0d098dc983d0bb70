-- Foundation: organizations, users, memberships, invites, credentials, audit log.
-- Ids are UUIDv7 text (the same values as on SQLite); times are timestamptz.

CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    allowed_email_domains TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE memberships (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE invites (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    invited_by TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    accepted_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX invites_one_pending_per_email ON invites (org_id, email)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;

CREATE TABLE sessions (
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    -- The member's role when the credential was issued. Any change to the membership ends
    -- its credentials in the same transaction, so this is always the current role.
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    absolute_expires_at TIMESTAMPTZ NOT NULL,
    client_ip TEXT,
    user_agent TEXT,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    family_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    -- The member's role when the credential was issued. Any change to the membership ends
    -- its credentials in the same transaction, so this is always the current role.
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (org_id, family_id);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);

CREATE TABLE access_tokens (
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    family_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    -- The member's role when the credential was issued. Any change to the membership ends
    -- its credentials in the same transaction, so this is always the current role.
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);
CREATE INDEX access_tokens_by_family ON access_tokens (org_id, family_id);
CREATE INDEX access_tokens_by_user ON access_tokens (user_id);

CREATE TABLE api_keys (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    prefix TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE audit_log (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    actor_user_id TEXT,
    actor_api_key_id TEXT,
    actor_label TEXT NOT NULL,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT,
    target_label TEXT,
    before_json TEXT,
    after_json TEXT,
    client_ip TEXT,
    request_id TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE login_throttle (
    key_hash TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    window_started_at TIMESTAMPTZ NOT NULL,
    blocked_until TIMESTAMPTZ
);

CREATE TABLE setup_tokens (
    token_hash TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE instance_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- Row-level security: every table with an org_id is ENABLEd and FORCEd with a policy on the
-- transaction's tenant (set with set_config(..., true) by the store layer). Rows a user owns
-- across organizations (memberships, sessions, tokens) are visible to that user's own scope, and a
-- credential row is visible to a lookup that already holds its token hash.

ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON memberships
    USING (org_id = current_setting('app.org_id', true) OR user_id = current_setting('app.user_id', true))
    WITH CHECK (org_id = current_setting('app.org_id', true));

ALTER TABLE invites ENABLE ROW LEVEL SECURITY;
ALTER TABLE invites FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invites
    USING (org_id = current_setting('app.org_id', true) OR token_hash = current_setting('app.token_hash', true))
    WITH CHECK (org_id = current_setting('app.org_id', true));

ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sessions
    USING (org_id = current_setting('app.org_id', true) OR user_id = current_setting('app.user_id', true) OR token_hash = current_setting('app.token_hash', true))
    WITH CHECK (org_id = current_setting('app.org_id', true));

ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON refresh_tokens
    USING (org_id = current_setting('app.org_id', true) OR user_id = current_setting('app.user_id', true) OR token_hash = current_setting('app.token_hash', true))
    WITH CHECK (org_id = current_setting('app.org_id', true));

ALTER TABLE access_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE access_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON access_tokens
    USING (org_id = current_setting('app.org_id', true) OR user_id = current_setting('app.user_id', true) OR token_hash = current_setting('app.token_hash', true))
    WITH CHECK (org_id = current_setting('app.org_id', true));

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
    USING (org_id = current_setting('app.org_id', true) OR token_hash = current_setting('app.token_hash', true))
    WITH CHECK (org_id = current_setting('app.org_id', true));

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log
    USING (org_id = current_setting('app.org_id', true))
    WITH CHECK (org_id = current_setting('app.org_id', true));
