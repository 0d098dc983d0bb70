//! Pipelines: an organization's own workflow for its records (leads, cases, intended parents),
//! with ordered stages, role-owned stages, handoff rules and typed custom fields. One code base
//! serves every kind of customer through this configuration.
//!
//! Everything here is pure: the rules for "may this role move a record into that stage", what
//! accepting or denying a handoff does, and how custom-field values are checked, so they can be
//! property-tested without a database.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::crm::Picklist;
use crate::roles::Role;
use crate::validation::{FieldError, Validation, required_text};

pub const MAX_STAGES: usize = 50;
pub const MAX_FIELDS: usize = 100;
pub const MAX_OPTIONS: usize = 200;
pub const MAX_TEXT_VALUE: usize = 4000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StageCategory {
    #[default]
    Open,
    Won,
    Lost,
    OnHold,
}

impl Picklist for StageCategory {
    const ALL: &'static [Self] = &[
        StageCategory::Open,
        StageCategory::Won,
        StageCategory::Lost,
        StageCategory::OnHold,
    ];

    fn as_str(self) -> &'static str {
        match self {
            StageCategory::Open => "open",
            StageCategory::Won => "won",
            StageCategory::Lost => "lost",
            StageCategory::OnHold => "on_hold",
        }
    }

    fn label(self) -> &'static str {
        match self {
            StageCategory::Open => "Open",
            StageCategory::Won => "Won",
            StageCategory::Lost => "Lost",
            StageCategory::OnHold => "On hold",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stage {
    /// Stable identifier stored on records (`a-z`, digits, `_`).
    pub key: String,
    pub label: String,
    /// `#rrggbb` (default a neutral grey).
    #[serde(default = "default_stage_color")]
    pub color: String,
    #[serde(default)]
    pub category: StageCategory,
    /// The role that may move records into this stage and work on them there; `null`: anyone.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub owner_role: Option<Role>,
    /// How long a record should stay here before it is overdue.
    #[serde(default)]
    pub sla_hours: Option<i64>,
    /// Set on handoff stages: where a denied record goes back to.
    #[serde(default)]
    pub return_stage: Option<String>,
}

fn default_stage_color() -> String {
    "#6b7280".to_owned()
}

impl Stage {
    /// A handoff stage is where one role submits records for another to accept or deny.
    pub fn is_handoff(&self) -> bool {
        self.return_stage.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Number,
    Date,
    Select,
    MultiSelect,
    Boolean,
    Url,
    Email,
    Phone,
}

impl Picklist for FieldType {
    const ALL: &'static [Self] = &[
        FieldType::Text,
        FieldType::Number,
        FieldType::Date,
        FieldType::Select,
        FieldType::MultiSelect,
        FieldType::Boolean,
        FieldType::Url,
        FieldType::Email,
        FieldType::Phone,
    ];

    fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Number => "number",
            FieldType::Date => "date",
            FieldType::Select => "select",
            FieldType::MultiSelect => "multi_select",
            FieldType::Boolean => "boolean",
            FieldType::Url => "url",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
        }
    }

    fn label(self) -> &'static str {
        match self {
            FieldType::Text => "Text",
            FieldType::Number => "Number",
            FieldType::Date => "Date",
            FieldType::Select => "Choice",
            FieldType::MultiSelect => "Several choices",
            FieldType::Boolean => "Yes / no",
            FieldType::Url => "Link",
            FieldType::Email => "Email",
            FieldType::Phone => "Phone",
        }
    }
}

impl FieldType {
    fn has_options(self) -> bool {
        matches!(self, FieldType::Select | FieldType::MultiSelect)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldDef {
    pub key: String,
    pub label: String,
    pub field_type: FieldType,
    /// The choices of `select` and `multi_select` fields.
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default)]
    pub required: bool,
}

/// A pipeline's whole configuration, as created or replaced through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineSpec {
    pub name: String,
    pub singular_label: String,
    pub plural_label: String,
    pub stages: Vec<Stage>,
    pub fields: Vec<FieldDef>,
}

/// Why a stage change is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveRefused {
    /// The stage is not part of the pipeline.
    UnknownStage(String),
    /// The role may not move records there; the message says why.
    Forbidden(String),
}

