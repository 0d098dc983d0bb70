use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::parse::SourceRow;
use super::plan::{OnDuplicate, Problem};
use super::service::{self, Report};
use super::store::ImportRow;
use super::{MAX_UPLOAD_BYTES, mapping};
use crate::http::ctx::{Credential, Ctx};
use crate::http::error::{AppError, AppResult, Problem as ProblemDoc};
use crate::http::json::{Json, Query};
use crate::http::middleware::{CSRF_FIELD, CSRF_HEADER};
use crate::http::pagination::{Page, PageQuery};
use crate::leads::export::{csv_record, download};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportCounts {
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportProgress {
    pub rows_done: i64,
    pub rows_total: i64,
    /// 0 to 100.
    pub percent: i64,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportOut {
    pub would_create: i64,
    pub would_update: i64,
    pub would_skip: i64,
    pub failed: i64,
    /// Rows with no value at all: skipped, not counted as failed.
    pub empty_rows: i64,
    pub errors_total: i64,
}

impl From<Report> for ReportOut {
    fn from(r: Report) -> Self {
        ReportOut {
            would_create: r.would_create,
            would_update: r.would_update,
            would_skip: r.would_skip,
            failed: r.failed,
            empty_rows: r.empty_rows,
            errors_total: r.errors_total,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportOut {
    pub id: String,
    pub pipeline_id: String,
    pub file_name: String,
    /// `csv` or `xlsx`.
    pub format: String,
    pub file_bytes: i64,
    /// `uploaded`, `validated`, `running`, `completed` or `failed`.
    pub status: String,
    pub columns: Vec<String>,
    /// Data rows in the file (empty rows not included).
    pub rows_total: i64,
    pub empty_rows: i64,
    /// `{column: target}`: the suggestion until a dry run, then the mapping it checked.
    pub mapping: BTreeMap<String, Option<String>>,
    pub on_duplicate: Option<String>,
    /// The dry run's counts, once validated.
    pub report: Option<ReportOut>,
    pub progress: ImportProgress,
    pub counts: ImportCounts,
    /// Why the last run stopped, when it did.
    pub error: Option<String>,
    pub uploaded_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

impl From<ImportRow> for ImportOut {
    fn from(row: ImportRow) -> Self {
        let percent = if row.rows_total > 0 {
            (row.rows_done * 100 / row.rows_total).clamp(0, 100)
        } else {
            0
        };
        ImportOut {
            mapping: service::mapping_of(&row),
            columns: serde_json::from_str(&row.columns).unwrap_or_default(),
            report: row
                .report
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok()),
            progress: ImportProgress {
                rows_done: row.rows_done,
                rows_total: row.rows_total,
                percent,
            },
            counts: ImportCounts {
                created: row.created,
                updated: row.updated,
                skipped: row.skipped,
                failed: row.failed,
            },
            id: row.id,
            pipeline_id: row.pipeline_id,
            file_name: row.file_name,
            format: row.file_format,
            file_bytes: row.file_bytes,
            status: row.status,
            rows_total: row.rows_total,
            empty_rows: row.empty_rows,
            on_duplicate: row.on_duplicate,
            error: row.error,
            uploaded_by: row.uploaded_by_label,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PreviewRow {
    /// The row number a spreadsheet shows (the header is row 1).
    pub row: i64,
    pub cells: Vec<String>,
    /// Why the row cannot be imported whatever the mapping.
    pub problem: Option<String>,
}

impl From<SourceRow> for PreviewRow {
    fn from(r: SourceRow) -> Self {
        PreviewRow {
            row: r.row,
            cells: r.cells,
            problem: r.problem,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TargetOut {
    /// What to put in a mapping: a lead field or `custom_fields.<key>`.
    pub value: String,
    pub label: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadOut {
    pub id: String,
    pub status: String,
    pub pipeline_id: String,
    pub file_name: String,
    pub format: String,
    pub columns: Vec<String>,
    pub preview_rows: Vec<PreviewRow>,
    pub rows_total: i64,
    pub empty_rows: i64,
    /// `{column: target or null}`.
    pub suggested_mapping: BTreeMap<String, Option<String>>,
    /// `saved` (the mapping last used for these headers in this pipeline) or `auto` (from the
    /// header names).
    pub mapping_source: String,
    /// Every target a column can have in this pipeline.
    pub targets: Vec<TargetOut>,
}

/// What a multipart upload carried.
pub struct UploadForm {
    pub pipeline_id: String,
    pub file_name: String,
    pub bytes: Vec<u8>,
}

fn multipart_error(error: MultipartError) -> AppError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge {
            limit: MAX_UPLOAD_BYTES,
        }
    } else {
        AppError::BadRequest(format!(
            "The upload could not be read as multipart/form-data: {}",
            error.body_text()
        ))
    }
}

/// Reads an upload's fields. These routes sit outside the app-wide CSRF guard (which reads only
/// urlencoded forms and would buffer the file), so a cookie session must prove itself here: with
/// the `X-CSRF-Token` header, or a `csrf_token` field sent before the file, as the web form does.
pub async fn read_upload(
    ctx: &Ctx,
    headers: &HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> AppResult<UploadForm> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_UPLOAD_BYTES) {
        return Err(AppError::PayloadTooLarge {
            limit: MAX_UPLOAD_BYTES,
        });
    }
    let mut multipart = multipart.map_err(|_| {
        AppError::BadRequest(
            "Send the file as multipart/form-data with the fields `file` and `pipeline_id`."
                .to_owned(),
        )
    })?;
    let expected = match &ctx.credential {
        Credential::Session { csrf_token, .. } => Some(csrf_token.as_str()),
        _ => None,
    };
    let csrf_ok = |sent: &str| {
        expected.is_none_or(|expected| crate::auth::tokens::constant_time_eq(sent, expected))
    };
    let mut csrf_passed = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(csrf_ok)
        || expected.is_none();
    let csrf_failure = || {
        AppError::Forbidden(
            "The form expired or did not come from Meridian (missing or invalid CSRF token). Reload the page and try again."
                .to_owned(),
        )
    };
    let mut pipeline_id = None;
    let mut file = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or("") {
            CSRF_FIELD => {
                let sent = field.text().await.map_err(multipart_error)?;
                csrf_passed |= csrf_ok(&sent);
            }
            "pipeline_id" => {
                pipeline_id = Some(
                    field
                        .text()
                        .await
                        .map_err(multipart_error)?
                        .trim()
                        .to_owned(),
                );
            }
            "file" => {
                if !csrf_passed {
                    return Err(csrf_failure());
                }
                let name = field.file_name().unwrap_or("upload.csv").to_owned();
                let bytes = field.bytes().await.map_err(multipart_error)?;
                file = Some((name, bytes.to_vec()));
            }
            _ => {}
        }
    }
    if !csrf_passed {
        return Err(csrf_failure());
    }
    let mut missing = meridian_core::Validation::new();
    if pipeline_id.as_deref().is_none_or(str::is_empty) {
        missing.add("pipeline_id", "is required");
    }
    if file.is_none() {
        missing.add("file", "is required: attach a CSV or XLSX file");
    }
    missing.finish().map_err(AppError::Validation)?;
    let (file_name, bytes) = file.unwrap_or_default();
    Ok(UploadForm {
        pipeline_id: pipeline_id.unwrap_or_default(),
        file_name,
        bytes,
    })
}

/// Uploads a CSV (UTF-8; comma, semicolon, tab or pipe separated) or XLSX file (its first sheet)
/// of leads for `pipeline_id` (managers and above). The first row names the columns. Answers the
/// columns, the first rows and a suggested mapping (the last one used for the same headers in
/// this pipeline, or one guessed from the names). Files above 256 MiB answer 413; unreadable
/// files (not UTF-8, no header, duplicate or empty column names, more than 500 columns, no data)
/// answer 422 naming the problem.
#[utoipa::path(post, path = "/api/v1/imports", tag = "imports",
    request_body(content_type = "multipart/form-data", description = "Fields `file` and `pipeline_id`."),
    responses((status = 201, body = UploadOut), (status = 403, body = ProblemDoc),
        (status = 413, body = ProblemDoc), (status = 422, body = ProblemDoc)))]
pub async fn upload(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> AppResult<(StatusCode, axum::Json<UploadOut>)> {
    ctx.require(meridian_core::Permission::LeadsTransfer)?;
    let form = read_upload(&ctx, &headers, multipart).await?;
    let uploaded = service::upload(
        &state.db,
        &ctx,
        &form.pipeline_id,
        &form.file_name,
        form.bytes,
    )
    .await?;
    let pipeline = uploaded.pipeline;
    let row = uploaded.import;
    Ok((
        StatusCode::CREATED,
        axum::Json(UploadOut {
            preview_rows: service::preview_of(&row)
                .into_iter()
                .map(PreviewRow::from)
                .collect(),
            suggested_mapping: service::mapping_of(&row),
            columns: serde_json::from_str(&row.columns).unwrap_or_default(),
            mapping_source: uploaded.mapping_source.to_owned(),
            targets: mapping::choices(&pipeline.spec)
                .into_iter()
                .map(|(value, label)| TargetOut { value, label })
                .collect(),
            id: row.id,
            status: row.status,
            pipeline_id: row.pipeline_id,
            file_name: row.file_name,
            format: row.file_format,
            rows_total: row.rows_total,
            empty_rows: row.empty_rows,
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// `{column: target}`: a lead field (`first_name`, `email`, ...), `custom_fields.<key>`, or
    /// null to ignore the column. Columns left out are ignored.
    pub mapping: BTreeMap<String, Option<String>>,
    /// What to do with rows whose email or phone matches an active lead or an earlier row
    /// (default `skip`).
    pub on_duplicate: Option<OnDuplicate>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProblemOut {
    pub row: i64,
    /// The file's column ("" for a problem of the whole row).
    pub column: String,
    pub value: String,
    pub message: String,
}

impl From<Problem> for ProblemOut {
    fn from(p: Problem) -> Self {
        ProblemOut {
            row: p.row,
            column: p.column,
            value: p.value,
            message: p.message,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ValidateOut {
    pub would_create: i64,
    pub would_update: i64,
    pub would_skip: i64,
    pub failed: i64,
    pub empty_rows: i64,
    pub errors_total: i64,
    /// The first 100 problems; `GET /imports/{id}/errors.csv` has them all.
    pub errors: Vec<ProblemOut>,
}

/// The dry run: applies the mapping and the same normalization as creating a lead to every row,
/// finds duplicates, and reports what a commit would do, changing no lead. The mapping is kept
/// for the commit and suggested for the next file with the same headers.
#[utoipa::path(post, path = "/api/v1/imports/{id}/validate", tag = "imports",
    params(("id" = String, Path)), request_body = ValidateRequest,
    responses((status = 200, body = ValidateOut), (status = 404, body = ProblemDoc),
        (status = 409, body = ProblemDoc), (status = 422, body = ProblemDoc)))]
pub async fn validate(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<ValidateRequest>,
) -> AppResult<axum::Json<ValidateOut>> {
    let on_duplicate = body.on_duplicate.unwrap_or(OnDuplicate::Skip);
    let (report, errors) =
        service::validate(&state.db, &ctx, &id, &body.mapping, on_duplicate).await?;
    Ok(axum::Json(ValidateOut {
        would_create: report.would_create,
        would_update: report.would_update,
        would_skip: report.would_skip,
        failed: report.failed,
        empty_rows: report.empty_rows,
        errors_total: report.errors_total,
        errors: errors.into_iter().map(ProblemOut::from).collect(),
    }))
}

/// Commits a validated import with the mapping of its dry run, in the background: 202, then
/// follow `GET /imports/{id}`. Rows are written in chunks, each with its checkpoint, so an import
/// interrupted by a restart continues where it stopped.
#[utoipa::path(post, path = "/api/v1/imports/{id}/commit", tag = "imports",
    params(("id" = String, Path)),
    responses((status = 202, body = ImportOut), (status = 404, body = ProblemDoc),
        (status = 409, body = ProblemDoc)))]
pub async fn commit(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<(StatusCode, axum::Json<ImportOut>)> {
    let run = service::start(&state.db, &ctx, &id).await?;
    service::spawn(state.db.clone(), run);
    let import = service::get(&state.db, &ctx, &id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(import.into())))
}

/// An import's status, progress and counts.
#[utoipa::path(get, path = "/api/v1/imports/{id}", tag = "imports",
    params(("id" = String, Path)),
    responses((status = 200, body = ImportOut), (status = 404, body = ProblemDoc)))]
pub async fn get(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<ImportOut>> {
    Ok(axum::Json(service::get(&state.db, &ctx, &id).await?.into()))
}

/// The organization's imports, newest first.
#[utoipa::path(get, path = "/api/v1/imports", tag = "imports", params(PageQuery),
    responses((status = 200, body = inline(Page<ImportOut>)), (status = 403, body = ProblemDoc)))]
pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<PageQuery>,
) -> AppResult<axum::Json<Page<ImportOut>>> {
    let page = query.parse()?;
    let rows = service::list(&state.db, &ctx, page.after_key(0), page.fetch_limit()).await?;
    Ok(axum::Json(
        Page::from_rows(rows, &page, |r| vec![r.id.clone()]).map(ImportOut::from),
    ))
}

const ERRORS_PAGE: i64 = 5000;

/// Every problem of the import's current report (the dry run's, or the commit's once it started)
/// as CSV: `row, column, value, message`.
#[utoipa::path(get, path = "/api/v1/imports/{id}/errors.csv", tag = "imports",
    params(("id" = String, Path)),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = ProblemDoc)))]
pub async fn errors_csv(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let first = service::errors(&state.db, &ctx, &id, None, ERRORS_PAGE).await?;
    let header = csv_record(&["row", "column", "value", "message"]);
    let start = futures_util::stream::once(async move { Ok::<_, AppError>(header) });
    let pages = futures_util::stream::unfold(
        (Some(first), state, ctx, id.clone()),
        |(page, state, ctx, id)| async move {
            let page = page?;
            let after = page.last().map(|e| (e.row_number, e.position));
            let mut body = Vec::new();
            for e in &page {
                body.extend(csv_record(&[
                    e.row_number.to_string().as_str(),
                    &e.column_name,
                    &e.value,
                    &e.message,
                ]));
            }
            let next = if page.len() < ERRORS_PAGE as usize {
                None
            } else {
                match service::errors(&state.db, &ctx, &id, after, ERRORS_PAGE).await {
                    Ok(next) => Some(next),
                    Err(error) => {
                        return Some((Err(error), (None, state, ctx, id)));
                    }
                }
            };
            Some((Ok(body), (next, state, ctx, id)))
        },
    );
    use futures_util::StreamExt as _;
    let short: String = id.chars().skip(id.len().saturating_sub(8)).collect();
    Ok(download(
        Body::from_stream(start.chain(pages)),
        "text/csv; charset=utf-8",
        &format!("import-errors-{short}.csv"),
    ))
}
