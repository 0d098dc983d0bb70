//! SQL for imports: the import record with its checkpoint, the stored file, the error report,
//! saved mappings, and the bulk lead writes of a commit (multi-row statements, so a chunk of
//! thousands of rows costs a handful of round trips).

use std::collections::HashMap;

use meridian_db::{Arg, Engine, Sql, TenantTx, sql};
use time::OffsetDateTime;

use super::plan::Problem;
use crate::leads::store::{FIELD_COLUMNS, LEAD_COLUMNS, LeadFields, LeadRow};

/// Bound parameters per statement: SQLite allows 32766 (PostgreSQL 65535).
const MAX_PARAMS: usize = 32_000;

pub const IMPORT_COLUMNS: &str = "id, pipeline_id, file_name, file_format, file_bytes, columns, \
    preview, rows_total, empty_rows, chunk_count, uploaded_by, uploaded_by_label, status, mapping, \
    on_duplicate, report, actor_user_id, actor_label, next_chunk, rows_done, created, updated, \
    skipped, failed, lease, heartbeat_at, attempts, error, created_at, updated_at, started_at, \
    finished_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ImportRow {
    pub id: String,
    pub pipeline_id: String,
    pub file_name: String,
    pub file_format: String,
    pub file_bytes: i64,
    pub columns: String,
    pub preview: String,
    pub rows_total: i64,
    pub empty_rows: i64,
    pub chunk_count: i64,
    pub uploaded_by: Option<String>,
    pub uploaded_by_label: String,
    pub status: String,
    pub mapping: Option<String>,
    pub on_duplicate: Option<String>,
    pub report: Option<String>,
    pub actor_user_id: Option<String>,
    pub actor_label: Option<String>,
    pub next_chunk: i64,
    pub rows_done: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
    pub lease: Option<String>,
    pub heartbeat_at: Option<OffsetDateTime>,
    pub attempts: i64,
    pub error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
}

pub struct NewImport<'a> {
    pub id: &'a str,
    pub pipeline_id: &'a str,
    pub file_name: &'a str,
    pub file_format: &'a str,
    pub file_bytes: i64,
    pub columns: &'a str,
    pub preview: &'a str,
    pub rows_total: i64,
    pub empty_rows: i64,
    pub chunk_count: i64,
    pub uploaded_by: Option<&'a str>,
    pub uploaded_by_label: &'a str,
    pub mapping: &'a str,
}

#[tracing::instrument(skip_all)]
pub async fn insert(tx: &mut TenantTx, import: NewImport<'_>) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "INSERT INTO imports (org_id, id, pipeline_id, file_name, file_format, file_bytes, columns, \
             preview, rows_total, empty_rows, chunk_count, uploaded_by, uploaded_by_label, mapping, \
             status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $15, 'uploaded', $14, $14)",
        )
        .bind(&org_id)
        .bind(import.id)
        .bind(import.pipeline_id)
        .bind(import.file_name)
        .bind(import.file_format)
        .bind(import.file_bytes)
        .bind(import.columns)
        .bind(import.preview)
        .bind(import.rows_total)
        .bind(import.empty_rows)
        .bind(import.chunk_count)
        .bind(import.uploaded_by)
        .bind(import.uploaded_by_label)
        .bind(meridian_db::now())
        .bind(import.mapping),
    )
    .await
    .map(|_| ())
}

#[tracing::instrument(skip_all)]
pub async fn insert_chunk(
    tx: &mut TenantTx,
    import_id: &str,
    seq: i64,
    row_count: i64,
    data: &str,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "INSERT INTO import_chunks (org_id, import_id, seq, row_count, data) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&org_id)
        .bind(import_id)
        .bind(seq)
        .bind(row_count)
        .bind(data),
    )
    .await
    .map(|_| ())
}

