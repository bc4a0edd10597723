//! The book in `docs/` (issue 26, "Docs as a book"): its reference pages are generated from the
//! JSON Schemas, so they cannot drift from what the loader accepts; it builds with mdBook without
//! warnings; its links and the README's point at files and headings that exist; and every
//! chapter is listed in `SUMMARY.md`.
//!
//! The generator lives here, in the test tier, so the product has no documentation code.
//! `UPDATE_DOCS=1 cargo test --test all docs_book` rewrites the reference pages.

use crate::common::required_tool;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use serde_json::{json, Map, Value};

/// The command that rewrites the generated pages, named in every failure about them.
const UPDATE: &str = "UPDATE_DOCS=1 cargo test --test all docs_book";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One generated reference page.
struct Page {
    schema: &'static str,
    /// Relative to the repository root.
    page: &'static str,
    title: &'static str,
    /// What the schema describes and where its keys are explained (Markdown, links relative to
    /// the page).
    intro: &'static str,
}

const PAGES: &[Page] = &[
    Page {
        schema: "spec.schema.json",
        page: "docs/src/reference/spec.md",
        title: "Spec file reference",
        intro: "Every key of a spec file (a YAML file under `specs/`). What the keys do, with \
                examples, is in [Writing specs](../writing-specs.md) and the chapters under it.",
    },
    Page {
        schema: "config.schema.json",
        page: "docs/src/reference/config.md",
        title: "Config reference (focusqa.yaml)",
        intro: "Every key of `focusqa.yaml`, the project's configuration and its targets. What \
                the keys do, with examples, is in [Targets and secrets](../targets.md).",
    },
    Page {
        schema: "scope.schema.json",
        page: "docs/src/reference/scope.md",
        title: "Scope catalog reference",
        intro: "Every key of the scope catalog (`specs/scope.yaml`). How the catalog is used is \
                in [Scope and coverage](../coverage.md).",
    },
];

