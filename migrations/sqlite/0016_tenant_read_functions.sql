-- PostgreSQL only (functions that read for one tenant in one statement under row-level
-- security); SQLite has no row-level security and runs the same SELECTs directly.
SELECT 1;
