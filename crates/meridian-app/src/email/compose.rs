//! Turning a template into a message for one lead: its variables, the organization's sender,
//! the unsubscribe link of marketing mail, and a Message-ID. Shared by emails people send and
//! emails sequences send.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use meridian_db::{Db, TenantTx};

use super::render::{self, LeadVars, OrgVars, Person, Rendered, Sources, Variables};
use super::store::{self, NewMessage, TemplateFields};
use crate::config::AppConfig;
use crate::http::error::{AppError, AppResult};
use crate::leads::store::LeadRow;
use crate::pipelines::store::Pipeline;
use crate::state::AppState;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// What composing mail needs from the server: its public address (links, Message-IDs), the
/// default sender, and the key that signs unsubscribe links.
#[derive(Clone)]
pub struct ServerMail {
    public_url: String,
    default_from: String,
    unsubscribe_key: Vec<u8>,
}

impl std::fmt::Debug for ServerMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerMail")
            .field("public_url", &self.public_url)
            .field("default_from", &self.default_from)
            .finish_non_exhaustive()
    }
}

impl ServerMail {
    /// The unsubscribe key is derived from the server's CSRF key (a random secret every node
    /// shares), so links keep working across restarts, nodes and secret-key rotations.
    pub fn new(config: &AppConfig, csrf_key: &[u8]) -> ServerMail {
        let mut derive = HmacSha256::new_from_slice(csrf_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        derive.update(b"meridian unsubscribe v1");
        ServerMail {
            public_url: config.public_url.clone(),
            default_from: config.email.from.clone(),
            unsubscribe_key: derive.finalize().into_bytes().to_vec(),
        }
    }

    pub fn of(state: &AppState) -> ServerMail {
        ServerMail::new(&state.config, &state.csrf_key)
    }

    /// For background work, which has the database but not the web state.
    pub async fn load(db: &Db, config: &AppConfig) -> Result<ServerMail, sqlx::Error> {
        let fresh = crate::auth::tokens::new_secret("");
        // A write transaction: the key is created here if no web node has started yet.
        let mut tx = db.global().await?;
        let csrf_key = crate::auth::store::instance_secret(&mut tx, "csrf_key", &fresh).await?;
        tx.commit().await?;
        Ok(ServerMail::new(config, csrf_key.as_bytes()))
    }

    fn mac(&self, org_id: &str, email: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.unsubscribe_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(org_id.as_bytes());
        mac.update(b"\n");
        mac.update(email.as_bytes());
        mac
    }

    /// The unsubscribe page of `email` at `org_id`: the token names both and is signed, so the
    /// page needs no sign-in and cannot unsubscribe anyone else.
    pub fn unsubscribe_url(&self, org_id: &str, email: &str) -> String {
        let signature = self.mac(org_id, email).finalize().into_bytes();
        format!(
            "{}/unsubscribe/{}.{}.{}",
            self.public_url,
            URL_SAFE_NO_PAD.encode(org_id),
            URL_SAFE_NO_PAD.encode(email),
            URL_SAFE_NO_PAD.encode(&signature[..16])
        )
    }

    /// The organization and address an unsubscribe token names, if this server signed it.
    pub fn verify_unsubscribe(&self, token: &str) -> Option<(String, String)> {
        let mut parts = token.split('.');
        let (Some(org), Some(email), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let org_id = String::from_utf8(URL_SAFE_NO_PAD.decode(org).ok()?).ok()?;
        let email = String::from_utf8(URL_SAFE_NO_PAD.decode(email).ok()?).ok()?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        self.mac(&org_id, &email).verify_truncated_left(&sig).ok()?;
        Some((org_id, email))
    }

    /// The Message-ID of message `id`: unique, under the server's public host name.
    pub fn message_id(&self, id: &str) -> String {
        let host = self
            .public_url
            .split_once("://")
            .map_or("meridian.localhost", |(_, rest)| rest)
            .split(['/', ':'])
            .next()
            .filter(|h| !h.is_empty())
            .unwrap_or("meridian.localhost");
        format!("{id}@{host}")
    }
}

async fn person(tx: &mut TenantTx, user_id: Option<&str>) -> AppResult<Person> {
    let Some(user_id) = user_id else {
        return Ok(Person::default());
    };
    Ok(crate::auth::store::find_user(tx, user_id)
        .await?
        .map(|u| Person {
            name: u.name,
            email: u.email,
        })
        .unwrap_or_default())
}

/// Who the message is from, as the template sees it and on the envelope.
#[derive(Debug, Clone, Copy)]
pub struct Author<'a> {
    pub org_name: &'a str,
    /// The person sending (None for automated mail).
    pub user_id: Option<&'a str>,
}

/// The variables for emailing `lead`.
pub async fn lead_variables(
    tx: &mut TenantTx,
    author: Author<'_>,
    lead: &LeadRow,
    pipeline: &Pipeline,
    unsubscribe_url: &str,
) -> AppResult<Variables> {
    let custom_fields: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&lead.custom_fields).unwrap_or_default();
    let stage_label = pipeline
        .spec
        .stage(&lead.stage)
        .map_or_else(|| lead.stage.clone(), |s| s.label.clone());
    Ok(Variables {
        lead: LeadVars {
            number: crate::leads::api::display_number(lead.number),
            first_name: lead.first_name.clone(),
            last_name: lead.last_name.clone(),
            full_name: format!("{} {}", lead.first_name, lead.last_name)
                .trim()
                .to_owned(),
            email: lead.email.clone().unwrap_or_default(),
            phone: lead.phone.clone().unwrap_or_default(),
            state: lead.state.clone().unwrap_or_default(),
            country: lead.country.clone().unwrap_or_default(),
            source: lead.source.clone(),
            stage: lead.stage.clone(),
            stage_label,
            pipeline: pipeline.spec.name.clone(),
            custom_fields,
        },
        owner: person(tx, lead.assigned_to.as_deref()).await?,
        sender: person(tx, author.user_id).await?,
        org: OrgVars {
            name: author.org_name.to_owned(),
        },
        unsubscribe_url: unsubscribe_url.to_owned(),
    })
}

