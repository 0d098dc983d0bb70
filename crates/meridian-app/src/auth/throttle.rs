//! Login throttling, stored in the database so every node counts the same failures; the same
//! counters serve other per-address limits ([`take`]: inbound form submissions).
//!
//! Two counters per attempt: the account *from this client address*, and the client address
//! alone. The account counter is keyed by address on purpose: someone hammering an account from
//! elsewhere slows themselves down, never the owner signing in from their own address. Guessing
//! from many addresses is bounded by the per-address counter and the cost of argon2.

use meridian_db::{Db, GlobalTx, sql};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::http::error::{AppError, AppResult};

struct Rule {
    kind: &'static str,
    /// Failures allowed within the window before the key is blocked.
    allowed: i64,
    window: Duration,
    /// First block length; doubles with every further failure up to `max_block`.
    first_block: Duration,
    max_block: Duration,
}

const ACCOUNT_FROM_ADDRESS: Rule = Rule {
    kind: "account+address",
    allowed: 5,
    window: Duration::minutes(15),
    first_block: Duration::minutes(1),
    max_block: Duration::minutes(15),
};

const ADDRESS: Rule = Rule {
    kind: "address",
    allowed: 50,
    window: Duration::minutes(15),
    first_block: Duration::minutes(15),
    max_block: Duration::minutes(60),
};

fn key(kind: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(kind.as_bytes());
    for part in parts {
        hasher.update([0]);
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn keys(email: &str, ip: &str) -> [(&'static Rule, String); 2] {
    [
        (
            &ACCOUNT_FROM_ADDRESS,
            key(ACCOUNT_FROM_ADDRESS.kind, &[email, ip]),
        ),
        (&ADDRESS, key(ADDRESS.kind, &[ip])),
    ]
}

/// Counts one event against `key` in a window of `window` (a new window starts once the last is
/// over). Returns the count and when the window started.
async fn count(
    tx: &mut GlobalTx,
    key: &str,
    now: OffsetDateTime,
    window: Duration,
) -> sqlx::Result<(i64, OffsetDateTime)> {
    tx.fetch_one(
        sql(
            "INSERT INTO login_throttle (key_hash, failures, window_started_at) VALUES ($1, 1, $2) \
             ON CONFLICT (key_hash) DO UPDATE SET \
               failures = CASE WHEN login_throttle.window_started_at < $3 THEN 1 \
                               ELSE login_throttle.failures + 1 END, \
               window_started_at = CASE WHEN login_throttle.window_started_at < $3 THEN $2 \
                                        ELSE login_throttle.window_started_at END \
             RETURNING failures, window_started_at",
        )
        .bind(key)
        .bind(now)
        .bind(now - window),
    )
    .await
}

/// A fixed-window limit on how often one key may act.
pub struct Limit {
    pub kind: &'static str,
    pub allowed: i64,
    pub window: Duration,
}

/// Counts one use under `limit` for the key made of `parts`; past the window's allowance it
/// refuses with 429 and Retry-After until the window ends.
#[tracing::instrument(skip_all, fields(kind = limit.kind))]
pub async fn take(db: &Db, limit: &Limit, parts: &[&str]) -> AppResult<()> {
    let now = meridian_db::now();
    let mut tx = db.global().await?;
    let (used, started) = count(&mut tx, &key(limit.kind, parts), now, limit.window).await?;
    tx.commit().await?;
    if used > limit.allowed {
        let wait = (started + limit.window - now).whole_seconds();
        return Err(AppError::TooManyRequests {
            retry_after_secs: u64::try_from(wait).unwrap_or(0).max(1),
        });
    }
    Ok(())
}

/// Refuses with 429 and Retry-After while either counter is blocked.
#[tracing::instrument(skip_all)]
pub async fn check(db: &Db, email: &str, ip: &str) -> AppResult<()> {
    let now = meridian_db::now();
    let mut tx = db.global_read().await?;
    let mut wait = Duration::ZERO;
    for (_, key) in keys(email, ip) {
        let row: Option<(Option<OffsetDateTime>,)> = tx
            .fetch_optional(
                sql("SELECT blocked_until FROM login_throttle WHERE key_hash = $1").bind(key),
            )
            .await?;
        if let Some((Some(until),)) = row
            && until > now
        {
            wait = wait.max(until - now);
        }
    }
    tx.commit().await?;
    if wait > Duration::ZERO {
        let secs = u64::try_from(wait.whole_seconds()).unwrap_or(0) + 1;
        return Err(AppError::TooManyRequests {
            retry_after_secs: secs,
        });
    }
    Ok(())
}

/// Counts a failed attempt and blocks a counter that went over its allowance.
#[tracing::instrument(skip_all)]
pub async fn record_failure(db: &Db, email: &str, ip: &str) -> AppResult<()> {
    let now = meridian_db::now();
    let mut tx = db.global().await?;
    for (rule, key) in keys(email, ip) {
        let (failures, _) = count(&mut tx, &key, now, rule.window).await?;
        if failures >= rule.allowed {
            let doublings = u32::try_from((failures - rule.allowed).min(16)).unwrap_or(16);
            let block = (rule.first_block * 2_i32.saturating_pow(doublings)).min(rule.max_block);
            tx.execute(
                sql("UPDATE login_throttle SET blocked_until = $2 WHERE key_hash = $1")
                    .bind(&key)
                    .bind(now + block),
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// A successful login clears the account's counter for that address.
#[tracing::instrument(skip_all)]
pub async fn record_success(db: &Db, email: &str, ip: &str) -> AppResult<()> {
    let mut tx = db.global().await?;
    tx.execute(
        sql("DELETE FROM login_throttle WHERE key_hash = $1")
            .bind(key(ACCOUNT_FROM_ADDRESS.kind, &[email, ip])),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
