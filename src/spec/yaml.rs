//! One YAML parse that yields the values and their positions together (issue 26).
//!
//! yaml-rust2's marked events are read once: each node becomes a `serde_json::Value` (the
//! schema and serde read that) and, in the same step, gets its `line:col` in the
//! [`PositionIndex`] (every later check and every run-time result points there). Scalars
//! resolve as YAML 1.2's core schema says (and as serde_yaml did before): plain `null`, `~` and
//! nothing are null, `true`/`false` booleans, decimal, `0x`, `0o` and `0b` integers, floats
//! with `.inf` and `.nan`; quoted and block scalars are strings.

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::position::{NodeId, PositionIndex, ScalarAt};
use super::Pos;

/// A YAML document nests at most this deep (a stack overflow is never the answer).
pub const MAX_DEPTH: usize = 128;

/// Aliases may expand to at most this many nodes per node written (a "billion laughs" file
/// is refused where its first alias is, not expanded until memory runs out).
const ALIAS_FACTOR: usize = 100;

/// The first document of a YAML text: its value, and the position of every node.
#[derive(Debug)]
pub struct Document {
    pub value: Value,
    pub index: PositionIndex,
    /// A problem that leaves the document unreadable although it parsed (a duplicate key):
    /// it is among `index.problems`, and `value` must not be used.
    pub unreadable: bool,
}

/// Parses `text`; a syntax error (or nesting, alias expansion or a tag beyond what a spec
/// may hold) comes back with its position.
pub fn parse(text: &str) -> Result<Document, (Pos, String)> {
    let mut b = Builder::default();
    // A node takes at least a few bytes of text: room reserved once (pages never touched cost
    // nothing), instead of copies of a growing list.
    b.index.reserve(text.len() / 8, text.len() / 4);
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut b, true).map_err(|e| {
        let m = e.marker();
        (pos_of(m), e.info().to_string())
    })?;
    if let Some(e) = b.error {
        return Err(e);
    }
    Ok(Document {
        value: b.root.unwrap_or(Value::Null),
        index: b.index,
        unreadable: b.duplicate,
    })
}

/// Reads a YAML text into `T`: a problem is located at its node (`file:line:col`), with the
/// source line, as every other diagnostic. For the files read whole into a type (the config,
/// the scope catalog, a vars file).
pub fn from_text<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<(T, PositionIndex), super::Diagnostic> {
    use super::Diagnostic;
    let doc = parse(text).map_err(|(pos, msg)| {
        Diagnostic::new(file, pos, format!("YAML syntax error: {msg}")).with_source(text)
    })?;
    if let Some((pos, msg)) = doc.index.problems.first() {
        if doc.unreadable {
            return Err(Diagnostic::new(file, *pos, msg.clone()).with_source(text));
        }
    }
    match serde_path_to_error::deserialize(doc.value) {
        Ok(t) => Ok((t, doc.index)),
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            let msg = e.into_inner().to_string();
            let pos = at_problem(&doc.index, &path, &msg);
            let at = if path.is_empty() {
                String::new()
            } else {
                format!("{path}: ")
            };
            Err(super::diag::typed_diag(
                file,
                text,
                pos,
                format!("{at}{msg}"),
            ))
        }
    }
}

/// Reads a YAML text into `T`, with the error as one line (`2:5: unknown field ...`): for
/// files a step reads at run time (a schema file) and for tests.
pub fn from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    let doc = parse(text).map_err(|(pos, msg)| format!("{}:{}: {msg}", pos.line, pos.col))?;
    if let (true, Some((pos, msg))) = (doc.unreadable, doc.index.problems.first()) {
        return Err(format!("{}:{}: {msg}", pos.line, pos.col));
    }
    serde_path_to_error::deserialize(doc.value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { "" } else { &path };
        let msg = e.into_inner().to_string();
        let pos = at_problem(&doc.index, path, &msg);
        format!("{}:{}: {msg}", pos.line, pos.col)
    })
}

