//! The `email.send` job: delivers one logged message and records what happened.
//!
//! Delivery is at least once. The message was rendered when it was queued and keeps its
//! Message-ID, so if a worker dies between the SMTP server's acceptance and the log's update, the
//! retry sends the very same message (receivers and the log recognise it as one).

use std::sync::Arc;

use meridian_db::TenantTx;
use serde::Deserialize;

use super::store::{self, MessageRow, Outcome};
use super::transport::{Mailer, OrgSmtp, Outgoing, Security, SendError};
use crate::jobs::{JobContext, JobError, Registry};
use crate::secrets::{self, KeyRing};

#[derive(Debug, Deserialize)]
struct Payload {
    message: String,
}

/// Registers the email handlers on a runner's registry, sharing one [`Mailer`] (and its SMTP
/// connection pools).
pub fn register(registry: &mut Registry, config: &crate::config::AppConfig) {
    let mailer = Arc::new(Mailer::new(
        config.email.transport.clone(),
        config.allow_private_network,
    ));
    let ring = config.secrets.clone();
    registry.register(super::service::SEND_JOB, move |ctx: JobContext, payload| {
        let mailer = mailer.clone();
        let ring = ring.clone();
        async move {
            let payload: Payload = crate::jobs::payload(payload)?;
            deliver(&ctx, &mailer, &ring, &payload.message).await
        }
    });
}

/// Whether a message in this state still has to go out. A failed message goes again when its
/// dead job is retried from the Operations page.
fn pending(status: &str) -> bool {
    matches!(status, "queued" | "failed")
}

async fn org_smtp(tx: &mut TenantTx, ring: &KeyRing) -> Result<Option<OrgSmtp>, JobError> {
    let Some(settings) = store::settings(tx).await? else {
        return Ok(None);
    };
    let Some(host) = settings.smtp_host else {
        return Ok(None);
    };
    let password = match &settings.smtp_password_secret {
        Some(id) => secrets::reveal(tx, ring, id)
            .await
            .map_err(|e| JobError::Permanent(format!("the SMTP password: {e}")))?,
        None => None,
    };
    Ok(Some(OrgSmtp {
        host,
        port: settings
            .smtp_port
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(587),
        security: Security::parse(&settings.smtp_security).unwrap_or(Security::StartTls),
        username: settings.smtp_username,
        password,
    }))
}

fn outgoing(org_id: String, m: &MessageRow) -> Outgoing {
    Outgoing {
        org_id,
        message_id: m.message_id.clone(),
        from: m.from_address.clone(),
        to: m.to_address.clone(),
        reply_to: m.reply_to.clone(),
        subject: m.subject.clone(),
        html: m.body_html.clone(),
        text: m.body_text.clone(),
        unsubscribe_url: m.unsubscribe_url.clone(),
    }
}

async fn deliver(
    ctx: &JobContext,
    mailer: &Mailer,
    ring: &KeyRing,
    id: &str,
) -> Result<(), JobError> {
    let tenant = ctx
        .tenant()
        .ok_or_else(|| JobError::permanent("an email job must belong to an organization"))?;
    let mut tx = ctx.db.tenant(&tenant).await?;
    let Some(message) = store::find_message(&mut tx, id).await? else {
        // Deleted with its organization: nothing to send.
        return Ok(());
    };
    if !pending(&message.status) {
        return Ok(());
    }
    if let Some(s) = store::suppression(&mut tx, &message.to_address).await? {
        // Suppressed after it was queued (an unsubscribe or a bounce in between).
        let error = format!(
            "not sent: {} is on the suppression list ({})",
            message.to_address,
            super::service::suppression_reason(&s.reason)
        );
        record(
            &mut tx,
            id,
            Outcome::Ended {
                status: "suppressed",
                error: &error,
            },
        )
        .await?;
        tx.commit().await?;
        return Ok(());
    }
    let smtp = org_smtp(&mut tx, ring).await?;
    // No transaction stays open while talking to a mail server.
    tx.commit().await?;

    let result = mailer
        .send(
            &outgoing(tenant.org_id().to_owned(), &message),
            smtp.as_ref(),
        )
        .await;

    let mut tx = ctx.db.tenant(&tenant).await?;
    let verdict = match &result {
        Ok(receipt) => {
            record(&mut tx, id, Outcome::Sent { receipt }).await?;
            Ok(())
        }
        Err(SendError::Rejected(error)) => {
            record(
                &mut tx,
                id,
                Outcome::Ended {
                    status: "bounced",
                    error,
                },
            )
            .await?;
            store::suppress(&mut tx, &message.to_address, "bounce", error, None).await?;
            super::sequences::stop_for_address(&mut tx, &message.to_address, "bounced").await?;
            Ok(())
        }
        Err(SendError::Invalid(error)) => {
            record(
                &mut tx,
                id,
                Outcome::Ended {
                    status: "failed",
                    error,
                },
            )
            .await?;
            Err(JobError::Permanent(error.clone()))
        }
        Err(SendError::Transient(error))
            if ctx.attempt >= ctx.max_attempts
                || message.queued_at
                    <= meridian_db::jobs::minus(meridian_db::now(), super::service::SEND_FOR) =>
        {
            record(
                &mut tx,
                id,
                Outcome::Ended {
                    status: "failed",
                    error,
                },
            )
            .await?;
            // Given up: the job dies with the message, so it shows on the Operations page.
            Err(JobError::Permanent(error.clone()))
        }
        Err(SendError::Transient(error)) => {
            record(&mut tx, id, Outcome::Retrying { error }).await?;
            Err(JobError::Retryable(error.clone()))
        }
    };
    tx.commit().await?;
    if let Err(error) = &verdict {
        tracing::warn!(message = id, attempt = ctx.attempt, %error, "email not delivered");
    }
    verdict
}

async fn record(tx: &mut TenantTx, id: &str, outcome: Outcome<'_>) -> Result<(), JobError> {
    store::record_attempt(tx, id, outcome).await?;
    Ok(())
}
