use meridian_db::{Arg, GlobalTx, TenantTx, sql};
use time::OffsetDateTime;

use crate::leads::query::SqlBuilder;

// ---- Subscriptions ------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubscriptionRow {
    pub id: String,
    pub url: String,
    pub description: String,
    /// JSON array of event types.
    pub event_types: String,
    pub secret_id: String,
    /// The secret's mask, from `secrets`.
    pub secret_hint: Option<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<OffsetDateTime>,
    pub consecutive_failures: i64,
    pub failing_since: Option<OffsetDateTime>,
    pub last_success_at: Option<OffsetDateTime>,
    pub created_by: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl SubscriptionRow {
    pub fn event_types(&self) -> Vec<String> {
        serde_json::from_str(&self.event_types).unwrap_or_default()
    }
}

/// A subscription's editable fields, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionFields {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
}

const SUBSCRIPTION_SELECT: &str = "SELECT w.id, w.url, w.description, w.event_types, w.secret_id, \
    s.hint AS secret_hint, w.enabled, w.disabled_reason, w.disabled_at, w.consecutive_failures, \
    w.failing_since, w.last_success_at, w.created_by, w.created_at, w.updated_at \
    FROM webhook_subscriptions w LEFT JOIN secrets s ON s.org_id = w.org_id AND s.id = w.secret_id";

fn json_list(types: &[String]) -> String {
    serde_json::to_string(types).unwrap_or_else(|_| "[]".to_owned())
}

#[tracing::instrument(skip_all)]
pub async fn insert_subscription(
    tx: &mut TenantTx,
    fields: &SubscriptionFields,
    secret_id: &str,
    created_by: Option<&str>,
) -> sqlx::Result<String> {
    let org_id = tx.org_id();
    let id = meridian_db::new_id();
    tx.execute(
        sql(
            "INSERT INTO webhook_subscriptions (org_id, id, url, description, event_types, secret_id, \
             created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(&org_id)
        .bind(&id)
        .bind(&fields.url)
        .bind(&fields.description)
        .bind(json_list(&fields.event_types))
        .bind(secret_id)
        .bind(created_by)
        .bind(meridian_db::now()),
    )
    .await?;
    Ok(id)
}

#[tracing::instrument(skip_all)]
pub async fn update_subscription(
    tx: &mut TenantTx,
    id: &str,
    fields: &SubscriptionFields,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "UPDATE webhook_subscriptions SET url = $3, description = $4, event_types = $5, updated_at = $6 \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(&org_id)
        .bind(id)
        .bind(&fields.url)
        .bind(&fields.description)
        .bind(json_list(&fields.event_types))
        .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

/// Enables (clearing the failure record: someone looked at it) or disables with `reason` (None
/// when a person did). Returns whether it changed.
#[tracing::instrument(skip_all)]
pub async fn set_enabled(
    tx: &mut TenantTx,
    id: &str,
    enabled: bool,
    reason: Option<&str>,
) -> sqlx::Result<bool> {
    let org_id = tx.org_id();
    let now = meridian_db::now();
    let q = if enabled {
        sql(
            "UPDATE webhook_subscriptions SET enabled = $3, disabled_reason = NULL, disabled_at = NULL, \
             consecutive_failures = 0, failing_since = NULL, updated_at = $4 \
             WHERE org_id = $1 AND id = $2 AND enabled <> $3",
        )
        .bind(&org_id)
        .bind(id)
        .bind(true)
        .bind(now)
    } else {
        sql(
            "UPDATE webhook_subscriptions SET enabled = $3, disabled_reason = $4, disabled_at = $5, \
             updated_at = $5 WHERE org_id = $1 AND id = $2 AND enabled <> $3",
        )
        .bind(&org_id)
        .bind(id)
        .bind(false)
        .bind(reason)
        .bind(now)
    };
    Ok(tx.execute(q).await? > 0)
}

#[tracing::instrument(skip_all)]
pub async fn find_subscription(
    tx: &mut TenantTx,
    id: &str,
) -> sqlx::Result<Option<SubscriptionRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(format!(
            "{SUBSCRIPTION_SELECT} WHERE w.org_id = $1 AND w.id = $2"
        ))
        .bind(&org_id)
        .bind(id),
    )
    .await
}