#[tracing::instrument(skip_all)]
pub async fn find(tx: &mut TenantTx, id: &str) -> sqlx::Result<Option<ImportRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE org_id = $1 AND id = $2"
        ))
        .bind(&org_id)
        .bind(id),
    )
    .await
}

/// A page of the organization's imports, newest first (ids are time-ordered).
#[tracing::instrument(skip_all)]
pub async fn list(
    tx: &mut TenantTx,
    before: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<ImportRow>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE org_id = $1 AND ($2 IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(&org_id)
        .bind(before)
        .bind(limit),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn chunk(tx: &mut TenantTx, import_id: &str, seq: i64) -> sqlx::Result<Option<String>> {
    let org_id = tx.org_id();
    let row: Option<(String,)> = tx
        .fetch_optional(
            sql("SELECT data FROM import_chunks WHERE org_id = $1 AND import_id = $2 AND seq = $3")
                .bind(&org_id)
                .bind(import_id)
                .bind(seq),
        )
        .await?;
    Ok(row.map(|(data,)| data))
}

#[tracing::instrument(skip_all)]
pub async fn saved_mapping(
    tx: &mut TenantTx,
    pipeline_id: &str,
    headers_key: &str,
) -> sqlx::Result<Option<String>> {
    let org_id = tx.org_id();
    let row: Option<(String,)> = tx
        .fetch_optional(
            sql(
                "SELECT mapping FROM import_mappings WHERE org_id = $1 AND pipeline_id = $2 \
                 AND headers_key = $3",
            )
            .bind(&org_id)
            .bind(pipeline_id)
            .bind(headers_key),
        )
        .await?;
    Ok(row.map(|(m,)| m))
}

#[tracing::instrument(skip_all)]
pub async fn save_mapping(
    tx: &mut TenantTx,
    pipeline_id: &str,
    headers_key: &str,
    mapping: &str,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "INSERT INTO import_mappings (org_id, pipeline_id, headers_key, mapping, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, pipeline_id, headers_key) \
             DO UPDATE SET mapping = $4, updated_at = $5",
        )
        .bind(&org_id)
        .bind(pipeline_id)
        .bind(headers_key)
        .bind(mapping)
        .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

/// Records a dry run's mapping and report, unless the import was committed meanwhile.
#[tracing::instrument(skip_all)]
pub async fn set_validated(
    tx: &mut TenantTx,
    id: &str,
    mapping: &str,
    on_duplicate: &str,
    report: &str,
) -> sqlx::Result<u64> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "UPDATE imports SET status = 'validated', mapping = $3, on_duplicate = $4, report = $5, \
             updated_at = $6 WHERE org_id = $1 AND id = $2 AND status IN ('uploaded', 'validated')",
        )
        .bind(&org_id)
        .bind(id)
        .bind(mapping)
        .bind(on_duplicate)
        .bind(report)
        .bind(meridian_db::now()),
    )
    .await
}

/// Locks an import that has not been committed (so a dry run's writes cannot interleave with a
/// commit starting); 0 when it has been.
#[tracing::instrument(skip_all)]
pub async fn lock_uncommitted(tx: &mut TenantTx, id: &str) -> sqlx::Result<u64> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "UPDATE imports SET updated_at = $3 WHERE org_id = $1 AND id = $2 \
             AND status IN ('uploaded', 'validated')",
        )
        .bind(&org_id)
        .bind(id)
        .bind(meridian_db::now()),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn delete_errors(tx: &mut TenantTx, import_id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("DELETE FROM import_errors WHERE org_id = $1 AND import_id = $2")
            .bind(&org_id)
            .bind(import_id),
    )
    .await
    .map(|_| ())
}

enum Token {
    Text(String),
    /// `$k`: the k-th shared value.
    Shared(usize),
    /// `#k`: the k-th value of a row (a column of the rows).
    Column(usize),
    /// `{rows}`: where the rows go.
    Rows,
}

