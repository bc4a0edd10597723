//! Command line: `run`, `validate`, `list`, `coverage`, `report`, `merge`, `sim`, `schema`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use regex::Regex;

use crate::config::Config;
use crate::engine::{Engine, Event, RunOptions};
use crate::loading::load_paths;
use crate::report::console::Console;
use crate::results::{ItemStatus, SpecResult};
use crate::spec::diag::Diagnostic;
use crate::spec::scope::Catalog;
use crate::spec::Spec;
use crate::targets::{Target, TargetOverrides};

/// Process exit codes (documented in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every case passed (or was skipped with a reason).
    Ok,
    /// At least one case failed or hit an error.
    TestFailed,
    /// Invalid specs, config or command line.
    Invalid,
    /// The target could not be prepared, or reports could not be written.
    Environment,
    /// Interrupted by Ctrl-C, SIGTERM or SIGHUP (cleanup ran, reports were written).
    Interrupted,
    /// Interrupted twice: the reports of what finished were written, cleanup may be incomplete.
    Aborted,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::TestFailed => 1,
            Exit::Invalid => 2,
            Exit::Environment => 3,
            Exit::Interrupted => 130,
            Exit::Aborted => 4,
        }
    }
}

const EXIT_CODES: &str = "Exit codes:
  0    every case passed (skipped cases are reported with their reason)
  1    at least one case failed (assertion) or errored (e.g. connection refused)
  2    invalid specs, scope catalog, config or command line (nothing was sent)
  3    the target could not be prepared, or reports could not be written
  4    aborted by a second interrupt: reports of what finished were written,
       cleanup may be incomplete (look for jobs left open)
  130  interrupted by Ctrl-C, SIGTERM or SIGHUP (requests in flight finished,
       every cleanup step ran, reports were written)";

#[derive(Parser, Debug)]
#[command(name = "focusqa", version, about = "Declarative YAML test scenarios for the Focus Server API and Kubernetes", after_help = EXIT_CODES)]
pub struct Cli {
    /// Config file with targets (default: ./focusqa.yaml if present, else built-in defaults).
    #[arg(long, global = true, env = "FOCUSQA_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run specs against a target and write reports (default target: the embedded simulator).
    Run(RunArgs),
    /// Check specs (and the scope catalog) without running anything.
    Validate(SelectArgs),
    /// List specs: id, title, covers, tags.
    List(SelectArgs),
    /// Show scope coverage by the specs (gaps, excluded items) without running anything.
    Coverage(SelectArgs),
    /// Re-render the reports from a results.json.
    Report(ReportArgs),
    /// Combine the results.json of shards (`run --shard K/N`) into one run's reports.
    Merge(MergeArgs),
    /// Serve the Focus Server + Kubernetes API simulator on 127.0.0.1 until Ctrl-C.
    Sim(SimArgs),
    /// Print or write the JSON Schemas of specs, the scope catalog and the config.
    Schema(SchemaArgs),
}

#[derive(Args, Debug, Clone, Default)]
pub struct SelectArgs {
    /// Spec files or directories (default: the config's `specs`, i.e. `specs/`).
    pub paths: Vec<PathBuf>,
    /// Only specs with this tag (repeatable: any of them).
    #[arg(long = "tag", short = 't')]
    pub tags: Vec<String>,
    /// Only specs whose id matches this regular expression.
    #[arg(long = "id")]
    pub id: Option<String>,
}

impl SelectArgs {
    /// The files and folders to load: the given paths, else the config's `specs`.
    fn spec_paths(&self, config: &Config) -> Vec<PathBuf> {
        if self.paths.is_empty() {
            config.specs.iter().map(|p| config.resolve(p)).collect()
        } else {
            self.paths.clone()
        }
    }

