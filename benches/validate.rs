//! `cargo bench --bench validate`: what `focusqa validate` costs, in time and memory (issue 24:
//! on a fuzzed corpus its p99 had grown from 0.06 to 0.14 s per spec and its peak from 134 to
//! 374 MiB, all in specs with many steps).
//!
//! Scenarios (figures printed, nothing asserted):
//! - `steps`: `focusqa validate` of a 2,000-step and a 20,000-step spec (one request each), 5
//!   runs each: CPU and peak RSS, and per step the difference between the two (issue 26's
//!   targets: <= 10 us and <= 4 KB per step).
//! - `shipped`: `focusqa validate` of this repository's project (`specs/`, checked against its
//!   scope catalog), the binary run 5 times: median and worst wall time, peak RSS of the process
//!   (`wait4`); then each shipped spec loaded in-process as `validate` loads it: time per spec.
//! - `corpus1000`: 1,000 generated specs (fixed seed) in a temporary project: copies of the
//!   shipped specs, specs of 5 to 5,000 steps (requests, captures, assertions, loops), specs
//!   including shared fragments, and copies with a few bytes changed (mostly invalid). The
//!   whole `focusqa validate` (3 runs: wall time, peak RSS), then each spec in-process: p50, p90,
//!   p99 and worst time, and its peak RSS (VmHWM reset through /proc/self/clear_refs before each).
//!
//! `BENCH_ONLY=steps` runs only the first scenario; `BENCH_CORPUS=N` changes the corpus size; `BENCH_KEEP=1` prints and keeps its folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

// The allocator of the shipped binary (src/main.rs), so in-process figures are the binary's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use focusqa::config::Config;
use focusqa::loading::load_file_with;
use focusqa::spec::scope::Catalog;

const BIN: &str = env!("CARGO_BIN_EXE_focusqa");

fn vm_hwm_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Resets VmHWM to the current RSS (Linux 4.0+); false when the kernel refuses.
fn reset_hwm() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Runs `cmd` to its end: (exit code, wall seconds, its resource usage).
// The child is reaped by `wait4` (which reports its own peak RSS and CPU), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn run_reaped(cmd: &mut Command) -> (i32, f64, libc::rusage) {
    let t0 = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    let wall = t0.elapsed().as_secs_f64();
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    (code, wall, usage)
}

/// `focusqa validate` in `dir`: (exit code, wall seconds, peak RSS MiB of that process).
fn validate_process(dir: &Path) -> (i32, f64, f64) {
    let (code, wall, usage) = run_reaped(
        Command::new(BIN)
            .arg("validate")
            .current_dir(dir)
            .env("NO_COLOR", "1"),
    );
    (code, wall, usage.ru_maxrss as f64 / 1024.0)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Every spec file under `dir` (yaml, not the scope catalog nor `_`-prefixed fragments).
fn spec_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if p.is_dir() {
            spec_files(&p, out);
        } else if name.ends_with(".yaml") && name != "scope.yaml" && !name.starts_with('_') {
            out.push(p);
        }
    }
}

/// Loads each spec of the project in `dir` as `validate` does (its config, catalog, target
/// variables and file access): (time, peak RSS MiB, steps once expanded, valid) per spec.
fn load_each(dir: &Path, files: &[PathBuf]) -> Vec<(f64, f64, usize, bool, PathBuf)> {
    let config = Config::load(Some(&dir.join("focusqa.yaml"))).unwrap_or_else(|d| panic!("{d:?}"));
    let scope = config.resolve(&config.scope);
    let catalog = scope.exists().then(|| Catalog::load(&scope).unwrap());
    let vars = config.known_target_vars();
    let access = config.access();
    let can_reset = reset_hwm();
    let mut out = Vec::new();
    for f in files {
        if can_reset {
            reset_hwm();
        }
        let t0 = Instant::now();
        let r = load_file_with(f, catalog.as_ref(), &vars, &access);
        let took = t0.elapsed().as_secs_f64();
        let steps = match &r {
            Ok(s) => count_steps(&s.steps) + count_steps(&s.cleanup),
            Err(_) => 0,
        };
        out.push((
            took,
            if can_reset { vm_hwm_mib() } else { 0.0 },
            steps,
            r.is_ok(),
            f.clone(),
        ));
    }
    out
}

