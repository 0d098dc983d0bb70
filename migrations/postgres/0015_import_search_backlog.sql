-- The leads of an applied import chunk whose search words are not written yet.
--
-- On PostgreSQL an import writes a chunk's search words (`lead_search_terms`, about half of the
-- commit's database work) in a transaction of their own, on a second connection, while the next
-- chunk is applied: the two use both cores. The chunk's transaction records the lead numbers it
-- created here; the words' transaction writes them and clears the range. A runner that dies in
-- between leaves the range set, and the next runner writes those words before anything else.
-- SQLite, with one writer, indexes each chunk in its own transaction and never sets these.
ALTER TABLE import_chunks ADD COLUMN search_pending_from BIGINT;
ALTER TABLE import_chunks ADD COLUMN search_pending_to BIGINT;