fn load_schema(name: &str) -> Value {
    let path = root().join("schemas").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every reference page as the committed schemas generate it: (path from the root, content).
fn generated() -> Vec<(&'static str, String)> {
    PAGES
        .iter()
        .map(|p| (p.page, render(p, &load_schema(p.schema))))
        .collect()
}

/// The pages whose file under `root` is missing or differs from what was generated.
fn stale(root: &Path, pages: &[(&str, String)]) -> Vec<String> {
    pages
        .iter()
        .filter(|(path, text)| std::fs::read_to_string(root.join(path)).ok().as_ref() != Some(text))
        .map(|(path, _)| path.to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The generator: a JSON Schema (draft 2020-12, as schemars writes it) to a Markdown page.
// ---------------------------------------------------------------------------------------------

/// The HTML id mdBook gives a heading (mdbook-html's `id_from_content`; GitHub's is the same
/// for the headings we write): lower case, alphanumerics, `-` and `_` kept, spaces as `-`.
fn heading_id(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c)
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// A heading's id made unique within its page, as mdBook and GitHub do (`id`, `id-1`, ...).
fn unique_id(id: String, used: &mut HashSet<String>) -> String {
    if used.insert(id.clone()) {
        return id;
    }
    (1..)
        .map(|n| format!("{id}-{n}"))
        .find(|c| used.insert(c.clone()))
        .unwrap()
}

/// An inline code span for any text: the fence is one backtick longer than the longest run of
/// backticks inside, padded when the text starts or ends with a backtick.
fn code(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// Text for a table cell: one line, pipes escaped (GFM reads `\|` as a pipe, in code spans too).
fn cell(text: &str) -> String {
    text.replace("\r\n", "\n")
        .split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

/// A section of the page: a definition, or an inline object schema inside one.
struct Section<'s> {
    level: usize,
    title: String,
    schema: &'s Value,
    id: String,
}

struct Renderer<'s> {
    /// Definition name -> the id of its heading.
    def_ids: HashMap<String, String>,
    /// Inline object schemas (by address) -> the id of their heading.
    inline_ids: HashMap<*const Value, String>,
    sections: Vec<Section<'s>>,
}

impl<'s> Renderer<'s> {
    /// Collects every section in page order and gives each heading its unique id, so that a
    /// link can point at a heading further down.
    fn new(page_title: &str, schema: &'s Value) -> Self {
        let mut used = HashSet::new();
        for fixed in [page_title, "Top level", "Definitions"] {
            unique_id(heading_id(fixed), &mut used);
        }
        let mut r = Renderer {
            def_ids: HashMap::new(),
            inline_ids: HashMap::new(),
            sections: Vec::new(),
        };
        // The root's inline objects are sections under "Top level".
        r.inline_sections(schema, "", 3, &mut used);
        for (name, def) in definitions(schema) {
            let id = unique_id(heading_id(name), &mut used);
            r.def_ids.insert(name.clone(), id.clone());
            r.sections.push(Section {
                level: 3,
                title: name.clone(),
                schema: def,
                id,
            });
            r.inline_sections(def, name, 4, &mut used);
        }
        r
    }

    /// Sections for the object schemas written inline in `schema`'s properties (not `$ref`s),
    /// titled by their path (`Step.capture`), depth first.
    fn inline_sections(
        &mut self,
        schema: &'s Value,
        path: &str,
        level: usize,
        used: &mut HashSet<String>,
    ) {
        for (name, prop) in properties(schema) {
            for obj in inline_objects(prop) {
                let title = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                let id = unique_id(heading_id(&title), used);
                self.inline_ids.insert(obj as *const Value, id.clone());
                self.sections.push(Section {
                    level,
                    title: title.clone(),
                    schema: obj,
                    id,
                });
                self.inline_sections(obj, &title, (level + 1).min(6), used);
            }
        }
    }

    /// The type of a schema, in Markdown for a table cell or a list item.
    fn ty(&self, s: &Value) -> String {
        let Some(o) = s.as_object() else {
            // `true` accepts anything, `false` nothing.
            return if s == &Value::Bool(false) {
                "nothing".into()
            } else {
                "any".into()
            };
        };
        if let Some(r) = o.get("$ref").and_then(Value::as_str) {
            return match ref_name(r) {
                Some(name) if self.def_ids.contains_key(name) => {
                    format!("[{name}](#{})", self.def_ids[name])
                }
                _ => code(r),
            };
        }
        if let Some(id) = self.inline_ids.get(&(s as *const Value)) {
            return format!("[object](#{id})");
        }
        if let Some(c) = o.get("const") {
            return code(&compact(c));
        }
        let mut out = if let Some(alts) = o.get("anyOf").or_else(|| o.get("oneOf")) {
            alternatives(alts)
                .iter()
                .map(|a| self.ty(a))
                .collect::<Vec<_>>()
                .join(" or ")
        } else {
            match o.get("type") {
                Some(Value::String(t)) => self.named_type(t, o),
                Some(Value::Array(ts)) => ts
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|t| self.named_type(t, o))
                    .collect::<Vec<_>>()
                    .join(" or "),
                _ if o.contains_key("enum") => String::new(),
                _ => "any".into(),
            }
        };
        if let Some(Value::Array(values)) = o.get("enum") {
            let values = values
                .iter()
                .map(|v| code(&compact(v)))
                .collect::<Vec<_>>()
                .join(", ");
            out = if out.is_empty() {
                format!("one of {values}")
            } else {
                format!("{out}: one of {values}")
            };
        }
        out
    }

    /// One JSON type name with what qualifies it: the items of an array, the values of a map,
    /// the format and bounds of a number, the pattern of a string.
    fn named_type(&self, t: &str, o: &Map<String, Value>) -> String {
        match t {
            "array" => match o.get("items") {
                Some(items) => format!("array of {}", self.ty(items)),
                None => "array".into(),
            },
            "object" => match o.get("additionalProperties") {
                Some(Value::Object(_)) if !o.contains_key("properties") => {
                    format!("map of {}", self.ty(&o["additionalProperties"]))
                }
                Some(Value::Bool(true)) if !o.contains_key("properties") => {
                    "object (any keys)".into()
                }
                _ => "object".into(),
            },
            "integer" | "number" => {
                let mut notes = Vec::new();
                if let Some(f) = o.get("format").and_then(Value::as_str) {
                    notes.push(f.to_string());
                }
                match (o.get("minimum"), o.get("maximum")) {
                    (Some(lo), Some(hi)) => notes.push(format!("{lo} to {hi}")),
                    (Some(lo), None) => notes.push(format!(">= {lo}")),
                    (None, Some(hi)) => notes.push(format!("<= {hi}")),
                    (None, None) => {}
                }
                if notes.is_empty() {
                    t.into()
                } else {
                    format!("{t} ({})", notes.join(", "))
                }
            }
            "string" => match o.get("pattern").and_then(Value::as_str) {
                Some(p) => format!("string matching {}", code(p)),
                None => "string".into(),
            },
            other => other.into(),
        }
    }

    /// The table of an object schema's properties, with what else it accepts below it.
    fn properties_table(&self, s: &Value, out: &mut String) {
        let props = properties(s);
        if props.is_empty() {
            return;
        }
        let required: BTreeSet<&str> = s
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push_str("| Property | Type | Required | Default | Description |\n");
        out.push_str("|---|---|---|---|---|\n");
        for (name, prop) in props {
            let default = prop
                .get("default")
                .map(|d| code(&compact(d)))
                .unwrap_or_default();
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                cell(&code(name)),
                cell(&self.ty(prop)),
                if required.contains(name.as_str()) {
                    "yes"
                } else {
                    "no"
                },
                cell(&default),
                cell(&self.property_description(prop)),
            ));
        }
        out.push('\n');
        match s.get("additionalProperties") {
            Some(Value::Bool(false)) => out.push_str("No other keys are allowed.\n\n"),
            Some(Value::Bool(true)) | None => out.push_str("Other keys are allowed.\n\n"),
            Some(other) => out.push_str(&format!("Other keys: {}.\n\n", self.ty(other))),
        }
    }

    /// A property's description, with the descriptions of its alternatives when it has some.
    fn property_description(&self, prop: &Value) -> String {
        let mut text = description(prop).unwrap_or_default().to_string();
        let described: Vec<String> = prop
            .get("anyOf")
            .or_else(|| prop.get("oneOf"))
            .map(alternatives)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|a| description(a).map(|d| format!("{}: {d}", self.ty(a))))
            .collect();
        if !described.is_empty() {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&format!("Alternatives: {}.", described.join("; ")));
        }
        text
    }

    /// The body of a section: description, then its properties, alternatives or type.
    fn body(&self, s: &Value, out: &mut String) {
        if let Some(d) = description(s) {
            out.push_str(d.trim());
            out.push_str("\n\n");
        }
        if !properties(s).is_empty() {
            self.properties_table(s, out);
            return;
        }
        let alts = s
            .get("oneOf")
            .map(|a| (a, "`oneOf`: exactly one matches"))
            .or_else(|| s.get("anyOf").map(|a| (a, "`anyOf`: at least one matches")));
        if let Some((alts, how)) = alts {
            out.push_str(&format!("Alternatives ({how}):\n\n"));
            for a in alternatives(alts) {
                out.push_str(&format!("- {}", self.ty(a)));
                if let Some(d) = description(a) {
                    out.push_str(&format!(": {}", d.trim().replace('\n', " ")));
                }
                out.push('\n');
                // An alternative that is an object of its own: its properties here.
                if !properties(a).is_empty() {
                    let mut table = String::new();
                    self.properties_table(a, &mut table);
                    out.push('\n');
                    for line in table.lines() {
                        if line.is_empty() {
                            out.push('\n');
                        } else {
                            out.push_str(&format!("  {line}\n"));
                        }
                    }
                }
            }
            out.push('\n');
            return;
        }
        out.push_str(&format!("Type: {}.\n\n", self.ty(s)));
    }
}

