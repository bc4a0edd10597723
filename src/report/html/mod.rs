//! HTML reports (summary and scope coverage), rendered with minijinja templates.
//!
//! The templates live in `templates/` and are embedded in the binary; a `--templates DIR` whose
//! files have the same names overrides them one by one (a page, the layout, the macros or the
//! stylesheet). Logic lives here: the templates receive a serialisable view model with
//! everything precomputed (formatted durations, labels, chart geometry, filter options), plus
//! the whole `report` for template authors who want more. Secrets are already redacted in the
//! results model (`crate::results::secrets`), so nothing here redacts again.
//!
//! Auto-escaping: minijinja escapes every expression in templates whose name ends in `.html`
//! (checked by a test); templates never use `|safe` on data.
//!
//! One concern per file (Hurl's cut): this file has the renderer (template environment,
//! `write`, `render`), the run header and the formatting helpers shared by the views;
//! `summary.rs` and `coverage.rs` build the view models of the two pages; `charts.rs` computes
//! SVG chart geometry and knows nothing of specs. Markup lives only in `templates/`.

mod charts;
mod coverage;
mod summary;
mod trend;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::Value;

use crate::results::{RunReport, Status};

use coverage::{coverage_view, CoverageView};
use summary::{summary_view, SummaryView};

/// The views `write` produces, in order.
pub const VIEWS: &[&str] = &["summary.html", "coverage.html"];

/// The embedded templates: pages, then shared partials.
const EMBEDDED: &[(&str, &str)] = &[
    (
        "summary.html",
        include_str!("../../../templates/summary.html"),
    ),
    (
        "coverage.html",
        include_str!("../../../templates/coverage.html"),
    ),
    (
        "_layout.html",
        include_str!("../../../templates/_layout.html"),
    ),
    (
        "_macros.html",
        include_str!("../../../templates/_macros.html"),
    ),
    (
        "_charts.html",
        include_str!("../../../templates/_charts.html"),
    ),
    (
        "_trend.html",
        include_str!("../../../templates/_trend.html"),
    ),
    ("_style.css", include_str!("../../../templates/_style.css")),
];

/// Writes summary.html and coverage.html into `dir`; returns the files written.
/// `templates`: a directory whose files override the embedded templates of the same name.
pub fn write(
    report: &RunReport,
    dir: &Path,
    templates: Option<&Path>,
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create report directory {}: {e}", dir.display()))?;
    let env = environment(templates)?;
    let ctx = context(report);
    let mut files = Vec::new();
    for view in VIEWS {
        let html = render_with(&env, &ctx, view)?;
        let path = dir.join(view);
        std::fs::write(&path, html).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        files.push(path);
    }
    Ok(files)
}

/// Renders one view to a string ("summary.html" or "coverage.html"), for tests and `write`.
pub fn render(report: &RunReport, view: &str, templates: Option<&Path>) -> Result<String, String> {
    if !VIEWS.contains(&view) {
        return Err(format!(
            "unknown HTML view `{view}` (expected one of: {})",
            VIEWS.join(", ")
        ));
    }
    let env = environment(templates)?;
    render_with(&env, &context(report), view)
}

/// Says what the run's clock means for a reader: the embedded target's virtual clock, or a
/// simulator's time scale (delays multiplied by it).
fn clock_label(t: &crate::results::TargetInfo) -> Option<String> {
    if t.virtual_clock() {
        return Some(format!(
            "virtual{} (every duration is simulated time, on a clock that advances only while every task waits: machine load changes nothing)",
            t.seed.map(|s| format!(", seed {s}")).unwrap_or_default()
        ));
    }
    t.time_scale
        .map(|ts| format!("wall clock, time scale {}", time_scale_label(ts)))
}

/// Says what a simulator time scale means for a reader: delays multiplied by it.
fn time_scale_label(ts: f64) -> String {
    if (ts - 1.0).abs() < 1e-9 {
        "1 (real timings)".to_string()
    } else if ts < 1.0 {
        format!(
            "{ts} (simulated delays run {}× faster than real time)",
            trim_float(1.0 / ts)
        )
    } else {
        format!(
            "{ts} (simulated delays run {}× slower than real time)",
            trim_float(ts)
        )
    }
}

fn trim_float(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

fn render_with(env: &Environment<'static>, ctx: &Context, view: &str) -> Result<String, String> {
    let tmpl = env.get_template(view).map_err(template_error)?;
    tmpl.render(minijinja::context! { view => view, ..minijinja::Value::from_serialize(ctx) })
        .map_err(template_error)
}

fn template_error(e: minijinja::Error) -> String {
    use std::error::Error as _;
    let mut msg = format!("HTML template error: {e}");
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

/// The template environment: embedded templates, overridden by same-named files in `templates`.
fn environment(templates: Option<&Path>) -> Result<Environment<'static>, String> {
    if let Some(dir) = templates {
        if !dir.is_dir() {
            return Err(format!(
                "template directory {} does not exist",
                dir.display()
            ));
        }
    }
    let dir = templates.map(Path::to_path_buf);
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_loader(move |name| {
        if let Some(dir) = &dir {
            // Only plain file names and sub-paths below the directory.
            let safe = !name.is_empty()
                && !Path::new(name).is_absolute()
                && Path::new(name)
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            let p = dir.join(name);
            if safe && p.is_file() {
                return std::fs::read_to_string(&p).map(Some).map_err(|e| {
                    minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("cannot read template {}", p.display()),
                    )
                    .with_source(e)
                });
            }
        }
        Ok(EMBEDDED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.to_string()))
    });
    env.add_filter("ms", |v: f64| fmt_ms(v));
    // First line of a text, cut to `n` characters: `{{ case.message|short(120) }}`.
    env.add_filter("short", |v: String, n: Option<usize>| {
        shorten(v.lines().next().unwrap_or(""), n.unwrap_or(120))
    });
    env.add_filter("compact", |v: minijinja::Value| {
        let j: Value = serde_json::to_value(&v).unwrap_or(Value::Null);
        crate::results::compact(&j)
    });
    Ok(env)
}

