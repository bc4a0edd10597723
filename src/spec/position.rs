//! Source positions for YAML nodes: a tree of the document's shape, walked node by node or
//! by a path (`steps[2].expect.json[0].path`).
//!
//! Built by the same parse that reads the values (`super::yaml`): everything found after it
//! (a bad JSONPath, an undefined template variable, a failing assertion) is located here.

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

/// The position of every node of a document (and of every mapping key), as a tree of the
/// document's shape: looked up by walking it, by a path (`steps[0].expect`) or node by node.
#[derive(Debug, Default)]
pub struct PositionIndex {
    nodes: Vec<Node>,
    /// The children of each sequence.
    seqs: Vec<Vec<NodeId>>,
    /// The text of every mapping key.
    keys: String,
    /// Scalars later checks read as written: templates, expressions (`expr`, `when`, `while`)
    /// and plain words a value lost (`.nan` resolves to null). Other scalars are not kept.
    pub scalars: Vec<ScalarAt>,
    /// Problems YAML parsers accept or report without a position: duplicate keys, a second document.
    pub problems: Vec<(Pos, String)>,
    /// Where the first alias (`*name`) is, for errors about alias expansion.
    pub first_alias: Option<Pos>,
}

/// A node of the tree: its position, its key's (in a mapping), its children. Compact, as a
/// long spec has a few of them per step: a mapping's children are a linked list (mappings are
/// small), a sequence's are a list (looked up by index), keys are kept in one text.
#[derive(Debug)]
struct Node {
    pos: Pos,
    key: Pos,
    /// The key's text in `keys` (start, length).
    key_text: (u32, u32),
    /// A mapping's first child; a sequence's list in `seqs`; NONE for a scalar.
    first: u32,
    /// The next child of the same mapping, or NONE.
    next: u32,
    /// The last child of a mapping (to append in O(1)); unused otherwise.
    last: u32,
    kind: u8,
}

const NONE: u32 = u32::MAX;
const LEAF: u8 = 0;
const MAP: u8 = 1;
const SEQ: u8 = 2;

/// A node of a [`PositionIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeId(u32);

impl PositionIndex {
    /// Builds the index alone (the value is dropped): see [`super::yaml::parse`].
    pub fn build(text: &str) -> Result<Self, (Pos, String)> {
        super::yaml::parse(text).map(|d| d.index)
    }

    pub(crate) fn reserve(&mut self, nodes: usize, key_bytes: usize) {
        self.nodes.reserve(nodes);
        self.keys.reserve(key_bytes);
    }

    /// Adds a node (`container`: Some(true) a mapping, Some(false) a sequence); it gets its
    /// children with [`Self::adopt`].
    pub(crate) fn add(&mut self, pos: Pos, key: Pos, container: Option<bool>) -> NodeId {
        let id = NodeId(self.nodes.len() as u32);
        let (kind, first) = match container {
            None => (LEAF, NONE),
            Some(true) => (MAP, NONE),
            Some(false) => {
                self.seqs.push(Vec::new());
                (SEQ, self.seqs.len() as u32 - 1)
            }
        };
        self.nodes.push(Node {
            pos,
            key,
            key_text: (0, 0),
            first,
            next: NONE,
            last: NONE,
            kind,
        });
        id
    }

    /// Makes `child` the next child of `parent` (under `key` in a mapping).
    pub(crate) fn adopt(&mut self, parent: NodeId, key: Option<&str>, child: NodeId) {
        let p = &self.nodes[parent.0 as usize];
        match (p.kind, key) {
            (MAP, Some(k)) => {
                let start = self.keys.len() as u32;
                self.keys.push_str(k);
                self.nodes[child.0 as usize].key_text = (start, k.len() as u32);
                let p = &mut self.nodes[parent.0 as usize];
                let prev = std::mem::replace(&mut p.last, child.0);
                if prev == NONE {
                    p.first = child.0;
                } else {
                    self.nodes[prev as usize].next = child.0;
                }
            }
            (SEQ, _) => self.seqs[p.first as usize].push(child),
            _ => {}
        }
    }

    fn key_of(&self, n: &Node) -> &str {
        let (start, len) = n.key_text;
        &self.keys[start as usize..(start + len) as usize]
    }

    /// The children of a mapping, with their keys.
    fn entries(&self, id: NodeId) -> impl Iterator<Item = (&str, NodeId)> {
        let n = &self.nodes[id.0 as usize];
        let mut at = if n.kind == MAP { n.first } else { NONE };
        std::iter::from_fn(move || {
            (at != NONE).then(|| {
                let c = &self.nodes[at as usize];
                let out = (self.key_of(c), NodeId(at));
                at = c.next;
                out
            })
        })
    }