fn definitions(s: &Value) -> Vec<(&String, &Value)> {
    ["$defs", "definitions"]
        .iter()
        .filter_map(|k| s.get(*k).and_then(Value::as_object))
        .flat_map(|m| m.iter())
        .collect()
}

fn properties(s: &Value) -> Vec<(&String, &Value)> {
    s.get("properties")
        .and_then(Value::as_object)
        .map(|m| m.iter().collect())
        .unwrap_or_default()
}

fn alternatives(v: &Value) -> Vec<&Value> {
    v.as_array().map(|a| a.iter().collect()).unwrap_or_default()
}

fn description(s: &Value) -> Option<&str> {
    s.get("description").and_then(Value::as_str)
}

/// `#/$defs/Name` or `#/definitions/Name` to `Name`.
fn ref_name(r: &str) -> Option<&str> {
    r.strip_prefix("#/$defs/")
        .or_else(|| r.strip_prefix("#/definitions/"))
}

/// The object schemas written inline in a property (itself, its items, its alternatives): a
/// table cell cannot hold their properties, so each gets a section of its own.
fn inline_objects(prop: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    if !properties(prop).is_empty() {
        out.push(prop);
    }
    if let Some(items) = prop.get("items") {
        out.extend(inline_objects(items));
    }
    for k in ["anyOf", "oneOf"] {
        for alt in prop.get(k).map(alternatives).unwrap_or_default() {
            out.extend(inline_objects(alt));
        }
    }
    out
}

