//! What happens to each row of an import: create, update, skip or fail. The dry run and the commit
//! both decide here, with the same normalization the API uses ([`crate::leads::input::apply`]),
//! so the report and the result agree.
//!
//! Duplicates are found by email (first) or phone among the organization's active leads and the
//! earlier rows of the same file. The commit finds earlier chunks' rows in the database (they are
//! committed by then); the dry run writes nothing, so it carries what earlier chunks would have
//! done in a [`Carry`]. Two rules keep the two in step: a lead's email and phone are only ever
//! filled, never replaced, by an update (they are what identifies it), and the only stored value
//! whose outcome depends on the lead is its country (it decides how a state is read), which the
//! carry keeps.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};

use meridian_core::FieldError;
use meridian_core::contact::normalize_phone;
use meridian_core::crm::{LeadSource, Picklist};
use meridian_core::email::normalize_email;
use meridian_core::pipeline::{PipelineSpec, parse_field_text};
use serde_json::{Map, Value};

use super::mapping::{Mapping, Target};
use super::parse::SourceRow;
use crate::leads::input::{self, LeadInput};
use crate::leads::store::{LeadFields, LeadRow};

/// What to do with a row that matches an existing lead.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OnDuplicate {
    /// Leave the existing lead alone.
    Skip,
    /// Fill and overwrite the mapped fields of the existing lead (its email and phone are only
    /// filled when empty).
    Update,
    /// Create a new lead anyway (refused for an email an active lead already has).
    Create,
}

impl OnDuplicate {
    pub fn as_str(self) -> &'static str {
        match self {
            OnDuplicate::Skip => "skip",
            OnDuplicate::Update => "update",
            OnDuplicate::Create => "create",
        }
    }

    pub fn parse(text: &str) -> Option<OnDuplicate> {
        [OnDuplicate::Skip, OnDuplicate::Update, OnDuplicate::Create]
            .into_iter()
            .find(|d| d.as_str() == text)
    }
}

/// Everything that decides a row's fate besides the database.
#[derive(Debug, Clone)]
pub struct Rules {
    pub pipeline_id: String,
    pub spec: PipelineSpec,
    /// The organization's default region (phone numbers, states).
    pub region: String,
    pub columns: Vec<String>,
    pub mapping: Mapping,
    pub on_duplicate: OnDuplicate,
}

/// One reason a row was not imported, as errors.csv lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub row: i64,
    pub column: String,
    pub value: String,
    pub message: String,
}

/// A row read and normalized, before it meets the database.
#[derive(Debug, Clone)]
pub struct Prepared {
    row: i64,
    cells: Vec<String>,
    /// The row's non-empty values of standard fields.
    values: Vec<(&'static str, String)>,
    /// Its custom-field values, already typed.
    custom: Map<String, Value>,
    email: Option<String>,
    phone: Option<String>,
    /// Problems that fail the row whatever it matches.
    early: Vec<FieldError>,
    /// The lead the row would create (when `early` is empty).
    create: Result<LeadFields, Vec<FieldError>>,
}

impl Prepared {
    /// Every problem of the row: its own, then those of normalizing it into `result`.
    fn all_errors(&self, result: &Result<LeadFields, Vec<FieldError>>) -> Vec<FieldError> {
        let mut all = self.early.clone();
        if let Err(errors) = result {
            all.extend(
                errors
                    .iter()
                    .filter(|e| !self.early.iter().any(|x| x.field == e.field))
                    .cloned(),
            );
        }
        all
    }
}

impl Prepared {
    /// The row as lead input; `keep_email`/`keep_phone` false leave those fields out.
    fn input(&self, keep_email: bool, keep_phone: bool) -> LeadInput {
        let mut input = LeadInput::default();
        for (field, value) in &self.values {
            let keep = match *field {
                "email" => keep_email,
                "phone" => keep_phone,
                _ => true,
            };
            if keep {
                set(&mut input, field, value.clone());
            }
        }
        if !self.custom.is_empty() {
            input.custom_fields = Some(self.custom.clone());
        }
        input
    }

    pub fn email_key(&self) -> Option<&str> {
        self.email.as_deref()
    }

    pub fn phone_key(&self) -> Option<&str> {
        self.phone.as_deref()
    }

