//! Loading specs from files: YAML -> model, with every problem reported at `file:line:col`.
//! All files are loaded and checked before anything runs; all problems are reported at once.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::diag::{did_you_mean, Diagnostic};
use super::position::PositionIndex;
use super::scope::{Catalog, ScopeStatus};
use super::{Capture, Check, Expect, Pos, Spec, Step, StepKind};
use crate::template::{analyse, is_template, BUILTIN_FUNCS, BUILTIN_VARS};

/// The outcome of loading: the good specs and every diagnostic.
#[derive(Debug, Default)]
pub struct LoadedSpecs {
    pub specs: Vec<Spec>,
    pub diagnostics: Vec<Diagnostic>,
}

/// File name of the scope catalog, which is not a spec.
pub const CATALOG_FILE: &str = "scope.yaml";

/// Expands directories into spec files (`*.yaml`, `*.yml`, sorted; the catalog excluded).
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostic> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(dir) = stack.pop() {
                let entries = std::fs::read_dir(&dir).map_err(|e| {
                    Diagnostic::new(
                        dir.display().to_string(),
                        Pos::default(),
                        format!("cannot read directory: {e}"),
                    )
                })?;
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if is_spec_file(&path) {
                        out.push(path);
                    }
                }
            }
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(Diagnostic::new(
                p.display().to_string(),
                Pos::default(),
                "no such file or directory",
            )
            .with_hint(Some(
                "pass spec files or directories, e.g. `focusqa run specs/`".into(),
            )));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn is_spec_file(p: &Path) -> bool {
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    (ext == "yaml" || ext == "yml")
        && name != CATALOG_FILE
        && !name.starts_with('_')
        && !name.starts_with('.')
}

/// Shown path: relative to the working directory when possible.
pub fn display_path(p: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    match cwd.as_ref().and_then(|c| abs.strip_prefix(c).ok()) {
        Some(rel) => rel.display().to_string(),
        None => p.display().to_string(),
    }
}

/// Loads every spec under `paths`, checking covers against the catalog when there is one.
pub fn load_paths(
    paths: &[PathBuf],
    catalog: Option<&Catalog>,
    target_vars: &[String],
) -> LoadedSpecs {
    let mut loaded = LoadedSpecs::default();
    let files = match collect_files(paths) {
        Ok(f) => f,
        Err(d) => {
            loaded.diagnostics.push(d);
            return loaded;
        }
    };
    for file in files {
        match load_file(&file, catalog, target_vars) {
            Ok(spec) => loaded.specs.push(spec),
            Err(mut diags) => loaded.diagnostics.append(&mut diags),
        }
    }
    // Ids are unique across files.
    let mut first: HashMap<String, String> = HashMap::new();
    for spec in &loaded.specs {
        if let Some(prev) = first.get(&spec.id) {
            let text = std::fs::read_to_string(&spec.source.file).unwrap_or_default();
            loaded.diagnostics.push(
                Diagnostic::new(
                    &spec.source.display,
                    spec.source.pos,
                    format!("duplicate spec id `{}`", spec.id),
                )
                .with_hint(Some(format!(
                    "it is already used by {prev}; ids must be unique"
                )))
                .with_source(&text),
            );
        } else {
            first.insert(
                spec.id.clone(),
                format!("{}:{}", spec.source.display, spec.source.pos.line),
            );
        }
    }
    if !loaded.diagnostics.is_empty() {
        let bad: HashSet<String> = loaded.diagnostics.iter().map(|d| d.file.clone()).collect();
        loaded.specs.retain(|s| !bad.contains(&s.source.display));
    }
    loaded
}

