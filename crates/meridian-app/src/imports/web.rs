//! Pages: the import wizard. Upload (file and pipeline) -> map the columns, with the preview and
//! the dry run's report -> commit -> progress. Every step is a plain form; only the live
//! progress bar needs JavaScript (without it the page offers a refresh link).

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::Form;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use meridian_core::Permission;
use serde::Deserialize;

use super::MAX_UPLOAD_BYTES;
use super::api::read_upload;
use super::mapping;
use super::plan::OnDuplicate;
use super::service::{self, Report};
use super::store::ImportRow;
use crate::http::error::AppError;
use crate::http::json::Query;
use crate::pipelines::store::Pipeline;
use crate::state::AppState;
use crate::web::{FormErrors, WebCtx, WebResult, exact, relative, render};

/// Errors shown on the report card; errors.csv has them all.
const SHOWN_ERRORS: i64 = 50;

pub struct ImportView {
    pub id: String,
    pub file_name: String,
    pub pipeline_name: String,
    pub status: String,
    pub status_label: &'static str,
    pub rows_total: i64,
    pub rows_done: i64,
    pub percent: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
    pub empty_rows: i64,
    pub when: String,
    pub when_exact: String,
    pub error: String,
}

fn status_label(status: &str) -> &'static str {
    match status {
        "uploaded" => "Mapping",
        "validated" => "Checked",
        "running" => "Importing",
        "completed" => "Completed",
        "failed" => "Failed",
        _ => "Unknown",
    }
}