/// The Markdown page for one schema.
fn render(page: &Page, schema: &Value) -> String {
    let r = Renderer::new(page.title, schema);
    let mut out = String::new();
    out.push_str(&format!("# {}\n\n", page.title));
    out.push_str(&format!(
        "<!-- Generated by tests/docs_book.rs from schemas/{}. Do not edit: change the Rust types, \
         run `cargo run -- schema --out schemas`, then `{UPDATE}`. -->\n\n",
        page.schema
    ));
    out.push_str(page.intro);
    out.push_str("\n\n");
    out.push_str(&format!(
        "Generated from `schemas/{}`, the JSON Schema that is itself generated from focusqa's \
         Rust types, so this page lists exactly what focusqa accepts.",
        page.schema
    ));
    if let Some(t) = schema.get("title").and_then(Value::as_str) {
        out.push_str(&format!(" The schema's title: *{t}*."));
    }
    out.push_str("\n\n## Top level\n\n");
    r.body(schema, &mut out);
    let mut defs_started = false;
    for section in &r.sections {
        let is_def = r.def_ids.get(&section.title) == Some(&section.id);
        if is_def && !defs_started {
            out.push_str("## Definitions\n\n");
            out.push_str(
                "Each definition below is a type that the properties above refer to by name.\n\n",
            );
            defs_started = true;
        }
        out.push_str(&format!(
            "{} {}\n\n",
            "#".repeat(section.level),
            section.title
        ));
        r.body(section.schema, &mut out);
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[test]
fn reference_pages_match_the_schemas() {
    let pages = generated();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        for (path, text) in &pages {
            let file = root().join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, text).unwrap();
            eprintln!("wrote {path}");
        }
        return;
    }
    let stale = stale(root(), &pages);
    assert!(
        stale.is_empty(),
        "the reference pages {stale:?} are out of date with schemas/*.schema.json; regenerate them with `{UPDATE}`"
    );
}