/// Subscriptions in the order they were created, after `after` (a page).
#[tracing::instrument(skip_all)]
pub async fn subscriptions(
    tx: &mut TenantTx,
    after: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<SubscriptionRow>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(format!(
            "{SUBSCRIPTION_SELECT} WHERE w.org_id = $1 AND w.id > $2 ORDER BY w.id LIMIT $3"
        ))
        .bind(&org_id)
        .bind(after.unwrap_or(""))
        .bind(limit),
    )
    .await
}

/// The enabled subscriptions listening to `event_type` (an organization has a handful, so the
/// event list is matched here rather than indexed).
#[tracing::instrument(skip_all)]
pub async fn listening(tx: &mut TenantTx, event_type: &str) -> sqlx::Result<Vec<String>> {
    let org_id = tx.org_id();
    let rows: Vec<(String, String)> = tx
        .fetch_all(
            sql(
                "SELECT id, event_types FROM webhook_subscriptions WHERE org_id = $1 AND enabled = $2 \
                 ORDER BY id",
            )
            .bind(&org_id)
            .bind(true),
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter(|(_, types)| {
            serde_json::from_str::<Vec<String>>(types)
                .is_ok_and(|types| types.iter().any(|t| t == event_type))
        })
        .map(|(id, _)| id)
        .collect())
}

#[tracing::instrument(skip_all)]
pub async fn delete_subscription(tx: &mut TenantTx, id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("DELETE FROM webhook_subscriptions WHERE org_id = $1 AND id = $2")
            .bind(&org_id)
            .bind(id),
    )
    .await
    .map(|_| ())
}

/// The endpoint answered: its failure record starts over.
#[tracing::instrument(skip_all)]
pub async fn record_success(tx: &mut TenantTx, id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "UPDATE webhook_subscriptions SET consecutive_failures = 0, failing_since = NULL, \
             last_success_at = $3 WHERE org_id = $1 AND id = $2",
        )
        .bind(&org_id)
        .bind(id)
        .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

/// An attempt failed: the endpoint is failing since then, unless it already was.
#[tracing::instrument(skip_all)]
pub async fn record_failed_attempt(tx: &mut TenantTx, id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "UPDATE webhook_subscriptions SET failing_since = COALESCE(failing_since, $3) \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(&org_id)
        .bind(id)
        .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

/// A delivery ended failed. Returns the deliveries failed in a row and since when the endpoint
/// has been failing.
#[tracing::instrument(skip_all)]
pub async fn record_failed_delivery(
    tx: &mut TenantTx,
    id: &str,
) -> sqlx::Result<Option<(i64, Option<OffsetDateTime>)>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(
            "UPDATE webhook_subscriptions SET consecutive_failures = consecutive_failures + 1, \
             failing_since = COALESCE(failing_since, $3) WHERE org_id = $1 AND id = $2 \
             RETURNING consecutive_failures, failing_since",
        )
        .bind(&org_id)
        .bind(id)
        .bind(meridian_db::now()),
    )
    .await
}

// ---- Deliveries ---------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub subscription_id: String,
    pub event_type: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub last_status_code: Option<i64>,
    pub last_latency_ms: Option<i64>,
    pub last_response_excerpt: Option<String>,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub queued_at: OffsetDateTime,
    pub last_attempt_at: Option<OffsetDateTime>,
    pub delivered_at: Option<OffsetDateTime>,
    pub failed_at: Option<OffsetDateTime>,
}

const DELIVERY_SELECT: &str = "SELECT id, subscription_id, event_type, payload, status, attempts, \
    last_status_code, last_latency_ms, last_response_excerpt, last_error, created_at, queued_at, \
    last_attempt_at, delivered_at, failed_at FROM webhook_deliveries";

