use meridian_db::{Arg, TenantTx, sql};
use time::OffsetDateTime;

use crate::leads::query::{SqlBuilder, hidden_condition};

// ---- Settings -----------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SettingsRow {
    pub from_name: String,
    pub from_address: String,
    pub reply_to: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i64>,
    pub smtp_security: String,
    pub smtp_username: Option<String>,
    pub smtp_password_secret: Option<String>,
    pub updated_at: OffsetDateTime,
}

#[tracing::instrument(skip_all)]
pub async fn settings(tx: &mut TenantTx) -> sqlx::Result<Option<SettingsRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(
            "SELECT from_name, from_address, reply_to, smtp_host, smtp_port, smtp_security, \
             smtp_username, smtp_password_secret, updated_at FROM email_settings WHERE org_id = $1",
        )
        .bind(&org_id),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn save_settings(
    tx: &mut TenantTx,
    row: &SettingsRow,
    updated_by: Option<&str>,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(sql("DELETE FROM email_settings WHERE org_id = $1").bind(&org_id))
        .await?;
    tx.execute(
        sql("INSERT INTO email_settings (org_id, from_name, from_address, reply_to, smtp_host, smtp_port, \
             smtp_security, smtp_username, smtp_password_secret, updated_by, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
        .bind(&org_id)
        .bind(&row.from_name)
        .bind(&row.from_address)
        .bind(row.reply_to.as_deref())
        .bind(row.smtp_host.as_deref())
        .bind(row.smtp_port)
        .bind(&row.smtp_security)
        .bind(row.smtp_username.as_deref())
        .bind(row.smtp_password_secret.as_deref())
        .bind(updated_by)
        .bind(row.updated_at),
    )
    .await
    .map(|_| ())
}

// ---- Templates ----------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TemplateRow {
    pub id: String,
    pub name: String,
    pub subject: String,
    pub body_html: String,
    pub body_text: String,
    pub category: String,
    pub created_by: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A template's editable fields, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateFields {
    pub name: String,
    pub subject: String,
    pub body_html: String,
    pub body_text: String,
    pub category: String,
}

const TEMPLATE_COLUMNS: &str =
    "id, name, subject, body_html, body_text, category, created_by, created_at, updated_at";

#[tracing::instrument(skip_all)]
pub async fn insert_template(
    tx: &mut TenantTx,
    fields: &TemplateFields,
    created_by: Option<&str>,
) -> sqlx::Result<String> {
    let org_id = tx.org_id();
    let id = meridian_db::new_id();
    tx.execute(
        sql("INSERT INTO email_templates (org_id, id, name, subject, body_html, body_text, category, \
             created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)")
        .bind(&org_id)
        .bind(&id)
        .bind(&fields.name)
        .bind(&fields.subject)
        .bind(&fields.body_html)
        .bind(&fields.body_text)
        .bind(&fields.category)
        .bind(created_by)
        .bind(meridian_db::now()),
    )
    .await?;
    Ok(id)
}

#[tracing::instrument(skip_all)]
pub async fn update_template(
    tx: &mut TenantTx,
    id: &str,
    fields: &TemplateFields,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "UPDATE email_templates SET name = $3, subject = $4, body_html = $5, body_text = $6, \
             category = $7, updated_at = $8 WHERE org_id = $1 AND id = $2",
        )
        .bind(&org_id)
        .bind(id)
        .bind(&fields.name)
        .bind(&fields.subject)
        .bind(&fields.body_html)
        .bind(&fields.body_text)
        .bind(&fields.category)
        .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

#[tracing::instrument(skip_all)]
pub async fn find_template(tx: &mut TenantTx, id: &str) -> sqlx::Result<Option<TemplateRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(format!(
            "SELECT {TEMPLATE_COLUMNS} FROM email_templates WHERE org_id = $1 AND id = $2"
        ))
        .bind(&org_id)
        .bind(id),
    )
    .await
}

/// The template called `name` (any case), to refuse a second one.
#[tracing::instrument(skip_all)]
pub async fn template_named(tx: &mut TenantTx, name: &str) -> sqlx::Result<Option<String>> {
    let org_id = tx.org_id();
    let row: Option<(String,)> = tx
        .fetch_optional(
            sql("SELECT id FROM email_templates WHERE org_id = $1 AND lower(name) = lower($2)")
                .bind(&org_id)
                .bind(name),
        )
        .await?;
    Ok(row.map(|(id,)| id))
}

