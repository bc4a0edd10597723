//! Console reporter: progress while running, then a summary with every failure's `file:line`.

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::results::Event;
use crate::results::{CoverageOutcome, FanoutStats, RunReport, SpecResult, Status};

pub struct Console {
    total: usize,
    done: usize,
    color: bool,
    /// Print progress of long steps (fan-out, polling).
    pub verbose: bool,
}

impl Default for Console {
    fn default() -> Self {
        Console::new()
    }
}

fn paint(color: bool, code: &str, s: &str) -> String {
    if color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn label(color: bool, st: Status) -> String {
    match st {
        Status::Passed => paint(color, "32", "PASS "),
        Status::Failed => paint(color, "31;1", "FAIL "),
        Status::Error => paint(color, "35;1", "ERROR"),
        Status::Skipped => paint(color, "33", "SKIP "),
    }
}

/// A failing fan-out's verdicts: thresholds not met (implicit ones said so) and failed cleanups
/// by reason, with a sample.
fn fanout_lines(f: &FanoutStats, out: &mut String) {
    out.push_str(&format!("     fan-out: {}\n", f.summary()));
    if let Some(verdict) = f.thresholds_verdict() {
        out.push_str(&format!("     {verdict}\n"));
    }
    for t in f.thresholds.iter().filter(|t| !t.passed) {
        let implicit = if t.implicit {
            " (implicit: no `thresholds:` written, so every iteration must succeed)"
        } else {
            ""
        };
        out.push_str(&format!(
            "     threshold `{}` not met: {}{implicit}\n",
            t.expr, t.value
        ));
    }
    if f.cleanup_failures > 0 {
        out.push_str(&format!("     {}\n", f.cleanup_text()));
        if let Some(sample) = f.cleanup_sample_failures.first() {
            out.push_str(&format!("       e.g. {sample}\n"));
        }
    }
}

impl Console {
    pub fn new() -> Self {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Console {
            total: 0,
            done: 0,
            color,
            verbose: true,
        }
    }

    pub fn event(&mut self, e: &Event) {
        match e {
            Event::RunStarted {
                specs,
                cases,
                target,
            } => {
                self.total = *specs;
                let url = target.base_url.as_deref().unwrap_or("-");
                let scale = if target.virtual_clock() {
                    format!(
                        ", virtual clock{}",
                        target
                            .seed
                            .map(|s| format!(", seed {s}"))
                            .unwrap_or_default()
                    )
                } else {
                    target
                        .time_scale
                        .map(|t| format!(", time scale {t}"))
                        .unwrap_or_default()
                };
                println!("focusqa: running {specs} specs ({cases} cases) against target `{}` ({} {url}{scale})", target.name, target.kind);
            }
            Event::SpecStarted { .. } => {}
            Event::Progress { spec_id, message } => {
                if self.verbose {
                    println!("        … {spec_id}: {message}");
                }
            }
            Event::SpecFinished(s) => {
                self.done += 1;
                println!("{}", self.spec_line(s));
                for c in s
                    .cases
                    .iter()
                    .filter(|c| matches!(c.status, Status::Failed | Status::Error))
                {
                    let first = c
                        .message
                        .as_deref()
                        .unwrap_or("")
                        .lines()
                        .next()
                        .unwrap_or("");
                    println!(
                        "          {} {} — {}: {}",
                        label(self.color, c.status),
                        c.name,
                        c.location.as_deref().unwrap_or(&s.file),
                        first
                    );
                }
            }
        }
    }

    fn spec_line(&self, s: &SpecResult) -> String {
        let w = self.total.to_string().len();
        let passed = s
            .cases
            .iter()
            .filter(|c| c.status == Status::Passed)
            .count();
        let cases = if s.cases.len() > 1 {
            format!(" [{passed}/{} cases]", s.cases.len())
        } else {
            String::new()
        };
        let extra = match (&s.status, &s.skip_reason) {
            (Status::Skipped, Some(r)) => format!(" — {r}"),
            _ => String::new(),
        };
        format!(
            "[{:>w$}/{}] {} {}{} ({:.2}s){}",
            self.done,
            self.total,
            label(self.color, s.status),
            s.id,
            cases,
            s.duration_ms / 1000.0,
            extra
        )
    }

    /// The final summary (also used by `focusqa report`).
    pub fn summary(&self, r: &RunReport, files: &[PathBuf]) -> String {
        let mut out = String::new();
        let failing: Vec<_> = r
            .specs
            .iter()
            .flat_map(|s| s.cases.iter().map(move |c| (s, c)))
            .filter(|(_, c)| matches!(c.status, Status::Failed | Status::Error))
            .collect();
        if !failing.is_empty() {
            out.push_str(&format!("\n{}\n", paint(self.color, "1", "Failures:")));
            for (i, (s, c)) in failing.iter().enumerate() {
                out.push_str(&format!(
                    "  {}) {} / {} [{}]\n",
                    i + 1,
                    s.id,
                    c.name,
                    c.status.as_str()
                ));
                for l in c.message.as_deref().unwrap_or("").lines().take(12) {
                    out.push_str(&format!("     {l}\n"));
                }
                // Where, as a load diagnostic shows it: the source line and a caret.
                match super::failure_snippet(c) {
                    Some(snippet) => {
                        for l in snippet.lines() {
                            out.push_str(&format!("   {l}\n"));
                        }
                    }
                    None => out.push_str(&format!(
                        "     at {}\n",
                        c.location.as_deref().unwrap_or(&s.file)
                    )),
                }
                if let Some(step) = c
                    .steps
                    .iter()
                    .chain(&c.cleanup)
                    .find(|st| matches!(st.status, Status::Failed | Status::Error))
                {
                    // A templated name is shown as it ran, and as written to find it in the spec.
                    let (leaf, _) = step.failing_leaf();
                    if let Some(t) = &leaf.name_template {
                        out.push_str(&format!(
                            "     in step `{}` (as written `{t}`)\n",
                            leaf.name
                        ));
                    }
                    if let Some(p) = step.poll.as_ref().filter(|p| !p.satisfied) {
                        out.push_str(&format!(
                            "     polled {} times over {}; last mismatch: {}\n",
                            p.attempts,
                            p.elapsed_text(),
                            p.last_mismatch.as_deref().unwrap_or("-")
                        ));
                    }
                    if let Some(f) = &step.fanout {
                        fanout_lines(f, &mut out);
                    }
                    if let Some(resp) = &step.response {
                        let body: String = resp
                            .body
                            .as_deref()
                            .unwrap_or("")
                            .chars()
                            .take(300)
                            .collect();
                        out.push_str(&format!("     response: {} {}\n", resp.status, body));
                    }
                }
            }
        }
        // Passed only on a retry: said apart, never counted as a plain pass.
        let flaky: Vec<_> = r
            .specs
            .iter()
            .flat_map(|s| s.cases.iter().map(move |c| (s, c)))
            .filter(|(_, c)| c.flaky)
            .collect();
        if !flaky.is_empty() {
            out.push_str(&format!(
                "\n{}\n",
                paint(
                    self.color,
                    "33",
                    &format!("Flaky, passed on a retry ({}):", flaky.len())
                )
            ));
            for (s, c) in flaky {
                let first = c.attempts.first();
                out.push_str(&format!(
                    "  {} / {}: attempt {} passed; attempt 1 at {}: {}\n",
                    s.id,
                    c.name,
                    c.attempts.len() + 1,
                    first.and_then(|a| a.location.as_deref()).unwrap_or(&s.file),
                    first
                        .and_then(|a| a.message.as_deref())
                        .and_then(|m| m.lines().next())
                        .unwrap_or("failed")
                ));
            }
        }
        let skipped: Vec<&SpecResult> = r
            .specs
            .iter()
            .filter(|s| s.status == Status::Skipped)
            .collect();
        if !skipped.is_empty() {
            out.push_str(&format!("\nSkipped ({}):\n", skipped.len()));
            for s in skipped {
                out.push_str(&format!(
                    "  {} — {}\n",
                    s.id,
                    s.skip_reason.as_deref().unwrap_or("all cases skipped")
                ));
            }
        }
        if let Some(cov) = &r.coverage {
            // Where the verdicts were established, in the same line as "verified": a
            // simulator's verdict must not read as a real server's.
            let on = cov
                .where_phrase()
                .map(|w| format!(" on {w}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "\nScope coverage: {} of {} in-scope items verified{on}, {} failing, {} gaps; {} excluded by decision\n",
                cov.verified,
                cov.in_scope,
                cov.failing,
                cov.gaps.len(),
                cov.excluded.len()
            ));
            let targets = cov.targets();
            if targets.iter().all(|t| !t.is_real()) && !targets.is_empty() {
                out.push_str(
                    "  these outcomes come from a simulator, not from a real Focus Server\n",
                );
            } else if !cov.all_real() && !targets.is_empty() {
                out.push_str("  some of these outcomes come from a simulator, not from a real Focus Server (coverage.html says which)\n");
            }
            for item in cov
                .areas
                .iter()
                .flat_map(|a| &a.items)
                .filter(|i| i.hard_requirement)
            {
                out.push_str(&format!(
                    "  hard requirement {} ({}): {}\n",
                    item.id,
                    item.title,
                    item.outcome_where()
                ));
            }
            let not_run = cov
                .areas
                .iter()
                .flat_map(|a| &a.items)
                .filter(|i| i.status.in_scope() && i.outcome == CoverageOutcome::NotRun)
                .count();
            if not_run > 0 {
                out.push_str(&format!(
                    "  {not_run} in-scope items not run in this run (their specs were not selected or not reached)\n"
                ));
            }
            for g in &cov.gaps {
                out.push_str(&format!("  gap: {g}\n"));
            }
        }
        let t = &r.totals;
        let verdict = if t.all_passed() {
            paint(self.color, "32;1", "PASSED")
        } else {
            paint(self.color, "31;1", "FAILED")
        };
        out.push_str(&format!(
            "\n{verdict}: {} specs, {} cases: {} passed, {} failed, {} errors, {} skipped in {:.1}s (target `{}`){}\n",
            t.specs,
            t.cases,
            t.passed,
            t.failed,
            t.errors,
            t.skipped,
            r.duration_ms / 1000.0,
            r.target.name,
            if r.interrupted { " — INTERRUPTED" } else { "" }
        ));
        if !files.is_empty() {
            out.push_str(&format!(
                "Reports: {}\n",
                files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        out
    }
}