/// Turns a serde_yaml error into a diagnostic with position and a "did you mean" hint.
pub fn serde_diag(file: &str, text: &str, e: &serde_yaml::Error) -> Diagnostic {
    let pos = e
        .location()
        .map(|l| Pos {
            line: l.line() as u32,
            col: l.column() as u32,
        })
        .unwrap_or_default();
    let mut msg = e.to_string();
    // serde_yaml appends " at line X column Y"; we show the position ourselves.
    if let Some(i) = msg.rfind(" at line ") {
        msg.truncate(i);
    }
    // `grpc` is accepted by the parser only to reject it with the scope decision; don't advertise it.
    msg = msg.replace(", `grpc`", "");
    let hint = unknown_field_hint(&msg);
    let msg = msg.replace(
        "data did not match any variant of untagged enum",
        "value has the wrong shape for",
    );
    Diagnostic::new(file, pos, msg)
        .with_hint(hint)
        .with_source(text)
}

/// From "unknown field `expct`, expected one of `a`, `b`" to "did you mean `expect`?".
fn unknown_field_hint(msg: &str) -> Option<String> {
    let rest = msg
        .split("unknown field `")
        .nth(1)
        .or_else(|| msg.split("unknown variant `").nth(1))?;
    let word = rest.split('`').next()?;
    let expected = rest.split("expected").nth(1)?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    if word == "grpc" {
        return Some(super::GRPC_OUT_OF_SCOPE.to_string());
    }
    did_you_mean(word, candidates.iter().copied())
        .or_else(|| Some(format!("expected one of: {}", candidates.join(", "))))
}

/// Loads one spec file.
/// `target_vars`: names the targets define, accepted in templates besides the spec's own.
pub fn load_file(
    path: &Path,
    catalog: Option<&Catalog>,
    target_vars: &[String],
) -> Result<Spec, Vec<Diagnostic>> {
    let file = display_path(path);
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic::new(
            &file,
            Pos::default(),
            format!("cannot read spec: {e}"),
        )]
    })?;
    let index = PositionIndex::build(&text).map_err(|(pos, msg)| {
        vec![Diagnostic::new(&file, pos, format!("YAML syntax error: {msg}")).with_source(&text)]
    })?;
    if text.trim().is_empty() {
        return Err(vec![Diagnostic::new(
            &file,
            Pos { line: 1, col: 1 },
            "the spec file is empty",
        )
        .with_hint(Some(
            "a spec needs at least `id`, `title` and `steps`".into(),
        ))]);
    }
    let mut spec: Spec =
        serde_yaml::from_str(&text).map_err(|e| vec![serde_diag(&file, &text, &e)])?;
    spec.source = super::Source {
        file: path.to_path_buf(),
        display: file.clone(),
        pos: index.get("id"),
    };
    assign_positions(&mut spec, &index);
    let diags = check(&spec, &index, catalog, target_vars)
        .into_iter()
        .map(|(pos, msg, hint)| {
            Diagnostic::new(&file, pos, msg)
                .with_hint(hint)
                .with_source(&text)
        })
        .collect::<Vec<_>>();
    if diags.is_empty() {
        Ok(spec)
    } else {
        Err(diags)
    }
}

fn assign_positions(spec: &mut Spec, index: &PositionIndex) {
    for (i, c) in spec.cases.iter_mut().enumerate() {
        c.pos = index.get(&format!("cases[{i}]"));
    }
    assign_steps(&mut spec.steps, "steps", index);
    assign_steps(&mut spec.cleanup, "cleanup", index);
}

fn assign_steps(steps: &mut [Step], base: &str, index: &PositionIndex) {
    for (i, step) in steps.iter_mut().enumerate() {
        let path = format!("{base}[{i}]");
        step.pos = index.get(&path);
        if let Some(e) = &mut step.expect {
            e.pos = index.key(&format!("{path}.expect"));
            for k in [
                "status",
                "headers",
                "body",
                "match",
                "schema",
                "max_elapsed",
            ] {
                e.lines
                    .insert(k.to_string(), index.key(&format!("{path}.expect.{k}")).line);
            }
            for (j, c) in e.json.iter_mut().enumerate() {
                c.pos = index.get(&format!("{path}.expect.json[{j}]"));
            }
        }
        match &mut step.kind {
            StepKind::Assert(checks) => {
                for (j, c) in checks.iter_mut().enumerate() {
                    c.pos = index.get(&format!("{path}.assert[{j}]"));
                }
            }
            StepKind::Fanout(f) => {
                assign_steps(&mut f.steps, &format!("{path}.fanout.steps"), index);
                assign_steps(&mut f.cleanup, &format!("{path}.fanout.cleanup"), index);
            }
            _ => {}
        }
    }
}