pub fn is_key(input: &str) -> bool {
    let mut chars = input.chars();
    matches!(chars.next(), Some('a'..='z'))
        && input.len() <= 40
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn check_key(input: &str) -> Result<String, String> {
    let key = input.trim();
    if is_key(key) {
        Ok(key.to_owned())
    } else {
        Err("must start with a letter and use only a-z, 0-9 and _ (at most 40)".to_owned())
    }
}

fn is_color(input: &str) -> bool {
    input.len() == 7 && input.starts_with('#') && input[1..].chars().all(|c| c.is_ascii_hexdigit())
}

impl PipelineSpec {
    /// Checks and tidies a configuration (trimmed labels, lower-case colors), reporting every
    /// problem with its path (`stages[2].key`).
    pub fn validated(mut self) -> Result<PipelineSpec, Vec<FieldError>> {
        let mut v = Validation::new();
        if let Some(name) = v.check("name", required_text(&self.name, 1, 100)) {
            self.name = name;
        }
        if let Some(label) = v.check("singular_label", required_text(&self.singular_label, 1, 40)) {
            self.singular_label = label;
        }
        if let Some(label) = v.check("plural_label", required_text(&self.plural_label, 1, 40)) {
            self.plural_label = label;
        }
        if self.stages.is_empty() {
            v.add("stages", "must have at least one stage");
        }
        if self.stages.len() > MAX_STAGES {
            v.add("stages", format!("must have at most {MAX_STAGES} stages"));
        }
        let keys: Vec<String> = self
            .stages
            .iter()
            .map(|s| s.key.trim().to_owned())
            .collect();
        for (i, stage) in self.stages.iter_mut().enumerate() {
            let at = |field: &str| format!("stages[{i}].{field}");
            if let Some(key) = v.check(&at("key"), check_key(&stage.key)) {
                if keys[..i].contains(&key) {
                    v.add(&at("key"), "is used by another stage");
                }
                stage.key = key;
            }
            if let Some(label) = v.check(&at("label"), required_text(&stage.label, 1, 60)) {
                stage.label = label;
            }
            stage.color = stage.color.trim().to_lowercase();
            if !is_color(&stage.color) {
                v.add(&at("color"), "must be a color like #3b82f6");
            }
            if stage
                .sla_hours
                .is_some_and(|h| !(1..=24 * 365).contains(&h))
            {
                v.add(&at("sla_hours"), "must be between 1 and 8760");
            }
            if let Some(target) = &stage.return_stage {
                if target == &stage.key {
                    v.add(&at("return_stage"), "must be another stage");
                } else if !keys.contains(target) {
                    v.add(&at("return_stage"), "must be a stage of this pipeline");
                }
                if stage.owner_role.is_none() {
                    v.add(
                        &at("owner_role"),
                        "is required on a handoff stage (the role that accepts it)",
                    );
                }
                if keys.get(i + 1).is_none() {
                    v.add(
                        &at("return_stage"),
                        "a handoff stage needs a following stage for accepted records",
                    );
                }
            }
        }
        if self.fields.len() > MAX_FIELDS {
            v.add("fields", format!("must have at most {MAX_FIELDS} fields"));
        }
        let field_keys: Vec<String> = self
            .fields
            .iter()
            .map(|f| f.key.trim().to_owned())
            .collect();
        for (i, field) in self.fields.iter_mut().enumerate() {
            let at = |name: &str| format!("fields[{i}].{name}");
            if let Some(key) = v.check(&at("key"), check_key(&field.key)) {
                if field_keys[..i].contains(&key) {
                    v.add(&at("key"), "is used by another field");
                }
                field.key = key;
            }
            if let Some(label) = v.check(&at("label"), required_text(&field.label, 1, 60)) {
                field.label = label;
            }
            field.options = field
                .options
                .iter()
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect();
            if field.field_type.has_options() {
                if field.options.is_empty() {
                    v.add(&at("options"), "must list at least one choice");
                } else if field.options.len() > MAX_OPTIONS {
                    v.add(
                        &at("options"),
                        format!("must have at most {MAX_OPTIONS} choices"),
                    );
                }
                let mut sorted = field.options.clone();
                sorted.sort();
                sorted.dedup();
                if sorted.len() != field.options.len() {
                    v.add(&at("options"), "must not repeat a choice");
                }
            } else if !field.options.is_empty() {
                v.add(
                    &at("options"),
                    "only select and multi_select fields have choices",
                );
            }
        }
        v.finish().map(|()| self)
    }

    pub fn stage(&self, key: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.key == key)
    }

    pub fn first_stage(&self) -> Option<&Stage> {
        self.stages.first()
    }

    /// The stage after `key` in the pipeline's order (where an accepted handoff goes).
    pub fn next_stage(&self, key: &str) -> Option<&Stage> {
        let index = self.stages.iter().position(|s| s.key == key)?;
        self.stages.get(index + 1)
    }

    /// Whether a holder of `role` may see and work on a record in stage `key`.
    pub fn may_work(&self, role: Role, key: &str) -> bool {
        self.stage(key)
            .is_some_and(|s| role.may_work_stage(s.owner_role))
    }

    /// The stage keys a role may not see or touch (role-owned stages of other roles).
    pub fn hidden_stages(&self, role: Role) -> Vec<&str> {
        self.stages
            .iter()
            .filter(|s| !role.may_work_stage(s.owner_role))
            .map(|s| s.key.as_str())
            .collect()
    }

    /// May `role` move a record from stage `from` (which it can work) into stage `to`?
    ///
    /// Into an ordinary stage: only if the role may work there. Into a handoff stage: anyone who
    /// may work the record now may submit it, because submitting is how the record leaves their
    /// hands; the stage's owner then accepts or denies it.
    pub fn check_move(&self, role: Role, from: &str, to: &str) -> Result<&Stage, MoveRefused> {
        let target = self
            .stage(to)
            .ok_or_else(|| MoveRefused::UnknownStage(to.to_owned()))?;
        if !self.may_work(role, from) {
            return Err(MoveRefused::Forbidden(format!(
                "Your role ({role}) cannot work on records in this stage."
            )));
        }
        if target.is_handoff() || role.may_work_stage(target.owner_role) {
            Ok(target)
        } else {
            let owner = target.owner_role.map(Role::label).unwrap_or("another role");
            Err(MoveRefused::Forbidden(format!(
                "Only the {owner} role (or a manager) may move records into \"{}\".",
                target.label
            )))
        }
    }

    /// Where accepting a record in handoff stage `key` takes it, if `role` may accept it.
    pub fn accept_target(&self, role: Role, key: &str) -> Result<&Stage, MoveRefused> {
        let stage = self.handoff_stage_for(role, key)?;
        self.next_stage(&stage.key).ok_or_else(|| {
            MoveRefused::Forbidden("This handoff stage has no following stage.".to_owned())
        })
    }

    /// Where denying a record in handoff stage `key` takes it, if `role` may deny it.
    pub fn deny_target(&self, role: Role, key: &str) -> Result<&Stage, MoveRefused> {
        let stage = self.handoff_stage_for(role, key)?;
        stage
            .return_stage
            .as_deref()
            .and_then(|target| self.stage(target))
            .ok_or_else(|| MoveRefused::UnknownStage(key.to_owned()))
    }

    fn handoff_stage_for(&self, role: Role, key: &str) -> Result<&Stage, MoveRefused> {
        let stage = self
            .stage(key)
            .ok_or_else(|| MoveRefused::UnknownStage(key.to_owned()))?;
        if !stage.is_handoff() {
            return Err(MoveRefused::Forbidden(format!(
                "\"{}\" is not a handoff stage.",
                stage.label
            )));
        }
        if !role.may_work_stage(stage.owner_role) {
            return Err(MoveRefused::Forbidden(format!(
                "Your role ({role}) cannot accept or deny this handoff."
            )));
        }
        Ok(stage)
    }

    /// Checks custom-field values against the definitions: unknown keys, wrong types and missing
    /// required fields are errors named `custom_fields.<key>`. Values are normalized (trimmed
    /// text, E.164 phones, lower-case emails); `null` clears a field.
    pub fn check_custom_fields(
        &self,
        input: &Map<String, Value>,
        phone_region: &str,
        require_all: bool,
    ) -> Result<Map<String, Value>, Vec<FieldError>> {
        let mut v = Validation::new();
        let mut out = Map::new();
        for key in input.keys() {
            if !self.fields.iter().any(|f| &f.key == key) {
                v.add(
                    &format!("custom_fields.{key}"),
                    "is not a field of this pipeline",
                );
            }
        }
        for def in &self.fields {
            let name = format!("custom_fields.{}", def.key);
            match input.get(&def.key) {
                None | Some(Value::Null) => {
                    if def.required && (require_all || input.contains_key(&def.key)) {
                        v.add(&name, "is required");
                    }
                    if input.contains_key(&def.key) {
                        out.insert(def.key.clone(), Value::Null);
                    }
                }
                Some(value) => {
                    if let Some(value) = v.check(&name, check_value(def, value, phone_region)) {
                        out.insert(def.key.clone(), value);
                    }
                }
            }
        }
        v.finish().map(|()| out)
    }
}

