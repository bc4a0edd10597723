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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::Value;

use crate::results::{
    Bucket, CaseResult, Coverage, FanoutStats, LatencyStats, PollInfo, RunReport, SpecResult,
    Status, StepResult,
};

/// The views `write` produces, in order.
pub const VIEWS: &[&str] = &["summary.html", "coverage.html"];

/// The embedded templates: pages, then shared partials.
const EMBEDDED: &[(&str, &str)] = &[
    ("summary.html", include_str!("../../templates/summary.html")),
    (
        "coverage.html",
        include_str!("../../templates/coverage.html"),
    ),
    ("_layout.html", include_str!("../../templates/_layout.html")),
    ("_macros.html", include_str!("../../templates/_macros.html")),
    ("_charts.html", include_str!("../../templates/_charts.html")),
    ("_style.css", include_str!("../../templates/_style.css")),
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

#[derive(Serialize)]
struct SummaryView {
    filters: Filters,
    specs: Vec<SpecView>,
    fanouts: Vec<FanoutView>,
    readiness: Option<ReadinessView>,
}

#[derive(Serialize)]
struct Filters {
    statuses: Vec<Choice>,
    tags: Vec<Choice>,
    areas: Vec<Choice>,
}

#[derive(Serialize)]
struct Choice {
    value: String,
    label: String,
    count: usize,
}

#[derive(Serialize)]
struct SpecView {
    id: String,
    anchor: String,
    title: String,
    description: Option<String>,
    file: String,
    line: u32,
    status: &'static str,
    status_label: &'static str,
    tags: Vec<String>,
    /// `|a|b|` for the filter script.
    tags_attr: String,
    areas: Vec<Choice>,
    areas_attr: String,
    covers: Vec<String>,
    duration: String,
    cases_total: usize,
    cases_passed: usize,
    skip_reason: Option<String>,
    open: bool,
    cases: Vec<CaseView>,
}

#[derive(Serialize)]
struct CaseView {
    name: String,
    anchor: String,
    description: Option<String>,
    status: &'static str,
    status_label: &'static str,
    duration: String,
    message: Option<String>,
    /// The message has more than one line (shown in a `<pre>`).
    message_multiline: bool,
    location: Option<String>,
    open: bool,
    vars: Vec<(String, String)>,
    steps: Vec<StepView>,
    cleanup: Vec<StepView>,
}

#[derive(Serialize)]
struct StepView {
    name: String,
    kind: String,
    line: u32,
    status: &'static str,
    status_label: &'static str,
    duration: String,
    message: Option<String>,
    message_multiline: bool,
    /// A one-line note for the steps table: "polled 25× · HTTP 200 · 2 of 3 checks failed".
    note: String,
    /// Show the details block (failing/erroring steps, polls, fan-outs, attachments).
    detailed: bool,
    request: Option<RequestView>,
    response: Option<ResponseView>,
    assertions: Vec<AssertionView>,
    failed_assertions: usize,
    poll: Option<PollView>,
    captures: Vec<(String, String)>,
    /// Anchor of this step's fan-out section in the load results.
    fanout_anchor: Option<String>,
    fanout_summary: Option<String>,
    attachments: Vec<AttachmentView>,
}

#[derive(Serialize)]
struct RequestView {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

#[derive(Serialize)]
struct ResponseView {
    status: u16,
    headers: Vec<(String, String)>,
    body: Option<String>,
    truncated: bool,
    elapsed: String,
}

#[derive(Serialize)]
struct AssertionView {
    line: u32,
    subject: String,
    op: String,
    expected: String,
    actual: Option<String>,
    passed: bool,
    message: Option<String>,
    message_multiline: bool,
}

#[derive(Serialize)]
struct PollView {
    attempts: u32,
    elapsed: String,
    simulated_elapsed: Option<String>,
    interval: String,
    timeout: String,
    satisfied: bool,
    last_mismatch: Option<String>,
}

#[derive(Serialize)]
struct AttachmentView {
    title: String,
    body: String,
}

#[derive(Serialize)]
struct FanoutView {
    anchor: String,
    spec_id: String,
    spec_anchor: String,
    case_name: String,
    step_name: String,
    line: u32,
    status: &'static str,
    status_label: &'static str,
    summary: String,
    count: usize,
    concurrency: usize,
    started: usize,
    succeeded: usize,
    failed: usize,
    duration: String,
    throughput: String,
    cleanup_failures: usize,
    thresholds: Vec<ThresholdView>,
    thresholds_failed: usize,
    sample_failures: Vec<String>,
    latency: Vec<LatencyRow>,
    outcomes: HBarChart,
}

#[derive(Serialize)]
struct ThresholdView {
    expr: String,
    value: String,
    passed: bool,
}

#[derive(Serialize)]
struct LatencyRow {
    step: String,
    /// What the figures are: request latency, time until the condition held, step duration.
    measure: String,
    count: usize,
    min: String,
    mean: String,
    p50: String,
    p90: String,
    p95: String,
    p99: String,
    max: String,
    percentiles: HBarChart,
    histogram: Option<ColumnChart>,
}

#[derive(Serialize)]
struct ReadinessView {
    count: usize,
    simulated: bool,
    time_scale: Option<String>,
    min: String,
    median: String,
    p90: String,
    max: String,
    histogram: ColumnChart,
    by_step: Vec<ReadinessGroup>,
    samples: Vec<ReadinessSample>,
}

#[derive(Serialize)]
struct ReadinessGroup {
    step: String,
    count: usize,
    min: String,
    median: String,
    max: String,
}

#[derive(Serialize)]
struct ReadinessSample {
    spec_id: String,
    spec_anchor: String,
    case_name: String,
    step: String,
    /// Attempts of a plain poll; "—" for a fan-out iteration (its statistics keep only times).
    attempts: String,
    time: String,
}

#[derive(Serialize)]
struct CoverageView {
    catalog_title: String,
    in_scope: usize,
    verified: usize,
    failing: usize,
    gaps: usize,
    skipped: usize,
    not_run: usize,
    headline: String,
    verdict: &'static str,
    /// Stacked bar of the in-scope outcomes (percent widths).
    bar: Vec<BarPart>,
    hard: Vec<HardView>,
    areas: Vec<AreaView>,
    gap_list: Vec<String>,
    backlog: Vec<ExcludedView>,
    excluded: Vec<ExcludedView>,
}

#[derive(Serialize)]
struct BarPart {
    outcome: &'static str,
    label: &'static str,
    count: usize,
    percent: f64,
}

#[derive(Serialize)]
struct HardView {
    id: String,
    title: String,
    area: String,
    outcome: String,
    outcome_label: &'static str,
    /// A sentence for a manager: "Met: 200 of 200 concurrent jobs succeeded".
    statement: String,
    specs: Vec<HardSpec>,
}

#[derive(Serialize)]
struct HardSpec {
    id: String,
    title: String,
    outcome: String,
    outcome_label: &'static str,
    fanouts: Vec<String>,
    failed_thresholds: Vec<String>,
}

#[derive(Serialize)]
struct AreaView {
    id: String,
    title: String,
    anchor: String,
    counts: String,
    items: Vec<ItemView>,
}

#[derive(Serialize)]
struct ItemView {
    id: String,
    title: String,
    backlog: bool,
    hard_requirement: bool,
    outcome: String,
    outcome_label: &'static str,
    specs: Vec<CoveringView>,
}

#[derive(Serialize)]
struct CoveringView {
    /// Anchor of the spec in summary.html, when it ran.
    anchor: Option<String>,
    id: String,
    title: String,
    file: String,
    outcome: String,
    outcome_label: &'static str,
    cases: String,
}

#[derive(Serialize)]
struct ExcludedView {
    id: String,
    title: String,
    area: String,
    reason: String,
}

/// Horizontal bars with labels on the left and values on the right.
#[derive(Serialize)]
struct HBarChart {
    title: String,
    width: f64,
    height: f64,
    label_w: f64,
    plot_w: f64,
    plot_bottom: f64,
    rows: Vec<HBar>,
    ticks: Vec<Tick>,
}

#[derive(Serialize)]
struct HBar {
    label: String,
    /// The label cut to fit the chart (the full one is in the bar's tooltip and the data table).
    short: String,
    value: String,
    y: f64,
    h: f64,
    w: f64,
    text_y: f64,
    class: &'static str,
}

#[derive(Serialize)]
struct Tick {
    pos: f64,
    label: String,
}

/// Vertical columns (a histogram).
#[derive(Serialize)]
struct ColumnChart {
    title: String,
    x_title: String,
    width: f64,
    height: f64,
    left: f64,
    top: f64,
    plot_w: f64,
    plot_h: f64,
    bottom: f64,
    columns: Vec<Column>,
    y_ticks: Vec<Tick>,
    /// Column labels are rotated when there are many.
    rotate: bool,
}

#[derive(Serialize)]
struct Column {
    label: String,
    count: usize,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    cx: f64,
    label_y: f64,
    show_label: bool,
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
    Context {
        report,
        run,
        summary,
        coverage,
    }
}

fn run_view(r: &RunReport) -> RunView {
    let t = &r.totals;
    let failed = !t.all_passed();
    RunView {
        tool: r.tool.clone(),
        version: r.version.clone(),
        target: r.target.name.clone(),
        target_kind: r.target.kind.clone(),
        base_url: r.target.base_url.clone(),
        namespace: r.target.kube_namespace.clone(),
        time_scale: r.target.time_scale.map(time_scale_label),
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

fn spec_outcome_label(s: &str) -> &'static str {
    match s {
        "passed" => "Passed",
        "failed" => "Failed",
        "error" => "Error",
        "skipped" => "Skipped",
        "not_run" => "Not run in this run",
        "not_reached" => "Not reached (an earlier step failed)",
        _ => "Unknown",
    }
}

fn outcome_label(s: &str) -> &'static str {
    match s {
        "verified" => "Verified",
        "failing" => "Failing",
        "gap" => "Gap — no spec",
        "skipped" => "Skipped",
        "not_run" => "Not run in this run",
        _ => "Unknown",
    }
}

/// Areas of a spec: those of the catalog items it covers, else the first segment of its id.
fn spec_areas(spec: &SpecResult, cov: Option<&Coverage>) -> Vec<Choice> {
    let mut out: Vec<Choice> = Vec::new();
    if let Some(cov) = cov {
        for area in &cov.areas {
            let covers_area = area
                .items
                .iter()
                .any(|i| spec.covers.contains(&i.id) || i.specs.iter().any(|s| s.id == spec.id));
            if covers_area && !out.iter().any(|c| c.value == area.id) {
                out.push(Choice {
                    value: area.id.clone(),
                    label: area.title.clone(),
                    count: 0,
                });
            }
        }
    }
    if out.is_empty() {
        let seg = spec
            .id
            .split(['.', '/', ':'])
            .next()
            .unwrap_or(&spec.id)
            .to_string();
        out.push(Choice {
            value: seg.clone(),
            label: seg,
            count: 0,
        });
    }
    out
}

fn summary_view(
    r: &RunReport,
    spec_anchor: &HashMap<String, String>,
    anchors: &mut Anchors,
) -> SummaryView {
    let mut specs = Vec::new();
    let mut fanouts = Vec::new();
    let mut status_count: BTreeMap<Status, usize> = BTreeMap::new();
    let mut tags: BTreeMap<String, usize> = BTreeMap::new();
    let mut areas: Vec<Choice> = Vec::new();
    for spec in &r.specs {
        *status_count.entry(spec.status).or_default() += 1;
        for t in spec.tags.iter().collect::<BTreeSet<_>>() {
            *tags.entry(t.clone()).or_default() += 1;
        }
        let spec_areas = spec_areas(spec, r.coverage.as_ref());
        for a in &spec_areas {
            match areas.iter_mut().find(|c| c.value == a.value) {
                Some(c) => c.count += 1,
                None => areas.push(Choice {
                    value: a.value.clone(),
                    label: a.label.clone(),
                    count: 1,
                }),
            }
        }
        let anchor = spec_anchor[&spec.id].clone();
        let mut cases = Vec::new();
        for case in &spec.cases {
            let case_anchor = anchors.make(&format!("{anchor}-case"), &case.name);
            let mut view_of = |s: &StepResult| {
                let fanout_anchor = s.fanout.as_ref().map(|f| {
                    let a = anchors.make(&format!("{case_anchor}-load"), &s.name);
                    fanouts.push(fanout_view(f, s, spec, case, &a, &anchor));
                    a
                });
                step_view(s, fanout_anchor)
            };
            let steps: Vec<StepView> = case.steps.iter().map(&mut view_of).collect();
            let cleanup: Vec<StepView> = case.cleanup.iter().map(&mut view_of).collect();
            let message = case.message.clone();
            cases.push(CaseView {
                name: case.name.clone(),
                anchor: case_anchor,
                description: case.description.clone(),
                status: case.status.as_str(),
                status_label: status_label(case.status),
                duration: fmt_ms(case.duration_ms),
                message_multiline: message.as_deref().is_some_and(|m| m.contains('\n')),
                message,
                location: case.location.clone(),
                open: matches!(case.status, Status::Failed | Status::Error),
                vars: case
                    .vars
                    .iter()
                    .map(|(k, v)| (k.clone(), value_text(v)))
                    .collect(),
                steps,
                cleanup,
            });
        }
        let mut spec_tags = spec.tags.clone();
        spec_tags.dedup();
        specs.push(SpecView {
            id: spec.id.clone(),
            anchor,
            title: spec.title.clone(),
            description: spec.description.clone(),
            file: spec.file.clone(),
            line: spec.line,
            status: spec.status.as_str(),
            status_label: status_label(spec.status),
            tags_attr: format!("|{}|", spec_tags.join("|")),
            tags: spec_tags,
            areas_attr: format!(
                "|{}|",
                spec_areas
                    .iter()
                    .map(|a| a.value.as_str())
                    .collect::<Vec<_>>()
                    .join("|")
            ),
            areas: spec_areas,
            covers: spec.covers.clone(),
            duration: fmt_ms(spec.duration_ms),
            cases_total: spec.cases.len(),
            cases_passed: spec
                .cases
                .iter()
                .filter(|c| c.status == Status::Passed)
                .count(),
            skip_reason: spec.skip_reason.clone(),
            open: matches!(spec.status, Status::Failed | Status::Error),
            cases,
        });
    }
    // Most severe first in the status filter.
    let statuses = [
        Status::Failed,
        Status::Error,
        Status::Skipped,
        Status::Passed,
    ]
    .into_iter()
    .filter_map(|s| {
        status_count.get(&s).map(|n| Choice {
            value: s.as_str().into(),
            label: status_label(s).into(),
            count: *n,
        })
    })
    .collect();
    let tags = tags
        .into_iter()
        .map(|(t, n)| Choice {
            value: t.clone(),
            label: t,
            count: n,
        })
        .collect();
    SummaryView {
        filters: Filters {
            statuses,
            tags,
            areas,
        },
        specs,
        fanouts,
        readiness: readiness_view(r, spec_anchor),
    }
}

fn step_view(s: &StepResult, fanout_anchor: Option<String>) -> StepView {
    let failing = matches!(s.status, Status::Failed | Status::Error);
    let assertions: Vec<AssertionView> = s
        .assertions
        .iter()
        .map(|a| AssertionView {
            line: a.line,
            subject: a.subject.clone(),
            op: a.op.clone(),
            expected: value_text(&a.expected),
            actual: a.actual.as_ref().map(value_text),
            passed: a.passed,
            message_multiline: a.message.as_deref().is_some_and(|m| m.contains('\n')),
            message: a.message.clone(),
        })
        .collect();
    let mut note = Vec::new();
    if let Some(p) = &s.poll {
        note.push(format!("polled {}×", p.attempts));
    }
    if let Some(r) = &s.response {
        note.push(format!("HTTP {}", r.status));
    }
    if let Some(f) = &s.fanout {
        note.push(fanout_summary(f));
    }
    if let Some(m) = s.message.as_deref().filter(|_| s.status != Status::Passed) {
        note.push(shorten(m.lines().next().unwrap_or(""), 120));
    }
    StepView {
        note: note.join(" · "),
        name: s.name.clone(),
        kind: s.kind.clone(),
        line: s.line,
        status: s.status.as_str(),
        status_label: status_label(s.status),
        duration: match s.simulated_ms {
            Some(sim) => format!("{} simulated ({} wall)", fmt_ms(sim), fmt_ms(s.duration_ms)),
            None => fmt_ms(s.duration_ms),
        },
        message_multiline: s.message.as_deref().is_some_and(|m| m.contains('\n')),
        message: s.message.clone(),
        detailed: failing || s.poll.is_some() || !s.attachments.is_empty(),
        request: s.request.as_ref().map(|r| RequestView {
            method: r.method.clone(),
            url: r.url.clone(),
            headers: r.headers.clone(),
            body: r.body.as_deref().map(pretty_body),
        }),
        response: s.response.as_ref().map(|r| ResponseView {
            status: r.status,
            headers: r.headers.clone(),
            body: r.body.as_deref().map(pretty_body),
            truncated: r.truncated,
            elapsed: fmt_ms(r.elapsed_ms),
        }),
        failed_assertions: assertions.iter().filter(|a| !a.passed).count(),
        assertions,
        poll: s.poll.as_ref().map(poll_view),
        captures: s
            .captures
            .iter()
            .map(|(k, v)| (k.clone(), value_text(v)))
            .collect(),
        fanout_summary: s.fanout.as_ref().map(fanout_summary),
        fanout_anchor,
        attachments: s
            .attachments
            .iter()
            .map(|a| AttachmentView {
                title: a.title.clone(),
                body: a.body.clone(),
            })
            .collect(),
    }
}

fn poll_view(p: &PollInfo) -> PollView {
    PollView {
        attempts: p.attempts,
        elapsed: fmt_ms(p.elapsed_ms),
        simulated_elapsed: p.simulated_elapsed_ms.map(fmt_ms),
        interval: fmt_ms(p.interval_ms),
        timeout: fmt_ms(p.timeout_ms),
        satisfied: p.satisfied,
        last_mismatch: p.last_mismatch.clone(),
    }
}

/// "200/200 succeeded, 3 x 503 capacity" (as the console and JUnit say it).
fn fanout_summary(f: &FanoutStats) -> String {
    crate::engine::fanout::summary(f)
}

fn fanout_view(
    f: &FanoutStats,
    s: &StepResult,
    spec: &SpecResult,
    case: &CaseResult,
    anchor: &str,
    spec_anchor: &str,
) -> FanoutView {
    let request_latency: Vec<(String, &crate::results::LatencyStats)> = f
        .request_latency
        .iter()
        .map(|(n, l)| (format!("latency({n})"), l))
        .collect();
    let latency = f
        .steps
        .iter()
        .map(|(n, l)| (n.clone(), l))
        .chain(request_latency)
        .map(|(name, l)| LatencyRow {
            measure: l.measure.clone(),
            step: name.clone(),
            count: l.count,
            min: fmt_ms(l.min),
            mean: fmt_ms(l.mean),
            p50: fmt_ms(l.p50),
            p90: fmt_ms(l.p90),
            p95: fmt_ms(l.p95),
            p99: fmt_ms(l.p99),
            max: fmt_ms(l.max),
            percentiles: percentile_chart(&name, l),
            histogram: latency_histogram(&name, &l.histogram),
        })
        .collect();
    let mut rows: Vec<(String, f64, String, &'static str)> = vec![(
        "Succeeded".into(),
        f.succeeded as f64,
        f.succeeded.to_string(),
        "ok",
    )];
    for (reason, n) in &f.by_reason {
        rows.push((reason.clone(), *n as f64, n.to_string(), "bad"));
    }
    if f.by_reason.is_empty() && f.failed > 0 {
        rows.push((
            "Failed".into(),
            f.failed as f64,
            f.failed.to_string(),
            "bad",
        ));
    }
    let not_started = f.count.saturating_sub(f.started);
    if not_started > 0 {
        rows.push((
            "Not started".into(),
            not_started as f64,
            not_started.to_string(),
            "muted",
        ));
    }
    let outcomes = hbar_chart(
        &format!("Outcome of the {} iterations of {}", f.count, s.name),
        rows,
        |v| format!("{v:.0}"),
        190.0,
    );
    FanoutView {
        anchor: anchor.to_string(),
        spec_id: spec.id.clone(),
        spec_anchor: spec_anchor.to_string(),
        case_name: case.name.clone(),
        step_name: s.name.clone(),
        line: s.line,
        status: s.status.as_str(),
        status_label: status_label(s.status),
        summary: fanout_summary(f),
        count: f.count,
        concurrency: f.concurrency,
        started: f.started,
        succeeded: f.succeeded,
        failed: f.failed,
        duration: match f.simulated_duration_ms {
            Some(sim) => format!("{} simulated ({} wall)", fmt_ms(sim), fmt_ms(f.duration_ms)),
            None => fmt_ms(f.duration_ms),
        },
        throughput: format!("{:.1}/s", f.throughput_per_s),
        cleanup_failures: f.cleanup_failures,
        thresholds_failed: f.thresholds.iter().filter(|t| !t.passed).count(),
        thresholds: f
            .thresholds
            .iter()
            .map(|t| ThresholdView {
                expr: t.expr.clone(),
                value: t.value.clone(),
                passed: t.passed,
            })
            .collect(),
        sample_failures: f.sample_failures.clone(),
        latency,
        outcomes,
    }
}

fn percentile_chart(step: &str, l: &LatencyStats) -> HBarChart {
    let rows = [
        ("p50", l.p50),
        ("p90", l.p90),
        ("p95", l.p95),
        ("p99", l.p99),
        ("max", l.max),
    ]
    .into_iter()
    .map(|(k, v)| {
        (
            k.to_string(),
            v,
            fmt_ms(v),
            if k == "max" { "muted" } else { "bar" },
        )
    })
    .collect();
    hbar_chart(
        &format!("Latency percentiles of {step}"),
        rows,
        fmt_ms,
        60.0,
    )
}

fn latency_histogram(step: &str, buckets: &[Bucket]) -> Option<ColumnChart> {
    if buckets.is_empty() {
        return None;
    }
    let mut prev: Option<f64> = None;
    let cols = buckets
        .iter()
        .map(|b| {
            let label = if b.le_ms >= f64::MAX / 2.0 || b.le_ms.is_infinite() {
                format!("> {}", prev.map(fmt_ms).unwrap_or_else(|| "0".into()))
            } else {
                format!("≤ {}", fmt_ms(b.le_ms))
            };
            prev = Some(b.le_ms);
            (label, b.count)
        })
        .collect();
    Some(column_chart(
        &format!("Latency histogram of {step}"),
        "latency (bucket upper bound)",
        cols,
    ))
}

/// Every satisfied poll in the run (readiness of the consumer, a job reaching Running...).
fn readiness_view(r: &RunReport, spec_anchor: &HashMap<String, String>) -> Option<ReadinessView> {
    let mut samples: Vec<(f64, ReadinessSample)> = Vec::new();
    let mut simulated = false;
    for spec in &r.specs {
        for case in &spec.cases {
            for s in case.steps.iter().chain(&case.cleanup) {
                let Some(p) = s.poll.as_ref().filter(|p| p.satisfied) else {
                    continue;
                };
                let v = p.simulated_elapsed_ms.unwrap_or(p.elapsed_ms);
                simulated |= p.simulated_elapsed_ms.is_some();
                samples.push((
                    v,
                    ReadinessSample {
                        spec_id: spec.id.clone(),
                        spec_anchor: spec_anchor[&spec.id].clone(),
                        case_name: case.name.clone(),
                        step: s.name.clone(),
                        attempts: p.attempts.to_string(),
                        time: fmt_ms(v),
                    },
                ));
            }
            // Polls inside fan-outs: each iteration's time until its condition held.
            for s in case.steps.iter().chain(&case.cleanup) {
                let Some(f) = &s.fanout else { continue };
                for (step, l) in &f.steps {
                    simulated |= !l.held_samples.is_empty() && f.simulated_duration_ms.is_some();
                    for (i, v) in l.held_samples.iter().enumerate() {
                        samples.push((
                            *v,
                            ReadinessSample {
                                spec_id: spec.id.clone(),
                                spec_anchor: spec_anchor[&spec.id].clone(),
                                case_name: format!("{} · poll {}", case.name, i + 1),
                                step: format!("{} › {step}", s.name),
                                attempts: "—".into(),
                                time: fmt_ms(*v),
                            },
                        ));
                    }
                }
            }
        }
    }
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(|a, b| a.0.total_cmp(&b.0));
    let values: Vec<f64> = samples.iter().map(|s| s.0).collect();
    let mut groups: Vec<(String, Vec<f64>)> = Vec::new();
    for (v, s) in &samples {
        match groups.iter_mut().find(|g| g.0 == s.step) {
            Some(g) => g.1.push(*v),
            None => groups.push((s.step.clone(), vec![*v])),
        }
    }
    let by_step = groups
        .into_iter()
        .map(|(step, v)| ReadinessGroup {
            step,
            count: v.len(),
            min: fmt_ms(v[0]),
            median: fmt_ms(quantile(&v, 0.5)),
            max: fmt_ms(v[v.len() - 1]),
        })
        .collect();
    Some(ReadinessView {
        count: values.len(),
        simulated,
        time_scale: r.target.time_scale.map(time_scale_label),
        min: fmt_ms(values[0]),
        median: fmt_ms(quantile(&values, 0.5)),
        p90: fmt_ms(quantile(&values, 0.9)),
        max: fmt_ms(values[values.len() - 1]),
        histogram: column_chart(
            "Time until the polled condition held",
            "time until ready",
            range_buckets(&values),
        ),
        by_step,
        samples: samples.into_iter().map(|s| s.1).collect(),
    })
}

/// Equal-width buckets with a round width, labelled `0–1 s`, `1–2 s`...
fn range_buckets(sorted: &[f64]) -> Vec<(String, usize)> {
    let min = sorted.first().copied().unwrap_or(0.0).max(0.0);
    let max = sorted.last().copied().unwrap_or(0.0).max(min);
    let span = (max - min).max(max / 10.0).max(1.0);
    let width = nice_ceil(span / 12.0);
    let lo = (min / width).floor() * width;
    let n = (((max - lo) / width).floor() as usize + 1).clamp(1, 13);
    let mut counts = vec![0usize; n];
    for v in sorted {
        let i = (((v - lo) / width).floor().max(0.0) as usize).min(n - 1);
        counts[i] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let from = lo + i as f64 * width;
            (
                format!("{}–{}", fmt_ms_bare(from, width), fmt_ms(from + width)),
                c,
            )
        })
        .collect()
}

