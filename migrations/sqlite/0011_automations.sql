-- Automations: trigger, conditions and actions per organization, versioned (a run records the
-- version it ran), with every run and each of its steps recorded.

CREATE TABLE automations (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT true,
    -- The current version's trigger type, so an event finds its automations by index.
    trigger_type TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX automations_by_trigger ON automations (org_id, trigger_type);
CREATE UNIQUE INDEX automations_name ON automations (org_id, name COLLATE NOCASE);

CREATE TABLE automation_versions (
    org_id TEXT NOT NULL,
    automation_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    -- JSON: {"trigger": {...}, "conditions": {...}, "actions": [...]}
    definition TEXT NOT NULL,
    created_by TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (org_id, automation_id, version),
    FOREIGN KEY (org_id, automation_id) REFERENCES automations (org_id, id) ON DELETE CASCADE
);

CREATE TABLE automation_runs (
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    automation_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    lead_id TEXT,
    -- JSON: the event that triggered it.
    event TEXT NOT NULL,
    -- The automation whose action caused the event (loop detection), if any.
    caused_by TEXT,
    -- For events reported by scheduled work (a task due on a day): one run per key.
    dedupe_key TEXT,
    -- queued, waiting, succeeded, skipped (conditions not met), failed
    status TEXT NOT NULL,
    -- The next instruction of the compiled actions.
    pc BIGINT NOT NULL DEFAULT 0,
    resume_at TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, automation_id) REFERENCES automations (org_id, id) ON DELETE CASCADE
);
CREATE INDEX automation_runs_by_automation ON automation_runs (org_id, automation_id, created_at, id);
CREATE INDEX automation_runs_by_lead ON automation_runs (org_id, automation_id, lead_id, created_at);
CREATE UNIQUE INDEX automation_runs_dedupe ON automation_runs (org_id, automation_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL;

CREATE TABLE automation_run_steps (
    org_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    -- Order of execution within the run.
    seq BIGINT NOT NULL,
    pc BIGINT NOT NULL,
    action TEXT NOT NULL,
    -- succeeded, failed, waiting
    status TEXT NOT NULL,
    -- JSON: what the step did (ids created, the branch taken, ...).
    output TEXT NOT NULL,
    error TEXT,
    attempt BIGINT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    PRIMARY KEY (org_id, run_id, seq),
    FOREIGN KEY (org_id, run_id) REFERENCES automation_runs (org_id, id) ON DELETE CASCADE
);
