use meridian_db::{Arg, Engine, TenantTx, sql};
use time::OffsetDateTime;

use super::query::ListQuery;

/// Every stored column of a lead except the search text.
pub const LEAD_COLUMNS: &str = "l.id, l.number, l.pipeline_id, l.stage, l.first_name, l.last_name, \
    l.email, l.phone, l.state, l.country, l.date_of_birth, l.source, l.utm_source, l.utm_medium, \
    l.utm_campaign, l.utm_content, l.utm_term, l.meta_ad_id, l.meta_form_id, l.campaign_id, \
    l.assigned_to, l.created_by, l.is_priority, l.custom_fields, l.archived_at, l.archived_by, \
    l.stage_entered_at, l.created_at, l.updated_at, \
    (SELECT u.name FROM users u WHERE u.id = l.assigned_to) AS assignee_name";

/// The assignee's name is a subquery in [`LEAD_COLUMNS`] rather than a join: a sorted page then
/// looks names up for its own rows only, not for every lead the filters matched (a tenth of a
/// PostgreSQL name search that keeps 490 leads for a page of 50).
const FROM_LEADS: &str = "FROM leads l";

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LeadRow {
    pub id: String,
    pub number: i64,
    pub pipeline_id: String,
    pub stage: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub state: Option<String>,
    pub country: Option<String>,
    pub date_of_birth: Option<String>,
    pub source: String,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_content: Option<String>,
    pub utm_term: Option<String>,
    pub meta_ad_id: Option<String>,
    pub meta_form_id: Option<String>,
    pub campaign_id: Option<String>,
    pub assigned_to: Option<String>,
    pub created_by: Option<String>,
    pub is_priority: bool,
    pub custom_fields: String,
    pub archived_at: Option<OffsetDateTime>,
    pub archived_by: Option<String>,
    pub stage_entered_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub assignee_name: Option<String>,
}

/// The editable contact and attribution fields, already normalized.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeadFields {
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub state: Option<String>,
    pub country: Option<String>,
    pub date_of_birth: Option<String>,
    pub source: String,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_content: Option<String>,
    pub utm_term: Option<String>,
    pub meta_ad_id: Option<String>,
    pub meta_form_id: Option<String>,
    pub campaign_id: Option<String>,
    /// JSON object text.
    pub custom_fields: String,
}

impl LeadFields {
    pub fn of(row: &LeadRow) -> LeadFields {
        LeadFields {
            first_name: row.first_name.clone(),
            last_name: row.last_name.clone(),
            email: row.email.clone(),
            phone: row.phone.clone(),
            state: row.state.clone(),
            country: row.country.clone(),
            date_of_birth: row.date_of_birth.clone(),
            source: row.source.clone(),
            utm_source: row.utm_source.clone(),
            utm_medium: row.utm_medium.clone(),
            utm_campaign: row.utm_campaign.clone(),
            utm_content: row.utm_content.clone(),
            utm_term: row.utm_term.clone(),
            meta_ad_id: row.meta_ad_id.clone(),
            meta_form_id: row.meta_form_id.clone(),
            campaign_id: row.campaign_id.clone(),
            custom_fields: row.custom_fields.clone(),
        }
    }

    /// Binds the fields in the order of [`FIELD_COLUMNS`].
    fn bind_all(&self, q: meridian_db::Sql) -> meridian_db::Sql {
        q.bind(&self.first_name)
            .bind(&self.last_name)
            .bind(self.email.as_deref())
            .bind(self.phone.as_deref())
            .bind(self.state.as_deref())
            .bind(self.country.as_deref())
            .bind(self.date_of_birth.as_deref())
            .bind(&self.source)
            .bind(self.utm_source.as_deref())
            .bind(self.utm_medium.as_deref())
            .bind(self.utm_campaign.as_deref())
            .bind(self.utm_content.as_deref())
            .bind(self.utm_term.as_deref())
            .bind(self.meta_ad_id.as_deref())
            .bind(self.meta_form_id.as_deref())
            .bind(self.campaign_id.as_deref())
            .bind(&self.custom_fields)
    }
}

