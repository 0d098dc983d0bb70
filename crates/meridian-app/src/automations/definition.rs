//! What an automation is: a trigger, conditions on the lead, and ordered actions (with waits and
//! if/else branches). Stored as JSON in each version; compiled to a flat list of instructions so a
//! run can stop at a wait and resume at an index.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// When an automation runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Trigger {
    /// A lead is created (in one pipeline, or any).
    LeadCreated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pipeline_id: Option<String>,
    },
    /// A lead moves between stages (optionally from and/or to given stages).
    StageChanged {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pipeline_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    /// One of the lead's fields changes (`email`, `phone`, `custom_fields.budget`, ...).
    FieldChanged { field: String },
    /// A lead is assigned to someone.
    LeadAssigned,
    /// A task on a lead is due today (`overdue: false`) or overdue (`true`); checked daily.
    TaskDue {
        #[serde(default)]
        overdue: bool,
    },
    /// A lead arrives through an inbound form (one, or any).
    InboundReceived {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        form_id: Option<String>,
    },
    /// People run it on selected leads.
    Manual,
    /// On a cron schedule (UTC), for every lead in the pipeline (and stage, if given) that meets
    /// the conditions, at most [`SCHEDULE_LIMIT`] leads a tick.
    Schedule {
        cron: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pipeline_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage: Option<String>,
    },
}

/// Leads one scheduled tick runs on: a schedule over a huge pipeline should narrow it with a
/// stage or conditions rather than start a million runs.
pub const SCHEDULE_LIMIT: i64 = 1_000;

impl Trigger {
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::LeadCreated { .. } => "lead_created",
            Trigger::StageChanged { .. } => "stage_changed",
            Trigger::FieldChanged { .. } => "field_changed",
            Trigger::LeadAssigned => "lead_assigned",
            Trigger::TaskDue { .. } => "task_due",
            Trigger::Manual => "manual",
            Trigger::InboundReceived { .. } => "inbound_received",
            Trigger::Schedule { .. } => "schedule",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Match {
    #[default]
    All,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Equals,
    NotEquals,
    Contains,
    In,
    GreaterThan,
    LessThan,
    IsEmpty,
    IsNotEmpty,
}

/// One comparison on a lead field (`first_name`, `source`, `stage`, `tags`,
/// `custom_fields.budget`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rule {
    pub field: String,
    pub op: Op,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub value: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Conditions {
    #[serde(default, rename = "match")]
    pub match_: Match,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// Who gets a task or a lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum Assignee {
    /// The lead's owner (assignee).
    Owner,
    User {
        user_id: String,
    },
    /// The next member of this role in turn (round-robin among active members).
    RoundRobin {
        role: String,
    },
}

/// Who an in-app notification goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum Audience {
    /// The lead's owner.
    Owner,
    User {
        user_id: String,
    },
    /// Every active member with this role.
    Role {
        role: String,
    },
}

