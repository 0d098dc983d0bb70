//! The home page: the dashboard (headline numbers, records by stage per pipeline, my next tasks)
//! and, for admins, the getting-started checklist until it is done.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::{MaybeSession, Shell, WebCtx, WebResult, render};
use crate::apikeys::store as key_store;
use crate::http::json::Query;
use crate::leads::api::{StageCountOut, stats_out};
use crate::orgs::store as org_store;
use crate::state::AppState;
use crate::tasks::web::{TaskView, due_soon, viewer_offset};

/// Tasks in "My tasks due soon".
const DUE_SOON: i64 = 5;
/// Stage labels longer than this are shortened in the chart (the full label is in its tooltip
/// and in the table), so they do not run into the counts on a phone.
const CHART_LABEL_CHARS: usize = 28;
/// Vertical rhythm of the chart: each stage is a label line over a bar.
const ROW_HEIGHT: usize = 40;
const TEXT_BASELINE: usize = 14;
const BAR_TOP: usize = 22;

/// One stage's bar.
struct Bar {
    label: String,
    full_label: String,
    count: i64,
    color: String,
    /// Bar length in percent of the widest bar.
    width: String,
    /// Share of the pipeline's records, for the tooltip.
    share: String,
    y_text: usize,
    y_bar: usize,
}

/// A pipeline's records by stage, drawn as horizontal bars.
struct Chart {
    id: String,
    title: String,
    plural: String,
    total: i64,
    height: usize,
    /// The chart in words, for screen readers.
    summary: String,
    bars: Vec<Bar>,
}

fn shorten(label: &str) -> String {
    if label.chars().count() <= CHART_LABEL_CHARS {
        return label.to_owned();
    }
    let cut: String = label.chars().take(CHART_LABEL_CHARS - 1).collect();
    format!("{}\u{2026}", cut.trim_end())
}

fn chart(id: &str, plural: &str, stages: &[&StageCountOut]) -> Chart {
    let total: i64 = stages.iter().map(|s| s.count).sum();
    let max = stages.iter().map(|s| s.count).max().unwrap_or(0).max(1);
    let bars: Vec<Bar> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (width, share) = (
                (s.count as f64 / max as f64 * 100.0).max(1.0),
                s.count as f64 / total.max(1) as f64 * 100.0,
            );
            Bar {
                label: shorten(&s.label),
                full_label: s.label.clone(),
                count: s.count,
                color: s.color.clone(),
                width: format!("{width:.1}"),
                share: format!("{share:.0}"),
                y_text: i * ROW_HEIGHT + TEXT_BASELINE,
                y_bar: i * ROW_HEIGHT + BAR_TOP,
            }
        })
        .collect();
    let parts: Vec<String> = bars
        .iter()
        .map(|b| format!("{} {}", b.full_label, b.count))
        .collect();
    Chart {
        id: id.to_owned(),
        title: format!("{plural} by stage"),
        plural: plural.to_owned(),
        total,
        height: bars.len() * ROW_HEIGHT,
        summary: format!("{plural} by stage: {}.", parts.join(", ")),
        bars,
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    shell: Shell,
    greeting: &'static str,
    first_name: String,
    active_leads: i64,
    new_this_week: i64,
    pending_tasks: i64,
    overdue_tasks: i64,
    charts: Vec<Chart>,
    my_tasks: Vec<TaskView>,
    checklist: Checklist,
}

/// A getting-started step: offered only to those who may take it.
#[derive(Clone, Copy, Default)]
struct Step {
    shown: bool,
    done: bool,
}

impl Step {
    fn when(shown: bool, done: bool) -> Step {
        Step { shown, done }
    }
}

/// The admin's getting-started steps.
#[derive(Default)]
struct Checklist {
    invite: Step,
    domains: Step,
    pipelines: Step,
    keys: Step,
}

impl Checklist {
    /// Shown while some step the viewer can take is still open.
    fn open(&self) -> bool {
        [self.invite, self.domains, self.pipelines, self.keys]
            .iter()
            .any(|step| step.shown && !step.done)
    }
}

fn greeting(hour: u8) -> &'static str {
    match hour {
        5..=11 => "Good morning",
        12..=17 => "Good afternoon",
        _ => "Good evening",
    }
}

