//! Settings the application needs at run time (the binary loads them from defaults, a file and
//! the environment, and passes them in).

use std::path::PathBuf;
use std::time::Duration;

use crate::secrets::{KeyRing, SecretKey};

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
    /// The background job runner's settings.
    pub jobs: JobsConfig,
    /// The key that seals secrets at rest, and earlier keys during a rotation.
    pub secrets: KeyRing,
    /// How mail leaves the server.
    pub email: EmailConfig,
    /// Let organizations point SMTP servers (and webhooks) at loopback, private, link-local or
    /// metadata addresses. For local development only: on a hosted server it would let a tenant
    /// reach the operator's internal network.
    pub allow_private_network: bool,
}

/// The server's mail settings (`MERIDIAN_SMTP_URL`, `MERIDIAN_EMAIL_FROM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailConfig {
    /// Used by organizations that have not set an SMTP server of their own.
    pub transport: ServerTransport,
    /// The sender of organizations that have not set one, as `Name <address>`.
    pub from: String,
}

/// The server's own way of sending mail.
#[derive(Clone, PartialEq, Eq)]
pub enum ServerTransport {
    /// Writes each message as an `.eml` file under this directory (one folder per organization),
    /// so a server with no mail relay works offline and a person can open what was "sent".
    Files(PathBuf),
    /// An SMTP relay, as a URL: `smtp://host:25` (plain), `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS) or `smtps://user:pass@host:465` (TLS).
    Smtp(String),
}

impl std::fmt::Debug for ServerTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerTransport::Files(dir) => f.debug_tuple("Files").field(dir).finish(),
            ServerTransport::Smtp(url) => f
                .debug_tuple("Smtp")
                .field(&redact_url_password(url))
                .finish(),
        }
    }
}

/// A URL with its password replaced, for logs and `config check`.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:****@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            transport: ServerTransport::Files(PathBuf::from("./data/mail")),
            from: "Meridian <meridian@localhost>".to_owned(),
        }
    }
}

/// The job runner's settings (`MERIDIAN_WORKER_CONCURRENCY`, `MERIDIAN_JOB_*`; see the README).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsConfig {
    /// Jobs one process runs at once.
    pub concurrency: usize,
    /// How often an idle runner looks for due jobs enqueued by other processes (jobs enqueued in
    /// this process wake it at once).
    pub poll_interval: Duration,
    /// A job running longer than this is stopped and retried.
    pub job_timeout: Duration,
    /// A running job whose worker has not reported for this long is taken back (its process
    /// died). Longer than `job_timeout`, so a slow job is never run twice at once.
    pub rescue_after: Duration,
    /// On shutdown, how long running jobs may finish before they are released to other workers.
    pub shutdown_grace: Duration,
    /// Backoff after a failed attempt: a random wait up to `base * 2^(attempt-1)`, at most `cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Succeeded jobs are deleted this long after they finished (dead ones are kept).
    pub retention: Duration,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            concurrency: 10,
            poll_interval: Duration::from_secs(1),
            job_timeout: Duration::from_secs(5 * 60),
            rescue_after: Duration::from_secs(10 * 60),
            shutdown_grace: Duration::from_secs(30),
            backoff_base: Duration::from_secs(15),
            backoff_cap: Duration::from_secs(6 * 3600),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl JobsConfig {
    /// Refuses settings that would run no job, or run a job twice at once (a rescue window not
    /// longer than the job timeout).
    pub fn check(&self) -> Result<(), String> {
        if self.concurrency == 0 {
            return Err("MERIDIAN_WORKER_CONCURRENCY must be above zero".to_owned());
        }
        if self.rescue_after <= self.job_timeout {
            return Err(format!(
                "MERIDIAN_JOB_RESCUE_AFTER ({:?}) must be longer than MERIDIAN_JOB_TIMEOUT ({:?}), or a slow job could run twice at once",
                self.rescue_after, self.job_timeout
            ));
        }
        if self.backoff_cap < self.backoff_base {
            return Err(
                "MERIDIAN_JOB_BACKOFF_CAP must not be shorter than MERIDIAN_JOB_BACKOFF_BASE"
                    .to_owned(),
            );
        }
        Ok(())
    }
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
            jobs: JobsConfig::default(),
            // A key of the moment, for embedders and tests; the binary always loads the
            // configured ring (MERIDIAN_SECRET_KEY or the key file).
            secrets: KeyRing::new(SecretKey::generate(), Vec::new()),
            email: EmailConfig::default(),
            allow_private_network: false,
        }
    }
}
