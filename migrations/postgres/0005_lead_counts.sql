-- Two pieces of derived data about leads, kept cheap to maintain during bulk writes.
--
-- 1. Search words (`lead_search_terms`, migration 0004) were written by a per-row trigger on
--    insert, which cost an import about 190 µs a row. Inserts now add their words in one
--    statement per batch (`leads::store::index_for_search`, as on SQLite); the row trigger stays
--    for updates of `search_text` only. The foreign key and its (org_id, lead_id) index go too:
--    words are found by (org_id, term, lead_id), the primary key, from the old text, so updates
--    and deletes need no second index, and every imported word is one index entry instead of two.
--
-- 2. `lead_stage_counts` holds the number of active (not archived) leads per pipeline and stage,
--    so the dashboard reads a few rows instead of counting a million. Statement-level triggers
--    with transition tables keep it: one grouped upsert per statement, however many rows it
--    wrote, ordered by key so that concurrent transactions take the counter rows' locks in the
--    same order (no deadlocks).

DROP TRIGGER leads_search_terms ON leads;
ALTER TABLE lead_search_terms DROP CONSTRAINT lead_search_terms_org_id_lead_id_fkey;
DROP INDEX lead_search_terms_by_lead;

CREATE OR REPLACE FUNCTION lead_search_terms_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM lead_search_terms
        WHERE org_id = OLD.org_id AND lead_id = OLD.id
          AND term = ANY (string_to_array(OLD.search_text, ' ')::text[] COLLATE "C");
    INSERT INTO lead_search_terms (org_id, term, lead_id)
        SELECT DISTINCT NEW.org_id, word, NEW.id
        FROM unnest(string_to_array(NEW.search_text, ' ')) AS word
        WHERE word <> ''
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER leads_search_terms AFTER UPDATE OF search_text ON leads
    FOR EACH ROW WHEN (OLD.search_text IS DISTINCT FROM NEW.search_text)
    EXECUTE FUNCTION lead_search_terms_sync();

CREATE FUNCTION lead_search_terms_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM lead_search_terms t
        USING (SELECT org_id, id, unnest(string_to_array(search_text, ' ')) AS word FROM old_rows) o
        WHERE t.org_id = o.org_id AND t.term = o.word COLLATE "C" AND t.lead_id = o.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER leads_search_terms_forget AFTER DELETE ON leads
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lead_search_terms_forget();

CREATE TABLE lead_stage_counts (
    org_id TEXT NOT NULL,
    pipeline_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    active BIGINT NOT NULL,
    PRIMARY KEY (org_id, pipeline_id, stage)
);

ALTER TABLE lead_stage_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE lead_stage_counts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON lead_stage_counts
    USING (org_id = current_setting('app.org_id', true))
    WITH CHECK (org_id = current_setting('app.org_id', true));

CREATE FUNCTION lead_stage_counts_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO lead_stage_counts (org_id, pipeline_id, stage, active)
            SELECT org_id, pipeline_id, stage, count(*) FROM new_rows
            WHERE archived_at IS NULL
            GROUP BY org_id, pipeline_id, stage
            ORDER BY org_id, pipeline_id, stage
        ON CONFLICT (org_id, pipeline_id, stage)
            DO UPDATE SET active = lead_stage_counts.active + excluded.active;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE lead_stage_counts c SET active = c.active - o.n
            FROM (SELECT org_id, pipeline_id, stage, count(*) AS n FROM old_rows
                  WHERE archived_at IS NULL GROUP BY org_id, pipeline_id, stage) o
            WHERE c.org_id = o.org_id AND c.pipeline_id = o.pipeline_id AND c.stage = o.stage;
    ELSE
        INSERT INTO lead_stage_counts (org_id, pipeline_id, stage, active)
            SELECT org_id, pipeline_id, stage, sum(delta) FROM (
                SELECT org_id, pipeline_id, stage, -1 AS delta FROM old_rows WHERE archived_at IS NULL
                UNION ALL
                SELECT org_id, pipeline_id, stage, 1 AS delta FROM new_rows WHERE archived_at IS NULL
            ) d
            GROUP BY org_id, pipeline_id, stage
            HAVING sum(delta) <> 0
            ORDER BY org_id, pipeline_id, stage
        ON CONFLICT (org_id, pipeline_id, stage)
            DO UPDATE SET active = lead_stage_counts.active + excluded.active;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER leads_stage_counts_insert AFTER INSERT ON leads
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lead_stage_counts_sync();
CREATE TRIGGER leads_stage_counts_update AFTER UPDATE ON leads
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lead_stage_counts_sync();
CREATE TRIGGER leads_stage_counts_delete AFTER DELETE ON leads
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lead_stage_counts_sync();

-- Existing rows, read past row-level security: the owner is subject to it only while it is
-- forced, and DDL is transactional, so no other session sees the gap.
ALTER TABLE leads NO FORCE ROW LEVEL SECURITY;
ALTER TABLE lead_search_terms NO FORCE ROW LEVEL SECURITY;
ALTER TABLE lead_stage_counts NO FORCE ROW LEVEL SECURITY;
INSERT INTO lead_stage_counts (org_id, pipeline_id, stage, active)
    SELECT org_id, pipeline_id, stage, count(*) FROM leads
    WHERE archived_at IS NULL GROUP BY org_id, pipeline_id, stage;
-- Leads written before 0004 had no words.
INSERT INTO lead_search_terms (org_id, term, lead_id)
    SELECT DISTINCT org_id, word, id FROM leads, unnest(string_to_array(search_text, ' ')) AS word
    WHERE word <> ''
    ON CONFLICT DO NOTHING;
ALTER TABLE leads FORCE ROW LEVEL SECURITY;
ALTER TABLE lead_search_terms FORCE ROW LEVEL SECURITY;
ALTER TABLE lead_stage_counts FORCE ROW LEVEL SECURITY;