    fn value(&self, field: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v.as_str())
    }
}

fn set(input: &mut LeadInput, field: &str, value: String) {
    let optional = Some(Some(value.clone()));
    match field {
        "first_name" => input.first_name = Some(value),
        "last_name" => input.last_name = Some(value),
        "source" => input.source = Some(value),
        "email" => input.email = optional,
        "phone" => input.phone = optional,
        "state" => input.state = optional,
        "country" => input.country = optional,
        "date_of_birth" => input.date_of_birth = optional,
        "utm_source" => input.utm_source = optional,
        "utm_medium" => input.utm_medium = optional,
        "utm_campaign" => input.utm_campaign = optional,
        "utm_content" => input.utm_content = optional,
        "utm_term" => input.utm_term = optional,
        "meta_ad_id" => input.meta_ad_id = optional,
        "meta_form_id" => input.meta_form_id = optional,
        "campaign_id" => input.campaign_id = optional,
        _ => {}
    }
}

/// The fields a new imported lead starts from.
fn create_base() -> LeadFields {
    LeadFields {
        source: LeadSource::Import.as_str().to_owned(),
        custom_fields: "{}".to_owned(),
        ..LeadFields::default()
    }
}

/// Reads one row into lead input and normalizes it as a new lead would be.
pub fn prepare(rules: &Rules, source: SourceRow) -> Prepared {
    let mut early = Vec::new();
    if let Some(problem) = source.problem {
        early.push(FieldError {
            field: String::new(),
            message: problem,
        });
    }
    let mut values = Vec::new();
    let mut custom = Map::new();
    for (cell, target) in source.cells.iter().zip(&rules.mapping.targets) {
        let Some(target) = target else { continue };
        if cell.trim().is_empty() {
            continue;
        }
        match target {
            Target::Field(field) => values.push((*field, cell.clone())),
            Target::Custom(key) => {
                let Some(def) = rules.spec.fields.iter().find(|f| &f.key == key) else {
                    continue;
                };
                match parse_field_text(def, cell, &rules.region) {
                    Ok(Some(value)) => {
                        custom.insert(key.clone(), value);
                    }
                    Ok(None) => {}
                    Err(message) => early.push(FieldError {
                        field: target.name(),
                        message,
                    }),
                }
            }
        }
    }
    let mut prepared = Prepared {
        row: source.row,
        cells: source.cells,
        values,
        custom,
        email: None,
        phone: None,
        early,
        create: Err(Vec::new()),
    };
    prepared.create = input::apply(
        &create_base(),
        &prepared.input(true, true),
        &rules.spec,
        &rules.region,
        true,
    );
    // The keys are the normalized email and phone; normalizing is the costly part of a row
    // (phone numbers above all), so the new lead's are reused when the row makes one.
    let (email, phone) = match &prepared.create {
        Ok(fields) => (fields.email.clone(), fields.phone.clone()),
        Err(errors) => {
            let failed = |field: &str| errors.iter().any(|e| e.field == field);
            (
                prepared
                    .value("email")
                    .filter(|_| !failed("email"))
                    .and_then(|e| normalize_email(e).ok()),
                prepared
                    .value("phone")
                    .filter(|_| !failed("phone"))
                    .and_then(|p| normalize_phone(p.trim(), &rules.region).ok()),
            )
        }
    };
    prepared.email = email;
    prepared.phone = phone;
    prepared
}

/// A lead this import creates.
#[derive(Debug, Clone)]
pub struct NewRow {
    pub row: i64,
    pub id: String,
    pub fields: LeadFields,
}

/// The final fields of a stored lead that rows of this chunk update.
#[derive(Debug, Clone)]
pub struct StoredUpdate {
    pub id: String,
    pub fields: LeadFields,
}

/// An `info_edited` event for an updated lead.
#[derive(Debug, Clone)]
pub struct Edit {
    pub row: i64,
    pub lead_id: String,
    pub changes: Map<String, Value>,
}

/// The outcome of one chunk.
#[derive(Debug, Default)]
pub struct ChunkPlan {
    pub creates: Vec<NewRow>,
    pub updates: Vec<StoredUpdate>,
    pub edits: Vec<Edit>,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
    pub problems: Vec<Problem>,
}