#[tracing::instrument(skip_all)]
pub async fn insert_delivery(
    tx: &mut TenantTx,
    id: &str,
    subscription_id: &str,
    event_type: &str,
    payload: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "INSERT INTO webhook_deliveries (org_id, id, subscription_id, event_type, payload, status, \
             created_at, queued_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6)",
        )
        .bind(&org_id)
        .bind(id)
        .bind(subscription_id)
        .bind(event_type)
        .bind(payload)
        .bind(now),
    )
    .await
    .map(|_| ())
}

#[tracing::instrument(skip_all)]
pub async fn find_delivery(tx: &mut TenantTx, id: &str) -> sqlx::Result<Option<DeliveryRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(format!("{DELIVERY_SELECT} WHERE org_id = $1 AND id = $2"))
            .bind(&org_id)
            .bind(id),
    )
    .await
}

/// Where a log page ends: the last delivery's creation time and id.
pub type DeliveryCursor = (OffsetDateTime, String);

/// A page of a subscription's deliveries, newest first.
#[tracing::instrument(skip_all)]
pub async fn deliveries(
    tx: &mut TenantTx,
    subscription_id: &str,
    before: Option<DeliveryCursor>,
    limit: i64,
) -> sqlx::Result<Vec<DeliveryRow>> {
    let mut b = SqlBuilder::new();
    let org = b.text(&tx.org_id());
    let sub = b.text(subscription_id);
    b.condition(format!("org_id = {org} AND subscription_id = {sub}"));
    if let Some((at, id)) = before {
        let a = b.push(Arg::Time(Some(at)));
        let i = b.text(&id);
        b.condition(format!(
            "(created_at < {a} OR (created_at = {a} AND id < {i}))"
        ));
    }
    let text = format!(
        "{DELIVERY_SELECT} WHERE {} ORDER BY created_at DESC, id DESC LIMIT {limit}",
        b.conditions()
    );
    tx.fetch_all(b.into_sql(text)).await
}

/// What one attempt got back.
#[derive(Debug, Clone, Default)]
pub struct AttemptRecord {
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
}

/// Records an attempt and the delivery's new `status`. Only a delivery still pending or failed
/// changes, so a late duplicate run cannot undo a success. Returns the attempt's number, or None
/// when nothing changed.
#[tracing::instrument(skip_all)]
pub async fn record_attempt(
    tx: &mut TenantTx,
    id: &str,
    attempt: &AttemptRecord,
    status: &str,
) -> sqlx::Result<Option<i64>> {
    let org_id = tx.org_id();
    let now = meridian_db::now();
    let (delivered_at, failed_at) = match status {
        "delivered" => (Some(now), None),
        "failed" => (None, Some(now)),
        _ => (None, None),
    };
    let number: Option<(i64,)> = tx
        .fetch_optional(
            sql(
                "UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1, last_status_code = $4, \
                 last_latency_ms = $5, last_response_excerpt = $6, last_error = $7, last_attempt_at = $8, \
                 delivered_at = COALESCE($9, delivered_at), failed_at = $10 \
                 WHERE org_id = $1 AND id = $2 AND status IN ('pending', 'failed') RETURNING attempts",
            )
            .bind(&org_id)
            .bind(id)
            .bind(status)
            .bind(attempt.status_code)
            .bind(attempt.latency_ms)
            .bind(attempt.response_excerpt.as_deref())
            .bind(attempt.error.as_deref())
            .bind(now)
            .bind(delivered_at)
            .bind(failed_at),
        )
        .await?;
    let Some((number,)) = number else {
        return Ok(None);
    };
    tx.execute(
        sql(
            "INSERT INTO webhook_attempts (org_id, delivery_id, attempt, status_code, latency_ms, \
             response_excerpt, error, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&org_id)
        .bind(id)
        .bind(number)
        .bind(attempt.status_code)
        .bind(attempt.latency_ms)
        .bind(attempt.response_excerpt.as_deref())
        .bind(attempt.error.as_deref())
        .bind(now),
    )
    .await?;
    Ok(Some(number))
}

/// Ends a delivery that was not attempted (its endpoint is disabled).
#[tracing::instrument(skip_all)]
pub async fn end_unsent(tx: &mut TenantTx, id: &str, error: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "UPDATE webhook_deliveries SET status = 'failed', last_error = $3, failed_at = $4 \
             WHERE org_id = $1 AND id = $2 AND status = 'pending'",
        )
        .bind(&org_id)
        .bind(id)
        .bind(error)
        .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

/// Puts a delivery back in the queue (a replay): pending again, with a new retry window.
#[tracing::instrument(skip_all)]
pub async fn requeue(tx: &mut TenantTx, id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "UPDATE webhook_deliveries SET status = 'pending', queued_at = $3, failed_at = NULL \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(&org_id)
        .bind(id)
        .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
    pub created_at: OffsetDateTime,
}

#[tracing::instrument(skip_all)]
pub async fn attempts(tx: &mut TenantTx, delivery_id: &str) -> sqlx::Result<Vec<AttemptRow>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(
            "SELECT attempt, status_code, latency_ms, response_excerpt, error, created_at \
             FROM webhook_attempts WHERE org_id = $1 AND delivery_id = $2 ORDER BY attempt",
        )
        .bind(&org_id)
        .bind(delivery_id),
    )
    .await
}

