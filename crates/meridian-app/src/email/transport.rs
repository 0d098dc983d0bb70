//! How a message leaves: the server's transport (`.eml` files, or an SMTP relay from
//! `MERIDIAN_SMTP_URL`) or an organization's own SMTP server. Connections are pooled per server.
//!
//! An organization's SMTP host is resolved here and refused when it points inside the network
//! (loopback, private, link-local, metadata) unless the operator allowed it, and the connection
//! goes to the checked address: resolving again at connect time could be answered differently.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::{AsyncSmtpTransport, PoolConfig};
use lettre::{AsyncTransport, Message, Tokio1Executor};

use crate::config::ServerTransport;
use crate::net::{self, Destination};

/// An email ready to go, as stored in the message log.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The organization (the `.eml` folder).
    pub org_id: String,
    /// The RFC 5322 Message-ID without angle brackets: the same on every attempt, so a message
    /// sent twice after a crash is recognisably one message.
    pub message_id: String,
    pub from: String,
    pub to: String,
    pub reply_to: Option<String>,
    pub subject: String,
    pub html: String,
    pub text: String,
    /// The unsubscribe address for `List-Unsubscribe` (marketing mail).
    pub unsubscribe_url: Option<String>,
}

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The receiving server refused the recipient for good (5xx): a hard bounce.
    #[error("{0}")]
    Rejected(String),
    /// A passing failure (connection, timeout, 4xx): another attempt may succeed.
    #[error("{0}")]
    Transient(String),
    /// The message or the settings are wrong (bad address, refused host): retrying cannot help.
    #[error("{0}")]
    Invalid(String),
}

/// An organization's own SMTP server, with its password revealed.
#[derive(Clone, PartialEq, Eq)]
pub struct OrgSmtp {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for OrgSmtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgSmtp")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (required).
    StartTls,
    /// TLS from the first byte (usually port 465).
    Tls,
    /// No encryption (local relays only).
    None,
}

impl Security {
    pub fn parse(text: &str) -> Option<Security> {
        match text {
            "starttls" => Some(Security::StartTls),
            "tls" => Some(Security::Tls),
            "none" => Some(Security::None),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Security::StartTls => "starttls",
            Security::Tls => "tls",
            Security::None => "none",
        }
    }
}

type Smtp = AsyncSmtpTransport<Tokio1Executor>;

const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends mail; one per process, shared by every email job so SMTP connections are reused.
pub struct Mailer {
    server: ServerTransport,
    allow_private_network: bool,
    server_smtp: Mutex<Option<Arc<Smtp>>>,
    /// Organization servers by their settings (a change of settings gets a new pool).
    org_smtp: Mutex<HashMap<String, (OrgSmtp, Arc<Smtp>)>>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    pub fn new(server: ServerTransport, allow_private_network: bool) -> Mailer {
        Mailer {
            server,
            allow_private_network,
            server_smtp: Mutex::new(None),
            org_smtp: Mutex::new(HashMap::new()),
        }
    }

    /// Delivers `mail` through the organization's server when it has one, else the server's
    /// transport. Returns the transport's receipt (the SMTP server's reply, or the file written).
    pub async fn send(&self, mail: &Outgoing, org: Option<&OrgSmtp>) -> Result<String, SendError> {
        let message = build(mail)?;
        match (org, &self.server) {
            (Some(org), _) => {
                let transport = self.org_transport(&mail.org_id, org).await?;
                smtp_send(&transport, &message).await
            }
            (None, ServerTransport::Files(dir)) => write_eml(dir, mail, &message).await,
            (None, ServerTransport::Smtp(url)) => {
                let transport = self.server_transport(url)?;
                smtp_send(&transport, &message).await
            }
        }
    }

    fn server_transport(&self, url: &str) -> Result<Arc<Smtp>, SendError> {
        let mut cached = self
            .server_smtp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(transport) = cached.as_ref() {
            return Ok(transport.clone());
        }
        let transport = Arc::new(
            Smtp::from_url(url)
                .map_err(|e| SendError::Invalid(format!("MERIDIAN_SMTP_URL: {e}")))?
                .timeout(Some(SMTP_TIMEOUT))
                .pool_config(PoolConfig::new().max_size(10))
                .build(),
        );
        *cached = Some(transport.clone());
        Ok(transport)
    }

