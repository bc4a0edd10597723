//! Loading specs from files: YAML -> model, with every problem reported at `file:line:col`.
//! All files are loaded and checked before anything runs; all problems are reported at once.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::spec::access::display_path;
use crate::spec::diag::{did_you_mean, Diagnostic, Problem};
use crate::spec::position::{NodeId, PositionIndex, ScalarAt};
use crate::spec::scope::{Catalog, ScopeStatus};
use crate::spec::{Access, Capture, Check, Expect, Pos, Spec, Step, StepKind, ACCESS_HINT};
use crate::template::{analyse, is_template, lint, BUILTIN_FUNCS};

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

/// Loads every spec under `paths`, checking covers against the catalog when there is one.
pub fn load_paths(
    paths: &[PathBuf],
    catalog: Option<&Catalog>,
    target_vars: &[String],
    access: &Access,
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
        // A spec with problems is kept until its id was compared with the others'.
        let (spec, mut diags) = read_file(&file, catalog, target_vars, access);
        loaded.specs.extend(spec);
        loaded.diagnostics.append(&mut diags);
    }
    // Ids are unique across files (broken files' too: fixing them must not reveal a clash).
    let mut first: HashMap<String, String> = HashMap::new();
    // (A missing id, read as empty, was reported already.)
    for spec in loaded.specs.iter().filter(|s| !s.id.is_empty()) {
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

/// Loads one spec file.
/// `target_vars`: names the targets define, accepted in templates besides the spec's own.
pub fn load_file(
    path: &Path,
    catalog: Option<&Catalog>,
    target_vars: &[String],
) -> Result<Spec, Vec<Diagnostic>> {
    load_file_with(path, catalog, target_vars, &Access::default())
}

/// [`load_file`], reading only the files `access` allows.
pub fn load_file_with(
    path: &Path,
    catalog: Option<&Catalog>,
    target_vars: &[String],
    access: &Access,
) -> Result<Spec, Vec<Diagnostic>> {
    match read_file(path, catalog, target_vars, access) {
        (Some(spec), diags) if diags.is_empty() => Ok(spec),
        (_, diags) => Err(diags),
    }
}

/// [`load_file_with`], with the spec as far as it could be read (see [`read_text`]).
fn read_file(
    path: &Path,
    catalog: Option<&Catalog>,
    target_vars: &[String],
    access: &Access,
) -> (Option<Spec>, Vec<Diagnostic>) {
    let file = display_path(path);
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            let d = Diagnostic::new(&file, Pos::default(), format!("cannot read spec: {e}"));
            return (None, vec![d]);
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let off = e.utf8_error().valid_up_to();
            let good = String::from_utf8_lossy(&e.as_bytes()[..off]).into_owned();
            let pos = text_end_pos(&good);
            let rest = String::from_utf8_lossy(e.as_bytes());
            return (
                None,
                vec![Diagnostic::new(
                    &file,
                    pos,
                    format!("the file is not valid UTF-8: invalid byte at offset {off}"),
                )
                .with_hint(Some("save the spec as UTF-8".into()))
                .with_source(&rest)],
            );
        }
    };
    let (spec, diags) = read_text(&file, &text, catalog, target_vars, access);
    let spec = spec.map(|mut s| {
        s.source.file = path.to_path_buf();
        s
    });
    (spec, diags)
}

/// Line and column just after `text` (1-based), e.g. where an invalid byte starts.
fn text_end_pos(text: &str) -> Pos {
    let line = text.matches('\n').count() as u32 + 1;
    let last = text.rsplit('\n').next().unwrap_or("");
    Pos {
        line,
        col: last.chars().count() as u32 + 1,
    }
}

/// Loads a spec from its text (`file` is the name shown in diagnostics). Never panics:
/// every problem of the text is a diagnostic with its position.
pub fn load_text(
    file: &str,
    text: &str,
    catalog: Option<&Catalog>,
    target_vars: &[String],
) -> Result<Spec, Vec<Diagnostic>> {
    load_text_with(file, text, catalog, target_vars, &Access::default())
}

/// [`load_text`], reading only the files `access` allows.
pub fn load_text_with(
    file: &str,
    text: &str,
    catalog: Option<&Catalog>,
    target_vars: &[String],
    access: &Access,
) -> Result<Spec, Vec<Diagnostic>> {
    match read_text(file, text, catalog, target_vars, access) {
        (Some(spec), diags) if diags.is_empty() => Ok(spec),
        (_, diags) => Err(diags),
    }
}

/// [`load_text_with`], with the spec as far as it could be read even when it has problems
/// (its id still counts among the ids of the project). `None` comes with diagnostics.
fn read_text(
    file: &str,
    text: &str,
    catalog: Option<&Catalog>,
    target_vars: &[String],
    access: &Access,
) -> (Option<Spec>, Vec<Diagnostic>) {
    let diag = |(pos, msg, hint): Problem| {
        Diagnostic::new(file, pos, msg)
            .with_hint(hint)
            .with_source(text)
    };
    if text.trim().is_empty() {
        return (
            None,
            vec![
                Diagnostic::new(file, Pos { line: 1, col: 1 }, "the spec file is empty").with_hint(
                    Some("a spec needs at least `id`, `title` and `steps`".into()),
                ),
            ],
        );
    }
    let (value, index) = match crate::spec::yaml::parse(text) {
        Ok(doc) if doc.unreadable => {
            let diags = doc.index.problems.into_iter();
            return (
                None,
                diags.map(|(pos, msg)| diag((pos, msg, None))).collect(),
            );
        }
        Ok(doc) => (doc.value, doc.index),
        Err((pos, msg)) => {
            let d = Diagnostic::new(file, pos, format!("YAML syntax error: {msg}"));
            return (None, vec![d.with_source(text)]);
        }
    };
    // Every check below runs whatever the ones before it found, so one run reports every
    // problem of the file. Only what leaves nothing to read stops it: a YAML syntax error, a
    // duplicate key (above), a document that is no mapping.
    let mut diags: Vec<Diagnostic> = index
        .problems
        .iter()
        .map(|(pos, msg)| diag((*pos, msg.clone(), None)))
        .collect();
    if !value.is_object() {
        diags.push(diag((
            index.get(""),
            "a spec is a mapping with `id`, `title` and `steps`".into(),
            None,
        )));
        return (None, diags);
    }
    // The schema finds every structural problem; typed deserialization adds what a schema
    // cannot say (durations, one action per step), except where the schema already spoke.
    let mut problems = crate::spec::structure::schema_problems(&value, &index);
    let written = written_names(&value);
    // Each step's values are dropped once it is read typed: a long spec never holds both whole.
    let mut value = value;
    let (typed, more) = crate::spec::structure::typed_spec(&mut value, &index);
    let lines: HashSet<u32> = problems.iter().map(|p| p.0.line).collect();
    problems.extend(more.into_iter().filter(|p| !lines.contains(&p.0.line)));
    problems.sort_by_key(|p| (p.0.line, p.0.col));
    // Where the structure spoke, the later checks keep quiet (one problem per place).
    let structural: HashSet<(u32, u32)> = problems.iter().map(|p| (p.0.line, p.0.col)).collect();
    diags.extend(problems.into_iter().map(diag));
    // The spec as far as it could be read (broken parts left out): the checks below see it.
    let Some(mut spec) = typed else {
        if diags.is_empty() {
            diags.push(diag((
                index.get(""),
                "the spec could not be read".into(),
                None,
            )));
        }
        return (None, diags);
    };
    // Names the structure check lost (see below), taken now: the document's values are not
    // needed after this, and a long spec's checks need the memory they held.
    let lost = lost_names(written, &spec);
    drop(value);
    spec.source = crate::spec::Source {
        file: PathBuf::from(file),
        display: file.to_string(),
        pos: index.get("id"),
    };
    assign_positions(&mut spec, &index);
    // Shared variables and included step lists, relative to this file.
    let dir = Path::new(file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut vars_file_failed = false;
    if let Some(vf) = spec.vars_file.clone() {
        match access
            .check(&dir.join(&vf), "vars_file")
            .map_err(|e| e.to_string())
            .and_then(|p| load_vars_file(&p))
        {
            Ok(mut shared) => {
                // The spec's own vars come after (they may use and override the shared ones).
                shared.extend(std::mem::take(&mut spec.vars));
                spec.vars = shared;
            }
            Err(m) => {
                vars_file_failed = true;
                diags.push(diag((index.get("vars_file"), m, None)))
            }
        }
    }
    let here = std::fs::canonicalize(file).unwrap_or_else(|_| PathBuf::from(file));
    let mut walk = IncludeWalk {
        stack: vec![here],
        access: access.clone(),
        ..Default::default()
    };
    let src = Src {
        file,
        text,
        index: &index,
        dir: &dir,
    };
    for (block, steps) in [("steps", &mut spec.steps), ("cleanup", &mut spec.cleanup)] {
        resolve_includes(steps, block, block, 0, &src, &mut walk, &mut diags);
    }
    if walk.stopped {
        // A limit was crossed: what was expanded is cut short, and may be too large to check in
        // bounded time. The spec's own steps are checked as if its includes could not be read.
        fn unexpand(steps: &mut [Step]) {
            for s in steps {
                if let StepKind::Include(inc) = &mut s.kind {
                    inc.steps.clear();
                }
                for (_, block) in s.kind.blocks_mut() {
                    unexpand(block);
                }
            }
        }
        unexpand(&mut spec.steps);
        unexpand(&mut spec.cleanup);
        walk.fragments.clear();
        walk.failed.push(Pos { line: 0, col: 0 });
    }
    // What an unread file would define is unknown: a name defined nowhere is not reported
    // where it could come from one (anywhere, for a `vars_file`; after the `include:`, for an
    // include), rather than once now and again as a bogus error once the file is fixed.
    let unread_from = if vars_file_failed {
        Some(0)
    } else {
        walk.failed.iter().map(|p| p.line).min()
    };
    let possibly_unread = |line: u32, message: &str| {
        unread_from.is_some_and(|l| line > l) && message.starts_with("undefined variable")
    };
    // Variables and captures under a key the structure check refused (`varz:`, `captur:`) are
    // still names the author defined: they count as defined, so reading them is no error.
    let mut target_vars = target_vars.to_vec();
    target_vars.extend(lost);
    let target_vars = &target_vars[..];
    diags.extend(
        check(&spec, &index, catalog, target_vars)
            .into_iter()
            .filter(|p| {
                !structural.contains(&(p.0.line, p.0.col)) && !possibly_unread(p.0.line, &p.1)
            })
            .map(diag),
    );
    diags.extend(
        fragment_variables(&spec, target_vars, &walk.fragments)
            .into_iter()
            .filter(|(site, d)| !possibly_unread(*site, &d.message))
            .map(|(_, d)| d),
    );
    // In the order of the file (the checks above run one after the other over it), the
    // spec's own file first, then its fragments.
    diags.sort_by(|a, b| {
        (a.file != file, &a.file, a.pos.line, a.pos.col).cmp(&(
            b.file != file,
            &b.file,
            b.pos.line,
            b.pos.col,
        ))
    });
    (Some(spec), diags)
}

/// Names written under `vars` (the spec's, a case's) or a step's `capture` (or a misspelling of
/// them): read from the document before it is read typed (see [`lost_names`]).
fn written_names(value: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    fn like(k: &str, word: &str) -> bool {
        k == word || strsim::jaro_winkler(k, word) > 0.85
    }
    fn names_under(m: &serde_json::Map<String, Value>, word: &str, out: &mut Vec<String>) {
        // The cheap test first: most keys hold no mapping (and the similarity is not cheap).
        for (k, names) in m.iter().filter_map(|(k, x)| Some((k, x.as_object()?))) {
            if like(k, word) {
                out.extend(names.keys().cloned());
            }
        }
    }
    fn steps(v: Option<&Value>, out: &mut Vec<String>) {
        for step in v.and_then(Value::as_array).into_iter().flatten() {
            let Some(m) = step.as_object() else { continue };
            names_under(m, "capture", out);
            for block in ["fanout", "foreach", "repeat"] {
                if let Some(b) = m.get(block) {
                    steps(b.get("steps"), out);
                    steps(b.get("cleanup"), out);
                }
            }
        }
    }
    let mut written = Vec::new();
    if let Some(m) = value.as_object() {
        names_under(m, "vars", &mut written);
    }
    for case in value
        .get("cases")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(m) = case.as_object() {
            names_under(m, "vars", &mut written);
        }
    }
    steps(value.get("steps"), &mut written);
    steps(value.get("cleanup"), &mut written);
    written
}

