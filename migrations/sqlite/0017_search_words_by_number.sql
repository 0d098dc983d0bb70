-- PostgreSQL only (its word table for search is keyed by lead number from here on); SQLite
-- searches through FTS5, keyed by the lead's rowid.
SELECT 1;