fn check_value(def: &FieldDef, value: &Value, phone_region: &str) -> Result<Value, String> {
    match (def.field_type, value) {
        (FieldType::Text, Value::String(s)) => {
            required_text(s, 1, MAX_TEXT_VALUE).map(Value::String)
        }
        (FieldType::Number, Value::Number(n)) => Ok(Value::Number(n.clone())),
        (FieldType::Date, Value::String(s)) => parse_date(s).map(Value::String),
        (FieldType::Select, Value::String(s)) => choice(def, s).map(Value::String),
        (FieldType::MultiSelect, Value::Array(items)) => {
            let mut chosen = Vec::with_capacity(items.len());
            for item in items {
                let Value::String(s) = item else {
                    return Err("must be a list of choices".to_owned());
                };
                let picked = choice(def, s)?;
                if !chosen.contains(&Value::String(picked.clone())) {
                    chosen.push(Value::String(picked));
                }
            }
            Ok(Value::Array(chosen))
        }
        (FieldType::Boolean, Value::Bool(b)) => Ok(Value::Bool(*b)),
        (FieldType::Url, Value::String(s)) => parse_url(s).map(Value::String),
        (FieldType::Email, Value::String(s)) => crate::email::normalize_email(s).map(Value::String),
        (FieldType::Phone, Value::String(s)) => {
            crate::contact::normalize_phone(s, phone_region).map(Value::String)
        }
        (field_type, _) => Err(format!("must be a {} value", field_type.as_str())),
    }
}