/// A value as YAML text (block style, no `---`), for people to read.
pub fn to_string(v: &Value) -> String {
    fn yaml(v: &Value) -> yaml_rust2::Yaml {
        use yaml_rust2::Yaml;
        match v {
            Value::Null => Yaml::Null,
            Value::Bool(b) => Yaml::Boolean(*b),
            Value::Number(n) if n.is_f64() => Yaml::Real(n.to_string()),
            Value::Number(n) => n
                .as_i64()
                .map_or_else(|| Yaml::Real(n.to_string()), Yaml::Integer),
            Value::String(s) => Yaml::String(s.clone()),
            Value::Array(a) => Yaml::Array(a.iter().map(yaml).collect()),
            Value::Object(m) => Yaml::Hash(
                m.iter()
                    .map(|(k, v)| (Yaml::String(k.clone()), yaml(v)))
                    .collect(),
            ),
        }
    }
    let mut out = String::new();
    let mut emitter = yaml_rust2::YamlEmitter::new(&mut out);
    emitter.multiline_strings(true);
    if emitter.dump(&yaml(v)).is_err() {
        return serde_json::to_string_pretty(v).unwrap_or_default();
    }
    let body = out
        .strip_prefix("---\n")
        .or_else(|| out.strip_prefix("---"))
        .unwrap_or(&out);
    format!("{}\n", body.trim_start_matches(' '))
}

/// Where serde's word on the node at `path` points: the key of a field it does not know.
pub(crate) fn at_problem(index: &PositionIndex, path: &str, msg: &str) -> Pos {
    if msg.starts_with("unknown field") {
        index.key(path)
    } else {
        index.get(path)
    }
}

fn pos_of(m: &Marker) -> Pos {
    // yaml-rust2 lines are 1-based and columns 0-based.
    Pos {
        line: m.line() as u32,
        col: m.col() as u32 + 1,
    }
}

/// The value of a scalar as YAML 1.2's core schema resolves it (serde_yaml 0.9's rules); None
/// for a string (the text itself, which the caller owns).
fn resolve(v: &str, style: TScalarStyle, tag: Option<&Tag>) -> Result<Option<Value>, String> {
    if let Some(t) = tag {
        // `!!str 1` is the string "1"; the other core tags say what plain resolution says.
        match (t.handle.as_str(), t.suffix.as_str()) {
            ("!!", "str") | ("tag:yaml.org,2002:", "str") => return Ok(None),
            ("!!", "int" | "float" | "bool" | "null")
            | ("tag:yaml.org,2002:", "int" | "float" | "bool" | "null") => {}
            _ => {
                return Err(format!(
                    "the YAML tag `{}{}` is not supported here",
                    t.handle, t.suffix
                ))
            }
        }
    } else if style != TScalarStyle::Plain {
        return Ok(None);
    }
    Ok(plain(v))
}

fn plain(v: &str) -> Option<Value> {
    match v {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Value::Null),
        "true" | "True" | "TRUE" => return Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Value::Bool(false)),
        _ => {}
    }
    // Only a digit, a sign or a dot may start a number.
    if !v.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | '+' | '.')) {
        return None;
    }
    if let Some(n) = int(v) {
        return Some(Value::Number(n));
    }
    if !digits_but_not_number(v) {
        if let Some(f) = float(v) {
            // As serde_json does with a float it cannot hold (inf, NaN): null.
            return Some(Number::from_f64(f).map_or(Value::Null, Value::Number));
        }
    }
    None
}

/// Leading zeros followed by digits is a string in YAML 1.2 (`007`).
fn digits_but_not_number(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    s.len() > 1 && s.starts_with('0') && s[1..].bytes().all(|b| b.is_ascii_digit())
}

fn int(s: &str) -> Option<Number> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.starts_with(['+', '-']) || body.is_empty() {
        return None;
    }
    let (radix, digits) = if let Some(r) = body.strip_prefix("0x") {
        (16, r)
    } else if let Some(r) = body.strip_prefix("0o") {
        (8, r)
    } else if let Some(r) = body.strip_prefix("0b") {
        (2, r)
    } else {
        if digits_but_not_number(s) {
            return None;
        }
        (10, body)
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    if neg {
        if magnitude <= i64::MAX as u128 + 1 {
            return Some(Number::from((-(magnitude as i128)) as i64));
        }
        Number::from_f64(-(magnitude as f64))
    } else if magnitude <= u64::MAX as u128 {
        Some(Number::from(magnitude as u64))
    } else {
        Number::from_f64(magnitude as f64)
    }
}

