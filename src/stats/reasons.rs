//! Why iterations failed, counted by kind: an iteration's reason ([`failure_reason`]), its kind
//! ([`short_reason`], [`reason_kind`]) and the bounded tally of kinds ([`count_reason`]).

use std::borrow::Cow;

use indexmap::IndexMap;
use serde_json::Value;

use crate::results::{Status, StepResult};

/// Kinds of failure counted apart; the kinds beyond are counted together. A reason may hold an
/// id from an answer (`404 unknown job_id 18-3`): a long load must not keep one per iteration.
pub(super) const MAX_REASONS: usize = 50;
pub(super) const OTHER_REASONS: &str = "other reasons (more than 50 kinds)";

/// Longest failure text a sample keeps.
pub(super) const MAX_SAMPLE_CHARS: usize = 300;

/// How many failures (or sample failures) of each kind are kept for the reader.
pub(super) const MAX_SAMPLE_FAILURES: usize = 5;

/// The kind of a failure: its reason with the numbers inside names and ids written `N`
/// (`Job/baby-analyzer-18-58 exists` -> `Job/baby-analyzer-N-N exists`), so that 200 jobs failing
/// alike count as one reason, not as 200. A number standing alone (a status, a count, a time)
/// is kept. The sample keeps the failures as they were.
pub(super) fn reason_kind(reason: &str) -> Cow<'_, str> {
    let b = reason.as_bytes();
    let joins = |c: u8| c == b'-' || c == b'_' || c == b'/' || c.is_ascii_alphabetic();
    let mut out = String::new();
    let mut last = 0;
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let before = start.checked_sub(1).map(|j| b[j]);
        let after = b.get(i).copied();
        if before.is_some_and(joins) || after.is_some_and(|c| c == b'-' || c == b'_') {
            out.push_str(&reason[last..start]);
            out.push('N');
            last = i;
        }
    }
    if last == 0 {
        return Cow::Borrowed(reason);
    }
    out.push_str(&reason[last..]);
    Cow::Owned(out)
}

/// `s` cut to at most `max` bytes at a character boundary, with `...` when cut.
pub fn bounded(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}...", &s[..end]))
}

/// What an error counts as: its kind when the message starts with one (`timeout: ...`,
/// `connect: ...`), else its root cause, the last part of the chain (`request to https://...:
/// error sending request: connection closed` counts as `connection closed`). Other reasons
/// (`503 capacity reached`, `assertion: ...`) are kinds already.
pub(super) fn short_reason(full: &str) -> Cow<'_, str> {
    let Some(rest) = full.strip_prefix("error: ") else {
        return Cow::Borrowed(full);
    };
    let first = rest.split(':').next().unwrap_or("").trim();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    if !first.is_empty() && first.len() <= 40 && first.bytes().all(word) {
        return Cow::Owned(format!("error: {first}"));
    }
    let cause = rest.rsplit(": ").next().unwrap_or(rest).trim();
    Cow::Owned(format!("error: {}", bounded(cause, 80)))
}

/// Counts `n` failures of `reason` (as a sample shows it) under its kind ([`short_reason`],
/// [`reason_kind`]), a new kind only while there are fewer than [`MAX_REASONS`].
pub(super) fn count_reason(by_reason: &mut IndexMap<String, usize>, reason: String, n: usize) {
    let short = short_reason(&reason);
    let reason = match reason_kind(&short) {
        Cow::Borrowed(_) => short.into_owned(),
        Cow::Owned(k) => k,
    };
    if let Some(c) = by_reason.get_mut(reason.as_str()) {
        *c += n;
        return;
    }
    let key = if by_reason.len() >= MAX_REASONS {
        OTHER_REASONS.to_string()
    } else {
        reason
    };
    *by_reason.entry(key).or_default() += n;
}