/// Turns a spreadsheet cell into a custom-field value (imports): numbers, yes/no, `;`-separated
/// choices. An empty cell is `None`.
pub fn parse_field_text(
    def: &FieldDef,
    text: &str,
    phone_region: &str,
) -> Result<Option<Value>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let value = match def.field_type {
        FieldType::Number => {
            let number: f64 = text
                .replace(',', "")
                .parse()
                .map_err(|_| "must be a number".to_owned())?;
            serde_json::Number::from_f64(number)
                .map(Value::Number)
                .ok_or_else(|| "must be a finite number".to_owned())?
        }
        FieldType::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" => Value::Bool(true),
            "false" | "no" | "n" | "0" => Value::Bool(false),
            _ => return Err("must be yes or no".to_owned()),
        },
        FieldType::MultiSelect => Value::Array(
            text.split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        _ => Value::String(text.to_owned()),
    };
    check_value(def, &value, phone_region).map(Some)
}

fn choice(def: &FieldDef, input: &str) -> Result<String, String> {
    let input = input.trim();
    def.options
        .iter()
        .find(|o| o.eq_ignore_ascii_case(input))
        .cloned()
        .ok_or_else(|| format!("must be one of {}", def.options.join(", ")))
}

/// A calendar date as `YYYY-MM-DD`.
pub fn parse_date(input: &str) -> Result<String, String> {
    let input = input.trim();
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(input, format)
        .map(|d| d.to_string())
        .map_err(|_| "must be a date like 2026-01-31".to_owned())
}

fn parse_url(input: &str) -> Result<String, String> {
    let input = input.trim();
    let rest = input
        .strip_prefix("https://")
        .or_else(|| input.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty()
                && input.len() <= 2000
                && !input.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Ok(input.to_owned())
        }
        _ => Err("must be an http or https link".to_owned()),
    }
}

