//! The `webhook.deliver` job: signs one delivery, POSTs it, records the attempt, and decides what
//! the answer means for the delivery and its subscription.
//!
//! Retry schedule. The runner waits a random time up to `base * 2^(attempt-1)` after a failed
//! attempt, capped (defaults: 15 s base, 6 h cap). The ceilings after attempts 1..11 add up to
//! 15 s * (2^11 - 1) = 8.5 h (about 4.3 h on average); from attempt 12 on each wait is up to 6 h
//! (3 h on average). Counting attempts cannot promise a day with full jitter, so a delivery gives
//! up on its first failed attempt made [`RETRY_WINDOW`] (24 h) or more after it was queued: about
//! the 19th attempt on average, the last one landing between 24 and 30 h. [`MAX_ATTEMPTS`] (30) is
//! only a backstop: 29 waits average 58 h, and using them all within a day would take 18 capped
//! waits averaging under 53 minutes (about one chance in ten million).
//!
//! Disabling. A 410 Gone disables the subscription at once. Otherwise it is disabled when
//! [`DISABLE_AFTER_FAILED_DELIVERIES`] deliveries in a row end failed, or when a delivery ends
//! failed and nothing has reached the endpoint for [`DISABLE_AFTER_FAILING_FOR`]. Either way the
//! reason is kept on the subscription, and owners and admins get a notification and an audit
//! entry.
//!
//! SSRF. Names are resolved by [`CheckedResolver`], which refuses internal addresses and hands
//! the HTTP client only the address it checked, so a second lookup (DNS rebinding) cannot point
//! the connection elsewhere; literal addresses never reach a resolver and are checked before the
//! request. Redirects are not followed and proxies from the environment are ignored, since either
//! would let the request land somewhere unchecked. HTTPS keeps verifying the certificate against
//! the host name in the URL.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian_db::TenantTx;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use super::events::DELIVER_JOB;
use super::signing;
use super::store::{self, AttemptRecord, DeliveryRow, SubscriptionRow};
use crate::audit::store::{self as audit, Entry};
use crate::jobs::{JobContext, JobError, Registry};
use crate::net::{self, Destination, ResolveError};
use crate::secrets::{self, KeyRing};

/// A backstop: the retry window decides when a delivery gives up (see the module notes).
pub const MAX_ATTEMPTS: i64 = 30;
pub const RETRY_WINDOW: time::Duration = time::Duration::hours(24);
pub const DISABLE_AFTER_FAILED_DELIVERIES: i64 = 5;
pub const DISABLE_AFTER_FAILING_FOR: time::Duration = time::Duration::hours(24);

const TIMEOUT: Duration = Duration::from_secs(10);
/// Most of the response body kept with an attempt.
pub const EXCERPT_BYTES: usize = 1024;

#[derive(Debug, Deserialize)]
struct Payload {
    delivery: String,
}

/// Registers the delivery handler, sharing one HTTP client (and its connection pool).
pub fn register(registry: &mut Registry, config: &crate::config::AppConfig) {
    let sender = Sender::new(Destination::from_allow_private(
        config.allow_private_network,
    ))
    .map(Arc::new)
    .map_err(|e| format!("the webhook HTTP client could not start: {e}"));
    if let Err(error) = &sender {
        tracing::error!(%error, "webhook deliveries will fail until this is fixed");
    }
    let ring = config.secrets.clone();
    registry.register(DELIVER_JOB, move |ctx: JobContext, payload| {
        let sender = sender.clone();
        let ring = ring.clone();
        async move {
            let payload: Payload = crate::jobs::payload(payload)?;
            let sender = sender.map_err(JobError::Retryable)?;
            deliver(&ctx, &sender, &ring, &payload.delivery).await
        }
    });
}

/// Resolves names for the HTTP client, refusing internal addresses.
struct CheckedResolver {
    destination: Destination,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let destination = self.destination;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the client puts in the URL's port.
            let address = net::resolve_checked(&host, 0, destination).await?;
            let addresses: Addrs = Box::new(std::iter::once(address));
            Ok(addresses)
        })
    }
}