    /// Whether a loaded spec is selected by `--tag` and `--id` (`id_re`, compiled from `id`).
    fn selects(&self, id_re: Option<&Regex>, s: &Spec) -> bool {
        (self.tags.is_empty() || s.tags.iter().any(|t| self.tags.contains(t)))
            && id_re.is_none_or(|r| r.is_match(&s.id))
    }
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Target name from the config (default: the config's default_target, i.e. `embedded`).
    #[arg(long, env = "FOCUSQA_TARGET")]
    pub target: Option<String>,
    /// Specs run in parallel (exclusive specs always run alone).
    #[arg(long, short = 'j', default_value_t = 4)]
    pub jobs: usize,
    /// Threads that send requests and check answers. Default: one when the run does nothing at
    /// the same time (one spec at a time, no concurrent fan-out or foreach, no embedded
    /// simulator), else one per CPU core.
    #[arg(long, env = "FOCUSQA_WORKERS", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,
    /// Stop starting new specs after the first failure (running ones finish, cleanup runs).
    #[arg(long)]
    pub fail_fast: bool,
    /// Where to write results.json, junit.xml and the HTML reports (default: the config's, `reports/`).
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Directory of HTML templates overriding the embedded ones.
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Ignored with a warning on the embedded target, which runs on a virtual clock; a
    /// `simulator: true` target uses the scale its simulator reports.
    #[arg(long)]
    pub time_scale: Option<f64>,
    /// Simulator job capacity (embedded target; default 200).
    #[arg(long)]
    pub capacity: Option<usize>,
    /// Simulator random seed (embedded target).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Less output: no progress lines for long steps.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Run a failed case again up to N times (known-flaky infrastructure); a spec's `retries:`
    /// overrides it. A case that passes only on a later attempt is reported flaky. At most 10.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=crate::spec::MAX_RETRIES as i64))]
    pub retries: u32,
    /// Run only shard K of N (`2/4`): a deterministic share of the selected specs, the same on
    /// every machine. Combine the shards' reports with `focusqa merge`.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// How shards are balanced: `count` (specs dealt round-robin by id) or `duration` (by the
    /// spec durations of a previous results.json given with --durations).
    #[arg(long, value_enum, default_value_t = ShardBy::Count, requires = "shard")]
    pub shard_by: ShardBy,
    /// A previous results.json whose spec durations balance `--shard-by duration`.
    #[arg(long, value_name = "RESULTS_JSON")]
    pub durations: Option<PathBuf>,
    /// Keep a compact record of this run in DIR (one small JSON file per run) and show the
    /// trend of the last runs in the HTML reports (default: the config's `history:`).
    #[arg(long, value_name = "DIR")]
    pub history: Option<PathBuf>,
    /// Record nothing in the history for this run, even if the config names one.
    #[arg(long, conflicts_with = "history")]
    pub no_history: bool,
    /// How many runs the history keeps, the oldest deleted (default: the config's
    /// `history_keep:`, else 30).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub history_keep: Option<u64>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardBy {
    Count,
    Duration,
}

#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// Shard results: results.json files, or directories searched for them (recursively).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Where to write the merged results.json, junit.xml and HTML reports (default: the config's, `reports/`).
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Directory of HTML templates overriding the embedded ones.
    #[arg(long)]
    pub templates: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// A results.json written by `focusqa run`.
    pub results: PathBuf,
    /// Output directory (default: the directory of results.json).
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Directory of HTML templates overriding the embedded ones (same file names).
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// A run history (`run --history DIR`) whose trend the HTML reports show.
    #[arg(long, value_name = "DIR")]
    pub history: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    /// Which system to simulate: `focus` (Focus Server + Kubernetes API) or `calibration`
    /// (the async calibration job API under /api/v1; --kube-port, --capacity, --kubeconfig unused).
    #[arg(long, value_enum, default_value_t = crate::sim::Service::Focus)]
    pub service: crate::sim::Service,
    /// Focus API port (0 = any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Kubernetes API port (0 = any free port).
    #[arg(long, default_value_t = 8081)]
    pub kube_port: u16,
    /// Multiplies every simulated delay (1 = real timings).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Maximum concurrent jobs.
    #[arg(long, default_value_t = 200)]
    pub capacity: usize,
    /// Seed for simulated random delays.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where to write the kubeconfig of the simulated cluster.
    #[arg(long, default_value = "reports/sim-kubeconfig.yaml")]
    pub kubeconfig: PathBuf,
    /// Require this bearer token on the Kubernetes API (401 otherwise), as a real API server
    /// requires a service account's; the written kubeconfig carries it.
    #[arg(long, env = "FOCUSQA_SIM_KUBE_TOKEN", hide_env_values = true)]
    pub kube_token: Option<String>,
    /// Drive a real cluster: the simulated Focus Server creates its analyzer and cleanup Jobs
    /// there (namespace `focus`) and reads their state from it, instead of simulating a
    /// Kubernetes API of its own. Needs --time-scale 1.
    #[arg(long, value_name = "KUBECONFIG")]
    pub kubernetes: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct SchemaArgs {
    /// Write spec.schema.json, scope.schema.json and config.schema.json into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn print_diags(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
    let files: std::collections::BTreeSet<&str> = diags.iter().map(|d| d.file.as_str()).collect();
    eprintln!(
        "{} problem(s) in {} file(s); nothing was run.",
        diags.len(),
        files.len()
    );
}

pub fn main() -> Exit {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Invalid
            } else {
                Exit::Ok
            };
        }
    };
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(d) => {
            print_diags(&d);
            return Exit::Invalid;
        }
    };
    // Only `run` and `sim` are asynchronous: the other commands start no runtime, so no threads
    // (and no per-thread heaps) sit beside a long spec's loading.
    let command = match cli.command {
        Command::Run(a) => Async::Run(a),
        Command::Sim(a) => Async::Sim(a),
        Command::Validate(a) => return validate(&config, &a),
        Command::List(a) => return list(&config, &a),
        Command::Coverage(a) => return coverage(&config, &a),
        Command::Report(a) => return report(&a),
        Command::Merge(a) => return merge(&config, &a),
        Command::Schema(a) => return schema(&a),
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    let mut on_virtual_clock = false;
    if let Async::Run(a) = &command {
        if runs_embedded(&config, a) {
            on_virtual_clock = true;
            // The embedded target's virtual clock: one thread, tokio's paused clock, which
            // jumps to the next timer whenever every task waits (no real I/O is in flight:
            // the simulator is reached in memory). Host load then changes nothing but speed.
            if a.workers.is_some() {
                eprintln!("warning: --workers is ignored on an embedded target: it runs on one thread, on a virtual clock");
            }
            builder = tokio::runtime::Builder::new_current_thread();
            builder.start_paused(true);
        }
    }
    if let (Async::Run(a), false) = (&command, on_virtual_clock) {
        match a.workers {
            Some(n) => {
                builder.worker_threads(usize::from(n));
            }
            None if nothing_concurrent(&config, a) => {
                builder.worker_threads(1);
            }
            None => {}
        }
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Environment;
        }
    };
    match command {
        Async::Run(a) => rt.block_on(run(&config, a)),
        Async::Sim(a) => rt.block_on(sim(a)),
    }
}

