//! Configuration: defaults, then a TOML file, then `MERIDIAN_*` environment variables, then
//! command-line flags. Every setting is documented in the README with its default.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use meridian_app::config::{EmailConfig, JobsConfig, ServerTransport};
use meridian_app::secrets::KeySource;
use meridian_app::{AppConfig, SignupPolicy};
use serde::Deserialize;

/// The settings file's shape; every field is optional and named like its environment variable
/// without the `MERIDIAN_` prefix, in lower case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub listen: Option<String>,
    pub data_dir: Option<String>,
    pub database_url: Option<String>,
    pub migration_database_url: Option<String>,
    pub db_max_connections: Option<u32>,
    pub signup: Option<String>,
    pub public_url: Option<String>,
    pub metrics_listen: Option<String>,
    pub session_idle_timeout: Option<String>,
    pub session_lifetime: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub trust_proxy_headers: Option<bool>,
    pub env: Option<String>,
    pub log: Option<String>,
    pub log_format: Option<String>,
    pub worker_interval: Option<String>,
    pub password_hash_concurrency: Option<usize>,
    pub worker_concurrency: Option<usize>,
    pub job_poll_interval: Option<String>,
    pub job_timeout: Option<String>,
    pub job_rescue_after: Option<String>,
    pub job_shutdown_grace: Option<String>,
    pub job_backoff_base: Option<String>,
    pub job_backoff_cap: Option<String>,
    pub job_retention: Option<String>,
    pub smtp_url: Option<String>,
    pub email_from: Option<String>,
    pub allow_private_network: Option<bool>,
}

/// Flags that override everything else (the `serve` flags).
#[derive(Debug, Default, Clone)]
pub struct FlagSettings {
    pub listen: Option<String>,
    pub data_dir: Option<String>,
    pub database_url: Option<String>,
    pub signup: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub migration_database_url: String,
    pub db_max_connections: u32,
    pub metrics_listen: Option<SocketAddr>,
    pub env: Environment,
    pub log: String,
    pub log_json: bool,
    pub worker_interval: Duration,
    /// `MERIDIAN_SECRET_KEY` and `MERIDIAN_SECRET_KEY_PREVIOUS` (environment only: a key belongs
    /// in a secret store or the key file, not in a settings file). Loaded into `app.secrets` by
    /// [`Settings::load_secrets`].
    pub secret_keys: SecretKeyText,
    pub app: AppConfig,
    /// Where each value came from, for `config check`.
    pub sources: HashMap<&'static str, &'static str>,
}

/// The secret-key settings as given, kept out of `Debug` output.
#[derive(Clone, Default)]
pub struct SecretKeyText {
    pub current: Option<String>,
    pub previous: Option<String>,
}

impl std::fmt::Debug for SecretKeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKeyText")
            .field("current", &self.current.as_ref().map(|_| "****"))
            .field("previous", &self.previous.as_ref().map(|_| "****"))
            .finish()
    }
}

/// Parses `250ms`, `90s`, `15m`, `12h`, `7d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let bad = || anyhow::anyhow!("{text:?} is not a duration like 500ms, 30s, 15m, 12h or 7d");
    let n: u64 = number.parse().map_err(|_| bad())?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86_400)),
        _ => return Err(bad()),
    };
    if duration.is_zero() {
        bail!("{text:?} must be longer than zero");
    }
    Ok(duration)
}

struct Layers<'a> {
    file: &'a FileSettings,
    env: &'a dyn Fn(&str) -> Option<String>,
    sources: HashMap<&'static str, &'static str>,
}

