//! One condition row and one step row of the editor's form, as typed: each step row holds the
//! fields of every step type, so switching a type keeps what was typed. Each turns into its part of
//! the definition, with the problems only the form sees (a choice not made, a number that is not
//! one), and back.

use meridian_core::FieldError;
use meridian_core::pipeline::{FieldDef, parse_field_text};
use serde_json::Value;

use crate::automations::definition::{Action, Assignee, Audience, Op, Rule};

/// The longest wait or task delay: a year, in minutes.
const MAX_MINUTES: i64 = 525_600;

/// Messages for one row, by the form's name of the field ("" for the row as a whole).
#[derive(Debug, Clone, Default)]
pub struct RowErrors(Vec<(&'static str, String)>);

impl RowErrors {
    pub fn get(&self, attr: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(a, _)| *a == attr)
            .map(|(_, m)| m.as_str())
    }

    pub fn any(&self) -> bool {
        !self.0.is_empty()
    }

    /// Messages about the row as a whole.
    pub fn general(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(a, _)| a.is_empty())
            .map(|(_, m)| m.as_str())
            .collect()
    }

    pub(super) fn push(&mut self, attr: &'static str, message: &str) {
        self.0.push((attr, sentence(message)));
    }
}

/// "is required" → "Is required", for a message shown on its own under a field.
pub fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One condition as typed.
#[derive(Debug, Clone, Default)]
pub struct RuleRow {
    pub field: String,
    pub op: String,
    pub value: String,
    pub errors: RowErrors,
}

impl RuleRow {
    pub fn blank() -> RuleRow {
        RuleRow {
            op: "equals".to_owned(),
            ..RuleRow::default()
        }
    }

    pub(super) fn is_blank(&self) -> bool {
        self.field.trim().is_empty() && self.value.trim().is_empty()
    }

    pub(super) fn set(&mut self, attr: &str, value: String) {
        match attr {
            "field" => self.field = value,
            "op" => self.op = value,
            "value" => self.value = value,
            _ => {}
        }
    }

    pub(super) fn from_rule(rule: &Rule) -> RuleRow {
        RuleRow {
            field: rule.field.clone(),
            op: json_name(&rule.op),
            value: value_text(&rule.value, ", "),
            errors: RowErrors::default(),
        }
    }

    pub(super) fn rule(&self, at: &str, problems: &mut Vec<FieldError>) -> Rule {
        let op: Op = serde_json::from_value(Value::String(self.op.clone())).unwrap_or_else(|_| {
            problem(problems, format!("{at}.op"), "Choose a comparison.");
            Op::Equals
        });
        if self.field.trim().is_empty() {
            problem(problems, format!("{at}.field"), "Choose a field.");
        }
        let value = match op {
            Op::IsEmpty | Op::IsNotEmpty => Value::Null,
            Op::In => Value::Array(
                self.value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(scalar)
                    .collect(),
            ),
            _ => scalar(self.value.trim()),
        };
        Rule {
            field: self.field.trim().to_owned(),
            op,
            value,
        }
    }
}

/// One step as typed: the fields of every step type, so a type change keeps what was typed.
#[derive(Debug, Clone, Default)]
pub struct ActionRow {
    pub kind: String,
    pub template_id: String,
    pub sequence_id: String,
    pub webhook_id: String,
    pub title: String,
    pub task_type: String,
    pub due_amount: String,
    pub due_unit: String,
    /// `owner`, `user` or `round_robin`.
    pub assignee: String,
    pub assignee_user: String,
    pub assignee_role: String,
    pub stage: String,
    pub tag: String,
    /// A custom field's key (set_field).
    pub field: String,
    pub value: String,
    /// `owner`, `user` or `role`.
    pub audience: String,
    pub audience_user: String,
    pub audience_role: String,
    pub message: String,
    /// `minutes` (for a time) or `until` (a date field).
    pub wait: String,
    pub wait_amount: String,
    pub wait_unit: String,
    pub wait_field: String,
    pub errors: RowErrors,
}