/// A short, groupable reason for steps that failed: `503 capacity reached`, `error: timeout`,
/// `assertion: $.status equals`.
pub fn failure_reason(steps: &[StepResult]) -> String {
    let Some(bad) = steps
        .iter()
        .find(|s| matches!(s.status, Status::Failed | Status::Error))
    else {
        return "unknown".into();
    };
    if bad.status == Status::Error {
        // In full (its first line, bounded): the samples show it; the count groups it by kind.
        let m = bad.message.as_deref().unwrap_or("error");
        let line = m.lines().next().unwrap_or("error").trim();
        return format!("error: {}", bounded(line, MAX_SAMPLE_CHARS));
    }
    if let Some(r) = &bad.response {
        if r.status >= 400 {
            let detail = r
                .body
                .as_deref()
                .and_then(|b| serde_json::from_str::<Value>(b).ok())
                .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_string))
                .map(|d| d.split(':').next().unwrap_or("").trim().to_lowercase())
                .filter(|d| !d.is_empty() && d.len() <= 40);
            return match detail {
                Some(d) => format!("{} {d}", r.status),
                None => format!("status {}", r.status),
            };
        }
    }
    match bad.assertions.iter().find(|a| !a.passed) {
        Some(a) => format!("assertion: {} {}", a.subject, a.op),
        None => bad.message.clone().unwrap_or_else(|| "failed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{AssertOp, AssertionResult, ResponseExcerpt};

    #[test]
    fn reasons_with_ids_in_them_count_as_one_kind() {
        let mut by_reason = IndexMap::new();
        for i in 0..1000 {
            count_reason(&mut by_reason, format!("404 unknown job_id 18-{i}"), 1);
        }
        count_reason(&mut by_reason, "404 unknown job_id 18-3".into(), 1);
        assert_eq!(by_reason.len(), 1, "{by_reason:?}");
        assert_eq!(by_reason["404 unknown job_id N-N"], 1001);
        let mut by_reason = IndexMap::new();
        for i in 0..200 {
            let r = format!("assertion: Job/baby-analyzer-18-{i} exists");
            count_reason(&mut by_reason, r, 1);
        }
        assert_eq!(by_reason["assertion: Job/baby-analyzer-N-N exists"], 200);
    }

    #[test]
    fn errors_count_by_kind_or_root_cause() {
        let full = "error: request to https://127.0.0.1:36285/configure: error sending request: connection closed before message completed";
        assert_eq!(
            short_reason(full),
            "error: connection closed before message completed"
        );
        assert_eq!(
            short_reason("error: timeout: no answer in 30s"),
            "error: timeout"
        );
        assert_eq!(
            short_reason("error: deadline passed"),
            "error: deadline passed"
        );
        assert_eq!(short_reason("503 capacity reached"), "503 capacity reached");
        let long = format!("error: {}", "é".repeat(400));
        assert!(bounded(&long, MAX_SAMPLE_CHARS).len() <= MAX_SAMPLE_CHARS + 3);
        assert!(bounded(&long, MAX_SAMPLE_CHARS).ends_with("..."));
        assert_eq!(bounded("short", MAX_SAMPLE_CHARS), "short");
    }

    #[test]
    fn numbers_standing_alone_keep_reasons_apart() {
        for (reason, kind) in [
            ("409 port taken", "409 port taken"),
            ("timeout after 30 s", "timeout after 30 s"),
            ("status 503, 2 attempts", "status 503, 2 attempts"),
            ("job_id 18-3 unknown", "job_id N-N unknown"),
            ("pod analyzer-7x2k", "pod analyzer-NxNk"),
            ("v2/jobs/12 gone", "vN/jobs/N gone"),
        ] {
            assert_eq!(reason_kind(reason), kind);
        }
    }

    #[test]
    fn reasons_of_many_kinds_are_bounded() {
        let mut by_reason = IndexMap::new();
        let word = |i: usize| -> String {
            let l = |k: usize| (b'a' + (k % 26) as u8) as char;
            format!("{}{}{}", l(i), l(i / 26), l(i / 676))
        };
        for i in 0..1000 {
            count_reason(&mut by_reason, format!("failure {}", word(i)), 1);
        }
        count_reason(&mut by_reason, format!("failure {}", word(3)), 1);
        assert_eq!(by_reason.len(), MAX_REASONS + 1);
        assert_eq!(
            by_reason[&format!("failure {}", word(3))],
            2,
            "a known reason still counts"
        );
        assert_eq!(by_reason[OTHER_REASONS], 1000 - MAX_REASONS);
    }

    #[test]
    fn an_iterations_reason_is_its_first_failing_step() {
        let step = |status: Status| StepResult {
            status,
            ..Default::default()
        };
        assert_eq!(failure_reason(&[step(Status::Passed)]), "unknown");
        let mut error = step(Status::Error);
        error.message = Some("timeout: no answer in 30s\nmore detail".into());
        assert_eq!(
            failure_reason(&[step(Status::Passed), error]),
            "error: timeout: no answer in 30s",
            "its first line, in full: the count groups it by kind"
        );
        let answered = |status: u16, body: &str| {
            let mut s = step(Status::Failed);
            s.response = Some(ResponseExcerpt {
                status,
                headers: Vec::new(),
                body: Some(body.into()),
                truncated: false,
                elapsed_ms: 1.0,
                raw_bytes: None,
                version: None,
                url: None,
                note: None,
            });
            s
        };
        assert_eq!(
            failure_reason(&[answered(503, r#"{"detail": "Capacity reached: 200 jobs"}"#)]),
            "503 capacity reached"
        );
        assert_eq!(failure_reason(&[answered(404, "not json")]), "status 404");
        let mut checked = answered(200, "{}");
        checked.assertions.push(AssertionResult {
            line: 3,
            col: 0,
            subject: "$.status".into(),
            subject_template: None,
            op: AssertOp::Equals,
            expected: serde_json::json!("configured"),
            actual: Some(serde_json::json!("failed")),
            passed: false,
            message: None,
        });
        assert_eq!(failure_reason(&[checked]), "assertion: $.status equals");
    }
}
