-- Nothing to do on SQLite: one process serves an SQLite database, and its runner is woken in
-- memory when a job is enqueued (`jobs::wake`). PostgreSQL's version adds NOTIFY on enqueue for
-- runners in other processes.
SELECT 1;