impl ActionRow {
    /// A new step of `kind` with sensible defaults.
    pub fn blank(kind: &str) -> ActionRow {
        ActionRow {
            kind: kind.to_owned(),
            task_type: "follow_up".to_owned(),
            due_amount: "1".to_owned(),
            due_unit: "days".to_owned(),
            assignee: "owner".to_owned(),
            audience: "owner".to_owned(),
            wait: "minutes".to_owned(),
            wait_amount: "1".to_owned(),
            wait_unit: "days".to_owned(),
            ..ActionRow::default()
        }
    }

    /// Whether the step's type is one of the space-separated `kinds` (its fields show).
    pub fn is(&self, kinds: &str) -> bool {
        kinds.split(' ').any(|k| k == self.kind)
    }

    pub(super) fn set(&mut self, attr: &str, value: String) {
        let slot = match attr {
            "type" => &mut self.kind,
            "template_id" => &mut self.template_id,
            "sequence_id" => &mut self.sequence_id,
            "webhook_id" => &mut self.webhook_id,
            "title" => &mut self.title,
            "task_type" => &mut self.task_type,
            "due_amount" => &mut self.due_amount,
            "due_unit" => &mut self.due_unit,
            "assignee" => &mut self.assignee,
            "assignee_user" => &mut self.assignee_user,
            "assignee_role" => &mut self.assignee_role,
            "stage" => &mut self.stage,
            "tag" => &mut self.tag,
            "field" => &mut self.field,
            "value" => &mut self.value,
            "audience" => &mut self.audience,
            "audience_user" => &mut self.audience_user,
            "audience_role" => &mut self.audience_role,
            "message" => &mut self.message,
            "wait" => &mut self.wait,
            "wait_amount" => &mut self.wait_amount,
            "wait_unit" => &mut self.wait_unit,
            "wait_field" => &mut self.wait_field,
            _ => return,
        };
        *slot = value;
    }

    fn set_assignee(&mut self, assignee: &Assignee) {
        match assignee {
            Assignee::Owner => self.assignee = "owner".to_owned(),
            Assignee::User { user_id } => {
                self.assignee = "user".to_owned();
                self.assignee_user = user_id.clone();
            }
            Assignee::RoundRobin { role } => {
                self.assignee = "round_robin".to_owned();
                self.assignee_role = role.clone();
            }
        }
    }

    pub(super) fn from_action(action: &Action) -> ActionRow {
        let mut row = ActionRow::blank(action.name());
        match action {
            Action::SendEmail { template_id } => row.template_id = template_id.clone(),
            Action::StartSequence { sequence_id } | Action::StopSequence { sequence_id } => {
                row.sequence_id = sequence_id.clone();
            }
            Action::CreateTask {
                title,
                task_type,
                due_in_minutes,
                assignee,
            } => {
                row.title = title.clone();
                row.task_type = task_type.clone().unwrap_or_default();
                (row.due_amount, row.due_unit) = match due_in_minutes {
                    Some(m) => amount_and_unit(*m),
                    None => (String::new(), "days".to_owned()),
                };
                if let Some(a) = assignee {
                    row.set_assignee(a);
                }
            }
            Action::Assign { assignee } => row.set_assignee(assignee),
            Action::ChangeStage { stage } => row.stage = stage.clone(),
            Action::Webhook { webhook_id } => row.webhook_id = webhook_id.clone(),
            Action::AddTag { tag } | Action::RemoveTag { tag } => row.tag = tag.clone(),
            Action::SetField { field, value } => {
                row.field = field
                    .strip_prefix("custom_fields.")
                    .unwrap_or(field)
                    .to_owned();
                row.value = value_text(value, "; ");
            }
            Action::Notify { audience, message } => {
                row.message = message.clone();
                match audience {
                    Audience::Owner => row.audience = "owner".to_owned(),
                    Audience::User { user_id } => {
                        row.audience = "user".to_owned();
                        row.audience_user = user_id.clone();
                    }
                    Audience::Role { role } => {
                        row.audience = "role".to_owned();
                        row.audience_role = role.clone();
                    }
                }
            }
            Action::Wait {
                minutes,
                until_field,
            } => match until_field {
                Some(field) => {
                    row.wait = "until".to_owned();
                    row.wait_field = field.clone();
                }
                None => (row.wait_amount, row.wait_unit) = amount_and_unit(minutes.unwrap_or(0)),
            },
            Action::Branch { .. } => {}
        }
        row
    }