// ---------------------------------------------------------------------------------------------
// View model
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct Context {
    /// The report itself (already redacted), for template authors.
    report: RunReport,
    run: RunView,
    summary: SummaryView,
    coverage: Option<CoverageView>,
    trend: Option<trend::TrendView>,
}

#[derive(Serialize)]
struct RunView {
    tool: String,
    version: String,
    target: String,
    target_kind: String,
    base_url: Option<String>,
    namespace: Option<String>,
    /// e.g. "0.01 (simulated delays run 100× faster than real time)"
    time_scale: Option<String>,
    capabilities: Vec<String>,
    started_at: String,
    started_at_iso: String,
    duration: String,
    interrupted: bool,
    /// "passed" / "failed" (any failure or error).
    verdict: &'static str,
    verdict_label: &'static str,
    totals: crate::results::Totals,
    /// Cases that failed or errored.
    problems: usize,
}

// ---------------------------------------------------------------------------------------------
// Building the view model
// ---------------------------------------------------------------------------------------------

fn context(report: &RunReport) -> Context {
    let report = report.clone();
    let mut anchors = Anchors::default();
    let spec_anchor: HashMap<String, String> = report
        .specs
        .iter()
        .map(|s| (s.id.clone(), anchors.make("spec", &s.id)))
        .collect();
    let run = run_view(&report);
    let summary = summary_view(&report, &spec_anchor, &mut anchors);
    let coverage = report
        .coverage
        .as_ref()
        .map(|c| coverage_view(c, &report, &spec_anchor, &mut anchors));
    let trend = trend::trend_view(&report.history);
    Context {
        report,
        run,
        summary,
        coverage,
        trend,
    }
}

fn run_view(r: &RunReport) -> RunView {
    let t = &r.totals;
    let failed = !t.all_passed();
    RunView {
        tool: r.tool.clone(),
        version: r.version.clone(),
        target: r.target.name.clone(),
        target_kind: crate::results::kind_label(&r.target.kind).to_string(),
        base_url: r.target.base_url.clone(),
        namespace: r.target.kube_namespace.clone(),
        time_scale: clock_label(&r.target),
        capabilities: r.target.capabilities.clone(),
        started_at: r.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        started_at_iso: r
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        duration: fmt_ms(r.duration_ms),
        interrupted: r.interrupted,
        verdict: if failed { "failed" } else { "passed" },
        verdict_label: match (failed, r.interrupted) {
            (_, true) => "Interrupted",
            (true, false) => "Failed",
            (false, false) => "Passed",
        },
        totals: *t,
        problems: t.failed + t.errors,
    }
}

fn status_label(s: Status) -> &'static str {
    match s {
        Status::Passed => "Passed",
        Status::Failed => "Failed",
        Status::Error => "Error",
        Status::Skipped => "Skipped",
    }
}

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

/// A duration for people: `0.4 ms`, `230 ms`, `1.25 s`, `2 min 03 s`.
pub fn fmt_ms(ms: f64) -> String {
    if !ms.is_finite() {
        return "∞".into();
    }
    let ms = ms.max(0.0);
    if ms == 0.0 {
        "0 ms".into()
    } else if ms < 10.0 {
        format!("{} ms", trim_zeros(format!("{ms:.1}")))
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        let s = ms / 1000.0;
        if s < 10.0 {
            format!("{} s", trim_zeros(format!("{s:.2}")))
        } else {
            format!("{} s", trim_zeros(format!("{s:.1}")))
        }
    } else {
        let total = (ms / 1000.0).round() as u64;
        format!("{} min {:02} s", total / 60, total % 60)
    }
}

/// The lower bound of a range label, without a unit when the upper bound has the same unit.
fn fmt_ms_bare(ms: f64, width: f64) -> String {
    let s = fmt_ms(ms);
    let unit_of = |s: &str| s.rsplit(' ').next().unwrap_or("").to_string();
    let upper = fmt_ms(ms + width);
    if ms == 0.0 {
        return "0".into();
    }
    if unit_of(&s) == unit_of(&upper) && !s.contains("min") {
        s.rsplit_once(' ').map(|(n, _)| n.to_string()).unwrap_or(s)
    } else {
        s
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max.max(2) {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max.max(2) - 1).collect::<String>())
    }
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Expected/actual values: strings as JSON strings unless multi-line (then as text), other
/// values compact, or pretty when long.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) if s.contains('\n') => s.clone(),
        _ => {
            let c = serde_json::to_string(v).unwrap_or_default();
            if c.chars().count() > 80 && (v.is_object() || v.is_array()) {
                serde_json::to_string_pretty(v).unwrap_or(c)
            } else {
                c
            }
        }
    }
}

/// JSON bodies pretty-printed, others as they are.
fn pretty_body(b: &str) -> String {
    let t = b.trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Value>(b) {
            if let Ok(p) = serde_json::to_string_pretty(&v) {
                return p;
            }
        }
    }
    b.to_string()
}

/// Unique, valid HTML ids.
#[derive(Default)]
struct Anchors {
    used: BTreeSet<String>,
}

impl Anchors {
    fn make(&mut self, prefix: &str, raw: &str) -> String {
        let slug: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let slug = slug.trim_matches('-');
        let base = if slug.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}-{slug}")
        };
        let mut id = base.clone();
        let mut n = 2;
        while !self.used.insert(id.clone()) {
            id = format!("{base}-{n}");
            n += 1;
        }
        id
    }
}