/// The lead columns a person or an import fills in, in the order [`LeadFields`] binds them.
pub const FIELD_COLUMNS: [&str; 17] = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "state",
    "country",
    "date_of_birth",
    "source",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "meta_ad_id",
    "meta_form_id",
    "campaign_id",
    "custom_fields",
];

/// What full-text search looks in: names, email, the phone number's trailing digits and the text
/// of the lead's notes, as normalized words (see `meridian_core::search`).
pub fn search_text(fields: &LeadFields, notes: &[String]) -> String {
    let mut parts: Vec<&str> = vec![
        &fields.first_name,
        &fields.last_name,
        fields.email.as_deref().unwrap_or(""),
    ];
    parts.extend(notes.iter().map(String::as_str));
    meridian_core::search::document(&parts, fields.phone.as_deref())
}

pub struct NewLead<'a> {
    pub id: &'a str,
    pub number: i64,
    pub pipeline_id: &'a str,
    pub stage: &'a str,
    pub fields: &'a LeadFields,
    pub assigned_to: Option<&'a str>,
    pub created_by: Option<&'a str>,
    pub is_priority: bool,
    pub now: OffsetDateTime,
}

/// Reserves `count` consecutive lead numbers and returns the first.
#[tracing::instrument(skip_all)]
pub async fn reserve_numbers(tx: &mut TenantTx, count: i64) -> sqlx::Result<i64> {
    let org_id = tx.org_id();
    let last: i64 = tx
        .fetch_count(
            sql(
                "INSERT INTO org_counters (org_id, name, value) VALUES ($1, 'lead_number', $2) \
                 ON CONFLICT (org_id, name) DO UPDATE SET value = org_counters.value + $2 \
                 RETURNING value",
            )
            .bind(&org_id)
            .bind(count),
        )
        .await?;
    Ok(last - count + 1)
}

#[tracing::instrument(skip_all)]
pub async fn insert(tx: &mut TenantTx, lead: NewLead<'_>) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    let placeholders: Vec<String> = (9..9 + FIELD_COLUMNS.len())
        .map(|i| format!("${i}"))
        .collect();
    let q = sql(format!(
        "INSERT INTO leads (org_id, id, number, pipeline_id, stage, assigned_to, created_by, is_priority, \
         {}, search_text, stage_entered_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {}, ${}, ${n}, ${n}, ${n})",
        FIELD_COLUMNS.join(", "),
        placeholders.join(", "),
        9 + FIELD_COLUMNS.len(),
        n = 10 + FIELD_COLUMNS.len(),
    ))
    .bind(&org_id)
    .bind(lead.id)
    .bind(lead.number)
    .bind(lead.pipeline_id)
    .bind(lead.stage)
    .bind(lead.assigned_to)
    .bind(lead.created_by)
    .bind(lead.is_priority);
    let q = lead
        .fields
        .bind_all(q)
        .bind(search_text(lead.fields, &[]))
        .bind(lead.now);
    tx.execute(q).await?;
    index_for_search(tx, lead.number, lead.number).await
}

/// Adds newly inserted leads (numbers `first..=last`) to full-text search, in one statement per
/// batch: per-row insert triggers made bulk imports several times slower on both engines.
/// Updates and deletes are kept in step by triggers (SQLite: migration 0004; PostgreSQL: 0018).
#[tracing::instrument(skip_all)]
pub async fn index_for_search(tx: &mut TenantTx, first: i64, last: i64) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    let text = match tx.engine() {
        Engine::Sqlite => {
            "INSERT INTO leads_fts (rowid, search_text) SELECT rowid, search_text FROM leads \
             WHERE org_id = $1 AND number BETWEEN $2 AND $3"
                .to_owned()
        }
        Engine::Postgres => add_postings(
            "SELECT org_id, number, search_text FROM leads \
             WHERE org_id = $1 AND number BETWEEN $2 AND $3",
        ),
    };
    tx.execute(sql(text).bind(&org_id).bind(first).bind(last))
        .await
        .map(|_| ())
}