/// The commands that run on an async runtime.
enum Async {
    Run(RunArgs),
    Sim(SimArgs),
}

/// Whether `run` goes to an embedded target (then on the virtual clock). A target that does
/// not resolve says no: the run reports that error itself.
fn runs_embedded(config: &Config, a: &RunArgs) -> bool {
    let name = a.target.as_deref().unwrap_or(&config.default_target);
    config.target(name).is_ok_and(|t| t.embedded.is_some())
}

/// Whether a run does nothing at the same time, so one runner thread serves it best: one spec at
/// a time (`--jobs 1` or a single spec), no fan-out or `foreach` with a concurrency above 1, and
/// no simulator inside the process. A second thread would only wake up for every answer: about
/// 40 % more CPU per sequential step (scripts/peers.sh). Decided on a silent first read of the
/// selected specs; any doubt (a spec that does not load, a templated concurrency) says no.
fn nothing_concurrent(config: &Config, a: &RunArgs) -> bool {
    fn concurrent(steps: &[crate::spec::Step]) -> bool {
        use crate::spec::{Count, StepKind};
        let above_one = |c: &Option<Count>, default_many: bool| match c {
            Some(Count::N(n)) => *n > 1,
            Some(Count::Template(_)) => true,
            None => default_many,
        };
        steps.iter().any(|s| match &s.kind {
            StepKind::Fanout(f) => {
                // Without `concurrency`, a counted fan-out starts every iteration at once.
                let all_at_once = match &f.count {
                    Some(Count::N(n)) => *n > 1,
                    Some(Count::Template(_)) => true,
                    None => false, // a duration-bounded loop: one at a time
                };
                f.rate.is_some() || above_one(&f.concurrency, all_at_once) || concurrent(&f.steps)
            }
            StepKind::Foreach(f) => above_one(&f.concurrency, false) || concurrent(&f.steps),
            k => k.nested().into_iter().any(concurrent),
        })
    }
    let name = a.target.as_deref().unwrap_or(&config.default_target);
    match config.target(name) {
        Ok(t) if t.embedded.is_none() && name != crate::config::EMBEDDED => {}
        _ => return false,
    }
    let catalog = load_catalog(config).ok().flatten();
    let paths = a.select.spec_paths(config);
    let loaded = load_paths(
        &paths,
        catalog.as_ref(),
        &config.known_target_vars(),
        &config.access(),
    );
    let Ok(id_re) = a.select.id.as_deref().map(Regex::new).transpose() else {
        return false;
    };
    let selected: Vec<&Spec> = loaded
        .specs
        .iter()
        .filter(|s| a.select.selects(id_re.as_ref(), s))
        .collect();
    loaded.diagnostics.is_empty()
        && (a.jobs <= 1 || selected.len() <= 1)
        && !selected.iter().any(|s| concurrent(&s.steps))
}

/// Loads the catalog if the configured file exists.
fn load_catalog(config: &Config) -> Result<Option<Catalog>, Vec<Diagnostic>> {
    let p = config.resolve(&config.scope);
    if p.exists() {
        Catalog::load(&p).map(Some)
    } else {
        Ok(None)
    }
}

/// All loaded specs, the selected ones, and the catalog.
type Selection = (Vec<Spec>, Vec<Spec>, Option<Catalog>);

/// Loads, validates and filters specs; prints the diagnostics and fails when anything is invalid.
fn load_selected(config: &Config, sel: &SelectArgs) -> Result<Selection, Exit> {
    load_selection(config, sel, false).map(|(s, _)| s)
}

/// For `list` and `coverage`: the valid specs even when some files are broken, and the
/// broken files (their diagnostics are printed).
fn load_lenient(config: &Config, sel: &SelectArgs) -> Result<(Selection, Vec<String>), Exit> {
    load_selection(config, sel, true)
}

/// Tells which files were left out and why (after the listing, so it is not missed).
fn report_broken(broken: &[String]) -> bool {
    if broken.is_empty() {
        return false;
    }
    eprintln!(
        "error: {} invalid spec file(s) left out: {} (run `focusqa validate` for the details)",
        broken.len(),
        broken.join(", ")
    );
    true
}