fn stage(key: &str, label: &str, color: &str, category: StageCategory) -> Stage {
    Stage {
        key: key.to_owned(),
        label: label.to_owned(),
        color: color.to_owned(),
        category,
        owner_role: None,
        sla_hours: None,
        return_stage: None,
    }
}

fn owned(mut s: Stage, role: Role) -> Stage {
    s.owner_role = Some(role);
    s
}

fn field(key: &str, label: &str, field_type: FieldType, options: &[&str]) -> FieldDef {
    FieldDef {
        key: key.to_owned(),
        label: label.to_owned(),
        field_type,
        options: options.iter().map(|o| (*o).to_owned()).collect(),
        required: false,
    }
}

use StageCategory::{Lost, OnHold, Open, Won};

/// The pipeline every new organization starts with.
pub fn default_leads_pipeline() -> PipelineSpec {
    PipelineSpec {
        name: "Leads".to_owned(),
        singular_label: "Lead".to_owned(),
        plural_label: "Leads".to_owned(),
        stages: vec![
            Stage {
                sla_hours: Some(24),
                ..stage("new", "New", "#3b82f6", Open)
            },
            stage("contacted", "Contacted", "#8b5cf6", Open),
            stage("qualified", "Qualified", "#06b6d4", Open),
            stage("proposal", "Proposal", "#f59e0b", Open),
            stage("won", "Won", "#16a34a", Won),
            stage("lost", "Lost", "#6b7280", Lost),
        ],
        fields: vec![
            field("company", "Company", FieldType::Text, &[]),
            field("budget", "Budget", FieldType::Number, &[]),
        ],
    }
}

/// Surrogacy agency: intake specialists qualify applicants, then hand approved cases to case
/// managers, who accept (to `pending_match`) or deny (back to `under_review`).
pub fn surrogacy_cases_pipeline() -> PipelineSpec {
    let cm = Role::CaseManager;
    PipelineSpec {
        name: "Cases".to_owned(),
        singular_label: "Case".to_owned(),
        plural_label: "Cases".to_owned(),
        stages: vec![
            Stage {
                sla_hours: Some(24),
                ..stage("new", "New", "#3b82f6", Open)
            },
            stage("contacted", "Contacted", "#8b5cf6", Open),
            stage("qualified", "Qualified", "#06b6d4", Open),
            stage("applied", "Applied", "#0ea5e9", Open),
            stage("under_review", "Under review", "#f59e0b", Open),
            stage("approved", "Approved", "#84cc16", Open),
            Stage {
                owner_role: Some(cm),
                return_stage: Some("under_review".to_owned()),
                sla_hours: Some(48),
                ..stage("pending_handoff", "Pending handoff", "#f97316", Open)
            },
            owned(stage("pending_match", "Pending match", "#a855f7", Open), cm),
            owned(stage("matched", "Matched", "#ec4899", Open), cm),
            owned(stage("in_journey", "In journey", "#14b8a6", Open), cm),
            owned(stage("delivered", "Delivered", "#16a34a", Won), cm),
            stage("disqualified", "Disqualified", "#6b7280", Lost),
            stage("lost", "Lost", "#9ca3af", Lost),
        ],
        fields: vec![
            field("height_in", "Height (inches)", FieldType::Number, &[]),
            field("weight_lb", "Weight (lb)", FieldType::Number, &[]),
            field(
                "has_given_birth",
                "Has given birth",
                FieldType::Boolean,
                &[],
            ),
            field(
                "prior_surrogacy",
                "Prior surrogacy",
                FieldType::Boolean,
                &[],
            ),
            field(
                "insurance",
                "Insurance",
                FieldType::Select,
                &["Private", "Medicaid", "None"],
            ),
        ],
    }
}

pub fn intended_parents_pipeline() -> PipelineSpec {
    PipelineSpec {
        name: "Intended Parents".to_owned(),
        singular_label: "Intended Parent".to_owned(),
        plural_label: "Intended Parents".to_owned(),
        stages: vec![
            stage("new", "New", "#3b82f6", Open),
            stage("contacted", "Contacted", "#8b5cf6", Open),
            stage("in_review", "In review", "#f59e0b", Open),
            stage("qualified", "Qualified", "#06b6d4", Open),
            stage("matched", "Matched", "#16a34a", Won),
            stage("declined", "Declined", "#6b7280", Lost),
            stage("on_hold", "On hold", "#a3a3a3", OnHold),
        ],
        fields: vec![
            field("partner_name", "Partner name", FieldType::Text, &[]),
            field("budget", "Budget", FieldType::Number, &[]),
            field(
                "embryos",
                "Embryo status",
                FieldType::Select,
                &["Not started", "In progress", "Ready"],
            ),
        ],
    }
}

