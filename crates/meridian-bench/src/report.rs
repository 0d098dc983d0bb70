//! Tables: plain text for the terminal, and the same in Markdown for BENCHMARKS.md.

use std::fmt::Write as _;

use crate::api::{
    EngineReport, LOGIN_ALONE, LOGIN_MIXED, ME_APP, ME_FLOOR, ME_MIXED, MEMBERS_APP, MEMBERS_FLOOR,
    Settings,
};
use crate::load::Stats;
use crate::machine::Machine;

/// The targets the numbers are compared against (reported, never asserted).
pub const P99_TARGET_MS: f64 = 10.0;
pub const RATIO_TARGET: f64 = 0.33;

fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "?".to_owned(), |s| format!("{:.0}%", s * 100.0))
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "-".to_owned()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn cells(stats: &Stats) -> [String; 9] {
    [
        stats.concurrency.to_string(),
        stats.ok.to_string(),
        format!("{:.0}", stats.rate()),
        ms(stats.percentile_ms(50.0)),
        ms(stats.percentile_ms(95.0)),
        ms(stats.percentile_ms(99.0)),
        ms(stats.max_ms()),
        stats.errors.to_string(),
        format!(
            "{} / {}",
            percent(stats.machine_busy),
            percent(stats.process_busy)
        ),
    ]
}

const HEADERS: [&str; 10] = [
    "scenario",
    "in flight",
    "requests",
    "req/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "errors",
    "cpu machine / bench",
];

fn ratio(report: &EngineReport, app: &str, floor: &str) -> Option<f64> {
    let (app, floor) = (report.get(app)?, report.get(floor)?);
    (floor.rate() > 0.0).then(|| app.rate() / floor.rate())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// Lines comparing the run with the targets.
fn target_lines(report: &EngineReport) -> Vec<String> {
    let mut lines = Vec::new();
    for (name, label) in [("me", ME_APP), ("members", MEMBERS_APP)] {
        if let Some(stats) = report.get(label) {
            let p99 = stats.percentile_ms(99.0);
            lines.push(format!(
                "{name} p99 < {P99_TARGET_MS} ms: {} ms, {}",
                ms(p99),
                verdict(p99 < P99_TARGET_MS)
            ));
        }
    }
    for (name, app, floor) in [
        ("me", ME_APP, ME_FLOOR),
        ("members", MEMBERS_APP, MEMBERS_FLOOR),
    ] {
        if let Some(r) = ratio(report, app, floor) {
            lines.push(format!(
                "{name} app/floor throughput >= {RATIO_TARGET}: {r:.2}, {}",
                verdict(r >= RATIO_TARGET)
            ));
        }
    }
    if let (Some(alone), Some(mixed)) = (report.get(ME_APP), report.get(ME_MIXED)) {
        lines.push(format!(
            "me while logins run: p99 {} ms (alone {} ms), {:.0} req/s (alone {:.0})",
            ms(mixed.percentile_ms(99.0)),
            ms(alone.percentile_ms(99.0)),
            mixed.rate(),
            alone.rate()
        ));
    }
    for stats in report.rows.iter().map(|r| &r.stats) {
        if let Some(error) = &stats.first_error {
            lines.push(format!("first error: {error}"));
            break;
        }
    }
    lines
}

fn title(report: &EngineReport, settings: &Settings) -> String {
    format!(
        "{}: app pool {} connections{}, {} members, {} s measured after {} s warm-up, {} password hashes at once",
        report.engine.as_str(),
        report.pool_size,
        if report.ping_on_acquire {
            ""
        } else {
            " (no ping on acquire)"
        },
        report.members,
        settings.window.duration.as_secs_f64(),
        settings.window.warmup.as_secs_f64(),
        settings.hash_concurrency,
    )
}

pub fn text(report: &EngineReport, settings: &Settings) -> String {
    let mut rows: Vec<Vec<String>> = vec![HEADERS.iter().map(|h| (*h).to_owned()).collect()];
    for row in &report.rows {
        let mut line = vec![row.label.to_owned()];
        line.extend(cells(&row.stats));
        rows.push(line);
    }
    let widths: Vec<usize> = (0..HEADERS.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let _ = writeln!(out, "\n== {}", title(report, settings));
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i == 0 {
                let _ = write!(line, "{cell:<w$}", w = widths[i]);
            } else {
                let _ = write!(line, "  {cell:>w$}", w = widths[i]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    for line in target_lines(report) {
        let _ = writeln!(out, "  {line}");
    }
    out
}

pub fn markdown(report: &EngineReport, settings: &Settings) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n### {}\n", title(report, settings));
    let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        HEADERS
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---|" } else { "---:|" })
            .collect::<String>()
    );
    for row in &report.rows {
        let _ = writeln!(
            out,
            "| {} | {} |",
            row.label.trim().replace("  ", " "),
            cells(&row.stats).join(" | ")
        );
    }
    let _ = writeln!(out);
    for line in target_lines(report) {
        let _ = writeln!(out, "- {line}");
    }
    out
}

/// One line per engine with the headline figures.
pub fn summary(reports: &[EngineReport]) -> String {
    let mut out = String::from("\n== summary\n");
    for report in reports {
        let p99 = |label| report.get(label).map(|s| ms(s.percentile_ms(99.0)));
        let rate = |label| report.get(label).map(|s| format!("{:.0}", s.rate()));
        let _ = writeln!(
            out,
            "{:<8}  me {} req/s p99 {} ms (floor {} req/s, ratio {})  members {} req/s p99 {} ms (floor {} req/s, ratio {})  login {} /s p99 {} ms  me p99 during logins {} ms",
            report.engine.as_str(),
            rate(ME_APP).unwrap_or_default(),
            p99(ME_APP).unwrap_or_default(),
            rate(ME_FLOOR).unwrap_or_default(),
            ratio(report, ME_APP, ME_FLOOR).map_or_else(String::new, |r| format!("{r:.2}")),
            rate(MEMBERS_APP).unwrap_or_default(),
            p99(MEMBERS_APP).unwrap_or_default(),
            rate(MEMBERS_FLOOR).unwrap_or_default(),
            ratio(report, MEMBERS_APP, MEMBERS_FLOOR)
                .map_or_else(String::new, |r| format!("{r:.2}")),
            rate(LOGIN_ALONE)
                .or_else(|| rate(LOGIN_MIXED))
                .unwrap_or_default(),
            p99(LOGIN_ALONE)
                .or_else(|| p99(LOGIN_MIXED))
                .unwrap_or_default(),
            p99(ME_MIXED).unwrap_or_default(),
        );
    }
    out
}

/// The machine, the date and the exact command.
pub fn environment(machine: &Machine, date: &str, command: &str) -> String {
    let mut out = String::from("\n== machine\n");
    let _ = writeln!(
        out,
        "nproc: {} (cpuinfo lists {})",
        machine.nproc, machine.listed_cpus
    );
    let _ = writeln!(out, "cpu: {}", machine.cpu_model);
    let _ = writeln!(out, "memory: {}", machine.memory);
    let _ = writeln!(out, "kernel: {}", machine.kernel);
    let _ = writeln!(out, "date: {date}");
    let _ = writeln!(out, "command: {command}");
    out
}