fn load_selection(
    config: &Config,
    sel: &SelectArgs,
    lenient: bool,
) -> Result<(Selection, Vec<String>), Exit> {
    // A broken catalog does not hide the problems of the specs: they are checked without it
    // (their `covers` unchecked), and the command fails for both.
    let (catalog, catalog_diags) = match load_catalog(config) {
        Ok(c) => (c, Vec::new()),
        Err(d) => (None, d),
    };
    let paths = sel.spec_paths(config);
    let loaded = load_paths(
        &paths,
        catalog.as_ref(),
        &config.known_target_vars(),
        &config.access(),
    );
    if !catalog_diags.is_empty() {
        print_diags(&[catalog_diags, loaded.diagnostics].concat());
        return Err(Exit::Invalid);
    }
    let mut broken: Vec<String> = Vec::new();
    if !loaded.diagnostics.is_empty() {
        print_diags(&loaded.diagnostics);
        if !lenient
            || loaded
                .diagnostics
                .iter()
                .any(|d| d.pos.line == 0 && loaded.specs.is_empty())
        {
            return Err(Exit::Invalid);
        }
        for d in &loaded.diagnostics {
            if !broken.contains(&d.file) {
                broken.push(d.file.clone());
            }
        }
    }
    let id_re = match sel.id.as_deref().map(Regex::new).transpose() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: --id is not a valid regular expression: {e}");
            return Err(Exit::Invalid);
        }
    };
    let mut all = loaded.specs;
    let selected: Vec<Spec> = all
        .iter()
        .filter(|s| sel.selects(id_re.as_ref(), s))
        .cloned()
        .collect();
    // Coverage is over the whole project: specs outside the given paths are "not run in this
    // run", never gaps. Problems in those files were not asked about; `validate` reports them.
    if !sel.paths.is_empty() {
        let project: Vec<PathBuf> = config.specs.iter().map(|p| config.resolve(p)).collect();
        let rest = load_paths(
            &project,
            catalog.as_ref(),
            &config.known_target_vars(),
            &config.access(),
        );
        for s in rest.specs {
            if !all.iter().any(|a| a.id == s.id) {
                all.push(s);
            }
        }
    }
    Ok(((all, selected, catalog), broken))
}

fn validate(config: &Config, sel: &SelectArgs) -> Exit {
    match load_selected(config, sel) {
        Err(e) => e,
        Ok((all, selected, catalog)) => {
            let cases: usize = selected.iter().map(|s| s.cases.len().max(1)).sum();
            println!(
                "ok: {} specs ({} cases) are valid{}",
                selected.len(),
                cases,
                match &catalog {
                    Some(c) => format!("; scope catalog `{}` has {} items", c.title, c.items.len()),
                    None => String::new(),
                }
            );
            if selected.len() < all.len() {
                println!(
                    "({} specs of the project not selected)",
                    all.len() - selected.len()
                );
            }
            Exit::Ok
        }
    }
}

fn list(config: &Config, sel: &SelectArgs) -> Exit {
    match load_lenient(config, sel) {
        Err(e) => e,
        Ok(((_, selected, _), broken)) => {
            for s in &selected {
                println!("{}  {}", s.id, s.title);
                println!("    file:     {}:{}", s.source.display, s.source.pos.line);
                if !s.covers.is_empty() {
                    println!("    covers:   {}", s.covers.join(", "));
                }
                if !s.tags.is_empty() {
                    println!("    tags:     {}", s.tags.join(", "));
                }
                let req = crate::engine::required_capabilities(s);
                if !req.is_empty() {
                    println!(
                        "    requires: {}",
                        req.iter()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                if !s.cases.is_empty() {
                    println!("    cases:    {}", s.cases.len());
                }
            }
            println!("{} specs", selected.len());
            if report_broken(&broken) {
                return Exit::Invalid;
            }
            Exit::Ok
        }
    }
}

fn coverage(config: &Config, sel: &SelectArgs) -> Exit {
    match load_lenient(config, sel) {
        Err(e) => e,
        Ok(((_, selected, None), _)) => {
            eprintln!(
                "error: no scope catalog at {} (set `scope:` in focusqa.yaml)",
                config.resolve(&config.scope).display()
            );
            let _ = selected;
            Exit::Invalid
        }
        Ok(((_, selected, Some(cat)), broken)) => {
            let cov = crate::coverage::compute(&cat, &selected, None, None);
            println!("{}", cov.catalog_title);
            for area in &cov.areas {
                println!("\n{}", area.title);
                for item in &area.items {
                    let mark = if item.specs.is_empty() {
                        "GAP "
                    } else {
                        "ok  "
                    };
                    let hard = if item.hard_requirement {
                        " [hard requirement]"
                    } else {
                        ""
                    };
                    let backlog = match item.status {
                        ItemStatus::Backlog => " [backlog]",
                        ItemStatus::In | ItemStatus::Other(_) => "",
                    };
                    println!("  {mark} {}  {}{hard}{backlog}", item.id, item.title);
                    for s in &item.specs {
                        println!("         <- {} ({})", s.id, s.file);
                    }
                }
            }
            println!("\nOut of scope (excluded by decision):");
            for x in &cov.excluded {
                println!("  {}  {} — {}", x.id, x.title, x.reason);
            }
            let covered = cov.in_scope - cov.gaps.len();
            println!(
                "\n{covered} of {} in-scope items covered by specs; {} gaps; {} excluded",
                cov.in_scope,
                cov.gaps.len(),
                cov.excluded.len()
            );
            if report_broken(&broken) {
                return Exit::Invalid;
            }
            if cov.gaps.is_empty() {
                Exit::Ok
            } else {
                Exit::TestFailed
            }
        }
    }
}

fn report(a: &ReportArgs) -> Exit {
    let mut r = match crate::report::json::read(&a.results) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    let dir = a.report_dir.clone().unwrap_or_else(|| {
        a.results
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| ".".into())
    });
    if let Some(h) = &a.history {
        let (records, warnings) = crate::history::load(h);
        for w in warnings {
            eprintln!("warning: {w}");
        }
        r.history = records;
    }
    // Re-rendering next to the input leaves the input alone; elsewhere it is copied along.
    let same = std::fs::canonicalize(dir.join("results.json")).ok()
        == std::fs::canonicalize(&a.results).ok();
    let written = if same {
        crate::report::write_views(&r, &dir, a.templates.as_deref())
    } else {
        crate::report::write_all(&r, &dir, a.templates.as_deref()).map(|w| w.files)
    };
    match written {
        Ok(files) => {
            print!("{}", Console::new().summary(&r, &files));
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Environment
        }
    }
}

/// The results.json files among `inputs`: files as given, directories searched recursively.
fn results_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.file_name().is_some_and(|n| n == "results.json") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            walk(p, &mut out).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(format!("{} does not exist", p.display()));
        }
    }
    Ok(out)
}