/// Linear-interpolated quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn coverage_view(
    c: &Coverage,
    r: &RunReport,
    spec_anchor: &HashMap<String, String>,
    anchors: &mut Anchors,
) -> CoverageView {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut hard = Vec::new();
    let mut areas = Vec::new();
    for area in &c.areas {
        let mut area_counts: BTreeMap<&str, usize> = BTreeMap::new();
        let mut items = Vec::new();
        for item in &area.items {
            if item.status == "in" {
                *counts.entry(item.outcome.as_str()).or_default() += 1;
                *area_counts.entry(item.outcome.as_str()).or_default() += 1;
            }
            let specs: Vec<CoveringView> = item
                .specs
                .iter()
                .map(|s| CoveringView {
                    anchor: spec_anchor.get(&s.id).cloned(),
                    id: s.id.clone(),
                    title: s.title.clone(),
                    file: s.file.clone(),
                    outcome: s.outcome.clone(),
                    outcome_label: spec_outcome_label(&s.outcome),
                    cases: if s.outcome == "not_run" {
                        String::new()
                    } else {
                        format!("{}/{} cases passed", s.cases_passed, s.cases)
                    },
                })
                .collect();
            if item.hard_requirement {
                hard.push(hard_view(item, &area.title, r));
            }
            items.push(ItemView {
                id: item.id.clone(),
                title: item.title.clone(),
                backlog: item.status != "in",
                hard_requirement: item.hard_requirement,
                outcome: item.outcome.clone(),
                outcome_label: outcome_label(&item.outcome),
                specs,
            });
        }
        let in_area: usize = area_counts.values().sum();
        areas.push(AreaView {
            id: area.id.clone(),
            title: area.title.clone(),
            anchor: anchors.make("area", &area.id),
            counts: format!(
                "{} of {} verified",
                area_counts.get("verified").copied().unwrap_or(0),
                in_area
            ),
            items,
        });
    }
    let n = |k: &str| counts.get(k).copied().unwrap_or(0);
    let total: usize = counts.values().sum::<usize>().max(1);
    let bar = ["verified", "failing", "skipped", "not_run", "gap"]
        .into_iter()
        .filter(|k| n(k) > 0)
        .map(|k| BarPart {
            outcome: k,
            label: outcome_label(k),
            count: n(k),
            percent: (n(k) as f64 * 1000.0 / total as f64).round() / 10.0,
        })
        .collect();
    let verdict = if c.failing > 0 || n("failing") > 0 {
        "failing"
    } else if !c.gaps.is_empty() || n("skipped") + n("not_run") > 0 {
        "incomplete"
    } else {
        "verified"
    };
    CoverageView {
        catalog_title: c.catalog_title.clone(),
        in_scope: c.in_scope,
        verified: c.verified,
        failing: c.failing,
        gaps: c.gaps.len(),
        skipped: n("skipped"),
        not_run: n("not_run"),
        headline: format!("{} of {} in-scope items verified", c.verified, c.in_scope),
        verdict,
        bar,
        hard,
        areas,
        gap_list: c.gaps.clone(),
        backlog: c.backlog.iter().map(excluded_view).collect(),
        excluded: c.excluded.iter().map(excluded_view).collect(),
    }
}

