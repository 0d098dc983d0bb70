//! Lead export: every lead a list query matches (all pages, walked with the list's keyset cursor)
//! as CSV (streamed) or XLSX, with the columns asked for. Cells a spreadsheet would run as a
//! formula are neutralized, because exported data is typed by strangers (web forms, ad leads).

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use meridian_core::Permission;
use rust_xlsxwriter::{Format, Workbook};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use super::api::{display_number, query_pairs};
use super::query::ListQuery;
use super::service::{self, Lead};
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult, Problem};
use crate::pipelines::store::Pipeline;
use crate::state::AppState;

/// Leads read per query while exporting.
const EXPORT_PAGE: i64 = 1000;
/// An XLSX sheet holds 1,048,576 rows, one of them the header.
pub const XLSX_MAX_ROWS: i64 = 1_048_575;

/// Prefixes a cell that starts like a formula (`=`, `+`, `-`, `@`, tab, carriage return) with a
/// single quote, so spreadsheets show it as text instead of running it (CSV injection).
pub fn neutralize(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

/// An XLSX workbook of one sheet: a bold, frozen header row and text cells, neutralized.
pub fn xlsx_bytes(
    sheet: &str,
    header: &[String],
    rows: &[Vec<String>],
) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut workbook = Workbook::new();
    let worksheet = workbook.add_worksheet();
    let name: String = sheet
        .chars()
        .filter(|c| !matches!(c, '[' | ']' | ':' | '*' | '?' | '/' | '\\'))
        .take(31)
        .collect();
    if !name.trim().is_empty() {
        worksheet.set_name(name)?;
    }
    let bold = Format::new().set_bold();
    for (col, title) in (0_u16..).zip(header) {
        worksheet.write_string_with_format(0, col, neutralize(title), &bold)?;
        worksheet.set_column_width(col, 18)?;
    }
    worksheet.set_freeze_panes(1, 0)?;
    for (row, cells) in (1_u32..).zip(rows) {
        for (col, cell) in (0_u16..).zip(cells) {
            if !cell.is_empty() {
                worksheet.write_string(row, col, neutralize(cell))?;
            }
        }
    }
    workbook.save_to_buffer()
}

#[derive(Debug, Clone, PartialEq)]
enum Column {
    Id,
    Number,
    Name,
    Pipeline,
    Stage,
    FirstName,
    LastName,
    Email,
    Phone,
    State,
    Country,
    DateOfBirth,
    Source,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    UtmContent,
    UtmTerm,
    MetaAdId,
    MetaFormId,
    CampaignId,
    Assigned,
    AssignedTo,
    Tags,
    Priority,
    CreatedAt,
    UpdatedAt,
    ArchivedAt,
    StageEnteredAt,
    Custom { key: String, label: String },
}

const NAMED: [(&str, &str, Column); 29] = [
    ("id", "Id", Column::Id),
    ("number", "Number", Column::Number),
    ("name", "Name", Column::Name),
    ("pipeline", "Pipeline", Column::Pipeline),
    ("stage", "Stage", Column::Stage),
    ("first_name", "First name", Column::FirstName),
    ("last_name", "Last name", Column::LastName),
    ("email", "Email", Column::Email),
    ("phone", "Phone", Column::Phone),
    ("state", "State", Column::State),
    ("country", "Country", Column::Country),
    ("date_of_birth", "Date of birth", Column::DateOfBirth),
    ("source", "Source", Column::Source),
    ("utm_source", "UTM source", Column::UtmSource),
    ("utm_medium", "UTM medium", Column::UtmMedium),
    ("utm_campaign", "UTM campaign", Column::UtmCampaign),
    ("utm_content", "UTM content", Column::UtmContent),
    ("utm_term", "UTM term", Column::UtmTerm),
    ("meta_ad_id", "Meta ad id", Column::MetaAdId),
    ("meta_form_id", "Meta form id", Column::MetaFormId),
    ("campaign_id", "Campaign id", Column::CampaignId),
    ("assigned", "Assigned", Column::Assigned),
    ("assigned_to", "Assigned to (id)", Column::AssignedTo),
    ("tags", "Tags", Column::Tags),
    ("priority", "Priority", Column::Priority),
    ("created_at", "Created", Column::CreatedAt),
    ("updated_at", "Updated", Column::UpdatedAt),
    ("archived_at", "Archived", Column::ArchivedAt),
    ("stage_entered_at", "In stage since", Column::StageEnteredAt),
];