fn merge(config: &Config, a: &MergeArgs) -> Exit {
    let files = match results_files(&a.inputs) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    let out = a
        .report_dir
        .clone()
        .unwrap_or_else(|| config.resolve(&config.report_dir));
    let out_results = std::fs::canonicalize(out.join("results.json")).ok();
    let mut reports = Vec::new();
    for f in &files {
        // A merged results.json already in the output directory is not one of the inputs.
        if out_results.is_some() && std::fs::canonicalize(f).ok() == out_results {
            continue;
        }
        match crate::report::json::read(f) {
            Ok(r) => reports.push((f.display().to_string(), r)),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Invalid;
            }
        }
    }
    // What each shard recorded: its coverage and the specs it ran (kept before the merge
    // consumes the reports).
    let recorded: Vec<(String, Option<crate::results::Coverage>, Vec<String>)> = reports
        .iter()
        .map(|(f, r)| {
            (
                f.clone(),
                r.coverage.clone(),
                r.specs.iter().map(|s| s.id.clone()).collect(),
            )
        })
        .collect();
    let (mut report, mut warnings) = match crate::shard::merge(reports) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    // Coverage from the shards' own records (what each spec covered, with which verdict, where),
    // so specs run from outside the config's `specs:` count as in a single run. Only when no
    // shard recorded any (no catalog when they ran) is it computed from the project's specs.
    let shards: Vec<crate::coverage::ShardCoverage> = recorded
        .iter()
        .filter_map(|(file, cov, ran)| {
            cov.as_ref().map(|c| crate::coverage::ShardCoverage {
                file,
                coverage: c,
                ran: ran.iter().map(String::as_str).collect(),
            })
        })
        .collect();
    if !shards.is_empty() {
        for (file, _, ran) in recorded.iter().filter(|(_, c, _)| c.is_none()) {
            warnings.push(format!(
                "{file} recorded no scope coverage (run without a catalog?): its {} spec(s) count as not run in the coverage",
                ran.len()
            ));
        }
        match crate::coverage::merge(&shards) {
            Ok(mut c) => {
                c.fill_target(&report.target);
                report.coverage = Some(c);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Invalid;
            }
        }
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if shards.is_empty() {
        // What no shard ran is "not run in this run", never a gap.
        match load_lenient(config, &SelectArgs::default()) {
            Ok(((all, _, Some(cat)), _)) => {
                report.coverage = Some(crate::coverage::compute(
                    &cat,
                    &all,
                    Some(&report.specs),
                    Some(&report.target),
                ));
            }
            Ok(((_, _, None), _)) => {}
            Err(e) => return e,
        }
    }
    match crate::report::write_all(&report, &out, a.templates.as_deref()) {
        Ok(w) => {
            eprintln!("merged {} shard result(s)", files.len());
            print!("{}", Console::new().summary(&report, &w.files));
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Environment;
        }
    }
    if report.interrupted {
        Exit::Interrupted
    } else if report.totals.all_passed() {
        Exit::Ok
    } else {
        Exit::TestFailed
    }
}

