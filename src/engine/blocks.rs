//! Block steps: `foreach` (a list, item by item), `repeat` (again while a condition holds) and
//! `include` (the steps of another file). Each runs its steps with [`run_steps`] and reports them
//! as children of its own result: one child per item or run, holding that item's steps, so a
//! failure reads "item 3 (job_id = job_x): ..." and its location is the inner step's line, in
//! the fragment's file for included steps.

use serde_json::{json, Value};

use super::step::run_steps;
use super::{Ctx, ExecError, Observation};
use crate::results::{AssertOp, AssertionResult, Status, StepKindName, StepResult};
use crate::spec::{Foreach, Include, Repeat, Step};
use crate::template::{is_template, Scope};

/// Runs of one block kept in its result: the first passing ones and the first failing ones.
/// A report needs examples, not 2 million identical passes (as a fan-out keeps a sample).
const KEPT_PASSING: usize = 10;
const KEPT_FAILING: usize = 10;
/// Runs kept in all by the blocks of one step list (a case's steps, or its cleanup): nested
/// blocks multiply what each keeps, this bounds the product. Beyond it only failing runs are.
const MAX_KEPT_RUNS: usize = 10_000;

/// What the loops of one step list have used so far (see [`budgeted`]).
#[derive(Default)]
struct Budget {
    runs: std::cell::Cell<u64>,
    kept: std::cell::Cell<usize>,
}

tokio::task_local! {
    static BUDGET: Budget;
}

/// Runs a case's steps (or its cleanup) with a budget of [`crate::spec::MAX_LOOP_RUNS`] loop
/// runs, nested loops counted in all. A task-local rather than a field of the context: the
/// count belongs to the step list, and fan-out iterations (own tasks, own bounds) start afresh,
/// each loop of theirs still bounded by its own size.
pub async fn budgeted<F: std::future::Future>(fut: F) -> F::Output {
    BUDGET.scope(Budget::default(), fut).await
}

/// Counts one run of a loop against the step list's budget; also lets the runtime run other
/// tasks (the signal listener among them) and honours a stop: a loop whose steps never wait
/// (an `assert` over a `range`) would otherwise keep its thread for as long as it runs.
async fn next_run(ctx: &Ctx, in_cleanup: bool) -> Result<(), ExecError> {
    if !in_cleanup && ctx.cancel.is_cancelled() {
        return Err(ExecError::interrupted());
    }
    tokio::task::consume_budget().await;
    let runs = BUDGET
        .try_with(|b| {
            b.runs.set(b.runs.get() + 1);
            b.runs.get()
        })
        .unwrap_or(0);
    let max = crate::spec::MAX_LOOP_RUNS;
    if runs > max {
        return Err(ExecError::spec(format!(
            "loops ran more than {max} times in all (nested `foreach` and `repeat` multiply: 1500 items inside 1500 items is 2,250,000); \
             loop over fewer items, or split the work into several cases or specs"
        )));
    }
    Ok(())
}

/// The runs of one block as reported: a sample, with the counts of all.
#[derive(Default)]
struct Runs {
    kept: Vec<StepResult>,
    ran: usize,
    passed: usize,
    kept_passing: usize,
    kept_failing: usize,
    /// Runs not kept, and the worst status among them.
    omitted: usize,
    omitted_status: Option<Status>,
}

impl Runs {
    fn push(&mut self, r: StepResult) {
        self.ran += 1;
        let bad = matches!(r.status, Status::Failed | Status::Error);
        if r.status == Status::Passed {
            self.passed += 1;
        }
        let room = BUDGET
            .try_with(|b| b.kept.get() < MAX_KEPT_RUNS)
            .unwrap_or(true);
        let keep = if bad {
            self.kept_failing < KEPT_FAILING
        } else {
            room && self.kept_passing < KEPT_PASSING
        };
        if keep {
            if bad {
                self.kept_failing += 1;
            } else {
                self.kept_passing += 1;
            }
            let _ = BUDGET.try_with(|b| b.kept.set(b.kept.get() + 1));
            self.kept.push(r);
        } else {
            self.omitted += 1;
            self.omitted_status = Some(match self.omitted_status {
                None => r.status,
                Some(s) => s.worst(r.status),
            });
        }
    }