fn excluded_view(e: &crate::results::ExcludedItem) -> ExcludedView {
    ExcludedView {
        id: e.id.clone(),
        title: e.title.clone(),
        area: e.area.clone(),
        reason: e.reason.clone(),
    }
}

fn hard_view(item: &crate::results::CoverageItem, area: &str, r: &RunReport) -> HardView {
    let mut specs = Vec::new();
    let mut best: Option<String> = None;
    for cs in &item.specs {
        let mut fanouts = Vec::new();
        let mut failed_thresholds = Vec::new();
        if let Some(spec) = r.specs.iter().find(|s| s.id == cs.id) {
            for case in &spec.cases {
                for s in case.steps.iter().chain(&case.cleanup) {
                    let Some(f) = &s.fanout else { continue };
                    let mut line = fanout_summary(f);
                    if let Some((name, l)) = f.steps.first() {
                        line.push_str(&format!(", p95 {} ({name})", fmt_ms(l.p95)));
                    }
                    if f.cleanup_failures > 0 {
                        line.push_str(&format!(", {} cleanup failures", f.cleanup_failures));
                    }
                    if best.is_none() {
                        best = Some(format!("{} of {} succeeded", f.succeeded, f.count));
                    }
                    fanouts.push(line);
                    failed_thresholds.extend(
                        f.thresholds
                            .iter()
                            .filter(|t| !t.passed)
                            .map(|t| format!("{} (was {})", t.expr, t.value)),
                    );
                }
            }
        }
        specs.push(HardSpec {
            id: cs.id.clone(),
            title: cs.title.clone(),
            outcome: cs.outcome.clone(),
            outcome_label: spec_outcome_label(&cs.outcome),
            fanouts,
            failed_thresholds,
        });
    }
    let statement = match (item.outcome.as_str(), &best) {
        ("verified", Some(b)) => format!("Met: {b}."),
        ("verified", None) => "Met.".to_string(),
        ("failing", Some(b)) => format!("Not met: {b}."),
        ("failing", None) => "Not met: the covering test failed.".to_string(),
        ("gap", _) => "Not tested: no test covers this requirement.".to_string(),
        ("skipped", _) => "Not tested in this run: the covering test was skipped.".to_string(),
        _ => "Not run in this run: the covering test was not selected (or not reached); this is not a gap.".to_string(),
    };
    HardView {
        id: item.id.clone(),
        title: item.title.clone(),
        area: area.to_string(),
        outcome: item.outcome.clone(),
        outcome_label: outcome_label(&item.outcome),
        statement,
        specs,
    }
}

