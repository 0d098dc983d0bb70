//! Pages: automations (a list with on/off switches and a gallery of ready ones), the editor (a
//! form for the trigger, the conditions and the ordered steps, with the whole definition as JSON
//! for the if/else branches the form does not show), an automation's run history, and one run
//! with each step's outcome and a Retry button.
//!
//! Every action is a plain form POST; the editor's add, move and remove buttons re-render it on
//! the server. `app.js` flips the list's switches in place and shows the fields each choice needs
//! as it is made.

pub mod editor;
pub mod form;
pub mod list;
pub mod rows;
pub mod runs;

use std::collections::HashMap;

use meridian_core::crm::{LeadSource, Picklist};
use serde::Deserialize;
use serde_json::Value;

use super::definition::{Action, Trigger};
use crate::http::ctx::Ctx;
use crate::http::error::AppError;
use crate::pipelines::store::Pipeline;
use crate::state::AppState;

/// A page's `?notice=` after a redirect.
#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

/// The triggers, as the editor offers them.
pub const TRIGGERS: [(&str, &str); 8] = [
    ("lead_created", "A lead is created"),
    ("inbound_received", "A lead arrives through a form"),
    ("stage_changed", "A lead changes stage"),
    ("field_changed", "A lead field changes"),
    ("lead_assigned", "A lead is assigned"),
    ("task_due", "A task comes due"),
    ("schedule", "On a schedule"),
    ("manual", "Someone runs it on leads"),
];

/// The step types the form edits (branches are edited as JSON).
pub const ACTIONS: [(&str, &str); 12] = [
    ("send_email", "Send an email"),
    ("start_sequence", "Start a sequence"),
    ("stop_sequence", "Stop a sequence"),
    ("create_task", "Create a task"),
    ("assign", "Assign the lead"),
    ("change_stage", "Move to a stage"),
    ("add_tag", "Add a tag"),
    ("remove_tag", "Remove a tag"),
    ("set_field", "Set a custom field"),
    ("notify", "Send a notification"),
    ("webhook", "Send to a webhook"),
    ("wait", "Wait"),
];

pub fn trigger_label(kind: &str) -> &'static str {
    TRIGGERS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("Unknown trigger", |(_, label)| label)
}

pub fn action_label(name: &str) -> &'static str {
    match name {
        "branch" => "If / else",
        _ => ACTIONS
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("Unknown step", |(_, label)| label),
    }
}

/// The run statuses, in the order the history's filters list them.
pub const RUN_STATUSES: [&str; 5] = ["queued", "waiting", "succeeded", "skipped", "failed"];

pub fn status_label(status: &str) -> &'static str {
    match status {
        "queued" => "Queued",
        "waiting" => "Waiting",
        "succeeded" => "Succeeded",
        "skipped" => "Skipped",
        "failed" => "Failed",
        _ => "Unknown",
    }
}

/// The badge class of a run or step status.
pub fn status_class(status: &str) -> &'static str {
    match status {
        "queued" | "waiting" => "badge-info",
        "succeeded" => "badge-success",
        "failed" => "badge-danger",
        _ => "",
    }
}

/// What people call the lead fields conditions compare.
pub fn lead_field_label(field: &str) -> Option<&'static str> {
    Some(match field {
        "first_name" => "First name",
        "last_name" => "Last name",
        "email" => "Email",
        "phone" => "Phone",
        "state" => "State",
        "country" => "Country",
        "date_of_birth" => "Date of birth",
        "source" => "Source",
        "stage" => "Stage (key)",
        "pipeline_id" => "Pipeline (id)",
        "assigned_to" => "Owner (user id)",
        "is_priority" => "Priority",
        "tags" => "Tags",
        "utm_source" => "UTM source",
        "utm_medium" => "UTM medium",
        "utm_campaign" => "UTM campaign",
        "utm_content" => "UTM content",
        "utm_term" => "UTM term",
        _ => return None,
    })
}