#[test]
fn an_added_property_makes_the_committed_page_stale() {
    let page = &PAGES[0];
    let original = load_schema(page.schema);
    let mut changed = original.clone();
    changed["properties"]["brand_new_key"] =
        json!({"type": "string", "description": "A key added to show that drift is seen."});
    changed["$defs"]["Step"]["properties"]["deep_new_key"] =
        json!({"type": ["integer", "null"], "default": 3});
    let before = render(page, &original);
    let after = render(page, &changed);
    assert_ne!(before, after);
    assert!(
        after.contains(
            "| `brand_new_key` | string | no |  | A key added to show that drift is seen. |"
        ),
        "a top-level property is a row of the top-level table:\n{after}"
    );
    let step = &after[after.find("\n### Step\n").expect("a Step section")..];
    let step = &step[..step[1..].find("\n### ").unwrap()];
    assert!(
        step.contains("| `deep_new_key` | integer or null | no | `3` |  |"),
        "a property of a definition is a row of its section:\n{step}"
    );
    // The comparison the first test makes reports the page: committed as before, generated as after.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(page.page);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, &before).unwrap();
    assert!(stale(dir.path(), &[(page.page, before.clone())]).is_empty());
    assert_eq!(stale(dir.path(), &[(page.page, after)]), vec![page.page]);
}

