//! The editor's form as typed: the trigger's fields, the condition rows and the step rows, read
//! from the posted body, filled from a stored definition, and turned back into a definition with
//! the problems only the form can see. Refusals name paths (`definition.actions[1].stage`); they
//! are handed to the row and field that shows them.

use std::collections::BTreeMap;

use meridian_core::FieldError;
use meridian_core::pipeline::FieldDef;
use serde_json::Value;

use super::ACTIONS;
use super::rows::{ActionRow, RuleRow, required};
use crate::automations::definition::{Action, Conditions, Definition, Match, Trigger};

/// Row indexes above this are ignored (a definition holds at most 50 steps).
const MAX_ROW_INDEX: usize = 199;

/// The whole form as typed (or as stored).
#[derive(Debug, Clone, Default)]
pub struct EditorForm {
    pub name: String,
    pub enabled: bool,
    pub trigger: String,
    pub pipeline_id: String,
    pub from: String,
    pub to: String,
    pub trigger_field: String,
    pub overdue: bool,
    pub form_id: String,
    pub cron: String,
    /// The stage a schedule runs on.
    pub stage: String,
    pub match_any: bool,
    pub rules: Vec<RuleRow>,
    pub actions: Vec<ActionRow>,
    /// The type of step "Add" adds.
    pub new_action: String,
    /// The definition as JSON (the JSON editor's text).
    pub json: String,
    /// What the button pressed asks for: save (the default), save_json, refresh, add_condition,
    /// remove_condition:N, add_action, remove_action:N, up:N, down:N.
    pub intent: String,
}

impl EditorForm {
    /// A new automation: on when saved, run for new leads.
    pub fn blank() -> EditorForm {
        EditorForm {
            enabled: true,
            trigger: "lead_created".to_owned(),
            new_action: "send_email".to_owned(),
            ..EditorForm::default()
        }
    }

    pub fn from_definition(name: &str, enabled: bool, definition: &Definition) -> EditorForm {
        let mut form = EditorForm {
            name: name.to_owned(),
            enabled,
            trigger: definition.trigger.kind().to_owned(),
            match_any: definition.conditions.match_ == Match::Any,
            rules: definition
                .conditions
                .rules
                .iter()
                .map(RuleRow::from_rule)
                .collect(),
            actions: definition
                .actions
                .iter()
                .map(ActionRow::from_action)
                .collect(),
            new_action: "send_email".to_owned(),
            json: pretty(definition),
            ..EditorForm::default()
        };
        match &definition.trigger {
            Trigger::LeadCreated { pipeline_id } => {
                form.pipeline_id = pipeline_id.clone().unwrap_or_default();
            }
            Trigger::StageChanged {
                pipeline_id,
                from,
                to,
            } => {
                form.pipeline_id = pipeline_id.clone().unwrap_or_default();
                form.from = from.clone().unwrap_or_default();
                form.to = to.clone().unwrap_or_default();
            }
            Trigger::FieldChanged { field } => form.trigger_field = field.clone(),
            Trigger::TaskDue { overdue } => form.overdue = *overdue,
            Trigger::InboundReceived { form_id } => {
                form.form_id = form_id.clone().unwrap_or_default();
            }
            Trigger::Schedule {
                cron,
                pipeline_id,
                stage,
            } => {
                form.cron = cron.clone();
                form.pipeline_id = pipeline_id.clone().unwrap_or_default();
                form.stage = stage.clone().unwrap_or_default();
            }
            Trigger::LeadAssigned | Trigger::Manual => {}
        }
        form
    }