/// Steps in a list of actions, those inside branches included.
pub fn count_actions(actions: &[Action]) -> usize {
    actions
        .iter()
        .map(|a| match a {
            Action::Branch {
                then, otherwise, ..
            } => 1 + count_actions(then) + count_actions(otherwise),
            _ => 1,
        })
        .sum()
}

pub fn steps_text(n: usize) -> String {
    if n == 1 {
        "1 step".to_owned()
    } else {
        format!("{n} steps")
    }
}

/// The organization's pipelines and members, to name what definitions and runs refer to by key
/// or id.
pub struct Lookups {
    pub pipelines: Vec<Pipeline>,
    /// Active members by id, with their names (ordered by name).
    pub members: Vec<(String, String)>,
    /// Inbound forms: (id, name).
    pub forms: Vec<(String, String)>,
    names: HashMap<String, String>,
}

/// Forms and webhook endpoints a page lists (an organization has a handful).
pub const MAX_LISTED: i64 = 200;

impl Lookups {
    pub async fn load(state: &AppState, ctx: &Ctx) -> Result<Lookups, AppError> {
        let mut tx = state.db.tenant_read(&ctx.tenant).await?;
        let pipelines = crate::pipelines::store::list(&mut tx).await?;
        let members = crate::leads::store::assignable_members(&mut tx).await?;
        let forms = crate::webhooks::store::forms(&mut tx, None, MAX_LISTED)
            .await?
            .into_iter()
            .map(|f| (f.id, f.name))
            .collect();
        tx.commit().await?;
        Ok(Lookups {
            names: members.iter().cloned().collect(),
            pipelines,
            members,
            forms,
        })
    }

    fn form(&self, id: &str) -> String {
        self.forms
            .iter()
            .find(|(f, _)| f == id)
            .map_or_else(|| "a deleted form".to_owned(), |(_, name)| name.clone())
    }

    pub fn pipeline(&self, id: &str) -> String {
        self.pipelines
            .iter()
            .find(|p| p.id == id)
            .map_or_else(|| id.to_owned(), |p| p.spec.name.clone())
    }

    /// A stage's label, looked up in `pipeline` when given, else in any pipeline.
    pub fn stage(&self, pipeline: Option<&str>, key: &str) -> String {
        self.pipelines
            .iter()
            .filter(|p| pipeline.is_none_or(|want| want == p.id))
            .flat_map(|p| p.spec.stages.iter())
            .find(|s| s.key == key)
            .map_or_else(|| key.to_owned(), |s| s.label.clone())
    }

    pub fn member(&self, id: &str) -> String {
        self.names
            .get(id)
            .cloned()
            .unwrap_or_else(|| "a former member".to_owned())
    }

    /// A lead field's or custom field's label (`custom_fields.budget` → "Budget").
    pub fn field(&self, field: &str) -> String {
        if let Some(label) = lead_field_label(field) {
            return label.to_owned();
        }
        let key = field.strip_prefix("custom_fields.").unwrap_or(field);
        self.pipelines
            .iter()
            .flat_map(|p| p.spec.fields.iter())
            .find(|f| f.key == key)
            .map_or_else(|| field.to_owned(), |f| f.label.clone())
    }

    /// "a lead", or "a case" in a pipeline (or an organization) whose records are cases.
    fn noun(&self, pipeline: Option<&str>) -> String {
        let mut labels = self
            .pipelines
            .iter()
            .filter(|p| pipeline.is_none_or(|want| want == p.id))
            .map(|p| p.spec.singular_label.to_lowercase());
        let noun = match (labels.next(), labels.next()) {
            (Some(only), None) => only,
            _ => "lead".to_owned(),
        };
        let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {noun}")
    }

