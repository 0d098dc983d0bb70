//! Assembles the application: state, routes and middleware, served from an injected listener
//! with a shutdown future so tests, the CLI and production share one path.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::MatchedPath;
use axum::http::Request;
use axum::routing::{delete, get, patch, post};
use meridian_db::Db;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::password::PasswordHasher;
use crate::config::AppConfig;
use crate::http::client::REQUEST_ID_HEADER;
use crate::http::middleware;
use crate::state::{AppState, Shared};
use crate::{
    apikeys, audit, auth, automations, email, imports, jobs, leads, notifications, ops, orgs,
    pipelines, views, web,
};

/// Builds the shared state: loads (or creates) the instance secrets and warms the hasher.
pub async fn build_state(db: Db, config: AppConfig) -> anyhow::Result<AppState> {
    let fresh = crate::auth::tokens::new_secret("");
    let mut tx = db.global().await?;
    let csrf_key = auth::store::instance_secret(&mut tx, "csrf_key", &fresh).await?;
    tx.commit().await?;
    let hasher = PasswordHasher::new(config.password_hash_concurrency)?;
    Ok(AppState::new(Shared {
        db,
        hasher,
        csrf_key: csrf_key.into_bytes(),
        metrics: ops::metrics_handle()?,
        closing: tokio::sync::watch::channel(false).0,
        config,
    }))
}

fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(auth::api::login))
        .route("/auth/refresh", post(auth::api::refresh))
        .route("/auth/logout", post(auth::api::logout))
        .route("/auth/me", get(auth::api::me))
        .route("/auth/register", post(auth::api::register))
        .route("/auth/accept-invite", post(auth::api::accept_invite))
        .route("/auth/password", post(auth::api::change_password))
        .route("/org", get(orgs::api::get_org).patch(orgs::api::update_org))
        .route("/members", get(orgs::api::list_members))
        .route(
            "/members/{user_id}",
            patch(orgs::api::update_member).delete(orgs::api::remove_member),
        )
        .route(
            "/invites",
            get(orgs::api::list_invites).post(orgs::api::create_invite),
        )
        .route("/invites/{id}", delete(orgs::api::revoke_invite))
        .route(
            "/api-keys",
            get(apikeys::api::list).post(apikeys::api::create),
        )
        .route("/api-keys/{id}", delete(apikeys::api::revoke))
        .route("/audit-log", get(audit::api::list))
        .merge(pipelines::api_routes())
        .merge(leads::api_routes())
        .merge(imports::api_routes())
        .merge(views::api_routes())
        .merge(jobs::api_routes())
        .merge(email::api_routes())
        .merge(automations::api_routes())
        .merge(notifications::api_routes())
        .merge(crate::webhooks::api_routes())
        .fallback(api_not_found)
}

async fn api_not_found() -> crate::http::error::AppError {
    crate::http::error::AppError::NotFound
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .nest("/api/v1", api_routes())
        .route("/api/openapi.json", get(web::docs::openapi_json))
        .route("/api/docs", get(web::docs::page))
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .merge(web::routes())
        .merge(email::public_routes())
        .merge(crate::webhooks::public_routes());
    if state.config.metrics_on_main_listener {
        router = router.route("/metrics", get(ops::metrics));
    }
    let max_body = state.config.max_body_bytes;
    router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::csrf_guard,
        ))
        .layer(axum::middleware::from_fn(middleware::track_metrics))
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::body_limit,
        ))
        // Uploads join here, under the outer layers only: they have their own body limit.
        .merge(imports::upload_routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::security_headers,
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let route = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| req.uri().path().to_owned());
                let request_id = req
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                tracing::info_span!("request", method = %req.method(), route, request_id)
            }),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// A router with only `/metrics`, for a separate metrics listener.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
