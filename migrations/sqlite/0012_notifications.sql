-- In-app notifications: what happened that a person should know (a lead assigned to them, a
-- handoff waiting, a task due, an automation that failed, an import that finished), and each
-- person's choice of which kinds they get.

CREATE TABLE notifications (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    -- lead_assigned, stage_changed, handoff_ready, handoff_accepted, handoff_denied,
    -- task_assigned, task_due_today, task_overdue, automation_failed, import_finished
    kind TEXT NOT NULL,
    -- What it is about (lead, task, automation, import) and where it links.
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    link TEXT NOT NULL,
    actor_label TEXT,
    read_at TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
);
-- A person's list, newest first, and the unread count.
CREATE INDEX notifications_by_user ON notifications (org_id, user_id, created_at, id);
CREATE INDEX notifications_unread ON notifications (org_id, user_id) WHERE read_at IS NULL;
-- Deduplication: the same kind about the same thing for the same person within an hour.
CREATE INDEX notifications_dedupe ON notifications (org_id, user_id, kind, entity_id, created_at);

-- Kinds a person turned off (every kind is on until turned off).
CREATE TABLE notification_settings (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org_id, user_id, kind)
);
