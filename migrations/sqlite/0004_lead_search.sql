-- Full-text search over leads. `leads.search_text` holds normalized words (lower-case, accents
-- folded, punctuation turned into spaces, plus the trailing digits of the phone number), written
-- by the application; this FTS5 index over it answers word-prefix queries without scanning the
-- table. It is an external-content index. Updates and deletes keep it in step through triggers;
-- inserts add their rows explicitly (`leads::store::index_for_search`), in one statement per
-- batch, because a per-row insert trigger made bulk imports six times slower.

CREATE VIRTUAL TABLE leads_fts USING fts5(
    search_text,
    content = 'leads',
    content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TRIGGER leads_fts_delete AFTER DELETE ON leads BEGIN
    INSERT INTO leads_fts (leads_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
END;

CREATE TRIGGER leads_fts_update AFTER UPDATE OF search_text ON leads BEGIN
    INSERT INTO leads_fts (leads_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
    INSERT INTO leads_fts (rowid, search_text) VALUES (new.rowid, new.search_text);
END;

INSERT INTO leads_fts (leads_fts) VALUES ('rebuild');

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