impl Layers<'_> {
    /// The value of a setting from the highest layer that has it.
    fn pick(
        &mut self,
        key: &'static str,
        file: Option<String>,
        flag: Option<String>,
    ) -> Option<String> {
        let env_name = format!("MERIDIAN_{}", key.to_uppercase());
        let from_env = (self.env)(&env_name).filter(|v| !v.is_empty());
        let (value, source) = match (flag, from_env, file) {
            (Some(v), _, _) => (Some(v), "flag"),
            (None, Some(v), _) => (Some(v), "environment"),
            (None, None, Some(v)) => (Some(v), "file"),
            (None, None, None) => (None, "default"),
        };
        self.sources.insert(key, source);
        value
    }
}

impl Settings {
    pub fn load(config_path: Option<&str>, flags: &FlagSettings) -> anyhow::Result<Settings> {
        let env = |name: &str| std::env::var(name).ok();
        let explicit = config_path
            .map(str::to_owned)
            .or_else(|| env("MERIDIAN_CONFIG"));
        let file = match explicit {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading the settings file {path}"))?;
                toml::from_str(&text)
                    .with_context(|| format!("parsing the settings file {path}"))?
            }
            None => match std::fs::read_to_string("meridian.toml") {
                Ok(text) => toml::from_str(&text).context("parsing ./meridian.toml")?,
                Err(_) => FileSettings::default(),
            },
        };
        Self::resolve(&file, flags, &env)
    }

    pub fn resolve(
        file: &FileSettings,
        flags: &FlagSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Settings> {
        let mut l = Layers {
            file,
            env,
            sources: HashMap::new(),
        };
        let f = l.file;
        let listen_text = l
            .pick("listen", f.listen.clone(), flags.listen.clone())
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen: SocketAddr = listen_text.parse().with_context(|| {
            format!("MERIDIAN_LISTEN {listen_text:?} is not an address like 127.0.0.1:8080")
        })?;
        let data_dir = PathBuf::from(
            l.pick("data_dir", f.data_dir.clone(), flags.data_dir.clone())
                .unwrap_or_else(|| "./data".to_owned()),
        );
        let database_url = l
            .pick(
                "database_url",
                f.database_url.clone(),
                flags.database_url.clone(),
            )
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("meridian.db").display()));
        let migration_database_url = l
            .pick(
                "migration_database_url",
                f.migration_database_url.clone(),
                None,
            )
            .unwrap_or_else(|| database_url.clone());
        let env_text = l
            .pick("env", f.env.clone(), None)
            .unwrap_or_else(|| "development".to_owned());
        let environment = match env_text.as_str() {
            "development" => Environment::Development,
            "production" => Environment::Production,
            other => bail!("MERIDIAN_ENV must be development or production, not {other:?}"),
        };
        let signup: SignupPolicy = l
            .pick("signup", f.signup.clone(), flags.signup.clone())
            .unwrap_or_else(|| "invite".to_owned())
            .parse()
            .map_err(|e: String| anyhow::anyhow!("MERIDIAN_SIGNUP: {e}"))?;
        let public_url = l
            .pick("public_url", f.public_url.clone(), None)
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            bail!("MERIDIAN_PUBLIC_URL must start with http:// or https://");
        }
        let metrics_listen =
            match l.pick("metrics_listen", f.metrics_listen.clone(), None) {
                Some(text) => Some(text.parse().with_context(|| {
                    format!("MERIDIAN_METRICS_LISTEN {text:?} is not an address")
                })?),
                None => None,
            };
        let number = |l: &mut Layers,
                      key: &'static str,
                      file: Option<String>|
         -> anyhow::Result<Option<u64>> {
            l.pick(key, file, None)
                .map(|v| {
                    v.parse::<u64>().with_context(|| {
                        format!("MERIDIAN_{} must be a whole number", key.to_uppercase())
                    })
                })
                .transpose()
        };
        let duration_or = |l: &mut Layers,
                           key: &'static str,
                           file: Option<String>,
                           default: Duration|
         -> anyhow::Result<Duration> {
            match l.pick(key, file, None) {
                Some(text) => parse_duration(&text)
                    .with_context(|| format!("MERIDIAN_{}", key.to_uppercase())),
                None => Ok(default),
            }
        };
        let duration = |l: &mut Layers,
                        key: &'static str,
                        file: Option<String>,
                        default: &str|
         -> anyhow::Result<Duration> {
            duration_or(l, key, file, parse_duration(default)?)
        };
        let db_max_connections = number(
            &mut l,
            "db_max_connections",
            f.db_max_connections.map(|n| n.to_string()),
        )?
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        .unwrap_or(16);
        let max_body_bytes = number(
            &mut l,
            "max_body_bytes",
            f.max_body_bytes.map(|n| n.to_string()),
        )?
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        .unwrap_or(1024 * 1024);
        let default_hashers = meridian_app::config::default_password_hash_concurrency();
        let password_hash_concurrency = number(
            &mut l,
            "password_hash_concurrency",
            f.password_hash_concurrency.map(|n| n.to_string()),
        )?
        .map(|n| usize::try_from(n).unwrap_or(1).max(1))
        .unwrap_or(default_hashers);
        let trust_proxy_headers = match l.pick(
            "trust_proxy_headers",
            f.trust_proxy_headers.map(|b| b.to_string()),
            None,
        ) {
            None => false,
            Some(v) => match v.as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                other => bail!("MERIDIAN_TRUST_PROXY_HEADERS must be true or false, not {other:?}"),
            },
        };
        let session_idle_timeout = duration(
            &mut l,
            "session_idle_timeout",
            f.session_idle_timeout.clone(),
            "12h",
        )?;
        let session_absolute_lifetime =
            duration(&mut l, "session_lifetime", f.session_lifetime.clone(), "7d")?;
        let worker_interval = duration(&mut l, "worker_interval", f.worker_interval.clone(), "5m")?;
        let job_defaults = JobsConfig::default();
        let jobs = JobsConfig {
            concurrency: number(
                &mut l,
                "worker_concurrency",
                f.worker_concurrency.map(|n| n.to_string()),
            )?
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .unwrap_or(job_defaults.concurrency),
            poll_interval: duration_or(
                &mut l,
                "job_poll_interval",
                f.job_poll_interval.clone(),
                job_defaults.poll_interval,
            )?,
            job_timeout: duration_or(
                &mut l,
                "job_timeout",
                f.job_timeout.clone(),
                job_defaults.job_timeout,
            )?,
            rescue_after: duration_or(
                &mut l,
                "job_rescue_after",
                f.job_rescue_after.clone(),
                job_defaults.rescue_after,
            )?,
            shutdown_grace: duration_or(
                &mut l,
                "job_shutdown_grace",
                f.job_shutdown_grace.clone(),
                job_defaults.shutdown_grace,
            )?,
            backoff_base: duration_or(
                &mut l,
                "job_backoff_base",
                f.job_backoff_base.clone(),
                job_defaults.backoff_base,
            )?,
            backoff_cap: duration_or(
                &mut l,
                "job_backoff_cap",
                f.job_backoff_cap.clone(),
                job_defaults.backoff_cap,
            )?,
            retention: duration_or(
                &mut l,
                "job_retention",
                f.job_retention.clone(),
                job_defaults.retention,
            )?,
        };
        jobs.check().map_err(|e| anyhow::anyhow!(e))?;
        let log = l
            .pick("log", f.log.clone(), None)
            .unwrap_or_else(|| "info".to_owned());
        let log_json = match l.pick("log_format", f.log_format.clone(), None).as_deref() {
            Some("json") => true,
            Some("pretty") => false,
            Some(other) => bail!("MERIDIAN_LOG_FORMAT must be json or pretty, not {other:?}"),
            None => environment == Environment::Production,
        };
        let boolean =
            |l: &mut Layers, key: &'static str, file: Option<bool>| -> anyhow::Result<bool> {
                match l.pick(key, file.map(|b| b.to_string()), None) {
                    None => Ok(false),
                    Some(v) => match v.as_str() {
                        "true" | "1" | "yes" => Ok(true),
                        "false" | "0" | "no" => Ok(false),
                        other => bail!(
                            "MERIDIAN_{} must be true or false, not {other:?}",
                            key.to_uppercase()
                        ),
                    },
                }
            };
        let allow_private_network =
            boolean(&mut l, "allow_private_network", f.allow_private_network)?;
        let transport = match l.pick("smtp_url", f.smtp_url.clone(), None) {
            Some(url) => {
                if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                    bail!(
                        "MERIDIAN_SMTP_URL must start with smtp:// or smtps://, like smtp://user:pass@mail.example.com:587?tls=required"
                    );
                }
                ServerTransport::Smtp(url)
            }
            None => ServerTransport::Files(data_dir.join("mail")),
        };
        let email_from = l
            .pick("email_from", f.email_from.clone(), None)
            .unwrap_or_else(|| EmailConfig::default().from);
        if let Err(error) = meridian_app::email::transport::check_mailbox(&email_from) {
            bail!(
                "MERIDIAN_EMAIL_FROM {email_from:?} is not an address like `Meridian <noreply@example.com>`: {error}"
            );
        }
        let secret_keys = SecretKeyText {
            current: l.pick("secret_key", None, None),
            previous: l.pick("secret_key_previous", None, None),
        };
        let app = AppConfig {
            public_url,
            signup,
            session_idle_timeout,
            session_absolute_lifetime,
            max_body_bytes,
            trust_proxy_headers,
            metrics_on_main_listener: metrics_listen.is_none(),
            password_hash_concurrency,
            jobs,
            email: EmailConfig {
                transport,
                from: email_from,
            },
            allow_private_network,
            ..AppConfig::default()
        };
        Ok(Settings {
            listen,
            data_dir,
            database_url,
            migration_database_url,
            db_max_connections,
            metrics_listen,
            env: environment,
            log,
            log_json,
            worker_interval,
            secret_keys,
            app,
            sources: l.sources,
        })
    }
}