type Problem = (Pos, String, Option<String>);

/// Semantic checks that serde cannot do.
fn check(
    spec: &Spec,
    index: &PositionIndex,
    catalog: Option<&Catalog>,
    target_vars: &[String],
) -> Vec<Problem> {
    let mut out: Vec<Problem> = Vec::new();
    if spec.id.trim().is_empty() || spec.id.chars().any(char::is_whitespace) {
        out.push((
            index.get("id"),
            format!(
                "spec id `{}` must be non-empty and contain no spaces",
                spec.id
            ),
            None,
        ));
    }
    if spec.steps.is_empty() {
        out.push((
            index.key("steps"),
            "a spec needs at least one step".into(),
            None,
        ));
    }
    // covers against the catalog: the spec's, and every step's (fan-out blocks included)
    if let Some(cat) = catalog {
        let mut all: Vec<(String, &String)> = spec
            .covers
            .iter()
            .enumerate()
            .map(|(i, id)| (format!("covers[{i}]"), id))
            .collect();
        fn step_covers<'a>(steps: &'a [Step], prefix: &str, out: &mut Vec<(String, &'a String)>) {
            for (i, st) in steps.iter().enumerate() {
                for (j, id) in st.covers.iter().enumerate() {
                    out.push((format!("{prefix}[{i}].covers[{j}]"), id));
                }
                if let StepKind::Fanout(f) = &st.kind {
                    step_covers(&f.steps, &format!("{prefix}[{i}].fanout.steps"), out);
                }
            }
        }
        step_covers(&spec.steps, "steps", &mut all);
        for (key, id) in all {
            let pos = index.get(&key);
            match cat.item(id) {
                None => out.push((
                    pos,
                    format!("`{id}` is not an item of the scope catalog"),
                    did_you_mean(id, cat.items.iter().map(|i| i.id.as_str())).or_else(|| {
                        Some("add the item to specs/scope.yaml first, or fix the id".into())
                    }),
                )),
                Some(item) if item.status == ScopeStatus::Out => out.push((
                    pos,
                    format!("`{id}` is out of the agreed scope and may not be covered"),
                    Some(format!(
                        "excluded by decision: {}",
                        item.reason.as_deref().unwrap_or("no reason given")
                    )),
                )),
                _ => {}
            }
        }
    }
    // case names unique
    let mut names = HashSet::new();
    for (i, c) in spec.cases.iter().enumerate() {
        if !names.insert(c.name.as_str()) {
            out.push((
                index.get(&format!("cases[{i}].name")),
                format!("duplicate case name `{}`", c.name),
                None,
            ));
        }
    }
    // Names a template may use: vars, case vars, every capture, builtins.
    let mut known: HashSet<String> = spec.vars.keys().cloned().collect();
    for c in &spec.cases {
        known.extend(c.vars.keys().cloned());
    }
    collect_captures(&spec.steps, &mut known);
    collect_captures(&spec.cleanup, &mut known);
    known.extend(target_vars.iter().cloned());
    // `secrets:` names variables or captures of this spec (or of the target).
    for (i, name) in spec.secrets.iter().enumerate() {
        if !known.contains(name) {
            let mut cands: Vec<&str> = known.iter().map(String::as_str).collect();
            cands.sort();
            out.push((
                index.get(&format!("secrets[{i}]")),
                format!("`secrets` names `{name}`, which is no variable or capture of this spec"),
                did_you_mean(name, cands.iter().copied()),
            ));
        }
    }
    known.extend(BUILTIN_VARS.iter().map(|s| s.to_string()));
    known.extend(BUILTIN_FUNCS.iter().map(|s| s.to_string()));

    check_steps(&spec.steps, "steps", index, &mut out);
    check_steps(&spec.cleanup, "cleanup", index, &mut out);

    // Every templated string: syntax, and variables that exist somewhere.
    for s in &index.scalars {
        let expression = s.path.ends_with(".expr") || s.path.ends_with(".when");
        if !expression && !is_template(&s.value) {
            continue;
        }
        match analyse(&s.value, expression) {
            Err(e) => out.push((s.pos, format!("bad template `{}`: {e}", s.value), None)),
            Ok(names) => {
                let mut unknown: Vec<&String> =
                    names.iter().filter(|n| !known.contains(*n)).collect();
                unknown.sort();
                for n in unknown {
                    let mut cands: Vec<&str> = known.iter().map(String::as_str).collect();
                    cands.sort();
                    out.push((
                        s.pos,
                        format!("undefined variable `{n}` in `{}`", s.value),
                        did_you_mean(n, cands.iter().copied()).or_else(|| {
                            Some("define it under `vars`, in a case's `vars`, in a target's `vars` (focusqa.yaml), or `capture` it in an earlier step".into())
                        }),
                    ));
                }
            }
        }
    }
    out.sort_by_key(|p| (p.0.line, p.0.col));
    out.dedup();
    out
}