    /// Reads a posted form (rows in the order of their indexes).
    pub fn parse(body: &[u8]) -> EditorForm {
        let mut form = EditorForm::default();
        let mut rules: BTreeMap<usize, RuleRow> = BTreeMap::new();
        let mut actions: BTreeMap<usize, ActionRow> = BTreeMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            let value = value.into_owned();
            match name.as_ref() {
                "name" => form.name = value,
                "enabled" => form.enabled = value == "1",
                "trigger" => form.trigger = value,
                "pipeline_id" => form.pipeline_id = value,
                "from" => form.from = value,
                "to" => form.to = value,
                "trigger_field" => form.trigger_field = value,
                "overdue" => form.overdue = value == "1",
                "form_id" => form.form_id = value,
                "cron" => form.cron = value,
                "stage" => form.stage = value,
                "match" => form.match_any = value == "any",
                "new_action" => form.new_action = value,
                "definition_json" => form.json = value,
                "intent" => form.intent = value,
                other => {
                    if let Some((i, attr)) = indexed(other, "rules") {
                        rules.entry(i).or_default().set(attr, value);
                    } else if let Some((i, attr)) = indexed(other, "actions") {
                        actions.entry(i).or_default().set(attr, value);
                    }
                }
            }
        }
        form.rules = rules.into_values().collect();
        form.actions = actions.into_values().collect();
        form
    }

    /// Whether the trigger is one of the space-separated `kinds` (its fields show).
    pub fn trigger_is(&self, kinds: &str) -> bool {
        kinds.split(' ').any(|k| k == self.trigger)
    }

    /// Drops condition rows left empty (an added row nobody filled in).
    pub fn drop_blank_rules(&mut self) {
        self.rules.retain(|r| !r.is_blank());
    }

    fn trigger_of(&self, problems: &mut Vec<FieldError>) -> Trigger {
        let given = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        match self.trigger.as_str() {
            "stage_changed" => Trigger::StageChanged {
                pipeline_id: given(&self.pipeline_id),
                from: given(&self.from),
                to: given(&self.to),
            },
            "field_changed" => Trigger::FieldChanged {
                field: required(
                    &self.trigger_field,
                    "definition.trigger",
                    "field",
                    "Choose the field to watch.",
                    problems,
                ),
            },
            "lead_assigned" => Trigger::LeadAssigned,
            "task_due" => Trigger::TaskDue {
                overdue: self.overdue,
            },
            "inbound_received" => Trigger::InboundReceived {
                form_id: given(&self.form_id),
            },
            "schedule" => Trigger::Schedule {
                cron: required(
                    &self.cron,
                    "definition.trigger",
                    "cron",
                    "Enter when it runs, as a cron expression.",
                    problems,
                ),
                pipeline_id: given(&self.pipeline_id),
                stage: given(&self.stage),
            },
            "manual" => Trigger::Manual,
            _ => Trigger::LeadCreated {
                pipeline_id: given(&self.pipeline_id),
            },
        }
    }

    /// The definition the form describes, and what is wrong with it that only the form sees
    /// (a choice not made, a number that is not one). The service checks the rest.
    pub fn definition(&self, custom: &[FieldDef], region: &str) -> (Definition, Vec<FieldError>) {
        let mut problems = Vec::new();
        let trigger = self.trigger_of(&mut problems);
        let rules = self
            .rules
            .iter()
            .enumerate()
            .map(|(n, r)| r.rule(&format!("definition.conditions.rules[{n}]"), &mut problems))
            .collect();
        let actions = self
            .actions
            .iter()
            .enumerate()
            .map(|(n, a)| {
                a.action(
                    &format!("definition.actions[{n}]"),
                    custom,
                    region,
                    &mut problems,
                )
            })
            .collect();
        let definition = Definition {
            trigger,
            conditions: Conditions {
                match_: if self.match_any {
                    Match::Any
                } else {
                    Match::All
                },
                rules,
            },
            actions,
        };
        (definition, problems)
    }

    /// Hands each refusal to the row showing it; returns the others (name, trigger, the step
    /// list as a whole, anything unknown).
    pub fn distribute(&mut self, errors: Vec<FieldError>) -> Vec<FieldError> {
        let mut rest = Vec::new();
        for error in errors {
            if let Some((i, attr)) = row_path(&error.field, "definition.actions[")
                && let Some(row) = self.actions.get_mut(i)
            {
                row.errors.push(action_attr(attr), &error.message);
                continue;
            }
            if let Some((i, attr)) = row_path(&error.field, "definition.conditions.rules[")
                && let Some(row) = self.rules.get_mut(i)
            {
                let attr = match attr {
                    "field" => "field",
                    "op" => "op",
                    "value" => "value",
                    _ => "",
                };
                row.errors.push(attr, &error.message);
                continue;
            }
            rest.push(error);
        }
        rest
    }

    /// Applies a row intent (add, remove, move); false when the intent is not one.
    pub fn apply(&mut self, intent: &str) -> bool {
        let (verb, n) = match intent.split_once(':') {
            Some((verb, n)) => (verb, n.parse::<usize>().ok()),
            None => (intent, None),
        };
        match (verb, n) {
            ("refresh", _) => {}
            ("add_condition", _) => self.rules.push(RuleRow::blank()),
            ("remove_condition", Some(n)) if n < self.rules.len() => {
                self.rules.remove(n);
            }
            ("add_action", _) => {
                let kind = ACTIONS
                    .iter()
                    .find(|(k, _)| *k == self.new_action)
                    .map_or("send_email", |(k, _)| k);
                self.actions.push(ActionRow::blank(kind));
            }
            ("remove_action", Some(n)) if n < self.actions.len() => {
                self.actions.remove(n);
            }
            ("up", Some(n)) if n > 0 && n < self.actions.len() => self.actions.swap(n - 1, n),
            ("down", Some(n)) if n + 1 < self.actions.len() => self.actions.swap(n, n + 1),
            ("remove_condition" | "remove_action" | "up" | "down", _) => {}
            _ => return false,
        }
        true
    }
}

