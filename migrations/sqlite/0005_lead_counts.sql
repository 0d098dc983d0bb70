-- `lead_stage_counts` holds the number of active (not archived) leads per pipeline and stage, so
-- the dashboard reads a few rows instead of counting a million. Triggers keep it in the same
-- transaction as every write to `leads` (SQLite has one writer at a time, so the counter rows
-- are never contended).

CREATE TABLE lead_stage_counts (
    org_id TEXT NOT NULL,
    pipeline_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    active INTEGER NOT NULL,
    PRIMARY KEY (org_id, pipeline_id, stage)
) WITHOUT ROWID;

INSERT INTO lead_stage_counts (org_id, pipeline_id, stage, active)
    SELECT org_id, pipeline_id, stage, count(*) FROM leads
    WHERE archived_at IS NULL GROUP BY org_id, pipeline_id, stage;

CREATE TRIGGER leads_stage_counts_insert AFTER INSERT ON leads WHEN new.archived_at IS NULL BEGIN
    INSERT INTO lead_stage_counts (org_id, pipeline_id, stage, active)
        VALUES (new.org_id, new.pipeline_id, new.stage, 1)
        ON CONFLICT (org_id, pipeline_id, stage) DO UPDATE SET active = active + 1;
END;

CREATE TRIGGER leads_stage_counts_delete AFTER DELETE ON leads WHEN old.archived_at IS NULL BEGIN
    UPDATE lead_stage_counts SET active = active - 1
        WHERE org_id = old.org_id AND pipeline_id = old.pipeline_id AND stage = old.stage;
END;

CREATE TRIGGER leads_stage_counts_update AFTER UPDATE OF pipeline_id, stage, archived_at ON leads
WHEN old.pipeline_id IS NOT new.pipeline_id OR old.stage IS NOT new.stage
    OR (old.archived_at IS NULL) <> (new.archived_at IS NULL)
BEGIN
    UPDATE lead_stage_counts SET active = active - 1
        WHERE old.archived_at IS NULL
          AND org_id = old.org_id AND pipeline_id = old.pipeline_id AND stage = old.stage;
    INSERT INTO lead_stage_counts (org_id, pipeline_id, stage, active)
        SELECT new.org_id, new.pipeline_id, new.stage, 1 WHERE new.archived_at IS NULL
        ON CONFLICT (org_id, pipeline_id, stage) DO UPDATE SET active = active + 1;
END;
