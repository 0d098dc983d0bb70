-- Wakes runners in other processes when a job is enqueued: each statement that inserts jobs sends
-- one `NOTIFY meridian_jobs`, which PostgreSQL delivers at commit (not at all on rollback, and
-- once per transaction however many jobs it enqueued). Runners LISTEN on the channel and claim at
-- once instead of at their next poll.
CREATE FUNCTION jobs_announce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('meridian_jobs', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_announce AFTER INSERT ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_announce();
