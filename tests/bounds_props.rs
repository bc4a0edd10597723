//! Property tests of the loading bounds (issue 24): generated include graphs (long chains,
//! fragments that include the next several times, cycles, random graphs, includes inside
//! loops) and generated nested loops (`foreach` over large ranges and lists, `repeat`). Each
//! case is a project checked by `focusqa validate` and compared with a model of the limits: a
//! spec within them is valid (and, when small, loads with exactly the expanded steps the model
//! counts); one beyond them is refused (exit 2) with diagnostics at `file:line:col` on the
//! `include:` or loop line that crosses the limit, each place reported once. The limits stop
//! the work by construction, so the tests assert outcomes and positions, not times (a watchdog
//! only turns a hang into a failure).
//!
//! `validate` runs as a child process: expanding up to 100,000 steps takes a few hundred MiB,
//! which in this shared test process would raise the peak RSS that other tests read from their
//! own children (a child started by posix_spawn inherits its parent's high-water mark at exec).

use crate::common;

use common::Project;
use focusqa::loading::load_file_with;
use focusqa::spec::{Access, Step, MAX_LOOP_RUNS, MAX_NESTING, MAX_STEPS};
use proptest::prelude::*;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Cases per property (`FOCUSQA_PROPTEST_CASES` overrides, as in tests/validate.rs).
fn cases(default: u32) -> u32 {
    std::env::var("FOCUSQA_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const ASSERT: &str = "- assert: [{value: \"{{ 1 }}\", equals: \"1\"}]\n";

/// One fragment `f<i>.yaml`: `asserts` assertions, then its includes (by fragment index),
/// written inside a one-item `foreach` when `wrapped`.
#[derive(Clone, Debug)]
struct Fragment {
    asserts: usize,
    includes: Vec<usize>,
    wrapped: bool,
}

impl Fragment {
    fn text(&self) -> String {
        let mut t = ASSERT.repeat(self.asserts);
        if self.includes.is_empty() {
            if self.asserts == 0 {
                t.push_str(ASSERT);
            }
            return t;
        }
        let indent = if self.wrapped {
            t.push_str("- foreach:\n    items: [1]\n    as: w\n    steps:\n");
            "      "
        } else {
            ""
        };
        for j in &self.includes {
            t.push_str(&format!("{indent}- include: f{j}.yaml\n"));
        }
        t
    }

    /// Its own steps, blocks counted once (an empty fragment is written with one assertion).
    fn own_steps(&self) -> usize {
        if self.includes.is_empty() {
            self.asserts.max(1)
        } else {
            self.asserts + self.includes.len() + usize::from(self.wrapped)
        }
    }
}

/// What loading a graph must give.
#[derive(Debug, PartialEq)]
enum Expected {
    /// Loads, with this many steps once expanded (blocks counted once each).
    Steps(usize),
    /// Refused: a cycle, too deep, or too many steps.
    Refused,
}

/// The model: the spec includes `f0.yaml`. A cycle reachable from f0, an include nested more
/// than MAX_NESTING levels deep or more than MAX_STEPS expanded steps is refused.
fn model(frags: &[Fragment]) -> Expected {
    let n = frags.len();
    // Iterative DFS: colour 0 new, 1 on the stack, 2 done; memo of (expanded steps, deepest
    // include level below the fragment's own steps, relative).
    let mut colour = vec![0u8; n];
    let mut memo: Vec<(u64, usize)> = vec![(0, 0); n];
    let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
    colour[0] = 1;
    while let Some(&mut (f, ref mut next)) = stack.last_mut() {
        if let Some(&c) = frags[f].includes.get(*next) {
            *next += 1;
            match colour[c] {
                1 => return Expected::Refused,
                0 => {
                    colour[c] = 1;
                    stack.push((c, 0));
                }
                _ => {}
            }
            continue;
        }
        let wrap = usize::from(frags[f].wrapped);
        let mut steps = frags[f].own_steps() as u64;
        // An include in this fragment sits 1 (+1 wrapped) level below the fragment's steps.
        let mut deepest = if frags[f].includes.is_empty() {
            0
        } else {
            1 + wrap
        };
        for &c in &frags[f].includes {
            steps = steps.saturating_add(memo[c].0);
            deepest = deepest.max(1 + wrap + memo[c].1);
        }
        memo[f] = (steps, deepest);
        colour[f] = 2;
        stack.pop();
    }
    // The spec's own `include:` is level 1 and f0's steps sit at depth 1.
    let (steps, deepest) = memo[0];
    let total = steps.saturating_add(1);
    if 1 + deepest > MAX_NESTING || total > MAX_STEPS as u64 {
        Expected::Refused
    } else {
        Expected::Steps(total as usize)
    }
}

fn count(steps: &[Step]) -> usize {
    steps
        .iter()
        .map(|s| 1 + s.kind.nested().into_iter().map(count).sum::<usize>())
        .sum()
}

/// A project with `specs/graph.yaml` including `fragments/f0.yaml`.
fn write_graph(frags: &[Fragment]) -> Project {
    let p = Project::new("http://127.0.0.1:9");
    let dir = p.path();
    std::fs::create_dir_all(dir.join("fragments")).unwrap();
    for (i, f) in frags.iter().enumerate() {
        std::fs::write(dir.join(format!("fragments/f{i}.yaml")), f.text()).unwrap();
    }
    p.spec(
        "graph.yaml",
        "id: graph\ntitle: Generated includes\nsteps:\n  - include: ../fragments/f0.yaml\n",
    );
    p
}

/// The spec's steps once expanded, loaded in-process (only for small specs: see the top).
fn loaded_steps(p: &Project) -> usize {
    let access = Access {
        roots: vec![std::fs::canonicalize(p.path()).unwrap()],
        max_body: None,
    };
    let spec = load_file_with(&p.path().join("specs/graph.yaml"), None, &[], &access).unwrap();
    count(&spec.steps)
}

/// One diagnostic as `validate` prints it.
#[derive(Debug)]
struct Diag {
    message: String,
    file: String,
    line: u32,
    col: u32,
    /// The source line shown under it.
    source: String,
}

impl std::fmt::Display for Diag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at {}:{}:{} `{}`",
            self.message, self.file, self.line, self.col, self.source
        )
    }
}

/// `focusqa validate` in the project: its exit code and diagnostics. A watchdog kills it after
/// two minutes (the bounded cases take well under two seconds even in a debug build).
fn validate(p: &Project) -> (i32, Vec<Diag>, String) {
    let mut child = p
        .command(&["validate"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).unwrap();
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            child.kill().unwrap();
            panic!("validate still running after 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let text = reader.join().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut diags = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(message) = l.strip_prefix("error: ") else {
            continue;
        };
        let Some(at) = lines.get(i + 1).and_then(|n| n.strip_prefix("  --> ")) else {
            continue;
        };
        let mut parts = at.rsplitn(3, ':');
        let col = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        let line: u32 = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        let file = parts.next().unwrap_or("").to_string();
        let source = lines
            .get(i + 3)
            .and_then(|n| n.strip_prefix(&format!("{line} | ")))
            .unwrap_or("")
            .to_string();
        diags.push(Diag {
            message: message.to_string(),
            file,
            line,
            col,
            source,
        });
    }
    (status.code().unwrap_or(-1), diags, text)
}

fn chain(len: usize, fan: usize) -> Vec<Fragment> {
    let mut v: Vec<Fragment> = (0..len)
        .map(|i| Fragment {
            asserts: 1,
            includes: vec![i + 1; fan],
            wrapped: false,
        })
        .collect();
    v.push(Fragment {
        asserts: 1,
        includes: vec![],
        wrapped: false,
    });
    v
}

fn graphs() -> impl Strategy<Value = Vec<Fragment>> {
    prop_oneof![
        // Chains, short to 3,000 fragments long.
        prop_oneof![1usize..40, 25usize..40, 40usize..3000].prop_map(|len| chain(len, 1)),
        // Fan-in doubling (or more): fragment i includes fragment i+1 `fan` times.
        (1usize..45, 2usize..5).prop_map(|(len, fan)| chain(len, fan)),
        // A chain whose last fragment includes an earlier one (a cycle), with doubling above.
        (1usize..60, any::<prop::sample::Index>(), 1usize..3).prop_map(|(len, back, fan)| {
            let mut v = chain(len, fan);
            let target = back.index(len + 1);
            v[len].includes.push(target);
            v
        }),
        // Random graphs (cycles, self-includes, diamonds), some includes inside a `foreach`.
        (2usize..30)
            .prop_flat_map(|n| {
                prop::collection::vec(
                    (
                        0usize..3,
                        prop::collection::vec(0..n, 0..4),
                        prop::bool::weighted(0.2),
                    ),
                    n,
                )
            })
            .prop_map(|v| {
                v.into_iter()
                    .map(|(asserts, includes, wrapped)| Fragment {
                        asserts,
                        includes,
                        wrapped,
                    })
                    .collect()
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(32)))]

    #[test]
    fn generated_include_graphs_load_or_end_with_a_diagnostic_at_an_include(frags in graphs()) {
        let p = write_graph(&frags);
        let (code, diags, text) = validate(&p);
        match model(&frags) {
            Expected::Steps(n) => {
                prop_assert_eq!(code, 0, "refused ({} steps expected): {}", n, text);
                if n <= 5_000 {
                    prop_assert_eq!(loaded_steps(&p), n);
                }
            }
            Expected::Refused => {
                // Before: a chain overflowed the stack (SIGABRT) and doubling never ended.
                prop_assert_eq!(code, 2, "{}", text);
                prop_assert!(!diags.is_empty(), "{}", text);
                // Every diagnostic is one of the three limits, at an `include:` (or the
                // `foreach` around it) of a fragment or of the spec, and each place once.
                let mut seen = HashSet::new();
                for d in &diags {
                    prop_assert!(d.line > 0 && d.col > 0, "{}", d);
                    prop_assert!(
                        d.message.starts_with("include cycle: ")
                            || d.message.contains(&format!(
                                "levels deep (blocks and includes counted), at most {MAX_NESTING}"
                            ))
                            || d.message.contains(&format!("more than {MAX_STEPS} steps")),
                        "{}", d
                    );
                    prop_assert!(
                        d.source.contains("- include: ") || d.source.contains("items: [1]"),
                        "not at an include: {}", d
                    );
                    prop_assert!(
                        d.file == "specs/graph.yaml" || d.file.starts_with("fragments/f"),
                        "{}", d
                    );
                    prop_assert!(seen.insert((d.file.clone(), d.line, d.col)), "repeated: {}", d);
                }
                // Bounded: at most one diagnostic per `include:` written.
                let sites: usize = frags.iter().map(|f| f.includes.len()).sum::<usize>() + 1;
                prop_assert!(diags.len() <= sites, "{} diagnostics", diags.len());
            }
        }
    }
}

/// One level of generated loops, outermost first.
#[derive(Clone, Debug)]
enum Level {
    /// `foreach` over `range(n)` (a template `validate` evaluates).
    Range(u64),
    /// `foreach` over a written-out list of `n` items.
    List(usize),
    /// `repeat` with `max` (counted only at run time).
    Repeat(u64),
}

/// The spec text, and the line of each level's `- foreach:` / `- repeat:` and of its items.
fn loops_text(levels: &[Level]) -> (String, Vec<(u32, u32)>) {
    let mut t = String::from("id: loops\ntitle: Generated nested loops\nsteps:\n");
    let mut lines = Vec::new();
    let mut line = 4u32;
    for (k, l) in levels.iter().enumerate() {
        let pad = " ".repeat(2 + 6 * k);
        let (kw, body) = match l {
            Level::Range(n) => (
                "foreach",
                format!("{pad}    items: \"{{{{ range({n}) }}}}\"\n{pad}    as: i{k}\n"),
            ),
            Level::List(n) => (
                "foreach",
                format!(
                    "{pad}    items: [{}]\n{pad}    as: i{k}\n",
                    vec!["1"; *n].join(", ")
                ),
            ),
            Level::Repeat(m) => (
                "repeat",
                format!("{pad}    while: \"{{{{ false }}}}\"\n{pad}    max: {m}\n"),
            ),
        };
        t.push_str(&format!("{pad}- {kw}:\n{body}{pad}    steps:\n"));
        lines.push((line, line + 1));
        line += 4;
    }
    let pad = " ".repeat(2 + 6 * levels.len());
    t.push_str(&format!("{pad}{ASSERT}"));
    (t, lines)
}

fn levels() -> impl Strategy<Value = Vec<Level>> {
    let level = prop_oneof![
        4 => prop_oneof![0u64..2000, 0u64..=100_000, 900u64..1600].prop_map(Level::Range),
        1 => (0usize..4).prop_map(Level::List),
        1 => (1u64..=10_000).prop_map(Level::Repeat),
    ];
    prop_oneof![
        prop::collection::vec(level.clone(), 1..6),
        prop::collection::vec(level, 28..40),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(48)))]

    #[test]
    fn generated_nested_loops_load_or_end_with_a_diagnostic_at_the_loop(levels in levels()) {
        let p = Project::new("http://127.0.0.1:9");
        let (text, lines) = loops_text(&levels);
        p.spec("loops.yaml", &text);
        let (code, diags, out) = validate(&p);
        // The model: too deep at level MAX_NESTING + 1 (reported where its block's body
        // starts, the line after `- foreach:` / `- repeat:`); and the first `foreach` where the
        // runs multiplied so far cross MAX_LOOP_RUNS (at its `items:` line). validate reports
        // every problem at once: both, when both are there.
        let deep = (levels.len() > MAX_NESTING).then(|| {
            (
                lines[MAX_NESTING].1,
                format!("is nested {} levels deep", MAX_NESTING + 1),
            )
        });
        let mut runs = 1u64;
        let mut crossing = None;
        for (k, l) in levels.iter().enumerate() {
            let n = match l {
                Level::Range(n) => *n,
                Level::List(n) => *n as u64,
                Level::Repeat(_) => continue,
            };
            runs = runs.saturating_mul(n);
            if runs > MAX_LOOP_RUNS {
                crossing = Some((lines[k].1, format!("would run {runs} times in all ({n} items")));
                break;
            }
        }
        let expected: Vec<(u32, String)> = deep.into_iter().chain(crossing).collect();
        if expected.is_empty() {
            prop_assert_eq!(code, 0, "refused:\n{}\n{}", out, text);
        } else {
            // Before: 1500 x 1500 passed validate, then the run grew until it aborted.
            prop_assert_eq!(code, 2, "expected {:?}:\n{}\n{}", expected, out, text);
            prop_assert_eq!(diags.len(), expected.len(), "{}", out);
            for (line, msg) in &expected {
                let d = diags.iter().find(|d| d.message.contains(msg.as_str()));
                prop_assert!(d.is_some(), "`{}` in:\n{}", msg, out);
                let d = d.unwrap();
                prop_assert_eq!(d.file.as_str(), "specs/loops.yaml", "{}", d);
                prop_assert_eq!((d.line, d.col > 0), (*line, true), "{}", d);
            }
        }
    }
}
