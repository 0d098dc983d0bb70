-- Lead imports: an uploaded spreadsheet, the column mapping chosen for it, its dry-run report and
-- the progress of its commit.

CREATE TABLE imports (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    pipeline_id TEXT NOT NULL,
    file_name TEXT NOT NULL,
    -- csv or xlsx
    file_format TEXT NOT NULL,
    file_bytes BIGINT NOT NULL,
    -- JSON array of the header names, in file order.
    columns TEXT NOT NULL,
    -- JSON array of the first rows: {"row": n, "cells": [...]}.
    preview TEXT NOT NULL,
    -- Data rows stored (empty rows are counted in empty_rows and not stored).
    rows_total BIGINT NOT NULL,
    empty_rows BIGINT NOT NULL,
    chunk_count BIGINT NOT NULL,
    uploaded_by TEXT,
    uploaded_by_label TEXT NOT NULL,
    -- uploaded, validated, running, completed, failed
    status TEXT NOT NULL,
    -- JSON object {column: target}, set by the dry run and used by the commit.
    mapping TEXT,
    -- skip, update or create
    on_duplicate TEXT,
    -- JSON object of the dry run's counts.
    report TEXT,
    -- Who committed: the leads' created_by and the activity's actor.
    actor_user_id TEXT,
    actor_label TEXT,
    -- The checkpoint: the next chunk to process. Advanced in the same transaction as the chunk's
    -- rows, so a chunk is applied exactly once whatever happens to the process running it.
    next_chunk BIGINT NOT NULL DEFAULT 0,
    rows_done BIGINT NOT NULL DEFAULT 0,
    created BIGINT NOT NULL DEFAULT 0,
    updated BIGINT NOT NULL DEFAULT 0,
    skipped BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    -- The runner holding the import: a fresh token per claim, checked by every chunk, so a runner
    -- presumed dead that wakes up cannot apply a chunk after another has taken over.
    lease TEXT,
    heartbeat_at TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, pipeline_id) REFERENCES pipelines (org_id, id) ON DELETE CASCADE
);
CREATE INDEX imports_by_status ON imports (org_id, status, heartbeat_at);

-- The uploaded file, decoded once at upload (CSV or XLSX alike) into chunks of rows stored as
-- CSV text: {row number, problem, cells...} per record. Kept in the database rather than on a
-- node's disk so any node (or `meridian worker`) can resume an import; deleted when it completes.
CREATE TABLE import_chunks (
    org_id TEXT NOT NULL,
    import_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    row_count BIGINT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (org_id, import_id, seq),
    FOREIGN KEY (org_id, import_id) REFERENCES imports (org_id, id) ON DELETE CASCADE
);

-- Problems found in rows (by the dry run, then replaced by the commit's), for errors.csv.
CREATE TABLE import_errors (
    org_id TEXT NOT NULL,
    import_id TEXT NOT NULL,
    row_number BIGINT NOT NULL,
    position BIGINT NOT NULL,
    column_name TEXT NOT NULL,
    value TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (org_id, import_id, row_number, position),
    FOREIGN KEY (org_id, import_id) REFERENCES imports (org_id, id) ON DELETE CASCADE
);

-- The last mapping used for a set of headers in a pipeline, suggested for the next file with the
-- same headers.
CREATE TABLE import_mappings (
    org_id TEXT NOT NULL,
    pipeline_id TEXT NOT NULL,
    -- SHA-256 of the JSON array of header names.
    headers_key TEXT NOT NULL,
    mapping TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org_id, pipeline_id, headers_key),
    FOREIGN KEY (org_id, pipeline_id) REFERENCES pipelines (org_id, id) ON DELETE CASCADE
);