    /// The kept runs, and one line saying how many more ran (so no reader takes the sample
    /// for all).
    fn into_children(self, line: u32) -> Vec<StepResult> {
        let mut kept = self.kept;
        if self.omitted > 0 {
            kept.push(StepResult {
                name: format!(
                    "{} more runs not kept (a block keeps its first {KEPT_PASSING} passing and first {KEPT_FAILING} failing runs)",
                    self.omitted
                ),
                kind: StepKindName::Run,
                line,
                status: self.omitted_status.unwrap_or(Status::Passed),
                ..Default::default()
            });
        }
        kept
    }
}

/// A block's verdict as an assertion: passed when no child failed.
fn verdict(step: &Step, subject: String, children: &[StepResult]) -> Vec<AssertionResult> {
    let bad = children
        .iter()
        .find(|c| matches!(c.status, Status::Failed | Status::Error));
    vec![AssertionResult {
        line: step.pos.line,
        col: step.pos.col,
        subject,
        subject_template: None,
        op: AssertOp::EveryStepPasses,
        expected: json!("passed"),
        actual: Some(json!(bad.map_or("passed", |b| b.status.as_str()))),
        passed: bad.is_none(),
        message: bad.map(|b| {
            let (leaf, _) = b.failing_leaf();
            format!(
                "{}: {}",
                b.name,
                leaf.message.as_deref().unwrap_or("failed")
            )
        }),
    }]
}

/// One child result holding the steps of one item or run.
fn group(name: String, line: u32, steps: Vec<StepResult>, status: Status) -> StepResult {
    let message = steps
        .iter()
        .find(|s| matches!(s.status, Status::Failed | Status::Error))
        .map(|s| format!("step `{}`: {}", s.name, s.message.as_deref().unwrap_or("")));
    StepResult {
        name,
        kind: StepKindName::Run,
        line,
        status,
        duration_ms: steps.iter().map(|s| s.duration_ms).sum(),
        message,
        steps,
        ..Default::default()
    }
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 60 {
        s.chars().take(60).collect::<String>() + "…"
    } else {
        s
    }
}

/// Runs the block boxed, as a `dyn` future: its steps may hold blocks (see fanout::execute).
pub fn foreach<'a>(
    f: &'a Foreach,
    step: &'a Step,
    scope: &'a mut Scope,
    ctx: &'a Ctx,
    in_cleanup: bool,
) -> futures::future::BoxFuture<'a, Result<Observation, ExecError>> {
    Box::pin(run_foreach(f, step, scope, ctx, in_cleanup))
}

