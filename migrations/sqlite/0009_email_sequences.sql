-- Email sequences: a series of templated emails with delays, sent to the leads enrolled in it,
-- stopping when the lead replies, changes stage, unsubscribes or is archived.

CREATE TABLE email_sequences (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    -- A disabled sequence enrolls no one and sends nothing (enrollments wait, they do not end).
    enabled BOOLEAN NOT NULL DEFAULT true,
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX email_sequences_name ON email_sequences (org_id, name COLLATE NOCASE);

CREATE TABLE email_sequence_steps (
    org_id TEXT NOT NULL,
    sequence_id TEXT NOT NULL,
    -- From 0, in sending order.
    position BIGINT NOT NULL,
    template_id TEXT NOT NULL,
    -- Wait after the previous step (after enrolling, for the first).
    delay_minutes BIGINT NOT NULL,
    PRIMARY KEY (org_id, sequence_id, position),
    FOREIGN KEY (org_id, sequence_id) REFERENCES email_sequences (org_id, id) ON DELETE CASCADE
);

CREATE TABLE email_sequence_enrollments (
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    sequence_id TEXT NOT NULL,
    lead_id TEXT NOT NULL,
    -- active, completed or stopped
    status TEXT NOT NULL,
    -- replied, stage_changed, unsubscribed, archived, no_email, template_missing, manual
    stop_reason TEXT,
    -- The step sent next, and when.
    next_position BIGINT NOT NULL,
    next_run_at TEXT,
    steps_sent BIGINT NOT NULL DEFAULT 0,
    -- Where the lead stood when enrolled: a move elsewhere stops the sequence.
    pipeline_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    enrolled_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, sequence_id) REFERENCES email_sequences (org_id, id) ON DELETE CASCADE
);
-- One running enrollment per lead and sequence.
CREATE UNIQUE INDEX email_enrollments_active ON email_sequence_enrollments (org_id, sequence_id, lead_id)
    WHERE status = 'active';
CREATE INDEX email_enrollments_by_sequence ON email_sequence_enrollments (org_id, sequence_id, created_at, id);
CREATE INDEX email_enrollments_by_lead ON email_sequence_enrollments (org_id, lead_id, status);