/// Every template, by name.
#[tracing::instrument(skip_all)]
pub async fn templates(tx: &mut TenantTx) -> sqlx::Result<Vec<TemplateRow>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(format!(
            "SELECT {TEMPLATE_COLUMNS} FROM email_templates WHERE org_id = $1 ORDER BY lower(name), id"
        ))
        .bind(&org_id),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn delete_template(tx: &mut TenantTx, id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("DELETE FROM email_templates WHERE org_id = $1 AND id = $2")
            .bind(&org_id)
            .bind(id),
    )
    .await
    .map(|_| ())
}

// ---- Messages -----------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: String,
    pub lead_id: Option<String>,
    pub template_id: Option<String>,
    pub to_address: String,
    pub from_address: String,
    pub reply_to: Option<String>,
    pub subject: String,
    pub body_html: String,
    pub body_text: String,
    pub category: String,
    pub message_id: String,
    pub unsubscribe_url: Option<String>,
    pub status: String,
    pub provider_message_id: Option<String>,
    pub error: Option<String>,
    pub attempts: i64,
    pub created_by: Option<String>,
    pub queued_at: OffsetDateTime,
    pub sent_at: Option<OffsetDateTime>,
    pub failed_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
    pub template_name: Option<String>,
    pub lead_number: Option<i64>,
    pub lead_name: Option<String>,
}

const MESSAGE_SELECT: &str = "SELECT m.id, m.lead_id, m.template_id, m.to_address, m.from_address, \
    m.reply_to, m.subject, m.body_html, m.body_text, m.category, m.message_id, m.unsubscribe_url, m.status, \
    m.provider_message_id, m.error, m.attempts, m.created_by, m.queued_at, m.sent_at, m.failed_at, \
    m.updated_at, t.name AS template_name, l.number AS lead_number, \
    l.first_name || ' ' || l.last_name AS lead_name \
    FROM email_messages m \
    LEFT JOIN email_templates t ON t.org_id = m.org_id AND t.id = m.template_id \
    LEFT JOIN leads l ON l.org_id = m.org_id AND l.id = m.lead_id";

/// A message about to be queued.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub lead_id: Option<String>,
    pub template_id: Option<String>,
    pub to_address: String,
    pub from_address: String,
    pub reply_to: Option<String>,
    pub subject: String,
    pub body_html: String,
    pub body_text: String,
    pub category: String,
    pub message_id: String,
    pub unsubscribe_url: Option<String>,
    pub created_by: Option<String>,
}

#[tracing::instrument(skip_all)]
pub async fn insert_message(
    tx: &mut TenantTx,
    id: &str,
    m: &NewMessage,
    status: &str,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("INSERT INTO email_messages (org_id, id, lead_id, template_id, to_address, from_address, reply_to, \
             subject, body_html, body_text, category, message_id, unsubscribe_url, status, created_by, queued_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16)")
        .bind(&org_id)
        .bind(id)
        .bind(m.lead_id.as_deref())
        .bind(m.template_id.as_deref())
        .bind(&m.to_address)
        .bind(&m.from_address)
        .bind(m.reply_to.as_deref())
        .bind(&m.subject)
        .bind(&m.body_html)
        .bind(&m.body_text)
        .bind(&m.category)
        .bind(&m.message_id)
        .bind(m.unsubscribe_url.as_deref())
        .bind(status)
        .bind(m.created_by.as_deref())
        .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

#[tracing::instrument(skip_all)]
pub async fn find_message(tx: &mut TenantTx, id: &str) -> sqlx::Result<Option<MessageRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(format!(
            "{MESSAGE_SELECT} WHERE m.org_id = $1 AND m.id = $2"
        ))
        .bind(&org_id)
        .bind(id),
    )
    .await
}

/// What an attempt did to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    Sent {
        receipt: &'a str,
    },
    /// Not sent, will be tried again.
    Retrying {
        error: &'a str,
    },
    /// Given up (failed), refused by the recipient's server (bounced), or not sent because the
    /// address is suppressed.
    Ended {
        status: &'a str,
        error: &'a str,
    },
}

/// Records an attempt's outcome. Only a message still queued changes, so a late duplicate run
/// cannot turn a sent message back into a failed one.
#[tracing::instrument(skip_all)]
pub async fn record_attempt(
    tx: &mut TenantTx,
    id: &str,
    outcome: Outcome<'_>,
) -> sqlx::Result<u64> {
    let org_id = tx.org_id();
    let now = meridian_db::now();
    let (status, receipt, error, sent_at, failed_at) = match outcome {
        Outcome::Sent { receipt } => ("sent", Some(receipt), None, Some(now), None),
        Outcome::Retrying { error } => ("queued", None, Some(error), None, None),
        Outcome::Ended { status, error } => (status, None, Some(error), None, Some(now)),
    };
    tx.execute(
        sql("UPDATE email_messages SET status = $3, provider_message_id = COALESCE($4, provider_message_id), \
             error = $5, sent_at = COALESCE($6, sent_at), failed_at = $7, attempts = attempts + 1, updated_at = $8 \
             WHERE org_id = $1 AND id = $2 AND status IN ('queued', 'failed')")
        .bind(&org_id)
        .bind(id)
        .bind(status)
        .bind(receipt)
        .bind(error)
        .bind(sent_at)
        .bind(failed_at)
        .bind(now),
    )
    .await
}