/// What an attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The endpoint answered with this status and (the start of) this body.
    Status { code: u16, excerpt: Option<String> },
    /// Not attempted: the URL points inside the network.
    Refused(String),
    /// No answer: DNS, connection, TLS or timeout.
    Failed(String),
}

/// Sends webhook requests; one per process.
pub struct Sender {
    client: reqwest::Client,
    destination: Destination,
}

impl Sender {
    pub fn new(destination: Destination) -> Result<Sender, reqwest::Error> {
        let client = reqwest::Client::builder()
            .dns_resolver(CheckedResolver { destination })
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(TIMEOUT)
            .user_agent(concat!("Meridian-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Sender {
            client,
            destination,
        })
    }

    /// POSTs `body` to `url` with the Standard Webhooks headers. Returns the answer and the time
    /// to the response's headers.
    pub async fn send(
        &self,
        url: &str,
        id: &str,
        timestamp: i64,
        signature: &str,
        body: &str,
    ) -> (Answer, Duration) {
        let started = Instant::now();
        let url = match Url::parse(url) {
            Ok(url) => url,
            Err(e) => {
                return (
                    Answer::Refused(format!("invalid URL: {e}")),
                    started.elapsed(),
                );
            }
        };
        if let Some(host) = url.host_str()
            && host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok()
        {
            let port = url.port_or_known_default().unwrap_or(80);
            if let Err(e) = net::resolve_checked(host, port, self.destination).await {
                return (Answer::Refused(e.to_string()), started.elapsed());
            }
        }
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_owned())
            .send()
            .await;
        let latency = started.elapsed();
        let answer = match sent {
            Ok(response) => Answer::Status {
                code: response.status().as_u16(),
                excerpt: excerpt(response).await,
            },
            Err(error) => match refusal(&error) {
                Some(reason) => Answer::Refused(reason),
                None => Answer::Failed(describe(&error)),
            },
        };
        (answer, latency)
    }
}

/// The resolver's refusal somewhere in the error's causes.
fn refusal(error: &reqwest::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(ResolveError::Internal(reason)) = e.downcast_ref::<ResolveError>() {
            return Some(reason.clone());
        }
        cause = e.source();
    }
    None
}

/// The error's causes ("client error (Connect): tcp connect error: Connection refused"), which
/// say what to fix; reqwest's own message only repeats the URL.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("no answer within {} s", TIMEOUT.as_secs());
    }
    let mut parts: Vec<String> = Vec::new();
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        let part = e.to_string();
        if !parts.iter().any(|p| p.contains(&part)) {
            parts.push(part);
        }
        cause = e.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}