// ---------------------------------------------------------------------------------------------
// Chart geometry
// ---------------------------------------------------------------------------------------------

const CHART_W: f64 = 560.0;

fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn hbar_chart(
    title: &str,
    rows: Vec<(String, f64, String, &'static str)>,
    tick_fmt: impl Fn(f64) -> String,
    label_w: f64,
) -> HBarChart {
    let row_h = 26.0;
    let bar_h = 16.0;
    let top = 6.0;
    let value_w = 80.0;
    let plot_w = CHART_W - label_w - value_w;
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max);
    let (scale_max, n_ticks) = axis_scale(max);
    let plot_bottom = top + rows.len() as f64 * row_h;
    let bars = rows
        .into_iter()
        .enumerate()
        .map(|(i, (label, v, value, class))| {
            let y = top + i as f64 * row_h + (row_h - bar_h) / 2.0;
            let w = (v.max(0.0) / scale_max * plot_w).max(if v > 0.0 { 1.0 } else { 0.0 });
            HBar {
                short: shorten(&label, (label_w / 7.0) as usize),
                label,
                value,
                y: r1(y),
                h: bar_h,
                w: r1(w),
                text_y: r1(y + bar_h / 2.0 + 4.0),
                class,
            }
        })
        .collect();
    let ticks = (0..=n_ticks)
        .map(|i| {
            let v = scale_max * i as f64 / n_ticks as f64;
            Tick {
                pos: r1(label_w + plot_w * i as f64 / n_ticks as f64),
                label: tick_fmt(v),
            }
        })
        .collect();
    HBarChart {
        title: title.to_string(),
        width: CHART_W,
        height: r1(plot_bottom + 22.0),
        label_w,
        plot_w,
        plot_bottom: r1(plot_bottom),
        rows: bars,
        ticks,
    }
}