fn tokens(template: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("{rows}") {
            out.push(Token::Text(std::mem::take(&mut text)));
            out.push(Token::Rows);
            rest = after;
            continue;
        }
        let digits = rest[1..]
            .find(|d: char| !d.is_ascii_digit())
            .unwrap_or(rest.len() - 1);
        if matches!(c, '$' | '#') && digits > 0 {
            let n = rest[1..=digits].parse().unwrap_or(0);
            out.push(Token::Text(std::mem::take(&mut text)));
            out.push(if c == '$' {
                Token::Shared(n)
            } else {
                Token::Column(n)
            });
            rest = &rest[1 + digits..];
        } else {
            text.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out.push(Token::Text(text));
    out
}

fn json_of(arg: &Arg) -> serde_json::Value {
    use serde_json::Value;
    match arg {
        Arg::Text(v) => v.clone().map_or(Value::Null, Value::String),
        Arg::Int(v) => v.map_or(Value::Null, Value::from),
        Arg::Bool(v) => v.map_or(Value::Null, Value::Bool),
        Arg::Time(v) => v
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .map_or(Value::Null, Value::String),
    }
}

/// A statement that writes many rows.
struct Bulk<'a> {
    /// The SQL, with `$k` for the k-th shared value, `{rows}` for the rows (as a table aliased
    /// `v`) and `#k` for their k-th column.
    text: &'a str,
    shared: Vec<Arg>,
    /// The PostgreSQL type of each column of the rows.
    types: &'a [&'a str],
}

/// Builds the statements that write `rows`, each engine the way it takes bulk data fastest.
///
/// PostgreSQL gets all rows as one JSON parameter read by `json_to_recordset`: statements with
/// thousands of parameters spend longer being planned than run. SQLite gets `VALUES` lists of at
/// most [`MAX_PARAMS`] anonymous `?` parameters: it finds numbered parameters by a linear scan
/// (`sqlite3_bind_parameter_name`), which makes binding thousands of `$n` quadratic.
fn bulk(engine: Engine, statement: Bulk<'_>, rows: Vec<Vec<Arg>>) -> Vec<Sql> {
    if rows.is_empty() {
        return Vec::new();
    }
    let tokens = tokens(statement.text);
    let shared = &statement.shared;
    match engine {
        Engine::Postgres => {
            let records: Vec<serde_json::Value> = rows
                .iter()
                .map(|row| {
                    serde_json::Value::Object(
                        row.iter()
                            .enumerate()
                            .map(|(i, arg)| (format!("c{}", i + 1), json_of(arg)))
                            .collect(),
                    )
                })
                .collect();
            let columns: Vec<String> = statement
                .types
                .iter()
                .enumerate()
                .map(|(i, t)| format!("c{} {t}", i + 1))
                .collect();
            let rows_param = shared.len() + 1;
            let mut text = String::new();
            for token in &tokens {
                match token {
                    Token::Text(t) => text.push_str(t),
                    Token::Shared(k) => text.push_str(&format!("${k}")),
                    Token::Column(k) => text.push_str(&format!("v.c{k}")),
                    Token::Rows => text.push_str(&format!(
                        "json_to_recordset(${rows_param}::json) AS v({})",
                        columns.join(", ")
                    )),
                }
            }
            let json = serde_json::Value::Array(records).to_string();
            vec![
                shared
                    .iter()
                    .cloned()
                    .chain(std::iter::once(Arg::Text(Some(json))))
                    .fold(sql(text), Sql::bind),
            ]
        }
        Engine::Sqlite => {
            let fixed = tokens
                .iter()
                .filter(|t| matches!(t, Token::Shared(_)))
                .count();
            let per_row = statement.types.len().max(1);
            let rows_per_statement = ((MAX_PARAMS - fixed) / per_row).max(1);
            rows.chunks(rows_per_statement)
                .map(|batch| {
                    let mut text = String::new();
                    let mut args = Vec::with_capacity(fixed + batch.len() * per_row);
                    for token in &tokens {
                        match token {
                            Token::Text(t) => text.push_str(t),
                            Token::Shared(k) => {
                                text.push('?');
                                args.push(shared[k - 1].clone());
                            }
                            Token::Column(k) => text.push_str(&format!("v.column{k}")),
                            Token::Rows => {
                                text.push_str("(VALUES ");
                                for (i, row) in batch.iter().enumerate() {
                                    if i > 0 {
                                        text.push_str(", ");
                                    }
                                    text.push('(');
                                    text.push_str(&vec!["?"; row.len()].join(", "));
                                    text.push(')');
                                    args.extend(row.iter().cloned());
                                }
                                text.push_str(") AS v");
                            }
                        }
                    }
                    args.into_iter().fold(sql(text), Sql::bind)
                })
                .collect()
        }
    }
}