impl ChunkPlan {
    pub fn created(&self) -> i64 {
        self.creates.len() as i64
    }
}

/// Where [`Planner::plan_after`] numbers the previous chunk's new leads: after any number an
/// organization reaches, as their real numbers (reserved when they are written) will be.
const UNWRITTEN_NUMBERS: i64 = i64::MAX / 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Email,
    Phone,
}

/// What decides an update's outcome besides the row: see the module comment.
#[derive(Debug, Clone)]
struct Lite {
    country: Option<String>,
    same_pipeline: bool,
    has_email: bool,
    has_phone: bool,
    /// Which of several leads with one phone number a row matches: the lowest. Stored leads
    /// come before this file's new ones (`(0, number)` before `(1, row)`), as their numbers do.
    order: (u8, i64),
}

#[derive(Debug)]
enum Held {
    Stored {
        id: String,
        number: i64,
        fields: Box<LeadFields>,
        update: Option<usize>,
    },
    Pending(usize),
    /// Known only from the carry (dry run).
    Earlier,
}

#[derive(Debug)]
struct Slot {
    lite: Lite,
    target: Held,
    carry: Option<u32>,
    /// Keys to record in the carry at the end of the chunk.
    keys: Vec<(Key, String)>,
    dirty: bool,
}

/// What a dry run remembers of earlier chunks: the leads they would create or change, by key.
/// Keys are kept as 128-bit hashes so a million-row file stays small in memory.
#[derive(Debug, Default)]
struct Carry {
    leads: Vec<Lite>,
    emails: HashMap<u128, u32>,
    phones: HashMap<u128, u32>,
    stored: HashMap<String, u32>,
    hashers: (RandomState, RandomState),
}

impl Carry {
    fn hash(&self, key: Key, text: &str) -> u128 {
        let tag = match key {
            Key::Email => "e",
            Key::Phone => "p",
        };
        let a = self.hashers.0.hash_one((tag, text));
        let b = self.hashers.1.hash_one((tag, text));
        (u128::from(a) << 64) | u128::from(b)
    }

    fn map(&mut self, key: Key) -> &mut HashMap<u128, u32> {
        match key {
            Key::Email => &mut self.emails,
            Key::Phone => &mut self.phones,
        }
    }

    fn find(&self, key: Key, text: &str) -> Option<u32> {
        let h = self.hash(key, text);
        match key {
            Key::Email => self.emails.get(&h).copied(),
            Key::Phone => self.phones.get(&h).copied(),
        }
    }

    fn register(&mut self, key: Key, text: &str, index: u32) {
        let h = self.hash(key, text);
        let order = self.leads[index as usize].order;
        let current = self.map(key).get(&h).copied();
        let replace = match current {
            Some(other) => self.leads[other as usize].order > order,
            None => true,
        };
        if replace {
            self.map(key).insert(h, index);
        }
    }
}

/// Decides rows chunk by chunk. A dry-run planner carries its decisions from chunk to chunk; a
/// commit planner relies on the database, where earlier chunks are already written.
#[derive(Debug)]
pub struct Planner {
    carry: Option<Carry>,
}

/// The working state of one chunk.
struct Chunk<'a> {
    rules: &'a Rules,
    carry: Option<&'a mut Carry>,
    slots: Vec<Slot>,
    emails: HashMap<String, usize>,
    phones: HashMap<String, usize>,
    from_carry: HashMap<u32, usize>,
    plan: ChunkPlan,
}

impl Planner {
    pub fn dry_run() -> Self {
        Planner {
            carry: Some(Carry::default()),
        }
    }

    pub fn commit() -> Self {
        Planner { carry: None }
    }

    /// Decides every row of a chunk. `stored` are the active leads that share an email or phone
    /// with the rows, lowest number first.
    pub fn plan(&mut self, rules: &Rules, rows: Vec<Prepared>, stored: Vec<LeadRow>) -> ChunkPlan {
        self.plan_after(rules, rows, stored, None)
    }