fn column_chart(title: &str, x_title: &str, cols: Vec<(String, usize)>) -> ColumnChart {
    let left = 44.0;
    let top = 16.0;
    let plot_w = CHART_W - left - 10.0;
    let plot_h = 150.0;
    let rotate = cols.len() > 6;
    let bottom_space = if rotate { 70.0 } else { 40.0 };
    let max = cols.iter().map(|c| c.1).max().unwrap_or(0) as f64;
    let (scale_max, n_ticks) = if max <= 4.0 {
        (max.max(1.0), max.max(1.0) as usize)
    } else {
        axis_scale(max)
    };
    let n = cols.len().max(1) as f64;
    let slot = plot_w / n;
    let w = (slot * 0.8).max(1.0);
    let columns = cols
        .into_iter()
        .enumerate()
        .map(|(i, (label, count))| {
            let h = count as f64 / scale_max * plot_h;
            let x = left + i as f64 * slot + (slot - w) / 2.0;
            Column {
                label,
                count,
                x: r1(x),
                y: r1(top + plot_h - h),
                w: r1(w),
                h: r1(h),
                cx: r1(x + w / 2.0),
                label_y: r1(top + plot_h + 14.0),
                show_label: true,
            }
        })
        .collect();
    let y_ticks = (0..=n_ticks)
        .map(|i| {
            let v = scale_max * i as f64 / n_ticks as f64;
            Tick {
                pos: r1(top + plot_h - v / scale_max * plot_h),
                label: format!("{}", v.round()),
            }
        })
        .collect();
    ColumnChart {
        title: title.to_string(),
        x_title: x_title.to_string(),
        width: CHART_W,
        height: top + plot_h + bottom_space + 16.0,
        left,
        top,
        plot_w: r1(plot_w),
        plot_h,
        bottom: top + plot_h,
        columns,
        y_ticks,
        rotate,
    }
}