fn count_steps(steps: &[focusqa::spec::Step]) -> usize {
    steps
        .iter()
        .map(|s| 1 + s.kind.nested().into_iter().map(count_steps).sum::<usize>())
        .sum()
}

fn report_each(name: &str, each: &[(f64, f64, usize, bool, PathBuf)]) {
    let mut times: Vec<f64> = each.iter().map(|e| e.0).collect();
    times.sort_by(f64::total_cmp);
    let valid = each.iter().filter(|e| e.3).count();
    let slowest = each.iter().max_by(|a, b| a.0.total_cmp(&b.0)).unwrap();
    let biggest = each.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    println!(
        "{name} per spec (in-process, {} specs, {valid} valid): p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2} (slowest {} steps, {}) total_s={:.2} peak_rss_mib_max={:.1} (biggest {} steps)",
        each.len(),
        quantile(&times, 0.5) * 1e3,
        quantile(&times, 0.9) * 1e3,
        quantile(&times, 0.99) * 1e3,
        slowest.0 * 1e3,
        slowest.2,
        slowest.4.file_name().unwrap().to_string_lossy(),
        times.iter().sum::<f64>(),
        biggest.1,
        biggest.2,
    );
}

fn report_process(name: &str, dir: &Path, runs: usize) {
    let mut walls = Vec::new();
    let mut peak: f64 = 0.0;
    let mut code = 0;
    for _ in 0..runs {
        let (c, w, p) = validate_process(dir);
        walls.push(w);
        peak = peak.max(p);
        code = c;
    }
    walls.sort_by(f64::total_cmp);
    println!(
        "{name} `focusqa validate` (whole project, {runs} runs): exit={code} wall_s_median={:.3} wall_s_max={:.3} peak_rss_mib={:.1}",
        quantile(&walls, 0.5),
        walls.last().unwrap(),
        peak
    );
}

/// xorshift64*: a fixed, dependency-free sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Log-uniform in lo..=hi.
    fn log_between(&mut self, lo: u64, hi: u64) -> u64 {
        let f = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((lo as f64).ln() + f * ((hi as f64).ln() - (lo as f64).ln()))
            .exp()
            .round() as u64
    }
}

/// One generated step (top level or inside a loop), indented by `pad`.
fn step(r: &mut Rng, k: usize, pad: &str) -> String {
    match r.below(6) {
        0 => format!(
            "{pad}- name: configure {k}\n{pad}  http:\n{pad}    method: POST\n{pad}    path: /configure\n{pad}    json: {{channels: {{min: 0, max: \"{{{{ 10 + {k} % 50 }}}}\"}}, nfftSelection: 1024, view_type: 0}}\n{pad}  expect:\n{pad}    status: 200\n{pad}    json:\n{pad}      - {{path: $.status, equals: configured}}\n{pad}  capture:\n{pad}    job_{k}: $.job_id\n"
        ),
        1 => format!(
            "{pad}- name: metadata {k}\n{pad}  http: {{path: \"/metadata/{{{{ job_id | default('1-1') }}}}\", query: {{page: \"{{{{ {k} % 7 }}}}\"}}}}\n{pad}  expect: {{status: 200, json: [{{path: $.status, one_of: [running, pending]}}]}}\n"
        ),
        2 => format!(
            "{pad}- assert: [{{value: \"{{{{ ({k} * 3) | string }}}}\", equals: \"{}\"}}, {{value: \"{{{{ [1, 2, 3] | length }}}}\", equals: \"3\"}}]\n",
            k * 3
        ),
        3 => format!("{pad}- sleep: {}ms\n", 1 + k % 5),
        4 => format!(
            "{pad}- name: recordings {k}\n{pad}  http: {{path: /recordings, query: {{start_time: \"{{{{ 'x' ~ {k} }}}}\"}}}}\n{pad}  capture:\n{pad}    v{k}: {{path: $.items, default: null}}\n"
        ),
        _ => format!(
            "{pad}- http: {{method: DELETE, path: \"/job/{k}\"}}\n{pad}  expect: {{status: 200}}\n"
        ),
    }
}

