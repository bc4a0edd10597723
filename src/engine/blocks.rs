//! Block steps: `foreach` (a list, item by item), `repeat` (again while a condition holds) and
//! `include` (the steps of another file). Each runs its steps with [`run_steps`] and reports them
//! as children of its own result: one child per item or run, holding that item's steps, so a
//! failure reads "item 3 (job_id = job_x): ..." and its location is the inner step's line, in
//! the fragment's file for included steps.

use serde_json::{json, Value};

use super::step::run_steps;
use super::{Ctx, ExecError, Observation};
use crate::results::{AssertionResult, Status, StepResult};
use crate::spec::{Foreach, Include, Repeat, Step};
use crate::template::{is_template, Scope};

/// The operator of a block's verdict.
pub const EVERY_STEP_PASSES: &str = "every step passes";

/// A block's verdict as an assertion: passed when no child failed.
fn verdict(step: &Step, subject: String, children: &[StepResult]) -> Vec<AssertionResult> {
    let bad = children
        .iter()
        .find(|c| matches!(c.status, Status::Failed | Status::Error));
    vec![AssertionResult {
        line: step.pos.line,
        subject,
        op: EVERY_STEP_PASSES.into(),
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
        kind: "run".into(),
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
    let mut children = Vec::new();
    if concurrency <= 1 {
        // One after the other, sharing the variables: captures carry over, `append` collects.
        for (i, item) in items.iter().enumerate() {
            scope.set(f.as_.clone(), item.clone());
            scope.set("index", json!(i));
            let (steps, status) = run_steps(&f.steps, scope, ctx, in_cleanup).await;
            children.push(group(label(i, item), step.pos.line, steps, status));
            if matches!(status, Status::Failed | Status::Error) && !in_cleanup {
                break;
            }
        }
    } else {
        // Several at once: each item runs on its own copy of the variables.
        let base = scope.clone();
        let sem = tokio::sync::Semaphore::new(concurrency);
        let mut futs = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let mut sc = base.clone();
            sc.set(f.as_.clone(), item.clone());
            sc.set("index", json!(i));
            let name = label(i, item);
            let sem = &sem;
            futs.push(async move {
                let _permit = sem.acquire().await;
                let (steps, status) = run_steps(&f.steps, &mut sc, ctx, in_cleanup).await;
                group(name, step.pos.line, steps, status)
            });
        }
        let runs = futures::future::join_all(futs).await;
        children = runs;
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
    let passed = children
        .iter()
        .filter(|c| c.status == Status::Passed)
        .count();
    Ok(Observation {
        doc: json!({"count": items.len(), "ran": children.len(), "passed": passed}).into(),
        assertions: verdict(step, format!("foreach {}", f.as_), &children),
        children,
        ..Default::default()
    })
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
    let mut children = Vec::new();
    let mut exhausted = false;
    for run in 1..=r.max {
        let (steps, status) = run_steps(&r.steps, scope, ctx, in_cleanup).await;
        children.push(group(format!("run {run}"), step.pos.line, steps, status));
        if matches!(status, Status::Failed | Status::Error) {
            break;
        }
        if !condition(&r.while_, scope)? {
            break;
        }
        if run == r.max {
            exhausted = true;
        }
        if ctx.cancel.is_cancelled() && !in_cleanup {
            return Err(ExecError::interrupted());
        }
    }
    let mut assertions = verdict(step, "repeat".into(), &children);
    if exhausted {
        assertions.push(AssertionResult {
            line: step.pos.line,
            subject: format!("while {}", r.while_),
            op: "false within max runs".into(),
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
        doc: json!({"runs": children.len()}).into(),
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