/// The names of [`written_names`] that the spec as read does not define: they were lost with a
/// structural problem.
fn lost_names(mut written: Vec<String>, spec: &Spec) -> Vec<String> {
    let mut known: HashSet<String> = spec.vars.keys().cloned().collect();
    known.extend(spec.cases.iter().flat_map(|c| c.vars.keys().cloned()));
    let mut caps = Vec::new();
    all_captures(&spec.steps, "steps", &mut caps);
    all_captures(&spec.cleanup, "cleanup", &mut caps);
    known.extend(caps.into_iter().map(|(n, _)| n));
    written.retain(|n| !known.contains(n));
    written.sort();
    written.dedup();
    written
}

/// A file being loaded: its shown name, text, positions and directory (for relative paths).
struct Src<'a> {
    file: &'a str,
    text: &'a str,
    index: &'a PositionIndex,
    dir: &'a Path,
}

/// Reads a `vars_file`: a YAML mapping of variables.
fn load_vars_file(path: &Path) -> Result<crate::spec::VarMap, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("vars_file {}: cannot read it: {e}", display_path(path)))?;
    let v = match crate::spec::yaml::parse(&text) {
        Ok(doc) if !doc.unreadable => doc.value,
        Ok(doc) => {
            let (pos, msg) = doc.index.problems.into_iter().next().unwrap_or_default();
            return Err(format!(
                "vars_file {} ({}:{}): {msg}",
                display_path(path),
                pos.line,
                pos.col
            ));
        }
        Err((pos, msg)) => {
            return Err(format!(
                "vars_file {} ({}:{}): YAML syntax error: {msg}",
                display_path(path),
                pos.line,
                pos.col
            ))
        }
    };
    match v {
        serde_json::Value::Object(m) => Ok(m.into_iter().collect()),
        _ => Err(format!(
            "vars_file {}: a vars file is a YAML mapping of names to values",
            display_path(path)
        )),
    }
}

/// What loading the includes of one spec keeps: the files being read (for cycles), every
/// fragment read (whose templates are checked against the variables at its `include`), each
/// file read once however often it is included, and the steps expanded so far.
#[derive(Default)]
struct IncludeWalk {
    stack: Vec<PathBuf>,
    fragments: Vec<Fragment>,
    /// Fragments by canonical path, read and checked once: `None` when that failed (its
    /// diagnostics were given at the first `include`).
    cache: HashMap<PathBuf, Option<Rc<ReadFragment>>>,
    /// Steps of the spec once every include is expanded (blocks' inner steps counted).
    steps: usize,
    /// Which files may be read.
    access: Access,
    /// The `include:` lines being expanded, innermost last (where a crossed limit is shown).
    sites: Vec<Diagnostic>,
    /// A limit was crossed: nothing more is expanded (one diagnostic, not one per include).
    stopped: bool,
    /// Where in the spec's own file an include could not be expanded (the spec's `include:`
    /// that leads to it): what it would define is unknown from there on.
    failed: Vec<Pos>,
    /// Where a problem of a step was already reported (file, line, column): a fragment included
    /// many times (twice by each of forty others) gives its problems once, not once per copy.
    reported: HashSet<(String, u32, u32)>,
}

impl IncludeWalk {
    /// The position in the spec's own file of the include being expanded (`at` when it is one
    /// of the spec's own).
    fn spec_site(&self, at: Pos) -> Pos {
        self.sites.first().map(|d| d.pos).unwrap_or(at)
    }

    /// Adds `d` unless a problem was already reported at its place.
    fn report(&mut self, out: &mut Vec<Diagnostic>, d: Diagnostic) {
        if self
            .reported
            .insert((d.file.clone(), d.pos.line, d.pos.col))
        {
            out.push(d);
        }
    }
}

/// A fragment file as read and checked, before its own includes are expanded.
struct ReadFragment {
    steps: Vec<Step>,
    display: String,
    text: Rc<str>,
    index: Rc<PositionIndex>,
}

/// A fragment as read for one `include:`: `at` is where its steps sit in the spec's own path
/// space (`steps[2].include.steps`), which is what the variable regions are keyed by.
struct Fragment {
    at: String,
    /// `file:line` of the `include:` that read it (a fragment may be included in many places).
    included_at: String,
    /// Line of the `include:` in the spec's own file that leads to it.
    site_line: u32,
    display: String,
    text: Rc<str>,
    index: Rc<PositionIndex>,
}

/// Loads every `include:` below `steps` (in blocks too, and includes of included files),
/// each file checked as a step list with diagnostics at its own `file:line:col`; a missing
/// file, a cycle or a crossed limit is reported at the `include` that names it. `base` is where
/// `steps` sit in the file being read, `spec_base` where in the spec's own path space (inside a
/// fragment they differ); `depth` is how many blocks and includes enclose `steps`.
///
/// The recursion is bounded by [`crate::spec::MAX_NESTING`] (deeper blocks are a diagnostic and not
/// entered), and the work by [`crate::spec::MAX_STEPS`]: each file is parsed once, and expanding stops
/// at the first limit crossed, so a fragment included twice by the next one, forty times over,
/// ends at once rather than after 2^40 steps.
fn resolve_includes(
    steps: &mut [Step],
    base: &str,
    spec_base: &str,
    depth: usize,
    src: &Src,
    walk: &mut IncludeWalk,
    out: &mut Vec<Diagnostic>,
) {
    for (i, step) in steps.iter_mut().enumerate() {
        if walk.stopped {
            return;
        }
        let p = format!("{base}[{i}]");
        let spec_p = format!("{spec_base}[{i}]");
        walk.steps += 1;
        if walk.steps > crate::spec::MAX_STEPS {
            walk.stopped = true;
            let site = walk.spec_site(src.index.get(&p));
            walk.failed.push(site);
            // At the innermost `include:` being expanded (the spec's own step otherwise).
            let d = match walk.sites.last() {
                Some(site) => site.clone(),
                None => Diagnostic::new(src.file, src.index.get(&p), "").with_source(src.text),
            };
            out.push(Diagnostic {
                message: format!(
                    "the spec has more than {} steps once its includes are expanded (the steps inside blocks counted once each)",
                    crate::spec::MAX_STEPS
                ),
                hint: Some(
                    "a fragment that includes another several times doubles at each level: include it once, loop with `foreach`, or split the spec".into(),
                ),
                ..d
            });
            return;
        }
        let mut found = Vec::new();
        step_files(step, &p, src, &walk.access, &mut found);
        for d in found {
            walk.report(out, d);
        }
        // Kinds that run steps (blocks, includes) nest; the rest end the walk here.
        if step.kind.nested().is_empty() {
            continue;
        }
        let block = step.kind.name();
        let at = src.index.get(&format!("{p}.{block}"));
        let here = |m: String, hint: Option<String>| {
            Diagnostic::new(src.file, at, m)
                .with_hint(hint)
                .with_source(src.text)
        };
        if depth + 1 > crate::spec::MAX_NESTING {
            walk.stopped = true;
            let site = walk.spec_site(at);
            walk.failed.push(site);
            let chain: Vec<String> = walk.stack.iter().map(|s| display_path(s)).collect();
            out.push(here(
                format!(
                    "this `{block}` is nested {} levels deep (blocks and includes counted), at most {} are allowed{}",
                    depth + 1,
                    crate::spec::MAX_NESTING,
                    if chain.len() > 1 {
                        format!(
                            "; includes: {} files deep, from {}",
                            chain.len() - 1,
                            chain[0]
                        )
                    } else {
                        String::new()
                    }
                ),
                Some(if block == "include" {
                    "flatten the chain: include the fragments one after the other, not each from the previous one".into()
                } else {
                    "move the inner steps to a fragment included one after the other, or split the spec".into()
                }),
            ));
            return;
        }
        match &mut step.kind {
            StepKind::Include(inc) => {
                let path = src.dir.join(&inc.path);
                if !path.exists() {
                    walk.report(
                        out,
                        here(
                            format!(
                                "included file `{}` not found ({})",
                                inc.path,
                                display_path(&path)
                            ),
                            Some("an include path is relative to the file that includes it; a name defined nowhere is not reported after it, as it might define it".into()),
                        ),
                    );
                    let site = walk.spec_site(at);
                    walk.failed.push(site);
                    continue;
                }
                // Refused before it is read: its content never shows in a diagnostic.
                let canon = match walk.access.check(&path, "included file") {
                    Ok(c) => c,
                    Err(m) => {
                        walk.report(out, here(m.to_string(), Some(ACCESS_HINT.into())));
                        let site = walk.spec_site(at);
                        walk.failed.push(site);
                        continue;
                    }
                };
                if let Some(k) = walk.stack.iter().position(|s| *s == canon) {
                    let chain: Vec<String> = walk.stack[k..]
                        .iter()
                        .chain(std::iter::once(&canon))
                        .map(|s| display_path(s))
                        .collect();
                    walk.report(
                        out,
                        here(
                            format!("include cycle: {}", chain.join(" -> ")),
                            Some(
                                "a fragment may not include itself, directly or through others"
                                    .into(),
                            ),
                        ),
                    );
                    let site = walk.spec_site(at);
                    walk.failed.push(site);
                    continue;
                }
                let read = match walk.cache.get(&canon) {
                    Some(r) => r.clone(),
                    None => {
                        let display = display_path(&path);
                        let r = match load_step_list(&path, &display) {
                            Err(d) => {
                                // A file that cannot be read has no line of its own: the
                                // `include:` is where it is named.
                                out.extend(d.into_iter().map(|d| {
                                    if d.pos.line == 0 {
                                        here(d.message, d.hint)
                                    } else {
                                        d
                                    }
                                }));
                                None
                            }
                            Ok((steps, text, index, mut problems)) => {
                                out.append(&mut problems);
                                Some(Rc::new(ReadFragment {
                                    steps,
                                    display,
                                    text: text.into(),
                                    index: Rc::new(index),
                                }))
                            }
                        };
                        walk.cache.insert(canon.clone(), r.clone());
                        r
                    }
                };
                let Some(read) = read else {
                    let site = walk.spec_site(at);
                    walk.failed.push(site);
                    continue;
                };
                // Counted before copying: a fragment too large to expand is never copied.
                if walk.steps + count_steps(&read.steps) > crate::spec::MAX_STEPS {
                    walk.stopped = true;
                    let site = walk.spec_site(at);
                    walk.failed.push(site);
                    out.push(here(
                        format!(
                            "the spec has more than {} steps once its includes are expanded (the steps inside blocks counted once each): including `{}` here crosses it",
                            crate::spec::MAX_STEPS,
                            inc.path,
                        ),
                        Some("a fragment that includes another several times doubles at each level: include it once, or loop with `foreach`".into()),
                    ));
                    return;
                }
                let mut inner = read.steps.clone();
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                let sub = Src {
                    file: &read.display,
                    text: &read.text,
                    index: &read.index,
                    dir: &dir,
                };
                let inner_at = format!("{spec_p}.include.steps");
                walk.stack.push(canon);
                walk.sites.push(here(String::new(), None));
                resolve_includes(&mut inner, "", &inner_at, depth + 1, &sub, walk, out);
                walk.sites.pop();
                walk.stack.pop();
                inc.steps = inner;
                inc.file = path.clone();
                inc.display = read.display.clone();
                walk.fragments.push(Fragment {
                    at: inner_at,
                    included_at: format!("{}:{}", src.file, at.line),
                    site_line: walk.spec_site(at).line,
                    display: read.display.clone(),
                    text: read.text.clone(),
                    index: read.index.clone(),
                });
            }
            kind => {
                for (block, steps) in kind.blocks_mut() {
                    let (b, a) = (format!("{p}.{block}"), format!("{spec_p}.{block}"));
                    resolve_includes(steps, &b, &a, depth + 1, src, walk, out);
                }
            }
        }
    }
}