/// One step of an automation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    SendEmail {
        template_id: String,
    },
    StartSequence {
        sequence_id: String,
    },
    StopSequence {
        sequence_id: String,
    },
    CreateTask {
        title: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task_type: Option<String>,
        /// Due this long after the step runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due_in_minutes: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assignee: Option<Assignee>,
    },
    Assign {
        assignee: Assignee,
    },
    ChangeStage {
        stage: String,
    },
    AddTag {
        tag: String,
    },
    RemoveTag {
        tag: String,
    },
    /// Sets a custom field (`value` null clears it).
    SetField {
        field: String,
        #[serde(default)]
        #[schema(value_type = Object)]
        value: Value,
    },
    /// Sends the lead to one of the organization's webhook endpoints as an `automation.webhook`
    /// event (signed, retried and logged like every delivery).
    Webhook {
        webhook_id: String,
    },
    /// Sends an in-app notification about the lead.
    Notify {
        audience: Audience,
        message: String,
    },
    /// Waits a number of minutes, or until the date in a custom field.
    Wait {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        minutes: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_field: Option<String>,
    },
    /// If the conditions hold, the `then` actions; otherwise the `else` ones.
    Branch {
        conditions: Conditions,
        #[serde(default)]
        #[schema(no_recursion)]
        then: Vec<Action>,
        #[serde(default, rename = "else")]
        #[schema(no_recursion)]
        otherwise: Vec<Action>,
    },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::SendEmail { .. } => "send_email",
            Action::StartSequence { .. } => "start_sequence",
            Action::StopSequence { .. } => "stop_sequence",
            Action::CreateTask { .. } => "create_task",
            Action::Assign { .. } => "assign",
            Action::ChangeStage { .. } => "change_stage",
            Action::AddTag { .. } => "add_tag",
            Action::RemoveTag { .. } => "remove_tag",
            Action::SetField { .. } => "set_field",
            Action::Notify { .. } => "notify",
            Action::Webhook { .. } => "webhook",
            Action::Wait { .. } => "wait",
            Action::Branch { .. } => "branch",
        }
    }
}

/// A whole automation as stored in a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Definition {
    pub trigger: Trigger,
    #[serde(default)]
    pub conditions: Conditions,
    pub actions: Vec<Action>,
}

/// The actions flattened: branches become a test that jumps to the `else` block and a jump over
/// it, so a run's position is one number.
#[derive(Debug, Clone, PartialEq)]
pub enum Instruction {
    Do(Action),
    Wait {
        minutes: Option<i64>,
        until_field: Option<String>,
    },
    /// Continue if the conditions hold, else go to `otherwise`.
    Test {
        conditions: Conditions,
        otherwise: usize,
    },
    Jump(usize),
}

pub fn compile(actions: &[Action]) -> Vec<Instruction> {
    let mut program = Vec::new();
    emit(actions, &mut program);
    program
}

fn emit(actions: &[Action], program: &mut Vec<Instruction>) {
    for action in actions {
        match action {
            Action::Branch {
                conditions,
                then,
                otherwise,
            } => {
                let test = program.len();
                program.push(Instruction::Jump(0));
                emit(then, program);
                let jump = program.len();
                program.push(Instruction::Jump(0));
                let else_at = program.len();
                emit(otherwise, program);
                let end = program.len();
                program[test] = Instruction::Test {
                    conditions: conditions.clone(),
                    otherwise: else_at,
                };
                program[jump] = Instruction::Jump(end);
            }
            Action::Wait {
                minutes,
                until_field,
            } => program.push(Instruction::Wait {
                minutes: *minutes,
                until_field: until_field.clone(),
            }),
            other => program.push(Instruction::Do(other.clone())),
        }
    }
}

/// The lead as conditions see it: field name → value (custom fields as `custom_fields.KEY`, tags
/// as a list).
pub type Facts = BTreeMap<String, Value>;