/// A spec of `n` generated steps, some inside `foreach` loops.
fn many_steps(r: &mut Rng, id: &str, n: usize) -> String {
    let mut t = format!(
        "id: {id}\ntitle: Generated spec of {n} steps\ntags: [generated]\nvars:\n  job_id: \"1-1\"\nsteps:\n"
    );
    let mut k = 0;
    while k < n {
        if r.below(10) == 0 && n - k > 4 {
            let inner = 1 + r.below(4) as usize;
            t.push_str(&format!(
                "  - foreach:\n      items: \"{{{{ range({}) }}}}\"\n      as: item{k}\n      steps:\n",
                1 + r.below(20)
            ));
            for j in 0..inner {
                t.push_str(&step(r, k + 1 + j, "        "));
            }
            k += inner + 1;
        } else {
            t.push_str(&step(r, k, "  "));
            k += 1;
        }
    }
    t
}

/// Flips, deletes or duplicates a few bytes (ASCII only, so the text stays UTF-8).
fn mutate(r: &mut Rng, text: &str) -> String {
    let mut b: Vec<u8> = text.bytes().collect();
    for _ in 0..1 + r.below(4) {
        if b.is_empty() {
            break;
        }
        let at = r.below(b.len() as u64) as usize;
        match r.below(3) {
            0 => {
                b.remove(at);
            }
            1 => b.insert(at, b" :-[{}\"'#\n"[r.below(10) as usize]),
            _ => b[at] = b"abcxyz019_ "[r.below(11) as usize],
        }
    }
    String::from_utf8(b).unwrap_or_else(|_| text.to_string())
}

/// Writes the corpus project into `dir`: the repository's config and scope catalog, `n` specs
/// under `specs/corpus/`, shared fragments under `specs/fragments/`.
fn write_corpus(dir: &Path, n: usize) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("focusqa.yaml"), dir.join("focusqa.yaml")).unwrap();
    std::fs::create_dir_all(dir.join("specs/corpus")).unwrap();
    std::fs::create_dir_all(dir.join("specs/fragments")).unwrap();
    std::fs::copy(root.join("specs/scope.yaml"), dir.join("specs/scope.yaml")).unwrap();
    let mut shipped = Vec::new();
    spec_files(&root.join("specs"), &mut shipped);
    let shipped: Vec<String> = shipped
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let mut r = Rng(0x5eed_1234_abcd_0001);
    // Fragments (a `_` prefix keeps them out of the spec list) of 20 to 500 steps.
    for f in 0..5 {
        let steps = many_steps(&mut r, "x", [20, 50, 100, 200, 500][f]);
        let body = steps.split_once("steps:\n").unwrap().1;
        let body: String = body
            .lines()
            .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
            .collect();
        std::fs::write(dir.join(format!("specs/fragments/_f{f}.yaml")), body).unwrap();
    }
    let mut biggest = 0;
    for i in 0..n {
        let id = format!("corpus.s{i:04}");
        let text = match i % 20 {
            // Copies of the shipped specs, with their own ids.
            0..=7 => {
                let s = &shipped[i % shipped.len()];
                let old = s
                    .lines()
                    .find_map(|l| l.strip_prefix("id: "))
                    .unwrap()
                    .to_string();
                s.replacen(&format!("id: {old}"), &format!("id: {old}.{i:04}"), 1)
            }
            // Many steps: 5 to 5,000, log-uniform (so a few very large ones).
            8..=13 => {
                let steps = r.log_between(5, 5000) as usize;
                biggest = biggest.max(steps);
                many_steps(&mut r, &id, steps)
            }
            // Includes of the shared fragments, 1 to 20 of them.
            14..=15 => {
                let mut t =
                    format!("id: {id}\ntitle: Includes\nvars:\n  job_id: \"1-1\"\nsteps:\n");
                for _ in 0..1 + r.below(20) {
                    t.push_str(&format!(
                        "  - include: ../fragments/_f{}.yaml\n",
                        r.below(5)
                    ));
                }
                t
            }
            // A few bytes changed in a shipped or generated spec: mostly invalid.
            _ => {
                let base = if r.below(2) == 0 {
                    shipped[r.below(shipped.len() as u64) as usize].replacen(
                        "id: ",
                        &format!("id: m{i:04}"),
                        1,
                    )
                } else {
                    let steps = r.log_between(5, 500) as usize;
                    many_steps(&mut r, &id, steps)
                };
                mutate(&mut r, &base)
            }
        };
        std::fs::write(dir.join(format!("specs/corpus/s{i:04}.yaml")), text).unwrap();
    }
    biggest
}

