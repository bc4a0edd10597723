//! Source positions for YAML nodes, keyed by their path (`steps[2].expect.json[0].path`).
//!
//! Built by the same parse that reads the values (`super::yaml`): everything found after it
//! (a bad JSONPath, an undefined template variable, a failing assertion) is located here.

use std::collections::HashMap;

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
    /// Builds the index alone (the value is dropped): see [`super::yaml::parse`].
    pub fn build(text: &str) -> Result<Self, (Pos, String)> {
        super::yaml::parse(text).map(|d| d.index)
    }

    pub(crate) fn insert(&mut self, path: String, pos: Pos) {
        self.nodes.insert(path, pos);
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
