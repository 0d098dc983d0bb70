-- PostgreSQL only (its search words become bucketed posting lists); SQLite searches through
-- FTS5, whose doclists are posting lists already.
SELECT 1;
