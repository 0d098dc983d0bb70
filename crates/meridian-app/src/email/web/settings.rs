//! Settings → Email: the sender (name, address, reply-to) and an optional SMTP server. The
//! password is write-only: never shown or sent back, kept when left blank, removed by a checkbox.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use meridian_core::Permission;
use serde::Deserialize;

use super::NoticeQuery;
use crate::email::service::{self, SettingsInput, SettingsView};
use crate::http::error::AppError;
use crate::http::json::Query;
use crate::state::AppState;
use crate::web::{FormErrors, Shell, WebCtx, WebResult, render};

#[derive(Template)]
#[template(path = "email_settings.html")]
struct SettingsPage {
    shell: Shell,
    form: SettingsForm,
    securities: [(&'static str, &'static str); 3],
    /// The stored password's mask, when one is stored.
    password_hint: Option<String>,
    custom: bool,
    errors: FormErrors,
}

/// The settings form as typed. The password is never shown again, typed or stored.
#[derive(Debug, Default, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    from_name: String,
    #[serde(default)]
    from_address: String,
    #[serde(default)]
    reply_to: String,
    #[serde(default)]
    smtp_host: String,
    #[serde(default)]
    smtp_port: String,
    #[serde(default)]
    smtp_security: String,
    #[serde(default)]
    smtp_username: String,
    #[serde(default)]
    smtp_password: String,
    /// The "Remove stored password" checkbox.
    #[serde(default)]
    smtp_password_remove: Option<String>,
}

impl From<&SettingsView> for SettingsForm {
    fn from(s: &SettingsView) -> Self {
        SettingsForm {
            from_name: s.from_name.clone(),
            from_address: s.from_address.clone(),
            reply_to: s.reply_to.clone().unwrap_or_default(),
            smtp_host: s.smtp_host.clone().unwrap_or_default(),
            smtp_port: s.smtp_port.map(|p| p.to_string()).unwrap_or_default(),
            smtp_security: s.smtp_security.clone(),
            smtp_username: s.smtp_username.clone().unwrap_or_default(),
            smtp_password: String::new(),
            smtp_password_remove: None,
        }
    }
}

impl SettingsForm {
    fn input(&self) -> Result<SettingsInput, AppError> {
        let optional = |text: &str| Some(text.trim().to_owned()).filter(|t| !t.is_empty());
        let port = match optional(&self.smtp_port) {
            None => None,
            Some(text) => Some(
                text.parse::<i64>()
                    .map_err(|_| AppError::field("smtp_port", "must be a number"))?,
            ),
        };
        // A typed password replaces the stored one; the checkbox removes it; neither keeps it.
        let password = if !self.smtp_password.is_empty() {
            Some(self.smtp_password.clone())
        } else if self.smtp_password_remove.is_some() {
            Some(String::new())
        } else {
            None
        };
        Ok(SettingsInput {
            from_name: self.from_name.clone(),
            from_address: self.from_address.clone(),
            reply_to: optional(&self.reply_to),
            smtp_host: optional(&self.smtp_host),
            smtp_port: port,
            smtp_security: optional(&self.smtp_security),
            smtp_username: optional(&self.smtp_username),
            smtp_password: password,
        })
    }
}

async fn settings_response(
    state: &AppState,
    web: &WebCtx,
    form: Option<SettingsForm>,
    errors: FormErrors,
    notice: Option<String>,
) -> WebResult {
    let view = service::settings(state, &web.ctx).await?;
    let mut shell = web.shell(state, "Email", "email-settings").await?;
    shell.notice = notice;
    let status = if errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = SettingsPage {
        shell,
        form: form.unwrap_or_else(|| SettingsForm::from(&view)),
        securities: [
            ("starttls", "STARTTLS (usually port 587)"),
            ("tls", "TLS from the start (usually port 465)"),
            ("none", "None: unencrypted (port 25)"),
        ],
        password_hint: view.smtp_password_hint,
        custom: view.custom,
        errors,
    };
    Ok((status, render(&page)).into_response())
}

pub async fn page(
    State(state): State<AppState>,
    web: WebCtx,
    Query(q): Query<NoticeQuery>,
) -> WebResult {
    let notice = (q.notice.as_deref() == Some("saved")).then(|| "Email settings saved.".to_owned());
    settings_response(&state, &web, None, FormErrors::default(), notice).await
}

pub async fn submit(
    State(state): State<AppState>,
    web: WebCtx,
    Form(mut form): Form<SettingsForm>,
) -> WebResult {
    web.ctx.require(Permission::OrgManage)?;
    let saved = match form.input() {
        Ok(input) => service::save_settings(&state, &web.ctx, input).await,
        Err(error) => Err(error),
    };
    match saved {
        Ok(_) => Ok(Redirect::to("/settings/email?notice=saved").into_response()),
        Err(error) => {
            let errors = FormErrors::from_error(error)?;
            form.smtp_password.clear();
            form.smtp_password_remove = None;
            settings_response(&state, &web, Some(form), errors, None).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_kept_replaced_or_removed() {
        let form = |password: &str, remove: bool| SettingsForm {
            from_name: "Acme".into(),
            from_address: "hi@acme.test".into(),
            smtp_password: password.into(),
            smtp_password_remove: remove.then(|| "on".to_owned()),
            ..SettingsForm::default()
        };
        let password = |f: SettingsForm| f.input().expect("input").smtp_password;
        assert_eq!(password(form("", false)), None);
        assert_eq!(password(form("", true)), Some(String::new()));
        assert_eq!(password(form("s3cret", true)), Some("s3cret".to_owned()));
        assert!(
            SettingsForm {
                smtp_port: "five".into(),
                ..form("", false)
            }
            .input()
            .is_err()
        );
    }
}