const DEFAULT_COLUMNS: [&str; 9] = [
    "number",
    "first_name",
    "last_name",
    "email",
    "phone",
    "stage",
    "source",
    "assigned",
    "created_at",
];

/// The export's columns: those asked for, or the list's (with the pipeline's custom fields when
/// the export is of one pipeline).
fn columns(
    asked: Option<&str>,
    pipeline_id: Option<&str>,
    pipelines: &[Pipeline],
) -> AppResult<Vec<(String, Column)>> {
    let pipeline = pipeline_id.and_then(|id| pipelines.iter().find(|p| p.id == id));
    let Some(asked) = asked.map(str::trim).filter(|a| !a.is_empty()) else {
        let mut out: Vec<(String, Column)> = DEFAULT_COLUMNS
            .iter()
            .filter_map(|name| NAMED.iter().find(|(n, _, _)| n == name))
            .map(|(_, label, c)| ((*label).to_owned(), c.clone()))
            .collect();
        for field in pipeline
            .map(|p| p.spec.fields.as_slice())
            .unwrap_or_default()
        {
            out.push((
                field.label.clone(),
                Column::Custom {
                    key: field.key.clone(),
                    label: field.label.clone(),
                },
            ));
        }
        return Ok(out);
    };
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for name in asked.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if let Some((_, label, c)) = NAMED.iter().find(|(n, _, _)| *n == name) {
            out.push(((*label).to_owned(), c.clone()));
            continue;
        }
        let key = name
            .strip_prefix("custom_fields.")
            .or_else(|| name.strip_prefix("cf."));
        let field = key.and_then(|key| {
            let mut candidates = pipeline.into_iter().chain(pipelines.iter());
            candidates.find_map(|p| p.spec.fields.iter().find(|f| f.key == key))
        });
        match field {
            Some(field) => out.push((
                field.label.clone(),
                Column::Custom {
                    key: field.key.clone(),
                    label: field.label.clone(),
                },
            )),
            None => unknown.push(name.to_owned()),
        }
    }
    if !unknown.is_empty() {
        let names: Vec<&str> = NAMED.iter().map(|(n, _, _)| *n).collect();
        return Err(AppError::field(
            "columns",
            format!(
                "{} {} not a column; use {} or custom_fields.<key>",
                unknown.join(", "),
                if unknown.len() == 1 { "is" } else { "are" },
                names.join(", ")
            ),
        ));
    }
    if out.is_empty() {
        return Err(AppError::field("columns", "names no column"));
    }
    Ok(out)
}

fn custom_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        Value::Array(items) => items.iter().map(custom_text).collect::<Vec<_>>().join("; "),
        Value::Object(_) => value.to_string(),
    }
}

