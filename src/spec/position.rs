//! Source positions for YAML nodes, keyed by their path (`steps[2].expect.json[0].path`).
//!
//! serde_yaml gives positions only for its own errors; everything found later (a bad
//! JSONPath, an undefined template variable, a failing assertion) is located through
//! this index, built from yaml-rust2's marked events.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::Pos;

/// A scalar string found in the document, with its path and position.
#[derive(Debug, Clone)]
pub struct ScalarAt {
    pub path: String,
    pub value: String,
    pub pos: Pos,
    /// Quoted or block scalars are strings for sure; plain ones may be numbers.
    pub quoted: bool,
}

/// Path -> position of every node (and of every mapping key, under `path#key`).
#[derive(Debug, Default)]
pub struct PositionIndex {
    nodes: HashMap<String, Pos>,
    pub scalars: Vec<ScalarAt>,
    /// Problems YAML parsers accept or report without a position: duplicate keys, a second document.
    pub problems: Vec<(Pos, String)>,
    /// Where the first alias (`*name`) is, for errors about alias expansion.
    pub first_alias: Option<Pos>,
}

impl PositionIndex {
    /// Builds the index; a YAML syntax error is returned with its position.
    pub fn build(text: &str) -> Result<Self, (Pos, String)> {
        let mut b = Builder::default();
        let mut parser = Parser::new_from_str(text);
        parser.load(&mut b, true).map_err(|e| {
            let m = e.marker();
            (
                Pos {
                    line: m.line() as u32,
                    col: m.col() as u32 + 1,
                },
                e.info().to_string(),
            )
        })?;
        Ok(b.index)
    }

    /// Position of the node at `path`, or of its closest ancestor that has a line and a column;
    /// at worst the start of the file: a diagnostic is never without `line:col`.
    pub fn get(&self, path: &str) -> Pos {
        let known = |p: &str| {
            self.nodes
                .get(p)
                .copied()
                .filter(|x| x.line > 0 && x.col > 0)
        };
        let mut p = path;
        loop {
            if let Some(pos) = known(p) {
                return pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return known("").unwrap_or(Pos { line: 1, col: 1 }),
            }
        }
    }

    /// Position of the key of a mapping entry (`steps[0].expect`), falling back to the value.
    pub fn key(&self, path: &str) -> Pos {
        self.nodes
            .get(&format!("{path}#key"))
            .copied()
            .filter(|x| x.line > 0 && x.col > 0)
            .unwrap_or_else(|| self.get(path))
    }
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        seen_key: bool,
        keys: std::collections::HashSet<String>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Builder {
    index: PositionIndex,
    stack: Vec<Frame>,
    depth_docs: usize,
}

fn pos_of(m: &Marker) -> Pos {
    // yaml-rust2 lines are 1-based and columns 0-based.
    Pos {
        line: m.line() as u32,
        col: m.col() as u32 + 1,
    }
}

impl Builder {
    /// The path of the node that starts now, advancing the parent's cursor.
    /// Returns None when the event is a mapping key (it is recorded as the pending key).
    fn next_path(&mut self, scalar_key: Option<&str>, pos: Pos) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key, .. }) => match key.take() {
                Some(k) => Some(if path.is_empty() {
                    k
                } else {
                    format!("{path}.{k}")
                }),
                None => {
                    let k = scalar_key.unwrap_or("?").to_string();
                    let full = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    self.index.nodes.insert(format!("{full}#key"), pos);
                    *key = Some(k);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = pos_of(&mark);
        if self.depth_docs > 1 && !matches!(ev, Event::DocumentStart) {
            return;
        }
        match ev {
            Event::DocumentStart => {
                self.depth_docs += 1;
                if self.depth_docs == 2 {
                    self.index.problems.push((
                        pos,
                        "a spec file holds one YAML document; this is a second one (`---`)".into(),
                    ));
                }
            }
            Event::Scalar(value, style, ..) => {
                let is_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                if is_key {
                    // A block mapping's start mark is unreliable; its first key says where it begins.
                    if let Some(Frame::Map {
                        path,
                        seen_key,
                        keys,
                        ..
                    }) = self.stack.last_mut()
                    {
                        if !*seen_key {
                            *seen_key = true;
                            self.index.nodes.insert(path.clone(), pos);
                        }
                        if !keys.insert(value.clone()) {
                            let at = if path.is_empty() {
                                String::new()
                            } else {
                                format!(" in `{path}`")
                            };
                            self.index
                                .problems
                                .push((pos, format!("duplicate key `{value}`{at}")));
                        }
                    }
                    self.next_path(Some(&value), pos);
                } else if let Some(path) = self.next_path(None, pos) {
                    self.index.nodes.insert(path.clone(), pos);
                    self.index.scalars.push(ScalarAt {
                        path,
                        value,
                        pos,
                        quoted: style != TScalarStyle::Plain,
                    });
                }
            }
            Event::Alias(_) => {
                self.index.first_alias.get_or_insert(pos);
                if let Some(path) = self.next_path(Some("*alias"), pos) {
                    self.index.nodes.insert(path, pos);
                }
            }
            Event::MappingStart(..) => {
                let path = self.next_path(Some("?"), pos).unwrap_or_default();
                self.index.nodes.insert(path.clone(), pos);
                self.stack.push(Frame::Map {
                    path,
                    key: None,
                    seen_key: false,
                    keys: Default::default(),
                });
            }
            Event::SequenceStart(..) => {
                let path = self.next_path(Some("?"), pos).unwrap_or_default();
                self.index.nodes.insert(path.clone(), pos);
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_positions() {
        let text = "id: a\nsteps:\n  - name: one\n    http:\n      path: /x\n    expect:\n      json:\n        - path: $.a\n          equals: 1\n";
        let idx = PositionIndex::build(text).unwrap();
        assert_eq!(idx.get("id"), Pos { line: 1, col: 5 });
        assert_eq!(idx.get("steps[0]"), Pos { line: 3, col: 5 });
        assert_eq!(idx.get("steps[0].http.path"), Pos { line: 5, col: 13 });
        assert_eq!(idx.key("steps[0].expect"), Pos { line: 6, col: 5 });
        assert_eq!(idx.get("steps[0].expect.json[0]"), Pos { line: 8, col: 11 });
        // unknown paths fall back to the nearest ancestor
        assert_eq!(idx.get("steps[0].http.nope"), Pos { line: 5, col: 7 });
        // ...and with no node at all, the start of the file, never an unknown position
        assert_eq!(PositionIndex::default().get("a.b"), Pos { line: 1, col: 1 });
        assert!(idx
            .scalars
            .iter()
            .any(|s| s.path == "steps[0].expect.json[0].path" && s.value == "$.a"));
    }

    #[test]
    fn syntax_error_has_position() {
        let err = PositionIndex::build("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.0.line >= 1, "{err:?}");
    }

    #[test]
    fn duplicate_keys_and_second_documents_are_located() {
        let idx = PositionIndex::build("a: 1\nb:\n  c: 1\n  c: 2\n---\nd: 1\n").unwrap();
        assert_eq!(
            idx.problems,
            vec![
                (
                    Pos { line: 4, col: 3 },
                    "duplicate key `c` in `b`".to_string()
                ),
                (
                    Pos { line: 5, col: 1 },
                    "a spec file holds one YAML document; this is a second one (`---`)".to_string()
                )
            ]
        );
        assert_eq!(idx.get("d"), idx.get(""));
        let idx = PositionIndex::build("a: &x [1]\nb: *x\n").unwrap();
        assert_eq!(idx.first_alias, Some(Pos { line: 2, col: 4 }));
    }
}