#[derive(Debug, Deserialize)]
pub struct HomeQuery {
    notice: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    MaybeSession(ctx): MaybeSession,
    Query(q): Query<HomeQuery>,
) -> WebResult {
    let Some(ctx) = ctx else {
        return Ok(Redirect::to("/login").into_response());
    };
    let web = WebCtx {
        ctx,
        theme: super::theme_from(&headers),
        path: "/".to_owned(),
    };
    let ctx = &web.ctx;
    let stats = crate::leads::service::stats(&state, ctx, &[]).await?;
    // The template installs the first pipelines together; one saved since, or added later, means
    // someone has shaped them.
    let installed = stats.pipelines.iter().map(|p| p.created_at).min();
    let shaped = |p: &crate::pipelines::store::Pipeline| {
        p.updated_at > p.created_at
            || installed.is_some_and(|at| p.created_at > at + time::Duration::minutes(1))
    };
    let pipelines: Vec<(String, String, bool)> = stats
        .pipelines
        .iter()
        .map(|p| (p.id.clone(), p.spec.plural_label.clone(), shaped(p)))
        .collect();
    let numbers = stats_out(stats);
    let charts = pipelines
        .iter()
        .map(|(id, plural, _)| {
            let stages: Vec<&StageCountOut> = numbers
                .by_stage
                .iter()
                .filter(|s| &s.pipeline_id == id)
                .collect();
            chart(id, plural, &stages)
        })
        .collect();
    let my_tasks = due_soon(&state, ctx, &headers, DUE_SOON).await?;

    let mut shell = web.shell(&state, "Home", "home").await?;
    let mut checklist = Checklist {
        pipelines: Step::when(
            shell.can_manage_pipelines,
            pipelines.iter().any(|(_, _, edited)| *edited),
        ),
        ..Checklist::default()
    };
    if shell.can_manage_members || shell.can_manage_org || shell.can_manage_keys {
        let mut tx = state.db.tenant_read(&ctx.tenant).await?;
        if shell.can_manage_members {
            checklist.invite = Step::when(true, org_store::count_members(&mut tx).await? > 1);
        }
        if shell.can_manage_org {
            let restricted = !org_store::get_org(&mut tx).await?.domains().is_empty();
            checklist.domains = Step::when(true, restricted);
        }
        if shell.can_manage_keys {
            checklist.keys = Step::when(true, key_store::count_active(&mut tx).await? > 0);
        }
        tx.commit().await?;
    }
    if q.notice.as_deref() == Some("welcome") {
        shell.notice = Some("Welcome to Meridian! Your organization is ready.".to_owned());
    }
    let hour = time::OffsetDateTime::now_utc()
        .to_offset(viewer_offset(&headers))
        .hour();
    Ok(render(&HomePage {
        greeting: greeting(hour),
        first_name: shell
            .user_name
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_owned(),
        shell,
        active_leads: numbers.total,
        new_this_week: numbers.new_this_week,
        pending_tasks: numbers.pending_tasks,
        overdue_tasks: numbers.overdue_tasks,
        charts,
        my_tasks,
        checklist,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(label: &str, count: i64) -> StageCountOut {
        StageCountOut {
            pipeline_id: "p".to_owned(),
            stage: label.to_lowercase(),
            label: label.to_owned(),
            color: "#3b82f6".to_owned(),
            count,
        }
    }

    #[test]
    fn bars_scale_to_the_largest_stage() {
        let stages = [stage("New", 8), stage("Won", 2)];
        let refs: Vec<&StageCountOut> = stages.iter().collect();
        let c = chart("p", "Leads", &refs);
        assert_eq!(c.total, 10);
        assert_eq!(c.bars[0].width, "100.0");
        assert_eq!(c.bars[1].width, "25.0");
        assert_eq!(c.bars[1].share, "20");
        assert_eq!(c.summary, "Leads by stage: New 8, Won 2.");
        assert_eq!(c.height, 2 * ROW_HEIGHT);
    }

    #[test]
    fn long_labels_are_shortened() {
        let label = "A stage label that goes on and on and on";
        let short = shorten(label);
        assert!(short.ends_with('\u{2026}') && short.chars().count() <= CHART_LABEL_CHARS);
        assert_eq!(shorten("Qualified"), "Qualified");
    }
}
