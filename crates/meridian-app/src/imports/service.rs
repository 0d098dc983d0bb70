//! The import use cases: upload, dry run, commit (in chunks, each with its checkpoint in one
//! transaction), resume of a commit whose runner died, and the error report.
//!
//! Durability: the upload is decoded into chunks stored in the database (see `import_chunks` in
//! the migration for why there rather than on disk). A commit holds a lease on the import and
//! applies chunk after chunk; each chunk's leads, activity, errors, counts and the advance of
//! `next_chunk` commit together, guarded by the lease and the expected `next_chunk`. A runner that
//! dies leaves the import `running` with a heartbeat that stops moving; the worker takes it over
//! with a new lease and continues at `next_chunk`, so no row is imported twice or lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use meridian_core::Permission;
use meridian_core::crm::{ActivityKind, Picklist};
use meridian_db::{BulkWriter, Db, Engine, Tenant, TenantTx};
use serde_json::json;
use tokio::task::JoinHandle;

use super::mapping::{self, Mapping};
use super::parse::{self, SourceRow};
use super::plan::{ChunkPlan, OnDuplicate, Planner, Prepared, Problem, Rules, prepare};
use super::store::{self, ActivityInsert, Counts, ErrorRow, ImportRow, LeadInsert, NewImport};
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult};
use crate::leads::store::{
    index_committed_for_search, index_for_search, org_region, reserve_numbers, search_text,
};
use crate::pipelines::store::{self as pipelines, Pipeline};

/// Problems returned with a dry run's report; errors.csv has all of them.
pub const REPORT_ERRORS: usize = 100;
/// A running import whose runner has not checkpointed for this long is taken over.
pub const STALE_AFTER: Duration = Duration::from_secs(60);
/// Runs (the first and each take-over) before an import is given up as failed.
pub const MAX_ATTEMPTS: i64 = 5;
/// Times a chunk is retried when a concurrent write took an email it was about to use.
const CHUNK_TRIES: usize = 3;

/// A freshly uploaded import and the mapping suggested for it.
#[derive(Debug)]
pub struct Uploaded {
    pub import: ImportRow,
    /// `saved` (the last mapping used for these headers in this pipeline) or `auto`.
    pub mapping_source: &'static str,
    pub pipeline: Pipeline,
}

fn columns_of(import: &ImportRow) -> Vec<String> {
    serde_json::from_str(&import.columns).unwrap_or_default()
}

/// The stored mapping (`{column: target}`) of an import.
pub fn mapping_of(import: &ImportRow) -> BTreeMap<String, Option<String>> {
    import
        .mapping
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default()
}

/// The preview rows stored at upload.
pub fn preview_of(import: &ImportRow) -> Vec<SourceRow> {
    serde_json::from_str(&import.preview).unwrap_or_default()
}

async fn pipeline_for(tx: &mut TenantTx, id: &str) -> AppResult<Pipeline> {
    pipelines::find(tx, id)
        .await?
        .ok_or_else(|| AppError::field("pipeline_id", "is not a pipeline of this organization"))
}

/// Stores an upload and suggests a mapping: the one last used for the same headers in the same
/// pipeline, or one guessed from the header names.
pub async fn upload(
    db: &Db,
    ctx: &Ctx,
    pipeline_id: &str,
    file_name: &str,
    bytes: Vec<u8>,
) -> AppResult<Uploaded> {
    ctx.require(Permission::LeadsTransfer)?;
    let mut tx = db.tenant_read(&ctx.tenant).await?;
    let pipeline = pipeline_for(&mut tx, pipeline_id).await?;
    tx.commit().await?;
    let file_bytes = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
    let name = file_name.to_owned();
    let chunk_rows = parse::chunk_rows(db.engine());
    let parsed =
        tokio::task::spawn_blocking(move || parse::parse_upload(&name, &bytes, chunk_rows))
            .await
            .map_err(|e| AppError::Internal(e.into()))?
            .map_err(|e| AppError::field("file", e.0))?;
    let headers_key = mapping::headers_key(&parsed.columns);
    let mut tx = db.tenant(&ctx.tenant).await?;
    let saved = store::saved_mapping(&mut tx, &pipeline.id, &headers_key)
        .await?
        .and_then(|m| serde_json::from_str::<BTreeMap<String, Option<String>>>(&m).ok())
        .and_then(|m| mapping::check(&m, &parsed.columns, &pipeline.spec).ok());
    let (suggested, mapping_source) = match saved {
        Some(mapping) => (mapping, "saved"),
        None => (mapping::suggest(&parsed.columns, &pipeline.spec), "auto"),
    };
    let id = meridian_db::new_id();
    let columns = serde_json::to_string(&parsed.columns).unwrap_or_default();
    let preview = serde_json::to_string(&parsed.preview).unwrap_or_default();
    let suggested_json =
        serde_json::to_string(&suggested.to_map(&parsed.columns)).unwrap_or_default();
    store::insert(
        &mut tx,
        NewImport {
            id: &id,
            pipeline_id: &pipeline.id,
            file_name: file_name.chars().take(255).collect::<String>().as_str(),
            file_format: parsed.format.as_str(),
            file_bytes,
            columns: &columns,
            preview: &preview,
            rows_total: parsed.rows_total,
            empty_rows: parsed.empty_rows,
            chunk_count: parsed.chunks.len() as i64,
            uploaded_by: ctx.user_id(),
            uploaded_by_label: &ctx.actor_label(),
            mapping: &suggested_json,
        },
    )
    .await?;
    for (seq, chunk) in (0_i64..).zip(&parsed.chunks) {
        store::insert_chunk(&mut tx, &id, seq, chunk.row_count, &chunk.data).await?;
    }
    let import = store::find(&mut tx, &id).await?.ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Uploaded {
        import,
        mapping_source,
        pipeline,
    })
}