    /// Decides a chunk while the chunk before it is still being written: `unwritten` is that
    /// chunk's plan, whose new leads `stored` (read from the database) cannot show yet. They
    /// count as stored leads numbered after every lead in the database, as they will be.
    pub fn plan_after(
        &mut self,
        rules: &Rules,
        rows: Vec<Prepared>,
        stored: Vec<LeadRow>,
        unwritten: Option<&ChunkPlan>,
    ) -> ChunkPlan {
        let mut chunk = Chunk {
            rules,
            carry: self.carry.as_mut(),
            slots: Vec::new(),
            emails: HashMap::new(),
            phones: HashMap::new(),
            from_carry: HashMap::new(),
            plan: ChunkPlan::default(),
        };
        // Only when there is a previous plan: a lead the lookup already saw is not added twice.
        let known: HashSet<String> = match unwritten {
            Some(_) => stored.iter().map(|row| row.id.clone()).collect(),
            None => HashSet::new(),
        };
        for row in stored {
            chunk.add_stored(row);
        }
        if let Some(unwritten) = unwritten {
            let emails: HashSet<&str> = rows.iter().filter_map(Prepared::email_key).collect();
            let phones: HashSet<&str> = rows.iter().filter_map(Prepared::phone_key).collect();
            let shares_a_key = |fields: &LeadFields| {
                fields.email.as_deref().is_some_and(|e| emails.contains(e))
                    || fields.phone.as_deref().is_some_and(|p| phones.contains(p))
            };
            let unnumbered = (UNWRITTEN_NUMBERS..).zip(&unwritten.creates);
            for (number, new) in unnumbered {
                if shares_a_key(&new.fields) && !known.contains(&new.id) {
                    chunk.add_lead(new.id.clone(), number, true, new.fields.clone());
                }
            }
        }
        for row in rows {
            chunk.decide(row);
        }
        chunk.finish()
    }
}

