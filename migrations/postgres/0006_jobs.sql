-- The durable job queue: background work enqueued in the same transaction as the business write
-- that asks for it (a rolled-back request leaves no job, a committed one exactly one), claimed by
-- workers, retried with backoff, rescued when its worker dies, and kept when it gives up (dead)
-- so it can be seen and retried.
--
-- Workers on any number of nodes claim with FOR UPDATE SKIP LOCKED, so two claimers never take
-- the same row and neither waits for the other.

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    -- NULL for server-wide work (housekeeping, the scheduler's own jobs).
    org_id TEXT REFERENCES organizations(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    -- JSON text, read by the handler registered for `kind`.
    payload TEXT NOT NULL,
    -- Lower runs first.
    priority BIGINT NOT NULL DEFAULT 0,
    -- scheduled (run_at in the future), available, running, succeeded, retrying, dead
    status TEXT NOT NULL,
    run_at TIMESTAMPTZ NOT NULL,
    -- Counted when a worker claims the job (so a crash mid-job counts), given back when a
    -- graceful shutdown releases it unfinished.
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    -- At most one pending or running copy per (org, kind, unique_key): see jobs_unique_pending.
    unique_key TEXT,
    last_error TEXT,
    -- The worker running it (its id), and when that worker last said it was alive.
    locked_by TEXT,
    heartbeat_at TIMESTAMPTZ,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL
);

-- Claiming: the ready jobs in (priority, run_at) order. Partial, so it holds only the waiting
-- jobs (the queue's head) however many finished ones are kept, and the claim's ORDER BY ... LIMIT
-- reads it in order without a sort.
CREATE INDEX jobs_ready ON jobs (priority, run_at) WHERE status IN ('scheduled', 'available', 'retrying');
-- Rescue: running jobs by heartbeat.
CREATE INDEX jobs_running ON jobs (heartbeat_at) WHERE status = 'running';
-- Listing and counting per organization, and recent failures.
CREATE INDEX jobs_by_org ON jobs (org_id, status, kind);
CREATE INDEX jobs_failed ON jobs (finished_at) WHERE last_error IS NOT NULL;
-- Purging succeeded jobs.
CREATE INDEX jobs_succeeded ON jobs (finished_at) WHERE status = 'succeeded';
-- The scheduler's check that a tick's job exists in any state (finished ones included).
CREATE INDEX jobs_by_key ON jobs (kind, unique_key) WHERE unique_key IS NOT NULL;
-- No second copy of a unique job while one is pending or running; a finished one does not count.
CREATE UNIQUE INDEX jobs_unique_pending ON jobs (coalesce(org_id, ''), kind, unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('scheduled', 'available', 'running', 'retrying');

-- Named leases, e.g. `scheduler`: exactly one node runs the recurring-job scheduler at a time; it
-- renews its lease, and another node takes over once the lease expires.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- Row-level security. A tenant transaction sees and enqueues its own organization's jobs, as on
-- every tenant table. The queue runner is the one path that works across organizations: it claims
-- the next jobs whichever organization they belong to, rescues, purges and schedules, and it also
-- owns the server-wide jobs (org_id NULL). It declares itself by setting `app.queue` to `runner`
-- in its transaction (`Db::queue`, set like `app.org_id`, for that transaction only), which only
-- the runner's store functions open; a handler then does its work in a tenant transaction for the
-- job's organization, so row-level security still guards every tenant path. `leases` holds no
-- tenant data and has no policy, like login_throttle.

ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON jobs
    USING (org_id = current_setting('app.org_id', true) OR current_setting('app.queue', true) = 'runner')
    WITH CHECK (org_id = current_setting('app.org_id', true) OR current_setting('app.queue', true) = 'runner');