pub fn render_errors(errors: Vec<render::RenderError>) -> AppError {
    AppError::Validation(
        errors
            .into_iter()
            .map(|e| meridian_core::FieldError {
                field: e.field.to_owned(),
                message: e.message,
            })
            .collect(),
    )
}

pub fn sources(fields: &TemplateFields) -> Sources<'_> {
    Sources {
        subject: &fields.subject,
        html: &fields.body_html,
        text: &fields.body_text,
    }
}

/// Renders `fields` with `vars`; marketing mail always carries a way out: a footer link unless
/// the template placed `{{unsubscribe_url}}` itself.
pub fn render_for(fields: &TemplateFields, vars: &Variables) -> AppResult<Rendered> {
    let mut rendered = render::render(sources(fields), vars).map_err(|e| render_errors(vec![e]))?;
    let url = &vars.unsubscribe_url;
    if fields.category == "marketing"
        && !url.is_empty()
        && !rendered.html.contains(url.as_str())
        && !rendered.text.contains(url.as_str())
    {
        let escaped = url.replace('&', "&amp;").replace('"', "&quot;");
        rendered.html.push_str(&format!(
            "\n<p style=\"font-size:12px;color:#6b7280\">Don't want these emails? \
             <a href=\"{escaped}\">Unsubscribe</a>.</p>"
        ));
        rendered.text.push_str(&format!(
            "\n\n--\nDon't want these emails? Unsubscribe: {url}"
        ));
    }
    Ok(rendered)
}

/// A display name quoted when it holds characters that would break the address header.
fn quote_display_name(name: &str) -> String {
    if name
        .chars()
        .all(|c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '.')
    {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Whom a message goes to: a lead (its variables) at an address.
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    pub lead: &'a LeadRow,
    pub pipeline: &'a Pipeline,
    pub to: &'a str,
}

/// The message for `recipient` from `fields`, ready to queue, and its id.
pub async fn compose(
    tx: &mut TenantTx,
    mail: &ServerMail,
    author: Author<'_>,
    recipient: Recipient<'_>,
    fields: &TemplateFields,
    template_id: Option<&str>,
) -> AppResult<(String, NewMessage)> {
    let Recipient { lead, pipeline, to } = recipient;
    let url = (fields.category == "marketing").then(|| mail.unsubscribe_url(&tx.org_id(), to));
    let vars = lead_variables(
        tx,
        author,
        lead,
        pipeline,
        url.as_deref().unwrap_or_default(),
    )
    .await?;
    let rendered = render_for(fields, &vars)?;
    let (from, reply_to) = match store::settings(tx).await? {
        Some(s) => (
            format!("{} <{}>", quote_display_name(&s.from_name), s.from_address),
            s.reply_to,
        ),
        None => (mail.default_from.clone(), None),
    };
    let id = meridian_db::new_id();
    let message = NewMessage {
        lead_id: Some(lead.id.clone()),
        template_id: template_id.map(str::to_owned),
        to_address: to.to_owned(),
        from_address: from,
        reply_to,
        subject: rendered.subject,
        body_html: rendered.html,
        body_text: rendered.text,
        category: fields.category.clone(),
        message_id: mail.message_id(&id),
        unsubscribe_url: url,
        created_by: author.user_id.map(str::to_owned),
    };
    Ok((id, message))
}
