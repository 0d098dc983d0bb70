//! Recurring jobs. Every node may run a [`Scheduler`], but only the one holding the `scheduler`
//! lease enqueues: each pass renews (or takes over an expired) lease and enqueues the latest due
//! tick of each entry in the same transaction. A tick's job carries the unique key
//! `kind@tick-time`, and a tick whose job exists in any state is not enqueued again, so each tick
//! fires once even when two schedulers race at a lease hand-over: on PostgreSQL the lease row's
//! lock serializes them, on SQLite the single writer does.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use meridian_db::Db;
use meridian_db::jobs::{self as store, NewJob};
use time::OffsetDateTime;

/// The lease that names the node running the scheduler.
pub const SCHEDULER_LEASE: &str = "scheduler";

/// When an entry fires.
#[derive(Debug, Clone)]
pub enum Recurrence {
    /// A cron expression (five fields, or six with seconds first), in UTC.
    Cron(Box<croner::Cron>),
    /// Every period, aligned to the Unix epoch (so every node computes the same ticks).
    Every(Duration),
}

impl Recurrence {
    pub fn cron(expression: &str) -> Result<Recurrence, String> {
        croner::Cron::from_str(expression)
            .map(|c| Recurrence::Cron(Box::new(c)))
            .map_err(|e| format!("{expression:?} is not a cron expression: {e}"))
    }

    /// The latest tick at or before `now`.
    pub fn latest(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        match self {
            Recurrence::Every(period) => {
                let period = i128::try_from(period.as_nanos()).ok().filter(|p| *p > 0)?;
                let at = now.unix_timestamp_nanos();
                OffsetDateTime::from_unix_timestamp_nanos(at - at.rem_euclid(period)).ok()
            }
            Recurrence::Cron(cron) => {
                // Cron has whole seconds: the latest tick at or before 12:34:50.5 is 12:34:50.
                let chrono_now = chrono::DateTime::from_timestamp(now.unix_timestamp(), 0)?;
                let tick = cron.find_previous_occurrence(&chrono_now, true).ok()?;
                let nanos = i128::from(tick.timestamp()) * 1_000_000_000
                    + i128::from(tick.timestamp_subsec_nanos());
                OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
            }
        }
    }
}

/// A recurring job.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: String,
    pub recurrence: Recurrence,
    /// JSON text.
    pub payload: String,
    pub priority: i64,
    pub max_attempts: i64,
}

impl Entry {
    pub fn new(kind: &str, recurrence: Recurrence) -> Entry {
        Entry {
            kind: kind.to_owned(),
            recurrence,
            payload: "{}".to_owned(),
            priority: 0,
            // The next tick comes anyway.
            max_attempts: 3,
        }
    }

    /// The unique key of the tick at `tick`.
    pub fn tick_key(&self, tick: OffsetDateTime) -> String {
        let ts = tick
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| tick.unix_timestamp_nanos().to_string());
        format!("{}@{ts}", self.kind)
    }
}

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How often the scheduler looks for due ticks (and renews its lease).
    pub tick: Duration,
    /// How long a lease lasts without renewal: another node takes over this long after the
    /// holder stops.
    pub lease_ttl: Duration,
    /// A tick missed by more than this (every node was down) is skipped rather than run late.
    pub catch_up: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            tick: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(30),
            catch_up: Duration::from_secs(3600),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// This node holds the lease.
    pub leader: bool,
    pub enqueued: usize,
}

pub struct Scheduler {
    db: Db,
    entries: Vec<Entry>,
    holder: String,
    config: SchedulerConfig,
}

impl Scheduler {
    pub fn new(db: Db, entries: Vec<Entry>, config: SchedulerConfig) -> Scheduler {
        Scheduler {
            db,
            entries,
            holder: super::new_worker_id(),
            config,
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// One pass: hold the lease, then enqueue every entry's latest due tick not enqueued yet.
    #[tracing::instrument(skip_all)]
    pub async fn pass(&self) -> Result<Pass, sqlx::Error> {
        let now = meridian_db::now();
        let mut tx = self.db.queue().await?;
        if !store::try_lease_in(
            &mut tx,
            SCHEDULER_LEASE,
            &self.holder,
            self.config.lease_ttl,
        )
        .await?
        {
            return Ok(Pass::default());
        }
        let oldest = store::minus(now, self.config.catch_up);
        let mut enqueued = 0;
        for entry in &self.entries {
            let Some(tick) = entry.recurrence.latest(now) else {
                continue;
            };
            let tick = meridian_db::truncate_to_micros(tick);
            if tick < oldest {
                continue;
            }
            let key = entry.tick_key(tick);
            if store::exists_with_key(&mut tx, None, &entry.kind, &key).await? {
                continue;
            }
            let job = NewJob::new(&entry.kind, entry.payload.clone())
                .priority(entry.priority)
                .max_attempts(entry.max_attempts)
                .run_at(tick)
                .unique_key(key);
            if store::enqueue(&mut tx, &job).await?.is_some() {
                enqueued += 1;
            }
        }
        tx.commit().await?;
        if enqueued > 0 {
            super::wake();
        }
        Ok(Pass {
            leader: true,
            enqueued,
        })
    }

    /// Runs passes until `shutdown` resolves, then gives the lease up so another node takes
    /// over at once.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut ticker = tokio::time::interval(self.config.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leader = false;
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = ticker.tick() => match self.pass().await {
                    Ok(pass) => {
                        if pass.leader != leader {
                            leader = pass.leader;
                            tracing::info!(holder = %self.holder, leader, "scheduler lease changed hands");
                        }
                    }
                    Err(error) => tracing::error!(error = %error, "scheduler pass failed; will retry"),
                },
            }
        }
        if leader
            && let Err(error) = store::drop_lease(&self.db, SCHEDULER_LEASE, &self.holder).await
        {
            tracing::warn!(error = %error, "could not give up the scheduler lease; it will expire");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn periods_align_to_the_epoch() {
        let every = Recurrence::Every(Duration::from_secs(300));
        assert_eq!(
            every.latest(datetime!(2026-11-22 12:34:56.789 UTC)),
            Some(datetime!(2026-11-22 12:30:00 UTC))
        );
        assert_eq!(
            every.latest(datetime!(2026-11-22 12:30:00 UTC)),
            Some(datetime!(2026-11-22 12:30:00 UTC))
        );
    }

    #[test]
    fn cron_ticks_are_the_latest_match() {
        let nightly = Recurrence::cron("0 3 * * *").expect("cron");
        assert_eq!(
            nightly.latest(datetime!(2026-11-22 12:34:56 UTC)),
            Some(datetime!(2026-11-22 03:00:00 UTC))
        );
        let seconds = Recurrence::cron("*/10 * * * * *").expect("cron with seconds");
        assert_eq!(
            seconds.latest(datetime!(2026-11-22 12:34:56.5 UTC)),
            Some(datetime!(2026-11-22 12:34:50 UTC))
        );
        assert!(Recurrence::cron("every tuesday").is_err());
    }

    #[test]
    fn tick_keys_name_kind_and_time() {
        let entry = Entry::new("reports.daily", Recurrence::Every(Duration::from_secs(60)));
        assert_eq!(
            entry.tick_key(datetime!(2026-11-22 12:34:00 UTC)),
            "reports.daily@2026-11-22T12:34:00Z"
        );
    }
}