/// An import of the caller's organization.
pub async fn get(db: &Db, ctx: &Ctx, id: &str) -> AppResult<ImportRow> {
    ctx.require(Permission::LeadsTransfer)?;
    let mut tx = db.tenant_read(&ctx.tenant).await?;
    let import = store::find(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(import)
}

/// An import with its pipeline (for the mapping choices).
pub async fn get_with_pipeline(db: &Db, ctx: &Ctx, id: &str) -> AppResult<(ImportRow, Pipeline)> {
    ctx.require(Permission::LeadsTransfer)?;
    let mut tx = db.tenant_read(&ctx.tenant).await?;
    let import = store::find(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    let pipeline = pipelines::find(&mut tx, &import.pipeline_id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok((import, pipeline))
}

/// A page of the organization's imports, newest first, and whether more follow.
pub async fn list(
    db: &Db,
    ctx: &Ctx,
    before: Option<&str>,
    limit: i64,
) -> AppResult<Vec<ImportRow>> {
    ctx.require(Permission::LeadsTransfer)?;
    let mut tx = db.tenant_read(&ctx.tenant).await?;
    let rows = store::list(&mut tx, before, limit).await?;
    tx.commit().await?;
    Ok(rows)
}

/// The dry run's findings.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub would_create: i64,
    pub would_update: i64,
    pub would_skip: i64,
    pub failed: i64,
    pub empty_rows: i64,
    pub errors_total: i64,
}

/// Reads a chunk of an import and prepares its rows on the blocking pool, split across the
/// cores: normalizing (phone numbers above all) is most of an import's work.
async fn prepared_chunk(
    db: &Db,
    tenant: &Tenant,
    rules: &Arc<Rules>,
    import_id: &str,
    seq: i64,
) -> anyhow::Result<Vec<Prepared>> {
    let mut tx = db.tenant_read(tenant).await?;
    let data = store::chunk(&mut tx, import_id, seq)
        .await?
        .ok_or_else(|| anyhow::anyhow!("chunk {seq} of import {import_id} is missing"))?;
    tx.commit().await?;
    let rows = tokio::task::spawn_blocking(move || parse::read_chunk(&data)).await??;
    let parts = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let size = rows.len().div_ceil(parts).max(1);
    let mut rows = rows.into_iter();
    let mut tasks = Vec::with_capacity(parts);
    loop {
        let part: Vec<SourceRow> = rows.by_ref().take(size).collect();
        if part.is_empty() {
            break;
        }
        let rules = Arc::clone(rules);
        tasks.push(tokio::task::spawn_blocking(move || {
            part.into_iter()
                .map(|row| prepare(&rules, row))
                .collect::<Vec<_>>()
        }));
    }
    let mut prepared = Vec::with_capacity(size * tasks.len());
    for task in tasks {
        prepared.extend(task.await?);
    }
    Ok(prepared)
}

/// Starts preparing a chunk in the background, so it is ready when the previous one is written.
fn prefetch(
    db: &Db,
    tenant: &Tenant,
    rules: &Arc<Rules>,
    import_id: &str,
    seq: i64,
) -> JoinHandle<anyhow::Result<Vec<Prepared>>> {
    let (db, tenant, rules, import_id) = (
        db.clone(),
        tenant.clone(),
        Arc::clone(rules),
        import_id.to_owned(),
    );
    tokio::spawn(async move { prepared_chunk(&db, &tenant, &rules, &import_id, seq).await })
}

/// A chunk of a commit, ready for its transaction.
enum Work {
    /// Read and normalized; decided in the chunk's transaction, against what it reads there.
    Prepared(Vec<Prepared>),
    /// Decided already (see [`planned`]).
    Planned { rows: i64, plan: Arc<ChunkPlan> },
}

/// Starts preparing chunk `seq` of a commit in the background and, given the plan of the chunk
/// before it (written meanwhile), deciding it, so that the writer finds it ready.
fn work_ahead(
    db: &Db,
    run: &Run,
    rules: &Arc<Rules>,
    seq: i64,
    previous: Option<Arc<ChunkPlan>>,
) -> JoinHandle<anyhow::Result<Work>> {
    let (db, tenant, rules, import_id) = (
        db.clone(),
        run.tenant.clone(),
        Arc::clone(rules),
        run.import_id.clone(),
    );
    tokio::spawn(async move {
        let prepared = prepared_chunk(&db, &tenant, &rules, &import_id, seq).await?;
        match previous {
            Some(previous) => planned(&db, &tenant, &rules, prepared, Some(previous)).await,
            None => Ok(Work::Prepared(prepared)),
        }
    })
}

/// Decides a chunk outside its transaction: against the leads the database shows now (every
/// earlier chunk but the one being written, if any) and `unwritten`, that chunk's plan.
async fn planned(
    db: &Db,
    tenant: &Tenant,
    rules: &Arc<Rules>,
    prepared: Vec<Prepared>,
    unwritten: Option<Arc<ChunkPlan>>,
) -> anyhow::Result<Work> {
    let rows = prepared.len() as i64;
    let (emails, phones) = keys(&prepared);
    let mut tx = db.tenant_read(tenant).await?;
    let stored = store::active_by_keys(&mut tx, &emails, &phones).await?;
    tx.commit().await?;
    let rules = Arc::clone(rules);
    let plan = tokio::task::spawn_blocking(move || {
        Planner::commit().plan_after(&rules, prepared, stored, unwritten.as_deref())
    })
    .await?;
    Ok(Work::Planned {
        rows,
        plan: Arc::new(plan),
    })
}

/// Keys of the rows (for the duplicate lookup), de-duplicated.
fn keys(rows: &[Prepared]) -> (Vec<&str>, Vec<&str>) {
    let mut emails: Vec<&str> = rows.iter().filter_map(Prepared::email_key).collect();
    let mut phones: Vec<&str> = rows.iter().filter_map(Prepared::phone_key).collect();
    emails.sort_unstable();
    emails.dedup();
    phones.sort_unstable();
    phones.dedup();
    (emails, phones)
}

async fn rules_for(
    tx: &mut TenantTx,
    import: &ImportRow,
    mapping: &BTreeMap<String, Option<String>>,
    on_duplicate: OnDuplicate,
) -> AppResult<Rules> {
    let pipeline = pipelines::find(tx, &import.pipeline_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let columns = columns_of(import);
    let checked: Mapping =
        mapping::check(mapping, &columns, &pipeline.spec).map_err(AppError::Validation)?;
    Ok(Rules {
        pipeline_id: pipeline.id,
        spec: pipeline.spec,
        region: org_region(tx).await?,
        columns,
        mapping: checked,
        on_duplicate,
    })
}

/// The dry run: decides every row exactly as a commit would, writes nothing but the import's own
/// report (its errors, its mapping, and the mapping saved for the next file with these headers).
pub async fn validate(
    db: &Db,
    ctx: &Ctx,
    id: &str,
    mapping: &BTreeMap<String, Option<String>>,
    on_duplicate: OnDuplicate,
) -> AppResult<(Report, Vec<Problem>)> {
    ctx.require(Permission::LeadsTransfer)?;
    let mut tx = db.tenant_read(&ctx.tenant).await?;
    let import = store::find(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    if !matches!(import.status.as_str(), "uploaded" | "validated") {
        return Err(AppError::Conflict(format!(
            "The import is {}; a committed import cannot be checked again. Upload the file again to start over.",
            import.status
        )));
    }
    let rules = Arc::new(rules_for(&mut tx, &import, mapping, on_duplicate).await?);
    tx.commit().await?;

    let committed =
        || AppError::Conflict("The import was committed while it was being checked.".to_owned());
    let mut tx = db.tenant(&ctx.tenant).await?;
    if store::lock_uncommitted(&mut tx, id).await? == 0 {
        return Err(committed());
    }
    store::delete_errors(&mut tx, id).await?;
    tx.commit().await?;
    let mut report = Report {
        empty_rows: import.empty_rows,
        ..Report::default()
    };
    let mut shown: Vec<Problem> = Vec::new();
    let mut planner = Planner::dry_run();
    let mut next = (import.chunk_count > 0).then(|| prefetch(db, &ctx.tenant, &rules, id, 0));
    for seq in 0..import.chunk_count {
        let prepared = match next.take() {
            Some(task) => task.await.map_err(anyhow::Error::from)??,
            None => prepared_chunk(db, &ctx.tenant, &rules, id, seq).await?,
        };
        if seq + 1 < import.chunk_count {
            next = Some(prefetch(db, &ctx.tenant, &rules, id, seq + 1));
        }
        let mut tx = db.tenant_read(&ctx.tenant).await?;
        let (emails, phones) = keys(&prepared);
        let stored = store::active_by_keys(&mut tx, &emails, &phones).await?;
        tx.commit().await?;
        let plan = planner.plan(&rules, prepared, stored);
        report.would_create += plan.created();
        report.would_update += plan.updated;
        report.would_skip += plan.skipped;
        report.failed += plan.failed;
        report.errors_total += plan.problems.len() as i64;
        if !plan.problems.is_empty() {
            let mut tx = db.tenant(&ctx.tenant).await?;
            if store::lock_uncommitted(&mut tx, id).await? == 0 {
                return Err(committed());
            }
            store::insert_errors(&mut tx, id, &plan.problems).await?;
            tx.commit().await?;
            let room = REPORT_ERRORS.saturating_sub(shown.len());
            shown.extend(plan.problems.into_iter().take(room));
        }
    }
    let columns = columns_of(&import);
    let stored_mapping = serde_json::to_string(&rules.mapping.to_map(&columns)).unwrap_or_default();
    let mut tx = db.tenant(&ctx.tenant).await?;
    let report_json = serde_json::to_string(&report).unwrap_or_default();
    if store::set_validated(
        &mut tx,
        id,
        &stored_mapping,
        on_duplicate.as_str(),
        &report_json,
    )
    .await?
        == 0
    {
        return Err(committed());
    }
    store::save_mapping(
        &mut tx,
        &import.pipeline_id,
        &mapping::headers_key(&columns),
        &stored_mapping,
    )
    .await?;
    tx.commit().await?;
    Ok((report, shown))
}

/// A commit in progress: the import and the lease its runner holds.
#[derive(Debug, Clone)]
pub struct Run {
    pub tenant: Tenant,
    pub import_id: String,
    pub lease: String,
}

/// Starts the commit of a validated import with the mapping its dry run used. The rows are
/// written by [`run`] (in the background for the API, in the foreground for the CLI).
pub async fn start(db: &Db, ctx: &Ctx, id: &str) -> AppResult<Run> {
    ctx.require(Permission::LeadsTransfer)?;
    let mut tx = db.tenant(&ctx.tenant).await?;
    let import = store::find(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    if import.status != "validated" {
        return Err(AppError::Conflict(match import.status.as_str() {
            "uploaded" => "Check the file first (POST /imports/{id}/validate): the commit uses the mapping of its dry run.".to_owned(),
            other => format!("The import is already {other}."),
        }));
    }
    let pipeline = pipelines::find(&mut tx, &import.pipeline_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if pipeline.spec.first_stage().is_none() {
        return Err(AppError::Conflict("The pipeline has no stages.".to_owned()));
    }
    let lease = meridian_db::new_id();
    if store::start(&mut tx, id, &lease, ctx.user_id(), &ctx.actor_label()).await? == 0 {
        return Err(AppError::Conflict(
            "The import was started meanwhile.".to_owned(),
        ));
    }
    store::delete_errors(&mut tx, id).await?;
    crate::audit::store::record(
        &mut tx,
        ctx,
        crate::audit::store::Entry {
            action: "leads.import_started",
            target_type: "import",
            target_id: Some(id),
            target_label: Some(&import.file_name),
            before: None,
            after: Some(json!({
                "pipeline_id": import.pipeline_id, "rows": import.rows_total,
                "on_duplicate": import.on_duplicate, "mapping": mapping_of(&import),
            })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Run {
        tenant: ctx.tenant.clone(),
        import_id: id.to_owned(),
        lease,
    })
}

/// How far a commit has come.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub rows_done: i64,
    pub rows_total: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Every chunk is committed.
    Completed,
    /// It stopped after the number of chunks it was given; the import stays resumable.
    Paused,
    /// Another runner holds the import now (this one was presumed dead), or it is no longer
    /// running; nothing was written by this runner since.
    Lost,
}

enum ChunkOutcome {
    /// Committed; `search_pending` names the created leads whose search words are still to be
    /// written (by [`write_search_words`]), when the chunk left them out.
    Applied {
        counts: Counts,
        search_pending: Option<(i64, i64)>,
    },
    Lost,
}

/// What every chunk of a commit shares.
struct Commit<'a> {
    run: &'a Run,
    rules: &'a Rules,
    stage: &'a str,
    actor_user_id: Option<&'a str>,
    actor_label: &'a str,
    chunk_count: i64,
}

impl Commit<'_> {
    /// Applies one chunk in one transaction on the import's connection: the checkpoint first (it
    /// locks the import), then, unless the chunk was decided ahead, the duplicate lookup and the
    /// plan, then the writes and the counts. With `defer_search` the created leads' search words
    /// are only recorded as pending (migration 0015), for [`write_search_words`].
    async fn apply(
        &self,
        writer: &mut BulkWriter,
        seq: i64,
        work: Work,
        defer_search: bool,
    ) -> Result<ChunkOutcome, sqlx::Error> {
        let Commit {
            run,
            rules,
            stage,
            actor_user_id,
            actor_label,
            chunk_count,
        } = *self;
        let last = seq + 1 == chunk_count;
        let mut tx = writer.tenant(&run.tenant).await?;
        if store::advance(&mut tx, &run.import_id, &run.lease, seq).await? == 0 {
            return Ok(ChunkOutcome::Lost);
        }
        let (rows, plan) = match work {
            Work::Planned { rows, plan } => (rows, plan),
            Work::Prepared(prepared) => {
                let rows = prepared.len() as i64;
                let (emails, phones) = keys(&prepared);
                let stored = store::active_by_keys(&mut tx, &emails, &phones).await?;
                (
                    rows,
                    Arc::new(Planner::commit().plan(rules, prepared, stored)),
                )
            }
        };
        let now = meridian_db::now();
        let mut search_pending = None;
        if !plan.creates.is_empty() {
            let first = reserve_numbers(&mut tx, plan.created()).await?;
            let leads = plan
                .creates
                .iter()
                .zip(first..)
                .map(|(new, number)| LeadInsert {
                    id: &new.id,
                    number,
                    fields: &new.fields,
                    search_text: search_text(&new.fields, &[]),
                })
                .collect();
            store::insert_leads(
                &mut tx,
                &rules.pipeline_id,
                stage,
                actor_user_id,
                now,
                leads,
            )
            .await?;
            let last = first + plan.created() - 1;
            if defer_search {
                store::set_search_pending(&mut tx, &run.import_id, seq, Some((first, last)))
                    .await?;
                search_pending = Some((first, last));
            } else {
                index_for_search(&mut tx, first, last).await?;
            }
            let events = plan
                .creates
                .iter()
                .map(|new| ActivityInsert {
                    lead_id: new.id.clone(),
                    data: json!({"import_id": run.import_id, "row": new.row}).to_string(),
                })
                .collect();
            store::insert_activities(
                &mut tx,
                ActivityKind::Imported.as_str(),
                actor_user_id,
                actor_label,
                now,
                events,
            )
            .await?;
        }
        if !plan.updates.is_empty() {
            let ids: Vec<&str> = plan.updates.iter().map(|u| u.id.as_str()).collect();
            let notes = store::note_texts(&mut tx, &ids).await?;
            let updates = plan
                .updates
                .iter()
                .map(|u| {
                    let text = search_text(&u.fields, notes.get(&u.id).map_or(&[], Vec::as_slice));
                    (u.id.clone(), u.fields.clone(), text)
                })
                .collect();
            store::update_leads(&mut tx, now, updates).await?;
        }
        if !plan.edits.is_empty() {
            let events = plan
                .edits
                .iter()
                .map(|e| ActivityInsert {
                    lead_id: e.lead_id.clone(),
                    data: json!({"changes": e.changes, "import_id": run.import_id, "row": e.row})
                        .to_string(),
                })
                .collect();
            store::insert_activities(
                &mut tx,
                ActivityKind::InfoEdited.as_str(),
                actor_user_id,
                actor_label,
                now,
                events,
            )
            .await?;
        }
        store::insert_errors(&mut tx, &run.import_id, &plan.problems).await?;
        let counts = Counts {
            rows,
            created: plan.created(),
            updated: plan.updated,
            skipped: plan.skipped,
            failed: plan.failed,
        };
        store::add_counts(&mut tx, &run.import_id, &counts, last).await?;
        if last
            && let Some(user) = actor_user_id
            && let Some(import) = store::find(&mut tx, &run.import_id).await?
        {
            let note = crate::notifications::Note {
                kind: crate::notifications::Kind::ImportFinished,
                entity_type: "import",
                entity_id: import.id.clone(),
                title: format!("Import of {} finished", import.file_name),
                body: format!(
                    "{} created, {} updated, {} skipped, {} failed.",
                    import.created, import.updated, import.skipped, import.failed
                ),
                link: format!("/imports/{}", import.id),
                actor_label: None,
            };
            crate::notifications::notify(
                &mut tx,
                &[user.to_owned()],
                None,
                &note,
                crate::notifications::DEDUPE_WINDOW,
            )
            .await?;
        }
        writer.commit(tx).await?;
        Ok(ChunkOutcome::Applied {
            counts,
            search_pending,
        })
    }
}

/// Writes the search words of chunk `seq`'s created leads (`first..=last`) and clears the
/// chunk's pending mark, in one transaction.
async fn write_search_words(
    db: Db,
    tenant: Tenant,
    import_id: String,
    (seq, first, last): (i64, i64, i64),
) -> sqlx::Result<()> {
    let mut tx = db.tenant(&tenant).await?;
    index_committed_for_search(&mut tx, first, last).await?;
    store::set_search_pending(&mut tx, &import_id, seq, None).await?;
    tx.commit().await
}

/// Writes the search words a runner that stopped left pending (see migration 0015).
async fn drain_search_pending(db: &Db, tenant: &Tenant, import_id: &str) -> sqlx::Result<()> {
    let mut tx = db.tenant_read(tenant).await?;
    let pending = store::search_pending(&mut tx, import_id).await?;
    tx.commit().await?;
    for chunk in pending {
        write_search_words(db.clone(), tenant.clone(), import_id.to_owned(), chunk).await?;
    }
    Ok(())
}

/// The search words being written on a second connection while the next chunk is applied
/// (PostgreSQL): at most one chunk's at a time.
#[derive(Default)]
struct SearchWords {
    writing: Option<(i64, JoinHandle<sqlx::Result<()>>)>,
}

impl SearchWords {
    fn start(&mut self, db: &Db, run: &Run, seq: i64, (first, last): (i64, i64)) {
        let task = tokio::spawn(write_search_words(
            db.clone(),
            run.tenant.clone(),
            run.import_id.clone(),
            (seq, first, last),
        ));
        self.writing = Some((seq, task));
    }

    /// Waits for the words being written. A failure is noted on the import like a chunk's (the
    /// words stay pending, so the next runner writes them).
    async fn finish(&mut self, db: &Db, run: &Run) -> anyhow::Result<()> {
        let Some((seq, task)) = self.writing.take() else {
            return Ok(());
        };
        let failure = match task.await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => error.to_string(),
            Err(error) => error.to_string(),
        };
        Err(stop_with(
            db,
            run,
            format!("search words of chunk {} failed: {failure}", seq + 1),
        )
        .await)
    }
}

/// Notes why a run stopped on the import (shown with its progress) and returns it as the error.
async fn stop_with(db: &Db, run: &Run, message: String) -> anyhow::Error {
    if let Ok(mut tx) = db.tenant(&run.tenant).await {
        let noted = store::note_error(&mut tx, &run.import_id, &run.lease, &message).await;
        if noted.is_ok() {
            let _ = tx.commit().await;
        }
    }
    anyhow::anyhow!(message)
}

/// Commits an import's remaining chunks (at most `max_chunks` of them) under `run`'s lease,
/// reporting progress after each.
pub async fn run(
    db: &Db,
    run: &Run,
    max_chunks: Option<u64>,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> anyhow::Result<RunEnd> {
    let mut tx = db.tenant_read(&run.tenant).await?;
    let import = store::find(&mut tx, &run.import_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("import {} is gone", run.import_id))?;
    if import.status != "running" || import.lease.as_deref() != Some(run.lease.as_str()) {
        tx.commit().await?;
        return Ok(RunEnd::Lost);
    }
    tx.commit().await?;
    drain_search_pending(db, &run.tenant, &run.import_id).await?;
    let mut tx = db.tenant_read(&run.tenant).await?;
    let on_duplicate = import
        .on_duplicate
        .as_deref()
        .and_then(OnDuplicate::parse)
        .unwrap_or(OnDuplicate::Skip);
    let rules = rules_for(&mut tx, &import, &mapping_of(&import), on_duplicate).await;
    tx.commit().await?;
    // The pipeline changed since the dry run in a way no retry can fix: stop for good.
    let give_up = |message: String| async move {
        let mut tx = db.tenant(&run.tenant).await?;
        store::fail(&mut tx, &run.import_id, &message).await?;
        tx.commit().await?;
        Err::<RunEnd, anyhow::Error>(anyhow::anyhow!(message))
    };
    let rules = match rules {
        Ok(rules) => rules,
        Err(error) => {
            return give_up(format!(
                "The pipeline changed and the mapping no longer fits: {}",
                error.detail()
            ))
            .await;
        }
    };
    let Some(stage) = rules.spec.first_stage().map(|s| s.key.clone()) else {
        return give_up("The pipeline has no stages.".to_owned()).await;
    };
    let rules = Arc::new(rules);
    let actor_label = import.actor_label.clone().unwrap_or_default();
    let commit = Commit {
        run,
        rules: &rules,
        stage: &stage,
        actor_user_id: import.actor_user_id.as_deref(),
        actor_label: &actor_label,
        chunk_count: import.chunk_count,
    };
    let mut state = Progress {
        rows_done: import.rows_done,
        rows_total: import.rows_total,
        created: import.created,
        updated: import.updated,
        skipped: import.skipped,
        failed: import.failed,
    };
    progress(state);
    let mut next = None;
    // A chunk that only creates or skips is decided while the chunk before it is written (the
    // writer would otherwise wait for each chunk's duplicate lookup and planning). Not when rows
    // may update leads: an update must read the lead in the transaction that writes it.
    let plan_ahead = on_duplicate != OnDuplicate::Update;
    // On PostgreSQL a chunk's search words are written on a second connection while the next
    // chunk is applied. Not for the last chunk (the import completes with every word written),
    // nor when rows may update leads: an update's trigger must see the words it replaces.
    let overlap_search = db.engine() == Engine::Postgres && on_duplicate != OnDuplicate::Update;
    let mut words = SearchWords::default();
    // Every chunk on one connection that keeps the index pages it wrote cached (see `BulkWriter`).
    let mut writer = db.bulk_writer();
    for (done, seq) in (0_u64..).zip(import.next_chunk..import.chunk_count) {
        if max_chunks.is_some_and(|max| done >= max) {
            words.finish(db, run).await?;
            return Ok(RunEnd::Paused);
        }
        let defer_search = overlap_search && seq + 1 < import.chunk_count;
        if !defer_search {
            words.finish(db, run).await?;
        }
        let mut tries = 0;
        let mut current = next.take();
        let counts = loop {
            tries += 1;
            let work = match current.take() {
                Some(task) => task.await??,
                None => Work::Prepared(
                    prepared_chunk(db, &run.tenant, &rules, &run.import_id, seq).await?,
                ),
            };
            let work = match work {
                // The first chunk of a run, and the one after a retry, are decided here.
                Work::Prepared(prepared) if plan_ahead && tries == 1 => {
                    planned(db, &run.tenant, &rules, prepared, None).await?
                }
                work => work,
            };
            if tries == 1
                && seq + 1 < import.chunk_count
                && max_chunks.is_none_or(|max| done + 1 < max)
            {
                let previous = match &work {
                    Work::Planned { plan, .. } => Some(Arc::clone(plan)),
                    Work::Prepared(_) => None,
                };
                next = Some(work_ahead(db, run, &rules, seq + 1, previous));
            }
            match commit.apply(&mut writer, seq, work, defer_search).await {
                Ok(ChunkOutcome::Applied {
                    counts,
                    search_pending,
                }) => {
                    if let Some(range) = search_pending {
                        words.finish(db, run).await?;
                        words.start(db, run, seq, range);
                    }
                    break counts;
                }
                Ok(ChunkOutcome::Lost) => {
                    words.finish(db, run).await?;
                    return Ok(RunEnd::Lost);
                }
                // Someone else created a lead with one of these emails between our lookup and
                // our insert (PostgreSQL lets both transactions run): read again and retry.
                Err(error)
                    if tries < CHUNK_TRIES && meridian_db::unique_violation(&error).is_some() =>
                {
                    tracing::info!(import = %run.import_id, seq, "chunk raced another writer; retrying");
                    // The next chunk was decided against this chunk's first plan: it is read
                    // and decided again once this one is written.
                    if let Some(task) = next.take() {
                        task.abort();
                    }
                }
                Err(error) => {
                    // The words already being written belong to a committed chunk: let them
                    // land (or stay pending for the next runner) before reporting.
                    let _ = words.finish(db, run).await;
                    let message = format!(
                        "chunk {} of {} failed: {error}",
                        seq + 1,
                        import.chunk_count
                    );
                    return Err(stop_with(db, run, message).await);
                }
            }
        };
        state.rows_done += counts.rows;
        state.created += counts.created;
        state.updated += counts.updated;
        state.skipped += counts.skipped;
        state.failed += counts.failed;
        progress(state);
    }
    Ok(RunEnd::Completed)
}

/// Runs a commit in the background of this process. If the process dies, the worker of any node
/// resumes it (see [`resume_stale`]).
pub fn spawn(db: Db, commit: Run) -> JoinHandle<()> {
    tokio::spawn(async move {
        match run(&db, &commit, None, &|_| {}).await {
            Ok(end) => tracing::info!(import = %commit.import_id, ?end, "import run ended"),
            Err(error) => {
                tracing::error!(import = %commit.import_id, error = ?error, "import run failed; the worker will resume it")
            }
        }
    })
}

/// Takes over running imports whose runner stopped checkpointing `stale_after` ago (its process
/// died) and continues them in the background; imports that failed [`MAX_ATTEMPTS`] times are
/// marked failed instead. Returns the runs started.
pub async fn resume_stale(db: &Db, stale_after: Duration) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let cutoff = meridian_db::now() - time::Duration::try_from(stale_after)?;
    let mut tx = db.global().await?;
    let org_ids = crate::orgs::store::all_org_ids(&mut tx).await?;
    tx.commit().await?;
    let mut runs = Vec::new();
    for org_id in org_ids {
        let tenant = Tenant::for_verified_credentials(org_id, None);
        let mut tx = db.tenant(&tenant).await?;
        for (id, old_lease, attempts) in store::stale(&mut tx, cutoff).await? {
            if attempts >= MAX_ATTEMPTS {
                tracing::warn!(import = %id, attempts, "giving up on an import");
                // The chunks it applied stay: make their leads searchable.
                drain_search_pending(db, &tenant, &id).await?;
                store::fail(
                    &mut tx,
                    &id,
                    &format!("The import stopped {attempts} times without finishing."),
                )
                .await?;
                continue;
            }
            let lease = meridian_db::new_id();
            if store::take_over(&mut tx, &id, &old_lease, &lease, cutoff).await? == 1 {
                tracing::info!(import = %id, attempts = attempts + 1, "resuming an import");
                runs.push(Run {
                    tenant: tenant.clone(),
                    import_id: id,
                    lease,
                });
            }
        }
        tx.commit().await?;
    }
    Ok(runs.into_iter().map(|r| spawn(db.clone(), r)).collect())
}

/// A page of an import's errors, in row order, after `(row, position)`.
pub async fn errors(
    db: &Db,
    ctx: &Ctx,
    id: &str,
    after: Option<(i64, i64)>,
    limit: i64,
) -> AppResult<Vec<ErrorRow>> {
    ctx.require(Permission::LeadsTransfer)?;
    let mut tx = db.tenant_read(&ctx.tenant).await?;
    store::find(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    let rows = store::errors(&mut tx, id, after, limit).await?;
    tx.commit().await?;
    Ok(rows)
}

/// The first problems of an import's current report and how many there are.
pub async fn error_summary(
    db: &Db,
    ctx: &Ctx,
    id: &str,
    limit: i64,
) -> AppResult<(Vec<ErrorRow>, i64)> {
    ctx.require(Permission::LeadsTransfer)?;
    let mut tx = db.tenant_read(&ctx.tenant).await?;
    let rows = store::errors(&mut tx, id, None, limit).await?;
    let total = store::count_errors(&mut tx, id).await?;
    tx.commit().await?;
    Ok((rows, total))
}