/// Which messages a log page shows.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub lead_id: Option<String>,
    pub status: Option<String>,
    /// Stages the caller may not see: messages about leads in them are left out.
    pub hidden: Vec<(String, Vec<String>)>,
}

/// Where a log page ends: the last message's queue time and id.
pub type MessageCursor = (OffsetDateTime, String);

/// A page of the message log, newest first.
#[tracing::instrument(skip_all)]
pub async fn messages(
    tx: &mut TenantTx,
    filter: &MessageFilter,
    before: Option<MessageCursor>,
    limit: i64,
) -> sqlx::Result<Vec<MessageRow>> {
    let mut b = SqlBuilder::new();
    let org = b.text(&tx.org_id());
    b.condition(format!("m.org_id = {org}"));
    if let Some(lead) = &filter.lead_id {
        let p = b.text(lead);
        b.condition(format!("m.lead_id = {p}"));
    }
    if let Some(status) = &filter.status {
        let p = b.text(status);
        b.condition(format!("m.status = {p}"));
    }
    if let Some(hidden) = hidden_condition(&mut b, &filter.hidden) {
        b.condition(format!("(l.id IS NULL OR {hidden})"));
    }
    if let Some((at, id)) = before {
        let a = b.push(Arg::Time(Some(at)));
        let i = b.text(&id);
        b.condition(format!(
            "(m.queued_at < {a} OR (m.queued_at = {a} AND m.id < {i}))"
        ));
    }
    let text = format!(
        "{MESSAGE_SELECT} WHERE {} ORDER BY m.queued_at DESC, m.id DESC LIMIT {limit}",
        b.conditions()
    );
    tx.fetch_all(b.into_sql(text)).await
}

/// Messages by status, for the outbox's summary.
#[tracing::instrument(skip_all)]
pub async fn message_counts(tx: &mut TenantTx) -> sqlx::Result<Vec<(String, i64)>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql("SELECT status, COUNT(*) FROM email_messages WHERE org_id = $1 GROUP BY status ORDER BY status")
            .bind(&org_id),
    )
    .await
}

// ---- Suppressions -------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SuppressionRow {
    pub email: String,
    pub reason: String,
    pub detail: String,
    pub created_by: Option<String>,
    pub created_at: OffsetDateTime,
}

/// Adds `email` (lowercased by the caller) to the list; an address already there keeps its first
/// reason. Returns whether it was added.
#[tracing::instrument(skip_all)]
pub async fn suppress(
    tx: &mut TenantTx,
    email: &str,
    reason: &str,
    detail: &str,
    created_by: Option<&str>,
) -> sqlx::Result<bool> {
    let org_id = tx.org_id();
    let added = tx
        .execute(
            sql("INSERT INTO email_suppressions (org_id, email, reason, detail, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, email) DO NOTHING")
            .bind(&org_id)
            .bind(email)
            .bind(reason)
            .bind(detail)
            .bind(created_by)
            .bind(meridian_db::now()),
        )
        .await?;
    Ok(added > 0)
}

#[tracing::instrument(skip_all)]
pub async fn suppression(tx: &mut TenantTx, email: &str) -> sqlx::Result<Option<SuppressionRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(
            "SELECT email, reason, detail, created_by, created_at FROM email_suppressions \
             WHERE org_id = $1 AND email = $2",
        )
        .bind(&org_id)
        .bind(email),
    )
    .await
}

/// The list by address, after `after` (a page).
#[tracing::instrument(skip_all)]
pub async fn suppressions(
    tx: &mut TenantTx,
    after: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<SuppressionRow>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(
            "SELECT email, reason, detail, created_by, created_at FROM email_suppressions \
             WHERE org_id = $1 AND email > $2 ORDER BY email LIMIT $3",
        )
        .bind(&org_id)
        .bind(after.unwrap_or(""))
        .bind(limit),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn unsuppress(tx: &mut TenantTx, email: &str) -> sqlx::Result<bool> {
    let org_id = tx.org_id();
    let removed = tx
        .execute(
            sql("DELETE FROM email_suppressions WHERE org_id = $1 AND email = $2")
                .bind(&org_id)
                .bind(email),
        )
        .await?;
    Ok(removed > 0)
}