    async fn org_transport(&self, org_id: &str, org: &OrgSmtp) -> Result<Arc<Smtp>, SendError> {
        if let Some((settings, transport)) = self
            .org_smtp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(org_id)
            && settings == org
        {
            return Ok(transport.clone());
        }
        let address = net::resolve_checked(
            &org.host,
            org.port,
            Destination::from_allow_private(self.allow_private_network),
        )
        .await
        .map_err(|e| SendError::Invalid(format!("SMTP server {}: {e}", org.host)))?;
        let transport = Arc::new(org_transport(org, address)?);
        self.org_smtp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(org_id.to_owned(), (org.clone(), transport.clone()));
        Ok(transport)
    }
}

fn org_transport(org: &OrgSmtp, address: SocketAddr) -> Result<Smtp, SendError> {
    let tls_parameters = || {
        TlsParameters::new(org.host.clone())
            .map_err(|e| SendError::Invalid(format!("TLS for {}: {e}", org.host)))
    };
    let tls = match org.security {
        Security::StartTls => Tls::Required(tls_parameters()?),
        Security::Tls => Tls::Wrapper(tls_parameters()?),
        Security::None => Tls::None,
    };
    let host = match address.ip() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => ip.to_string(),
    };
    let mut builder = Smtp::builder_dangerous(host)
        .port(address.port())
        .tls(tls)
        .timeout(Some(SMTP_TIMEOUT))
        .pool_config(PoolConfig::new().max_size(4));
    if let Some(user) = &org.username {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            org.password.clone().unwrap_or_default(),
        ));
    }
    Ok(builder.build())
}

/// Whether `text` is an address a message can be sent from or to (`Name <a@b.c>` or `a@b.c`).
pub fn check_mailbox(text: &str) -> Result<(), String> {
    text.parse::<Mailbox>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn mailbox(field: &str, text: &str) -> Result<Mailbox, SendError> {
    text.parse()
        .map_err(|e| SendError::Invalid(format!("{field} {text:?} is not an address: {e}")))
}

/// The RFC 5322 message: multipart/alternative (text, then HTML), the fixed Message-ID, and
/// one-click unsubscribe headers (RFC 8058) for marketing mail.
pub fn build(mail: &Outgoing) -> Result<Message, SendError> {
    let mut builder = Message::builder()
        .message_id(Some(format!("<{}>", mail.message_id)))
        .from(mailbox("from", &mail.from)?)
        .to(mailbox("to", &mail.to)?)
        .subject(mail.subject.clone());
    if let Some(reply_to) = &mail.reply_to {
        builder = builder.reply_to(mailbox("reply_to", reply_to)?);
    }
    if let Some(url) = &mail.unsubscribe_url {
        builder = builder
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_owned(),
            ));
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))
        .map_err(|e| SendError::Invalid(format!("building the message: {e}")))
}

async fn smtp_send(transport: &Smtp, message: &Message) -> Result<String, SendError> {
    match transport.send(message.clone()).await {
        Ok(response) => Ok(response.message().collect::<Vec<_>>().join(" ")),
        Err(error) if error.is_permanent() => Err(SendError::Rejected(error.to_string())),
        Err(error) => Err(SendError::Transient(error.to_string())),
    }
}

/// The `.eml` file of a message: one folder per organization, named by the Message-ID so a retry
/// rewrites the same file.
pub fn eml_path(dir: &Path, org_id: &str, message_id: &str) -> PathBuf {
    let name: String = message_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(org_id).join(format!("{name}.eml"))
}

async fn write_eml(dir: &Path, mail: &Outgoing, message: &Message) -> Result<String, SendError> {
    let path = eml_path(dir, &mail.org_id, &mail.message_id);
    let folder = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.to_path_buf());
    let transient = |e: std::io::Error| SendError::Transient(format!("{}: {e}", path.display()));
    tokio::fs::create_dir_all(&folder)
        .await
        .map_err(transient)?;
    // Written beside and renamed, so a reader never sees half a message.
    let partial = path.with_extension("eml.partial");
    tokio::fs::write(&partial, message.formatted())
        .await
        .map_err(transient)?;
    tokio::fs::rename(&partial, &path)
        .await
        .map_err(transient)?;
    Ok(path.display().to_string())
}