/// An axis for values up to `max`: a round tick step (about a quarter of `max`) and the
/// number of ticks (at most 4) whose last one is at or above `max`.
fn axis_scale(max: f64) -> (f64, usize) {
    if max.is_nan() || max <= 0.0 || !max.is_finite() {
        return (1.0, 1);
    }
    let step = nice_ceil(max / 4.0);
    let n = ((max / step) - 1e-9).ceil().max(1.0) as usize;
    (step * n as f64, n)
}

/// The smallest of 1, 2, 2.5, 5 x 10^k that is >= `x`.
fn nice_ceil(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 || !x.is_finite() {
        return 1.0;
    }
    let exp = 10f64.powf(x.log10().floor());
    for f in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if f * exp >= x * (1.0 - 1e-9) {
            return f * exp;
        }
    }
    10.0 * exp
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

#[cfg(test)]
mod tests {
    #[test]
    fn time_scale_labels_say_what_they_mean() {
        assert_eq!(
            super::time_scale_label(0.01),
            "0.01 (simulated delays run 100× faster than real time)"
        );
        assert_eq!(super::time_scale_label(1.0), "1 (real timings)");
        assert_eq!(
            super::time_scale_label(2.5),
            "2.5 (simulated delays run 2.5× slower than real time)"
        );
    }

    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_ms(0.0), "0 ms");
        assert_eq!(fmt_ms(0.42), "0.4 ms");
        assert_eq!(fmt_ms(3.0), "3 ms");
        assert_eq!(fmt_ms(230.4), "230 ms");
        assert_eq!(fmt_ms(1250.0), "1.25 s");
        assert_eq!(fmt_ms(12_340.0), "12.3 s");
        assert_eq!(fmt_ms(123_000.0), "2 min 03 s");
    }

    #[test]
    fn nice_numbers() {
        assert_eq!(nice_ceil(0.0), 1.0);
        assert_eq!(nice_ceil(7.0), 10.0);
        assert_eq!(nice_ceil(180.0), 200.0);
        assert_eq!(nice_ceil(200.0), 200.0);
        assert_eq!(nice_ceil(2100.0), 2500.0);
    }

    #[test]
    fn axes_are_tight_and_round() {
        assert_eq!(axis_scale(3020.0), (4000.0, 4));
        assert_eq!(axis_scale(29_800.0), (30_000.0, 3));
        assert_eq!(axis_scale(188.0), (200.0, 4));
        assert_eq!(axis_scale(96.0), (100.0, 4));
        assert_eq!(axis_scale(0.0), (1.0, 1));
    }

    #[test]
    fn range_buckets_cover_all_values() {
        let v = vec![800.0, 1200.0, 2500.0, 2600.0, 29_000.0];
        let b = range_buckets(&v);
        assert_eq!(b.iter().map(|x| x.1).sum::<usize>(), 5);
        assert_eq!(b[0].0, "0–2.5 s");
        assert!(b.len() <= 13);
        // The range starts near the fastest value.
        let b = range_buckets(&[1150.0, 2400.0]);
        assert_eq!(b.first().unwrap().0, "1–1.2 s");
        assert_eq!(b.iter().map(|x| x.1).sum::<usize>(), 2);
        assert_eq!(range_buckets(&[5.0]).len(), 1);
    }

    #[test]
    fn html_templates_are_auto_escaped() {
        let mut env = environment(None).unwrap();
        env.add_template("probe.html", "{{ x }}").unwrap();
        let out = env
            .get_template("probe.html")
            .unwrap()
            .render(minijinja::context! { x => "<script>\"'&" })
            .unwrap();
        assert_eq!(out, "&lt;script&gt;&quot;&#x27;&amp;");
        for name in VIEWS
            .iter()
            .chain(&["_layout.html", "_macros.html", "_charts.html"])
        {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn anchors_are_unique_and_valid() {
        let mut a = Anchors::default();
        assert_eq!(
            a.make("spec", "k8s.lifecycle/Job opens"),
            "spec-k8s-lifecycle-job-opens"
        );
        assert_eq!(
            a.make("spec", "k8s.lifecycle/Job opens"),
            "spec-k8s-lifecycle-job-opens-2"
        );
        assert_eq!(a.make("spec", "<>"), "spec");
    }
}
