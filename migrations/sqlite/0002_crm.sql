-- CRM core: pipelines, stages, custom fields, leads, tags, activity, notes, tasks, saved views.

-- Phone numbers typed without a country code are read as numbers of this region (ISO 3166-1).
ALTER TABLE organizations ADD COLUMN default_region TEXT NOT NULL DEFAULT 'US';

-- Pipelines: each organization's own kinds of record ("Leads", "Cases", "Intended Parents"),
-- with ordered stages and typed custom fields.
CREATE TABLE pipelines (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    singular_label TEXT NOT NULL,
    plural_label TEXT NOT NULL,
    position BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX pipelines_unique_name ON pipelines (org_id, name);

CREATE TABLE pipeline_stages (
    org_id TEXT NOT NULL,
    pipeline_id TEXT NOT NULL,
    key TEXT NOT NULL,
    label TEXT NOT NULL,
    color TEXT NOT NULL,
    category TEXT NOT NULL,
    owner_role TEXT,
    sla_hours BIGINT,
    return_stage TEXT,
    position BIGINT NOT NULL,
    PRIMARY KEY (org_id, pipeline_id, key),
    FOREIGN KEY (org_id, pipeline_id) REFERENCES pipelines (org_id, id) ON DELETE CASCADE
);

CREATE TABLE pipeline_fields (
    org_id TEXT NOT NULL,
    pipeline_id TEXT NOT NULL,
    key TEXT NOT NULL,
    label TEXT NOT NULL,
    field_type TEXT NOT NULL,
    -- JSON array of the choices of select and multi_select fields.
    options TEXT NOT NULL DEFAULT '[]',
    required BOOLEAN NOT NULL DEFAULT false,
    position BIGINT NOT NULL,
    PRIMARY KEY (org_id, pipeline_id, key),
    FOREIGN KEY (org_id, pipeline_id) REFERENCES pipelines (org_id, id) ON DELETE CASCADE
);

-- Per-organization sequences (lead numbers). Incremented with UPDATE ... RETURNING, so
-- concurrent writers serialize on the row and never hand out a number twice.
CREATE TABLE org_counters (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (org_id, name)
);

CREATE TABLE leads (
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    number BIGINT NOT NULL,
    pipeline_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    state TEXT,
    country TEXT,
    -- ISO 8601 calendar date (YYYY-MM-DD), text on both engines so one SQL text binds it.
    date_of_birth TEXT,
    source TEXT NOT NULL,
    utm_source TEXT,
    utm_medium TEXT,
    utm_campaign TEXT,
    utm_content TEXT,
    utm_term TEXT,
    meta_ad_id TEXT,
    meta_form_id TEXT,
    campaign_id TEXT,
    assigned_to TEXT,
    created_by TEXT,
    is_priority BOOLEAN NOT NULL DEFAULT false,
    -- JSON object of custom-field values, validated against the pipeline's definitions.
    custom_fields TEXT NOT NULL DEFAULT '{}',
    -- Lower-cased name, email, phone digits and note text: what full-text search looks in.
    search_text TEXT NOT NULL DEFAULT '',
    archived_at TEXT,
    archived_by TEXT,
    stage_entered_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, pipeline_id) REFERENCES pipelines (org_id, id)
);
CREATE UNIQUE INDEX leads_unique_number ON leads (org_id, number);
-- One active lead per email in an organization; archived leads keep theirs.
CREATE UNIQUE INDEX leads_unique_active_email ON leads (org_id, email)
    WHERE archived_at IS NULL AND email IS NOT NULL;
CREATE INDEX leads_by_pipeline_stage ON leads (org_id, pipeline_id, stage, id);
CREATE INDEX leads_by_assignee ON leads (org_id, assigned_to, id);
CREATE INDEX leads_by_created ON leads (org_id, created_at, id);
CREATE INDEX leads_by_updated ON leads (org_id, updated_at, id);
CREATE INDEX leads_by_phone ON leads (org_id, phone);

CREATE TABLE lead_tags (
    org_id TEXT NOT NULL,
    lead_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (org_id, lead_id, tag),
    FOREIGN KEY (org_id, lead_id) REFERENCES leads (org_id, id) ON DELETE CASCADE
);
CREATE INDEX lead_tags_by_tag ON lead_tags (org_id, tag, lead_id);

-- Append-only history of everything that happened to a lead, written in the same transaction as
-- the change. `data` is a JSON object whose shape depends on `kind`.
CREATE TABLE lead_activity (
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    lead_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor_user_id TEXT,
    actor_label TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, lead_id) REFERENCES leads (org_id, id) ON DELETE CASCADE
);
CREATE INDEX lead_activity_by_lead ON lead_activity (org_id, lead_id, id);

CREATE TABLE notes (
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    lead_id TEXT NOT NULL,
    author_id TEXT,
    author_label TEXT NOT NULL,
    body_html TEXT NOT NULL,
    body_text TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, lead_id) REFERENCES leads (org_id, id) ON DELETE CASCADE
);
CREATE INDEX notes_by_lead ON notes (org_id, lead_id, id);

CREATE TABLE tasks (
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    lead_id TEXT,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    task_type TEXT NOT NULL,
    due_at TEXT,
    assignee_id TEXT,
    created_by TEXT,
    completed_at TEXT,
    completed_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, lead_id) REFERENCES leads (org_id, id) ON DELETE CASCADE
);
CREATE INDEX tasks_by_lead ON tasks (org_id, lead_id, id);
CREATE INDEX tasks_by_assignee ON tasks (org_id, assignee_id, completed_at, due_at);

-- Saved list views: filters, sort and columns, personal (owner only) or shared with the org.
CREATE TABLE saved_views (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    name TEXT NOT NULL,
    shared BOOLEAN NOT NULL DEFAULT false,
    pipeline_id TEXT,
    filters TEXT NOT NULL DEFAULT '{}',
    sort TEXT NOT NULL DEFAULT '',
    columns TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
);