    /// The trigger in words: "When a lead moves to Qualified".
    pub fn summary(&self, trigger: &Trigger) -> String {
        match trigger {
            Trigger::LeadCreated { pipeline_id } => {
                let p = pipeline_id.as_deref();
                match p {
                    Some(id) => {
                        format!("When {} is created in {}", self.noun(p), self.pipeline(id))
                    }
                    None => format!("When {} is created", self.noun(None)),
                }
            }
            Trigger::StageChanged {
                pipeline_id,
                from,
                to,
            } => {
                let p = pipeline_id.as_deref();
                let noun = self.noun(p);
                let place = p
                    .map(|id| format!(" in {}", self.pipeline(id)))
                    .unwrap_or_default();
                match (from, to) {
                    (None, None) => format!("When {noun} changes stage{place}"),
                    (None, Some(to)) => {
                        format!("When {noun} moves to {}{place}", self.stage(p, to))
                    }
                    (Some(from), None) => {
                        format!("When {noun} leaves {}{place}", self.stage(p, from))
                    }
                    (Some(from), Some(to)) => format!(
                        "When {noun} moves from {} to {}{place}",
                        self.stage(p, from),
                        self.stage(p, to)
                    ),
                }
            }
            Trigger::FieldChanged { field } => format!(
                "When the \u{201c}{}\u{201d} of {} changes",
                self.field(field),
                self.noun(None)
            ),
            Trigger::LeadAssigned => format!("When {} is assigned to someone", self.noun(None)),
            Trigger::TaskDue { overdue: false } => {
                "When a task is due by the end of tomorrow (checked daily)".to_owned()
            }
            Trigger::TaskDue { overdue: true } => {
                "When a task is overdue (checked daily)".to_owned()
            }
            Trigger::InboundReceived { form_id } => match form_id {
                Some(id) => format!(
                    "When {} arrives through the form \u{201c}{}\u{201d}",
                    self.noun(None),
                    self.form(id)
                ),
                None => format!("When {} arrives through an inbound form", self.noun(None)),
            },
            Trigger::Schedule {
                cron,
                pipeline_id,
                stage,
            } => {
                let p = pipeline_id.as_deref();
                let whom = match (p, stage) {
                    (_, Some(stage)) => format!("the leads in {}", self.stage(p, stage)),
                    (Some(id), None) => format!("the leads in {}", self.pipeline(id)),
                    (None, None) => "every lead".to_owned(),
                };
                format!("On the schedule {cron} (UTC), for {whom}")
            }
            Trigger::Manual => "When someone runs it on leads".to_owned(),
        }
    }
}

/// One fact on a run's page: a label, its value in words, and where it links (may be empty).
pub struct Fact {
    pub label: String,
    pub text: String,
    pub href: String,
}