/// The first [`EXCERPT_BYTES`] of the body; the rest is never read.
async fn excerpt(mut response: reqwest::Response) -> Option<String> {
    let mut bytes = Vec::new();
    while bytes.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    bytes.truncate(EXCERPT_BYTES);
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    while text.len() > EXCERPT_BYTES {
        text.pop();
    }
    (!text.is_empty()).then_some(text)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

async fn deliver(
    ctx: &JobContext,
    sender: &Sender,
    ring: &KeyRing,
    id: &str,
) -> Result<(), JobError> {
    let tenant = ctx
        .tenant()
        .ok_or_else(|| JobError::permanent("a webhook job must belong to an organization"))?;
    let mut tx = ctx.db.tenant_read(&tenant).await?;
    // Gone with its subscription, or delivered by an earlier run: nothing to do.
    let Some(delivery) = store::find_delivery(&mut tx, id).await? else {
        return Ok(());
    };
    if delivery.status == "delivered" {
        return Ok(());
    }
    let Some(subscription) = store::find_subscription(&mut tx, &delivery.subscription_id).await?
    else {
        return Ok(());
    };
    if !subscription.enabled {
        tx.commit().await?;
        // Not an attempt and not a failure of the queue: the delivery ends, to be replayed once
        // someone enables the endpoint again.
        let reason = subscription
            .disabled_reason
            .as_deref()
            .map_or_else(String::new, |r| format!(" ({r})"));
        let mut tx = ctx.db.tenant(&tenant).await?;
        store::end_unsent(
            &mut tx,
            id,
            &format!("not sent: the endpoint is disabled{reason}"),
        )
        .await?;
        tx.commit().await?;
        return Ok(());
    }
    let secret = secrets::reveal(&mut tx, ring, &subscription.secret_id)
        .await
        .map_err(|e| JobError::Permanent(format!("the signing secret: {e}")))?
        .ok_or_else(|| JobError::permanent("the signing secret is missing"))?;
    // No transaction stays open while waiting on someone else's server.
    tx.commit().await?;

    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    let signature =
        signing::sign(&secret, id, timestamp, &delivery.payload).map_err(JobError::Permanent)?;
    let (answer, latency) = sender
        .send(
            &subscription.url,
            id,
            timestamp,
            &signature,
            &delivery.payload,
        )
        .await;

    let mut tx = ctx.db.tenant(&tenant).await?;
    let verdict = settle(&mut tx, ctx, &delivery, &subscription, answer, latency).await?;
    tx.commit().await?;
    if let Err(error) = &verdict {
        tracing::warn!(delivery = id, attempt = ctx.attempt, %error, "webhook not delivered");
    }
    verdict
}

/// Records the attempt and what it means. The outer result is the database's; the inner one is
/// the job's verdict.
async fn settle(
    tx: &mut TenantTx,
    ctx: &JobContext,
    delivery: &DeliveryRow,
    subscription: &SubscriptionRow,
    answer: Answer,
    latency: Duration,
) -> sqlx::Result<Result<(), JobError>> {
    let mut record = AttemptRecord {
        latency_ms: millis(latency),
        ..AttemptRecord::default()
    };
    let error = match answer {
        Answer::Status { code, excerpt } => {
            record.status_code = Some(i64::from(code));
            record.response_excerpt = excerpt;
            if (200..300).contains(&code) {
                if store::record_attempt(tx, &delivery.id, &record, "delivered")
                    .await?
                    .is_some()
                {
                    store::record_success(tx, &subscription.id).await?;
                }
                return Ok(Ok(()));
            }
            if code == 410 {
                record.error = Some("410 Gone: the endpoint asked for no more deliveries".into());
                if store::record_attempt(tx, &delivery.id, &record, "failed")
                    .await?
                    .is_some()
                {
                    disable(
                        tx,
                        subscription,
                        "The endpoint answered 410 Gone, asking for no more deliveries.",
                    )
                    .await?;
                }
                return Ok(Ok(()));
            }
            let reason = reqwest::StatusCode::from_u16(code)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            format!("HTTP {code} {reason}").trim_end().to_owned()
        }
        Answer::Refused(reason) => {
            record.error = Some(reason.clone());
            if store::record_attempt(tx, &delivery.id, &record, "failed")
                .await?
                .is_some()
            {
                failed_delivery(tx, subscription, &reason).await?;
            }
            return Ok(Err(JobError::Permanent(reason)));
        }
        Answer::Failed(error) => error,
    };
    record.error = Some(error.clone());
    let out_of_time = meridian_db::now() - delivery.queued_at >= RETRY_WINDOW;
    if ctx.attempt >= ctx.max_attempts || out_of_time {
        if let Some(attempt) = store::record_attempt(tx, &delivery.id, &record, "failed").await? {
            failed_delivery(tx, subscription, &error).await?;
            return Ok(Err(JobError::Permanent(format!(
                "gave up after attempt {attempt}: {error}"
            ))));
        }
        return Ok(Ok(()));
    }
    if store::record_attempt(tx, &delivery.id, &record, "pending")
        .await?
        .is_some()
    {
        store::record_failed_attempt(tx, &subscription.id).await?;
    }
    Ok(Err(JobError::Retryable(error)))
}

/// A delivery ended failed: counts it against the subscription and disables it per the rules.
async fn failed_delivery(
    tx: &mut TenantTx,
    subscription: &SubscriptionRow,
    error: &str,
) -> sqlx::Result<()> {
    let Some((in_a_row, failing_since)) =
        store::record_failed_delivery(tx, &subscription.id).await?
    else {
        return Ok(());
    };
    let failing_for_long =
        failing_since.is_some_and(|since| meridian_db::now() - since >= DISABLE_AFTER_FAILING_FOR);
    let reason = if in_a_row >= DISABLE_AFTER_FAILED_DELIVERIES {
        format!("{in_a_row} deliveries in a row failed; the last: {error}")
    } else if failing_for_long {
        format!(
            "No delivery has reached the endpoint for {} hours; the last error: {error}",
            DISABLE_AFTER_FAILING_FOR.whole_hours()
        )
    } else {
        return Ok(());
    };
    disable(tx, subscription, &reason).await
}

/// Disables a subscription for `reason` and tells the admins: a notification, and the audit log.
async fn disable(
    tx: &mut TenantTx,
    subscription: &SubscriptionRow,
    reason: &str,
) -> sqlx::Result<()> {
    if !store::set_enabled(tx, &subscription.id, false, Some(reason)).await? {
        return Ok(());
    }
    tracing::warn!(subscription = %subscription.id, reason, "webhook endpoint disabled");
    audit::record_as(
        tx,
        None,
        None,
        super::SYSTEM_ACTOR,
        &crate::http::client::ClientInfo::default(),
        Entry {
            action: "webhook.disabled",
            target_type: "webhook",
            target_id: Some(&subscription.id),
            target_label: Some(&subscription.url),
            before: None,
            after: Some(json!({"reason": reason})),
        },
    )
    .await?;
    crate::notifications::webhook_disabled(tx, &subscription.id, &subscription.url, reason).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::Backoff;

    /// The schedule the module notes describe, from the runner's own backoff: the ceilings alone
    /// cannot reach a day within MAX_ATTEMPTS' first dozen, so the window has to decide, and the
    /// backstop's expected span is more than twice the window.
    #[test]
    fn the_backstop_outlasts_the_retry_window() {
        let backoff = Backoff::default();
        let ceilings: Vec<f64> = (1..MAX_ATTEMPTS)
            .map(|n| backoff.ceiling(n).as_secs_f64())
            .collect();
        let first_eleven: f64 = ceilings[..11].iter().sum();
        assert_eq!(first_eleven, 30_705.0);
        let expected_span: f64 = ceilings.iter().map(|c| c / 2.0).sum();
        let window = RETRY_WINDOW.as_seconds_f64();
        assert!(expected_span > 2.0 * window, "{expected_span}");
        // The average attempt at which the window closes.
        let mut elapsed = 0.0;
        let closes_at = ceilings
            .iter()
            .position(|c| {
                elapsed += c / 2.0;
                elapsed >= window
            })
            .map(|waits| waits + 2);
        assert_eq!(closes_at, Some(19));
    }

    #[tokio::test]
    async fn literal_internal_addresses_are_refused_before_any_request() {
        let sender = Sender::new(Destination::PublicOnly).expect("client");
        for url in [
            "http://127.0.0.1:9/hook",
            "http://[::1]:9/hook",
            "http://169.254.169.254/latest",
        ] {
            let (answer, _) = sender.send(url, "id", 1, "v1,x", "{}").await;
            let Answer::Refused(reason) = answer else {
                panic!("{url}: {answer:?}");
            };
            assert!(reason.contains("internal address"), "{reason}");
        }
        let (answer, _) = sender
            .send("http://localhost:9/hook", "id", 1, "v1,x", "{}")
            .await;
        assert!(
            matches!(&answer, Answer::Refused(r) if r.contains("internal address")),
            "a name is checked by the resolver: {answer:?}"
        );
    }
}