/// The form's field for a refused part of a step (`assignee.role` → `assignee_role`).
fn action_attr(attr: &str) -> &'static str {
    match attr {
        "template_id" => "template_id",
        "sequence_id" => "sequence_id",
        "webhook_id" => "webhook_id",
        "title" => "title",
        "task_type" => "task_type",
        "due_in_minutes" => "due_amount",
        "assignee" | "assignee.to" => "assignee",
        "assignee.user_id" => "assignee_user",
        "assignee.role" => "assignee_role",
        "stage" => "stage",
        "tag" => "tag",
        "field" => "field",
        "value" => "value",
        "audience" | "audience.to" => "audience",
        "audience.user_id" => "audience_user",
        "audience.role" => "audience_role",
        "message" => "message",
        "minutes" => "wait_amount",
        "until_field" => "wait_field",
        _ => "",
    }
}

/// `definition.actions[2].assignee.role` → (2, "assignee.role"); `…[2]` → (2, "").
fn row_path<'a>(field: &'a str, prefix: &str) -> Option<(usize, &'a str)> {
    let rest = field.strip_prefix(prefix)?;
    let (index, attr) = rest.split_once(']')?;
    let attr = if attr.is_empty() {
        ""
    } else {
        attr.strip_prefix('.')?
    };
    Some((index.parse().ok()?, attr))
}

/// `actions[3][title]` → (3, "title").
fn indexed<'a>(name: &'a str, list: &str) -> Option<(usize, &'a str)> {
    let rest = name.strip_prefix(list)?.strip_prefix('[')?;
    let (index, rest) = rest.split_once("][")?;
    let attr = rest.strip_suffix(']')?;
    let index: usize = index.parse().ok()?;
    (index <= MAX_ROW_INDEX).then_some((index, attr))
}

pub fn pretty(definition: &Definition) -> String {
    serde_json::to_string_pretty(definition).unwrap_or_default()
}

pub fn has_branches(definition: &Definition) -> bool {
    definition
        .actions
        .iter()
        .any(|a| matches!(a, Action::Branch { .. }))
}

