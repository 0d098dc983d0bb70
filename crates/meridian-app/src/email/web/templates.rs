//! Templates: the list, and the editor with a preview against a sample lead (Preview renders on
//! the server; `app.js` refreshes it while typing). Members see templates read-only; managers and
//! admins write and delete them.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use meridian_core::Permission;
use serde::Deserialize;

use super::{NoticeQuery, category_label, with_email_frames};
use crate::email::render::Rendered;
use crate::email::service::{self, Draft, TemplateInput};
use crate::email::store::TemplateRow;
use crate::http::ctx::Ctx;
use crate::http::error::AppError;
use crate::http::json::Query;
use crate::orgs::web::ConfirmPage;
use crate::state::AppState;
use crate::web::{FormErrors, Shell, WebCtx, WebResult, exact, relative, render};

/// The variables a template can use, as the editor's help box lists them.
const VARIABLES: [(&str, &str); 13] = [
    ("{{lead.first_name}}", "First name"),
    ("{{lead.last_name}}", "Last name"),
    ("{{lead.full_name}}", "First and last name"),
    ("{{lead.email}}", "Email address"),
    ("{{lead.phone}}", "Phone number"),
    ("{{lead.number}}", "Record number, like 00042"),
    ("{{lead.stage_label}}", "Current stage"),
    ("{{lead.custom_fields.KEY}}", "A custom field, by its key"),
    ("{{owner.name}}", "Who the lead is assigned to"),
    ("{{owner.email}}", "Their email address"),
    ("{{sender.name}}", "Who sends the email"),
    ("{{org.name}}", "Your organization"),
    ("{{unsubscribe_url}}", "The recipient's unsubscribe page"),
];

pub struct TemplateView {
    pub id: String,
    pub name: String,
    pub category: String,
    pub category_label: &'static str,
    pub subject: String,
    pub updated: String,
    pub updated_exact: String,
}

impl From<TemplateRow> for TemplateView {
    fn from(t: TemplateRow) -> Self {
        TemplateView {
            category_label: category_label(&t.category),
            updated: relative(t.updated_at),
            updated_exact: exact(t.updated_at),
            id: t.id,
            name: t.name,
            category: t.category,
            subject: t.subject,
        }
    }
}

#[derive(Template)]
#[template(path = "email_templates.html")]
struct TemplatesPage {
    shell: Shell,
    tab: &'static str,
    templates: Vec<TemplateView>,
}

pub async fn list_page(
    State(state): State<AppState>,
    web: WebCtx,
    Query(q): Query<NoticeQuery>,
) -> WebResult {
    let rows = service::templates(&state, &web.ctx).await?;
    let mut shell = web.shell(&state, "Email templates", "email").await?;
    shell.notice = match q.notice.as_deref() {
        Some("created") => Some("Template created.".to_owned()),
        Some("deleted") => Some("Template deleted.".to_owned()),
        _ => None,
    };
    Ok(render(&TemplatesPage {
        shell,
        tab: "templates",
        templates: rows.into_iter().map(TemplateView::from).collect(),
    }))
}

/// The editor's fields as typed (or as stored).
#[derive(Debug, Default, Deserialize)]
pub struct TemplateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    body_html: String,
    #[serde(default)]
    body_text: String,
    /// `preview` renders without saving; anything else saves.
    #[serde(default)]
    intent: String,
}

impl From<&TemplateRow> for TemplateForm {
    fn from(t: &TemplateRow) -> Self {
        TemplateForm {
            name: t.name.clone(),
            category: t.category.clone(),
            subject: t.subject.clone(),
            body_html: t.body_html.clone(),
            body_text: t.body_text.clone(),
            intent: String::new(),
        }
    }
}

impl TemplateForm {
    fn input(&self) -> TemplateInput {
        TemplateInput {
            name: Some(self.name.clone()),
            subject: Some(self.subject.clone()),
            body_html: Some(self.body_html.clone()),
            body_text: Some(self.body_text.clone()),
            category: Some(self.category.clone()),
        }
    }

    fn draft(&self) -> Draft {
        Draft {
            template_id: None,
            subject: Some(self.subject.clone()),
            body_html: Some(self.body_html.clone()),
            body_text: Some(self.body_text.clone()),
        }
    }
}

#[derive(Template)]
#[template(path = "email_template.html")]
struct EditorPage {
    shell: Shell,
    tab: &'static str,
    /// None for a new template.
    id: Option<String>,
    action: String,
    form: TemplateForm,
    categories: [(&'static str, &'static str); 2],
    errors: FormErrors,
    preview: Option<Rendered>,
    can_manage: bool,
    variables: [(&'static str, &'static str); 13],
    /// The custom-field keys of the organization's pipelines, for `lead.custom_fields.KEY`.
    custom_keys: Vec<String>,
    updated: String,
    updated_exact: String,
}

/// What the editor page shows besides the form.
struct Editing<'a> {
    existing: Option<&'a TemplateRow>,
    form: TemplateForm,
    errors: FormErrors,
    preview: Option<Rendered>,
    notice: Option<String>,
}