async fn run_foreach(
    f: &Foreach,
    step: &Step,
    scope: &mut Scope,
    ctx: &Ctx,
    in_cleanup: bool,
) -> Result<Observation, ExecError> {
    let items = match &f.items {
        Value::String(s) if is_template(s) => scope.render_value(&f.items)?,
        other => scope.render_value(other)?,
    };
    let Value::Array(items) = items else {
        return Err(ExecError::spec(format!(
            "foreach `items` must be a list, found {}",
            short(&items)
        )));
    };
    let concurrency = match &f.concurrency {
        None => 1,
        Some(c) => super::fanout::resolve_count(c, scope, "concurrency")?.max(1),
    };
    let shadowed = (scope.get(&f.as_).cloned(), scope.get("index").cloned());
    let label = |i: usize, v: &Value| format!("item {} ({} = {})", i + 1, f.as_, short(v));
    let mut runs = Runs::default();
    let mut stopped = None;
    if concurrency <= 1 {
        // One after the other, sharing the variables: captures carry over, `append` collects.
        for (i, item) in items.iter().enumerate() {
            if let Err(e) = next_run(ctx, in_cleanup).await {
                stopped = Some(e);
                break;
            }
            scope.set(f.as_.clone(), item.clone());
            scope.set("index", json!(i));
            let (steps, status) = run_steps(&f.steps, scope, ctx, in_cleanup).await;
            runs.push(group(label(i, item), step.pos.line, steps, status));
            if matches!(status, Status::Failed | Status::Error) && !in_cleanup {
                break;
            }
        }
    } else {
        // Several at once: each item runs on its own copy of the variables. Items start as
        // others end (at most `concurrency` in flight), so memory follows the concurrency,
        // not the length of the list.
        use futures::StreamExt;
        let base = &*scope;
        let mut pending = futures::stream::FuturesOrdered::new();
        let mut next = items.iter().enumerate();
        loop {
            while pending.len() < concurrency {
                let Some((i, item)) = next.next() else { break };
                let name = label(i, item);
                pending.push_back(run_item(f, step, base, ctx, in_cleanup, i, item, name));
            }
            match pending.next().await {
                None => break,
                Some(Ok(g)) => runs.push(g),
                Some(Err(e)) => {
                    stopped = Some(e);
                    break;
                }
            }
        }
    }
    // The item variable exists inside the block only.
    for (name, old) in [(f.as_.as_str(), shadowed.0), ("index", shadowed.1)] {
        match old {
            Some(v) => scope.set(name, v),
            None => {
                scope.remove(name);
            }
        }
    }
    if let Some(e) = stopped {
        return Err(e);
    }
    let (ran, passed) = (runs.ran, runs.passed);
    let children = runs.into_children(step.pos.line);
    Ok(Observation {
        doc: json!({"count": items.len(), "ran": ran, "passed": passed}).into(),
        assertions: verdict(step, format!("foreach {}", f.as_), &children),
        children,
        ..Default::default()
    })
}

/// One item of a concurrent `foreach`, on its own copy of the variables.
#[allow(clippy::too_many_arguments)]
async fn run_item(
    f: &Foreach,
    step: &Step,
    base: &Scope,
    ctx: &Ctx,
    in_cleanup: bool,
    i: usize,
    item: &Value,
    name: String,
) -> Result<StepResult, ExecError> {
    next_run(ctx, in_cleanup).await?;
    let mut sc = base.clone();
    sc.set(f.as_.clone(), item.clone());
    sc.set("index", json!(i));
    let (steps, status) = run_steps(&f.steps, &mut sc, ctx, in_cleanup).await;
    Ok(group(name, step.pos.line, steps, status))
}

/// `while` is an expression (`has_next`) or a template (`"{{ has_next }}"`).
fn condition(src: &str, scope: &Scope) -> Result<bool, ExecError> {
    let v = if is_template(src) {
        scope.render_value(&Value::String(src.to_string()))?
    } else {
        scope.eval(src)?
    };
    Ok(match &v {
        Value::String(s) => !matches!(s.trim(), "" | "false" | "False" | "0" | "none" | "None"),
        other => super::expect::truthy(other),
    })
}

/// Runs the block boxed, as a `dyn` future: its steps may hold blocks (see fanout::execute).
pub fn repeat<'a>(
    r: &'a Repeat,
    step: &'a Step,
    scope: &'a mut Scope,
    ctx: &'a Ctx,
    in_cleanup: bool,
) -> futures::future::BoxFuture<'a, Result<Observation, ExecError>> {
    Box::pin(run_repeat(r, step, scope, ctx, in_cleanup))
}

async fn run_repeat(
    r: &Repeat,
    step: &Step,
    scope: &mut Scope,
    ctx: &Ctx,
    in_cleanup: bool,
) -> Result<Observation, ExecError> {
    let mut runs = Runs::default();
    let mut exhausted = false;
    for run in 1..=r.max {
        next_run(ctx, in_cleanup).await?;
        let (steps, status) = run_steps(&r.steps, scope, ctx, in_cleanup).await;
        runs.push(group(format!("run {run}"), step.pos.line, steps, status));
        if matches!(status, Status::Failed | Status::Error) {
            break;
        }
        if !condition(&r.while_, scope)? {
            break;
        }
        if run == r.max {
            exhausted = true;
        }
    }
    let ran = runs.ran;
    let children = runs.into_children(step.pos.line);
    let mut assertions = verdict(step, "repeat".into(), &children);
    if exhausted {
        assertions.push(AssertionResult {
            line: step.pos.line,
            col: step.pos.col,
            subject: format!("while {}", r.while_),
            subject_template: None,
            op: AssertOp::FalseWithinMaxRuns,
            expected: json!(r.max),
            actual: Some(json!(format!("still true after {} runs", r.max))),
            passed: false,
            message: Some(format!(
                "`{}` still holds after max {} runs (raise `max`, or check the condition)",
                r.while_, r.max
            )),
        });
    }
    Ok(Observation {
        doc: json!({"runs": ran}).into(),
        assertions,
        children,
        ..Default::default()
    })
}