fn cells(lead: &Lead, columns: &[(String, Column)], pipelines: &[Pipeline]) -> Vec<String> {
    let r = &lead.row;
    let time = |t: time::OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let pipeline = pipelines.iter().find(|p| p.id == r.pipeline_id);
    let custom: serde_json::Map<String, Value> =
        serde_json::from_str(&r.custom_fields).unwrap_or_default();
    columns
        .iter()
        .map(|(_, column)| match column {
            Column::Id => r.id.clone(),
            Column::Number => display_number(r.number),
            Column::Name => format!("{} {}", r.first_name, r.last_name)
                .trim()
                .to_owned(),
            Column::Pipeline => pipeline.map(|p| p.spec.name.clone()).unwrap_or_default(),
            Column::Stage => pipeline
                .and_then(|p| p.spec.stage(&r.stage))
                .map(|s| s.label.clone())
                .unwrap_or_else(|| r.stage.clone()),
            Column::FirstName => r.first_name.clone(),
            Column::LastName => r.last_name.clone(),
            Column::Email => opt(&r.email),
            Column::Phone => opt(&r.phone),
            Column::State => opt(&r.state),
            Column::Country => opt(&r.country),
            Column::DateOfBirth => opt(&r.date_of_birth),
            Column::Source => r.source.clone(),
            Column::UtmSource => opt(&r.utm_source),
            Column::UtmMedium => opt(&r.utm_medium),
            Column::UtmCampaign => opt(&r.utm_campaign),
            Column::UtmContent => opt(&r.utm_content),
            Column::UtmTerm => opt(&r.utm_term),
            Column::MetaAdId => opt(&r.meta_ad_id),
            Column::MetaFormId => opt(&r.meta_form_id),
            Column::CampaignId => opt(&r.campaign_id),
            Column::Assigned => opt(&r.assignee_name),
            Column::AssignedTo => opt(&r.assigned_to),
            Column::Tags => lead.tags.join(", "),
            Column::Priority => if r.is_priority { "yes" } else { "" }.to_owned(),
            Column::CreatedAt => time(r.created_at),
            Column::UpdatedAt => time(r.updated_at),
            Column::ArchivedAt => r.archived_at.map(time).unwrap_or_default(),
            Column::StageEnteredAt => time(r.stage_entered_at),
            Column::Custom { key, .. } => custom.get(key).map(custom_text).unwrap_or_default(),
        })
        .collect()
}

/// One page of the export in its own read transaction, and the query for the next page.
async fn next_page(
    state: &AppState,
    ctx: &Ctx,
    mut query: ListQuery,
) -> AppResult<(Vec<Lead>, Option<ListQuery>)> {
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let (leads, next) = service::page(&mut tx, &query).await?;
    tx.commit().await?;
    let more = match (next, leads.last()) {
        (Some(_), Some(last)) => {
            let key = query.cursor_after(&last.row);
            query.after = key.first().cloned().zip(key.get(1).cloned());
            Some(query)
        }
        _ => None,
    };
    Ok((leads, more))
}

fn slug(text: &str) -> String {
    let slug: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let slug = slug.trim_matches('-').to_owned();
    if slug.is_empty() {
        "leads".to_owned()
    } else {
        slug
    }
}

