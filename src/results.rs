//! The results model: what a run produced, independent of how it is shown.
//! Reporters (console, JSON, JUnit, HTML) consume only this; `results.json` is its serialisation,
//! so `focusqa report results.json` can re-render everything later.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[cfg(test)]
mod every_field;
pub mod numbers;
pub mod secrets;
pub mod words;

pub use secrets::{is_secret_header, Redact, Redactor, Secrets, REDACTED};
pub use words::{
    AssertOp, Clock, CoverageOutcome, ItemStatus, Measure, SpecOutcome, StepKindName, TargetKind,
};

/// Outcome of a spec, case or step. Ordered by severity for `worst`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Passed,
    Skipped,
    /// An assertion did not hold (the system under test misbehaved).
    Failed,
    /// The test could not be carried out (connection refused, timeout, bad template, API error).
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::Error => "error",
        }
    }
    /// The more severe of two outcomes (skipped < failed < error; passed is the identity).
    pub fn worst(self, other: Status) -> Status {
        self.max(other)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub tool: String,
    pub version: String,
    pub target: TargetInfo,
    pub started_at: DateTime<Utc>,
    pub duration_ms: f64,
    /// The run was stopped by Ctrl-C; unfinished work is reported as such.
    #[serde(default)]
    pub interrupted: bool,
    pub totals: Totals,
    pub specs: Vec<SpecResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
    /// This run was one shard of a split run (`--shard K/N`); `focusqa merge` combines them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// Earlier runs and this one (`--history DIR`), oldest first, for the trend section of
    /// the HTML reports. Kept in the history directory, not in results.json.
    #[serde(skip)]
    pub history: Vec<RunRecord>,
}

/// One run in a history (`run --history DIR`): what trends are drawn from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub started_at: DateTime<Utc>,
    pub target: String,
    /// The target's kind (`embedded`, `simulator`, `remote`), so a trend can tell a simulator's
    /// runs from a real server's; absent in records written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_kind: Option<TargetKind>,
    /// `git rev-parse HEAD` of the working directory, when it is a git checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    pub totals: Totals,
    /// In-scope items verified / in scope (absent without a catalog).
    #[serde(default)]
    pub verified: usize,
    #[serde(default)]
    pub in_scope: usize,
    /// In-scope coverage item id -> outcome.
    #[serde(default)]
    pub coverage: BTreeMap<String, CoverageOutcome>,
    /// Spec id -> status.
    #[serde(default)]
    pub specs: BTreeMap<String, Status>,
    /// `spec id / step` -> p95 (ms) of fan-out steps.
    #[serde(default)]
    pub p95: BTreeMap<String, f64>,
}

/// Which part of a split run a report is: shard `index` (1-based) of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    pub index: usize,
    pub total: usize,
}