fn plain(value: &Value) -> String {
    match value {
        Value::Null => "\u{2014}".to_owned(),
        Value::Bool(true) => "yes".to_owned(),
        Value::Bool(false) => "no".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// `what` is the trigger of an event, or the step's action: it says what `from` and `to` are.
/// `lead` is the run's lead (empty if none), for links to what a step made for it.
fn fact(lookups: &Lookups, what: &str, lead: &str, key: &str, value: &Value) -> Fact {
    let text = value.as_str().unwrap_or_default();
    let (label, shown, href) = match key {
        "pipeline_id" => ("Pipeline".to_owned(), lookups.pipeline(text), String::new()),
        "stage" => ("Stage".to_owned(), lookups.stage(None, text), String::new()),
        "from" | "to" if what == "lead_assigned" => {
            let who = if text.is_empty() {
                "nobody".to_owned()
            } else {
                lookups.member(text)
            };
            let label = if key == "from" { "From" } else { "To" };
            (label.to_owned(), who, String::new())
        }
        "from" | "to" => {
            let label = if key == "from" { "From" } else { "To" };
            (label.to_owned(), lookups.stage(None, text), String::new())
        }
        "source" => (
            "Source".to_owned(),
            LeadSource::parse(text).map_or_else(|_| text.to_owned(), |s| s.label().to_owned()),
            String::new(),
        ),
        "fields" => (
            "Fields".to_owned(),
            value
                .as_array()
                .map(|f| {
                    f.iter()
                        .map(|f| lookups.field(f.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            String::new(),
        ),
        "by" => ("Run by".to_owned(), plain(value), String::new()),
        "task_id" if !lead.is_empty() => (
            "Task".to_owned(),
            "See the lead\u{2019}s tasks".to_owned(),
            format!("/leads/{lead}?tab=tasks"),
        ),
        "tick" => (
            "Scheduled for".to_owned(),
            value
                .as_i64()
                .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
                .map_or_else(|| plain(value), crate::web::exact),
            String::new(),
        ),
        "message_id" => (
            "Email".to_owned(),
            "Open the email".to_owned(),
            format!("/email/outbox/{text}"),
        ),
        "user_id" | "assignee_id" => (
            "Assigned to".to_owned(),
            if text.is_empty() {
                "nobody (the lead has no owner)".to_owned()
            } else {
                lookups.member(text)
            },
            String::new(),
        ),
        "branch" => (
            "Took".to_owned(),
            if text == "then" {
                "the \u{201c}then\u{201d} steps: the conditions held".to_owned()
            } else {
                "the \u{201c}else\u{201d} steps: the conditions did not hold".to_owned()
            },
            String::new(),
        ),
        "until" => ("Waits until".to_owned(), plain(value), String::new()),
        "skipped" => ("Skipped".to_owned(), plain(value), String::new()),
        "notified" => ("People notified".to_owned(), plain(value), String::new()),
        "stopped" => (
            "Enrollments stopped".to_owned(),
            plain(value),
            String::new(),
        ),
        "added" => (
            "Change".to_owned(),
            if value.as_bool() == Some(true) {
                "added".to_owned()
            } else {
                "removed".to_owned()
            },
            String::new(),
        ),
        "field" => ("Field".to_owned(), lookups.field(text), String::new()),
        other => {
            let mut label = other.replace('_', " ");
            if let Some(first) = label.get(..1) {
                label = format!("{}{}", first.to_uppercase(), &label[1..]);
            }
            (label, plain(value), String::new())
        }
    };
    Fact {
        label,
        text: shown,
        href,
    }
}

/// Where a key goes among an object's facts: where things happened, then what changed, then the
/// rest in name order.
fn rank(key: &str) -> usize {
    [
        "pipeline_id",
        "form",
        "stage",
        "from",
        "to",
        "source",
        "tag",
        "added",
        "field",
        "value",
    ]
    .iter()
    .position(|k| *k == key)
    .unwrap_or(usize::MAX)
}

/// An object's entries as facts (anything else as one "Value" fact; nothing for an empty one).
pub fn facts(lookups: &Lookups, what: &str, lead: &str, value: &Value) -> Vec<Fact> {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map
                .iter()
                // The form's name is shown; its id says nothing more.
                .filter(|(k, _)| *k != "form_id")
                .collect();
            entries.sort_by_key(|(k, _)| (rank(k), k.as_str()));
            entries
                .into_iter()
                .map(|(k, v)| fact(lookups, what, lead, k, v))
                .collect()
        }
        Value::Null => Vec::new(),
        other => vec![fact(lookups, what, lead, "value", other)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn steps_are_counted_inside_branches() {
        let actions: Vec<Action> = serde_json::from_value(json!([
            {"type": "add_tag", "tag": "a"},
            {"type": "branch", "conditions": {"rules": []},
             "then": [{"type": "add_tag", "tag": "b"}], "else": [{"type": "wait", "minutes": 5}]}
        ]))
        .expect("actions");
        assert_eq!(count_actions(&actions), 4);
        assert_eq!(steps_text(1), "1 step");
        assert_eq!(steps_text(4), "4 steps");
    }

    #[test]
    fn labels_fall_back_for_unknown_names() {
        assert_eq!(trigger_label("stage_changed"), "A lead changes stage");
        assert_eq!(action_label("branch"), "If / else");
        assert_eq!(action_label("launch"), "Unknown step");
        assert_eq!(status_class("failed"), "badge-danger");
        assert_eq!(lead_field_label("utm_term"), Some("UTM term"));
        for field in super::super::service::LEAD_FIELDS {
            assert!(lead_field_label(field).is_some(), "{field} has a label");
        }
    }
}