fn is_empty(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.to_lowercase(),
        other => other.to_string().to_lowercase(),
    }
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Compares texts without regard to case, numbers as numbers, dates (ISO text) as text.
fn equal(a: &Value, b: &Value) -> bool {
    match (as_number(a), as_number(b)) {
        (Some(x), Some(y)) => (x - y).abs() < f64::EPSILON,
        _ => as_text(a) == as_text(b),
    }
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (as_number(a), as_number(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => match (a, b) {
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            _ => None,
        },
    }
}

impl Rule {
    pub fn holds(&self, facts: &Facts) -> bool {
        let actual = facts.get(&self.field);
        match self.op {
            Op::IsEmpty => is_empty(actual),
            Op::IsNotEmpty => !is_empty(actual),
            Op::Equals => actual.is_some_and(|a| match a {
                Value::Array(items) => items.iter().any(|i| equal(i, &self.value)),
                a => equal(a, &self.value),
            }),
            Op::NotEquals => !actual.is_some_and(|a| match a {
                Value::Array(items) => items.iter().any(|i| equal(i, &self.value)),
                a => equal(a, &self.value),
            }),
            Op::Contains => actual.is_some_and(|a| match a {
                Value::Array(items) => items.iter().any(|i| equal(i, &self.value)),
                a => as_text(a).contains(&as_text(&self.value)),
            }),
            Op::In => actual.is_some_and(|a| {
                self.value
                    .as_array()
                    .is_some_and(|options| options.iter().any(|o| equal(a, o)))
            }),
            Op::GreaterThan => actual
                .and_then(|a| order(a, &self.value))
                .is_some_and(std::cmp::Ordering::is_gt),
            Op::LessThan => actual
                .and_then(|a| order(a, &self.value))
                .is_some_and(std::cmp::Ordering::is_lt),
        }
    }
}

impl Conditions {
    /// No rules: always true.
    pub fn hold(&self, facts: &Facts) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        match self.match_ {
            Match::All => self.rules.iter().all(|r| r.holds(facts)),
            Match::Any => self.rules.iter().any(|r| r.holds(facts)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts() -> Facts {
        [
            ("first_name", json!("Ana")),
            ("source", json!("web_form")),
            ("tags", json!(["vip", "spring"])),
            ("custom_fields.budget", json!(5000)),
            ("email", Value::Null),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn rule(field: &str, op: Op, value: Value) -> Rule {
        Rule {
            field: field.to_owned(),
            op,
            value,
        }
    }

    #[test]
    fn rules_compare_text_numbers_lists_and_emptiness() {
        let f = facts();
        assert!(rule("first_name", Op::Equals, json!("ana")).holds(&f));
        assert!(rule("source", Op::In, json!(["meta", "web_form"])).holds(&f));
        assert!(rule("tags", Op::Contains, json!("VIP")).holds(&f));
        assert!(rule("tags", Op::NotEquals, json!("cold")).holds(&f));
        assert!(rule("custom_fields.budget", Op::GreaterThan, json!("4000")).holds(&f));
        assert!(!rule("custom_fields.budget", Op::LessThan, json!(100)).holds(&f));
        assert!(rule("email", Op::IsEmpty, Value::Null).holds(&f));
        assert!(rule("missing", Op::IsEmpty, Value::Null).holds(&f));
        assert!(!rule("first_name", Op::IsEmpty, Value::Null).holds(&f));
        let any = Conditions {
            match_: Match::Any,
            rules: vec![
                rule("first_name", Op::Equals, json!("Bo")),
                rule("source", Op::Equals, json!("web_form")),
            ],
        };
        assert!(any.hold(&f));
        let all = Conditions {
            match_: Match::All,
            ..any
        };
        assert!(!all.hold(&f));
        assert!(Conditions::default().hold(&f));
    }

    #[test]
    fn branches_compile_to_tests_and_jumps() {
        let definition: Definition = serde_json::from_value(json!({
            "trigger": {"type": "lead_created"},
            "actions": [
                {"type": "add_tag", "tag": "new"},
                {"type": "branch", "conditions": {"rules": [{"field": "source", "op": "equals", "value": "meta"}]},
                 "then": [{"type": "add_tag", "tag": "meta"}, {"type": "wait", "minutes": 60}],
                 "else": [{"type": "add_tag", "tag": "other"}]},
                {"type": "change_stage", "stage": "contacted"}
            ]
        }))
        .expect("parses");
        let program = compile(&definition.actions);
        assert_eq!(program.len(), 7);
        assert!(matches!(program[1], Instruction::Test { otherwise: 5, .. }));
        assert!(matches!(
            program[3],
            Instruction::Wait {
                minutes: Some(60),
                ..
            }
        ));
        assert_eq!(program[4], Instruction::Jump(6));
        assert!(
            matches!(&program[6], Instruction::Do(Action::ChangeStage { stage }) if stage == "contacted")
        );
    }
}