/// Adds leads (numbers `first..=last`) that earlier transactions inserted to full-text search,
/// as [`index_for_search`] does, for an import that writes its words separately (see migration
/// 0015). The rows are locked for share, so an edit of one of them waits for its words and its
/// trigger then moves them. Adding a lead to a posting list twice leaves it there once, so words
/// an edit or an earlier attempt wrote first are harmless.
/// PostgreSQL only in practice: SQLite imports index inside the chunk.
#[tracing::instrument(skip_all)]
pub async fn index_committed_for_search(
    tx: &mut TenantTx,
    first: i64,
    last: i64,
) -> sqlx::Result<()> {
    if tx.engine() == Engine::Sqlite {
        return index_for_search(tx, first, last).await;
    }
    let org_id = tx.org_id();
    tx.execute(
        sql(add_postings(
            "SELECT org_id, number, search_text FROM leads \
             WHERE org_id = $1 AND number BETWEEN $2 AND $3 FOR SHARE",
        ))
        .bind(&org_id)
        .bind(first)
        .bind(last),
    )
    .await
    .map(|_| ())
}

/// PostgreSQL: adds the leads `batch` selects (org_id, number, search_text) to their words'
/// posting lists (migration 0018), one row per word and bucket of 1,024 numbers, taken in key
/// order so concurrent writers queue instead of deadlocking. Each list is sorted with
/// `intarray`'s `sort` and `uniq`: `array_agg(DISTINCT …)` sorts every group on its own and made
/// an import's words twice as slow.
fn add_postings(batch: &str) -> String {
    format!(
        "WITH batch AS ({batch}) \
         INSERT INTO lead_search_postings (org_id, term, bucket, numbers) \
         SELECT b.org_id, w.word, (b.number >> 10)::int, \
                uniq(sort(array_agg(b.number::int))) \
         FROM batch b, unnest(string_to_array(b.search_text, ' ')) AS w(word) \
         WHERE w.word <> '' \
         GROUP BY b.org_id, w.word, (b.number >> 10)::int \
         ORDER BY b.org_id, w.word COLLATE \"C\", (b.number >> 10)::int \
         ON CONFLICT (org_id, term, bucket) \
         DO UPDATE SET numbers = lead_search_postings.numbers | EXCLUDED.numbers"
    )
}

#[tracing::instrument(skip_all)]
pub async fn find(tx: &mut TenantTx, id: &str) -> sqlx::Result<Option<LeadRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(format!(
            "SELECT {LEAD_COLUMNS} {FROM_LEADS} WHERE l.org_id = $1 AND l.id = $2"
        ))
        .bind(&org_id)
        .bind(id),
    )
    .await
}

/// Active leads, in a pipeline and stage when given, by id (at most `limit`).
#[tracing::instrument(skip_all)]
pub async fn active_in(
    tx: &mut TenantTx,
    pipeline_id: Option<&str>,
    stage: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<LeadRow>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(format!(
            "SELECT {LEAD_COLUMNS} {FROM_LEADS} WHERE l.org_id = $1 AND l.archived_at IS NULL \
             AND ($2 IS NULL OR l.pipeline_id = $2) AND ($3 IS NULL OR l.stage = $3) \
             ORDER BY l.id LIMIT $4"
        ))
        .bind(&org_id)
        .bind(pipeline_id)
        .bind(stage)
        .bind(limit),
    )
    .await
}

/// The active (not archived) lead holding an email, other than `except`.
#[tracing::instrument(skip_all)]
pub async fn find_active_by_email(
    tx: &mut TenantTx,
    email: &str,
    except: Option<&str>,
) -> sqlx::Result<Option<String>> {
    let org_id = tx.org_id();
    let row: Option<(String,)> = tx
        .fetch_optional(
            sql(
                "SELECT id FROM leads WHERE org_id = $1 AND email = $2 AND archived_at IS NULL \
                 AND ($3 IS NULL OR id <> $3)",
            )
            .bind(&org_id)
            .bind(email)
            .bind(except),
        )
        .await?;
    Ok(row.map(|(id,)| id))
}

