//! The bell's live count: `GET /api/v1/me/notifications/stream` is a server-sent event stream
//! that sends the unread count when the connection opens and whenever it changes.
//!
//! A notification written in this process wakes the stream at once (after a moment for its
//! transaction to commit); one written by another node is picked up by a check every
//! [`RECHECK`]. The page polls instead when the stream cannot stay open.

use std::convert::Infallible;
use std::sync::LazyLock;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use meridian_db::Tenant;
use tokio::sync::broadcast;

use super::store;
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult};
use crate::state::AppState;

/// How often an open stream checks the count without being woken.
pub const RECHECK: Duration = Duration::from_secs(15);
/// How long a woken stream waits for the writing transaction to commit before counting.
const SETTLE: Duration = Duration::from_millis(150);

static CHANGES: LazyLock<broadcast::Sender<(String, String)>> =
    LazyLock::new(|| broadcast::channel(1024).0);

/// Tells this process's open streams that `user`'s notifications changed.
pub fn changed(org_id: &str, user: &str) {
    let _ = CHANGES.send((org_id.to_owned(), user.to_owned()));
}

struct Watch {
    state: AppState,
    closing: tokio::sync::watch::Receiver<bool>,
    tenant: Tenant,
    user: String,
    changes: broadcast::Receiver<(String, String)>,
    last: Option<i64>,
}

impl Watch {
    /// Waits for a change to this person's notifications (or the recheck interval). False when
    /// the server is shutting down.
    async fn wait(&mut self) -> bool {
        let deadline = tokio::time::sleep(RECHECK);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                changed = self.closing.changed() => {
                    // Closing was set (or the state is gone with its sender).
                    if changed.is_err() || *self.closing.borrow_and_update() {
                        return false;
                    }
                }
                () = &mut deadline => return true,
                received = self.changes.recv() => match received {
                    Ok((org, user)) if org == self.tenant.org_id() && user == self.user => {
                        tokio::time::sleep(SETTLE).await;
                        return true;
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return true,
                    Err(broadcast::error::RecvError::Closed) => {
                        (&mut deadline).await;
                        return true;
                    }
                },
            }
        }
    }

    async fn count(&self) -> Option<i64> {
        let mut tx = self.state.db.tenant_read(&self.tenant).await.ok()?;
        let count = store::unread_count(&mut tx, &self.user).await.ok()?;
        tx.commit().await.ok()?;
        Some(count)
    }
}

/// Server-sent events: `event: unread` with `{"count": n}` on connect and on every change.
pub async fn stream(
    State(state): State<AppState>,
    ctx: Ctx,
) -> AppResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let user = ctx
        .user_id()
        .ok_or_else(|| {
            AppError::Forbidden("notifications belong to people, not API keys".to_owned())
        })?
        .to_owned();
    let watch = Watch {
        closing: state.closing.subscribe(),
        state,
        tenant: ctx.tenant.clone(),
        user,
        changes: CHANGES.subscribe(),
        last: None,
    };
    let events = futures_util::stream::unfold(watch, |mut watch| async move {
        loop {
            let closing = *watch.closing.borrow();
            if closing || (watch.last.is_some() && !watch.wait().await) {
                return None;
            }
            let Some(count) = watch.count().await else {
                // The database is unavailable: try again at the next check.
                tokio::time::sleep(RECHECK).await;
                continue;
            };
            if watch.last != Some(count) {
                watch.last = Some(count);
                let event = Event::default()
                    .event("unread")
                    .data(serde_json::json!({"count": count}).to_string());
                return Some((Ok(event), watch));
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