// ---- Inbound forms ------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FormRow {
    pub id: String,
    pub name: String,
    pub form_key: String,
    pub pipeline_id: Option<String>,
    pub stage: Option<String>,
    /// JSON array of accepted lead fields.
    pub fields: String,
    pub redirect_url: Option<String>,
    pub enabled: bool,
    pub created_by: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl FormRow {
    pub fn fields(&self) -> Vec<String> {
        serde_json::from_str(&self.fields).unwrap_or_default()
    }
}

/// A form's editable fields, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormFields {
    pub name: String,
    pub pipeline_id: Option<String>,
    pub stage: Option<String>,
    pub fields: Vec<String>,
    pub redirect_url: Option<String>,
    pub enabled: bool,
}

const FORM_COLUMNS: &str = "id, name, form_key, pipeline_id, stage, fields, redirect_url, enabled, \
    created_by, created_at, updated_at";

#[tracing::instrument(skip_all)]
pub async fn insert_form(
    tx: &mut TenantTx,
    fields: &FormFields,
    form_key: &str,
    key_hash: &str,
    created_by: Option<&str>,
) -> sqlx::Result<String> {
    let org_id = tx.org_id();
    let id = meridian_db::new_id();
    tx.execute(
        sql(
            "INSERT INTO inbound_forms (org_id, id, name, form_key, key_hash, pipeline_id, stage, fields, \
             redirect_url, enabled, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
        )
        .bind(&org_id)
        .bind(&id)
        .bind(&fields.name)
        .bind(form_key)
        .bind(key_hash)
        .bind(fields.pipeline_id.as_deref())
        .bind(fields.stage.as_deref())
        .bind(json_list(&fields.fields))
        .bind(fields.redirect_url.as_deref())
        .bind(fields.enabled)
        .bind(created_by)
        .bind(meridian_db::now()),
    )
    .await?;
    Ok(id)
}

#[tracing::instrument(skip_all)]
pub async fn update_form(tx: &mut TenantTx, id: &str, fields: &FormFields) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "UPDATE inbound_forms SET name = $3, pipeline_id = $4, stage = $5, fields = $6, redirect_url = $7, \
             enabled = $8, updated_at = $9 WHERE org_id = $1 AND id = $2",
        )
        .bind(&org_id)
        .bind(id)
        .bind(&fields.name)
        .bind(fields.pipeline_id.as_deref())
        .bind(fields.stage.as_deref())
        .bind(json_list(&fields.fields))
        .bind(fields.redirect_url.as_deref())
        .bind(fields.enabled)
        .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

#[tracing::instrument(skip_all)]
pub async fn find_form(tx: &mut TenantTx, id: &str) -> sqlx::Result<Option<FormRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(format!(
            "SELECT {FORM_COLUMNS} FROM inbound_forms WHERE org_id = $1 AND id = $2"
        ))
        .bind(&org_id)
        .bind(id),
    )
    .await
}

