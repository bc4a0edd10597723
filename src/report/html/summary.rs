//! The summary page's view model: specs, cases, steps with their assertions, requests and
//! polls, fan-out statistics with their charts, the readiness distribution and the filters.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::charts::{column_chart, hbar_chart, nice_ceil, ColumnChart, HBarChart};
use super::{
    fmt_ms, fmt_ms_bare, pretty_body, shorten, status_label, time_scale_label, value_text, Anchors,
};
use crate::results::{
    Bucket, CaseResult, Coverage, FanoutStats, LatencyStats, PollInfo, RunReport, SpecResult,
    Status, StepResult,
};

#[derive(Serialize)]
pub(super) struct SummaryView {
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
    /// Passed only after failing (`retries`): marked, never shown as a plain pass.
    flaky: bool,
    /// The failed earlier attempts, oldest first.
    attempts: Vec<AttemptView>,
}

#[derive(Serialize)]
struct AttemptView {
    number: usize,
    status: &'static str,
    status_label: &'static str,
    duration: String,
    message: Option<String>,
    location: Option<String>,
}

#[derive(Serialize)]
struct StepView {
    name: String,
    /// The name as written, when it was a template (shown below the rendered name).
    name_template: Option<String>,
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
    /// `HTTP/1.1 200`: the status line as received, when the version is known.
    version: Option<String>,
    headers: Vec<(String, String)>,
    body: Option<String>,
    truncated: bool,
    elapsed: String,
    /// The final URL, when redirects were followed to it.
    url: Option<String>,
    /// Bytes on the wire, when the body came compressed.
    raw_bytes: Option<u64>,
    /// What the reader should know (the body was over `max_body`, its charset).
    note: Option<String>,
}

#[derive(Serialize)]
struct AssertionView {
    line: u32,
    subject: String,
    subject_template: Option<String>,
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
    /// (reason, count), most frequent first.
    cleanup_by_reason: Vec<(String, usize)>,
    cleanup_sample_failures: Vec<String>,
    thresholds: Vec<ThresholdView>,
    /// "All 3 thresholds met", "2 of 3 thresholds not met".
    thresholds_verdict: Option<String>,
    sample_failures: Vec<String>,
    latency: Vec<LatencyRow>,
    outcomes: HBarChart,
}

#[derive(Serialize)]
struct ThresholdView {
    expr: String,
    value: String,
    passed: bool,
    implicit: bool,
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
    /// The embedded target's virtual clock (every figure is simulated time).
    virtual_clock: bool,
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

pub(super) fn summary_view(
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
                open: matches!(case.status, Status::Failed | Status::Error) || case.flaky,
                flaky: case.flaky,
                attempts: case
                    .attempts
                    .iter()
                    .enumerate()
                    .map(|(i, a)| AttemptView {
                        number: i + 1,
                        status: a.status.as_str(),
                        status_label: status_label(a.status),
                        duration: fmt_ms(a.duration_ms),
                        message: a.message.clone(),
                        location: a.location.clone(),
                    })
                    .collect(),
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
            subject_template: a.subject_template.clone(),
            op: a.op.to_string(),
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
        name_template: s.name_template.clone(),
        kind: s.kind.to_string(),
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
            version: r.version.as_deref().map(str::to_string),
            url: r.url.clone(),
            raw_bytes: r.raw_bytes,
            note: r.note.clone(),
        }),
        failed_assertions: assertions.iter().filter(|a| !a.passed).count(),
        assertions,
        poll: s.poll.as_ref().map(poll_view),
        captures: s
            .captures
            .iter()
            .map(|(k, v)| (k.clone(), value_text(v)))
            .collect(),
        fanout_summary: s.fanout.as_deref().map(fanout_summary),
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
pub(super) fn fanout_summary(f: &FanoutStats) -> String {
    f.summary()
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
            measure: l
                .measure
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
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
        cleanup_by_reason: f
            .cleanup_by_reason
            .iter()
            .map(|(r, n)| (r.clone(), *n))
            .collect(),
        cleanup_sample_failures: f.cleanup_sample_failures.clone(),
        thresholds_verdict: f.thresholds_verdict(),
        thresholds: f
            .thresholds
            .iter()
            .map(|t| ThresholdView {
                expr: t.expr.clone(),
                value: t.value.clone(),
                passed: t.passed,
                implicit: t.implicit,
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
    let virtual_clock = r.target.virtual_clock();
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
        simulated: simulated || virtual_clock,
        virtual_clock,
        time_scale: (!virtual_clock)
            .then_some(r.target.time_scale)
            .flatten()
            .map(time_scale_label),
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