async fn run(config: &Config, a: RunArgs) -> Exit {
    // Listen first: a signal that comes while specs load or the target connects still means
    // "stop, write the reports", not the default of dying on the spot.
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot listen for signals: {e}");
            return Exit::Environment;
        }
    };
    let (all, selected, catalog) = match load_selected(config, &a.select) {
        Ok(x) => x,
        Err(e) => return e,
    };
    if selected.is_empty() {
        eprintln!("error: no spec matches the selection (paths, --tag, --id)");
        return Exit::Invalid;
    }
    let shard = match a.shard.as_deref().map(crate::shard::parse).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    let selected = match shard {
        None => selected,
        Some(sh) => {
            let weights = match (a.shard_by, &a.durations) {
                (ShardBy::Count, _) => None,
                (ShardBy::Duration, None) => {
                    eprintln!("error: --shard-by duration needs --durations RESULTS_JSON (a previous run's results.json)");
                    return Exit::Invalid;
                }
                (ShardBy::Duration, Some(p)) => match crate::report::json::read(p) {
                    Ok(r) => Some(crate::shard::durations(&r)),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return Exit::Invalid;
                    }
                },
            };
            let n = selected.len();
            let mine = crate::shard::select(selected, sh, weights.as_ref());
            eprintln!(
                "shard {}/{}: {} of {} selected specs",
                sh.index,
                sh.total,
                mine.len(),
                n
            );
            if mine.is_empty() {
                // Nothing to do is not a failure: more shards than specs. Reports are written
                // (empty) so a merge finds every shard.
                eprintln!("(this shard has no spec: more shards than specs)");
            }
            mine
        }
    };
    let target_name = a
        .target
        .clone()
        .unwrap_or_else(|| config.default_target.clone());
    let tcfg = match config.target(&target_name) {
        Ok(t) => t,
        Err(d) => {
            print_diags(&[d]);
            return Exit::Invalid;
        }
    };
    if let Some(ts) = a.time_scale {
        if !(ts > 0.0 && ts.is_finite()) {
            eprintln!("error: --time-scale must be a positive number, got {ts}");
            return Exit::Invalid;
        }
    }
    let ov = TargetOverrides {
        time_scale: a.time_scale,
        capacity: a.capacity,
        seed: a.seed,
    };
    // The run's secrets: one set, made here and handed to what finds or hides them.
    let secrets = crate::results::Secrets::new();
    let target = match Target::connect(&target_name, &tcfg, config, &ov, &secrets).await {
        Ok(t) => Arc::new(t),
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Environment;
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let mut engine = Engine::new(
        target.clone(),
        RunOptions {
            jobs: a.jobs,
            fail_fast: a.fail_fast,
            retries: a.retries,
        },
    );
    engine.events = Some(tx);
    let cancel = engine.cancel.clone();
    // Finished specs as reported, kept for the reports of an aborted run.
    let finished: Arc<std::sync::Mutex<Vec<SpecResult>>> = Arc::default();
    // First signal (Ctrl-C, SIGTERM from a CI cancel or a pod's termination, SIGHUP): stop
    // starting work, let requests in flight finish, run every cleanup, write reports (130).
    // Second: write what can be written now and leave with 4; cleanup may be incomplete.
    let color = std::io::IsTerminal::is_terminal(&std::io::stderr());
    {
        let finished = finished.clone();
        let specs = selected.clone();
        let (all, catalog) = (all.clone(), catalog.clone());
        let target_info = target.info.clone();
        let dir = a
            .report_dir
            .clone()
            .unwrap_or_else(|| config.resolve(&config.report_dir));
        let templates = a.templates.clone();
        let started = (chrono::Utc::now(), tokio::time::Instant::now());
        tokio::spawn(async move {
            let sig = signals.next().await;
            let msg = format!(
                "interrupted ({sig}): finishing requests in flight and cleanup steps, then writing reports (interrupt again to abort)"
            );
            eprintln!(
                "{}",
                if color {
                    format!("\x1b[33;1m{msg}\x1b[0m")
                } else {
                    msg
                }
            );
            cancel.cancel();
            let sig = signals.next().await;
            eprintln!("focusqa: aborted ({sig} again); cleanup may be incomplete: writing the reports of what finished");
            let done = finished.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let mut report = crate::engine::aborted_report(target_info, &specs, done, started);
            if let Some(cat) = &catalog {
                report.coverage = Some(crate::coverage::compute(
                    cat,
                    &all,
                    Some(&report.specs),
                    Some(&report.target),
                ));
            }
            match crate::report::write_all(&report, &dir, templates.as_deref()) {
                Ok(w) => eprintln!(
                    "Reports: {}",
                    w.files
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Err(e) => eprintln!("error: {e}"),
            }
            std::process::exit(Exit::Aborted.code() as i32);
        });
    }
    let mut console = Console::new();
    console.verbose = !a.quiet;
    let printer = {
        let finished = finished.clone();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                if let Event::SpecFinished(r) = &e {
                    finished
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((**r).clone());
                }
                console.event(&e);
            }
            console
        })
    };
    let mut report = engine.run(selected).await;
    report.shard = shard;
    // The report's own verdict: a signal that comes after the last spec ended interrupted
    // nothing, and the exit code must agree with the reports it writes.
    let interrupted = report.interrupted;
    drop(engine);
    if let Some(cat) = &catalog {
        report.coverage = Some(crate::coverage::compute(
            cat,
            &all,
            Some(&report.specs),
            Some(&report.target),
        ));
    }
    // The printer ends once every sender is gone; the Ctrl-C task keeps one, so don't wait on it forever.
    let console = tokio::time::timeout(std::time::Duration::from_millis(500), printer)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let dir = a
        .report_dir
        .clone()
        .unwrap_or_else(|| config.resolve(&config.report_dir));
    let history = match (&a.history, a.no_history) {
        (Some(h), _) => Some(h.clone()),
        (None, false) => config.history.as_ref().map(|h| config.resolve(h)),
        (None, true) => None,
    };
    let keep = a
        .history_keep
        .map(|n| n as usize)
        .or(config.history_keep)
        .unwrap_or(crate::history::DEFAULT_KEEP);
    if let Some(h) = &history {
        // A history that cannot be written is reported, never the run's failure.
        let rec = crate::history::RunRecord::of(&report, crate::history::git_commit());
        match crate::history::save(h, &rec, keep) {
            Ok(_) => {
                let (records, warnings) = crate::history::load(h);
                for w in warnings {
                    eprintln!("warning: {w}");
                }
                report.history = records;
            }
            Err(e) => eprintln!("warning: {e}"),
        }
    }
    let written = crate::report::write_all(&report, &dir, a.templates.as_deref());
    let files = written
        .as_ref()
        .map(|w| w.files.clone())
        .unwrap_or_default();
    print!("{}", console.summary(&report, &files));
    if let Ok(t) = Arc::try_unwrap(target) {
        t.shutdown().await;
    }
    if let Err(e) = written {
        eprintln!("error: {e}");
        return Exit::Environment;
    }
    if interrupted {
        Exit::Interrupted
    } else if report.totals.all_passed() {
        Exit::Ok
    } else {
        Exit::TestFailed
    }
}

