//! The lead list's filters, search and sort, parsed from a query string and turned into one SQL
//! `WHERE` clause shared by the list, its count, the stats and the export. Values are always bound
//! as parameters; the only text spliced into SQL are column names from fixed tables and
//! custom-field keys, which are validated as `[a-z][a-z0-9_]*` before they get here.

use meridian_core::crm::{LeadSource, Picklist};
use meridian_core::pipeline::{FieldDef, FieldType, is_key};
use meridian_core::{FieldError, Validation};
use meridian_db::{Arg, Engine, Sql, sql};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::store::LeadRow;
use crate::http::pagination::{DEFAULT_LIMIT, MAX_LIMIT, decode_cursor};

pub const MAX_SEARCH_TERMS: usize = 6;

/// Columns the lead list (and export) can show, with their headings. Custom fields join as
/// `custom_fields.<key>`.
pub const COLUMNS: [(&str, &str); 18] = [
    ("number", "#"),
    ("name", "Name"),
    ("email", "Email"),
    ("phone", "Phone"),
    ("stage", "Stage"),
    ("source", "Source"),
    ("assigned", "Assigned to"),
    ("state", "State"),
    ("country", "Country"),
    ("tags", "Tags"),
    ("date_of_birth", "Date of birth"),
    ("utm_source", "UTM source"),
    ("utm_medium", "UTM medium"),
    ("utm_campaign", "UTM campaign"),
    ("campaign_id", "Campaign"),
    ("created_at", "Created"),
    ("updated_at", "Updated"),
    ("stage_entered_at", "In stage since"),
];