fn collect_captures(steps: &[Step], known: &mut HashSet<String>) {
    for s in steps {
        known.extend(s.capture.keys().cloned());
        if let StepKind::Fanout(f) = &s.kind {
            collect_captures(&f.steps, known);
            collect_captures(&f.cleanup, known);
        }
    }
}

fn check_steps(steps: &[Step], base: &str, index: &PositionIndex, out: &mut Vec<Problem>) {
    for (i, step) in steps.iter().enumerate() {
        let path = format!("{base}[{i}]");
        if let Some(e) = &step.expect {
            check_expect(e, &format!("{path}.expect"), index, out);
        }
        if step.until.is_some() && step.expect.is_none() {
            out.push((
                index.key(&format!("{path}.until")),
                "`until` needs an `expect` to know when to stop polling".into(),
                Some("add e.g. `expect: {status: 200}` to the step".into()),
            ));
        }
        for (name, cap) in &step.capture {
            let cpath = format!("{path}.capture.{name}");
            let jp = match cap {
                Capture::Path(p) => Some(p.as_str()),
                Capture::Detailed(d) => {
                    let n = d.path.is_some() as u8
                        + d.header.is_some() as u8
                        + d.cookie.is_some() as u8
                        + d.from.is_some() as u8;
                    if n != 1 {
                        out.push((
                            index.get(&cpath),
                            format!(
                                "capture `{name}` needs exactly one of `path`, `header`, `cookie`, `from`"
                            ),
                            None,
                        ));
                    }
                    d.path.as_deref()
                }
            };
            if let Some(p) = jp {
                check_jsonpath(p, index.get(&cpath), out);
            }
        }
        match &step.kind {
            StepKind::Http(r) | StepKind::Sim(r) if r.body_kinds().len() > 1 => {
                out.push((
                    index.get(&path.to_string()),
                    format!(
                        "a request has at most one body, found {}",
                        r.body_kinds().join(" + ")
                    ),
                    Some("keep one of `json`, `body`, `body_base64`, `body_file`, `form`, `multipart`".into()),
                ));
            }
            StepKind::Assert(checks) => {
                if checks.is_empty() {
                    out.push((
                        index.get(&format!("{path}.assert")),
                        "an `assert` step needs at least one check".into(),
                        None,
                    ));
                }
                for (j, c) in checks.iter().enumerate() {
                    check_check(c, &format!("{path}.assert[{j}]"), index, out);
                }
            }
            StepKind::Fanout(f) => {
                if f.steps.is_empty() {
                    out.push((
                        index.get(&format!("{path}.fanout")),
                        "a `fanout` needs at least one step".into(),
                        None,
                    ));
                }
                check_steps(&f.steps, &format!("{path}.fanout.steps"), index, out);
                check_steps(&f.cleanup, &format!("{path}.fanout.cleanup"), index, out);
                for (j, t) in f.thresholds.iter().enumerate() {
                    // Templated thresholds are checked once rendered, at run time.
                    if is_template(t) {
                        continue;
                    }
                    if let Err(e) = super::threshold::Threshold::parse(t) {
                        out.push((
                            index.get(&format!("{path}.fanout.thresholds[{j}]")),
                            e,
                            None,
                        ));
                    }
                }
            }
            StepKind::Kube(k) => {
                use super::KubeVerb::*;
                if matches!(k.op, Get | Wait) && k.name.is_none() {
                    out.push((
                        index.get(&format!("{path}.kube")),
                        format!("kube `{}` needs a `name`", k.op.as_str()),
                        Some("use `op: list` with `labels:` to select by label".into()),
                    ));
                }
                if matches!(k.op, Delete | Absent)
                    && k.name.is_none()
                    && k.labels.is_none()
                    && k.fields.is_none()
                {
                    out.push((
                        index.get(&format!("{path}.kube")),
                        format!(
                            "kube `{}` needs a `name` or a selector (`labels`/`fields`)",
                            k.op.as_str()
                        ),
                        None,
                    ));
                }
            }
            _ => {}
        }
    }
}

