-- Email: secrets at rest, each organization's sending settings, templates, the message log and the
-- suppression list.

-- Secrets the server must read back (SMTP passwords, webhook signing secrets), sealed with
-- XChaCha20-Poly1305 under the server key; the row's org, id and purpose are bound as associated
-- data, so a ciphertext copied to another row does not open. Owners reference a secret by id;
-- rotation re-seals this one table.
CREATE TABLE secrets (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    -- smtp_password, webhook_signing, ...
    purpose TEXT NOT NULL,
    -- "v1.<key id>.<nonce and ciphertext>"
    sealed TEXT NOT NULL,
    -- The key that sealed it (also inside `sealed`), so rotation finds old rows by index.
    key_id TEXT NOT NULL,
    -- What the UI may show: the last characters for long tokens, nothing for passwords.
    hint TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX secrets_by_key ON secrets (key_id);

-- One row per organization that set its own sender or SMTP server; without one (or without a
-- host) mail goes through the server's transport.
CREATE TABLE email_settings (
    org_id TEXT PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    from_name TEXT NOT NULL,
    from_address TEXT NOT NULL,
    reply_to TEXT,
    smtp_host TEXT,
    smtp_port BIGINT,
    -- starttls, tls or none
    smtp_security TEXT NOT NULL DEFAULT 'starttls',
    smtp_username TEXT,
    smtp_password_secret TEXT,
    updated_by TEXT,
    updated_at TEXT NOT NULL
);

CREATE TABLE email_templates (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_html TEXT NOT NULL,
    body_text TEXT NOT NULL,
    -- marketing (unsubscribe link and List-Unsubscribe headers) or transactional
    category TEXT NOT NULL,
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX email_templates_name ON email_templates (org_id, name COLLATE NOCASE);

-- Every email, rendered once when queued (a retry sends the same text with the same Message-ID).
CREATE TABLE email_messages (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    lead_id TEXT,
    template_id TEXT,
    to_address TEXT NOT NULL,
    from_address TEXT NOT NULL,
    reply_to TEXT,
    subject TEXT NOT NULL,
    body_html TEXT NOT NULL,
    body_text TEXT NOT NULL,
    category TEXT NOT NULL,
    -- The RFC 5322 Message-ID, fixed at queueing.
    message_id TEXT NOT NULL,
    -- Marketing mail: the recipient's unsubscribe page (footer link and List-Unsubscribe).
    unsubscribe_url TEXT,
    -- queued, sent, failed, bounced, suppressed
    status TEXT NOT NULL,
    -- The transport's answer (the SMTP server's queue id, or the .eml file).
    provider_message_id TEXT,
    error TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    created_by TEXT,
    queued_at TEXT NOT NULL,
    sent_at TEXT,
    failed_at TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX email_messages_by_time ON email_messages (org_id, queued_at, id);
CREATE INDEX email_messages_by_lead ON email_messages (org_id, lead_id, queued_at, id);
CREATE INDEX email_messages_by_status ON email_messages (org_id, status, queued_at, id);

-- Addresses nothing is ever sent to: unsubscribed, hard-bounced or added by hand. Stored
-- lowercased.
CREATE TABLE email_suppressions (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    -- unsubscribe, bounce or manual
    reason TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    created_by TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (org_id, email)
);