#[tracing::instrument(skip_all)]
pub async fn insert_errors(
    tx: &mut TenantTx,
    import_id: &str,
    problems: &[Problem],
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    let mut positions: HashMap<i64, i64> = HashMap::new();
    let rows = problems.iter().map(|p| {
        let position = positions.entry(p.row).or_insert(0);
        *position += 1;
        vec![
            Arg::Int(Some(p.row)),
            Arg::Int(Some(*position)),
            Arg::Text(Some(p.column.clone())),
            Arg::Text(Some(p.value.clone())),
            Arg::Text(Some(p.message.clone())),
        ]
    });
    let statement = Bulk {
        text: "INSERT INTO import_errors (org_id, import_id, row_number, position, column_name, value, message) \
               SELECT $1, $2, #1, #2, #3, #4, #5 FROM {rows}",
        shared: vec![
            Arg::Text(Some(org_id)),
            Arg::Text(Some(import_id.to_owned())),
        ],
        types: &["bigint", "bigint", "text", "text", "text"],
    };
    for q in bulk(tx.engine(), statement, rows.collect()) {
        tx.execute(q).await?;
    }
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ErrorRow {
    pub row_number: i64,
    pub position: i64,
    pub column_name: String,
    pub value: String,
    pub message: String,
}

/// Errors in row order, after `(row, position)`.
#[tracing::instrument(skip_all)]
pub async fn errors(
    tx: &mut TenantTx,
    import_id: &str,
    after: Option<(i64, i64)>,
    limit: i64,
) -> sqlx::Result<Vec<ErrorRow>> {
    let org_id = tx.org_id();
    let (row, position) = after.unwrap_or((i64::MIN, i64::MIN));
    tx.fetch_all(
        sql(
            "SELECT row_number, position, column_name, value, message FROM import_errors \
             WHERE org_id = $1 AND import_id = $2 \
             AND (row_number > $3 OR (row_number = $3 AND position > $4)) \
             ORDER BY row_number, position LIMIT $5",
        )
        .bind(&org_id)
        .bind(import_id)
        .bind(row)
        .bind(position)
        .bind(limit),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn count_errors(tx: &mut TenantTx, import_id: &str) -> sqlx::Result<i64> {
    let org_id = tx.org_id();
    tx.fetch_count(
        sql("SELECT COUNT(*) FROM import_errors WHERE org_id = $1 AND import_id = $2")
            .bind(&org_id)
            .bind(import_id),
    )
    .await
}

/// Moves a validated import to `running` under a new lease.
#[tracing::instrument(skip_all)]
pub async fn start(
    tx: &mut TenantTx,
    id: &str,
    lease: &str,
    actor_user_id: Option<&str>,
    actor_label: &str,
) -> sqlx::Result<u64> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "UPDATE imports SET status = 'running', lease = $3, heartbeat_at = $5, attempts = 1, \
             actor_user_id = $4, actor_label = $6, started_at = $5, updated_at = $5, next_chunk = 0, \
             rows_done = 0, created = 0, updated = 0, skipped = 0, failed = 0, error = NULL \
             WHERE org_id = $1 AND id = $2 AND status = 'validated'",
        )
        .bind(&org_id)
        .bind(id)
        .bind(lease)
        .bind(actor_user_id)
        .bind(meridian_db::now())
        .bind(actor_label),
    )
    .await
}