/// The signals that mean "stop": SIGINT (Ctrl-C), SIGTERM (CI cancel, Kubernetes pod
/// termination, `kill`) and SIGHUP (the terminal went away).
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next stop signal, by name.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

/// Waits for Ctrl-C, or SIGTERM/SIGHUP when a simulator runs as a service or in a pod.
async fn stop_signal() {
    match Signals::new() {
        Ok(mut sig) => {
            sig.next().await;
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn sim(a: SimArgs) -> Exit {
    if a.service == crate::sim::Service::Calibration {
        return sim_calibration(a).await;
    }
    let cfg = crate::sim::SimConfig {
        time_scale: a.time_scale,
        capacity: a.capacity,
        seed: a.seed,
        kube_token: a.kube_token.clone(),
        kubernetes: a.kubernetes.clone(),
        ..Default::default()
    };
    if a.kubernetes.is_some() && a.time_scale != 1.0 {
        eprintln!(
            "error: --kubernetes drives a real cluster, whose controllers keep real time: use --time-scale 1 (got {})",
            a.time_scale
        );
        return Exit::Invalid;
    }
    let handle = match crate::sim::start(cfg, a.port, a.kube_port).await {
        Ok(h) => h,
        Err(e) if a.kubernetes.is_some() && e.kind() == std::io::ErrorKind::ConnectionRefused => {
            eprintln!("error: cannot drive the cluster: {e}");
            return Exit::Environment;
        }
        Err(e) => {
            eprintln!("error: cannot start the simulator: {e} (is the port taken? try --port 0 --kube-port 0)");
            return Exit::Environment;
        }
    };
    if let Some(kc) = &a.kubernetes {
        println!(
            "focusqa simulator (capacity {}, time scale 1, seed {}) driving a real cluster",
            a.capacity, a.seed
        );
        println!("  Focus Server API: {}", handle.focus_url());
        println!(
            "  Kubernetes API:   {} (the cluster's)",
            handle.cluster_server().unwrap_or_default()
        );
        println!("  kubeconfig:       {}", kc.display());
        println!(
            "  try: kubectl --kubeconfig {} get jobs,pods -n {}",
            kc.display(),
            handle.config().namespace
        );
        println!("Press Ctrl-C to stop (the Jobs it made are deleted).");
        stop_signal().await;
        handle.shutdown().await;
        println!("simulator stopped");
        return Exit::Ok;
    }
    if let Some(dir) = a.kubeconfig.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = handle.write_kubeconfig(&a.kubeconfig) {
        eprintln!(
            "error: cannot write the kubeconfig {}: {e}",
            a.kubeconfig.display()
        );
        handle.shutdown().await;
        return Exit::Environment;
    }
    println!(
        "focusqa simulator (capacity {}, time scale {}, seed {})",
        a.capacity, a.time_scale, a.seed
    );
    println!("  Focus Server API: {}", handle.focus_url());
    println!("  Kubernetes API:   {}", handle.kube_url());
    println!("  kubeconfig:       {}", a.kubeconfig.display());
    println!(
        "  try: kubectl --kubeconfig {} get jobs,pods -n {}",
        a.kubeconfig.display(),
        handle.config().namespace
    );
    println!("Press Ctrl-C to stop.");
    stop_signal().await;
    handle.shutdown().await;
    println!("simulator stopped");
    Exit::Ok
}

/// `focusqa sim --service calibration`: the calibration job API until Ctrl-C.
async fn sim_calibration(a: SimArgs) -> Exit {
    let cfg = crate::sim::calibration::CalibrationConfig {
        time_scale: a.time_scale,
        seed: a.seed,
        ..Default::default()
    };
    let handle = match crate::sim::calibration::start(cfg, a.port).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: cannot start the simulator: {e} (is the port taken? try --port 0)");
            return Exit::Environment;
        }
    };
    println!(
        "focusqa calibration simulator (time scale {}, seed {})",
        a.time_scale, a.seed
    );
    println!("  Calibration API: {}", handle.api_url());
    println!(
        "  control:         {}/sim (faults, state, reset)",
        handle.url()
    );
    println!("Press Ctrl-C to stop.");
    stop_signal().await;
    handle.shutdown().await;
    println!("simulator stopped");
    Exit::Ok
}

/// The JSON Schemas, generated from the Rust types.
pub fn schemas() -> Vec<(&'static str, String)> {
    let pretty = |s: schemars::Schema| serde_json::to_string_pretty(&s).unwrap_or_default() + "\n";
    vec![
        (
            "spec.schema.json",
            pretty(schemars::schema_for!(crate::spec::Spec)),
        ),
        (
            "scope.schema.json",
            pretty(schemars::schema_for!(crate::spec::scope::Catalog)),
        ),
        (
            "config.schema.json",
            pretty(schemars::schema_for!(crate::config::Config)),
        ),
    ]
}

fn schema(a: &SchemaArgs) -> Exit {
    match &a.out {
        None => {
            for (name, s) in schemas() {
                println!("// {name}\n{s}");
            }
            Exit::Ok
        }
        Some(dir) => {
            if let Err(e) = std::fs::create_dir_all(dir) {
                eprintln!("error: {e}");
                return Exit::Environment;
            }
            for (name, s) in schemas() {
                let p = dir.join(name);
                if let Err(e) = std::fs::write(&p, s) {
                    eprintln!("error: cannot write {}: {e}", p.display());
                    return Exit::Environment;
                }
                println!("wrote {}", p.display());
            }
            Exit::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A project with a remote target and three specs: sequential, a fan-out of 8 at once, and
    /// a foreach whose concurrency is a template.
    fn project() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let w = |name: &str, text: &str| std::fs::write(d.path().join(name), text).unwrap();
        w(
            "focusqa.yaml",
            "default_target: t\nscope: none.yaml\nspecs: [specs]\ntargets:\n  t: {base_url: \"http://127.0.0.1:9\"}\n",
        );
        std::fs::create_dir(d.path().join("specs")).unwrap();
        let spec = |id: &str, step: &str| {
            format!("id: {id}\ntitle: {id}\ntags: [{id}]\nsteps:\n  - {step}\n")
        };
        w(
            "specs/seq.yaml",
            &spec(
                "seq",
                "fanout: {count: 5, concurrency: 1, steps: [{http: {path: /a}}]}",
            ),
        );
        w(
            "specs/par.yaml",
            &spec("par", "fanout: {count: 8, steps: [{http: {path: /a}}]}"),
        );
        w("specs/each.yaml", &spec("each", "foreach: {items: [1, 2], as: n, concurrency: \"{{ 2 }}\", steps: [{http: {path: /a}}]}"));
        d
    }

    fn one_thread(d: &tempfile::TempDir, args: &[&str]) -> bool {
        let cfg = d.path().join("focusqa.yaml");
        let mut argv = vec!["focusqa", "--config", cfg.to_str().unwrap(), "run"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).unwrap();
        let config = Config::load(Some(&cfg)).unwrap();
        let Command::Run(a) = &cli.command else {
            unreachable!()
        };
        nothing_concurrent(&config, a)
    }

    #[test]
    fn one_runner_thread_only_when_nothing_in_the_run_is_concurrent() {
        let d = project();
        assert!(one_thread(&d, &["--tag", "seq"]));
        assert!(!one_thread(&d, &["--tag", "par"]), "a fan-out of 8 at once");
        assert!(
            !one_thread(&d, &["--tag", "each"]),
            "a templated concurrency"
        );
        assert!(!one_thread(
            &d,
            &["--tag", "seq", "--tag", "par", "--jobs", "1"]
        ));
        let two = d.path().join("specs/seq2.yaml");
        std::fs::copy(d.path().join("specs/seq.yaml"), &two).unwrap();
        let text = std::fs::read_to_string(&two)
            .unwrap()
            .replace("id: seq", "id: seq2");
        std::fs::write(&two, text).unwrap();
        assert!(
            !one_thread(&d, &["--tag", "seq"]),
            "two specs run side by side"
        );
        assert!(one_thread(&d, &["--tag", "seq", "--jobs", "1"]));
        assert!(!one_thread(
            &d,
            &["--tag", "seq", "--jobs", "1", "--target", "embedded"]
        ));
        std::fs::write(d.path().join("specs/broken.yaml"), "id: [").unwrap();
        assert!(
            !one_thread(&d, &["--tag", "seq", "--jobs", "1"]),
            "a spec that does not load"
        );
    }
}