async fn editor_response(state: &AppState, web: &WebCtx, editing: Editing<'_>) -> WebResult {
    let mut tx = state.db.tenant_read(&web.ctx.tenant).await?;
    let pipelines = crate::pipelines::store::list(&mut tx).await?;
    tx.commit().await?;
    let mut custom_keys: Vec<String> = pipelines
        .iter()
        .flat_map(|p| p.spec.fields.iter().map(|f| f.key.clone()))
        .collect();
    custom_keys.sort();
    custom_keys.dedup();
    let title = editing.existing.map_or("New template", |t| t.name.as_str());
    let mut shell = web.shell(state, title, "email").await?;
    shell.notice = editing.notice;
    let status = if editing.errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let id = editing.existing.map(|t| t.id.clone());
    let page = EditorPage {
        shell,
        tab: "templates",
        action: id.as_ref().map_or_else(
            || "/email/templates/new".to_owned(),
            |id| format!("/email/templates/{id}"),
        ),
        id,
        form: editing.form,
        categories: [
            ("marketing", "Marketing"),
            ("transactional", "Transactional"),
        ],
        errors: editing.errors,
        preview: editing.preview,
        can_manage: web.ctx.role.allows(Permission::EmailManage),
        variables: VARIABLES,
        custom_keys,
        updated: editing
            .existing
            .map(|t| relative(t.updated_at))
            .unwrap_or_default(),
        updated_exact: editing
            .existing
            .map(|t| exact(t.updated_at))
            .unwrap_or_default(),
    };
    Ok(with_email_frames((status, render(&page)).into_response()))
}

/// A preview of `draft` with the sample lead, or the reasons it does not render.
async fn sample_preview(
    state: &AppState,
    ctx: &Ctx,
    draft: &Draft,
) -> Result<(Option<Rendered>, FormErrors), AppError> {
    match service::preview(state, ctx, draft, None).await {
        Ok(rendered) => Ok((Some(rendered), FormErrors::default())),
        Err(error) => Ok((None, FormErrors::from_error(error)?)),
    }
}

pub async fn new_page(State(state): State<AppState>, web: WebCtx) -> WebResult {
    web.ctx.require(Permission::EmailManage)?;
    let form = TemplateForm {
        category: "marketing".to_owned(),
        ..TemplateForm::default()
    };
    let editing = Editing {
        existing: None,
        form,
        errors: FormErrors::default(),
        preview: None,
        notice: None,
    };
    editor_response(&state, &web, editing).await
}

pub async fn new_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Form(form): Form<TemplateForm>,
) -> WebResult {
    web.ctx.require(Permission::EmailManage)?;
    if form.intent == "preview" {
        let (preview, errors) = sample_preview(&state, &web.ctx, &form.draft()).await?;
        let editing = Editing {
            existing: None,
            form,
            errors,
            preview,
            notice: None,
        };
        return editor_response(&state, &web, editing).await;
    }
    match service::create_template(&state, &web.ctx, form.input()).await {
        Ok(_) => Ok(Redirect::to("/email/templates?notice=created").into_response()),
        Err(error) => {
            let editing = Editing {
                existing: None,
                form,
                errors: FormErrors::from_error(error)?,
                preview: None,
                notice: None,
            };
            editor_response(&state, &web, editing).await
        }
    }
}

pub async fn edit_page(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> WebResult {
    let template = service::template(&state, &web.ctx, &id).await?;
    let form = TemplateForm::from(&template);
    // The same preview the Preview button and the live preview give (of the text, without the
    // unsubscribe footer a marketing template gets when sent), so it does not change on a click.
    let (preview, errors) = sample_preview(&state, &web.ctx, &form.draft()).await?;
    let editing = Editing {
        existing: Some(&template),
        form,
        errors,
        preview,
        notice: (q.notice.as_deref() == Some("saved")).then(|| "Template saved.".to_owned()),
    };
    editor_response(&state, &web, editing).await
}

pub async fn edit_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    Form(form): Form<TemplateForm>,
) -> WebResult {
    web.ctx.require(Permission::EmailManage)?;
    let template = service::template(&state, &web.ctx, &id).await?;
    let (errors, preview) = if form.intent == "preview" {
        let (preview, errors) = sample_preview(&state, &web.ctx, &form.draft()).await?;
        (errors, preview)
    } else {
        match service::update_template(&state, &web.ctx, &id, form.input()).await {
            Ok(_) => {
                return Ok(
                    Redirect::to(&format!("/email/templates/{id}?notice=saved")).into_response()
                );
            }
            Err(error) => (FormErrors::from_error(error)?, None),
        }
    };
    let editing = Editing {
        existing: Some(&template),
        form,
        errors,
        preview,
        notice: None,
    };
    editor_response(&state, &web, editing).await
}

pub async fn delete_confirm(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    web.ctx.require(Permission::EmailManage)?;
    let template = service::template(&state, &web.ctx, &id).await?;
    let shell = web.shell(&state, "Delete template", "email").await?;
    Ok(render(&ConfirmPage {
        shell,
        heading: format!("Delete the template \u{201c}{}\u{201d}?", template.name),
        body: "Nobody can pick it when writing to a lead any more. Emails already sent from it \
               keep their text in the outbox. This cannot be undone."
            .to_owned(),
        action: format!("/email/templates/{id}/delete"),
        confirm_label: "Delete template".to_owned(),
        cancel_href: format!("/email/templates/{id}"),
    }))
}

pub async fn delete_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    service::delete_template(&state, &web.ctx, &id).await?;
    Ok(Redirect::to("/email/templates?notice=deleted").into_response())
}