/// The checkpoint: claims chunk `seq` for the holder of `lease`. Run first in a chunk's
/// transaction, it locks the import row, so of two runners only one can apply a chunk, and a
/// runner whose lease was taken over stops.
#[tracing::instrument(skip_all)]
pub async fn advance(tx: &mut TenantTx, id: &str, lease: &str, seq: i64) -> sqlx::Result<u64> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "UPDATE imports SET next_chunk = $4 + 1, heartbeat_at = $5, updated_at = $5 \
             WHERE org_id = $1 AND id = $2 AND lease = $3 AND next_chunk = $4 AND status = 'running'",
        )
        .bind(&org_id)
        .bind(id)
        .bind(lease)
        .bind(seq)
        .bind(meridian_db::now()),
    )
    .await
}

/// Records which of chunk `seq`'s new leads (`first..=last` lead numbers) still need their search
/// words written (migration 0015), in the chunk's transaction; `None` marks them written, in the
/// transaction that wrote them.
#[tracing::instrument(skip_all)]
pub async fn set_search_pending(
    tx: &mut TenantTx,
    import_id: &str,
    seq: i64,
    pending: Option<(i64, i64)>,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "UPDATE import_chunks SET search_pending_from = $4, search_pending_to = $5 \
             WHERE org_id = $1 AND import_id = $2 AND seq = $3",
        )
        .bind(&org_id)
        .bind(import_id)
        .bind(seq)
        .bind(pending.map(|(first, _)| first))
        .bind(pending.map(|(_, last)| last)),
    )
    .await
    .map(|_| ())
}

/// Chunks of an import whose leads still wait for their search words: (seq, first, last).
#[tracing::instrument(skip_all)]
pub async fn search_pending(
    tx: &mut TenantTx,
    import_id: &str,
) -> sqlx::Result<Vec<(i64, i64, i64)>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(
            "SELECT seq, search_pending_from, search_pending_to FROM import_chunks \
             WHERE org_id = $1 AND import_id = $2 AND search_pending_from IS NOT NULL ORDER BY seq",
        )
        .bind(&org_id)
        .bind(import_id),
    )
    .await
}

pub struct Counts {
    pub rows: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
}

#[tracing::instrument(skip_all)]
pub async fn add_counts(
    tx: &mut TenantTx,
    id: &str,
    counts: &Counts,
    completed: bool,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    let now = meridian_db::now();
    tx.execute(
        sql(
            "UPDATE imports SET rows_done = rows_done + $3, created = created + $4, \
             updated = updated + $5, skipped = skipped + $6, failed = failed + $7, \
             status = CASE WHEN $8 THEN 'completed' ELSE status END, \
             finished_at = CASE WHEN $8 THEN $9 ELSE finished_at END, \
             lease = CASE WHEN $8 THEN NULL ELSE lease END, updated_at = $9 \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(&org_id)
        .bind(id)
        .bind(counts.rows)
        .bind(counts.created)
        .bind(counts.updated)
        .bind(counts.skipped)
        .bind(counts.failed)
        .bind(completed)
        .bind(now),
    )
    .await?;
    if completed {
        // The rows are all in leads now; the copy of the file has done its job.
        tx.execute(
            sql("DELETE FROM import_chunks WHERE org_id = $1 AND import_id = $2")
                .bind(&org_id)
                .bind(id),
        )
        .await?;
    }
    Ok(())
}

/// Running imports whose runner has not reported since `cutoff`: (id, lease, attempts).
#[tracing::instrument(skip_all)]
pub async fn stale(
    tx: &mut TenantTx,
    cutoff: OffsetDateTime,
) -> sqlx::Result<Vec<(String, String, i64)>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(
            "SELECT id, COALESCE(lease, ''), attempts FROM imports WHERE org_id = $1 \
             AND status = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < $2) ORDER BY id",
        )
        .bind(&org_id)
        .bind(cutoff),
    )
    .await
}