/// Writes the editable fields and refreshes the search text (with the lead's notes).
#[tracing::instrument(skip_all)]
pub async fn update_fields(tx: &mut TenantTx, id: &str, fields: &LeadFields) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    let notes = note_texts(tx, id).await?;
    let assignments: Vec<String> = FIELD_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 3))
        .collect();
    let q = sql(format!(
        "UPDATE leads SET {}, search_text = ${}, updated_at = ${} WHERE org_id = $1 AND id = $2",
        assignments.join(", "),
        3 + FIELD_COLUMNS.len(),
        4 + FIELD_COLUMNS.len(),
    ))
    .bind(&org_id)
    .bind(id);
    let q = fields
        .bind_all(q)
        .bind(search_text(fields, &notes))
        .bind(meridian_db::now());
    tx.execute(q).await.map(|_| ())
}

/// Recomputes the search text after the lead's notes changed.
#[tracing::instrument(skip_all)]
pub async fn refresh_search_text(tx: &mut TenantTx, lead: &LeadRow) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    let notes = note_texts(tx, &lead.id).await?;
    tx.execute(
        sql("UPDATE leads SET search_text = $3 WHERE org_id = $1 AND id = $2")
            .bind(&org_id)
            .bind(&lead.id)
            .bind(search_text(&LeadFields::of(lead), &notes)),
    )
    .await
    .map(|_| ())
}

async fn note_texts(tx: &mut TenantTx, lead_id: &str) -> sqlx::Result<Vec<String>> {
    let org_id = tx.org_id();
    let rows: Vec<(String,)> = tx
        .fetch_all(
            sql("SELECT body_text FROM notes WHERE org_id = $1 AND lead_id = $2 ORDER BY id")
                .bind(&org_id)
                .bind(lead_id),
        )
        .await?;
    Ok(rows.into_iter().map(|(t,)| t).collect())
}

#[tracing::instrument(skip_all)]
pub async fn set_stage(tx: &mut TenantTx, id: &str, stage: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    let now = meridian_db::now();
    tx.execute(
        sql(
            "UPDATE leads SET stage = $3, stage_entered_at = $4, updated_at = $4 \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(&org_id)
        .bind(id)
        .bind(stage)
        .bind(now),
    )
    .await
    .map(|_| ())
}

#[tracing::instrument(skip_all)]
pub async fn set_pipeline(
    tx: &mut TenantTx,
    id: &str,
    pipeline_id: &str,
    stage: &str,
    custom_fields: &str,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "UPDATE leads SET pipeline_id = $3, stage = $4, custom_fields = $5, stage_entered_at = $6, \
             updated_at = $6 WHERE org_id = $1 AND id = $2",
        )
        .bind(&org_id)
        .bind(id)
        .bind(pipeline_id)
        .bind(stage)
        .bind(custom_fields)
        .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

#[tracing::instrument(skip_all)]
pub async fn set_assignee(tx: &mut TenantTx, id: &str, user_id: Option<&str>) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("UPDATE leads SET assigned_to = $3, updated_at = $4 WHERE org_id = $1 AND id = $2")
            .bind(&org_id)
            .bind(id)
            .bind(user_id)
            .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

#[tracing::instrument(skip_all)]
pub async fn set_priority(tx: &mut TenantTx, id: &str, is_priority: bool) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("UPDATE leads SET is_priority = $3, updated_at = $4 WHERE org_id = $1 AND id = $2")
            .bind(&org_id)
            .bind(id)
            .bind(is_priority)
            .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

/// Archives (`by` set) or restores (`by` None) a lead. The stage is untouched, so a restored
/// lead is back where it was.
#[tracing::instrument(skip_all)]
pub async fn set_archived(tx: &mut TenantTx, id: &str, by: Option<&str>) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    let now = meridian_db::now();
    let archived_at = by.map(|_| now);
    tx.execute(
        sql(
            "UPDATE leads SET archived_at = $3, archived_by = $4, updated_at = $5 \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(&org_id)
        .bind(id)
        .bind(archived_at)
        .bind(by)
        .bind(now),
    )
    .await
    .map(|_| ())
}

#[tracing::instrument(skip_all)]
pub async fn delete(tx: &mut TenantTx, id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("DELETE FROM leads WHERE org_id = $1 AND id = $2")
            .bind(&org_id)
            .bind(id),
    )
    .await
    .map(|_| ())
}