/// CPU seconds (user + system) of a finished child, from `wait4`'s usage.
fn cpu_s(u: &libc::rusage) -> f64 {
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// `focusqa validate` of one spec file: (CPU seconds, peak RSS MiB), medians of `runs`.
fn validate_one(dir: &Path, file: &str, runs: usize) -> (f64, f64) {
    let mut cpu = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..runs {
        let (code, _, usage) =
            run_reaped(Command::new(BIN).args(["validate", file]).current_dir(dir));
        assert_eq!(code, 0, "{file} is valid");
        cpu.push(cpu_s(&usage));
        rss.push(usage.ru_maxrss as f64 / 1024.0);
    }
    cpu.sort_by(f64::total_cmp);
    rss.sort_by(f64::total_cmp);
    (quantile(&cpu, 0.5), quantile(&rss, 0.5))
}

/// `steps`: specs of 2,000 and 20,000 steps, one request each (the shape `scripts/peers.sh`
/// compares with a Hurl file of as many entries). The cost of a step is the difference between
/// the two divided by the 18,000 steps between them (start-up and the schema left out).
/// Targets (issue 26): at most 10 us of CPU and 4 KB of peak memory per step.
fn report_steps(runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut figures = Vec::new();
    for n in [2_000usize, 20_000] {
        let mut t = format!("id: steps.s{n}\ntitle: {n} requests, one step each\nsteps:\n");
        for _ in 0..n {
            t.push_str("  - {name: health, http: {path: /health}, expect: {status: 200}}\n");
        }
        let file = format!("s{n}.yaml");
        std::fs::write(dir.path().join(&file), t).unwrap();
        let (cpu, rss) = validate_one(dir.path(), &file, runs);
        println!(
            "steps{n} `focusqa validate` ({runs} runs, medians): cpu_s={cpu:.3} peak_rss_mib={rss:.1}"
        );
        figures.push((n as f64, cpu, rss));
    }
    let (a, b) = (figures[0], figures[1]);
    let steps = b.0 - a.0;
    println!(
        "steps per step: cpu_us={:.1} (target <= 10) peak_kib={:.1} (target <= 4)",
        (b.1 - a.1) * 1e6 / steps,
        (b.2 - a.2) * 1024.0 / steps
    );
}

fn main() {
    // `cargo bench` passes `--bench`; filters are ignored.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    println!("focusqa validate ({BIN})");

    // steps
    report_steps(5);
    if std::env::var("BENCH_ONLY").as_deref() == Ok("steps") {
        return;
    }

    // shipped
    report_process("shipped", root, 5);
    let mut files = Vec::new();
    spec_files(&root.join("specs"), &mut files);
    report_each("shipped", &load_each(root, &files));

    // corpus1000
    let n: usize = std::env::var("BENCH_CORPUS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let biggest = write_corpus(dir.path(), n);
    println!(
        "corpus{n}: generated in {:.2} s (largest generated spec {biggest} steps) at {}",
        t0.elapsed().as_secs_f64(),
        dir.path().display()
    );
    report_process(&format!("corpus{n}"), dir.path(), 3);
    let mut files = Vec::new();
    spec_files(&dir.path().join("specs/corpus"), &mut files);
    report_each(&format!("corpus{n}"), &load_each(dir.path(), &files));
    if std::env::var_os("BENCH_KEEP").is_some() {
        let kept = dir.keep();
        println!("kept {}", kept.display());
    }
}