/// The files a step sends or checks against (`body_file`, multipart files, a `schema` file),
/// when written out (templated ones are known only at run time): readable by `access`.
fn step_files(step: &Step, p: &str, src: &Src, access: &Access, out: &mut Vec<Diagnostic>) {
    let mut files: Vec<(String, &str, bool)> = Vec::new();
    if let Some(req) = step.kind.request() {
        let kind = step.kind.name();
        if let Some(f) = &req.body_file {
            files.push((format!("{p}.{kind}.body_file"), f, true));
        }
        for (j, part) in req.multipart.iter().flatten().enumerate() {
            if let Some(f) = &part.file {
                files.push((format!("{p}.{kind}.multipart[{j}].file"), f, true));
            }
        }
    }
    if let Some(crate::spec::SchemaRef::File(f)) =
        step.expect.as_ref().and_then(|e| e.schema.as_deref())
    {
        files.push((format!("{p}.expect.schema"), f, false));
    }
    for (at, f, body) in files {
        if is_template(f) {
            continue;
        }
        let path = src.dir.join(f);
        let key = at.rsplit('.').next().unwrap_or("file");
        let what = if key == "file" { "multipart file" } else { key };
        let r = if body {
            access.check_body(&path, what)
        } else {
            access.check(&path, "schema file")
        };
        if let Err(m) = r {
            out.push(
                Diagnostic::new(src.file, src.index.get(&at), m.to_string())
                    .with_hint(Some(ACCESS_HINT.into()))
                    .with_source(src.text),
            );
        }
    }
}

/// Steps of a list, those inside blocks counted (not those of includes, not yet read).
/// A loop over an explicit stack: the list may come from any file.
fn count_steps(steps: &[Step]) -> usize {
    let mut n = 0;
    let mut todo: Vec<&[Step]> = vec![steps];
    while let Some(list) = todo.pop() {
        n += list.len();
        for s in list {
            todo.extend(s.kind.blocks().into_iter().map(|(_, b)| b));
        }
    }
    n
}

/// An included file: a YAML list of steps, read and checked like a spec's `steps`. Its steps
/// (as far as they could be read) come with its problems, so the include is expanded and what
/// it captures is known to the spec, and with its text and positions (for the checks of its
/// variables at each include); `Err` when nothing could be read.
#[allow(clippy::type_complexity)]
fn load_step_list(
    path: &Path,
    display: &str,
) -> Result<(Vec<Step>, String, PositionIndex, Vec<Diagnostic>), Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic::new(
            display,
            Pos::default(),
            format!("cannot read included file: {e}"),
        )]
    })?;
    let diag = |(pos, msg, hint): Problem| {
        Diagnostic::new(display, pos, msg)
            .with_hint(hint)
            .with_source(&text)
    };
    let doc = crate::spec::yaml::parse(&text).map_err(|(pos, msg)| {
        vec![Diagnostic::new(display, pos, format!("YAML syntax error: {msg}")).with_source(&text)]
    })?;
    let mut problems: Vec<Problem> = doc
        .index
        .problems
        .iter()
        .map(|(pos, msg)| (*pos, msg.clone(), None))
        .collect();
    if doc.unreadable {
        return Err(problems.into_iter().map(diag).collect());
    }
    let (mut value, index) = (doc.value, doc.index);
    if !value.is_array() {
        problems.push((
            Pos { line: 1, col: 1 },
            "an included file is a YAML list of steps (`- name: ...`)".into(),
            None,
        ));
        return Err(problems.into_iter().map(diag).collect());
    }
    let mut steps =
        crate::spec::structure::typed_steps(Some(&mut value), "", true, &index, &mut problems);
    let spoken: HashSet<(u32, u32)> = problems.iter().map(|p| (p.0.line, p.0.col)).collect();
    let mut more = Vec::new();
    assign_steps(&mut steps, index.root(), Pos { line: 1, col: 1 }, &index);
    check_steps(&steps, "", &index, &mut more);
    for s in &index.scalars {
        let expression = is_expression(s);
        if !expression && !is_template(&s.value) {
            continue;
        }
        match lint(&s.value, expression) {
            Err(e) => more.push((s.pos, format!("bad template `{}`: {e}", s.value), None)),
            Ok(u) => more.extend(
                u.problems
                    .into_iter()
                    .map(|p| (s.pos, format!("{p} in `{}`", s.value), None)),
            ),
        }
    }
    problems.extend(
        more.into_iter()
            .filter(|p| !spoken.contains(&(p.0.line, p.0.col))),
    );
    problems.sort_by_key(|p| (p.0.line, p.0.col));
    problems.dedup();
    let problems = problems.into_iter().map(diag).collect();
    Ok((steps, text, index, problems))
}

/// Gives every step, case, expectation and check of the spec its position, walking the
/// position tree alongside the typed spec (no paths are spelled).
fn assign_positions(spec: &mut Spec, index: &PositionIndex) {
    let root = index.root();
    let under = |key: &str| root.and_then(|r| index.child(r, key));
    let top = root.map_or(Pos { line: 1, col: 1 }, |r| index.pos(r));
    if let Some(cases) = under("cases") {
        for (i, c) in spec.cases.iter_mut().enumerate() {
            c.pos = index
                .item(cases, i)
                .map_or(index.pos(cases), |n| index.pos(n));
        }
    }
    assign_steps(&mut spec.steps, under("steps"), top, index);
    assign_steps(&mut spec.cleanup, under("cleanup"), top, index);
}

/// Expectation keys whose position a failure points at (the others point at `expect:`).
const EXPECT_KEYS: &[&str] = &[
    "status",
    "error",
    "headers",
    "cookies",
    "body",
    "version",
    "url",
    "redirects",
    "match",
    "schema",
    "max_elapsed",
];

