//! Settings the application needs at run time (the binary loads them from defaults, a file and
//! the environment, and passes them in).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupPolicy {
    /// Organizations are created by setup, the CLI or an operator; people join by invitation.
    Invite,
    /// Anyone may register a new organization (hosted use).
    Open,
}

impl std::str::FromStr for SignupPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "invite" => Ok(SignupPolicy::Invite),
            "open" => Ok(SignupPolicy::Open),
            other => Err(format!("signup must be `invite` or `open`, not {other:?}")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The address people use to reach this server, for links (setup, invites). No trailing slash.
    pub public_url: String,
    pub signup: SignupPolicy,
    pub session_idle_timeout: Duration,
    pub session_absolute_lifetime: Duration,
    pub access_token_lifetime: Duration,
    pub refresh_token_lifetime: Duration,
    pub invite_lifetime: Duration,
    /// Largest accepted request body, in bytes (413 above it).
    pub max_body_bytes: usize,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_proxy_headers: bool,
    /// Serve `/metrics` on the main listener (false when it has a listener of its own).
    pub metrics_on_main_listener: bool,
    /// How many password hashes may run at once.
    pub password_hash_concurrency: usize,
}

impl AppConfig {
    /// Cookies get `Secure` (and the `__Host-` prefix) when the public address is HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

/// Half the cores (at least one): a burst of logins then leaves the other half to everything
/// else (measured in BENCHMARKS.md: with every core hashing, other requests' p99 more than doubles).
pub fn default_password_hash_concurrency() -> usize {
    std::thread::available_parallelism()
        .map(|n| (n.get() / 2).max(1))
        .unwrap_or(1)
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".to_owned(),
            signup: SignupPolicy::Invite,
            session_idle_timeout: Duration::from_secs(12 * 3600),
            session_absolute_lifetime: Duration::from_secs(7 * 24 * 3600),
            access_token_lifetime: Duration::from_secs(15 * 60),
            refresh_token_lifetime: Duration::from_secs(30 * 24 * 3600),
            invite_lifetime: Duration::from_secs(7 * 24 * 3600),
            max_body_bytes: 1024 * 1024,
            trust_proxy_headers: false,
            metrics_on_main_listener: true,
            password_hash_concurrency: default_password_hash_concurrency(),
        }
    }
}