/// Reads the JSON editor's text, naming where it does not fit (`definition.actions[0].type`).
pub fn parse_definition(text: &str) -> Result<Definition, FieldError> {
    let value: Value = serde_json::from_str(text).map_err(|e| FieldError {
        field: "definition_json".to_owned(),
        message: format!("this is not valid JSON: {e}"),
    })?;
    serde_path_to_error::deserialize::<_, Definition>(value).map_err(|e| {
        let path = e.path().to_string();
        FieldError {
            field: if path == "." || path.is_empty() {
                "definition".to_owned()
            } else {
                format!("definition.{path}")
            },
            message: e.into_inner().to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn definition(value: Value) -> Definition {
        serde_json::from_value(value).expect("definition")
    }

    #[test]
    fn a_stored_definition_round_trips_through_the_form() {
        let stored = definition(json!({
            "trigger": {"type": "stage_changed", "to": "qualified"},
            "conditions": {"match": "any", "rules": [
                {"field": "source", "op": "in", "value": ["referral", "web_form"]},
                {"field": "custom_fields.budget", "op": "greater_than", "value": 5000},
                {"field": "email", "op": "is_not_empty"}]},
            "actions": [
                {"type": "send_email", "template_id": "t1"},
                {"type": "wait", "minutes": 2880},
                {"type": "create_task", "title": "Call back", "task_type": "call", "due_in_minutes": 90,
                 "assignee": {"to": "round_robin", "role": "intake"}},
                {"type": "notify", "audience": {"to": "role", "role": "manager"}, "message": "Look"},
                {"type": "wait", "until_field": "custom_fields.due"},
                {"type": "add_tag", "tag": "vip"},
                {"type": "webhook", "webhook_id": "w1"}]
        }));
        let form = EditorForm::from_definition("Follow-up", true, &stored);
        assert_eq!(form.actions[1].wait_amount, "2");
        assert_eq!(form.actions[1].wait_unit, "days");
        assert_eq!(form.actions[2].due_amount, "90");
        assert_eq!(form.actions[2].due_unit, "minutes");
        assert_eq!(form.rules[0].value, "referral, web_form");
        let (back, problems) = form.definition(&[], "US");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(back, stored);
        let scheduled = definition(json!({
            "trigger": {"type": "schedule", "cron": "0 9 * * 1", "stage": "new"},
            "actions": [{"type": "add_tag", "tag": "weekly"}]
        }));
        let form = EditorForm::from_definition("Weekly", false, &scheduled);
        assert_eq!(form.definition(&[], "US").0, scheduled);
    }

    #[test]
    fn a_posted_form_reads_rows_in_index_order() {
        let body = "name=X&enabled=1&trigger=task_due&overdue=1&match=any\
                    &actions%5B10%5D%5Btype%5D=add_tag&actions%5B10%5D%5Btag%5D=late\
                    &actions%5B2%5D%5Btype%5D=wait&actions%5B2%5D%5Bwait%5D=minutes\
                    &actions%5B2%5D%5Bwait_amount%5D=3&actions%5B2%5D%5Bwait_unit%5D=hours\
                    &rules%5B0%5D%5Bfield%5D=&rules%5B0%5D%5Bop%5D=equals&rules%5B0%5D%5Bvalue%5D=\
                    &actions%5B999%5D%5Btype%5D=add_tag";
        let mut form = EditorForm::parse(body.as_bytes());
        form.drop_blank_rules();
        assert!(form.rules.is_empty(), "the empty condition is dropped");
        let (definition, problems) = form.definition(&[], "US");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(definition.trigger, Trigger::TaskDue { overdue: true });
        assert_eq!(definition.conditions.match_, Match::Any);
        assert_eq!(
            definition.actions,
            vec![
                Action::Wait {
                    minutes: Some(180),
                    until_field: None
                },
                Action::AddTag {
                    tag: "late".to_owned()
                }
            ]
        );
    }

    #[test]
    fn choices_not_made_and_bad_numbers_are_problems_on_their_fields() {
        let mut form = EditorForm::blank();
        for kind in ["send_email", "create_task", "assign", "wait"] {
            form.actions.push(ActionRow::blank(kind));
        }
        form.actions[1].due_amount = "soon".to_owned();
        form.actions[2].assignee = "round_robin".to_owned();
        form.actions[3].wait_amount = "400".to_owned();
        let (_, problems) = form.definition(&[], "US");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "definition.actions[0].template_id",
                "definition.actions[1].due_in_minutes",
                "definition.actions[2].assignee.role",
                "definition.actions[3].minutes"
            ]
        );
        let rest = form.distribute(problems);
        assert!(rest.is_empty());
        assert_eq!(
            form.actions[0].errors.get("template_id"),
            Some("Choose a template.")
        );
        assert!(form.actions[1].errors.get("due_amount").is_some());
        assert_eq!(
            form.actions[2].errors.get("assignee_role"),
            Some("Choose a role.")
        );
        assert_eq!(
            form.actions[3].errors.get("wait_amount"),
            Some("At most a year (365 days).")
        );
    }

    #[test]
    fn refusals_go_to_their_rows() {
        let mut form = EditorForm::blank();
        form.actions = vec![ActionRow::blank("wait"), ActionRow::blank("change_stage")];
        form.rules = vec![RuleRow::blank()];
        let rest = form.distribute(vec![
            FieldError {
                field: "definition.actions[1].stage".to_owned(),
                message: "\"x\" is not a stage".to_owned(),
            },
            FieldError {
                field: "definition.actions[0]".to_owned(),
                message: "a wait needs minutes".to_owned(),
            },
            FieldError {
                field: "definition.conditions.rules[0].field".to_owned(),
                message: "is not a lead field".to_owned(),
            },
            FieldError {
                field: "definition.actions[7].tag".to_owned(),
                message: "no such row".to_owned(),
            },
            FieldError {
                field: "name".to_owned(),
                message: "is required".to_owned(),
            },
        ]);
        assert_eq!(
            form.actions[1].errors.get("stage"),
            Some("\"x\" is not a stage")
        );
        assert_eq!(form.actions[0].errors.general(), ["A wait needs minutes"]);
        assert_eq!(
            form.rules[0].errors.get("field"),
            Some("Is not a lead field")
        );
        let rest: Vec<&str> = rest.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(rest, ["definition.actions[7].tag", "name"]);
    }

    #[test]
    fn rows_are_added_moved_and_removed() {
        let mut form = EditorForm::blank();
        form.new_action = "add_tag".to_owned();
        assert!(form.apply("add_action"));
        form.new_action = "wait".to_owned();
        assert!(form.apply("add_action"));
        assert!(form.apply("up:1"));
        let kinds: Vec<&str> = form.actions.iter().map(|a| a.kind.as_str()).collect();
        assert_eq!(kinds, ["wait", "add_tag"]);
        assert!(form.apply("down:1"), "out of range is ignored");
        assert!(form.apply("remove_action:0"));
        assert_eq!(form.actions.len(), 1);
        assert!(form.apply("add_condition"));
        assert!(form.apply("remove_condition:0"));
        assert!(form.rules.is_empty());
        assert!(!form.apply("save"));
        assert!(!form.apply("save_json"));
    }

    #[test]
    fn json_is_read_with_paths() {
        let error = parse_definition("{").expect_err("not JSON");
        assert_eq!(error.field, "definition_json");
        let error =
            parse_definition(r#"{"trigger": {"type": "manual"}, "actions": [{"type": "launch"}]}"#)
                .expect_err("unknown type");
        assert_eq!(error.field, "definition.actions[0].type");
        let ok =
            parse_definition(r#"{"trigger": {"type": "manual"}, "actions": []}"#).expect("parses");
        assert!(!has_branches(&ok));
    }
}