    fn assignee_of(&self, at: &str, problems: &mut Vec<FieldError>) -> Assignee {
        match self.assignee.as_str() {
            "user" => Assignee::User {
                user_id: required(
                    &self.assignee_user,
                    at,
                    "assignee.user_id",
                    "Choose a member.",
                    problems,
                ),
            },
            "round_robin" => Assignee::RoundRobin {
                role: required(
                    &self.assignee_role,
                    at,
                    "assignee.role",
                    "Choose a role.",
                    problems,
                ),
            },
            _ => Assignee::Owner,
        }
    }

    fn audience_of(&self, at: &str, problems: &mut Vec<FieldError>) -> Audience {
        match self.audience.as_str() {
            "user" => Audience::User {
                user_id: required(
                    &self.audience_user,
                    at,
                    "audience.user_id",
                    "Choose a member.",
                    problems,
                ),
            },
            "role" => Audience::Role {
                role: required(
                    &self.audience_role,
                    at,
                    "audience.role",
                    "Choose a role.",
                    problems,
                ),
            },
            _ => Audience::Owner,
        }
    }

    /// The step the row describes (`at` is its path, for problems).
    pub(super) fn action(
        &self,
        at: &str,
        custom: &[FieldDef],
        region: &str,
        problems: &mut Vec<FieldError>,
    ) -> Action {
        let text = |value: &str| value.trim().to_owned();
        match self.kind.as_str() {
            "send_email" => Action::SendEmail {
                template_id: required(
                    &self.template_id,
                    at,
                    "template_id",
                    "Choose a template.",
                    problems,
                ),
            },
            "start_sequence" => Action::StartSequence {
                sequence_id: required(
                    &self.sequence_id,
                    at,
                    "sequence_id",
                    "Choose a sequence.",
                    problems,
                ),
            },
            "stop_sequence" => Action::StopSequence {
                sequence_id: required(
                    &self.sequence_id,
                    at,
                    "sequence_id",
                    "Choose a sequence.",
                    problems,
                ),
            },
            "create_task" => Action::CreateTask {
                title: text(&self.title),
                task_type: Some(text(&self.task_type)).filter(|t| !t.is_empty()),
                due_in_minutes: minutes(
                    &self.due_amount,
                    &self.due_unit,
                    format!("{at}.due_in_minutes"),
                    problems,
                ),
                assignee: Some(self.assignee_of(at, problems)),
            },
            "assign" => Action::Assign {
                assignee: self.assignee_of(at, problems),
            },
            "change_stage" => Action::ChangeStage {
                stage: required(&self.stage, at, "stage", "Choose a stage.", problems),
            },
            "webhook" => Action::Webhook {
                webhook_id: required(
                    &self.webhook_id,
                    at,
                    "webhook_id",
                    "Choose a webhook endpoint.",
                    problems,
                ),
            },
            "add_tag" => Action::AddTag {
                tag: text(&self.tag),
            },
            "remove_tag" => Action::RemoveTag {
                tag: text(&self.tag),
            },
            "set_field" => {
                let field = required(&self.field, at, "field", "Choose a custom field.", problems);
                let value = match custom.iter().find(|d| d.key == field) {
                    Some(def) => match parse_field_text(def, &self.value, region) {
                        Ok(value) => value.unwrap_or(Value::Null),
                        Err(message) => {
                            problem(problems, format!("{at}.value"), &message);
                            Value::Null
                        }
                    },
                    None => Some(text(&self.value))
                        .filter(|v| !v.is_empty())
                        .map_or(Value::Null, Value::String),
                };
                Action::SetField { field, value }
            }
            "notify" => Action::Notify {
                audience: self.audience_of(at, problems),
                message: text(&self.message),
            },
            "wait" if self.wait == "until" => Action::Wait {
                minutes: None,
                until_field: Some(required(
                    &self.wait_field,
                    at,
                    "until_field",
                    "Choose a date field.",
                    problems,
                )),
            },
            "wait" => {
                let field = format!("{at}.minutes");
                let waited = minutes(&self.wait_amount, &self.wait_unit, field.clone(), problems);
                if self.wait_amount.trim().is_empty() {
                    problem(problems, field, "Enter how long to wait.");
                }
                Action::Wait {
                    minutes: Some(waited.unwrap_or(0)),
                    until_field: None,
                }
            }
            _ => {
                problem(problems, at.to_owned(), "Choose what this step does.");
                Action::AddTag { tag: String::new() }
            }
        }
    }
}