/// One CSV record, neutralized.
pub fn csv_record<S: AsRef<str>>(cells: &[S]) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
    let neutral: Vec<Cow<'_, str>> = cells.iter().map(|c| neutralize(c.as_ref())).collect();
    match writer.write_record(neutral.iter().map(|c| c.as_ref())) {
        Ok(()) => writer.into_inner().unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Exports every lead matching the list's filters (the parameters of `GET /api/v1/leads`;
/// pagination parameters are ignored) as `format=csv` (default, streamed) or `xlsx`, with
/// `columns=a,b,c` (standard names or `custom_fields.<key>`; default: the list's columns, plus
/// the pipeline's custom fields when `pipeline_id` is given). Managers and above.
#[utoipa::path(get, path = "/api/v1/leads/export", tag = "leads",
    params(
        ("format" = Option<String>, Query, description = "csv (default) or xlsx"),
        ("columns" = Option<String>, Query, description = "Comma-separated column names"),
        ("pipeline_id" = Option<String>, Query), ("stage" = Option<String>, Query),
        ("assigned_to" = Option<String>, Query), ("source" = Option<String>, Query),
        ("tag" = Option<String>, Query), ("q" = Option<String>, Query),
        ("archived" = Option<String>, Query), ("sort" = Option<String>, Query),
    ),
    responses((status = 200, content_type = "text/csv", body = String),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn export(
    State(state): State<AppState>,
    ctx: Ctx,
    RawQuery(raw): RawQuery,
) -> AppResult<Response> {
    ctx.require(Permission::LeadsTransfer)?;
    let params: Vec<(String, String)> = query_pairs(raw.as_deref())
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "cursor" | "limit"))
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    let xlsx = match param("format").as_deref() {
        None | Some("" | "csv") => false,
        Some("xlsx") => true,
        Some(_) => return Err(AppError::field("format", "must be csv or xlsx")),
    };
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let (mut query, pipelines) = service::parse_list(&mut tx, &ctx, &params).await?;
    let total = if xlsx {
        crate::leads::store::count(&mut tx, &query).await?
    } else {
        0
    };
    tx.commit().await?;
    if total > XLSX_MAX_ROWS {
        return Err(AppError::field(
            "format",
            format!(
                "an XLSX sheet holds at most {XLSX_MAX_ROWS} leads and {total} match; export as csv or narrow the filters"
            ),
        ));
    }
    let columns = columns(
        param("columns").as_deref(),
        query.pipeline_id.as_deref(),
        &pipelines,
    )?;
    query.limit = EXPORT_PAGE;
    query.after = None;
    let name = query
        .pipeline_id
        .as_deref()
        .and_then(|id| pipelines.iter().find(|p| p.id == id))
        .map(|p| p.spec.plural_label.clone())
        .unwrap_or_else(|| "Leads".to_owned());
    let date = time::OffsetDateTime::now_utc().date();
    let file_stem = format!(
        "{}-{:04}{:02}{:02}",
        slug(&name),
        date.year(),
        u8::from(date.month()),
        date.day()
    );
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    crate::audit::store::record(
        &mut tx,
        &ctx,
        crate::audit::store::Entry {
            action: "leads.exported",
            target_type: "lead",
            target_id: None,
            target_label: Some(&name),
            before: None,
            after: Some(json!({
                "format": if xlsx { "xlsx" } else { "csv" },
                "filters": params.iter().filter(|(k, _)| k != "format" && k != "columns")
                    .map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
                "columns": columns.iter().map(|(label, _)| label.clone()).collect::<Vec<_>>(),
            })),
        },
    )
    .await?;
    tx.commit().await?;
    let header: Vec<String> = columns.iter().map(|(label, _)| label.clone()).collect();

    if xlsx {
        let mut rows = Vec::new();
        let mut next = Some(query);
        while let Some(query) = next.take() {
            let (leads, more) = next_page(&state, &ctx, query).await?;
            rows.extend(leads.iter().map(|l| cells(l, &columns, &pipelines)));
            next = more;
        }
        let sheet = name.clone();
        let bytes = tokio::task::spawn_blocking(move || xlsx_bytes(&sheet, &header, &rows))
            .await
            .map_err(|e| AppError::Internal(e.into()))?
            .map_err(|e| AppError::Internal(e.into()))?;
        return Ok(download(
            Body::from(bytes),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            &format!("{file_stem}.xlsx"),
        ));
    }

    let first = futures_util::stream::once(async move { Ok::<_, AppError>(csv_record(&header)) });
    let rest = futures_util::stream::unfold(
        (Some(query), state, ctx, columns, pipelines),
        |(query, state, ctx, columns, pipelines)| async move {
            let query = query?;
            match next_page(&state, &ctx, query).await {
                Ok((leads, more)) => {
                    let mut chunk = Vec::new();
                    for lead in &leads {
                        chunk.extend(csv_record(&cells(lead, &columns, &pipelines)));
                    }
                    Some((Ok(chunk), (more, state, ctx, columns, pipelines)))
                }
                Err(error) => {
                    tracing::error!(error = ?error, "export stopped");
                    Some((Err(error), (None, state, ctx, columns, pipelines)))
                }
            }
        },
    );
    use futures_util::StreamExt as _;
    Ok(download(
        Body::from_stream(first.chain(rest)),
        "text/csv; charset=utf-8",
        &format!("{file_stem}.csv"),
    ))
}

/// A file download response.
pub fn download(body: Body, content_type: &'static str, file_name: &str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralized() {
        for cell in ["=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralize(cell), format!("'{cell}"));
        }
        assert_eq!(neutralize("Ada"), "Ada");
        assert_eq!(neutralize(""), "");
    }

    #[test]
    fn custom_values_read_as_typed() {
        assert_eq!(custom_text(&json!(5000.0)), "5000");
        assert_eq!(custom_text(&json!(2.5)), "2.5");
        assert_eq!(custom_text(&json!(["a", "b"])), "a; b");
        assert_eq!(custom_text(&json!(true)), "yes");
    }
}