#[tracing::instrument(skip_all)]
pub async fn tags_of(tx: &mut TenantTx, ids: &[&str]) -> sqlx::Result<Vec<(String, String)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let org_id = tx.org_id();
    let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
    let mut q = sql(format!(
        "SELECT lead_id, tag FROM lead_tags WHERE org_id = $1 AND lead_id IN ({}) ORDER BY lead_id, tag",
        placeholders.join(", ")
    ))
    .bind(&org_id);
    for id in ids {
        q = q.bind(*id);
    }
    tx.fetch_all(q).await
}

/// Replaces a lead's tags.
#[tracing::instrument(skip_all)]
pub async fn set_tags(tx: &mut TenantTx, id: &str, tags: &[String]) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("DELETE FROM lead_tags WHERE org_id = $1 AND lead_id = $2")
            .bind(&org_id)
            .bind(id),
    )
    .await?;
    for tag in tags {
        tx.execute(
            sql("INSERT INTO lead_tags (org_id, lead_id, tag) VALUES ($1, $2, $3)")
                .bind(&org_id)
                .bind(id)
                .bind(tag),
        )
        .await?;
    }
    Ok(())
}

/// One page of a filtered, sorted list.
///
/// A PostgreSQL search listed by number first computes its matching lead numbers, then reads
/// the page from the first `SEARCH_WINDOW` times `limit` of them past the cursor: every match it
/// skips sorts after those, so if a page's worth of them pass the other filters they are the
/// page. Otherwise, or when every match fits the window, the page is read from all of them. A
/// name search keeps hundreds of leads for a page of 50, and reading them was half its cost.
#[tracing::instrument(skip_all)]
pub async fn list(tx: &mut TenantTx, query: &ListQuery, limit: i64) -> sqlx::Result<Vec<LeadRow>> {
    let Some((builder, text)) = query.search_numbers_sql(tx.engine(), tx.org_id()) else {
        return list_page(tx, query, limit).await;
    };
    let text: String = tx.fetch_one::<(String,)>(builder.into_sql(text)).await?.0;
    let after = query.after_number();
    let mut numbers: Vec<i32> = text
        .split(',')
        .filter_map(|n| n.parse().ok())
        .filter(|&n: &i32| {
            after.is_none_or(|after| {
                let n = i64::from(n);
                if query.descending {
                    n < after
                } else {
                    n > after
                }
            })
        })
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    if query.descending {
        numbers.reverse();
    }
    let page = usize::try_from(limit).unwrap_or(0);
    let window = page.saturating_mul(SEARCH_WINDOW);
    if numbers.len() > window {
        let mut first = query.clone();
        first.search_numbers = Some(numbers[..window].to_vec());
        let rows = list_page(tx, &first, limit).await?;
        if rows.len() >= page {
            return Ok(rows);
        }
    }
    let mut every = query.clone();
    every.search_numbers = Some(numbers);
    list_page(tx, &every, limit).await
}

/// How many pages' worth of a search's matches a first read of a page takes (see [`list`]).
const SEARCH_WINDOW: usize = 4;

async fn list_page(tx: &mut TenantTx, query: &ListQuery, limit: i64) -> sqlx::Result<Vec<LeadRow>> {
    let mut builder = query.where_clause(tx.engine(), tx.org_id());
    let (order, keyset) = query.order_and_keyset(&mut builder, tx.engine());
    let text = format!(
        "SELECT {LEAD_COLUMNS} {FROM_LEADS} WHERE {}{keyset} ORDER BY {order} LIMIT {limit}",
        builder.conditions()
    );
    tx.fetch_all(builder.into_sql(text)).await
}