/// Takes a stale import over with a new lease, if nobody else did first.
#[tracing::instrument(skip_all)]
pub async fn take_over(
    tx: &mut TenantTx,
    id: &str,
    old_lease: &str,
    new_lease: &str,
    cutoff: OffsetDateTime,
) -> sqlx::Result<u64> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "UPDATE imports SET lease = $4, heartbeat_at = $6, attempts = attempts + 1, updated_at = $6 \
             WHERE org_id = $1 AND id = $2 AND status = 'running' AND COALESCE(lease, '') = $3 \
             AND (heartbeat_at IS NULL OR heartbeat_at < $5)",
        )
        .bind(&org_id)
        .bind(id)
        .bind(old_lease)
        .bind(new_lease)
        .bind(cutoff)
        .bind(meridian_db::now()),
    )
    .await
}

/// Gives up on an import, keeping what was committed; the last noted error is kept after
/// `error`.
#[tracing::instrument(skip_all)]
pub async fn fail(tx: &mut TenantTx, id: &str, error: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    let now = meridian_db::now();
    tx.execute(
        sql(
            "UPDATE imports SET status = 'failed', error = CASE WHEN error IS NULL THEN $3 \
             ELSE $3 || ' Last error: ' || error END, lease = NULL, \
             finished_at = $4, updated_at = $4 WHERE org_id = $1 AND id = $2 AND status = 'running'",
        )
        .bind(&org_id)
        .bind(id)
        .bind(error)
        .bind(now),
    )
    .await?;
    tx.execute(
        sql("DELETE FROM import_chunks WHERE org_id = $1 AND import_id = $2")
            .bind(&org_id)
            .bind(id),
    )
    .await
    .map(|_| ())
}

/// Notes why the last attempt stopped, for the status page; the import stays resumable.
#[tracing::instrument(skip_all)]
pub async fn note_error(tx: &mut TenantTx, id: &str, lease: &str, error: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("UPDATE imports SET error = $4 WHERE org_id = $1 AND id = $2 AND lease = $3")
            .bind(&org_id)
            .bind(id)
            .bind(lease)
            .bind(error),
    )
    .await
    .map(|_| ())
}

/// `text` with `{org}` (before `{list}`) for the organization and `{list}` for `values`, bound as
/// each engine takes many values fastest (see [`bulk`]): one JSON array on PostgreSQL, anonymous
/// placeholders on SQLite.
fn with_list(engine: Engine, text: &str, org_id: &str, values: &[&str]) -> Sql {
    match engine {
        Engine::Postgres => {
            let text = text
                .replace("{org}", "$1")
                .replace("{list}", "SELECT json_array_elements_text($2::json)");
            sql(text)
                .bind(org_id)
                .bind(serde_json::Value::from(values.to_vec()).to_string())
        }
        Engine::Sqlite => {
            let text = text
                .replace("{org}", "?")
                .replace("{list}", &vec!["?"; values.len()].join(", "));
            values
                .iter()
                .fold(sql(text).bind(org_id), |q, value| q.bind(*value))
        }
    }
}