fn float(s: &str) -> Option<f64> {
    let unsigned = match s.strip_prefix('+') {
        Some(u) if u.starts_with(['+', '-']) => return None,
        Some(u) => u,
        None => s,
    };
    match unsigned {
        ".inf" | ".Inf" | ".INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    // Rust also reads "inf", "nan" and "infinity", which YAML does not.
    if !unsigned.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    unsigned.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Where a node sits in its parent, to spell its path when one is needed (rarely: a kept
/// scalar, a duplicate key); paths are not built for every node.
enum Seg {
    Root,
    Key(String),
    Index(usize),
}

enum Frame {
    Map {
        id: NodeId,
        seg: Seg,
        map: Map<String, Value>,
        /// The key read, waiting for its value, and where it is.
        key: Option<(String, Pos)>,
        seen_key: bool,
        anchor: usize,
    },
    Seq {
        id: NodeId,
        seg: Seg,
        items: Vec<Value>,
        anchor: usize,
    },
}

impl Frame {
    fn seg(&self) -> &Seg {
        match self {
            Frame::Map { seg, .. } | Frame::Seq { seg, .. } => seg,
        }
    }
}

#[derive(Default)]
struct Builder {
    index: PositionIndex,
    stack: Vec<Frame>,
    root: Option<Value>,
    anchors: std::collections::HashMap<usize, Value>,
    /// Events of the document, and nodes produced by aliases (bounded by ALIAS_FACTOR).
    events: usize,
    expanded: usize,
    docs: usize,
    duplicate: bool,
    error: Option<(Pos, String)>,
}

fn nodes(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(nodes).sum::<usize>(),
        Value::Object(m) => 1 + m.values().map(nodes).sum::<usize>(),
        _ => 1,
    }
}

fn push_seg(path: &mut String, seg: &Seg) {
    match seg {
        Seg::Root => {}
        Seg::Key(k) => {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(k);
        }
        Seg::Index(i) => {
            path.push('[');
            path.push_str(&i.to_string());
            path.push(']');
        }
    }
}

/// Scalars a later check reads as written (see [`PositionIndex::scalars`]).
fn kept(raw: &str, key: Option<&str>, v: Option<&Value>) -> bool {
    super::is_template(raw)
        || matches!(key, Some("expr" | "when" | "while"))
        || (v.is_some_and(Value::is_null) && !matches!(raw, "" | "~" | "null" | "Null" | "NULL"))
}

impl Builder {
    /// The path of the container being filled, plus `last`.
    fn path(&self, last: Option<&Seg>) -> String {
        let mut p = String::new();
        for f in &self.stack {
            push_seg(&mut p, f.seg());
        }
        if let Some(l) = last {
            push_seg(&mut p, l);
        }
        p
    }

    /// A node starts: its place in the parent (the key waiting there, or the next index) and
    /// its key's position.
    fn place(&mut self) -> (Seg, Pos, Option<NodeId>) {
        match self.stack.last_mut() {
            None => (Seg::Root, Pos::default(), None),
            Some(Frame::Seq { id, items, .. }) => {
                (Seg::Index(items.len()), Pos::default(), Some(*id))
            }
            Some(Frame::Map { id, key, .. }) => match key {
                Some((k, at)) => (Seg::Key(k.clone()), *at, Some(*id)),
                None => (Seg::Root, Pos::default(), Some(*id)),
            },
        }
    }

    /// Records a node in the index under its parent.
    fn node(&mut self, pos: Pos, container: Option<bool>) -> (NodeId, Seg) {
        let (seg, key_pos, parent) = self.place();
        let id = self.index.add(pos, key_pos, container);
        if let Some(p) = parent {
            let key = match &seg {
                Seg::Key(k) => Some(k.as_str()),
                _ => None,
            };
            self.index.adopt(p, key, id);
        }
        (id, seg)
    }

    /// Puts a finished node into its parent (or makes it the document).
    fn attach(&mut self, v: Value, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, v.clone());
        }
        match self.stack.last_mut() {
            None => {
                self.root.get_or_insert(v);
            }
            Some(Frame::Seq { items, .. }) => items.push(v),
            Some(Frame::Map { map, key, .. }) => {
                if let Some((k, _)) = key.take() {
                    map.insert(k, v);
                }
            }
        }
    }

    fn fail(&mut self, pos: Pos, msg: String) {
        self.error.get_or_insert((pos, msg));
    }

    fn is_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = pos_of(&mark);
        if self.error.is_some() || (self.docs > 1 && !matches!(ev, Event::DocumentStart)) {
            return;
        }
        self.events += 1;
        match ev {
            Event::DocumentStart => {
                self.docs += 1;
                if self.docs == 2 {
                    self.index.problems.push((
                        pos,
                        "a spec file holds one YAML document; this is a second one (`---`)".into(),
                    ));
                }
            }
            Event::Scalar(value, ..) if self.is_key() => {
                let Some(Frame::Map { id, seen_key, .. }) = self.stack.last_mut() else {
                    return;
                };
                // A block mapping's start mark is unreliable; its first key says where it begins.
                if !std::mem::replace(seen_key, true) {
                    let id = *id;
                    self.index.set_pos(id, pos);
                }
                let Some(Frame::Map { map, .. }) = self.stack.last() else {
                    return;
                };
                if map.contains_key(&value) {
                    let path = self.path(None);
                    let at = if path.is_empty() {
                        String::new()
                    } else {
                        format!(" in `{path}`")
                    };
                    self.index
                        .problems
                        .push((pos, format!("duplicate key `{value}`{at}")));
                    self.duplicate = true;
                }
                if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                    *key = Some((value, pos));
                }
            }
            Event::Scalar(value, style, anchor, tag) => {
                let v = match resolve(&value, style, tag.as_ref()) {
                    Ok(v) => v,
                    Err(msg) => return self.fail(pos, msg),
                };
                let (_, seg) = self.node(pos, None);
                let key = match &seg {
                    Seg::Key(k) => Some(k.as_str()),
                    _ => None,
                };
                let v = if kept(&value, key, v.as_ref()) {
                    let path = self.path(Some(&seg));
                    let v = v.unwrap_or_else(|| Value::String(value.clone()));
                    self.index.scalars.push(ScalarAt {
                        path,
                        value,
                        pos,
                        quoted: style != TScalarStyle::Plain,
                    });
                    v
                } else {
                    v.unwrap_or(Value::String(value))
                };
                self.attach(v, anchor);
            }
            Event::Alias(id) => {
                self.index.first_alias.get_or_insert(pos);
                if self.is_key() {
                    return self.fail(pos, "an alias (`*name`) cannot be a mapping key".into());
                }
                let Some(v) = self.anchors.get(&id).cloned() else {
                    return self.fail(pos, "unknown anchor".into());
                };
                self.expanded += nodes(&v);
                if self.expanded > ALIAS_FACTOR * self.events.max(100) {
                    let at = self.index.first_alias.unwrap_or(pos);
                    return self.fail(
                        at,
                        format!(
                            "repetition limit exceeded: the aliases (`*name`) expand to more than \
                             {ALIAS_FACTOR} times the nodes written"
                        ),
                    );
                }
                self.node(pos, None);
                self.attach(v, 0);
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                if self.is_key() {
                    return self.fail(pos, "a mapping key must be a scalar (a name)".into());
                }
                if self.stack.len() >= MAX_DEPTH {
                    return self.fail(
                        pos,
                        format!("the YAML is nested deeper than {MAX_DEPTH} levels"),
                    );
                }
                let is_map = matches!(ev, Event::MappingStart(..));
                let (id, seg) = self.node(pos, Some(is_map));
                self.stack.push(if is_map {
                    Frame::Map {
                        id,
                        seg,
                        map: Map::new(),
                        key: None,
                        seen_key: false,
                        anchor,
                    }
                } else {
                    Frame::Seq {
                        id,
                        seg,
                        items: Vec::new(),
                        anchor,
                    }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => match self.stack.pop() {
                Some(Frame::Map { map, anchor, .. }) => self.attach(Value::Object(map), anchor),
                Some(Frame::Seq { items, anchor, .. }) => self.attach(Value::Array(items), anchor),
                None => {}
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value(text: &str) -> Value {
        parse(text).unwrap().value
    }

    #[test]
    fn scalars_resolve_as_the_core_schema_says() {
        let v = value(
            "a: ~\nb: null\nc:\nd: true\ne: FALSE\nf: 12\ng: -3\nh: 0x1f\ni: 0o17\nj: 0b11\n\
             k: 1.5\nl: .inf\nm: 007\nn: '12'\no: yes\np: 1_000\nq: +7\nr: inf\ns: 1e3\n\
             t: !!str 5\nu: 18446744073709551616\n",
        );
        assert_eq!(
            v,
            json!({"a": null, "b": null, "c": null, "d": true, "e": false, "f": 12, "g": -3,
                   "h": 31, "i": 15, "j": 3, "k": 1.5, "l": null, "m": "007", "n": "12",
                   "o": "yes", "p": "1_000", "q": 7, "r": "inf", "s": 1000.0, "t": "5",
                   "u": 18446744073709551616.0})
        );
    }

    #[test]
    fn values_and_positions_come_from_one_parse() {
        let text = "id: a\nsteps:\n  - name: one\n    http: {path: /x}\n";
        let doc = parse(text).unwrap();
        assert_eq!(
            doc.value,
            json!({"id": "a", "steps": [{"name": "one", "http": {"path": "/x"}}]})
        );
        assert_eq!(
            doc.index.get("steps[0].http.path"),
            Pos { line: 4, col: 18 }
        );
        assert_eq!(doc.index.key("steps[0].http"), Pos { line: 4, col: 5 });
        assert!(!doc.unreadable);
    }

    #[test]
    fn anchors_expand_and_bombs_are_refused_at_the_first_alias() {
        assert_eq!(
            value("a: &x [1, 2]\nb: *x\n"),
            json!({"a": [1, 2], "b": [1, 2]})
        );
        let mut bomb = String::from("a: &a [1,1,1,1,1,1,1,1,1]\n");
        for (i, c) in ('b'..='j').enumerate() {
            let prev = (b'a' + i as u8) as char;
            bomb.push_str(&format!(
                "{c}: &{c} [{}]\n",
                vec![format!("*{prev}"); 9].join(",")
            ));
        }
        let (pos, msg) = parse(&bomb).unwrap_err();
        assert_eq!(pos, Pos { line: 2, col: 8 });
        assert!(msg.contains("repetition limit"), "{msg}");
    }

    #[test]
    fn depth_duplicates_tags_and_second_documents() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(parse(&deep).unwrap_err().1.contains("nested deeper"));
        let doc = parse("a: 1\nb:\n  c: 1\n  c: 2\n").unwrap();
        assert!(doc.unreadable);
        assert_eq!(doc.index.problems[0].1, "duplicate key `c` in `b`");
        let doc = parse("a: 1\n---\nb: 2\n").unwrap();
        assert_eq!(doc.value, json!({"a": 1}));
        assert!(!doc.unreadable && doc.index.problems.len() == 1);
        assert!(parse("a: !custom 1\n").unwrap_err().1.contains("`!custom`"));
        assert_eq!(value("# only a comment\n"), Value::Null);
        assert_eq!(value("1: a\n"), json!({"1": "a"}));
        assert!(parse("? [a]\n: b\n").is_err());
    }

    #[test]
    fn typed_reads_locate_their_errors_and_values_print_back() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        struct T {
            #[allow(dead_code)]
            a: u32,
        }
        let e = from_str::<T>("a: 1\nb: 2\n").unwrap_err();
        assert!(e.starts_with("2:1: unknown field `b`"), "{e}");
        let e = from_str::<T>("a: x\n").unwrap_err();
        assert!(e.starts_with("1:4: invalid type: string"), "{e}");
        let v = json!({"kind": "Job", "spec": {"n": 2, "list": ["a", "1"], "f": 1.5}});
        let text = to_string(&v);
        assert_eq!(value(&text), v, "{text}");
        assert!(text.starts_with("kind: Job\n"), "{text}");
    }
}