/// A database or SMTP URL with its password replaced, for logs and `config check`.
pub use meridian_app::config::redact_url_password as redact_url;

impl Settings {
    /// Loads the secret key ring into `app.secrets`: `MERIDIAN_SECRET_KEY` (with earlier keys
    /// from `MERIDIAN_SECRET_KEY_PREVIOUS`), else the key file in the data directory, created on
    /// first run.
    pub fn load_secrets(&mut self) -> anyhow::Result<KeySource> {
        let (ring, source) = meridian_app::secrets::keys::load_ring(
            self.secret_keys.current.as_deref(),
            self.secret_keys.previous.as_deref(),
            &self.data_dir,
        )?;
        self.app.secrets = ring;
        Ok(source)
    }
}

/// The user name in a PostgreSQL URL (the role the app connects as).
pub fn url_user(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let (credentials, _) = rest.split_once('@')?;
    let user = credentials.split(':').next()?;
    (!user.is_empty()).then(|| user.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(
        file: FileSettings,
        flags: FlagSettings,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Settings> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::resolve(&file, &flags, &move |name: &str| env.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let s = resolve(FileSettings::default(), FlagSettings::default(), &[]).expect("defaults");
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database_url, "sqlite://./data/meridian.db");
        assert_eq!(s.app.signup, SignupPolicy::Invite);
        assert_eq!(s.app.session_idle_timeout, Duration::from_secs(12 * 3600));
        assert_eq!(
            s.app.session_absolute_lifetime,
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(s.app.public_url, "http://127.0.0.1:8080");
        assert_eq!(s.sources["listen"], "default");
    }

    #[test]
    fn layers_apply_in_order() {
        let file = FileSettings {
            listen: Some("127.0.0.1:9000".into()),
            signup: Some("open".into()),
            data_dir: Some("/srv/file".into()),
            ..FileSettings::default()
        };
        let flags = FlagSettings {
            data_dir: Some("/srv/flag".into()),
            ..FlagSettings::default()
        };
        let s = resolve(
            file,
            flags,
            &[
                ("MERIDIAN_LISTEN", "0.0.0.0:7000"),
                ("MERIDIAN_DATA_DIR", "/srv/env"),
            ],
        )
        .expect("layers");
        assert_eq!(s.listen.to_string(), "0.0.0.0:7000", "env beats file");
        assert_eq!(s.app.signup, SignupPolicy::Open, "file beats default");
        assert_eq!(s.data_dir, PathBuf::from("/srv/flag"), "flag beats env");
        assert_eq!(s.sources["listen"], "environment");
        assert_eq!(s.sources["data_dir"], "flag");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = resolve(
            FileSettings::default(),
            FlagSettings::default(),
            &[("MERIDIAN_SIGNUP", "everyone")],
        )
        .expect_err("bad signup");
        assert!(err.to_string().contains("MERIDIAN_SIGNUP"), "{err}");
        let err = resolve(
            FileSettings::default(),
            FlagSettings::default(),
            &[("MERIDIAN_SESSION_IDLE_TIMEOUT", "soon")],
        )
        .expect_err("bad duration");
        assert!(
            format!("{err:#}").contains("MERIDIAN_SESSION_IDLE_TIMEOUT"),
            "{err:#}"
        );
    }

    #[test]
    fn durations_and_urls() {
        assert_eq!(parse_duration("90").expect("s"), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").expect("m"), Duration::from_secs(900));
        assert_eq!(
            parse_duration("7d").expect("d"),
            Duration::from_secs(604_800)
        );
        assert!(parse_duration("0s").is_err());
        assert_eq!(
            parse_duration("250ms").expect("ms"),
            Duration::from_millis(250)
        );
        assert!(parse_duration("soon").is_err());
        assert_eq!(
            redact_url("postgres://app:secret@db:5432/m"),
            "postgres://app:****@db:5432/m"
        );
        assert_eq!(
            url_user("postgres://app:secret@db/m").as_deref(),
            Some("app")
        );
        assert_eq!(url_user("sqlite://./data/m.db"), None);
    }

    #[test]
    fn job_settings_come_from_every_layer_and_are_checked() {
        let file = FileSettings {
            worker_concurrency: Some(3),
            job_retention: Some("2d".into()),
            ..FileSettings::default()
        };
        let s = resolve(
            file,
            FlagSettings::default(),
            &[
                ("MERIDIAN_WORKER_CONCURRENCY", "4"),
                ("MERIDIAN_JOB_POLL_INTERVAL", "250ms"),
                ("MERIDIAN_JOB_TIMEOUT", "2m"),
            ],
        )
        .expect("valid");
        assert_eq!(s.app.jobs.concurrency, 4, "env beats file");
        assert_eq!(s.app.jobs.poll_interval, Duration::from_millis(250));
        assert_eq!(s.app.jobs.job_timeout, Duration::from_secs(120));
        assert_eq!(s.app.jobs.retention, Duration::from_secs(2 * 86_400));
        assert_eq!(s.app.jobs.rescue_after, JobsConfig::default().rescue_after);
        assert_eq!(s.sources["job_retention"], "file");

        let err = resolve(
            FileSettings::default(),
            FlagSettings::default(),
            &[("MERIDIAN_JOB_RESCUE_AFTER", "1m")],
        )
        .expect_err("a rescue window shorter than the job timeout");
        assert!(
            err.to_string().contains("MERIDIAN_JOB_RESCUE_AFTER"),
            "{err}"
        );
        let err = resolve(
            FileSettings::default(),
            FlagSettings::default(),
            &[("MERIDIAN_WORKER_CONCURRENCY", "0")],
        )
        .expect_err("no workers");
        assert!(
            err.to_string().contains("MERIDIAN_WORKER_CONCURRENCY"),
            "{err}"
        );
    }
}
