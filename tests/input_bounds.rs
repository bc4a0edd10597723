//! Every input a spec or a run reads is bounded and ends in a clean error (issue 24): include
//! chains and doubling includes, nested loops (and Ctrl-C inside loops that never wait), files
//! outside the project, numbers in results.json, shard counts.

use crate::common;

use std::time::{Duration, Instant};

use common::{assert_exit, stderr, stdout, Project};

const STEP: &str = "- assert: [{value: \"{{ 1 }}\", equals: \"1\"}]\n";

/// A project with a valid spec `specs/other.yaml` beside whatever a test adds.
fn project() -> Project {
    let p = Project::new("http://127.0.0.1:9");
    p.spec(
        "other.yaml",
        "id: other\ntitle: Another spec of the project\nsteps:\n  - assert: [{value: \"{{ 1 }}\", equals: \"1\"}]\n",
    );
    p
}

fn write(p: &Project, rel: &str, text: &str) {
    let path = p.path().join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_chain_of_2000_includes_is_a_diagnostic_at_the_include_and_other_specs_still_load() {
    let p = project();
    for i in 0..2000 {
        write(
            &p,
            &format!("fragments/f{i}.yaml"),
            &format!("{STEP}- include: f{}.yaml\n", i + 1),
        );
    }
    write(&p, "fragments/f2000.yaml", STEP);
    p.spec(
        "chain.yaml",
        "id: chain\ntitle: A long include chain\nsteps:\n  - include: ../fragments/f0.yaml\n",
    );
    let t0 = Instant::now();
    let (out, peak_kib) = p.run_with_peak_rss(&["validate"]);
    let took = t0.elapsed();
    // Before: SIGABRT (stack overflow), no exit code.
    assert_exit(&out, 2);
    let e = stderr(&out);
    assert!(e.contains("is nested 33 levels deep"), "{e}");
    assert!(e.contains("at most 32 are allowed"), "{e}");
    // At the `include:` line of the 32nd fragment, which includes the 33rd.
    assert!(e.contains("--> fragments/f31.yaml:2:12"), "{e}");
    assert!(took < Duration::from_secs(5), "validate took {took:?}");
    eprintln!(
        "2000-include chain: validate {took:?}, peak {} MiB",
        peak_kib / 1024
    );

    // Another spec of the same project lists and runs (the broken one is left out, named).
    let out = p.run(&["list", "specs/other.yaml"]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("other  Another spec"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn forty_fragments_each_including_the_next_twice_end_at_once() {
    let p = project();
    for i in 0..40 {
        write(
            &p,
            &format!("fragments/d{i}.yaml"),
            &format!("{STEP}- include: d{0}.yaml\n- include: d{0}.yaml\n", i + 1),
        );
    }
    write(&p, "fragments/d40.yaml", STEP);
    p.spec(
        "double.yaml",
        "id: double\ntitle: Doubling includes\nsteps:\n  - include: ../fragments/d0.yaml\n",
    );
    let t0 = Instant::now();
    let (out, peak_kib) = p.run_with_peak_rss(&["validate"]);
    let took = t0.elapsed();
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("at most 32 are allowed"),
        "{}",
        stderr(&out)
    );
    assert!(took < Duration::from_secs(5), "validate took {took:?}");
    eprintln!(
        "2^40 includes: validate {took:?}, peak {} MiB",
        peak_kib / 1024
    );

    // Twenty levels stay within the nesting limit: the step limit stops them (2^20 steps),
    // at the `include:` whose expansion crossed it.
    for i in 0..20 {
        write(
            &p,
            &format!("fragments/t{i}.yaml"),
            &format!("{STEP}- include: t{0}.yaml\n- include: t{0}.yaml\n", i + 1),
        );
    }
    write(&p, "fragments/t20.yaml", STEP);
    p.spec(
        "double.yaml",
        "id: double\ntitle: Doubling includes\nsteps:\n  - include: ../fragments/t0.yaml\n",
    );
    let t0 = Instant::now();
    let (out, peak_kib) = p.run_with_peak_rss(&["validate"]);
    let took = t0.elapsed();
    assert_exit(&out, 2);
    let e = stderr(&out);
    assert!(
        e.contains("the spec has more than 100000 steps once its includes are expanded"),
        "{e}"
    );
    assert!(e.contains("--> fragments/t"), "{e}");
    assert_eq!(e.matches("error:").count(), 1, "one diagnostic: {e}");
    assert!(took < Duration::from_secs(10), "validate took {took:?}");
    eprintln!(
        "2^20 includes: validate {took:?}, peak {} MiB",
        peak_kib / 1024
    );
}

const NESTED: &str = "id: nested
title: Nested loops
steps:
  - foreach:
      items: \"{{ range(OUTER) }}\"
      as: i
      steps:
        - foreach:
            items: \"{{ range(INNER) }}\"
            as: j
            steps:
              - assert: [{value: \"{{ j }}\", equals: \"{{ j }}\"}]
";

#[test]
fn nested_loops_of_known_sizes_over_the_bound_are_refused_by_validate() {
    let p = project();
    p.spec(
        "nested.yaml",
        &NESTED.replace("OUTER", "1500").replace("INNER", "1500"),
    );
    let out = p.run(&["validate"]);
    // Before: valid, and the run grew by 150-450 MB/s until it aborted.
    assert_exit(&out, 2);
    let e = stderr(&out);
    assert!(
        e.contains("this `foreach` would run 2250000 times in all (1500 items, times 1500 runs of the loops around it); at most 1000000"),
        "{e}"
    );
    assert!(e.contains("--> specs/nested.yaml:9:20"), "{e}");
}

/// The reports a run writes, by name.
const REPORTS: [&str; 4] = ["results.json", "junit.xml", "summary.html", "coverage.html"];

#[test]
fn ctrl_c_inside_loops_that_never_wait_exits_130_at_once_with_every_report() {
    let p = project();
    // Sizes validate cannot know (they come from the environment): counted at run time.
    p.spec(
        "nested.yaml",
        &NESTED
            .replace("OUTER", "env.FQ_OUTER | int")
            .replace("INNER", "env.FQ_INNER | int"),
    );
    std::fs::remove_file(p.path().join("specs/other.yaml")).unwrap();
    let mut child = p
        .command(&["run", "--quiet"])
        .env("FQ_OUTER", "1000")
        .env("FQ_INNER", "900")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_until_catching_stop_signals(child.id());
    std::thread::sleep(Duration::from_millis(1500));
    let t0 = Instant::now();
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if t0.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("still running 10 s after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = t0.elapsed();
    eprintln!("SIGINT inside nested loops: exit {code:?} after {took:?}");
    // Before: SIGINT ignored; the run ended on its own (or ran out of memory) with no reports.
    assert_eq!(code, Some(130));
    assert!(
        took < Duration::from_secs(1),
        "exited {took:?} after SIGINT"
    );
    for r in REPORTS {
        assert!(p.path().join("reports").join(r).is_file(), "{r} written");
    }
}

#[test]
fn loops_of_sizes_known_only_at_run_time_stop_at_the_bound_in_bounded_memory() {
    let p = project();
    p.spec(
        "nested.yaml",
        &NESTED
            .replace("OUTER", "env.FQ_OUTER | int")
            .replace("INNER", "env.FQ_INNER | int"),
    );
    let t0 = Instant::now();
    let (out, peak_kib) = common::output_with_peak_rss(
        p.command(&["run", "--quiet", "specs/nested.yaml"])
            .env("FQ_OUTER", "1500")
            .env("FQ_INNER", "1500"),
    );
    let took = t0.elapsed();
    eprintln!(
        "1500 x 1500 at run time: {took:?}, peak {} MiB",
        peak_kib / 1024
    );
    assert_exit(&out, 1);
    let r = p.results();
    let text = r.to_string();
    assert!(
        text.contains("loops ran more than 1000000 times in all"),
        "{text:.2000}"
    );
    // A sample of runs, and the count of the others.
    assert!(text.contains("more runs not kept"), "{text:.2000}");
    assert!(peak_kib < 200 * 1024, "peak {} MiB", peak_kib / 1024);
}

#[test]
fn files_outside_the_project_devices_and_fifos_are_refused_without_quoting_them() {
    let p = project();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "TOP-SECRET-LINE\n").unwrap();
    std::fs::write(outside.path().join("frag.yaml"), "TOP-SECRET-LINE: 1\n").unwrap();
    let o = outside.path().display().to_string();
    let fifo = p.path().join("specs/pipe");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    p.spec(
        "files.yaml",
        &format!(
            "id: files\ntitle: Files\nvars_file: {o}/secret.txt\nsteps:\n  - http: {{method: POST, path: /x, body_file: {o}/secret.txt}}\n  - http: {{method: POST, path: /x, body_file: /dev/zero}}\n  - http: {{method: POST, path: /x, body_file: pipe}}\n  - include: {o}/frag.yaml\n"
        ),
    );
    let out = p.run(&["validate", "specs/files.yaml"]);
    // Before: valid (the file was sent and stored in results.json); an include of a file
    // that is no list of steps printed its first line.
    assert_exit(&out, 2);
    let e = stderr(&out);
    assert!(!e.contains("TOP-SECRET-LINE"), "{e}");
    let rule = "is outside the project: a spec reads files only inside";
    assert!(
        e.contains(&format!("vars_file `{o}/secret.txt` {rule}")),
        "{e}"
    );
    assert!(
        e.contains(&format!("body_file `{o}/secret.txt` {rule}")),
        "{e}"
    );
    assert!(e.contains(&format!("body_file `/dev/zero` {rule}")), "{e}");
    assert!(
        e.contains("body_file `specs/pipe` is not a regular file"),
        "{e}"
    );
    assert!(
        e.contains(&format!("included file `{o}/frag.yaml` {rule}")),
        "{e}"
    );
    for at in [
        "files.yaml:3:",
        "files.yaml:5:",
        "files.yaml:6:",
        "files.yaml:7:",
        "files.yaml:8:",
    ] {
        assert!(e.contains(&format!("--> specs/{at}")), "{at}: {e}");
    }

    // `allow_paths` opens a folder explicitly: the same file is then read.
    let cfg = std::fs::read_to_string(p.path().join("focusqa.yaml")).unwrap();
    std::fs::write(
        p.path().join("focusqa.yaml"),
        format!("{cfg}allow_paths: [{o}]\n"),
    )
    .unwrap();
    p.spec(
        "files.yaml",
        &format!("id: files\ntitle: Files\nsteps:\n  - http: {{method: POST, path: /x, body_file: {o}/secret.txt}}\n"),
    );
    let out = p.run(&["validate", "specs/files.yaml"]);
    assert_exit(&out, 0);
}

#[test]
fn numbers_and_shards_read_from_results_are_checked() {
    let p = project();
    let fixture = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/results-passing.json"),
    )
    .unwrap();
    let mut huge: serde_json::Value = serde_json::from_str(&fixture).unwrap();
    huge["specs"][0]["duration_ms"] = serde_json::json!(1e308);
    write(&p, "in/huge/results.json", &huge.to_string());
    // Before: both panicked (exit 101).
    for args in [
        vec!["merge", "in/huge/results.json", "--report-dir", "out"],
        vec!["report", "in/huge/results.json", "--report-dir", "out"],
    ] {
        let out = p.run(&args);
        assert_exit(&out, 2);
        let e = stderr(&out);
        assert!(e.contains("in/huge/results.json"), "{e}");
        assert!(
            e.contains("field `specs[0].duration_ms` is 1e+308, expected a time of 0 to 1e12 ms"),
            "{e}"
        );
        assert!(!e.contains("panicked"), "{e}");
    }

    // Before: accepted, and the merge then tried to allocate 3 GiB.
    let out = p.run(&["run", "--shard", "1/18446744073709551615"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("1 <= K <= N <= 1000"),
        "{}",
        stderr(&out)
    );

    // Before: "shard 5 of 2" was only a warning.
    let mut a: serde_json::Value = serde_json::from_str(&fixture).unwrap();
    a["shard"] = serde_json::json!({"index": 1, "total": 2});
    a["specs"] = serde_json::json!([]);
    let mut b: serde_json::Value = serde_json::from_str(&fixture).unwrap();
    b["shard"] = serde_json::json!({"index": 5, "total": 2});
    write(&p, "shards/a/results.json", &a.to_string());
    write(&p, "shards/b/results.json", &b.to_string());
    let out = p.run(&["merge", "shards", "--report-dir", "out"]);
    assert_exit(&out, 2);
    let e = stderr(&out);
    assert!(
        e.contains("shards/b/results.json: field `shard`: shard 5/2"),
        "{e}"
    );
}

#[test]
fn retries_and_redirects_have_a_maximum() {
    let p = project();
    // Before: 4,294,967,295 retries were accepted.
    let out = p.run(&["run", "--retries", "4294967295"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("0..=10"), "{}", stderr(&out));
    p.spec(
        "redirects.yaml",
        "id: redirects\ntitle: Redirects\nretries: 11\nsteps:\n  - http: {path: /x, max_redirects: 1000000}\n",
    );
    let out = p.run(&["validate"]);
    assert_exit(&out, 2);
    let e = stderr(&out);
    assert!(e.contains("`retries: 11` is too many: at most 10"), "{e}");
    assert!(e.contains("--> specs/redirects.yaml:3:10"), "{e}");
    assert!(
        e.contains("`max_redirects: 1000000` is too many: at most 50"),
        "{e}"
    );
    assert!(e.contains("--> specs/redirects.yaml:5:37"), "{e}");
}

#[test]
fn templated_files_are_checked_at_run_time_and_results_record_what_was_sent() {
    let srv = common::TestServer::start(0);
    let p = project();
    // Two targets: `validate` bounds a body by the larger max_body; the run, by its target's.
    std::fs::write(
        p.path().join("focusqa.yaml"),
        format!(
            "default_target: local\nscope: none.yaml\ntargets:\n  local:\n    base_url: {0}\n    timeout: 5s\n    max_body: 1KiB\n  roomy:\n    base_url: {0}\n",
            srv.url
        ),
    )
    .unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "TOP-SECRET-LINE\n").unwrap();
    std::fs::write(
        outside.path().join("schema.json"),
        "{\"TOP-SECRET-LINE\": 1}",
    )
    .unwrap();
    let o = outside.path().display().to_string();
    write(&p, "specs/data.bin", "twelve bytes");
    write(&p, "specs/big.bin", &"x".repeat(2048));
    write(&p, "specs/schema.json", "{\"type\": \"object\"}");
    std::fs::create_dir_all(p.path().join("specs/folder")).unwrap();
    // The paths come from variables: `validate` cannot know them, the run checks them.
    p.spec(
        "files.yaml",
        &format!(
            "id: files\ntitle: Templated files\nvars: {{f: data.bin, m: data.bin, s: schema.json}}\n\
cases:\n\
  - {{name: inside}}\n\
  - {{name: outside, vars: {{f: {o}/secret.txt}}}}\n\
  - {{name: folder, vars: {{f: folder}}}}\n\
  - {{name: over max_body, vars: {{f: big.bin}}}}\n\
  - {{name: multipart outside, vars: {{m: {o}/secret.txt}}}}\n\
  - {{name: schema outside, vars: {{s: {o}/schema.json}}}}\n\
steps:\n\
  - http: {{method: POST, path: /configure, body_file: '{{{{ f }}}}'}}\n\
  - http: {{method: POST, path: /configure, multipart: [{{name: upload, file: '{{{{ m }}}}'}}]}}\n\
  - {{http: {{path: /headers}}, expect: {{schema: '{{{{ s }}}}'}}}}\n"
        ),
    );
    let out = p.run(&["validate", "specs/files.yaml"]);
    assert_exit(&out, 0);

    let out = p.run(&["run", "specs/files.yaml"]);
    assert_exit(&out, 1);
    let results = p.results();
    let text = serde_json::to_string(&results).unwrap();
    let shown = format!("{text}{}{}{}", stdout(&out), stderr(&out), p.junit());
    // Before: the outside files were read and sent, and their content stored in results.json.
    assert!(!shown.contains("TOP-SECRET-LINE"), "{shown}");
    let cases = results["specs"][0]["cases"].as_array().unwrap();
    let case = |name: &str| {
        cases
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("case {name}: {text}"))
    };
    let error_of = |name: &str| {
        let c = case(name);
        let step = c["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["status"] == "error")
            .unwrap_or_else(|| panic!("case {name} has no step error: {c}"));
        step["message"].as_str().unwrap_or_default().to_string()
    };

    // Inside the project: sent, with the file's path and size in the request excerpt.
    let inside = case("inside");
    assert_eq!(inside["status"], "passed", "{inside}");
    assert_eq!(
        inside["steps"][0]["request"]["files"],
        serde_json::json!([{"from": "body_file", "path": "specs/data.bin", "bytes": 12}]),
        "{inside}"
    );
    assert_eq!(
        inside["steps"][1]["request"]["files"],
        serde_json::json!([{"from": "multipart[upload]", "path": "specs/data.bin", "bytes": 12}]),
        "{inside}"
    );

    let rule = "is outside the project: a spec reads files only inside";
    let fix = "list its folder under `allow_paths:` in the config file";
    let m = error_of("outside");
    assert!(
        m.contains(&format!("body_file `{o}/secret.txt` {rule}")),
        "{m}"
    );
    assert!(m.contains(fix), "{m}");
    let m = error_of("folder");
    assert!(
        m.contains("body_file `specs/folder` is not a regular file"),
        "{m}"
    );
    // Within the 16 MiB of `roomy` (so `validate` passes), over the 1 KiB of the run's target.
    let m = error_of("over max_body");
    assert!(
        m.contains("body_file `specs/big.bin` has 2048 bytes, more than `max_body` (1024 bytes)"),
        "{m}"
    );
    let m = error_of("multipart outside");
    assert!(
        m.contains(&format!(
            "multipart part `upload`: file `{o}/secret.txt` {rule}"
        )),
        "{m}"
    );
    let m = error_of("schema outside");
    assert!(
        m.contains(&format!("schema file `{o}/schema.json` {rule}")),
        "{m}"
    );
}

/// Loading is linear in a spec's steps however many of them capture: the names known at each
/// step share their structure. Before, each step kept its own copy of every name captured
/// before and after it: 4,000 capturing steps took 3 GiB (and 12 s) to validate.
#[test]
fn four_thousand_capturing_steps_validate_in_bounded_memory() {
    let p = project();
    let mut spec = String::from("id: captures\ntitle: Many captures\nsteps:\n");
    for i in 0..4000 {
        // Each step uses the one before's capture, so every name is read somewhere.
        let path = match i {
            0 => "/x".to_string(),
            _ => format!("/x/{{{{ v{} }}}}", i - 1),
        };
        spec.push_str(&format!(
            "  - http: {{path: \"{path}\"}}\n    capture: {{v{i}: $.a}}\n"
        ));
    }
    p.spec("captures.yaml", &spec);
    let (out, peak_kib) = p.run_with_peak_rss(&["validate", "specs/captures.yaml"]);
    assert_exit(&out, 0);
    eprintln!(
        "4,000 capturing steps: validate peak {} MiB",
        peak_kib / 1024
    );
    assert!(
        peak_kib < 400 * 1024,
        "validate of 4,000 capturing steps peaked at {} MiB",
        peak_kib / 1024
    );
}