fn check_expect(e: &Expect, path: &str, index: &PositionIndex, out: &mut Vec<Problem>) {
    if let Some(super::StatusExpect::Text(t)) = &e.status {
        let t = t.trim();
        let class = t.len() == 3 && t.ends_with("xx") && t.as_bytes()[0].is_ascii_digit();
        if !class && !is_template(t) {
            out.push((
                index.get(&format!("{path}.status")),
                format!("status `{t}` is not a code, a list of codes, or a class like `2xx`"),
                None,
            ));
        }
    }
    for (name, h) in &e.headers {
        if let super::HeaderExpect::Check(c) = h {
            if let Some(re) = &c.matches {
                check_regex(
                    re,
                    index.get(&format!("{path}.headers.{name}.matches")),
                    out,
                );
            }
        }
    }
    if let Some(b) = &e.body {
        if let Some(re) = &b.matches {
            check_regex(re, index.get(&format!("{path}.body.matches")), out);
        }
    }
    for (j, c) in e.redirects.iter().enumerate() {
        check_check(c, &format!("{path}.redirects[{j}]"), index, out);
    }
    for (j, c) in e.json.iter().enumerate() {
        let cp = format!("{path}.json[{j}]");
        if c.path.is_none() {
            out.push((
                index.get(&cp),
                "a `json` check needs a `path` (a JSONPath such as `$.job_id`)".into(),
                None,
            ));
        }
        check_check(c, &cp, index, out);
    }
}