/// The active leads holding any of these emails or phone numbers, lowest number first.
#[tracing::instrument(skip_all)]
pub async fn active_by_keys(
    tx: &mut TenantTx,
    emails: &[&str],
    phones: &[&str],
) -> sqlx::Result<Vec<LeadRow>> {
    let org_id = tx.org_id();
    let mut found: Vec<LeadRow> = Vec::new();
    for (column, keys) in [("email", emails), ("phone", phones)] {
        for batch in keys.chunks(MAX_PARAMS - 1) {
            let text = match tx.engine() {
                // Each key drives one index probe. During an organization's first big import
                // the statistics still say it has no leads, so PostgreSQL estimated one row for
                // `org_id = '…'` and walked all of the organization's leads per key or per
                // chunk (seconds per chunk, growing with the import). The organization is
                // therefore compared through a sub-select, which the planner estimates like
                // any organization rather than from the stale statistics, and the lateral
                // subquery is fenced by OFFSET 0 so it is probed per key.
                Engine::Postgres => format!(
                    "SELECT {LEAD_COLUMNS} FROM ({{list}}) AS k(key) \
                     CROSS JOIN LATERAL (SELECT * FROM leads m WHERE m.org_id = (SELECT {{org}}::text) \
                       AND m.archived_at IS NULL AND m.{column} = k.key OFFSET 0) l"
                ),
                Engine::Sqlite => format!(
                    "SELECT {LEAD_COLUMNS} FROM leads l \
                     WHERE l.org_id = {{org}} AND l.archived_at IS NULL AND l.{column} IN ({{list}})"
                ),
            };
            let q = with_list(tx.engine(), &text, &org_id, batch);
            let rows: Vec<LeadRow> = tx.fetch_all(q).await?;
            for row in rows {
                if !found.iter().any(|f| f.id == row.id) {
                    found.push(row);
                }
            }
        }
    }
    found.sort_by_key(|r| r.number);
    Ok(found)
}

/// Every text column an import writes is `text` on PostgreSQL.
const FIELD_TYPE: &str = "text";

fn field_args(f: &LeadFields) -> [Arg; 17] {
    let text = |v: &str| Arg::Text(Some(v.to_owned()));
    let opt = |v: &Option<String>| Arg::Text(v.clone());
    [
        text(&f.first_name),
        text(&f.last_name),
        opt(&f.email),
        opt(&f.phone),
        opt(&f.state),
        opt(&f.country),
        opt(&f.date_of_birth),
        text(&f.source),
        opt(&f.utm_source),
        opt(&f.utm_medium),
        opt(&f.utm_campaign),
        opt(&f.utm_content),
        opt(&f.utm_term),
        opt(&f.meta_ad_id),
        opt(&f.meta_form_id),
        opt(&f.campaign_id),
        text(&f.custom_fields),
    ]
}

pub struct LeadInsert<'a> {
    pub id: &'a str,
    pub number: i64,
    pub fields: &'a LeadFields,
    pub search_text: String,
}