    /// A mapping's position is its first key's (a block mapping's own start mark is unreliable).
    pub(crate) fn set_pos(&mut self, id: NodeId, pos: Pos) {
        self.nodes[id.0 as usize].pos = pos;
    }

    /// The document's node (none for an empty document).
    pub fn root(&self) -> Option<NodeId> {
        (!self.nodes.is_empty()).then_some(NodeId(0))
    }

    /// The value under `key` of the mapping `id`.
    pub fn child(&self, id: NodeId, key: &str) -> Option<NodeId> {
        // The last of duplicate keys, as the value keeps it.
        self.entries(id)
            .filter(|(k, _)| *k == key)
            .last()
            .map(|(_, c)| c)
    }

    /// Item `i` of the sequence `id`.
    pub fn item(&self, id: NodeId, i: usize) -> Option<NodeId> {
        let n = &self.nodes[id.0 as usize];
        (n.kind == SEQ).then(|| self.seqs[n.first as usize].get(i).copied())?
    }

    /// Where the node is (never without line and column once parsed).
    pub fn pos(&self, id: NodeId) -> Pos {
        self.nodes[id.0 as usize].pos
    }

    /// Where the node's key is (in a mapping), else where the node is.
    pub fn key_pos(&self, id: NodeId) -> Pos {
        let n = &self.nodes[id.0 as usize];
        if n.key.line > 0 {
            n.key
        } else {
            n.pos
        }
    }

    /// The node at `path` (`steps[0].expect.json[0]`), as deep as the path leads: the node
    /// and whether the whole path was found.
    fn walk(&self, path: &str) -> Option<(NodeId, bool)> {
        let mut at = self.root()?;
        let mut rest = path;
        while !rest.is_empty() {
            let next = match self.nodes[at.0 as usize].kind {
                SEQ => rest
                    .strip_prefix('[')
                    .and_then(|r| r.split_once(']'))
                    .and_then(|(n, r)| Some((self.item(at, n.parse::<usize>().ok()?)?, r))),
                // The longest key the path goes on from (a key may hold a dot).
                MAP => self
                    .entries(at)
                    .filter(|(k, _)| {
                        rest.strip_prefix(*k)
                            .is_some_and(|r| r.is_empty() || r.starts_with(['.', '[']))
                    })
                    .max_by_key(|(k, _)| k.len())
                    .map(|(k, c)| (c, &rest[k.len()..])),
                _ => None,
            };
            let Some((child, r)) = next else {
                return Some((at, false));
            };
            at = child;
            rest = r.strip_prefix('.').unwrap_or(r);
        }
        Some((at, true))
    }

    /// Position of the node at `path`, or of its closest ancestor: at worst the start of the
    /// file, so a diagnostic is never without `line:col`.
    pub fn get(&self, path: &str) -> Pos {
        match self.walk(path) {
            Some((id, _)) => self.pos(id),
            None => Pos { line: 1, col: 1 },
        }
    }

    /// Position of the key of a mapping entry (`steps[0].expect`), falling back to the value.
    pub fn key(&self, path: &str) -> Pos {
        match self.walk(path) {
            Some((id, true)) => self.key_pos(id),
            Some((id, false)) => self.pos(id),
            None => Pos { line: 1, col: 1 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_positions() {
        let text = "id: a\nsteps:\n  - name: one\n    http:\n      path: /x\n    expect:\n      json:\n        - path: $.a\n          equals: '{{ a }}'\n";
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
            .any(|s| s.path == "steps[0].expect.json[0].equals" && s.value == "{{ a }}"));
        // Only scalars a later check reads as written are kept.
        assert_eq!(idx.scalars.len(), 1);
        // Walked node by node, as the loader assigns positions.
        let root = idx.root().unwrap();
        let step = idx.item(idx.child(root, "steps").unwrap(), 0).unwrap();
        assert_eq!(
            idx.key_pos(idx.child(step, "expect").unwrap()),
            Pos { line: 6, col: 5 }
        );
        assert_eq!(idx.child(step, "nope"), None);
        // A key holding a dot is found by its path too.
        let idx = PositionIndex::build("vars:\n  a.b: 1\n  a: {c: 2}\n").unwrap();
        assert_eq!(idx.get("vars.a.b"), Pos { line: 2, col: 8 });
        assert_eq!(idx.get("vars.a.c"), Pos { line: 3, col: 10 });
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