/// Organization templates offered at setup (and used by `seed --demo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgTemplate {
    Marketing,
    Surrogacy,
}

impl OrgTemplate {
    pub fn parse(input: &str) -> Result<OrgTemplate, String> {
        match input.trim() {
            "" | "marketing" => Ok(OrgTemplate::Marketing),
            "surrogacy" => Ok(OrgTemplate::Surrogacy),
            _ => Err("must be marketing or surrogacy".to_owned()),
        }
    }

    pub fn pipelines(self) -> Vec<PipelineSpec> {
        match self {
            OrgTemplate::Marketing => vec![default_leads_pipeline()],
            OrgTemplate::Surrogacy => vec![surrogacy_cases_pipeline(), intended_parents_pipeline()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn templates_are_valid() {
        for spec in [
            default_leads_pipeline(),
            surrogacy_cases_pipeline(),
            intended_parents_pipeline(),
        ] {
            let name = spec.name.clone();
            assert_eq!(spec.clone().validated(), Ok(spec), "{name}");
        }
    }

    #[test]
    fn invalid_specs_name_each_field() {
        let mut spec = default_leads_pipeline();
        spec.stages[1].key = "New Stage".into();
        spec.stages[2].key = "new".into();
        spec.stages[3].color = "blue".into();
        spec.stages[4].return_stage = Some("nowhere".into());
        spec.fields[0].field_type = FieldType::Select;
        let errors = spec.validated().expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for expected in [
            "stages[1].key",
            "stages[2].key",
            "stages[3].color",
            "stages[4].return_stage",
            "stages[4].owner_role",
            "fields[0].options",
        ] {
            assert!(
                fields.contains(&expected),
                "{expected} missing from {fields:?}"
            );
        }
    }

    #[test]
    fn intake_hands_off_and_loses_the_case() {
        let cases = surrogacy_cases_pipeline();
        assert!(
            cases
                .check_move(Role::Intake, "approved", "pending_handoff")
                .is_ok()
        );
        assert!(!cases.may_work(Role::Intake, "pending_handoff"));
        assert!(matches!(
            cases.check_move(Role::Intake, "approved", "pending_match"),
            Err(MoveRefused::Forbidden(_))
        ));
        assert_eq!(
            cases
                .accept_target(Role::CaseManager, "pending_handoff")
                .map(|s| s.key.as_str()),
            Ok("pending_match")
        );
        assert_eq!(
            cases
                .deny_target(Role::CaseManager, "pending_handoff")
                .map(|s| s.key.as_str()),
            Ok("under_review")
        );
        assert!(
            cases
                .accept_target(Role::Intake, "pending_handoff")
                .is_err()
        );
        assert!(cases.accept_target(Role::CaseManager, "approved").is_err());
        assert_eq!(
            cases.hidden_stages(Role::Intake),
            vec![
                "pending_handoff",
                "pending_match",
                "matched",
                "in_journey",
                "delivered"
            ]
        );
        assert!(cases.hidden_stages(Role::Manager).is_empty());
        assert!(matches!(
            cases.check_move(Role::Manager, "new", "nowhere"),
            Err(MoveRefused::UnknownStage(_))
        ));
    }

    #[test]
    fn custom_fields_are_typed_and_normalized() {
        let mut spec = surrogacy_cases_pipeline();
        spec.fields.push(field("site", "Site", FieldType::Url, &[]));
        spec.fields.push(field(
            "langs",
            "Languages",
            FieldType::MultiSelect,
            &["English", "Spanish"],
        ));
        spec.fields[0].required = true;
        let input: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "height_in": 65,
            "insurance": "private",
            "langs": ["spanish", "English", "Spanish"],
            "site": "https://example.com/a",
            "has_given_birth": true,
        }))
        .expect("object");
        let out = spec.check_custom_fields(&input, "US", true).expect("valid");
        assert_eq!(out["insurance"], "Private");
        assert_eq!(out["langs"], serde_json::json!(["Spanish", "English"]));

        let bad: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "height_in": "tall",
            "insurance": "Gold",
            "site": "javascript:alert(1)",
            "nope": 1,
        }))
        .expect("object");
        let errors = spec
            .check_custom_fields(&bad, "US", true)
            .expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "custom_fields.nope",
                "custom_fields.height_in",
                "custom_fields.insurance",
                "custom_fields.site"
            ]
        );
        // A partial update only checks what it sends.
        let partial: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"weight_lb": 140})).expect("object");
        assert!(spec.check_custom_fields(&partial, "US", false).is_ok());
        assert!(spec.check_custom_fields(&partial, "US", true).is_err());
    }

    #[test]
    fn spreadsheet_cells_become_values() {
        let spec = surrogacy_cases_pipeline();
        let by_key = |k: &str| {
            spec.fields
                .iter()
                .find(|f| f.key == k)
                .expect("field")
                .clone()
        };
        assert_eq!(
            parse_field_text(&by_key("height_in"), "1,065", "US"),
            Ok(Some(serde_json::json!(1065.0)))
        );
        assert_eq!(
            parse_field_text(&by_key("has_given_birth"), "Yes", "US"),
            Ok(Some(Value::Bool(true)))
        );
        assert_eq!(parse_field_text(&by_key("insurance"), "  ", "US"), Ok(None));
        assert!(parse_field_text(&by_key("insurance"), "Gold", "US").is_err());
        assert_eq!(
            parse_date("2026-02-30"),
            Err("must be a date like 2026-01-31".to_owned())
        );
    }

    fn any_role() -> impl Strategy<Value = Role> {
        prop::sample::select(Role::ALL.to_vec())
    }

    fn any_template() -> impl Strategy<Value = PipelineSpec> {
        prop::sample::select(vec![
            default_leads_pipeline(),
            surrogacy_cases_pipeline(),
            intended_parents_pipeline(),
        ])
    }

    proptest! {
        #[test]
        fn moves_obey_stage_ownership(spec in any_template(), role in any_role(), from in 0usize..13, to in 0usize..13) {
            let from = spec.stages[from % spec.stages.len()].clone();
            let to = spec.stages[to % spec.stages.len()].clone();
            let result = spec.check_move(role, &from.key, &to.key);
            if !role.may_work_stage(from.owner_role) {
                prop_assert!(result.is_err());
            } else if to.is_handoff() || role.may_work_stage(to.owner_role) {
                prop_assert_eq!(result.map(|s| s.key.clone()), Ok(to.key.clone()));
            } else {
                prop_assert!(matches!(result, Err(MoveRefused::Forbidden(_))));
            }
            // Managers and above are never refused a stage of the pipeline.
            prop_assert!(spec.check_move(Role::Manager, &from.key, &to.key).is_ok());
        }

        #[test]
        fn handoffs_land_on_stages_of_the_pipeline(spec in any_template(), role in any_role(), at in 0usize..13) {
            let stage = spec.stages[at % spec.stages.len()].clone();
            let accepted = spec.accept_target(role, &stage.key);
            let denied = spec.deny_target(role, &stage.key);
            prop_assert_eq!(accepted.is_ok(), denied.is_ok());
            if let (Ok(accepted), Ok(denied)) = (accepted, denied) {
                prop_assert!(stage.is_handoff());
                prop_assert!(role.may_work_stage(stage.owner_role));
                prop_assert!(spec.stage(&accepted.key).is_some());
                prop_assert_eq!(Some(denied.key.clone()), stage.return_stage.clone());
                // The acceptor can work the record where it lands.
                prop_assert!(role.may_work_stage(accepted.owner_role));
            }
        }

        #[test]
        fn hidden_stages_are_exactly_the_unworkable_ones(spec in any_template(), role in any_role()) {
            let hidden = spec.hidden_stages(role);
            for stage in &spec.stages {
                prop_assert_eq!(hidden.contains(&stage.key.as_str()), !spec.may_work(role, &stage.key));
            }
        }
    }
}