impl ImportView {
    fn new(row: &ImportRow, pipelines: &[Pipeline]) -> Self {
        ImportView {
            id: row.id.clone(),
            file_name: row.file_name.clone(),
            pipeline_name: pipelines
                .iter()
                .find(|p| p.id == row.pipeline_id)
                .map(|p| p.spec.name.clone())
                .unwrap_or_default(),
            status: row.status.clone(),
            status_label: status_label(&row.status),
            rows_total: row.rows_total,
            rows_done: row.rows_done,
            percent: if row.rows_total > 0 {
                (row.rows_done * 100 / row.rows_total).clamp(0, 100)
            } else {
                0
            },
            created: row.created,
            updated: row.updated,
            skipped: row.skipped,
            failed: row.failed,
            empty_rows: row.empty_rows,
            when: relative(row.created_at),
            when_exact: exact(row.created_at),
            error: row.error.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "import.html")]
struct UploadPage {
    shell: crate::web::Shell,
    pipelines: Vec<(String, String)>,
    pipeline_id: String,
    /// The chosen pipeline's name for its records ("Cases"), in the title and crumbs.
    plural_label: String,
    imports: Vec<ImportView>,
    errors: FormErrors,
    max_mb: usize,
}

#[derive(Debug, Deserialize)]
pub struct PageParams {
    pipeline_id: Option<String>,
}

async fn upload_page(
    state: &AppState,
    web: &WebCtx,
    pipeline_id: String,
    errors: FormErrors,
) -> WebResult {
    web.ctx.require(Permission::LeadsTransfer)?;
    let pipelines = crate::pipelines::service::list(state, &web.ctx).await?;
    let imports = service::list(&state.db, &web.ctx, None, 20).await?;
    let chosen = pipelines
        .iter()
        .find(|p| p.id == pipeline_id)
        .or(pipelines.first());
    let (pipeline_id, plural_label) = chosen.map_or_else(
        || (String::new(), "Leads".to_owned()),
        |p| (p.id.clone(), p.spec.plural_label.clone()),
    );
    let title = format!("Import {}", plural_label.to_lowercase());
    let mut shell = web.shell(state, &title, "leads").await?;
    shell.active_pipeline = pipeline_id.clone();
    let status = if errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = UploadPage {
        shell,
        imports: imports
            .iter()
            .map(|row| ImportView::new(row, &pipelines))
            .collect(),
        pipelines: pipelines.into_iter().map(|p| (p.id, p.spec.name)).collect(),
        pipeline_id,
        plural_label,
        errors,
        max_mb: MAX_UPLOAD_BYTES / (1024 * 1024),
    };
    Ok((status, render(&page)).into_response())
}

pub async fn page(
    State(state): State<AppState>,
    web: WebCtx,
    Query(params): Query<PageParams>,
) -> WebResult {
    upload_page(
        &state,
        &web,
        params.pipeline_id.unwrap_or_default(),
        FormErrors::default(),
    )
    .await
}

pub async fn upload_submit(
    State(state): State<AppState>,
    web: WebCtx,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> WebResult {
    web.ctx.require(Permission::LeadsTransfer)?;
    let form = match read_upload(&web.ctx, &headers, multipart).await {
        Ok(form) => form,
        Err(AppError::Forbidden(reason)) => return Err(AppError::Forbidden(reason).into()),
        Err(error) => {
            return upload_page(&state, &web, String::new(), FormErrors::from_error(error)?).await;
        }
    };
    let pipeline_id = form.pipeline_id.clone();
    match service::upload(
        &state.db,
        &web.ctx,
        &form.pipeline_id,
        &form.file_name,
        form.bytes,
    )
    .await
    {
        Ok(uploaded) => {
            Ok(Redirect::to(&format!("/leads/import/{}", uploaded.import.id)).into_response())
        }
        Err(error) => upload_page(&state, &web, pipeline_id, FormErrors::from_error(error)?).await,
    }
}

pub struct ColumnView {
    pub index: usize,
    pub name: String,
    pub selected: String,
    pub samples: String,
}

pub struct PreviewView {
    pub row: i64,
    pub cells: Vec<String>,
    pub problem: String,
}

pub struct ErrorView {
    pub row: i64,
    pub column: String,
    pub value: String,
    pub message: String,
}

#[derive(Template)]
#[template(path = "import_detail.html")]
struct DetailPage {
    shell: crate::web::Shell,
    import: ImportView,
    pipeline_id: String,
    plural_label: String,
    editable: bool,
    columns: Vec<ColumnView>,
    choices: Vec<(String, String)>,
    on_duplicate: String,
    preview_columns: Vec<String>,
    preview: Vec<PreviewView>,
    report: Option<Report>,
    shown_errors: Vec<ErrorView>,
    errors_total: i64,
    errors: FormErrors,
}

async fn detail_page(
    state: &AppState,
    web: &WebCtx,
    id: &str,
    chosen: Option<(BTreeMap<String, Option<String>>, String)>,
    errors: FormErrors,
) -> WebResult {
    let (import, pipeline) = service::get_with_pipeline(&state.db, &web.ctx, id).await?;
    let (shown, errors_total) =
        service::error_summary(&state.db, &web.ctx, id, SHOWN_ERRORS).await?;
    let columns: Vec<String> = serde_json::from_str(&import.columns).unwrap_or_default();
    let preview = service::preview_of(&import);
    let editable = matches!(import.status.as_str(), "uploaded" | "validated");
    let (mapping, on_duplicate) = chosen.unwrap_or_else(|| {
        (
            service::mapping_of(&import),
            import
                .on_duplicate
                .clone()
                .unwrap_or_else(|| OnDuplicate::Skip.as_str().to_owned()),
        )
    });
    let mut shell = web
        .shell(
            state,
            &format!("Import \u{201c}{}\u{201d}", import.file_name),
            "leads",
        )
        .await?;
    shell.active_pipeline = pipeline.id.clone();
    let status = if errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let report: Option<Report> = import
        .report
        .as_deref()
        .filter(|_| import.status == "validated")
        .and_then(|r| serde_json::from_str(r).ok());
    let page = DetailPage {
        shell,
        import: ImportView::new(&import, std::slice::from_ref(&pipeline)),
        pipeline_id: pipeline.id.clone(),
        plural_label: pipeline.spec.plural_label.clone(),
        editable,
        columns: columns
            .iter()
            .enumerate()
            .map(|(index, name)| ColumnView {
                index,
                name: name.clone(),
                selected: mapping.get(name).cloned().flatten().unwrap_or_default(),
                samples: preview
                    .iter()
                    .filter_map(|r| r.cells.get(index))
                    .filter(|c| !c.trim().is_empty())
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" \u{b7} "),
            })
            .collect(),
        choices: mapping::choices(&pipeline.spec),
        on_duplicate,
        preview_columns: columns.clone(),
        preview: preview
            .into_iter()
            .map(|r| PreviewView {
                row: r.row,
                cells: r.cells,
                problem: r.problem.unwrap_or_default(),
            })
            .collect(),
        report,
        shown_errors: shown
            .into_iter()
            .map(|e| ErrorView {
                row: e.row_number,
                column: e.column_name,
                value: e.value,
                message: e.message,
            })
            .collect(),
        errors_total,
        errors,
    };
    Ok((status, render(&page)).into_response())
}

pub async fn detail(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    detail_page(&state, &web, &id, None, FormErrors::default()).await
}

/// The mapping form: `on_duplicate` and one `col_<n>` select per column, by position (column
/// names can hold any character).
pub async fn validate_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> WebResult {
    let import = service::get(&state.db, &web.ctx, &id).await?;
    let columns: Vec<String> = serde_json::from_str(&import.columns).unwrap_or_default();
    let mapping: BTreeMap<String, Option<String>> = columns
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let target = form
                .get(&format!("col_{i}"))
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty());
            (name.clone(), target)
        })
        .collect();
    let on_duplicate_text = form.get("on_duplicate").cloned().unwrap_or_default();
    let result = match OnDuplicate::parse(&on_duplicate_text) {
        Some(on_duplicate) => {
            service::validate(&state.db, &web.ctx, &id, &mapping, on_duplicate).await
        }
        None => Err(AppError::field(
            "on_duplicate",
            "must be skip, update or create",
        )),
    };
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/leads/import/{id}#report")).into_response()),
        Err(error) => {
            let errors = FormErrors::from_error(error)?;
            detail_page(
                &state,
                &web,
                &id,
                Some((mapping, on_duplicate_text)),
                errors,
            )
            .await
        }
    }
}

pub async fn commit_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    match service::start(&state.db, &web.ctx, &id).await {
        Ok(run) => {
            service::spawn(state.db.clone(), run);
            Ok(Redirect::to(&format!("/leads/import/{id}")).into_response())
        }
        Err(error) => {
            let errors = FormErrors::from_error(error)?;
            detail_page(&state, &web, &id, None, errors).await
        }
    }
}
