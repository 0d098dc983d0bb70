use std::ops::Deref;
use std::sync::Arc;

use meridian_db::Db;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::password::PasswordHasher;
use crate::config::AppConfig;

/// Everything a request handler may need, shared by every request. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub db: Db,
    pub config: AppConfig,
    pub hasher: PasswordHasher,
    /// Key for the CSRF tokens derived from session secrets; shared by every node through the
    /// database so any node can check a token another node issued.
    pub csrf_key: Vec<u8>,
    pub metrics: PrometheusHandle,
    /// Set when the server begins shutting down: long-lived responses (the notification stream)
    /// end, so the graceful shutdown is not held open by them.
    pub closing: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// Ends the open notification streams (call when shutdown begins).
    pub fn close_streams(&self) {
        let _ = self.closing.send(true);
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}