fn check_check(c: &Check, path: &str, index: &PositionIndex, out: &mut Vec<Problem>) {
    let subjects = c.path.is_some() as u8 + c.value.is_some() as u8 + c.expr.is_some() as u8;
    if subjects != 1 {
        out.push((
            index.get(path),
            "a check needs exactly one subject: `path` (JSONPath), `value` (template) or `expr` (expression)".into(),
            None,
        ));
    }
    let ops = [
        c.equals.is_some(),
        c.not_equals.is_some(),
        c.matches.is_some(),
        c.not_matches.is_some(),
        c.contains.is_some(),
        c.not_contains.is_some(),
        c.exists.is_some(),
        c.type_.is_some(),
        c.length.is_some(),
        c.gt.is_some(),
        c.gte.is_some(),
        c.lt.is_some(),
        c.lte.is_some(),
        c.one_of.is_some(),
    ];
    if c.expr.is_none() && !ops.iter().any(|b| *b) {
        out.push((
            index.get(path),
            "this check compares nothing".into(),
            Some("add one of equals, not_equals, matches, not_matches, contains, not_contains, exists, type, length, gt, gte, lt, lte, one_of".into()),
        ));
    }
    if c.expr.is_some() && ops.iter().any(|b| *b) {
        out.push((
            index.get(path),
            "an `expr` check is complete on its own; put comparisons inside the expression".into(),
            None,
        ));
    }
    if let Some(p) = &c.path {
        check_jsonpath(p, index.get(&format!("{path}.path")), out);
    }
    for (key, re) in [("matches", &c.matches), ("not_matches", &c.not_matches)] {
        if let Some(re) = re {
            check_regex(re, index.get(&format!("{path}.{key}")), out);
        }
    }
    check_operands(c, path, index, out);
}

/// Literal operands that can never work (templates are checked once rendered, at run time).
fn check_operands(c: &Check, path: &str, index: &PositionIndex, out: &mut Vec<Problem>) {
    let templated = |v: &serde_json::Value| v.as_str().is_some_and(is_template);
    for (key, bound) in [
        ("gt", &c.gt),
        ("gte", &c.gte),
        ("lt", &c.lt),
        ("lte", &c.lte),
    ] {
        let Some(b) = bound else { continue };
        if !(b.is_number() || b.is_string()) {
            out.push((
                index.key(&format!("{path}.{key}")),
                format!(
                    "`{key}: {}` can never be compared: `{key}` orders numbers, or strings against strings",
                    serde_json::to_string(b).unwrap_or_default()
                ),
                Some(format!(
                    "write a number (`{key}: 1`), a string, or a template (`{key}: \"{{{{ port_min }}}}\"`)"
                )),
            ));
        }
    }
    if let Some(l) = &c.length {
        let bounds: Vec<(&str, &serde_json::Value)> = match l {
            super::LengthCheck::Exact(v) => vec![("length", v)],
            super::LengthCheck::Compare(cmp) => [
                ("length.equals", &cmp.equals),
                ("length.gt", &cmp.gt),
                ("length.gte", &cmp.gte),
                ("length.lt", &cmp.lt),
                ("length.lte", &cmp.lte),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
            .collect(),
        };
        for (key, b) in bounds {
            if b.as_u64().is_none() && !templated(b) {
                out.push((
                    index.key(&format!("{path}.{key}")),
                    format!(
                        "`{key}: {}` is not a length: write a whole number >= 0 (or a template)",
                        serde_json::to_string(b).unwrap_or_default()
                    ),
                    Some("e.g. `length: 3` or `length: {gte: 1}`".into()),
                ));
            }
        }
    }
    if let Some(o) = &c.one_of {
        if !o.is_array() && !templated(o) {
            out.push((
                index.key(&format!("{path}.one_of")),
                "`one_of` needs a list of values (or a template rendering to one)".into(),
                Some("e.g. `one_of: [configured, running]`".into()),
            ));
        }
    }
}

fn check_jsonpath(p: &str, pos: Pos, out: &mut Vec<Problem>) {
    if is_template(p) {
        return;
    }
    if let Err(e) = serde_json_path::JsonPath::parse(p) {
        out.push((
            pos,
            format!("bad JSONPath `{p}`: {e}"),
            Some(if p.starts_with('$') {
                "see RFC 9535, e.g. `$.items[0].name`".into()
            } else {
                format!("JSONPaths start with `$`: did you mean `$.{p}`?")
            }),
        ));
    }
}

fn check_regex(re: &str, pos: Pos, out: &mut Vec<Problem>) {
    if is_template(re) {
        return;
    }
    if let Err(e) = regex::Regex::new(re) {
        out.push((pos, format!("bad regular expression `{re}`: {e}"), None));
    }
}