/// Inserts new leads of one pipeline stage, all created by the same actor at the same time.
#[tracing::instrument(skip_all)]
pub async fn insert_leads(
    tx: &mut TenantTx,
    pipeline_id: &str,
    stage: &str,
    created_by: Option<&str>,
    now: OffsetDateTime,
    leads: Vec<LeadInsert<'_>>,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    let rows = leads
        .into_iter()
        .map(|lead| {
            let mut args = vec![
                Arg::Text(Some(lead.id.to_owned())),
                Arg::Int(Some(lead.number)),
            ];
            args.extend(field_args(lead.fields));
            args.push(Arg::Text(Some(lead.search_text)));
            args
        })
        .collect();
    // Values every row shares are bound once per statement, not once per row.
    let text = format!(
        "INSERT INTO leads (org_id, id, number, pipeline_id, stage, assigned_to, created_by, is_priority, \
         {}, search_text, stage_entered_at, created_at, updated_at) \
         SELECT $1, #1, #2, $2, $3, NULL, $4, false, {}, $5, $5, $5 FROM {{rows}}",
        FIELD_COLUMNS.join(", "),
        (3..=FIELD_COLUMNS.len() + 3)
            .map(|i| format!("#{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut types = vec!["text", "bigint"];
    types.extend([FIELD_TYPE; FIELD_COLUMNS.len() + 1]);
    let statement = Bulk {
        text: &text,
        shared: vec![
            Arg::Text(Some(org_id)),
            Arg::Text(Some(pipeline_id.to_owned())),
            Arg::Text(Some(stage.to_owned())),
            Arg::Text(created_by.map(str::to_owned)),
            Arg::Time(Some(now)),
        ],
        types: &types,
    };
    for q in bulk(tx.engine(), statement, rows) {
        tx.execute(q).await?;
    }
    Ok(())
}

/// Writes new fields (and search text) to existing leads.
#[tracing::instrument(skip_all)]
pub async fn update_leads(
    tx: &mut TenantTx,
    now: OffsetDateTime,
    leads: Vec<(String, LeadFields, String)>,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    let assignments: Vec<String> = FIELD_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = #{}", i + 2))
        .chain(std::iter::once(format!(
            "search_text = #{}",
            FIELD_COLUMNS.len() + 2
        )))
        .collect();
    let rows = leads
        .into_iter()
        .map(|(id, fields, search)| {
            let mut args = vec![Arg::Text(Some(id))];
            args.extend(field_args(&fields));
            args.push(Arg::Text(Some(search)));
            args
        })
        .collect();
    let text = format!(
        "UPDATE leads SET {}, updated_at = $2 FROM {{rows}} WHERE leads.org_id = $1 AND leads.id = #1",
        assignments.join(", ")
    );
    let types = [FIELD_TYPE; FIELD_COLUMNS.len() + 2];
    let statement = Bulk {
        text: &text,
        shared: vec![Arg::Text(Some(org_id)), Arg::Time(Some(now))],
        types: &types,
    };
    for q in bulk(tx.engine(), statement, rows) {
        tx.execute(q).await?;
    }
    Ok(())
}

/// Note texts per lead, for the search text of updated leads.
#[tracing::instrument(skip_all)]
pub async fn note_texts(
    tx: &mut TenantTx,
    lead_ids: &[&str],
) -> sqlx::Result<HashMap<String, Vec<String>>> {
    let org_id = tx.org_id();
    let mut notes: HashMap<String, Vec<String>> = HashMap::new();
    for batch in lead_ids.chunks(MAX_PARAMS - 1) {
        let q = with_list(
            tx.engine(),
            "SELECT lead_id, body_text FROM notes WHERE org_id = {org} AND lead_id IN ({list}) \
             ORDER BY lead_id, id",
            &org_id,
            batch,
        );
        let rows: Vec<(String, String)> = tx.fetch_all(q).await?;
        for (lead, text) in rows {
            notes.entry(lead).or_default().push(text);
        }
    }
    Ok(notes)
}

pub struct ActivityInsert {
    pub lead_id: String,
    pub data: String,
}

/// Records one kind of event for many leads, by one actor at one time.
#[tracing::instrument(skip_all)]
pub async fn insert_activities(
    tx: &mut TenantTx,
    kind: &str,
    actor_user_id: Option<&str>,
    actor_label: &str,
    now: OffsetDateTime,
    events: Vec<ActivityInsert>,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    let rows = events
        .into_iter()
        .map(|e| {
            vec![
                Arg::Text(Some(meridian_db::new_id())),
                Arg::Text(Some(e.lead_id)),
                Arg::Text(Some(e.data)),
            ]
        })
        .collect();
    let statement = Bulk {
        text: "INSERT INTO lead_activity (org_id, id, lead_id, kind, actor_user_id, actor_label, data, created_at) \
               SELECT $1, #1, #2, $2, $3, $4, #3, $5 FROM {rows}",
        shared: vec![
            Arg::Text(Some(org_id)),
            Arg::Text(Some(kind.to_owned())),
            Arg::Text(actor_user_id.map(str::to_owned)),
            Arg::Text(Some(actor_label.to_owned())),
            Arg::Time(Some(now)),
        ],
        types: &["text", "text", "text"],
    };
    for q in bulk(tx.engine(), statement, rows) {
        tx.execute(q).await?;
    }
    Ok(())
}