#[test]
fn the_generator_renders_every_kind_of_schema() {
    // What the committed schemas use, and what they may come to use.
    let schema = json!({
        "title": "t",
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "The name.\nTwo lines | one pipe."},
            "mode": {"$ref": "#/$defs/Mode", "default": "fast"},
            "inline": {"type": "object", "properties": {"x": {"type": "integer", "minimum": 0}}},
            "list": {"type": ["array", "null"], "items": {"$ref": "#/definitions/Old"}},
            "map": {"type": "object", "additionalProperties": {"type": "boolean"}}
        },
        "required": ["name"],
        "additionalProperties": false,
        "$defs": {
            "Mode": {"oneOf": [
                {"const": "fast", "description": "Quick."},
                {"type": "string", "enum": ["slow", "slower"]}
            ]}
        },
        "definitions": {"Old": {"type": "string", "pattern": "^a`b|c$"}}
    });
    let page = Page {
        schema: "x.schema.json",
        page: "x.md",
        title: "X",
        intro: "Intro.",
    };
    let out = render(&page, &schema);
    for expected in [
        "| `name` | string | yes |  | The name. Two lines \\| one pipe. |",
        "| `mode` | [Mode](#mode) | no | `\"fast\"` |  |",
        "| `inline` | [object](#inline) | no |  |  |",
        "| `list` | array of [Old](#old) or null | no |  |  |",
        "| `map` | map of boolean | no |  |  |",
        "### inline\n\n| Property |",
        "| `x` | integer (>= 0) | no |  |  |",
        "### Mode\n\nAlternatives (`oneOf`: exactly one matches):\n\n- `\"fast\"`: Quick.\n- string: one of `\"slow\"`, `\"slower\"`\n",
        "### Old\n\nType: string matching ``^a`b|c$``.",
        "No other keys are allowed.",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

// ---------------------------------------------------------------------------------------------
// The links hold, and every chapter is in the summary.
// ---------------------------------------------------------------------------------------------

/// README.md and every Markdown file of the book.
fn markdown_files() -> Vec<PathBuf> {
    let mut out = vec![root().join("README.md")];
    let mut dirs = vec![root().join("docs/src")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The text outside fenced code blocks, one entry per line (code blocks become empty lines, so
/// line numbers stay right).
fn prose_lines(text: &str) -> Vec<String> {
    let mut fence: Option<String> = None;
    text.lines()
        .map(|line| {
            let t = line.trim_start();
            let marker: String = t.chars().take_while(|c| *c == '`' || *c == '~').collect();
            if marker.len() >= 3 {
                match &fence {
                    None => {
                        fence = Some(marker);
                        return String::new();
                    }
                    Some(f) if marker.starts_with(f.as_str()) && t.trim() == marker => {
                        fence = None;
                        return String::new();
                    }
                    _ => {}
                }
            }
            if fence.is_some() {
                String::new()
            } else {
                line.to_string()
            }
        })
        .collect()
}

/// A line with the contents of its code spans removed (`[`x`](y)` keeps its brackets).
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find('`') {
        out.push_str(&rest[..i]);
        let run = rest[i..].chars().take_while(|c| *c == '`').count();
        let after = &rest[i + run..];
        // The span closes at the next run of exactly as many backticks.
        let mut close = None;
        let mut j = 0;
        while let Some(k) = after[j..].find('`') {
            let start = j + k;
            let n = after[start..].chars().take_while(|c| *c == '`').count();
            if n == run {
                close = Some(start);
                break;
            }
            j = start + n;
        }
        match close {
            Some(c) => rest = &after[c + run..],
            None => {
                // An unclosed run is literal backticks.
                out.push_str(&rest[i..i + run]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The inline link targets of a Markdown text, with their line numbers.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in prose_lines(text).iter().enumerate() {
        let line = without_code_spans(line);
        let mut rest = line.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let end = after.find(')').unwrap_or(after.len());
            let target = after[..end].split_whitespace().next().unwrap_or("");
            out.push((n + 1, target.to_string()));
            rest = &after[end..];
        }
    }
    out
}

/// The ids of a Markdown file's headings, as mdBook (and GitHub) make them.
fn heading_ids(text: &str) -> HashSet<String> {
    let mut used = HashSet::new();
    for line in prose_lines(text) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            // Heading text: code spans keep their text, links their label (the id drops the
            // brackets and backticks).
            let mut title = String::new();
            let mut rest = &line[hashes..];
            while let Some(i) = rest.find("](") {
                title.push_str(&rest[..i]);
                let after = &rest[i + 2..];
                rest = after.find(')').map_or("", |e| &after[e + 1..]);
            }
            title.push_str(rest);
            unique_id(heading_id(&title), &mut used);
        }
    }
    used
}

/// `a/./b/../c` as `a/c`, without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The broken links of `files`: a relative link to a file that does not exist, to a heading
/// that does not exist, or from a chapter of the book in `book` to a file outside it (mdBook
/// copies only its source folder, so such a link breaks in the built book). Paths are shown
/// relative to `base`.
fn broken_links(files: &[PathBuf], book: &Path, base: &Path) -> Vec<String> {
    let book = normalize(book);
    let mut problems = Vec::new();
    let mut ids: HashMap<PathBuf, HashSet<String>> = HashMap::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let shown = file
            .strip_prefix(base)
            .unwrap_or(file)
            .display()
            .to_string();
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") || target.is_empty() {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let dest = if path.is_empty() {
                normalize(file)
            } else {
                normalize(&file.parent().unwrap().join(path))
            };
            if !dest.exists() {
                problems.push(format!("{shown}:{line}: `{target}`: no such file"));
                continue;
            }
            if normalize(file).starts_with(&book) && !dest.starts_with(&book) {
                problems.push(format!(
                    "{shown}:{line}: `{target}` leaves docs/src, so it breaks in the built book; name the file in `code` instead"
                ));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if dest.extension().is_none_or(|x| x != "md") {
                continue;
            }
            let known = ids.entry(dest.clone()).or_insert_with(|| {
                heading_ids(&std::fs::read_to_string(&dest).unwrap_or_default())
            });
            if !known.contains(anchor) {
                problems.push(format!(
                    "{shown}:{line}: `{target}`: no heading with the id `{anchor}`"
                ));
            }
        }
    }
    problems
}

#[test]
fn links_point_at_files_and_headings_that_exist() {
    let problems = broken_links(&markdown_files(), &root().join("docs/src"), root());
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_chapter_is_in_the_summary() {
    let src = root().join("docs/src");
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).unwrap();
    let listed: BTreeSet<PathBuf> = links(&summary)
        .into_iter()
        .map(|(_, t)| normalize(&src.join(t.split('#').next().unwrap())))
        .collect();
    let missing: Vec<String> = markdown_files()
        .into_iter()
        .filter(|f| f.starts_with(&src) && !f.ends_with("SUMMARY.md"))
        .map(|f| normalize(&f))
        .filter(|f| !listed.contains(f))
        .map(|f| f.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "chapters not listed in docs/src/SUMMARY.md (mdBook would leave them out): {missing:?}"
    );
}

#[test]
fn the_link_check_sees_broken_links() {
    // A README and a book of two chapters, with one link of each kind.
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("docs/src");
    std::fs::create_dir_all(&book).unwrap();
    let readme = dir.path().join("README.md");
    let intro = book.join("intro.md");
    let other = book.join("other.md");
    std::fs::write(
        &readme,
        "# R\n\n[ok](docs/src/other.md#two-words) [gone](docs/src/gone.md)\n",
    )
    .unwrap();
    std::fs::write(
        &intro,
        "# Intro `x`\n\n[a](other.md#no-such) [`b`](#intro-x) `[not](a link)`\n\n\
         ```\n[nor](this.md)\n```\n\n[out](../../README.md)\n",
    )
    .unwrap();
    std::fs::write(&other, "# Other\n\n## Two [words](intro.md)\n").unwrap();
    let problems = broken_links(&[readme, intro, other], &book, dir.path());
    assert_eq!(
        problems,
        vec![
            "README.md:3: `docs/src/gone.md`: no such file".to_string(),
            "docs/src/intro.md:3: `other.md#no-such`: no heading with the id `no-such`".into(),
            "docs/src/intro.md:9: `../../README.md` leaves docs/src, so it breaks in the built book; name the file in `code` instead".into(),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// The book builds (CI installs mdBook).
// ---------------------------------------------------------------------------------------------

/// mdBook's version that `.ci/run` installs (and the README names).
const MDBOOK_VERSION: &str = "0.5.4";

#[test]
fn the_book_builds_without_warnings() {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|d| d.join("bin").to_string_lossy().into_owned())
        .unwrap_or_default();
    let install = format!("cargo install --locked mdbook --version {MDBOOK_VERSION}");
    let Some(mdbook) = required_tool(
        "mdbook",
        "MDBOOK",
        &[cargo_bin.as_str()],
        &install,
        "the book build (mdbook build docs)",
    ) else {
        return;
    };
    // Another version may warn about what this one accepts, or the other way round: say so.
    if let Ok(v) = Command::new(&mdbook).arg("--version").output() {
        let v = String::from_utf8_lossy(&v.stdout);
        if !v.trim().ends_with(&format!("v{MDBOOK_VERSION}")) {
            eprintln!(
                "NOTICE: {} is not the pinned mdbook {MDBOOK_VERSION} ({install})",
                v.trim()
            );
        }
    }
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(&mdbook)
        .current_dir(root())
        .args(["build", "docs", "-d"])
        .arg(out_dir.path())
        // mdBook's log level comes from these; its defaults show warnings and errors.
        .env_remove("RUST_LOG")
        .env_remove("MDBOOK_LOG")
        .env("NO_COLOR", "1")
        .output()
        .expect("mdbook runs");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "`mdbook build docs` failed ({}):\n{log}",
        out.status
    );
    let problems: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    assert!(
        problems.is_empty(),
        "`mdbook build docs` printed warnings or errors:\n{}",
        problems.join("\n")
    );
    for page in ["index.html", "writing-specs.html", "reference/spec.html"] {
        assert!(
            out_dir.path().join(page).is_file(),
            "the book has no {page}"
        );
    }
}

#[test]
fn the_pinned_mdbook_version_is_the_same_everywhere() {
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(
        ci.contains(&format!("MDBOOK_VERSION={MDBOOK_VERSION}\n")),
        ".ci/run must install mdbook {MDBOOK_VERSION} (MDBOOK_VERSION in tests/docs_book.rs)"
    );
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("--version {MDBOOK_VERSION}`")),
        "README.md must name mdbook {MDBOOK_VERSION}, the version .ci/run installs"
    );
}