/// A duration in milliseconds, to the microsecond: how every time in the results is written.
pub fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Bodies kept in results are cut to this many bytes.
pub const EXCERPT_BYTES: usize = 4096;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TargetInfo {
    pub name: String,
    /// `embedded` (in-process simulator), `simulator` (a `focusqa sim` elsewhere) or `remote`.
    pub kind: TargetKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_scale: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_namespace: Option<String>,
    /// The clock the run's durations were measured on: `virtual` (the embedded simulator) or
    /// `wall`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<Clock>,
    /// The embedded simulator's seed: `--seed N` with the same config replays the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl TargetInfo {
    /// Whether the run was on the embedded simulator's virtual clock (every figure simulated).
    pub fn virtual_clock(&self) -> bool {
        match &self.clock {
            Some(Clock::Virtual) => true,
            Some(Clock::Wall | Clock::Other(_)) | None => false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub specs: usize,
    pub cases: usize,
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub skipped: usize,
}

impl Totals {
    pub fn from_specs(specs: &[SpecResult]) -> Totals {
        let mut t = Totals {
            specs: specs.len(),
            ..Default::default()
        };
        for c in specs.iter().flat_map(|s| &s.cases) {
            t.cases += 1;
            match c.status {
                Status::Passed => t.passed += 1,
                Status::Failed => t.failed += 1,
                Status::Error => t.errors += 1,
                Status::Skipped => t.skipped += 1,
            }
        }
        t
    }
    pub fn all_passed(&self) -> bool {
        self.failed == 0 && self.errors == 0
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpecResult {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub file: String,
    pub line: u32,
    #[serde(default)]
    pub covers: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub requires: Vec<String>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    pub started_at: DateTime<Utc>,
    /// Start, in ms after the run started (monotonic clock: comparable across specs).
    #[serde(default)]
    pub start_offset_ms: f64,
    pub duration_ms: f64,
    pub cases: Vec<CaseResult>,
}

impl Redact for TargetInfo {
    fn redact_with(&mut self, r: &Redactor) {
        let TargetInfo {
            name,
            kind,
            base_url,
            capabilities,
            time_scale: _,
            kube_namespace,
            clock,
            seed: _,
        } = self;
        name.redact_with(r);
        kind.redact_with(r);
        clock.redact_with(r);
        if let Some(u) = base_url {
            *u = r.redact(&secrets::redact_url(u), false).into_owned();
        }
        capabilities.redact_with(r);
        kube_namespace.redact_with(r);
    }
}

impl Redact for SpecResult {
    fn redact_with(&mut self, r: &Redactor) {
        let SpecResult {
            id,
            title,
            description,
            file,
            line: _,
            covers,
            tags,
            requires,
            status: _,
            skip_reason,
            started_at: _,
            start_offset_ms: _,
            duration_ms: _,
            cases,
        } = self;
        for s in [id, title, file] {
            s.redact_with(r);
        }
        for s in [covers, tags, requires] {
            s.redact_with(r);
        }
        description.redact_with(r);
        skip_reason.redact_with(r);
        cases.redact_with(r);
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseResult {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub status: Status,
    pub duration_ms: f64,
    /// One-line reason of a non-passing case (first failure, error or skip reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `file:line:col` of the failing step or assertion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The source line at `location` (secrets redacted), shown with a caret under the column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_line: Option<String>,
    /// The case's variables as used (secrets redacted).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub vars: IndexMap<String, Value>,
    pub steps: Vec<StepResult>,
    #[serde(default)]
    pub cleanup: Vec<StepResult>,
    /// Failed earlier attempts of a case run again (`--retries`, `retries:`), oldest first.
    /// `status` is the last attempt's; with a pass after failures the case is `flaky`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptResult>,
    /// Passed only after failing: reported apart, never as a silent pass.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flaky: bool,
}

impl Redact for CaseResult {
    fn redact_with(&mut self, r: &Redactor) {
        let CaseResult {
            name,
            description,
            status: _,
            duration_ms: _,
            message,
            location,
            source_line,
            vars,
            steps,
            cleanup,
            attempts,
            flaky: _,
        } = self;
        name.redact_with(r);
        for s in [description, message, location, source_line] {
            s.redact_with(r);
        }
        vars.redact_with(r);
        steps.redact_with(r);
        cleanup.redact_with(r);
        attempts.redact_with(r);
    }
}

/// One failed attempt of a case that was run again (its steps kept for the reader).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptResult {
    pub status: Status,
    pub duration_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub steps: Vec<StepResult>,
    #[serde(default)]
    pub cleanup: Vec<StepResult>,
}

impl Redact for AttemptResult {
    fn redact_with(&mut self, r: &Redactor) {
        let AttemptResult {
            status: _,
            duration_ms: _,
            message,
            location,
            steps,
            cleanup,
        } = self;
        message.redact_with(r);
        location.redact_with(r);
        steps.redact_with(r);
        cleanup.redact_with(r);
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepResult {
    /// The step's name as it ran: its template rendered with the values of the moment the step
    /// started (`configure job 3`).
    pub name: String,
    /// The name as written (`configure job {{ n }}`), only when it differs from `name`. Absent
    /// in results written before names were rendered: there `name` is the template itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_template: Option<String>,
    /// The step kind's name (`http`, `kube`, …).
    pub kind: StepKindName,
    pub line: u32,
    /// The column of `line` where the step starts (absent in older results files).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub col: u32,
    pub status: Status,
    /// Wall time of the step.
    pub duration_ms: f64,
    /// On a time-scaled simulator, the simulated time a waiting or polled step took
    /// (`duration_ms / time_scale`): the figure its spec's durations are compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestExcerpt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseExcerpt>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assertions: Vec<AssertionResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<PollInfo>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub captures: IndexMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fanout: Option<Box<FanoutStats>>,
    /// Extra material for a failure: Kubernetes object YAML, events, container statuses...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Scope items this step proves on its own (the step's `covers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub covers: Vec<String>,
    /// The file of a step that is not the spec's own (an `include`d fragment); `line` is in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// What a block step ran: one result per `foreach` item or `repeat` run (each holding its
    /// steps), or the steps of an `include`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepResult>,
}

impl StepResult {
    /// The innermost failing (or erroring) step below this one, and its file when it is not
    /// the spec's: where a failure in a loop or an included fragment really is.
    pub fn failing_leaf(&self) -> (&StepResult, Option<&str>) {
        let mut cur = self;
        let mut file = self.file.as_deref();
        while let Some(child) = cur
            .steps
            .iter()
            .find(|s| matches!(s.status, Status::Failed | Status::Error))
        {
            cur = child;
            file = child.file.as_deref().or(file);
        }
        (cur, file)
    }
}

impl Redact for StepResult {
    fn redact_with(&mut self, r: &Redactor) {
        let StepResult {
            name,
            name_template,
            kind,
            line: _,
            col: _,
            status: _,
            duration_ms: _,
            simulated_ms: _,
            message,
            request,
            response,
            assertions,
            poll,
            captures,
            fanout,
            attachments,
            covers,
            file,
            steps,
        } = self;
        // Scope item ids and a fragment's path are the spec's words; redacted all the same (a
        // path may hold a user name, an id anything).
        covers.redact_with(r);
        file.redact_with(r);
        // What a block ran (foreach items, repeat runs, included steps) is redacted alike.
        steps.redact_with(r);
        name.redact_with(r);
        // A template holds names, not values; redacted all the same (a name may be a secret's).
        name_template.redact_with(r);
        kind.redact_with(r);
        message.redact_with(r);
        request.redact_with(r);
        response.redact_with(r);
        assertions.redact_with(r);
        poll.redact_with(r);
        captures.redact_with(r);
        fanout.redact_with(r);
        attachments.redact_with(r);
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub title: String,
    pub body: String,
}

impl Redact for Attachment {
    fn redact_with(&mut self, r: &Redactor) {
        let Attachment { title, body } = self;
        title.redact_with(r);
        body.redact_with(r);
    }
}

/// A header list's names and values.
fn redact_headers(headers: &mut [(String, String)], r: &Redactor) {
    for (k, v) in headers {
        k.redact_with(r);
        v.redact_with(r);
    }
}

/// A body excerpt; `cut`: it may end in the start of a secret.
fn redact_body(body: &mut Option<String>, cut: impl FnOnce(&str) -> bool, r: &Redactor) {
    if let Some(b) = body {
        let cut = cut(b);
        if let std::borrow::Cow::Owned(x) = r.redact(b, cut) {
            *b = x;
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestExcerpt {
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The files the body was read from (`body_file`, multipart files): where a sent body came
    /// from, and how large it was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<SentFile>,
}

impl Redact for RequestExcerpt {
    fn redact_with(&mut self, r: &Redactor) {
        let RequestExcerpt {
            method,
            url,
            headers,
            body,
            files,
        } = self;
        method.redact_with(r);
        url.redact_with(r);
        redact_headers(headers, r);
        files.redact_with(r);
        // An excerpt cut at the size limit may end in the start of a secret.
        redact_body(body, |b| b.len() + 64 >= EXCERPT_BYTES, r);
    }
}

/// A file a request sent, as read at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentFile {
    /// `body_file`, or `multipart[NAME]` for a multipart part.
    pub from: String,
    /// The file read (resolved: the path after templating, links followed).
    pub path: String,
    pub bytes: u64,
}

impl Redact for SentFile {
    fn redact_with(&mut self, r: &Redactor) {
        // A templated file path may carry a variable's value (and a part's name the spec's).
        let SentFile {
            from,
            path,
            bytes: _,
        } = self;
        path.redact_with(r);
        from.redact_with(r);
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResponseExcerpt {
    pub status: u16,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// True when `body` was cut to the excerpt size (or the body was over the target's
    /// `max_body`: see `note`).
    #[serde(default)]
    pub truncated: bool,
    pub elapsed_ms: f64,
    /// Body bytes as received on the wire (before gzip/deflate/br/zstd decoding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_bytes: Option<u64>,
    /// `HTTP/1.1`, `HTTP/2`, ... (a fixed word, not copied per response).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<std::borrow::Cow<'static, str>>,
    /// The final URL, when redirects were followed to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// What the reader should know: the body was over `max_body`, the charset it was decoded by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Redact for ResponseExcerpt {
    fn redact_with(&mut self, r: &Redactor) {
        let ResponseExcerpt {
            status: _,
            headers,
            body,
            truncated,
            elapsed_ms: _,
            raw_bytes: _,
            version,
            url,
            note,
        } = self;
        // Our own words ("HTTP/2"), unless read back from a results file as text.
        if let Some(std::borrow::Cow::Owned(v)) = version {
            v.redact_with(r);
        }
        redact_headers(headers, r);
        url.redact_with(r);
        note.redact_with(r);
        redact_body(body, |_| *truncated, r);
    }
}

/// `file:line:col` (`file:line` when the column is unknown): where a failure is.
pub fn location(file: &str, line: u32, col: u32) -> String {
    if col > 0 {
        format!("{file}:{line}:{col}")
    } else {
        format!("{file}:{line}")
    }
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// One evaluated expectation: what was expected, what was found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssertionResult {
    pub line: u32,
    /// The column of what was checked (absent in older results files).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub col: u32,
    /// What was checked (`status`, `$.job_id`, `header content-type`, an expression...), with
    /// its templates rendered (`$.jobs[3]`, `18-3`).
    pub subject: String,
    /// The subject as written (`$.jobs[{{ i }}]`, `{{ open_before }}`), only when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_template: Option<String>,
    /// The operator (`equals`, `matches`, `matches (partial)`...).
    pub op: AssertOp,
    pub expected: Value,
    /// Absent when the subject did not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<Value>,
    pub passed: bool,
    /// Details (a diff, schema errors) or the spec author's `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Redact for AssertionResult {
    fn redact_with(&mut self, r: &Redactor) {
        let AssertionResult {
            line: _,
            col: _,
            subject,
            subject_template,
            op,
            expected,
            actual,
            passed: _,
            message,
        } = self;
        subject.redact_with(r);
        subject_template.redact_with(r);
        op.redact_with(r);
        expected.redact_with(r);
        actual.redact_with(r);
        message.redact_with(r);
    }
}

impl AssertionResult {
    /// "`$.status` equals "configured": found "failed"".
    pub fn describe(&self) -> String {
        // Thresholds read best as "threshold `x` not met: <measured>".
        if self.op == AssertOp::Holds {
            let v = self
                .actual
                .as_ref()
                .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| compact(v)))
                .unwrap_or_default();
            let verdict = if self.passed { "met" } else { "not met" };
            return format!("{} {verdict}: {v}{}", self.subject, self.note());
        }
        let found = match &self.actual {
            Some(v) => compact(v),
            None => "nothing".to_string(),
        };
        format!(
            "{} {} {}: found {}{}{}",
            self.subject,
            self.op,
            compact(&self.expected),
            found,
            self.as_written(),
            self.note()
        )
    }

    /// " (as written: `{{ open_before }}`)" when the subject was a template: the rendered
    /// subject says what was checked, the template where it comes from in the spec.
    fn as_written(&self) -> String {
        match &self.subject_template {
            Some(t) => format!(" (as written: `{t}`)"),
            None => String::new(),
        }
    }

    /// A one-line `message` (the author's words) goes in parentheses after the description.
    fn note(&self) -> String {
        match &self.message {
            Some(m) if !m.contains('\n') => format!(" ({m})"),
            _ => String::new(),
        }
    }

    /// A multi-line `message` (a diff, schema errors), shown below the one-line description.
    pub fn details(&self) -> Option<&str> {
        self.message.as_deref().filter(|m| m.contains('\n'))
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A short one-line rendering of a JSON value.
pub fn compact(v: &Value) -> String {
    let s = serde_json::to_string(v).unwrap_or_default();
    if s.chars().count() > 200 {
        format!("{}…", s.chars().take(200).collect::<String>())
    } else {
        s
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PollInfo {
    pub attempts: u32,
    /// Wall time from the first attempt to the last.
    pub elapsed_ms: f64,
    pub interval_ms: f64,
    pub timeout_ms: f64,
    pub satisfied: bool,
    /// Elapsed time in the simulated world (`elapsed / time_scale`), on a time-scaled simulator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated_elapsed_ms: Option<f64>,
    /// Why the last attempt did not satisfy the expectations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_mismatch: Option<String>,
}

impl Redact for PollInfo {
    fn redact_with(&mut self, r: &Redactor) {
        let PollInfo {
            attempts: _,
            elapsed_ms: _,
            interval_ms: _,
            timeout_ms: _,
            satisfied: _,
            simulated_elapsed_ms: _,
            last_mismatch,
        } = self;
        last_mismatch.redact_with(r);
    }
}

impl PollInfo {
    /// "3210 ms simulated (32 ms wall)" on a time-scaled simulator, else "32 ms".
    pub fn elapsed_text(&self) -> String {
        match self.simulated_elapsed_ms {
            Some(sim) => format!("{sim:.0} ms simulated ({:.0} ms wall)", self.elapsed_ms),
            None => format!("{:.0} ms", self.elapsed_ms),
        }
    }
}

/// Latency statistics of one step inside a fan-out, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LatencyStats {
    pub count: usize,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    /// Histogram buckets: upper bound (ms) and count.
    #[serde(default)]
    pub histogram: Vec<Bucket>,
    /// What the figures measure: `request latency` (one round trip, real time), `time until the
    /// condition held` (a polled step, in the spec's time) or `step duration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure: Option<Measure>,
    /// For polled steps: the times of the polls whose condition held, in iteration order (at
    /// most 10,000), for the readiness distribution.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_samples: Vec<f64>,
}

impl Redact for LatencyStats {
    fn redact_with(&mut self, r: &Redactor) {
        let LatencyStats {
            count: _,
            min: _,
            mean: _,
            p50: _,
            p90: _,
            p95: _,
            p99: _,
            max: _,
            histogram: _,
            measure,
            held_samples: _,
        } = self;
        measure.redact_with(r);
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bucket {
    pub le_ms: f64,
    pub count: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FanoutStats {
    pub count: usize,
    pub concurrency: usize,
    pub started: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Open loop: scheduled starts dropped because `max_in_flight` iterations were running.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: usize,
    /// Failures by reason (`503 capacity`, `error: timeout`, `assertion: $.status`...).
    pub by_reason: IndexMap<String, usize>,
    pub duration_ms: f64,
    /// On a time-scaled simulator: the fan-out's duration in simulated time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated_duration_ms: Option<f64>,
    pub throughput_per_s: f64,
    /// Per-step time inside the block, by step name (each says what it measures).
    pub steps: IndexMap<String, LatencyStats>,
    /// For polled requests: the latency of the last request of each poll (`latency(step)`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub request_latency: IndexMap<String, LatencyStats>,
    /// Captured values of every iteration, by variable name (in iteration order).
    #[serde(default)]
    pub captures: IndexMap<String, Vec<Value>>,
    pub thresholds: Vec<ThresholdResult>,
    /// A few failing iterations, for the reader.
    #[serde(default)]
    pub sample_failures: Vec<String>,
    /// Iterations whose cleanup failed (a leak risk).
    #[serde(default)]
    pub cleanup_failures: usize,
    /// Cleanup failures by reason, grouped like `by_reason`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub cleanup_by_reason: IndexMap<String, usize>,
    /// A few failing cleanups, for the reader (`iteration 3: status 404`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cleanup_sample_failures: Vec<String>,
}

impl Redact for FanoutStats {
    fn redact_with(&mut self, r: &Redactor) {
        let FanoutStats {
            count: _,
            concurrency: _,
            started: _,
            succeeded: _,
            failed: _,
            dropped: _,
            by_reason,
            duration_ms: _,
            simulated_duration_ms: _,
            throughput_per_s: _,
            steps,
            request_latency,
            captures,
            thresholds,
            sample_failures,
            cleanup_failures: _,
            cleanup_by_reason,
            cleanup_sample_failures,
        } = self;
        // Reasons that differ only by a secret are one reason once it is hidden.
        for reasons in [by_reason, cleanup_by_reason] {
            if reasons
                .keys()
                .any(|k| matches!(r.redact(k, false), std::borrow::Cow::Owned(_)))
            {
                for (k, n) in std::mem::take(reasons) {
                    *reasons.entry(r.redact(&k, false).into_owned()).or_default() += n;
                }
            }
        }
        steps.redact_with(r);
        request_latency.redact_with(r);
        captures.redact_with(r);
        thresholds.redact_with(r);
        sample_failures.redact_with(r);
        cleanup_sample_failures.redact_with(r);
    }
}

impl FanoutStats {
    /// The thresholds' verdict in a sentence: "All 3 thresholds met", "2 of 3 thresholds not
    /// met", "The implicit threshold is met". `None` when there are no thresholds.
    pub fn thresholds_verdict(&self) -> Option<String> {
        let n = self.thresholds.len();
        if n == 0 {
            return None;
        }
        let not_met = self.thresholds.iter().filter(|t| !t.passed).count();
        // Implicit thresholds stand only where none were written: never a mix.
        let word = if self.thresholds.iter().all(|t| t.implicit) {
            "implicit threshold"
        } else {
            "threshold"
        };
        Some(match (n, not_met) {
            (1, 0) => format!("The {word} is met"),
            (1, _) => format!("The {word} is not met"),
            (2, 0) => format!("Both {word}s met"),
            (_, 0) => format!("All {n} {word}s met"),
            (_, k) => format!("{k} of {n} {word}s not met"),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdResult {
    pub expr: String,
    pub value: String,
    pub passed: bool,
    /// Not written in the spec: a fan-out without `thresholds:` is held to `failed == 0` (and an
    /// open loop to `dropped == 0`), so failing iterations fail it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub implicit: bool,
}

impl Redact for ThresholdResult {
    fn redact_with(&mut self, r: &Redactor) {
        let ThresholdResult {
            expr,
            value,
            passed: _,
            implicit: _,
        } = self;
        expr.redact_with(r);
        value.redact_with(r);
    }
}

/// Scope coverage, computed from the catalog and the spec results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Coverage {
    pub catalog_title: String,
    pub areas: Vec<CoverageArea>,
    pub in_scope: usize,
    /// In-scope items whose covering specs all passed.
    pub verified: usize,
    pub failing: usize,
    pub gaps: Vec<String>,
    pub excluded: Vec<ExcludedItem>,
    pub backlog: Vec<ExcludedItem>,
}

impl Redact for Coverage {
    fn redact_with(&mut self, r: &Redactor) {
        let Coverage {
            catalog_title,
            areas,
            in_scope: _,
            verified: _,
            failing: _,
            gaps,
            excluded,
            backlog,
        } = self;
        catalog_title.redact_with(r);
        areas.redact_with(r);
        gaps.redact_with(r);
        excluded.redact_with(r);
        backlog.redact_with(r);
    }
}

impl Coverage {
    /// Items that ran but say nowhere where (results.json written before items recorded their
    /// target) were established on the run's own target: a run has one.
    pub fn fill_target(&mut self, target: &TargetInfo) {
        for item in self.areas.iter_mut().flat_map(|a| &mut a.items) {
            if item.target.is_none() && item.outcome.ran() {
                item.target = Some(TargetRef::of(target));
            }
        }
    }

    /// Where the items' outcomes were established, to follow "verified on": `the embedded
    /// simulator`, `staging (a real server)`, or `2 targets: ...` (each item then says its own);
    /// `None` when nothing ran.
    pub fn where_phrase(&self) -> Option<String> {
        match self.targets().as_slice() {
            [] => None,
            [t] => Some(t.describe()),
            many => Some(format!(
                "{} targets: {}",
                many.len(),
                many.iter()
                    .map(|t| t.describe())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Whether every outcome that ran was established on a real server (false when nothing ran).
    pub fn all_real(&self) -> bool {
        let t = self.targets();
        !t.is_empty() && t.iter().all(|t| t.is_real())
    }

    /// The distinct targets the items' outcomes were established on, in order of appearance.
    pub fn targets(&self) -> Vec<&TargetRef> {
        let mut out: Vec<&TargetRef> = Vec::new();
        for t in self
            .areas
            .iter()
            .flat_map(|a| &a.items)
            .filter_map(|i| i.target.as_ref())
        {
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CoverageArea {
    pub id: String,
    pub title: String,
    pub items: Vec<CoverageItem>,
}

impl Redact for CoverageArea {
    fn redact_with(&mut self, r: &Redactor) {
        let CoverageArea { id, title, items } = self;
        id.redact_with(r);
        title.redact_with(r);
        items.redact_with(r);
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CoverageItem {
    pub id: String,
    pub title: String,
    pub status: ItemStatus,
    #[serde(default)]
    pub hard_requirement: bool,
    pub outcome: CoverageOutcome,
    /// Where the outcome was established (the run's target and its kind), so no report can pass
    /// a simulator's verdict off as a real server's. Absent when nothing ran (a gap, not run),
    /// and in results.json written before the field (`report::json::read` fills it in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetRef>,
    pub specs: Vec<CoveringSpec>,
}

impl Redact for CoverageItem {
    fn redact_with(&mut self, r: &Redactor) {
        let CoverageItem {
            id,
            title,
            status,
            hard_requirement: _,
            outcome,
            target,
            specs,
        } = self;
        // Scope item ids are the catalog's words; redacted all the same (an id may be anything).
        id.redact_with(r);
        title.redact_with(r);
        status.redact_with(r);
        outcome.redact_with(r);
        target.redact_with(r);
        specs.redact_with(r);
    }
}

/// A target as coverage records it: its name and kind (`embedded`, `simulator`, `remote`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRef {
    pub name: String,
    pub kind: TargetKind,
}

impl Redact for TargetRef {
    fn redact_with(&mut self, r: &Redactor) {
        let TargetRef { name, kind } = self;
        name.redact_with(r);
        kind.redact_with(r);
    }
}

impl TargetRef {
    pub fn of(t: &TargetInfo) -> TargetRef {
        TargetRef {
            name: t.name.clone(),
            kind: t.kind.clone(),
        }
    }

    /// Whether the target is a real server rather than a simulator.
    pub fn is_real(&self) -> bool {
        self.kind == TargetKind::Remote
    }

    /// The kind for people: `embedded simulator`, `simulator`, `real server`.
    pub fn kind_label(&self) -> &'static str {
        kind_label(&self.kind)
    }

    /// Short, for a property or a table cell: `embedded simulator`, `sim (simulator)`,
    /// `staging (real server)`.
    pub fn label(&self) -> String {
        match &self.kind {
            TargetKind::Embedded => "embedded simulator".into(),
            k => format!("{} ({})", self.name, kind_label(k)),
        }
    }

    /// Where, as a phrase to follow "Verified on": `the embedded simulator`, `the simulator
    /// "sim"`, `staging (a real server)`. A simulator is never named as if it were a server.
    pub fn describe(&self) -> String {
        match &self.kind {
            TargetKind::Embedded => "the embedded simulator".into(),
            TargetKind::Simulator => format!("the simulator \"{}\"", self.name),
            TargetKind::Remote => format!("{} (a real server)", self.name),
            TargetKind::Other(_) => format!("{} (kind of target not recorded)", self.name),
        }
    }
}

/// A target kind for people (see [`TargetRef::kind_label`]).
pub fn kind_label(kind: &TargetKind) -> &'static str {
    match kind {
        TargetKind::Embedded => "embedded simulator",
        TargetKind::Simulator => "simulator",
        TargetKind::Remote => "real server",
        TargetKind::Other(_) => "kind not recorded",
    }
}

impl CoverageItem {
    /// "Verified on the embedded simulator", "Failing on staging (a real server)"; outcomes
    /// that say nothing about a target ("Gap", "Not run in this run") stay as they are.
    pub fn outcome_where(&self) -> String {
        let word = self.outcome.label();
        match (&self.outcome, &self.target) {
            (CoverageOutcome::Gap | CoverageOutcome::NotRun, _) | (_, None) => word.into(),
            (
                CoverageOutcome::Verified
                | CoverageOutcome::Failing
                | CoverageOutcome::Skipped
                | CoverageOutcome::Other(_),
                Some(t),
            ) => format!("{word} on {}", t.describe()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CoveringSpec {
    pub id: String,
    pub title: String,
    pub file: String,
    pub outcome: SpecOutcome,
    pub cases: usize,
    pub cases_passed: usize,
    /// When the item is proven by some steps of the spec rather than the whole spec: which
    /// (`step "200 at once" (line 15)`), and the outcome above is theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

impl Redact for CoveringSpec {
    fn redact_with(&mut self, r: &Redactor) {
        let CoveringSpec {
            id,
            title,
            file,
            outcome,
            cases: _,
            cases_passed: _,
            via,
        } = self;
        for s in [id, title, file] {
            s.redact_with(r);
        }
        outcome.redact_with(r);
        via.redact_with(r);
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExcludedItem {
    pub id: String,
    pub title: String,
    pub area: String,
    pub reason: String,
}

impl Redact for ExcludedItem {
    fn redact_with(&mut self, r: &Redactor) {
        let ExcludedItem {
            id,
            title,
            area,
            reason,
        } = self;
        for s in [id, title, area, reason] {
            s.redact_with(r);
        }
    }
}

/// "3 x status 404, 1 x error: timeout": failures by reason, most frequent first.
pub fn reasons_text(by_reason: &IndexMap<String, usize>) -> String {
    by_reason
        .iter()
        .map(|(reason, n)| format!("{n} x {reason}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl FanoutStats {
    /// "150/200 succeeded, 50 x 503 capacity reached" (and ", 7 dropped" in an open loop).
    pub fn summary(&self) -> String {
        let mut out = format!("{}/{} succeeded", self.succeeded, self.count);
        for (reason, n) in &self.by_reason {
            out.push_str(&format!(", {n} x {reason}"));
        }
        if self.dropped > 0 {
            out.push_str(&format!(", {} dropped", self.dropped));
        }
        out
    }

    /// "3 cleanup failures (3 x status 404)" (results.json files written before cleanup reasons
    /// were recorded have none to tell).
    pub fn cleanup_text(&self) -> String {
        let mut out = format!("{} cleanup failures", self.cleanup_failures);
        if !self.cleanup_by_reason.is_empty() {
            out.push_str(&format!(" ({})", reasons_text(&self.cleanup_by_reason)));
        }
        out
    }
}

/// Progress events for reporters (the engine sends them; reporters read them and the results
/// model, never the engine).
#[derive(Debug, Clone)]
pub enum Event {
    RunStarted {
        specs: usize,
        cases: usize,
        target: TargetInfo,
    },
    SpecStarted {
        id: String,
        title: String,
    },
    /// A long step reports progress (fan-out iterations done, poll attempts).
    Progress {
        spec_id: String,
        message: String,
    },
    SpecFinished(Box<SpecResult>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn a(message: Option<&str>) -> AssertionResult {
        AssertionResult {
            line: 3,
            col: 0,
            subject: "$.port".into(),
            subject_template: None,
            op: AssertOp::Lt,
            expected: json!(1024),
            actual: Some(json!(50051)),
            passed: false,
            message: message.map(str::to_string),
        }
    }

    #[test]
    fn one_line_notes_inline_multi_line_details_below() {
        assert_eq!(a(None).describe(), "$.port < 1024: found 50051");
        assert_eq!(
            a(Some("ports are high")).describe(),
            "$.port < 1024: found 50051 (ports are high)"
        );
        assert_eq!(a(Some("ports are high")).details(), None);
        let diff = a(Some("$.a: expected 1, found 2\n$.b: expected 3, found 4"));
        assert_eq!(diff.describe(), "$.port < 1024: found 50051");
        assert_eq!(
            diff.details(),
            Some("$.a: expected 1, found 2\n$.b: expected 3, found 4")
        );
    }

    #[test]
    fn thresholds_verdict_in_plain_words() {
        let th = |passed: bool, implicit: bool| ThresholdResult {
            expr: "failed == 0".into(),
            value: "0".into(),
            passed,
            implicit,
        };
        let verdict = |t: Vec<ThresholdResult>| {
            FanoutStats {
                thresholds: t,
                ..Default::default()
            }
            .thresholds_verdict()
        };
        assert_eq!(verdict(vec![]), None);
        assert_eq!(
            verdict(vec![th(true, true)]).as_deref(),
            Some("The implicit threshold is met")
        );
        assert_eq!(
            verdict(vec![th(false, false)]).as_deref(),
            Some("The threshold is not met")
        );
        assert_eq!(
            verdict(vec![th(true, true), th(true, true)]).as_deref(),
            Some("Both implicit thresholds met")
        );
        assert_eq!(
            verdict(vec![th(true, false); 3]).as_deref(),
            Some("All 3 thresholds met")
        );
        assert_eq!(
            verdict(vec![th(false, false), th(true, false), th(false, false)]).as_deref(),
            Some("2 of 3 thresholds not met")
        );
    }

    #[test]
    fn summary_reads_like_the_issue() {
        let mut s = FanoutStats {
            count: 200,
            succeeded: 150,
            ..Default::default()
        };
        s.by_reason.insert("503 capacity reached".into(), 50);
        assert_eq!(s.summary(), "150/200 succeeded, 50 x 503 capacity reached");
    }

    #[test]
    fn a_rendered_subject_keeps_its_template_in_the_description() {
        let mut r = a(None);
        r.subject = "$.ports[3]".into();
        r.subject_template = Some("$.ports[{{ i }}]".into());
        assert_eq!(
            r.describe(),
            "$.ports[3] < 1024: found 50051 (as written: `$.ports[{{ i }}]`)"
        );
    }

    #[test]
    fn a_simulator_verdict_never_reads_as_a_real_servers() {
        let t = |name: &str, kind: &str| TargetRef {
            name: name.into(),
            kind: TargetKind::from_word(kind),
        };
        let item = |outcome: &str, target: Option<TargetRef>| CoverageItem {
            outcome: CoverageOutcome::from_word(outcome),
            target,
            ..Default::default()
        };
        let emb = t("embedded", "embedded");
        let stg = t("staging", "remote");
        assert_eq!(
            item("verified", Some(emb.clone())).outcome_where(),
            "Verified on the embedded simulator"
        );
        assert_eq!(
            item("failing", Some(stg.clone())).outcome_where(),
            "Failing on staging (a real server)"
        );
        assert_eq!(
            item("verified", Some(t("sim", "simulator"))).outcome_where(),
            "Verified on the simulator \"sim\""
        );
        assert_eq!(item("gap", None).outcome_where(), "Gap — no spec");
        assert_eq!(emb.label(), "embedded simulator");
        assert_eq!(stg.label(), "staging (real server)");
        assert_eq!(t("sim", "simulator").label(), "sim (simulator)");

        let cov = |items: Vec<CoverageItem>| Coverage {
            areas: vec![CoverageArea {
                items,
                ..Default::default()
            }],
            ..Default::default()
        };
        let one = cov(vec![item("verified", Some(emb.clone())), item("gap", None)]);
        assert_eq!(
            one.where_phrase().as_deref(),
            Some("the embedded simulator")
        );
        assert!(!one.all_real());
        let both = cov(vec![
            item("verified", Some(emb)),
            item("verified", Some(stg.clone())),
        ]);
        assert_eq!(
            both.where_phrase().as_deref(),
            Some("2 targets: the embedded simulator, staging (a real server)")
        );
        assert!(!both.all_real());
        assert!(cov(vec![item("verified", Some(stg))]).all_real());
        assert_eq!(cov(vec![item("gap", None)]).where_phrase(), None);
    }
}