/// Runs the block boxed, as a `dyn` future: its steps may hold blocks (see fanout::execute).
pub fn include<'a>(
    inc: &'a Include,
    step: &'a Step,
    scope: &'a mut Scope,
    ctx: &'a Ctx,
    in_cleanup: bool,
) -> futures::future::BoxFuture<'a, Result<Observation, ExecError>> {
    Box::pin(run_include(inc, step, scope, ctx, in_cleanup))
}

async fn run_include(
    inc: &Include,
    step: &Step,
    scope: &mut Scope,
    ctx: &Ctx,
    in_cleanup: bool,
) -> Result<Observation, ExecError> {
    let (mut steps, _) = run_steps(&inc.steps, scope, ctx, in_cleanup).await;
    fn mark(steps: &mut [StepResult], file: &str) {
        for s in steps {
            if s.file.is_none() {
                s.file = Some(file.to_string());
            }
            mark(&mut s.steps, file);
        }
    }
    mark(&mut steps, &inc.display);
    Ok(Observation {
        doc: json!({"steps": steps.len()}).into(),
        assertions: verdict(step, format!("include {}", inc.path), &steps),
        children: steps,
        ..Default::default()
    })
}

/// The blocks run alike: boxed (see [`foreach`]), their steps handling an interrupt.
macro_rules! block_kind {
    ($ty:ty, $word:ident, $run:ident) => {
        impl super::step::Execute for $ty {
            fn result_name(&self) -> StepKindName {
                StepKindName::$word
            }

            async fn execute(
                &self,
                step: &Step,
                scope: &mut Scope,
                ctx: &Ctx,
                in_cleanup: bool,
            ) -> Result<Observation, ExecError> {
                $run(self, step, scope, ctx, in_cleanup).await
            }

            fn runs_steps(&self) -> bool {
                true
            }
        }
    };
}

block_kind!(Foreach, Foreach, foreach);
block_kind!(Repeat, Repeat, repeat);
block_kind!(Include, Include, include);

#[cfg(test)]
mod tests {
    use super::*;

    fn run(status: Status) -> StepResult {
        StepResult {
            name: "run".into(),
            status,
            ..Default::default()
        }
    }

    #[test]
    fn a_block_keeps_a_sample_and_counts_the_rest() {
        let mut runs = Runs::default();
        for _ in 0..30 {
            runs.push(run(Status::Passed));
        }
        for _ in 0..12 {
            runs.push(run(Status::Failed));
        }
        assert_eq!((runs.ran, runs.passed, runs.omitted), (42, 30, 22));
        let children = runs.into_children(7);
        // 10 passing, 10 failing, and one line for the 22 others (2 of them failed).
        assert_eq!(children.len(), 21);
        let last = children.last().unwrap();
        assert!(
            last.name.starts_with("22 more runs not kept"),
            "{}",
            last.name
        );
        assert_eq!(last.status, Status::Failed);
    }

    #[tokio::test]
    async fn the_kept_runs_of_a_step_list_are_bounded_in_all() {
        budgeted(async {
            let mut blocks: Vec<Runs> = Vec::new();
            for _ in 0..(MAX_KEPT_RUNS / KEPT_PASSING + 5) {
                let mut r = Runs::default();
                for _ in 0..KEPT_PASSING {
                    r.push(run(Status::Passed));
                }
                blocks.push(r);
            }
            let kept: usize = blocks.iter().map(|b| b.kept.len()).sum();
            assert_eq!(kept, MAX_KEPT_RUNS);
        })
        .await;
    }
}