/// `list` is the sequence node of `steps` (None when the document has none there: then every
/// step gets `outer`, the closest position known).
fn assign_steps(steps: &mut [Step], list: Option<NodeId>, outer: Pos, index: &PositionIndex) {
    let outer = list.map_or(outer, |l| index.pos(l));
    for (i, step) in steps.iter_mut().enumerate() {
        let node = list.and_then(|l| index.item(l, i));
        step.pos = node.map_or(outer, |n| index.pos(n));
        let child = |key: &str| node.and_then(|n| index.child(n, key));
        let at = step.pos;
        if let Some(e) = &mut step.expect {
            let en = child("expect");
            e.pos = en.map_or(at, |n| index.key_pos(n));
            if let Some(en) = en {
                for k in EXPECT_KEYS {
                    if let Some(kn) = index.child(en, k) {
                        e.lines.push((k, index.key_pos(kn)));
                    }
                }
                let json = index.child(en, "json");
                for (j, c) in e.json.iter_mut().enumerate() {
                    c.pos = json
                        .and_then(|l| index.item(l, j))
                        .map_or(e.pos, |n| index.pos(n));
                }
            }
        }
        let block = |kind: &str, list: &str| child(kind).and_then(|b| index.child(b, list));
        match &mut step.kind {
            StepKind::Assert(checks) => {
                let list = child("assert");
                for (j, c) in checks.0.iter_mut().enumerate() {
                    c.pos = list
                        .and_then(|l| index.item(l, j))
                        .map_or(at, |n| index.pos(n));
                }
            }
            kind => {
                for (path, steps) in kind.blocks_mut() {
                    let (kind, list) = path.split_once('.').unwrap_or((path, ""));
                    assign_steps(steps, block(kind, list), at, index);
                }
            }
        }
    }
}

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
    if let Some(n) = spec.retries.filter(|n| *n > crate::spec::MAX_RETRIES) {
        out.push((
            index.get("retries"),
            format!(
                "`retries: {n}` is too many: at most {}",
                crate::spec::MAX_RETRIES
            ),
            Some("a case that needs more runs to pass is failing; fix the cause".into()),
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
                for (b, block) in st.kind.blocks() {
                    step_covers(block, &format!("{prefix}[{i}].{b}"), out);
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
    // `secrets:` names variables or captures of this spec (or of the target).
    let mut known: HashSet<String> = spec.vars.keys().cloned().collect();
    for c in &spec.cases {
        known.extend(c.vars.keys().cloned());
    }
    let mut caps = Vec::new();
    all_captures(&spec.steps, "steps", &mut caps);
    all_captures(&spec.cleanup, "cleanup", &mut caps);
    known.extend(caps.into_iter().map(|(name, _)| name));
    known.extend(target_vars.iter().cloned());
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
    check_steps(&spec.steps, "steps", index, &mut out);
    check_steps(&spec.cleanup, "cleanup", index, &mut out);
    // `append` captures collect into a list: a variable of that name must be one.
    fn appends(steps: &[Step], base: &str, out: &mut Vec<(String, String)>) {
        for (i, s) in steps.iter().enumerate() {
            let p = format!("{base}[{i}]");
            for (k, c) in &s.capture {
                if c.appends() {
                    out.push((k.clone(), format!("{p}.capture.{k}")));
                }
            }
            for (b, block) in s.kind.blocks() {
                appends(block, &format!("{p}.{b}"), out);
            }
        }
    }
    let mut app = Vec::new();
    appends(&spec.steps, "steps", &mut app);
    for (name, at) in app {
        let vals = spec
            .vars
            .get(&name)
            .into_iter()
            .chain(spec.cases.iter().filter_map(|c| c.vars.get(&name)));
        for v in vals {
            if !v.is_array() && !(v.as_str().is_some_and(is_template)) {
                out.push((
                    index.get(&at),
                    format!("capture `{name}` appends to a list, but the variable `{name}` is {v}"),
                    Some(format!(
                        "start it as a list (`{name}: []`) or leave it undefined"
                    )),
                ));
            }
        }
    }

    // Every templated string: syntax, filters/tests/methods, and variables defined at that point.
    let regions = scope_regions(spec, target_vars);
    for s in &index.scalars {
        let expression = is_expression(s);
        if !expression && !is_template(&s.value) {
            continue;
        }
        let usage = match lint(&s.value, expression) {
            Err(e) => {
                out.push((s.pos, format!("bad template `{}`: {e}", s.value), None));
                continue;
            }
            Ok(u) => u,
        };
        for p in usage.problems {
            out.push((s.pos, format!("{p} in `{}`", s.value), None));
        }
        // Titles, descriptions and case names are shown as written, never rendered.
        out.extend(undefined_names(
            &regions,
            &s.path,
            s,
            &usage.names,
            Optional::Refused,
        ));
    }
    // Rendering constant templates runs whatever was found above; a place already reported
    // (a template that does not parse, an undefined name) is not reported again.
    let spoken: HashSet<(u32, u32)> = out.iter().map(|p| (p.0.line, p.0.col)).collect();
    let mut rendered = Vec::new();
    let sizes = static_evaluation(spec, index, &mut rendered);
    rendered.extend(loop_runs(spec, index, &sizes));
    out.extend(
        rendered
            .into_iter()
            .filter(|p| !spoken.contains(&(p.0.line, p.0.col))),
    );
    out.sort_by_key(|p| (p.0.line, p.0.col));
    out.dedup();
    out
}

/// The scalar is an expression (`expr`, `when`, a plain `while`), not a template.
fn is_expression(s: &ScalarAt) -> bool {
    s.path.ends_with(".expr")
        || s.path.ends_with(".when")
        || (s.path.ends_with(".repeat.while") && !is_template(&s.value))
}

/// The names `s` reads that are not defined where it sits (`path`, in the spec's own path
/// space): the innermost region holding it decides.
fn undefined_names(
    regions: &Regions,
    path: &str,
    s: &ScalarAt,
    names: &HashSet<String>,
    optional: Optional,
) -> Vec<Problem> {
    let Some(known) = innermost(regions, path) else {
        return Vec::new();
    };
    let mut names: Vec<&String> = names.iter().collect();
    names.sort();
    names
        .into_iter()
        .filter(|n| {
            optional == Optional::Refused
                || !(known.guards.contains(*n) || guards_itself(&s.value, n))
        })
        .filter_map(|n| known.problem(n, &s.value))
        .map(|(m, hint)| (s.pos, m, hint))
        .collect()
}

/// Whether a template may read a name defined nowhere when it guards it itself
/// (`patch | default({})`, `when: patch is defined`).
#[derive(Clone, Copy, PartialEq)]
enum Optional {
    /// In a spec every name is defined somewhere: one that is not is a typo.
    Refused,
    /// A fragment's optional parameter: the including spec may set it or not.
    Guarded,
}

/// The variables of included fragments, checked at each `include:` by the rules of the spec's
/// own templates and reported at the fragment's own file:line:col. (Their syntax was checked
/// when they were read.) A fragment included by two specs is checked in each. Each comes with
/// the line of the spec's `include:` that leads to it.
fn fragment_variables(
    spec: &Spec,
    target_vars: &[String],
    fragments: &[Fragment],
) -> Vec<(u32, Diagnostic)> {
    if fragments.is_empty() {
        return Vec::new();
    }
    let regions = scope_regions(spec, target_vars);
    let mut out = Vec::new();
    for f in fragments {
        let mut problems = Vec::new();
        for s in &f.index.scalars {
            let expression = is_expression(s);
            if !expression && !is_template(&s.value) {
                continue;
            }
            let Ok(usage) = lint(&s.value, expression) else {
                continue;
            };
            let path = format!("{}{}", f.at, s.path);
            problems.extend(undefined_names(
                &regions,
                &path,
                s,
                &usage.names,
                Optional::Guarded,
            ));
        }
        problems.sort_by_key(|p| (p.0.line, p.0.col));
        problems.dedup();
        out.extend(problems.into_iter().map(|(pos, m, hint)| {
            let d = Diagnostic::new(
                &f.display,
                pos,
                format!("{m} (included at {})", f.included_at),
            )
            .with_hint(hint)
            .with_source(&f.text);
            (f.site_line, d)
        }));
    }
    out
}

/// Keys whose (rendered) value is a duration.
const DURATION_KEYS: &[&str] = &[
    "sleep",
    "timeout",
    "interval",
    "ramp_up",
    "deadline",
    "graceful_stop",
    "max_elapsed",
];

/// Names every string inside a value reads (None: a string is not a valid template).
fn value_names(v: &serde_json::Value, out: &mut HashSet<String>) -> bool {
    match v {
        serde_json::Value::String(s) if is_template(s) => match analyse(s, false) {
            Ok(n) => {
                out.extend(n);
                true
            }
            Err(_) => false,
        },
        serde_json::Value::Array(a) => a.iter().all(|x| value_names(x, out)),
        serde_json::Value::Object(m) => m.values().all(|x| value_names(x, out)),
        _ => true,
    }
}

/// Templates that depend only on what is known before the run (spec and case vars that are
/// constants, functions such as `now()`, `focus_time()`, `range()`) are rendered by `validate`:
/// a bad time format, an offset out of range, a runaway loop or a templated duration that is
/// not one is found before anything is sent.
///
/// Returns the lengths of the templated `foreach` lists it could render, by path (the largest
/// over the cases), for [`loop_runs`].
fn static_evaluation(
    spec: &Spec,
    index: &PositionIndex,
    out: &mut Vec<Problem>,
) -> HashMap<String, usize> {
    let mut sizes = HashMap::new();
    use crate::template::Scope;
    use serde_json::json;
    let mut base = Scope::default();
    base.set("spec", json!({"id": spec.id, "title": spec.title}));
    let mut known: HashSet<String> = BUILTIN_FUNCS.iter().map(|s| s.to_string()).collect();
    known.insert("spec".into());
    let render_vars = |scope: &mut Scope,
                       known: &mut HashSet<String>,
                       vars: &crate::spec::VarMap,
                       base_path: &str,
                       out: &mut Vec<Problem>| {
        for (k, v) in vars {
            let mut names = HashSet::new();
            if !value_names(v, &mut names) || !names.is_subset(known) {
                continue;
            }
            match scope.render_value(v) {
                Ok(r) => {
                    scope.set(k.clone(), r);
                    known.insert(k.clone());
                }
                Err(e) => out.push((
                    index.get(&format!("{base_path}.{k}")),
                    format!("var `{k}` cannot be rendered: {e}"),
                    None,
                )),
            }
        }
    };
    render_vars(&mut base, &mut known, &spec.vars, "vars", out);
    let mut scopes: Vec<(Scope, HashSet<String>)> = Vec::new();
    let running: Vec<(usize, &crate::spec::Case)> = spec
        .cases
        .iter()
        .enumerate()
        .filter(|(_, c)| c.skip.is_none())
        .collect();
    if spec.cases.is_empty() {
        let mut sc = base.clone();
        sc.set("case", json!({"name": spec.title}));
        let mut k = known.clone();
        k.insert("case".into());
        scopes.push((sc, k));
    }
    for (i, c) in running {
        let mut sc = base.clone();
        sc.set("case", json!({"name": c.name}));
        let mut k = known.clone();
        k.insert("case".into());
        render_vars(&mut sc, &mut k, &c.vars, &format!("cases[{i}].vars"), out);
        scopes.push((sc, k));
    }
    // A captured name has its run-time value only then.
    let mut captured = Vec::new();
    all_captures(&spec.steps, "steps", &mut captured);
    all_captures(&spec.cleanup, "cleanup", &mut captured);
    for (_, known) in scopes.iter_mut() {
        for (c, _) in &captured {
            known.remove(c);
        }
    }
    for s in &index.scalars {
        if !(s.path.starts_with("steps") || s.path.starts_with("cleanup")) {
            continue;
        }
        let expression = s.path.ends_with(".expr")
            || s.path.ends_with(".when")
            || (s.path.ends_with(".repeat.while") && !is_template(&s.value));
        if !expression && !is_template(&s.value) {
            continue;
        }
        let Ok(names) = analyse(&s.value, expression) else {
            continue;
        };
        let key = s.path.rsplit('.').next().unwrap_or("");
        for (scope, known) in &scopes {
            if !names.is_subset(known) {
                continue;
            }
            let result = if expression {
                scope.eval(&s.value).map(|_| ())
            } else {
                scope
                    .render_value(&serde_json::Value::String(s.value.clone()))
                    .map_err(|e| e.message)
                    .and_then(|v| {
                        if (key == "count" || key == "concurrency") && s.path.contains(".fanout.") {
                            let n = v
                                .as_u64()
                                .or_else(|| v.as_str().and_then(|t| t.trim().parse().ok()));
                            match n {
                                None => Err(format!(
                                    "fanout `{key}` rendered to {v}, not a whole number"
                                )),
                                Some(n) if n > crate::spec::MAX_FANOUT => Err(format!(
                                    "fanout `{key}` {n} is too large: at most {}",
                                    crate::spec::MAX_FANOUT
                                )),
                                Some(_) => Ok(()),
                            }
                        } else if DURATION_KEYS.contains(&key) {
                            let text = match &v {
                                serde_json::Value::String(t) => t.clone(),
                                other => format!("{other}s"),
                            };
                            crate::spec::parse_duration(&text).map(|_| ())
                        } else {
                            Ok(())
                        }
                    })
                    .map_err(|m| crate::template::TemplateError { message: m })
            };
            if let Err(e) = result {
                out.push((s.pos, format!("`{}` fails: {}", s.value, e.message), None));
                break;
            }
            if !expression && s.path.ends_with(".foreach.items") {
                let v = serde_json::Value::String(s.value.clone());
                if let Ok(serde_json::Value::Array(a)) = scope.render_value(&v) {
                    let n = sizes.entry(s.path.clone()).or_insert(0);
                    *n = (*n).max(a.len());
                }
            }
        }
    }
    sizes
}

/// Loops whose sizes are known before the run (written-out lists, templates of constants such
/// as `range(1500)`) may not multiply to more than [`crate::spec::MAX_LOOP_RUNS`] runs: the diagnostic
/// is at the innermost `foreach` that crosses it. `repeat` counts only at run time: its `max`
/// is a bound it seldom reaches, not its size.
fn loop_runs(spec: &Spec, index: &PositionIndex, sizes: &HashMap<String, usize>) -> Vec<Problem> {
    // The tree is at most MAX_NESTING deep (checked while includes were resolved).
    fn walk(
        steps: &[Step],
        base: &str,
        outer: u64,
        index: &PositionIndex,
        sizes: &HashMap<String, usize>,
        out: &mut Vec<Problem>,
    ) {
        for (i, s) in steps.iter().enumerate() {
            let p = format!("{base}[{i}]");
            let mut runs = outer;
            if let StepKind::Foreach(f) = &s.kind {
                let at = format!("{p}.foreach.items");
                let n = match &f.items {
                    serde_json::Value::Array(a) => Some(a.len()),
                    _ => sizes.get(&at).copied(),
                };
                if let Some(n) = n {
                    runs = outer.saturating_mul(n as u64);
                    if runs > crate::spec::MAX_LOOP_RUNS {
                        out.push((
                            index.get(&at),
                            format!(
                                "this `foreach` would run {runs} times in all ({n} items, times {outer} runs of the loops around it); at most {} loop runs are allowed per case",
                                crate::spec::MAX_LOOP_RUNS
                            ),
                            Some("loop over fewer items, or split the work into several cases or specs".into()),
                        ));
                        continue;
                    }
                }
            }
            for (b, block) in s.kind.blocks() {
                walk(block, &format!("{p}.{b}"), runs, index, sizes, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&spec.steps, "steps", 1, index, sizes, &mut out);
    walk(&spec.cleanup, "cleanup", 1, index, sizes, &mut out);
    out
}

/// The expression tests whether `n` is defined (`n is defined`, `n is undefined`, `n | default`).
fn guards_itself(src: &str, n: &str) -> bool {
    let compact: String = src.split_whitespace().collect::<Vec<_>>().join(" ");
    [
        format!("{n} is defined"),
        format!("{n} is not defined"),
        format!("{n} is undefined"),
        format!("{n} is not undefined"),
        format!("{n} | default"),
        format!("{n} | d("),
    ]
    .iter()
    .any(|g| {
        compact.contains(g.as_str()) || compact.replace(" |", "|").contains(&g.replace(" |", "|"))
    })
}

/// What is known at each region of a spec, by path (`steps[2]`, `vars.base`).
type Regions = HashMap<String, Known>;

/// The innermost region holding `path`: its closest ancestor that is one (a lookup per level,
/// not a scan of every region: a spec's scalars times its regions was quadratic in its steps).
fn innermost<'r>(regions: &'r Regions, path: &str) -> Option<&'r Known> {
    let mut p = path;
    while !p.is_empty() {
        if let Some(k) = regions.get(p) {
            return Some(k);
        }
        p = &p[..p.rfind(['.', '[']).unwrap_or(0)];
    }
    None
}

/// The names a template may use at one place of a spec.
#[derive(Debug, Clone, Default)]
/// Persistent (`imbl`): a clone per step region shares its structure with the others.
struct Known {
    defined: imbl::HashSet<String>,
    /// Defined only if an earlier step ran (name -> why not certain).
    maybe: imbl::HashMap<String, String>,
    /// Not defined at this point (name -> why).
    not_yet: imbl::HashMap<String, String>,
    /// Names the `when` of this step (or of an enclosing fan-out) mentions: they guard `maybe` names.
    guards: imbl::HashSet<String>,
}

impl Known {
    fn problem(&self, n: &str, src: &str) -> Option<(String, Option<String>)> {
        if self.defined.contains(n) {
            return None;
        }
        if let Some(why) = self.maybe.get(n) {
            let guarded = self.guards.contains(n) || guards_itself(src, n);
            if guarded {
                return None;
            }
            return Some((
                format!("`{n}` may be undefined in `{src}`: {why}"),
                Some(format!("guard the step with `when: {n} is defined`")),
            ));
        }
        if let Some(why) = self.not_yet.get(n) {
            return Some((format!("`{n}` is not defined yet in `{src}`: {why}"), None));
        }
        let call = format!("{n}(");
        if src.contains(&call) && !src.contains(&format!("{n} ")) {
            return Some((
                format!("unknown function `{n}` in `{src}`"),
                did_you_mean(n, BUILTIN_FUNCS.iter().copied())
                    .or_else(|| Some(format!("functions: {}", BUILTIN_FUNCS.join(", ")))),
            ));
        }
        let mut cands: Vec<&str> = self
            .defined
            .iter()
            .chain(self.maybe.keys())
            .map(String::as_str)
            .collect();
        cands.sort();
        let hint = if n == "index" || n == "iteration" {
            Some(format!("`{n}` exists only inside a `fanout` block"))
        } else {
            did_you_mean(n, cands.iter().copied()).or_else(|| {
                Some("define it under `vars`, in a case's `vars`, in a target's `vars` (focusqa.yaml), or `capture` it in an earlier step".into())
            })
        };
        Some((format!("undefined variable `{n}` in `{src}`"), hint))
    }
}

/// For every part of the spec, what is defined there, in the order things happen at run time:
/// target vars, spec vars (in order), case vars, then each step's captures for the steps after it.
fn scope_regions(spec: &Spec, target_vars: &[String]) -> Regions {
    let mut regions = Vec::new();
    let mut base = Known::default();
    base.defined
        .extend(["env", "target", "spec", "case"].map(String::from));
    base.defined.extend(target_vars.iter().cloned());
    base.defined
        .extend(BUILTIN_FUNCS.iter().map(|s| s.to_string()));
    let mut captures: Vec<(String, String)> = Vec::new();
    all_captures(&spec.steps, "steps", &mut captures);
    all_captures(&spec.cleanup, "cleanup", &mut captures);
    let case_names: HashSet<&String> = spec.cases.iter().flat_map(|c| c.vars.keys()).collect();

    // Spec vars: each may use the target's and the earlier ones.
    let spec_names: Vec<&String> = spec.vars.keys().collect();
    for (i, k) in spec_names.iter().enumerate() {
        let mut r = base.clone();
        r.defined
            .extend(spec_names[..i].iter().map(|s| s.to_string()));
        for later in &spec_names[i..] {
            r.not_yet.insert(
                later.to_string(),
                format!("spec vars are set in order and `{later}` comes at or after `{k}`"),
            );
        }
        for c in &case_names {
            if !r.defined.contains(*c) {
                r.not_yet.insert(
                    c.to_string(),
                    format!("`{c}` is a case var, and case vars are set after the spec's `vars`"),
                );
            }
        }
        for (c, p) in &captures {
            r.not_yet.entry(c.clone()).or_insert(format!(
                "`{c}` is captured by {p}; spec vars are set before any step runs"
            ));
        }
        regions.push((format!("vars.{k}"), r));
    }
    let mut after_vars = base.clone();
    after_vars.defined.extend(spec.vars.keys().cloned());

    // Case vars: spec vars and the case's earlier vars, never captures.
    for (ci, case) in spec.cases.iter().enumerate() {
        let names: Vec<&String> = case.vars.keys().collect();
        for (i, k) in names.iter().enumerate() {
            let mut r = after_vars.clone();
            r.defined.extend(names[..i].iter().map(|s| s.to_string()));
            for (c, p) in &captures {
                if !r.defined.contains(c) {
                    r.not_yet.insert(
                        c.clone(),
                        format!("`{c}` is captured by {p}; case vars are set before any step runs"),
                    );
                }
            }
            for later in &names[i..] {
                if !r.defined.contains(*later) {
                    r.not_yet.insert(
                        later.to_string(),
                        format!("case vars are set in order and `{later}` comes at or after `{k}`"),
                    );
                }
            }
            regions.push((format!("cases[{ci}].vars.{k}"), r));
        }
    }

    // Steps: spec vars plus the vars every case that runs defines.
    let mut steps_known = after_vars.clone();
    let running: Vec<&crate::spec::Case> = spec.cases.iter().filter(|c| c.skip.is_none()).collect();
    if let Some(first) = running.first() {
        for k in first.vars.keys() {
            if running.iter().all(|c| c.vars.contains_key(k)) {
                steps_known.defined.insert(k.clone());
            }
        }
    }
    for c in &case_names {
        if !steps_known.defined.contains(*c) {
            let missing = running
                .iter()
                .find(|x| !x.vars.contains_key(*c))
                .map(|x| x.name.clone())
                .unwrap_or_default();
            steps_known.not_yet.insert(
                c.to_string(),
                format!("only some cases define it (not case `{missing}`)"),
            );
        }
    }
    for (c, p) in &captures {
        steps_known
            .not_yet
            .entry(c.clone())
            .or_insert(format!("it is captured later, by {p}"));
    }
    let after_steps = step_regions(&spec.steps, "steps", steps_known.clone(), &mut regions);
    // Cleanup sees every capture of the steps (documented: captures are variables for cleanup).
    // After a failure some may be missing at run time; `when: x is defined` guards against that.
    let mut cleanup_known = steps_known;
    for name in after_steps
        .defined
        .into_iter()
        .chain(after_steps.maybe.keys().cloned().collect::<Vec<_>>())
    {
        cleanup_known.not_yet.remove(&name);
        cleanup_known.defined.insert(name);
    }
    step_regions(&spec.cleanup, "cleanup", cleanup_known, &mut regions);
    // A later region of the same path wins, as the longest-prefix scan it replaces did.
    regions.into_iter().collect()
}

fn all_captures(steps: &[Step], base: &str, out: &mut Vec<(String, String)>) {
    for (i, s) in steps.iter().enumerate() {
        // Spelt only for a step that captures or holds steps: most steps do neither.
        let p = || format!("{base}[{i}]");
        for k in s.capture.keys() {
            out.push((k.clone(), format!("`{}` ({})", p(), s.label())));
        }
        for (b, block) in s.kind.blocks() {
            all_captures(block, &format!("{}.{b}", p()), out);
        }
        if let StepKind::Include(inc) = &s.kind {
            all_captures(&inc.steps, &format!("{} (in {})", p(), inc.display), out);
        }
    }
}

/// Regions of a list of steps run in order; returns what is known after the last one.
fn step_regions(
    steps: &[Step],
    base: &str,
    mut known: Known,
    regions: &mut Vec<(String, Known)>,
) -> Known {
    for (i, step) in steps.iter().enumerate() {
        let p = format!("{base}[{i}]");
        let mut r = known.clone();
        if let Some(w) = &step.when {
            let names = analyse(w, true).unwrap_or_default();
            r.guards
                .extend(names.into_iter().filter(|n| guards_itself(w, n)));
        }
        for k in step.capture.keys() {
            if !r.defined.contains(k) && !r.maybe.contains_key(k) {
                r.not_yet.insert(
                    k.clone(),
                    "it is captured by this very step, after its request and `expect`; use it in a later step".into(),
                );
            }
        }
        regions.push((p.clone(), r.clone()));
        if let StepKind::Fanout(f) = &step.kind {
            let mut inner = known.clone();
            inner.guards = r.guards.clone();
            inner.defined.insert("index".into());
            inner.defined.insert("iteration".into());
            let after = step_regions(
                &f.steps,
                &format!("{p}.fanout.steps"),
                inner.clone(),
                regions,
            );
            let mut cl = inner;
            for n in after
                .defined
                .into_iter()
                .chain(after.maybe.into_iter().map(|(k, _)| k))
            {
                cl.not_yet.remove(&n);
                cl.defined.insert(n);
            }
            step_regions(&f.cleanup, &format!("{p}.fanout.cleanup"), cl, regions);
        }
        if let StepKind::Foreach(f) = &step.kind {
            // The item (and `index`) exist inside the block only.
            let mut inner = known.clone();
            inner.guards = r.guards.clone();
            inner.not_yet.remove(&f.as_);
            inner.defined.insert(f.as_.clone());
            inner.defined.insert("index".into());
            let after = step_regions(&f.steps, &format!("{p}.foreach.steps"), inner, regions);
            // An empty list runs nothing: what the block captures may be missing afterwards
            // (unless the list is written out and not empty).
            let runs = matches!(&f.items, serde_json::Value::Array(a) if !a.is_empty());
            for n in after
                .defined
                .into_iter()
                .chain(after.maybe.into_iter().map(|(k, _)| k))
            {
                if n == f.as_ || n == "index" {
                    continue;
                }
                if runs {
                    known.not_yet.remove(&n);
                    known.maybe.remove(&n);
                    known.defined.insert(n);
                } else if !known.defined.contains(&n) {
                    known.not_yet.remove(&n);
                    known.maybe.insert(
                        n.clone(),
                        format!("it is captured inside the `foreach` at `{p}`, which runs nothing for an empty list"),
                    );
                }
            }
        }
        if let StepKind::Repeat(rep) = &step.kind {
            let mut inner = known.clone();
            inner.guards = r.guards.clone();
            // From the second run on, the body's captures of the previous run are there:
            // before their step they may be used when guarded (`page | default(0)`).
            let mut body = Vec::new();
            all_captures(&rep.steps, "", &mut body);
            for (n, _) in body {
                if !inner.defined.contains(&n) {
                    inner.not_yet.remove(&n);
                    inner.maybe.insert(
                        n.clone(),
                        format!(
                            "`{n}` is captured inside this `repeat` and missing in its first run"
                        ),
                    );
                }
            }
            let after = step_regions(&rep.steps, &format!("{p}.repeat.steps"), inner, regions);
            // `while` is checked after each run: it sees the run's captures.
            regions.push((format!("{p}.repeat.while"), after.clone()));
            // A repeat runs at least once.
            for n in after.defined {
                known.not_yet.remove(&n);
                known.maybe.remove(&n);
                known.defined.insert(n);
            }
            for (n, why) in after.maybe {
                if !known.defined.contains(&n) {
                    known.not_yet.remove(&n);
                    known.maybe.insert(n, why);
                }
            }
        }
        if let StepKind::Include(inc) = &step.kind {
            // The fragment's steps run here, in order: their templates see what is defined now.
            let mut inner = known.clone();
            inner.guards = r.guards.clone();
            step_regions(&inc.steps, &format!("{p}.include.steps"), inner, regions);
            let mut caps = Vec::new();
            all_captures(&inc.steps, "", &mut caps);
            for (n, _) in caps {
                known.not_yet.remove(&n);
                known.maybe.remove(&n);
                known.defined.insert(n);
            }
        }
        for k in step.capture.keys() {
            known.not_yet.remove(k);
            if step.when.is_some() {
                if !known.defined.contains(k) {
                    known.maybe.insert(
                        k.clone(),
                        format!(
                            "it is captured by `{p}`, which runs only `when: {}`",
                            step.when.as_deref().unwrap_or_default()
                        ),
                    );
                }
            } else {
                known.maybe.remove(k);
                known.defined.insert(k.clone());
            }
        }
    }
    known
}

fn check_steps(steps: &[Step], base: &str, index: &PositionIndex, out: &mut Vec<Problem>) {
    for (i, step) in steps.iter().enumerate() {
        let path = format!("{base}[{i}]");
        if let Some(e) = &step.expect {
            check_expect(e, &format!("{path}.expect"), index, out);
        }
        if let Some(req) = step.kind.request() {
            if let Some(n) = req
                .max_redirects
                .filter(|n| *n > crate::spec::MAX_REDIRECTS)
            {
                out.push((
                    index.get(&format!("{path}.{}.max_redirects", step.kind.name())),
                    format!(
                        "`max_redirects: {n}` is too many: at most {}",
                        crate::spec::MAX_REDIRECTS
                    ),
                    Some("a chain of redirects that long is a loop".into()),
                ));
            }
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
        if let Some(r) = step.kind.request().filter(|r| r.body_kinds().len() > 1) {
            out.push((
                index.get(&path.to_string()),
                format!(
                    "a request has at most one body, found {}",
                    r.body_kinds().join(" + ")
                ),
                Some(
                    "keep one of `json`, `body`, `body_base64`, `body_file`, `form`, `multipart`"
                        .into(),
                ),
            ));
        }
        match &step.kind {
            StepKind::Assert(checks) => {
                if checks.0.is_empty() {
                    out.push((
                        index.get(&format!("{path}.assert")),
                        "an `assert` step needs at least one check".into(),
                        None,
                    ));
                }
                for (j, c) in checks.0.iter().enumerate() {
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
                match &f.count {
                    Some(c) => check_count(c, "count", &format!("{path}.fanout.count"), index, out),
                    // Stages end the load on their own (k6's ramping arrival rate).
                    None if f.duration.is_none() && f.stages.is_empty() => out.push((
                        index.get(&format!("{path}.fanout")),
                        "a `fanout` needs a `count`, a `duration` (or `stages`), or both".into(),
                        Some(
                            "e.g. `count: 200`, or `duration: 10m` for a load that runs for a time"
                                .into(),
                        ),
                    )),
                    None => {}
                }
                if let Some(c) = &f.max_in_flight {
                    check_count(
                        c,
                        "max_in_flight",
                        &format!("{path}.fanout.max_in_flight"),
                        index,
                        out,
                    );
                }
                let rates =
                    f.rate
                        .iter()
                        .map(|r| (format!("{path}.fanout.rate"), r))
                        .chain(
                            f.stages.iter().enumerate().map(|(k, st)| {
                                (format!("{path}.fanout.stages[{k}].rate"), &st.rate)
                            }),
                        );
                for (key, r) in rates {
                    if !is_template(r) {
                        if let Err(e) = crate::spec::parse_rate(r) {
                            out.push((index.get(&key), e, None));
                        }
                    }
                }
                if f.graceful_stop.is_some() && f.duration.is_none() && f.stages.is_empty() {
                    out.push((
                        index.key(&format!("{path}.fanout.graceful_stop")),
                        "`graceful_stop` bounds what still runs when a load's `duration` (or its `stages`) ends: set one of them too".into(),
                        None,
                    ));
                }
                if f.rate.is_none() && f.stages.is_empty() && f.max_in_flight.is_some() {
                    out.push((
                        index.key(&format!("{path}.fanout.max_in_flight")),
                        "`max_in_flight` bounds an open-loop fan-out: set `rate` or `stages` too (a closed loop uses `concurrency`)".into(),
                        None,
                    ));
                }
                if let Some(c) = &f.concurrency {
                    check_count(
                        c,
                        "concurrency",
                        &format!("{path}.fanout.concurrency"),
                        index,
                        out,
                    );
                }
                let labels: Vec<String> = f.steps.iter().map(Step::label).collect();
                let captured: Vec<&String> =
                    f.steps.iter().flat_map(|s| s.capture.keys()).collect();
                for (j, t) in f.thresholds.iter().enumerate() {
                    // Templated thresholds are checked once rendered, at run time.
                    if is_template(t) {
                        continue;
                    }
                    let pos = index.get(&format!("{path}.fanout.thresholds[{j}]"));
                    use crate::spec::threshold::{Metric, Threshold};
                    match Threshold::parse(t) {
                        Err(e) => out.push((pos, e, None)),
                        Ok(Threshold::Unique(v)) if !captured.contains(&&v) => out.push((
                            pos,
                            format!("threshold `{t}`: no step of this fan-out captures `{v}`"),
                            did_you_mean(&v, captured.iter().map(|s| s.as_str())).or_else(|| {
                                Some(format!(
                                    "captured here: {}",
                                    if captured.is_empty() {
                                        "nothing".to_string()
                                    } else {
                                        captured
                                            .iter()
                                            .map(|c| format!("`{c}`"))
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    }
                                ))
                            }),
                        )),
                        Ok(Threshold::Compare {
                            metric: Metric::Latency { step, .. },
                            ..
                        }) if !labels.contains(&step) => out.push((
                            pos,
                            format!("threshold `{t}`: this fan-out has no step named `{step}`"),
                            did_you_mean(&step, labels.iter().map(String::as_str)).or_else(|| {
                                Some(format!(
                                    "its steps: {}",
                                    labels
                                        .iter()
                                        .map(|c| format!("`{c}`"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ))
                            }),
                        )),
                        Ok(_) => {}
                    }
                }
            }
            StepKind::Foreach(f) => {
                let at = format!("{path}.foreach");
                if f.steps.is_empty() {
                    out.push((
                        index.get(&at),
                        "a `foreach` needs at least one step".into(),
                        None,
                    ));
                }
                let valid = f
                    .as_
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && f.as_.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid || ["env", "target", "spec", "case", "index"].contains(&f.as_.as_str()) {
                    out.push((
                        index.get(&format!("{at}.as")),
                        format!("foreach `as: {}` must be a variable name (letters, digits, `_`) other than env, target, spec, case, index", f.as_),
                        None,
                    ));
                }
                match &f.items {
                    serde_json::Value::Array(_) => {}
                    serde_json::Value::String(t) if is_template(t) => {}
                    other => out.push((
                        index.get(&format!("{at}.items")),
                        format!("foreach `items` must be a list or a template rendering to one, found {other}"),
                        Some("e.g. `items: \"{{ job_ids }}\"` or `items: [a, b]`".into()),
                    )),
                }
                if let Some(c) = &f.concurrency {
                    check_count(c, "concurrency", &format!("{at}.concurrency"), index, out);
                }
                check_steps(&f.steps, &format!("{at}.steps"), index, out);
            }
            StepKind::Repeat(r) => {
                let at = format!("{path}.repeat");
                if r.steps.is_empty() {
                    out.push((
                        index.get(&at),
                        "a `repeat` needs at least one step".into(),
                        None,
                    ));
                }
                if r.max == 0 || r.max > crate::spec::MAX_REPEAT {
                    out.push((
                        index.get(&format!("{at}.max")),
                        format!(
                            "repeat `max` {} is out of range: 1 to {}",
                            r.max,
                            crate::spec::MAX_REPEAT
                        ),
                        None,
                    ));
                }
                if let Err(e) = lint(&r.while_, !is_template(&r.while_)) {
                    out.push((
                        index.get(&format!("{at}.while")),
                        format!("bad `while` condition `{}`: {e}", r.while_),
                        None,
                    ));
                }
                check_steps(&r.steps, &format!("{at}.steps"), index, out);
            }
            StepKind::Kube(k) => {
                use crate::spec::KubeVerb::*;
                if k.op == Get && k.name.is_none() {
                    out.push((
                        index.get(&format!("{path}.kube")),
                        "kube `get` needs a `name`".to_string(),
                        Some(
                            "use `op: list` (or `op: wait`) with `labels:` to select by label"
                                .into(),
                        ),
                    ));
                }
                if k.count.is_some() && (k.op != Wait || k.name.is_some()) {
                    out.push((
                        index.get(&format!("{path}.kube.count")),
                        format!(
                            "`count` applies to `op: wait` by selector, not to `op: {}`{}",
                            k.op.as_str(),
                            if k.name.is_some() { " by name" } else { "" }
                        ),
                        Some(
                            "drop `count`, or wait on `labels:`/`fields:` instead of a `name`"
                                .into(),
                        ),
                    ));
                }
                if let Some(crate::spec::Count::N(n)) = &k.count {
                    if *n > crate::spec::MAX_WAIT_COUNT {
                        out.push((
                            index.get(&format!("{path}.kube.count")),
                            format!(
                                "`count: {n}` is more than the maximum of {} objects a wait checks",
                                crate::spec::MAX_WAIT_COUNT
                            ),
                            None,
                        ));
                    }
                }
                if matches!(k.op, Wait | Delete | Absent)
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
    if let Some(crate::spec::StatusExpect::Text(t)) = &e.status {
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
        if let crate::spec::HeaderExpect::Check(c) = h {
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
    if let Some(l) = &c.length {
        let lp = format!("{path}.length");
        match l {
            crate::spec::LengthCheck::Exact(v) => check_number(v, "length", true, &lp, index, out),
            crate::spec::LengthCheck::Compare(cmp) => {
                for (k, v) in [
                    ("equals", &cmp.equals),
                    ("gt", &cmp.gt),
                    ("gte", &cmp.gte),
                    ("lt", &cmp.lt),
                    ("lte", &cmp.lte),
                ] {
                    if let Some(v) = v {
                        check_number(v, "length", true, &format!("{lp}.{k}"), index, out);
                    }
                }
            }
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

/// A number (a whole one when `whole`) or a template rendering to one.
fn check_number(
    v: &serde_json::Value,
    what: &str,
    whole: bool,
    path: &str,
    index: &PositionIndex,
    out: &mut Vec<Problem>,
) {
    let ok = match v {
        serde_json::Value::Number(n) => !whole || n.as_u64().is_some(),
        serde_json::Value::String(s) => is_template(s) || s.trim().parse::<u64>().is_ok(),
        _ => false,
    };
    if !ok {
        out.push((
            index.get(path),
            format!(
                "`{what}` must be a {} or a template, not {v}",
                if whole { "whole number" } else { "number" }
            ),
            Some(format!(
                "write e.g. `{what}: 3`, `{what}: {{gte: 1}}` or `{what}: \"{{{{ n }}}}\"`"
            )),
        ));
    }
}

/// A fan-out count: a whole number up to [`crate::spec::MAX_FANOUT`], or a template.
fn check_count(
    c: &crate::spec::Count,
    what: &str,
    path: &str,
    index: &PositionIndex,
    out: &mut Vec<Problem>,
) {
    let n = match c {
        crate::spec::Count::N(n) => Some(*n),
        crate::spec::Count::Template(t) if is_template(t) => None,
        crate::spec::Count::Template(t) => match t.trim().parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                out.push((
                    index.get(path),
                    format!("fanout `{what}` must be a whole number or a template, not `{t}`"),
                    Some(format!(
                        "write e.g. `{what}: 200` or `{what}: \"{{{{ jobs }}}}\"`"
                    )),
                ));
                None
            }
        },
    };
    if let Some(n) = n {
        if n > crate::spec::MAX_FANOUT {
            out.push((
                index.get(path),
                format!(
                    "fanout `{what}` {n} is too large: at most {}",
                    crate::spec::MAX_FANOUT
                ),
                None,
            ));
        }
        if what == "concurrency" && n == 0 {
            out.push((
                index.get(path),
                "fanout `concurrency` must be at least 1".into(),
                None,
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

#[cfg(test)]
mod tests {
    //! The loader's checks, one by one: each refuses a small spec at its exact `line:col`, and
    //! the same spec with the problem fixed loads.

    use super::*;

    fn load(text: &str) -> Result<Spec, Vec<Diagnostic>> {
        load_text("t.yaml", text, None, &[])
    }

    fn shown(diags: &[Diagnostic]) -> String {
        diags
            .iter()
            .map(|d| {
                format!(
                    "{}:{}:{}: {} [{:?}]",
                    d.file, d.pos.line, d.pos.col, d.message, d.hint
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The spec is refused with exactly one diagnostic, at `line:col`, whose message holds `part`.
    #[track_caller]
    fn refused(text: &str, (line, col): (u32, u32), part: &str) -> Diagnostic {
        let diags = load(text).expect_err("the spec should be refused");
        refused_in(diags, (line, col), part)
    }

    #[track_caller]
    fn refused_in(diags: Vec<Diagnostic>, (line, col): (u32, u32), part: &str) -> Diagnostic {
        assert!(
            diags.len() == 1
                && diags[0].pos == Pos { line, col }
                && diags[0].message.contains(part),
            "expected one diagnostic at {line}:{col} with `{part}`, got:\n{}",
            shown(&diags)
        );
        diags.into_iter().next().unwrap()
    }

    #[track_caller]
    fn accepted(text: &str) -> Spec {
        load(text).unwrap_or_else(|d| panic!("the spec should load, got:\n{}", shown(&d)))
    }

    // ---- the spec as a whole ----

    #[test]
    fn an_empty_text_is_an_empty_spec() {
        refused("  \n\n", (1, 1), "the spec file is empty");
        refused(
            "# only a comment\n",
            (1, 1),
            "a spec is a mapping with `id`, `title` and `steps`",
        );
    }

    #[test]
    fn a_spec_id_with_a_space_is_refused() {
        let ok = "id: a.b\ntitle: t\nsteps:\n  - sleep: 1ms\n";
        refused(
            &ok.replace("a.b", "a b"),
            (1, 5),
            "must be non-empty and contain no spaces",
        );
        assert_eq!(accepted(ok).id, "a.b");
    }

    #[test]
    fn more_retries_than_allowed_are_refused() {
        let ok = "id: a\ntitle: t\nretries: 10\nsteps:\n  - sleep: 1ms\n";
        let d = refused(&ok.replace("10", "11"), (3, 10), "is too many: at most 10");
        assert!(d.hint.unwrap().contains("fix the cause"));
        accepted(ok);
    }

    #[test]
    fn a_spec_needs_at_least_one_step() {
        refused("id: a\ntitle: t\nsteps: []\n", (3, 1), "at least one step");
        accepted("id: a\ntitle: t\nsteps: [{sleep: 1ms}]\n");
    }

    #[test]
    fn case_names_are_unique() {
        let ok = "id: a\ntitle: t\ncases:\n  - name: one\n  - name: two\nsteps:\n  - sleep: 1ms\n";
        refused(
            &ok.replace("two", "one"),
            (5, 11),
            "duplicate case name `one`",
        );
        accepted(ok);
    }

    #[test]
    fn secrets_name_a_variable_or_a_capture_of_the_spec() {
        let ok = "id: a\ntitle: t\nvars: {token: x}\nsecrets: [token]\nsteps:\n  - sleep: 1ms\n";
        let d = refused(
            &ok.replace("[token]", "[tokn]"),
            (4, 11),
            "`secrets` names `tokn`",
        );
        assert!(d.hint.unwrap().contains("token"), "a did-you-mean hint");
        accepted(ok);
        // A target's variable counts too.
        let target = ok.replace("vars: {token: x}\n", "");
        assert!(load_text("t.yaml", &target, None, &["token".into()]).is_ok());
    }

    #[test]
    fn an_append_capture_needs_a_list_variable() {
        let ok = "id: a\ntitle: t\nvars: {ids: []}\nsteps:\n  - http: {path: /x}\n    capture: {ids: {path: $.id, append: true}}\n";
        refused(
            &ok.replace("[]", "0"),
            (6, 21),
            "appends to a list, but the variable `ids` is 0",
        );
        accepted(ok);
    }

    // ---- YAML: duplicate keys, second documents ----

    #[test]
    fn a_duplicate_key_stops_the_load_at_the_second_key() {
        let ok = "id: a\ntitle: t\nsteps:\n  - http: {path: /x}\n    expect: {status: 200}\n";
        let dup = format!("{ok}    expect: {{status: 201}}\n");
        refused(&dup, (6, 5), "duplicate key `expect`");
        accepted(ok);
    }

    #[test]
    fn a_second_document_is_refused() {
        let ok = "id: a\ntitle: t\nsteps:\n  - sleep: 1ms\n";
        refused(&format!("{ok}---\n{ok}"), (5, 1), "one YAML document");
        accepted(&format!("---\n{ok}"));
    }

    #[test]
    fn a_grpc_step_is_out_of_the_agreed_scope() {
        let text = "id: a\ntitle: t\nsteps:\n  - grpc: {service: x}\n";
        let d = refused(text, (4, 5), "a `grpc` step is not allowed");
        assert!(
            d.message.contains("out of the agreed test scope"),
            "{}",
            d.message
        );
        accepted(&text.replace("grpc: {service: x}", "http: {path: /x}"));
    }

    // ---- variables: defined in run order ----

    /// A spec whose steps are `steps` (indented as list items under `steps:`).
    fn with_steps(steps: &str) -> String {
        format!("id: a\ntitle: t\nsteps:\n{steps}")
    }

    #[test]
    fn a_capture_used_in_its_own_step_is_not_defined_yet() {
        let own = with_steps(
            "  - http: {path: /x}\n    capture: {s: $.status}\n    expect:\n      json:\n        - {path: $.status, equals: \"{{ s }}\"}\n",
        );
        refused(&own, (8, 36), "captured by this very step");
        accepted(&with_steps(
            "  - http: {path: /x}\n    capture: {s: $.status}\n  - http: {path: /y}\n    expect:\n      json:\n        - {path: $.status, equals: \"{{ s }}\"}\n",
        ));
    }

    #[test]
    fn a_capture_used_before_the_step_that_takes_it_is_not_defined_yet() {
        let uses = "  - http: {path: \"/x/{{ job }}\"}\n";
        let takes = "  - http: {path: /new}\n    capture: {job: $.id}\n";
        let d = refused(
            &with_steps(&format!("{uses}{takes}")),
            (4, 18),
            "`job` is not defined yet",
        );
        assert!(
            d.message.contains("it is captured later, by `steps[1]`"),
            "{}",
            d.message
        );
        accepted(&with_steps(&format!("{takes}{uses}")));
    }

    #[test]
    fn spec_vars_are_set_in_order() {
        let late = "id: a\ntitle: t\nvars:\n  url: \"/m/{{ n }}\"\n  n: 42\nsteps:\n  - http: {path: \"{{ url }}\"}\n";
        refused(
            late,
            (4, 8),
            "spec vars are set in order and `n` comes at or after `url`",
        );
        accepted("id: a\ntitle: t\nvars:\n  n: 42\n  url: \"/m/{{ n }}\"\nsteps:\n  - http: {path: \"{{ url }}\"}\n");
    }

    #[test]
    fn a_case_var_that_only_some_cases_define_is_not_defined_in_the_steps() {
        let some = "id: a\ntitle: t\ncases:\n  - name: one\n    vars: {n: 1}\n  - name: two\nsteps:\n  - http: {path: \"/m/{{ n }}\"}\n";
        refused(some, (8, 18), "only some cases define it (not case `two`)");
        accepted(&some.replace("- name: two\n", "- name: two\n    vars: {n: 2}\n"));
        // A skipped case does not count.
        accepted(&some.replace("- name: two\n", "- name: two\n    skip: later\n"));
    }

    #[test]
    fn case_vars_are_set_before_any_step_captures() {
        let text = "id: a\ntitle: t\ncases:\n  - name: one\n    vars: {u: \"/m/{{ job }}\"}\nsteps:\n  - http: {path: /new}\n    capture: {job: $.id}\n";
        refused(text, (5, 15), "case vars are set before any step runs");
        accepted(&text.replace("{{ job }}", "{{ spec.id }}"));
    }

    #[test]
    fn index_and_iteration_exist_only_inside_a_fanout() {
        let d = refused(
            &with_steps("  - http: {path: \"/m/{{ index }}\"}\n"),
            (4, 18),
            "undefined variable `index`",
        );
        assert_eq!(
            d.hint.as_deref(),
            Some("`index` exists only inside a `fanout` block")
        );
        refused(
            &with_steps("  - sleep: \"{{ iteration }}ms\"\n"),
            (4, 12),
            "undefined variable `iteration`",
        );
        accepted(&with_steps(
            "  - fanout:\n      count: 2\n      steps:\n        - http: {path: \"/m/{{ index }}/{{ iteration }}\"}\n",
        ));
    }

    #[test]
    fn a_foreach_item_is_known_only_inside_its_block() {
        let block = "  - foreach:\n      items: [a, b]\n      as: job\n      steps:\n        - http: {path: \"/j/{{ job }}\"}\n";
        let after = "  - http: {path: \"/j/{{ job }}\"}\n";
        refused(
            &with_steps(&format!("{block}{after}")),
            (9, 18),
            "undefined variable `job`",
        );
        accepted(&with_steps(block));
    }

    #[test]
    fn a_capture_of_a_conditional_step_may_be_undefined_unless_guarded() {
        let text = "id: a\ntitle: t\nvars: {flag: true}\nsteps:\n  - http: {path: /x}\n    when: flag\n    capture: {c: $.c}\n  - http: {path: \"/c/{{ c }}\"}\n";
        let d = refused(text, (8, 18), "`c` may be undefined");
        assert_eq!(
            d.hint.as_deref(),
            Some("guard the step with `when: c is defined`")
        );
        accepted(&format!("{text}    when: c is defined\n"));
        accepted(&text.replace("{{ c }}", "{{ c | default(0) }}"));
    }

    #[test]
    fn a_name_defined_nowhere_gets_a_did_you_mean() {
        let text =
            "id: a\ntitle: t\nvars: {base_url: /b}\nsteps:\n  - http: {path: \"{{ base_ur }}\"}\n";
        let d = refused(text, (5, 18), "undefined variable `base_ur`");
        assert!(d.hint.unwrap().contains("base_url"));
        accepted(&text.replace("base_ur }}", "base_url }}"));
    }

    // ---- templates: linted, and rendered at load when constant ----

    #[test]
    fn an_unknown_function_is_refused_with_a_did_you_mean() {
        let text = with_steps("  - http: {path: \"/r?from={{ focus_tme('1h') }}\"}\n");
        let d = refused(&text, (4, 18), "unknown function `focus_tme`");
        assert!(d.hint.unwrap().contains("focus_time"));
        accepted(&text.replace("focus_tme", "focus_time"));
    }

    #[test]
    fn a_template_that_does_not_parse_or_names_an_unknown_filter_is_refused() {
        let filter = with_steps("  - http: {path: \"/{{ 'a' | slugify }}\"}\n");
        refused(&filter, (4, 18), "unknown filter `slugify`");
        accepted(&filter.replace("slugify", "upper"));
        refused(
            &with_steps("  - http: {path: \"/{{ 'a' \"}\n"),
            (4, 18),
            "bad template",
        );
    }

    #[test]
    fn a_constant_template_with_a_bad_time_format_fails_at_load() {
        let text = with_steps("  - http: {path: \"/r?from={{ now('%Q') }}\"}\n");
        refused(&text, (4, 18), "invalid time format `%Q`");
        accepted(&text.replace("%Q", "%Y"));
    }

    #[test]
    fn a_templated_duration_is_rendered_and_parsed_at_load() {
        let text = "id: a\ntitle: t\nvars: {d: forever}\nsteps:\n  - sleep: \"{{ d }}\"\n";
        refused(text, (5, 12), "`{{ d }}` fails");
        accepted(&text.replace("forever", "2s"));
    }

    #[test]
    fn a_constant_var_that_cannot_be_rendered_is_refused_where_it_is_set() {
        let text = "id: a\ntitle: t\nvars:\n  t: \"{{ now('%Q') }}\"\nsteps:\n  - sleep: 1ms\n";
        refused(text, (4, 6), "var `t` cannot be rendered");
        accepted(&text.replace("%Q", "%Y"));
    }

    #[test]
    fn a_templated_fanout_count_is_bounded_at_load() {
        let text = "id: a\ntitle: t\nvars: {n: 10000001}\nsteps:\n  - fanout:\n      count: \"{{ n }}\"\n      steps:\n        - sleep: 1ms\n";
        refused(
            text,
            (6, 14),
            "fanout `count` 10000001 is too large: at most 10000000",
        );
        accepted(&text.replace("10000001", "10000000"));
    }

    #[test]
    fn nested_loops_over_a_million_runs_are_refused_at_the_inner_foreach() {
        let text = with_steps(
            "  - foreach:\n      items: \"{{ range(1001) }}\"\n      as: i\n      steps:\n        - foreach:\n            items: \"{{ range(1000) }}\"\n            as: j\n            steps:\n              - sleep: 1ms\n",
        );
        let d = refused(
            &text,
            (9, 20),
            "would run 1001000 times in all (1000 items, times 1001 runs",
        );
        assert!(
            d.message.contains("at most 1000000 loop runs"),
            "{}",
            d.message
        );
        // Exactly the limit is allowed.
        accepted(&text.replace("range(1001)", "range(1000)"));
    }

    // ---- checks of steps, expectations and checks ----

    #[test]
    fn a_check_needs_exactly_one_subject() {
        let text = with_steps("  - assert:\n      - {value: x, path: $.a, equals: x}\n");
        refused(&text, (5, 10), "a check needs exactly one subject");
        accepted(&text.replace(" path: $.a,", ""));
    }

    #[test]
    fn a_check_that_compares_nothing_is_refused() {
        let text = with_steps("  - assert:\n      - {value: x}\n");
        let d = refused(&text, (5, 10), "this check compares nothing");
        assert!(d.hint.unwrap().contains("one_of"));
        accepted(&text.replace("{value: x}", "{value: x, one_of: [x, y]}"));
    }

    #[test]
    fn an_expr_check_is_complete_on_its_own() {
        let text = with_steps("  - assert:\n      - {expr: \"1 == 1\", equals: true}\n");
        refused(&text, (5, 10), "an `expr` check is complete on its own");
        accepted(&text.replace(", equals: true", ""));
    }

    #[test]
    fn a_json_check_needs_a_path() {
        let text = with_steps(
            "  - http: {path: /x}\n    expect:\n      json:\n        - {value: x, equals: x}\n",
        );
        refused(&text, (7, 12), "a `json` check needs a `path`");
        accepted(&text.replace("value: x", "path: $.a"));
    }

    #[test]
    fn a_jsonpath_without_a_dollar_is_refused_with_the_fix() {
        let text = with_steps("  - http: {path: /x}\n    capture: {s: status}\n");
        let d = refused(&text, (5, 18), "bad JSONPath `status`");
        assert_eq!(
            d.hint.as_deref(),
            Some("JSONPaths start with `$`: did you mean `$.status`?")
        );
        accepted(&text.replace("s: status", "s: $.status"));
        // A templated path is checked once rendered, at run time.
        accepted(&with_steps(
            "  - http: {path: /x}\n    capture: {s: \"{{ spec.id }}\"}\n",
        ));
    }

    #[test]
    fn a_bad_regular_expression_is_refused_where_it_is_written() {
        let text = with_steps("  - http: {path: /x}\n    expect: {body: {matches: \"a(\"}}\n");
        refused(&text, (5, 30), "bad regular expression `a(`");
        accepted(&text.replace("a(", "a\\\\("));
        let header = with_steps(
            "  - http: {path: /x}\n    expect:\n      headers: {x-id: {matches: \"[\"}}\n",
        );
        refused(&header, (6, 33), "bad regular expression `[`");
    }

    #[test]
    fn an_ordering_against_a_list_can_never_be_compared() {
        let text = with_steps("  - assert:\n      - {value: \"3\", gt: [1]}\n");
        refused(&text, (5, 22), "`gt: [1]` can never be compared");
        accepted(&text.replace("[1]", "1"));
    }

    #[test]
    fn one_of_needs_a_list() {
        let text = with_steps("  - assert:\n      - {value: a, one_of: a}\n");
        refused(&text, (5, 20), "`one_of` needs a list of values");
        accepted(&text.replace("one_of: a", "one_of: [a]"));
        accepted(&text.replace("one_of: a", "one_of: \"{{ [spec.id] }}\""));
    }

    #[test]
    fn a_length_is_a_whole_number() {
        let text = with_steps("  - assert:\n      - {value: \"[1]\", length: 1.5}\n");
        refused(
            &text,
            (5, 32),
            "`length` must be a whole number or a template, not 1.5",
        );
        accepted(&text.replace("1.5", "1"));
        accepted(&text.replace("1.5", "{gte: 1}"));
    }

    #[test]
    fn a_status_text_is_a_class_like_2xx() {
        let text = with_steps("  - http: {path: /x}\n    expect: {status: \"2x\"}\n");
        refused(&text, (5, 22), "status `2x` is not a code");
        accepted(&text.replace("2x", "2xx"));
    }

    #[test]
    fn until_needs_an_expect_to_know_when_to_stop() {
        let text = with_steps("  - http: {path: /x}\n    until: {interval: 1s, timeout: 2s}\n");
        refused(&text, (5, 5), "`until` needs an `expect`");
        accepted(&format!("{text}    expect: {{status: 200}}\n"));
    }

    #[test]
    fn a_capture_reads_exactly_one_source() {
        let text =
            with_steps("  - http: {path: /x}\n    capture: {s: {path: $.a, header: x-id}}\n");
        refused(
            &text,
            (5, 19),
            "capture `s` needs exactly one of `path`, `header`, `cookie`, `from`",
        );
        accepted(&text.replace("path: $.a, ", ""));
    }

    #[test]
    fn fanout_counts_are_whole_numbers_within_bounds() {
        let fan = |count: &str, more: &str| {
            with_steps(&format!(
                "  - fanout:\n      count: {count}\n{more}      steps:\n        - sleep: 1ms\n"
            ))
        };
        refused(
            &fan("lots", ""),
            (5, 14),
            "fanout `count` must be a whole number or a template, not `lots`",
        );
        refused(
            &fan("10000001", ""),
            (5, 14),
            "fanout `count` 10000001 is too large",
        );
        refused(
            &fan("2", "      concurrency: 0\n"),
            (6, 20),
            "fanout `concurrency` must be at least 1",
        );
        accepted(&fan("10000000", "      concurrency: 1\n"));
        refused(
            &with_steps("  - fanout:\n      steps:\n        - sleep: 1ms\n"),
            (5, 7),
            "a `fanout` needs a `count`, a `duration` (or `stages`), or both",
        );
    }

    #[test]
    fn foreach_and_repeat_blocks_are_checked() {
        let each = with_steps(
            "  - foreach:\n      items: [1]\n      as: index\n      steps:\n        - sleep: 1ms\n",
        );
        refused(
            &each,
            (6, 11),
            "foreach `as: index` must be a variable name",
        );
        accepted(&each.replace("as: index", "as: n"));
        let rep = with_steps("  - repeat:\n      while: \"false\"\n      max: 0\n      steps:\n        - sleep: 1ms\n");
        // The schema speaks first at that place (one problem per place).
        refused(
            &rep,
            (6, 12),
            "steps[0].repeat.max: 0 is less than the minimum of 1",
        );
        refused(
            &rep.replace("max: 0", "max: 10001"),
            (6, 12),
            "10001 is greater than the maximum of 10000",
        );
        accepted(&rep.replace("max: 0", "max: 10000"));
    }

    #[test]
    fn covers_name_items_of_the_scope_catalog_that_are_in_scope() {
        let catalog: Catalog = serde_json::from_value(serde_json::json!({
            "title": "scope",
            "areas": [{"id": "api", "title": "API"}],
            "items": [
                {"id": "api.health", "title": "health", "area": "api", "status": "in"},
                {"id": "api.grpc", "title": "grpc", "area": "api", "status": "out", "reason": "decided"},
            ],
        }))
        .unwrap();
        let text = |id: &str| format!("id: a\ntitle: t\ncovers: [{id}]\nsteps:\n  - sleep: 1ms\n");
        let with = |t: &str| load_text("t.yaml", t, Some(&catalog), &[]);
        let d = refused_in(
            with(&text("api.helth")).unwrap_err(),
            (3, 10),
            "`api.helth` is not an item of the scope catalog",
        );
        assert!(d.hint.unwrap().contains("api.health"));
        let d = refused_in(
            with(&text("api.grpc")).unwrap_err(),
            (3, 10),
            "out of the agreed scope",
        );
        assert_eq!(d.hint.as_deref(), Some("excluded by decision: decided"));
        assert!(with(&text("api.health")).is_ok());
    }

    // ---- files a spec reads: include, vars_file ----

    /// A project folder (canonical) with `files` written in it, and the path of its spec.
    fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        for (name, text) in files {
            let p = root.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        (tmp, root)
    }

    fn load_in(
        root: &Path,
        spec: &str,
        text: &str,
        access: &Access,
    ) -> Result<Spec, Vec<Diagnostic>> {
        let file = root.join(spec);
        load_text_with(file.to_str().unwrap(), text, None, &[], access)
    }

    const USES_JOB: &str =
        "id: a\ntitle: t\nsteps:\n  - include: frag.yaml\n  - http: {path: \"/j/{{ job }}\"}\n";
    const CAPTURES_JOB: &str = "- http: {path: /new}\n  capture: {job: $.id}\n";

    #[test]
    fn a_missing_include_is_refused_at_the_include_and_later_names_are_not_blamed() {
        let (_tmp, root) = project(&[]);
        let diags = load_in(&root, "spec.yaml", USES_JOB, &Access::default()).unwrap_err();
        // `job` might come from the unread file: only the include is reported.
        let d = refused_in(diags, (4, 14), "included file `frag.yaml` not found");
        assert!(d
            .hint
            .unwrap()
            .contains("relative to the file that includes it"));
        std::fs::write(root.join("frag.yaml"), CAPTURES_JOB).unwrap();
        let spec = load_in(&root, "spec.yaml", USES_JOB, &Access::default()).unwrap();
        let StepKind::Include(inc) = &spec.steps[0].kind else {
            panic!("an include")
        };
        assert_eq!(inc.steps.len(), 1);
    }

    #[test]
    fn an_include_cycle_is_refused_at_the_include_that_closes_it() {
        let text = USES_JOB.replace("frag.yaml", "a.yaml");
        let (_tmp, root) = project(&[
            ("a.yaml", "- include: b.yaml\n"),
            ("b.yaml", "- include: a.yaml\n"),
        ]);
        let diags = load_in(&root, "spec.yaml", &text, &Access::default()).unwrap_err();
        let d = refused_in(diags, (1, 12), "include cycle: ");
        assert!(d.file.ends_with("b.yaml"), "{}", d.file);
        let (a, b) = (root.join("a.yaml"), root.join("b.yaml"));
        let chain = format!("{} -> {} -> {}", a.display(), b.display(), a.display());
        assert_eq!(d.message, format!("include cycle: {chain}"));
        std::fs::write(root.join("b.yaml"), CAPTURES_JOB).unwrap();
        assert!(load_in(&root, "spec.yaml", &text, &Access::default()).is_ok());
    }

    #[test]
    fn a_file_outside_the_project_is_neither_included_nor_read_as_vars() {
        let (_tmp, root) = project(&[
            ("outside/frag.yaml", CAPTURES_JOB),
            ("outside/vars.yaml", "job: 1\n"),
        ]);
        let inside = Access {
            roots: vec![root.join("project")],
            max_body: None,
        };
        std::fs::create_dir(root.join("project")).unwrap();
        let inc = USES_JOB.replace("frag.yaml", "../outside/frag.yaml");
        let d = refused_in(
            load_in(&root, "project/spec.yaml", &inc, &inside).unwrap_err(),
            (4, 14),
            "is outside the project",
        );
        assert_eq!(d.hint.as_deref(), Some(ACCESS_HINT));
        let vars = "id: a\ntitle: t\nvars_file: ../outside/vars.yaml\nsteps:\n  - http: {path: \"/j/{{ job }}\"}\n";
        refused_in(
            load_in(&root, "project/spec.yaml", vars, &inside).unwrap_err(),
            (3, 12),
            "outside/vars.yaml` is outside the project",
        );
        // Allowed once the folder is a root (`allow_paths`).
        let allowed = Access {
            roots: vec![root.clone()],
            max_body: None,
        };
        assert!(load_in(&root, "project/spec.yaml", &inc, &allowed).is_ok());
        assert!(load_in(&root, "project/spec.yaml", vars, &allowed).is_ok());
    }

    #[test]
    fn a_fragment_is_checked_in_its_own_file_against_the_names_at_its_include() {
        let (_tmp, root) = project(&[("frag.yaml", "- http: {path: \"/j/{{ job }}\"}\n")]);
        let text = "id: a\ntitle: t\nsteps:\n  - include: frag.yaml\n";
        let diags = load_in(&root, "spec.yaml", text, &Access::default()).unwrap_err();
        let d = refused_in(diags, (1, 16), "undefined variable `job`");
        assert!(
            d.file.ends_with("frag.yaml") && d.message.contains("(included at "),
            "{d:?}"
        );
        let defined = text.replace("steps:", "vars: {job: 1}\nsteps:");
        assert!(load_in(&root, "spec.yaml", &defined, &Access::default()).is_ok());
        // An optional parameter the fragment guards itself needs no definition.
        std::fs::write(
            root.join("frag.yaml"),
            "- http: {path: \"/j/{{ job | default(1) }}\"}\n",
        )
        .unwrap();
        assert!(load_in(&root, "spec.yaml", text, &Access::default()).is_ok());
        // The fragment's own checks report in its file too.
        std::fs::write(
            root.join("frag.yaml"),
            "- http: {path: /x}\n  capture: {s: status}\n",
        )
        .unwrap();
        let diags = load_in(&root, "spec.yaml", text, &Access::default()).unwrap_err();
        let d = refused_in(diags, (2, 16), "bad JSONPath `status`");
        assert!(d.file.ends_with("frag.yaml"), "{}", d.file);
    }

    #[test]
    fn a_vars_file_is_a_readable_mapping_whose_names_the_spec_may_use() {
        let text = "id: a\ntitle: t\nvars_file: shared.yaml\nvars: {mine: 1}\nsteps:\n  - http: {path: \"/j/{{ job }}/{{ mine }}\"}\n";
        let (_tmp, root) = project(&[]);
        let load = || load_in(&root, "spec.yaml", text, &Access::default());
        // Missing: one diagnostic, and `job` (which it might define) is not blamed.
        refused_in(load().unwrap_err(), (3, 12), "shared.yaml` cannot be read");
        std::fs::write(root.join("shared.yaml"), "- job\n").unwrap();
        refused_in(
            load().unwrap_err(),
            (3, 12),
            "a vars file is a YAML mapping of names to values",
        );
        std::fs::write(root.join("shared.yaml"), "job: 1\njob: 2\n").unwrap();
        refused_in(load().unwrap_err(), (3, 12), "(2:1): duplicate key `job`");
        std::fs::write(root.join("shared.yaml"), "job: 1\nmine: 0\n").unwrap();
        let spec = load().unwrap();
        assert_eq!(spec.vars.get("job"), Some(&serde_json::json!(1)));
        assert_eq!(
            spec.vars.get("mine"),
            Some(&serde_json::json!(1)),
            "the spec's own vars win"
        );
    }
}