/// The form called `name` (any case), to refuse a second one.
#[tracing::instrument(skip_all)]
pub async fn form_named(tx: &mut TenantTx, name: &str) -> sqlx::Result<Option<String>> {
    let org_id = tx.org_id();
    let row: Option<(String,)> = tx
        .fetch_optional(
            sql("SELECT id FROM inbound_forms WHERE org_id = $1 AND lower(name) = lower($2)")
                .bind(&org_id)
                .bind(name),
        )
        .await?;
    Ok(row.map(|(id,)| id))
}

#[tracing::instrument(skip_all)]
pub async fn forms(
    tx: &mut TenantTx,
    after: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<FormRow>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(format!(
            "SELECT {FORM_COLUMNS} FROM inbound_forms WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(&org_id)
        .bind(after.unwrap_or(""))
        .bind(limit),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn delete_form(tx: &mut TenantTx, id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("DELETE FROM inbound_forms WHERE org_id = $1 AND id = $2")
            .bind(&org_id)
            .bind(id),
    )
    .await
    .map(|_| ())
}

/// A form found by its key, with its organization.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyedForm {
    pub org_id: String,
    pub org_name: String,
    #[sqlx(flatten)]
    pub form: FormRow,
}

/// The form whose key hashes to `key_hash` (in a `Db::credential_read` transaction).
#[tracing::instrument(skip_all)]
pub async fn form_by_key(tx: &mut GlobalTx, key_hash: &str) -> sqlx::Result<Option<KeyedForm>> {
    tx.fetch_optional(
        sql(
            "SELECT f.org_id, o.name AS org_name, f.id, f.name, f.form_key, f.pipeline_id, f.stage, f.fields, \
             f.redirect_url, f.enabled, f.created_by, f.created_at, f.updated_at \
             FROM inbound_forms f JOIN organizations o ON o.id = f.org_id WHERE f.key_hash = $1",
        )
        .bind(key_hash),
    )
    .await
}

/// The lead a submission with `key` created since `since`, if any.
#[tracing::instrument(skip_all)]
pub async fn submission(
    tx: &mut TenantTx,
    form_id: &str,
    key: &str,
    since: OffsetDateTime,
) -> sqlx::Result<Option<String>> {
    let org_id = tx.org_id();
    let row: Option<(String,)> = tx
        .fetch_optional(
            sql(
                "SELECT lead_id FROM inbound_submissions WHERE org_id = $1 AND form_id = $2 \
                 AND idempotency_key = $3 AND created_at >= $4 AND lead_id IS NOT NULL",
            )
            .bind(&org_id)
            .bind(form_id)
            .bind(key)
            .bind(since),
        )
        .await?;
    Ok(row.map(|(id,)| id))
}

/// Claims `key` for a submission about to create a lead, forgetting the form's keys older than
/// `expired`. False when another submission holds it (a concurrent one waits here for the
/// holder's transaction to end).
#[tracing::instrument(skip_all)]
pub async fn claim_submission(
    tx: &mut TenantTx,
    form_id: &str,
    key: &str,
    expired: OffsetDateTime,
) -> sqlx::Result<bool> {
    let org_id = tx.org_id();
    tx.execute(
        sql("DELETE FROM inbound_submissions WHERE org_id = $1 AND form_id = $2 AND created_at < $3")
            .bind(&org_id)
            .bind(form_id)
            .bind(expired),
    )
    .await?;
    let claimed = tx
        .execute(
            sql(
                "INSERT INTO inbound_submissions (org_id, form_id, idempotency_key, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (org_id, form_id, idempotency_key) DO NOTHING",
            )
            .bind(&org_id)
            .bind(form_id)
            .bind(key)
            .bind(meridian_db::now()),
        )
        .await?;
    Ok(claimed > 0)
}

/// Records the lead a claimed key created.
#[tracing::instrument(skip_all)]
pub async fn complete_submission(
    tx: &mut TenantTx,
    form_id: &str,
    key: &str,
    lead_id: &str,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("UPDATE inbound_submissions SET lead_id = $4 \
             WHERE org_id = $1 AND form_id = $2 AND idempotency_key = $3")
        .bind(&org_id)
        .bind(form_id)
        .bind(key)
        .bind(lead_id),
    )
    .await
    .map(|_| ())
}