fn problem(problems: &mut Vec<FieldError>, field: String, message: &str) {
    problems.push(FieldError {
        field,
        message: message.to_owned(),
    });
}

/// The trimmed value, with a problem at `at.attr` when it is empty.
pub(super) fn required(
    value: &str,
    at: &str,
    attr: &str,
    message: &str,
    problems: &mut Vec<FieldError>,
) -> String {
    let value = value.trim();
    if value.is_empty() {
        problem(problems, format!("{at}.{attr}"), message);
    }
    value.to_owned()
}

/// An amount of minutes, hours or days in minutes (none when left empty).
fn minutes(amount: &str, unit: &str, field: String, problems: &mut Vec<FieldError>) -> Option<i64> {
    let amount = amount.trim();
    if amount.is_empty() {
        return None;
    }
    let per = match unit {
        "minutes" => 1,
        "hours" => 60,
        _ => 1440,
    };
    match amount.parse::<i64>() {
        Ok(n) if n >= 0 && n.saturating_mul(per) <= MAX_MINUTES => Some(n * per),
        Ok(n) if n >= 0 => {
            problem(problems, field, "At most a year (365 days).");
            None
        }
        _ => {
            problem(problems, field, "Enter a whole number, 0 or more.");
            None
        }
    }
}

/// Minutes as the form shows them: whole days or hours when they divide evenly.
fn amount_and_unit(minutes: i64) -> (String, String) {
    let (amount, unit) = if minutes > 0 && minutes % 1440 == 0 {
        (minutes / 1440, "days")
    } else if minutes > 0 && minutes % 60 == 0 {
        (minutes / 60, "hours")
    } else {
        (minutes, "minutes")
    };
    (amount.to_string(), unit.to_owned())
}

/// A typed value as JSON: whole numbers, decimals and true/false as themselves, the rest as text.
fn scalar(text: &str) -> Value {
    if let Ok(n) = text.parse::<i64>()
        && n.to_string() == text
    {
        return Value::from(n);
    }
    if let Ok(x) = text.parse::<f64>()
        && x.to_string() == text
        && let Some(n) = serde_json::Number::from_f64(x)
    {
        return Value::Number(n);
    }
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(text.to_owned()),
    }
}

/// A value as the form shows it (lists joined with `sep`).
fn value_text(value: &Value, sep: &str) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|v| value_text(v, sep))
            .collect::<Vec<_>>()
            .join(sep),
        other => other.to_string(),
    }
}

/// An enum's name on the wire (`Op::GreaterThan` → `greater_than`).
fn json_name(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_values_keep_their_kind() {
        assert_eq!(scalar("5000"), json!(5000));
        assert_eq!(scalar("2.5"), json!(2.5));
        assert_eq!(scalar("00123"), json!("00123"));
        assert_eq!(scalar("true"), json!(true));
        assert_eq!(scalar("web_form"), json!("web_form"));
        assert_eq!(sentence("is required"), "Is required");
    }
}