/// How many leads match a list's filters (ignoring pagination).
#[tracing::instrument(skip_all)]
pub async fn count(tx: &mut TenantTx, query: &ListQuery) -> sqlx::Result<i64> {
    if query.by_stage_only() {
        let by_stage = count_by_stage(tx, query).await?;
        return Ok(by_stage.iter().map(|s| s.count).sum());
    }
    let builder = query.where_clause(tx.engine(), tx.org_id());
    let text = format!(
        "SELECT COUNT(*) FROM leads l WHERE {}",
        builder.conditions()
    );
    tx.fetch_count(builder.into_sql(text)).await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StageTotal {
    pub pipeline_id: String,
    pub stage: String,
    pub count: i64,
}

/// Counts per stage of the leads a list query matches: from the per-stage counters when the
/// query filters by pipeline and stage only (the dashboard, the board, an unfiltered list),
/// otherwise by counting the matching rows.
#[tracing::instrument(skip_all)]
pub async fn count_by_stage(tx: &mut TenantTx, query: &ListQuery) -> sqlx::Result<Vec<StageTotal>> {
    if query.by_stage_only() {
        let org_id = tx.org_id();
        let counters: Vec<StageTotal> = tx
            .fetch_all(
                sql(
                    "SELECT pipeline_id, stage, active AS count FROM lead_stage_counts \
                     WHERE org_id = $1 AND active > 0",
                )
                .bind(&org_id),
            )
            .await?;
        return Ok(counters
            .into_iter()
            .filter(|c| query.admits_stage(&c.pipeline_id, &c.stage))
            .collect());
    }
    let builder = query.where_clause(tx.engine(), tx.org_id());
    let text = format!(
        "SELECT l.pipeline_id, l.stage, COUNT(*) AS count FROM leads l WHERE {} \
         GROUP BY l.pipeline_id, l.stage",
        builder.conditions()
    );
    tx.fetch_all(builder.into_sql(text)).await
}

/// Leads created since `since` among those a list query matches.
#[tracing::instrument(skip_all)]
pub async fn count_created_since(
    tx: &mut TenantTx,
    query: &ListQuery,
    since: OffsetDateTime,
) -> sqlx::Result<i64> {
    let mut builder = query.where_clause(tx.engine(), tx.org_id());
    let p = builder.push(Arg::Time(Some(since)));
    let text = format!(
        "SELECT COUNT(*) FROM leads l WHERE {} AND l.created_at >= {p}",
        builder.conditions()
    );
    tx.fetch_count(builder.into_sql(text)).await
}

/// Whether `user_id` is an active member of the organization (assignment targets).
#[tracing::instrument(skip_all)]
pub async fn is_active_member(tx: &mut TenantTx, user_id: &str) -> sqlx::Result<Option<String>> {
    let org_id = tx.org_id();
    let row: Option<(String,)> = tx
        .fetch_optional(
            sql(
                "SELECT m.role FROM memberships m WHERE m.org_id = $1 AND m.user_id = $2 \
                 AND m.disabled = false",
            )
            .bind(&org_id)
            .bind(user_id),
        )
        .await?;
    Ok(row.map(|(role,)| role))
}

/// The organization's default region for phone numbers and states (ISO 3166-1 alpha-2).
#[tracing::instrument(skip_all)]
pub async fn org_region(tx: &mut TenantTx) -> sqlx::Result<String> {
    let org_id = tx.org_id();
    let (region,): (String,) = tx
        .fetch_one(sql("SELECT default_region FROM organizations WHERE id = $1").bind(&org_id))
        .await?;
    Ok(region)
}

/// Active members someone can assign a lead or task to, by name (pickers in the web pages).
#[tracing::instrument(skip_all)]
pub async fn assignable_members(tx: &mut TenantTx) -> sqlx::Result<Vec<(String, String)>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(
            "SELECT m.user_id, u.name FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.org_id = $1 AND m.disabled = false ORDER BY lower(u.name), m.user_id LIMIT 500",
        )
        .bind(&org_id),
    )
    .await
}