impl Chunk<'_> {
    fn index(&mut self, key: Key) -> &mut HashMap<String, usize> {
        match key {
            Key::Email => &mut self.emails,
            Key::Phone => &mut self.phones,
        }
    }

    /// Points `text` at `slot` unless a lead that comes first already has it.
    fn register(&mut self, key: Key, text: &str, slot: usize) {
        let order = self.slots[slot].lite.order;
        let current = self.index(key).get(text).copied();
        if current.is_none_or(|other| self.slots[other].lite.order > order) {
            self.index(key).insert(text.to_owned(), slot);
        }
    }

    fn add_stored(&mut self, row: LeadRow) {
        let same_pipeline = row.pipeline_id == self.rules.pipeline_id;
        let fields = LeadFields::of(&row);
        self.add_lead(row.id, row.number, same_pipeline, fields);
    }

    fn add_lead(&mut self, id: String, number: i64, same_pipeline: bool, fields: LeadFields) {
        let known = self
            .carry
            .as_deref()
            .and_then(|c| c.stored.get(&id).copied());
        let slot = match known {
            Some(index) => self.slot_from_carry(index),
            None => {
                self.slots.push(Slot {
                    lite: Lite {
                        country: fields.country.clone(),
                        same_pipeline,
                        has_email: fields.email.is_some(),
                        has_phone: fields.phone.is_some(),
                        order: (0, number),
                    },
                    keys: fields
                        .email
                        .iter()
                        .map(|e| (Key::Email, e.clone()))
                        .chain(fields.phone.iter().map(|p| (Key::Phone, p.clone())))
                        .collect(),
                    target: Held::Stored {
                        id,
                        number,
                        fields: Box::new(fields),
                        update: None,
                    },
                    carry: None,
                    dirty: false,
                });
                self.slots.len() - 1
            }
        };
        if let Held::Stored { fields, .. } = &self.slots[slot].target {
            let keys: Vec<(Key, String)> = fields
                .email
                .iter()
                .map(|e| (Key::Email, e.clone()))
                .chain(fields.phone.iter().map(|p| (Key::Phone, p.clone())))
                .collect();
            for (key, text) in keys {
                self.register(key, &text, slot);
            }
        }
    }

    fn slot_from_carry(&mut self, index: u32) -> usize {
        if let Some(slot) = self.from_carry.get(&index) {
            return *slot;
        }
        let lite = self
            .carry
            .as_deref()
            .map(|c| c.leads[index as usize].clone())
            .unwrap_or(Lite {
                country: None,
                same_pipeline: true,
                has_email: false,
                has_phone: false,
                order: (1, 0),
            });
        self.slots.push(Slot {
            lite,
            target: Held::Earlier,
            carry: Some(index),
            keys: Vec::new(),
            dirty: false,
        });
        let slot = self.slots.len() - 1;
        self.from_carry.insert(index, slot);
        slot
    }

    /// The lead a key points to: the first by order among this chunk's and the carry's.
    fn find(&mut self, key: Key, text: &str) -> Option<usize> {
        let here = match key {
            Key::Email => self.emails.get(text).copied(),
            Key::Phone => self.phones.get(text).copied(),
        };
        let carried = self.carry.as_deref().and_then(|c| {
            c.find(key, text)
                .map(|index| (index, c.leads[index as usize].order))
        });
        match (here, carried) {
            (Some(slot), Some((index, order))) if order < self.slots[slot].lite.order => {
                Some(self.slot_from_carry(index))
            }
            (Some(slot), _) => Some(slot),
            (None, Some((index, _))) => Some(self.slot_from_carry(index)),
            (None, None) => None,
        }
    }

    fn problems(&mut self, row: &Prepared, errors: &[FieldError]) {
        self.plan.failed += 1;
        for error in errors {
            let column = self.rules.mapping.column_of(&error.field);
            let message = if error.field.is_empty() {
                error.message.clone()
            } else {
                format!("{} {}", error.field, error.message)
            };
            self.plan.problems.push(Problem {
                row: row.row,
                column: column
                    .and_then(|i| self.rules.columns.get(i))
                    .cloned()
                    .unwrap_or_default(),
                value: column
                    .and_then(|i| row.cells.get(i))
                    .cloned()
                    .unwrap_or_default(),
                message,
            });
        }
    }

    fn fail(&mut self, row: &Prepared, field: &str, message: String) {
        self.problems(
            row,
            &[FieldError {
                field: field.to_owned(),
                message,
            }],
        );
    }

    fn decide(&mut self, row: Prepared) {
        if row.early.iter().any(|e| e.field.is_empty()) {
            let errors = row.early.clone();
            return self.problems(&row, &errors);
        }
        let by_email = row.email.clone().and_then(|e| self.find(Key::Email, &e));
        let matched = match by_email {
            Some(slot) => Some((slot, Key::Email)),
            None => row
                .phone
                .clone()
                .and_then(|p| self.find(Key::Phone, &p))
                .map(|slot| (slot, Key::Phone)),
        };
        match (matched, self.rules.on_duplicate) {
            (None, _) | (Some((_, Key::Phone)), OnDuplicate::Create) => self.create(row),
            (Some(_), OnDuplicate::Skip) => self.plan.skipped += 1,
            (Some(_), OnDuplicate::Create) => self.fail(
                &row,
                "email",
                "is already used by an active lead (import with on_duplicate skip or update to handle existing leads)"
                    .to_owned(),
            ),
            (Some((slot, key)), OnDuplicate::Update) => self.update(row, slot, key),
        }
    }

    fn create(&mut self, mut row: Prepared) {
        // Taken, not cloned: a lead's fields are a score of strings, and this runs for every row
        // of a commit while the database waits for the chunk.
        let fields = match std::mem::replace(&mut row.create, Err(Vec::new())) {
            Ok(fields) if row.early.is_empty() => fields,
            result => {
                let errors = row.all_errors(&result);
                return self.problems(&row, &errors);
            }
        };
        let id = meridian_db::new_id();
        self.slots.push(Slot {
            lite: Lite {
                country: fields.country.clone(),
                same_pipeline: true,
                has_email: fields.email.is_some(),
                has_phone: fields.phone.is_some(),
                order: (1, row.row),
            },
            keys: fields
                .email
                .iter()
                .map(|e| (Key::Email, e.clone()))
                .chain(fields.phone.iter().map(|p| (Key::Phone, p.clone())))
                .collect(),
            target: Held::Pending(self.plan.creates.len()),
            carry: None,
            dirty: true,
        });
        let slot = self.slots.len() - 1;
        for (key, text) in self.slots[slot].keys.clone() {
            self.register(key, &text, slot);
        }
        self.plan.creates.push(NewRow {
            row: row.row,
            id,
            fields,
        });
    }

    fn update(&mut self, row: Prepared, slot: usize, key: Key) {
        let lite = self.slots[slot].lite.clone();
        if !lite.same_pipeline {
            let number = match &self.slots[slot].target {
                Held::Stored { number, .. } => format!(" #{number:05}"),
                _ => String::new(),
            };
            let field = match key {
                Key::Email => "email",
                Key::Phone => "phone",
            };
            return self.fail(
                &row,
                field,
                format!(
                    "matches the lead{number} in another pipeline; import this row into that pipeline or move the lead first"
                ),
            );
        }
        let input = row.input(!lite.has_email, !lite.has_phone);
        let base = match &self.slots[slot].target {
            Held::Stored { fields, .. } if self.carry.is_none() => (**fields).clone(),
            Held::Pending(i) if self.carry.is_none() => self.plan.creates[*i].fields.clone(),
            _ => LeadFields {
                country: lite.country.clone(),
                ..create_base()
            },
        };
        let after = match input::apply(&base, &input, &self.rules.spec, &self.rules.region, false) {
            Ok(after) if row.early.is_empty() => after,
            result => {
                let errors = row.all_errors(&result);
                return self.problems(&row, &errors);
            }
        };
        self.plan.updated += 1;
        let filled: Vec<(Key, String)> = [
            (Key::Email, input.email.is_some(), after.email.clone()),
            (Key::Phone, input.phone.is_some(), after.phone.clone()),
        ]
        .into_iter()
        .filter_map(|(k, sent, value)| value.filter(|_| sent).map(|v| (k, v)))
        .collect();
        {
            let s = &mut self.slots[slot];
            s.lite.country = after.country.clone();
            s.lite.has_email |= after.email.is_some();
            s.lite.has_phone |= after.phone.is_some();
            s.dirty = true;
            s.keys.extend(filled.iter().cloned());
        }
        for (k, text) in &filled {
            self.register(*k, text, slot);
        }
        if self.carry.is_some() {
            return;
        }
        let changes = input::changes(&base, &after);
        let lead_id = match &mut self.slots[slot].target {
            Held::Stored {
                id, fields, update, ..
            } => {
                **fields = after.clone();
                match update {
                    Some(i) => self.plan.updates[*i].fields = after,
                    None => {
                        *update = Some(self.plan.updates.len());
                        self.plan.updates.push(StoredUpdate {
                            id: id.clone(),
                            fields: after,
                        });
                    }
                }
                id.clone()
            }
            Held::Pending(i) => {
                self.plan.creates[*i].fields = after;
                self.plan.creates[*i].id.clone()
            }
            Held::Earlier => return,
        };
        if !changes.is_empty() {
            self.plan.edits.push(Edit {
                row: row.row,
                lead_id,
                changes,
            });
        }
    }

    fn finish(self) -> ChunkPlan {
        if let Some(carry) = self.carry {
            for slot in self.slots.into_iter().filter(|s| s.dirty) {
                let index = match slot.carry {
                    Some(index) => {
                        carry.leads[index as usize] = slot.lite;
                        index
                    }
                    None => {
                        carry.leads.push(slot.lite);
                        let index = u32::try_from(carry.leads.len() - 1).unwrap_or(u32::MAX);
                        if let Held::Stored { id, .. } = slot.target {
                            carry.stored.insert(id, index);
                        }
                        index
                    }
                };
                for (key, text) in slot.keys {
                    carry.register(key, &text, index);
                }
            }
        }
        self.plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imports::mapping::suggest;
    use meridian_core::pipeline::default_leads_pipeline;

    fn rules(on_duplicate: OnDuplicate) -> Rules {
        let spec = default_leads_pipeline();
        let columns: Vec<String> = ["First name", "Email", "Phone", "State", "Budget"]
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        let mapping = suggest(&columns, &spec);
        Rules {
            pipeline_id: "p1".to_owned(),
            spec,
            region: "US".to_owned(),
            columns,
            mapping,
            on_duplicate,
        }
    }

    fn row(n: i64, cells: &[&str]) -> SourceRow {
        SourceRow {
            row: n,
            problem: None,
            cells: cells.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    fn rows() -> Vec<SourceRow> {
        vec![
            row(
                2,
                &["Ada", "ADA@x.test", "(415) 555-0123", "california", "5,000"],
            ),
            row(3, &["Ada again", "ada@x.test", "", "", ""]),
            row(4, &["Bo", "", "415 555 0123", "", ""]),
            row(5, &["", "nope", "", "", "lots"]),
            row(6, &["Cy", "cy@x.test", "", "", ""]),
        ]
    }

    /// Plans `rows` in chunks of `size`, as a dry run or a commit that writes nothing: enough to
    /// compare decisions when nothing is stored yet.
    fn plan_in_chunks(on_duplicate: OnDuplicate, size: usize) -> (i64, i64, i64, i64) {
        let rules = rules(on_duplicate);
        let mut planner = Planner::dry_run();
        let mut totals = (0, 0, 0, 0);
        for chunk in rows().chunks(size) {
            let prepared = chunk.iter().cloned().map(|r| prepare(&rules, r)).collect();
            let plan = planner.plan(&rules, prepared, Vec::new());
            totals.0 += plan.created();
            totals.1 += plan.updated;
            totals.2 += plan.skipped;
            totals.3 += plan.failed;
        }
        totals
    }

    /// Plans `rows` as a commit that plans each chunk while the one before is written: every
    /// chunk sees only the previous chunk's plan (enough here, where no row matches one two
    /// chunks back). Ignoring that plan, row 4 would miss row 2's phone in chunks of 2.
    fn plan_each_after_the_previous(
        on_duplicate: OnDuplicate,
        size: usize,
    ) -> (i64, i64, i64, i64) {
        let rules = rules(on_duplicate);
        let mut previous: Option<ChunkPlan> = None;
        let mut totals = (0, 0, 0, 0);
        for chunk in rows().chunks(size) {
            let prepared = chunk.iter().cloned().map(|r| prepare(&rules, r)).collect();
            let plan =
                Planner::commit().plan_after(&rules, prepared, Vec::new(), previous.as_ref());
            totals.0 += plan.created();
            totals.1 += plan.updated;
            totals.2 += plan.skipped;
            totals.3 += plan.failed;
            previous = Some(plan);
        }
        totals
    }

    #[test]
    fn a_chunk_planned_before_the_previous_is_written_decides_as_the_dry_run() {
        for on_duplicate in [OnDuplicate::Skip, OnDuplicate::Create] {
            for size in [2, 5] {
                assert_eq!(
                    plan_each_after_the_previous(on_duplicate, size),
                    plan_in_chunks(on_duplicate, size),
                    "{on_duplicate:?} in chunks of {size}"
                );
            }
        }
    }

    #[test]
    fn duplicates_within_a_file_follow_the_rule_across_chunks() {
        for size in [1, 2, 5] {
            assert_eq!(
                plan_in_chunks(OnDuplicate::Skip, size),
                (2, 0, 2, 1),
                "{size}"
            );
            assert_eq!(
                plan_in_chunks(OnDuplicate::Update, size),
                (2, 2, 0, 1),
                "{size}"
            );
            // Bo only shares a phone, so create makes him; Ada's second row reuses an email.
            assert_eq!(
                plan_in_chunks(OnDuplicate::Create, size),
                (3, 0, 0, 2),
                "{size}"
            );
        }
    }

    #[test]
    fn rows_are_normalized_and_problems_name_their_column() {
        let rules = rules(OnDuplicate::Skip);
        let prepared = rows().into_iter().map(|r| prepare(&rules, r)).collect();
        let plan = Planner::commit().plan(&rules, prepared, Vec::new());
        let ada = &plan.creates[0].fields;
        assert_eq!(ada.email.as_deref(), Some("ada@x.test"));
        assert_eq!(ada.phone.as_deref(), Some("+14155550123"));
        assert_eq!(ada.state.as_deref(), Some("CA"));
        assert_eq!(ada.source, "import");
        assert_eq!(ada.custom_fields, r#"{"budget":5000.0}"#);
        let columns: Vec<(&str, &str)> = plan
            .problems
            .iter()
            .map(|p| (p.column.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            columns,
            vec![("Budget", "lots"), ("First name", ""), ("Email", "nope")]
        );
        assert!(plan.problems.iter().all(|p| p.row == 5));
    }
}