/// What the list shows before anyone chooses columns.
pub const DEFAULT_COLUMNS: [&str; 8] = [
    "number",
    "name",
    "stage",
    "email",
    "phone",
    "source",
    "assigned",
    "created_at",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Assignee {
    User(String),
    Unassigned,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Archived {
    #[default]
    Active,
    Archived,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SortColumn {
    Number,
    CreatedAt,
    UpdatedAt,
    FirstName,
    LastName,
    Email,
    Phone,
    Stage,
    Source,
    State,
}

impl SortColumn {
    const ALL: [(&'static str, SortColumn); 10] = [
        ("number", SortColumn::Number),
        ("created_at", SortColumn::CreatedAt),
        ("updated_at", SortColumn::UpdatedAt),
        ("first_name", SortColumn::FirstName),
        ("last_name", SortColumn::LastName),
        ("email", SortColumn::Email),
        ("phone", SortColumn::Phone),
        ("stage", SortColumn::Stage),
        ("source", SortColumn::Source),
        ("state", SortColumn::State),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, c)| *c == self)
            .map(|(n, _)| *n)
            .unwrap_or("number")
    }

    fn expression(self) -> &'static str {
        match self {
            SortColumn::Number => "l.number",
            SortColumn::CreatedAt => "l.created_at",
            SortColumn::UpdatedAt => "l.updated_at",
            SortColumn::FirstName => "l.first_name",
            SortColumn::LastName => "l.last_name",
            SortColumn::Email => "COALESCE(l.email, '')",
            SortColumn::Phone => "COALESCE(l.phone, '')",
            SortColumn::Stage => "l.stage",
            SortColumn::Source => "l.source",
            SortColumn::State => "COALESCE(l.state, '')",
        }
    }

    /// The sort key wrapped in a no-op that no index matches (see `order_and_keyset`).
    fn unindexed_expression(self, engine: Engine) -> String {
        let expr = self.expression();
        match (engine, self) {
            (Engine::Sqlite, _) => format!("+{expr}"),
            (Engine::Postgres, SortColumn::Number) => format!("({expr} + 0)"),
            (Engine::Postgres, SortColumn::CreatedAt | SortColumn::UpdatedAt) => {
                format!("({expr} + INTERVAL '0 seconds')")
            }
            (Engine::Postgres, _) => format!("({expr} || '')"),
        }
    }

    fn key_of(self, row: &LeadRow) -> String {
        let time = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        match self {
            SortColumn::Number => row.number.to_string(),
            SortColumn::CreatedAt => time(row.created_at),
            SortColumn::UpdatedAt => time(row.updated_at),
            SortColumn::FirstName => row.first_name.clone(),
            SortColumn::LastName => row.last_name.clone(),
            SortColumn::Email => row.email.clone().unwrap_or_default(),
            SortColumn::Phone => row.phone.clone().unwrap_or_default(),
            SortColumn::Stage => row.stage.clone(),
            SortColumn::Source => row.source.clone(),
            SortColumn::State => row.state.clone().unwrap_or_default(),
        }
    }

    fn key_arg(self, value: &str) -> Option<Arg> {
        match self {
            SortColumn::Number => value.parse().ok().map(|n| Arg::Int(Some(n))),
            SortColumn::CreatedAt | SortColumn::UpdatedAt => OffsetDateTime::parse(value, &Rfc3339)
                .ok()
                .map(|t| Arg::Time(Some(t))),
            _ => Some(Arg::Text(Some(value.to_owned()))),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomFilter {
    pub key: String,
    pub field_type: FieldType,
    pub value: String,
}

/// A parsed list request: filters, search, sort and page position.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub pipeline_id: Option<String>,
    pub stages: Vec<String>,
    pub assignee: Option<Assignee>,
    pub source: Option<String>,
    pub tag: Option<String>,
    pub priority: Option<bool>,
    pub archived: Archived,
    pub created_after: Option<OffsetDateTime>,
    pub created_before: Option<OffsetDateTime>,
    pub updated_after: Option<OffsetDateTime>,
    pub updated_before: Option<OffsetDateTime>,
    pub search: Vec<String>,
    pub custom: Vec<CustomFilter>,
    /// Stages the caller's role may not see, per pipeline (from stage ownership).
    pub hidden: Vec<(String, Vec<String>)>,
    /// When set, only these stages (per pipeline) are listed (the handoff queue).
    pub only: Option<Vec<(String, Vec<String>)>>,
    pub ids: Option<Vec<String>>,
    pub sort: SortColumn,
    pub descending: bool,
    pub limit: i64,
    pub after: Option<(String, String)>,
    /// PostgreSQL: the search's matching lead numbers, already computed (see
    /// `store::list`); the search words are then only checked against them.
    pub search_numbers: Option<Vec<i32>>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            pipeline_id: None,
            stages: Vec::new(),
            assignee: None,
            source: None,
            tag: None,
            priority: None,
            archived: Archived::Active,
            created_after: None,
            created_before: None,
            updated_after: None,
            updated_before: None,
            search: Vec::new(),
            custom: Vec::new(),
            hidden: Vec::new(),
            only: None,
            ids: None,
            sort: SortColumn::Number,
            descending: true,
            limit: DEFAULT_LIMIT,
            after: None,
            search_numbers: None,
        }
    }
}

/// Collects `WHERE` conditions and their arguments, numbering placeholders as it goes.
pub struct SqlBuilder {
    conditions: Vec<String>,
    args: Vec<Arg>,
}

impl SqlBuilder {
    pub fn new() -> Self {
        SqlBuilder {
            conditions: Vec::new(),
            args: Vec::new(),
        }
    }

    pub fn push(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    pub fn text(&mut self, value: &str) -> String {
        self.push(Arg::Text(Some(value.to_owned())))
    }

    pub fn condition(&mut self, condition: String) {
        self.conditions.push(condition);
    }

    pub fn conditions(&self) -> String {
        self.conditions.join(" AND ")
    }

    pub fn into_sql(self, text: String) -> Sql {
        self.args.into_iter().fold(sql(text), Sql::bind)
    }
}

impl Default for SqlBuilder {
    fn default() -> Self {
        Self::new()
    }
}

pub fn escape_like(term: &str) -> String {
    term.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The query-string parameters the list understands (besides `cf.<key>` custom-field filters).
pub const PARAMS: [&str; 17] = [
    "pipeline_id",
    "stage",
    "assigned_to",
    "source",
    "tag",
    "priority",
    "archived",
    "created_after",
    "created_before",
    "updated_after",
    "updated_before",
    "q",
    "sort",
    "limit",
    "cursor",
    "view_id",
    "format",
];

impl ListQuery {
    /// Parses list parameters. `me` in `assigned_to` becomes `user_id`; custom-field filters
    /// need the pipeline's field definitions (`fields`) to know their types.
    pub fn parse(
        params: &[(String, String)],
        user_id: Option<&str>,
        fields: &[FieldDef],
    ) -> Result<ListQuery, Vec<FieldError>> {
        let mut v = Validation::new();
        let mut q = ListQuery::default();
        let time = |v: &mut Validation, name: &str, value: &str| {
            v.check(
                name,
                OffsetDateTime::parse(value, &Rfc3339)
                    .map_err(|_| "must be an RFC 3339 time like 2026-01-31T00:00:00Z".to_owned()),
            )
        };
        for (name, value) in params {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match name.as_str() {
                "pipeline_id" => q.pipeline_id = Some(value.to_owned()),
                "stage" => {
                    q.stages = value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                "assigned_to" => {
                    q.assignee = match value {
                        "unassigned" => Some(Assignee::Unassigned),
                        "me" => match user_id {
                            Some(id) => Some(Assignee::User(id.to_owned())),
                            None => {
                                v.add(name, "me needs a signed-in person, not an API key");
                                None
                            }
                        },
                        id => Some(Assignee::User(id.to_owned())),
                    }
                }
                "source" => {
                    q.source = v.check(
                        name,
                        LeadSource::parse(value).map(|s| s.as_str().to_owned()),
                    )
                }
                "tag" => q.tag = Some(value.to_lowercase()),
                "priority" => {
                    q.priority = v.check(
                        name,
                        value
                            .parse::<bool>()
                            .map_err(|_| "must be true or false".to_owned()),
                    )
                }
                "archived" => {
                    q.archived = match value {
                        "false" => Archived::Active,
                        "true" => Archived::Archived,
                        "all" => Archived::All,
                        _ => {
                            v.add(name, "must be false, true or all");
                            Archived::Active
                        }
                    }
                }
                "created_after" => q.created_after = time(&mut v, name, value),
                "created_before" => q.created_before = time(&mut v, name, value),
                "updated_after" => q.updated_after = time(&mut v, name, value),
                "updated_before" => q.updated_before = time(&mut v, name, value),
                "q" => {
                    q.search = meridian_core::search::query_words(value);
                    if q.search.len() > MAX_SEARCH_TERMS {
                        v.add(name, format!("must have at most {MAX_SEARCH_TERMS} words"));
                    }
                }
                "sort" => {
                    let (descending, column) = match value.strip_prefix('-') {
                        Some(column) => (true, column),
                        None => (false, value),
                    };
                    match SortColumn::ALL.iter().find(|(n, _)| *n == column) {
                        Some((_, c)) => {
                            q.sort = *c;
                            q.descending = descending;
                        }
                        None => {
                            let names: Vec<&str> =
                                SortColumn::ALL.iter().map(|(n, _)| *n).collect();
                            v.add(
                                name,
                                format!(
                                    "must be one of {} (prefix - for descending)",
                                    names.join(", ")
                                ),
                            );
                        }
                    }
                }
                "limit" => match value.parse::<i64>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => q.limit = n,
                    _ => v.add(name, format!("must be between 1 and {MAX_LIMIT}")),
                },
                "cursor" => match decode_cursor(value).as_deref() {
                    Some([key, id]) => q.after = Some((key.clone(), id.clone())),
                    _ => v.add(name, "is not a cursor this server returned"),
                },
                custom if custom.starts_with("cf.") => {
                    let key = &custom[3..];
                    match fields.iter().find(|f| f.key == key && is_key(key)) {
                        Some(def) => q.custom.push(CustomFilter {
                            key: def.key.clone(),
                            field_type: def.field_type,
                            value: value.to_owned(),
                        }),
                        None => v.add(
                            name,
                            "is not a custom field of the pipeline (filter by pipeline_id first)",
                        ),
                    }
                }
                _ => {}
            }
        }
        for filter in &q.custom {
            let ok = match filter.field_type {
                FieldType::Number => filter.value.parse::<f64>().is_ok(),
                FieldType::Boolean => filter.value == "true" || filter.value == "false",
                _ => true,
            };
            if !ok {
                v.add(
                    &format!("cf.{}", filter.key),
                    format!("must be a {} value", filter.field_type.as_str()),
                );
            }
        }
        if q.after
            .as_ref()
            .is_some_and(|(key, _)| q.sort.key_arg(key).is_none())
        {
            v.add(
                "cursor",
                "does not match the sort order; start from the first page",
            );
        }
        v.finish().map(|()| q)
    }

    /// The cursor that continues after `row` in this sort order.
    pub fn cursor_after(&self, row: &LeadRow) -> Vec<String> {
        vec![self.sort.key_of(row), row.id.clone()]
    }

    /// Whether the query narrows active leads by pipeline and stage alone, which the per-stage
    /// counters (`lead_stage_counts`, kept by triggers) answer without reading the leads.
    pub fn by_stage_only(&self) -> bool {
        self.archived == Archived::Active
            && self.assignee.is_none()
            && self.source.is_none()
            && self.tag.is_none()
            && self.priority.is_none()
            && self.created_after.is_none()
            && self.created_before.is_none()
            && self.updated_after.is_none()
            && self.updated_before.is_none()
            && self.search.is_empty()
            && self.custom.is_empty()
            && self.ids.is_none()
    }

    /// Whether leads in `stage` of `pipeline` pass the query's pipeline and stage conditions
    /// (the same ones `where_clause` writes in SQL).
    pub fn admits_stage(&self, pipeline: &str, stage: &str) -> bool {
        let listed = |pairs: &[(String, Vec<String>)]| {
            pairs
                .iter()
                .any(|(p, stages)| p == pipeline && stages.iter().any(|s| s == stage))
        };
        self.pipeline_id.as_deref().is_none_or(|p| p == pipeline)
            && (self.stages.is_empty() || self.stages.iter().any(|s| s == stage))
            && !listed(&self.hidden)
            && self.only.as_deref().is_none_or(listed)
    }

    pub fn where_clause(&self, engine: Engine, org_id: String) -> SqlBuilder {
        let mut b = SqlBuilder::new();
        let org = b.push(Arg::Text(Some(org_id)));
        b.condition(format!("l.org_id = {org}"));
        match self.archived {
            Archived::Active => b.condition("l.archived_at IS NULL".to_owned()),
            Archived::Archived => b.condition("l.archived_at IS NOT NULL".to_owned()),
            Archived::All => {}
        }
        if let Some(pipeline) = &self.pipeline_id {
            let p = b.text(pipeline);
            b.condition(format!("l.pipeline_id = {p}"));
        }
        if !self.stages.is_empty() {
            let list: Vec<String> = self.stages.iter().map(|s| b.text(s)).collect();
            b.condition(format!("l.stage IN ({})", list.join(", ")));
        }
        if let Some(hidden) = hidden_condition(&mut b, &self.hidden) {
            b.condition(hidden);
        }
        if let Some(only) = &self.only {
            let mut alternatives = Vec::new();
            for (pipeline, stages) in only.iter().filter(|(_, s)| !s.is_empty()) {
                let p = b.text(pipeline);
                let list: Vec<String> = stages.iter().map(|s| b.text(s)).collect();
                alternatives.push(format!(
                    "(l.pipeline_id = {p} AND l.stage IN ({}))",
                    list.join(", ")
                ));
            }
            if alternatives.is_empty() {
                b.condition("1 = 0".to_owned());
            } else {
                b.condition(format!("({})", alternatives.join(" OR ")));
            }
        }
        match &self.assignee {
            Some(Assignee::User(id)) => {
                let p = b.text(id);
                b.condition(format!("l.assigned_to = {p}"));
            }
            Some(Assignee::Unassigned) => b.condition("l.assigned_to IS NULL".to_owned()),
            None => {}
        }
        if let Some(source) = &self.source {
            let p = b.text(source);
            b.condition(format!("l.source = {p}"));
        }
        if let Some(tag) = &self.tag {
            let p = b.text(tag);
            b.condition(format!(
                "EXISTS (SELECT 1 FROM lead_tags t WHERE t.org_id = l.org_id AND t.lead_id = l.id AND t.tag = {p})"
            ));
        }
        // Written as a literal, not a parameter, so PostgreSQL's generic plans can still use the
        // partial index on priority leads.
        match self.priority {
            Some(true) => b.condition("l.is_priority".to_owned()),
            Some(false) => b.condition("NOT l.is_priority".to_owned()),
            None => {}
        }
        for (column, bound, op) in [
            ("created_at", self.created_after, ">="),
            ("created_at", self.created_before, "<"),
            ("updated_at", self.updated_after, ">="),
            ("updated_at", self.updated_before, "<"),
        ] {
            if let Some(t) = bound {
                let p = b.push(Arg::Time(Some(t)));
                b.condition(format!("l.{column} {op} {p}"));
            }
        }
        if !self.search.is_empty() {
            let condition = search_condition(
                &mut b,
                engine,
                &org,
                &self.search,
                self.search_numbers.as_deref(),
            );
            b.condition(condition);
        }
        if let Some(ids) = &self.ids {
            let list: Vec<String> = ids.iter().map(|id| b.text(id)).collect();
            if list.is_empty() {
                b.condition("1 = 0".to_owned());
            } else {
                b.condition(format!("l.id IN ({})", list.join(", ")));
            }
        }
        for filter in &self.custom {
            let condition = custom_condition(&mut b, engine, filter);
            b.condition(condition);
        }
        b
    }

    /// PostgreSQL, a search listed by number (newest or oldest first): the statement that
    /// returns every matching lead number (`store::list` then reads a page from the first few
    /// past the cursor). `None` for other lists. The numbers come back as comma-separated text
    /// because store rows decode on both engines and SQLite has no arrays.
    pub fn search_numbers_sql(
        &self,
        engine: Engine,
        org_id: String,
    ) -> Option<(SqlBuilder, String)> {
        if engine != Engine::Postgres || self.search.is_empty() || self.sort != SortColumn::Number {
            return None;
        }
        let mut b = SqlBuilder::new();
        let org = b.push(Arg::Text(Some(org_id)));
        let numbers = search_numbers(&mut b, &org, &self.search);
        Some((
            b,
            format!("SELECT coalesce(array_to_string({numbers}, ','), '')"),
        ))
    }

    /// The lead number the cursor resumes after, for a list sorted by number.
    pub fn after_number(&self) -> Option<i64> {
        match (&self.after, self.sort) {
            (Some((key, _)), SortColumn::Number) => key.parse().ok(),
            _ => None,
        }
    }

    /// The `ORDER BY` clause and the keyset condition that resumes after the cursor.
    pub fn order_and_keyset(&self, b: &mut SqlBuilder, engine: Engine) -> (String, String) {
        // A search matches few leads: fetch them from the full-text index and sort them, rather
        // than walk a sort index testing every lead until a page is found (seconds on a million
        // rows when matches are rare). Wrapping the sort key in a no-op keeps both planners from
        // choosing an index for the order.
        let expr = if self.search.is_empty() {
            self.sort.expression().to_owned()
        } else {
            self.sort.unindexed_expression(engine)
        };
        let expr = expr.as_str();
        let (dir, cmp) = if self.descending {
            ("DESC", "<")
        } else {
            ("ASC", ">")
        };
        let order = format!("{expr} {dir}, l.id {dir}");
        let keyset = match &self.after {
            Some((key, id)) => match self.sort.key_arg(key) {
                Some(arg) => {
                    let k = b.push(arg);
                    let i = b.text(id);
                    format!(" AND ({expr} {cmp} {k} OR ({expr} = {k} AND l.id {cmp} {i}))")
                }
                None => String::new(),
            },
            None => String::new(),
        };
        (order, keyset)
    }
}

/// `NOT (...)` over the stages a role may not see, on the lead aliased `l`; `None` when the role
/// sees every stage.
pub fn hidden_condition(b: &mut SqlBuilder, hidden: &[(String, Vec<String>)]) -> Option<String> {
    let mut parts = Vec::new();
    for (pipeline, stages) in hidden.iter().filter(|(_, s)| !s.is_empty()) {
        let p = b.text(pipeline);
        let list: Vec<String> = stages.iter().map(|s| b.text(s)).collect();
        parts.push(format!(
            "(l.pipeline_id = {p} AND l.stage IN ({}))",
            list.join(", ")
        ));
    }
    (!parts.is_empty()).then(|| format!("NOT ({})", parts.join(" OR ")))
}

/// Every query word must start a word of the lead's search text. Words are letters and digits
/// only (see `meridian_core::search`), so they are safe inside the FTS query syntax, which is
/// still bound as a parameter. On PostgreSQL, `numbers` are the matching leads when they were
/// computed beforehand (see `store::list`).
fn search_condition(
    b: &mut SqlBuilder,
    engine: Engine,
    org: &str,
    words: &[String],
    numbers: Option<&[i32]>,
) -> String {
    match engine {
        Engine::Sqlite => {
            let query: Vec<String> = words.iter().map(|w| format!("\"{w}\"*")).collect();
            let p = b.text(&query.join(" AND "));
            format!("l.rowid IN (SELECT rowid FROM leads_fts WHERE leads_fts MATCH {p})")
        }
        // See `search_numbers`.
        Engine::Postgres => {
            let numbers = match numbers {
                Some(numbers) => {
                    let list: Vec<String> = numbers.iter().map(i32::to_string).collect();
                    let p = b.text(&format!("{{{}}}", list.join(",")));
                    format!("CAST({p} AS int4[])")
                }
                None => search_numbers(b, org, words),
            };
            let mut parts = vec![format!("l.number = ANY({numbers})")];
            if words.len() > 1 {
                parts.extend(word_checks(b, words));
            }
            parts.join(" AND ")
        }
    }
}

/// PostgreSQL: an `int4[]` expression of the lead numbers matching `words` (exactly for one
/// word or two; with more, a superset the caller narrows with [`word_checks`]).
///
/// Each word is a range of rows in the posting lists (migration 0018, which says why not a GIN
/// index): words starting with `w` sort from `w` up to `w` followed by the largest code point, and
/// each row holds the numbers of one bucket of 1,024 leads.
///
/// When one word is rare (fewer than `RARE_WORD_ENTRIES` leads: a number, a surname, most of an
/// e-mail address), its leads are the candidates. Otherwise the two longest words are intersected
/// bucket by bucket (each side's matching words united per bucket first); any others are left to
/// the checks, as a short word ("0", an initial) can match hundreds of thousands of leads. Each
/// count stops at the threshold and each branch runs only if chosen (PostgreSQL evaluates an
/// uncorrelated subquery when its value is first needed).
fn search_numbers(b: &mut SqlBuilder, org: &str, words: &[String]) -> String {
    let terms: Vec<String> = words
        .iter()
        .map(|w| {
            let from = b.text(w);
            let to = b.text(&format!("{w}\u{10FFFF}"));
            format!("p.term >= {from} AND p.term < {to}")
        })
        .collect();
    let numbers = |terms: &str| {
        format!(
            "SELECT unnest(p.numbers) FROM lead_search_postings p \
             WHERE p.org_id = {org} AND {terms}"
        )
    };
    if terms.len() == 1 {
        return format!("ARRAY({})", numbers(&terms[0]));
    }
    let mut by_length: Vec<usize> = (0..words.len()).collect();
    by_length.sort_by_key(|&i| std::cmp::Reverse(words[i].chars().count()));
    // One pass over both words' rows, grouped by bucket: a join of two grouped subqueries was
    // planned as a nested loop from misjudged range estimates (half a second instead of 3 ms).
    let (first, second) = (&terms[by_length[0]], &terms[by_length[1]]);
    let intersection = format!(
        "ARRAY(SELECT unnest(g.a & g.b) FROM (SELECT \
         lead_numbers_union(p.numbers) FILTER (WHERE {first}) AS a, \
         lead_numbers_union(p.numbers) FILTER (WHERE {second}) AS b \
         FROM lead_search_postings p \
         WHERE p.org_id = {org} AND ({first} OR {second}) GROUP BY p.bucket) g)"
    );
    let limit = b.push(Arg::Int(Some(RARE_WORD_ENTRIES)));
    let rare_branches: Vec<String> = by_length
        .iter()
        .map(|&i| {
            // In key order, so the count reads the index even when the planner misjudges how
            // many rows the range holds.
            let numbers = numbers(&terms[i]);
            format!(
                "WHEN (SELECT count(*) FROM ({numbers} ORDER BY p.term LIMIT {limit}) c) \
                 < {limit} THEN ARRAY({numbers})"
            )
        })
        .collect();
    format!("(CASE {} ELSE {intersection} END)", rare_branches.join(" "))
}

/// Every query word starts a word of the lead's search text (PostgreSQL).
fn word_checks(b: &mut SqlBuilder, words: &[String]) -> Vec<String> {
    words
        .iter()
        .map(|w| {
            let p = b.text(&format!(" {w}"));
            format!("strpos(' ' || l.search_text, {p}) > 0")
        })
        .collect()
}

/// Below this many matching leads a search word is rare enough to drive a PostgreSQL
/// search alone (see `search_numbers`).
const RARE_WORD_ENTRIES: i64 = 1000;

fn custom_condition(b: &mut SqlBuilder, engine: Engine, filter: &CustomFilter) -> String {
    let key = &filter.key;
    let (text_value, json_array) = match engine {
        Engine::Sqlite => (
            format!("json_extract(l.custom_fields, '$.{key}')"),
            format!("json_each(l.custom_fields, '$.{key}')"),
        ),
        Engine::Postgres => (
            format!("(l.custom_fields::jsonb ->> '{key}')"),
            String::new(),
        ),
    };
    match (filter.field_type, engine) {
        (FieldType::Number, Engine::Sqlite) => {
            let p = b.text(&filter.value);
            format!("{text_value} = CAST({p} AS REAL)")
        }
        (FieldType::Number, Engine::Postgres) => {
            let p = b.text(&filter.value);
            format!("CAST({text_value} AS NUMERIC) = CAST({p} AS NUMERIC)")
        }
        (FieldType::Boolean, Engine::Sqlite) => {
            let p = b.push(Arg::Int(Some(i64::from(filter.value == "true"))));
            format!("{text_value} = {p}")
        }
        (FieldType::MultiSelect, Engine::Sqlite) => {
            let p = b.text(&filter.value);
            format!("EXISTS (SELECT 1 FROM {json_array} WHERE lower(value) = lower({p}))")
        }
        (FieldType::MultiSelect, Engine::Postgres) => {
            let p = b.text(&filter.value);
            format!(
                "EXISTS (SELECT 1 FROM jsonb_array_elements_text(l.custom_fields::jsonb -> '{key}') e \
                 WHERE lower(e) = lower({p}))"
            )
        }
        _ => {
            let p = b.text(&filter.value);
            format!("lower({text_value}) = lower({p})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_filters_and_reports_each_bad_one() {
        let q = ListQuery::parse(
            &params(&[
                ("stage", "new, contacted"),
                ("assigned_to", "me"),
                ("sort", "-created_at"),
                ("q", "Ada  LOVE"),
            ]),
            Some("u1"),
            &[],
        )
        .expect("valid");
        assert_eq!(q.stages, vec!["new", "contacted"]);
        assert_eq!(q.assignee, Some(Assignee::User("u1".into())));
        assert_eq!((q.sort, q.descending), (SortColumn::CreatedAt, true));
        assert_eq!(q.search, vec!["ada", "love"]);

        let errors = ListQuery::parse(
            &params(&[
                ("sort", "password"),
                ("source", "fax"),
                ("limit", "0"),
                ("cf.nope", "1"),
                ("created_after", "yesterday"),
            ]),
            None,
            &[],
        )
        .expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["sort", "source", "limit", "cf.nope", "created_after"]
        );
    }

    #[test]
    fn search_words_are_normalized_and_bound() {
        let q = ListQuery::parse(&params(&[("q", "50% OFF\" OR x")]), None, &[]).expect("valid");
        let sqlite = q.where_clause(Engine::Sqlite, "org".into());
        assert!(sqlite.conditions().contains("leads_fts MATCH $2"));
        assert!(
            matches!(&sqlite.args[1], Arg::Text(Some(t)) if t == "\"50\"* AND \"off\"* AND \"or\"* AND \"x\"*")
        );
        let pg = q.where_clause(Engine::Postgres, "org".into());
        assert!(pg.conditions().contains("p.term >= $2 AND p.term < $3"));
        assert!(matches!(&pg.args[3], Arg::Text(Some(t)) if t == "off"));
        assert!(matches!(&pg.args[4], Arg::Text(Some(t)) if t == "off\u{10FFFF}"));
    }

    #[test]
    fn postgres_searches_by_number_compute_their_matches_first() {
        let mut q = ListQuery::parse(&params(&[("q", "ada love")]), None, &[]).expect("valid");
        assert!(q.search_numbers_sql(Engine::Sqlite, "org".into()).is_none());
        let (_, text) = q
            .search_numbers_sql(Engine::Postgres, "org".into())
            .expect("a search by number");
        assert!(
            text.starts_with("SELECT coalesce(array_to_string((CASE WHEN"),
            "{text}"
        );

        q.search_numbers = Some(vec![7, 3]);
        let pg = q.where_clause(Engine::Postgres, "org".into());
        assert!(
            pg.conditions()
                .contains("l.number = ANY(CAST($2 AS int4[]))"),
            "{}",
            pg.conditions()
        );
        assert!(matches!(&pg.args[1], Arg::Text(Some(t)) if t == "{7,3}"));
        assert!(
            pg.conditions()
                .contains("strpos(' ' || l.search_text, $3) > 0")
        );
        assert!(!pg.conditions().contains("lead_search_postings"));

        let by_name = ListQuery::parse(&params(&[("q", "ada"), ("sort", "last_name")]), None, &[])
            .expect("valid");
        assert!(
            by_name
                .search_numbers_sql(Engine::Postgres, "org".into())
                .is_none()
        );
        let after = ListQuery {
            after: Some(("42".into(), "id".into())),
            ..ListQuery::default()
        };
        assert_eq!(after.after_number(), Some(42));
    }
}
