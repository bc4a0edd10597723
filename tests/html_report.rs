//! HTML reports: rendering of both views from fixture results, escaping, redaction, template
//! overrides, snapshots, and a headless Chromium check (screenshot + no JavaScript errors).

use std::path::{Path, PathBuf};
use std::process::Command;

use focusqa::report::html;
use focusqa::results::{CoverageOutcome, RunReport};

fn fixture(name: &str) -> RunReport {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    // As `focusqa report` reads it (the rules by name redact the fixture's raw secrets).
    focusqa::report::json::read(&p).unwrap_or_else(|e| panic!("{e}"))
}

fn full() -> RunReport {
    fixture("results-full.json")
}

fn render(r: &RunReport, view: &str) -> String {
    html::render(r, view, None).unwrap_or_else(|e| panic!("{view}: {e}"))
}

/// The opening tag of the element with `id`.
fn tag_with_id<'a>(html: &'a str, id: &str) -> &'a str {
    let needle = format!("id=\"{id}\"");
    let at = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no element with {needle}"));
    let start = html[..at].rfind('<').unwrap();
    let end = at + html[at..].find('>').unwrap();
    &html[start..=end]
}

/// The text a reader sees: no style, script or tags.
fn visible_text(html: &str) -> String {
    let re = regex::Regex::new(r"(?s)<style>.*?</style>|<script>.*?</script>|<[^>]*>").unwrap();
    re.replace_all(html, " ").into_owned()
}

#[test]
fn both_views_render_for_every_fixture() {
    for f in ["results-full.json", "results-passing.json"] {
        let r = fixture(f);
        for view in html::VIEWS {
            let out = render(&r, view);
            assert!(out.starts_with("<!DOCTYPE html>"), "{f} {view}");
            assert!(out.trim_end().ends_with("</html>"), "{f} {view}");
            // Target and time of the run on both views.
            assert!(out.contains(&r.target.name), "{f} {view}: target");
            assert!(
                out.contains(&r.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
                "{f} {view}: time"
            );
        }
    }
    assert!(html::render(&full(), "nope.html", None)
        .unwrap_err()
        .contains("unknown HTML view"));
}

#[test]
fn an_empty_run_renders() {
    let mut r = fixture("results-passing.json");
    r.specs.clear();
    r.totals = focusqa::results::Totals::default();
    let sum = render(&r, "summary.html");
    assert!(sum.contains("No spec was run."));
    assert!(!sum.contains("Load results") && !sum.contains("Readiness timing"));
    assert!(render(&r, "coverage.html").contains("No scope catalog was used"));
}

#[test]
fn untrusted_text_is_escaped() {
    let r = full();
    for view in html::VIEWS {
        let out = render(&r, view);
        assert!(
            !out.contains("<script>alert(1)"),
            "{view}: raw script from a response body"
        );
        assert!(
            !out.contains("<img src=x onerror"),
            "{view}: raw img from a spec title / attachment"
        );
        assert!(
            !out.contains("<b>not</b>"),
            "{view}: raw markup from an assertion message"
        );
    }
    let summary = render(&r, "summary.html");
    assert!(
        summary.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "escaped body is shown"
    );
    assert!(
        summary.contains("Channels &lt;img src=x onerror=alert(2)&gt; validation"),
        "escaped title is shown"
    );
    // Only the page's own two inline scripts.
    assert_eq!(summary.matches("<script").count(), 2);
    assert_eq!(render(&r, "coverage.html").matches("<script").count(), 2);
}

#[test]
fn secrets_are_never_printed() {
    let r = full();
    for view in html::VIEWS {
        let out = render(&r, view);
        assert!(
            !out.contains("s3cr3t"),
            "{view}: a secret leaked: {}",
            &out[out.find("s3cr3t").unwrap().saturating_sub(200)..][..300]
        );
    }
    let summary = render(&r, "summary.html");
    assert!(summary.contains("Authorization: [redacted]"));
    assert!(summary.contains("token=[redacted]"));
    assert!(
        summary.contains("content-type: application&#x2f;json"),
        "ordinary headers stay"
    );
}

#[test]
fn views_are_self_contained() {
    let re = regex::Regex::new(r#"(?i)(src|href|action)\s*=\s*["']?(https?:|//)"#).unwrap();
    for f in ["results-full.json", "results-passing.json"] {
        for view in html::VIEWS {
            let out = render(&fixture(f), view);
            assert!(!re.is_match(&out), "{f} {view}: external reference");
            assert!(!out.contains("<link"), "{f} {view}: external stylesheet");
            assert!(!out.contains("<script src"), "{f} {view}: external script");
            assert!(!out.contains("@import"), "{f} {view}: CSS import");
            assert!(out.contains("@media print"), "{f} {view}: print styles");
        }
    }
}

#[test]
fn summary_expands_failures_and_shows_their_evidence() {
    let out = render(&full(), "summary.html");
    // Failing and erroring cases open, passing ones collapsed.
    assert!(tag_with_id(
        &out,
        "spec-api-validation-channels-case-max-below-min-is-rejected"
    )
    .contains(" open"));
    assert!(tag_with_id(
        &out,
        "spec-k8s-lifecycle-job-opens-case-job-pod-reaches-running"
    )
    .contains(" open"));
    assert!(!tag_with_id(
        &out,
        "spec-api-validation-channels-case-valid-range-is-accepted"
    )
    .contains(" open"));
    assert!(!tag_with_id(
        &out,
        "spec-api-configure-live-case-live-mode--default-channels"
    )
    .contains(" open"));
    // file:line, message, expected vs actual, diff in <pre>, poll, attachment, connection refused.
    assert!(out.contains("specs&#x2f;api&#x2f;validation-channels.yaml:23"));
    assert!(
        out.contains("<pre class=\"value\">400</pre>")
            && out.contains("<pre class=\"value\">200</pre>")
    );
    assert!(out.contains("<em>nothing (not found)</em>"));
    assert!(out.contains("<pre class=\"text diff\">--- expected\n+++ actual"));
    assert!(out.contains("Connection refused (os error 111)"));
    assert!(out.contains("Attachment: events in namespace focus"));
    assert!(out.contains("25 attempts every 5 ms"));
    assert!(out.contains("(2.4 s simulated)"));
    // A poll that never held: attempts and the last mismatch (multi-line, in a <pre>).
    assert!(out.contains("300 attempts every 5 ms (timeout 1.5 s)"));
    assert!(out.contains("<strong>never held</strong>"));
    assert!(
        out.contains("found &quot;Pending&quot;\ncontainer baby: waiting (ImagePullBackOff)</pre>")
    );
    // Skipped with its reason.
    assert!(out.contains("Skipped: target `lab-a` lacks capability `gpu`"));
    // Filters by status, tag and area, hidden until the script shows them.
    assert!(out.contains("<form id=\"filters\" class=\"filters\" hidden>"));
    assert!(out.contains("<option value=\"hard-requirement\">"));
    assert!(out.contains("<option value=\"k8s-limits\">Kubernetes: limits (1)</option>"));
    assert!(out.contains("data-areas=\"|api-validation|\""));
    // Accessible tables.
    assert!(out.matches("<caption>").count() >= 10);
    assert!(out.contains("<th scope=\"col\">Status</th>"));
}

#[test]
fn summary_charts_fanout_and_readiness() {
    let out = render(&full(), "summary.html");
    assert!(out.contains("Load results (fan-out)"));
    assert!(out.contains(
        "188&#x2f;200 succeeded, 9 x 503 capacity reached (no free GPU slice), 3 x error: timeout"
    ));
    assert!(out.contains("Latency percentiles of configure"));
    assert!(out.contains("Latency histogram of wait for metadata"));
    assert!(out.contains("&gt; 30 s"), "the open-ended last bucket");
    assert!(out.contains("<code>succeeded == 200</code></th><td>188</td><td><span class=\"badge s-failed\">Not met</span>"));
    // Readiness: 2 + 6 satisfied polls of `wait for metadata`, in simulated time.
    assert!(out.contains("Readiness timing"));
    assert!(
        out.contains(
            "over the 8 successful polls of the run, in simulated time (time scale 20 (simulated delays run 20× slower than real time))"
        ),
        "{}",
        &out[out.find("Readiness timing").unwrap()..][..800]
    );
    assert!(out.contains("<tr class=\"total\"><th scope=\"row\">All</th><td class=\"num\">8</td><td class=\"num\">800 ms</td><td class=\"num\">2.35 s</td><td class=\"num\">29 s</td></tr>"));
    let svgs = out.matches("<svg ").count();
    // 1 outcome chart + 2 x (percentiles + histogram) + readiness histogram.
    assert_eq!(svgs, 6);
    assert_eq!(out.matches("role=\"img\"").count(), svgs);
}

#[test]
fn coverage_speaks_to_managers() {
    let out = render(&full(), "coverage.html");
    // Where, beside every "verified" and "met": the fixture ran on the embedded simulator.
    assert!(out.contains("2 of 8 in-scope items verified on the embedded simulator</h2>"));
    assert!(out.contains("Not a real Focus Server"));
    assert!(out.contains("<strong>3</strong> failing"));
    assert!(out.contains("<strong>2</strong> gaps (no test yet)"));
    // The hard requirement, called out with the fan-out result.
    assert!(out.contains("Hard requirement"));
    assert!(out.contains("Not met on the embedded simulator: 188 of 200 succeeded."));
    assert!(out.contains("p95 1.41 s (configure)"));
    assert!(out.contains("succeeded == 200 (was 188)"));
    // Outcomes in words.
    for w in [
        "Verified on the embedded simulator",
        "Failing on the embedded simulator",
        "Gap — no spec",
        "Skipped on the embedded simulator",
    ] {
        assert!(out.contains(&format!("\">{w}</span>")), "{w}");
    }
    assert!(out.contains("Gaps: in scope but not tested yet (2)"));
    assert!(out.contains("Backlog (1)"));
    assert!(
        out.contains("Excluded by decision: Meeting decision: remove all of gRPC from the tests")
    );
    assert!(out.contains("All gRPC streaming tests"));
    // Links into the summary.
    assert!(out.contains("href=\"summary.html#spec-load-concurrent-200\""));
    let text = visible_text(&out);
    for jargon in ["fanout", "fan-out", "assertion", "threshold(", "p95("] {
        assert!(
            !text.contains(jargon),
            "engineer jargon `{jargon}` in: {}",
            &text[text.find(jargon).unwrap().saturating_sub(100)..][..200]
        );
    }
}

#[test]
fn coverage_met_requirement_and_no_catalog() {
    let mut r = full();
    for s in r.specs.iter_mut().filter(|s| s.id == "load.concurrent-200") {
        let f = s.cases[0].steps[0].fanout.as_mut().unwrap();
        f.succeeded = 200;
        f.failed = 0;
        f.by_reason.clear();
    }
    let cov = r.coverage.as_mut().unwrap();
    for i in cov
        .areas
        .iter_mut()
        .flat_map(|a| a.items.iter_mut())
        .filter(|i| i.hard_requirement)
    {
        i.outcome = CoverageOutcome::Verified;
    }
    let out = render(&r, "coverage.html");
    assert!(out.contains("Met on the embedded simulator: 200 of 200 succeeded."));
    assert!(out.contains("whether a real server meets this requirement is still to be shown"));
    assert!(out.contains("200&#x2f;200 succeeded, p95 1.41 s (configure), 1 cleanup failures"));

    r.coverage = None;
    let out = render(&r, "coverage.html");
    assert!(out.contains("No scope catalog was used for this run"));
}

#[test]
fn templates_dir_overrides_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("coverage.html"),
        "<p>custom {{ run.target }} {{ report.specs[1].title }}</p>",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("_style.css"),
        "body { color: rebeccapurple; }",
    )
    .unwrap();
    let r = full();
    let cov = html::render(&r, "coverage.html", Some(dir.path())).unwrap();
    assert_eq!(
        cov,
        "<p>custom lab-a Channels &lt;img src=x onerror=alert(2)&gt; validation</p>"
    );
    // The summary page keeps its template but picks up the overridden stylesheet partial.
    let sum = html::render(&r, "summary.html", Some(dir.path())).unwrap();
    assert!(sum.contains("rebeccapurple") && sum.contains("Test results"));
    // A template error names the template and line.
    std::fs::write(
        dir.path().join("coverage.html"),
        "line 1\n{{ run.nope.deeper }}",
    )
    .unwrap();
    let err = html::render(&r, "coverage.html", Some(dir.path())).unwrap_err();
    assert!(err.contains("coverage.html:2"), "{err}");
    assert!(html::render(&r, "coverage.html", Some(&dir.path().join("missing"))).is_err());
}

#[test]
fn write_creates_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reports");
    let files = html::write(&full(), &out, None).unwrap();
    assert_eq!(
        files,
        vec![out.join("summary.html"), out.join("coverage.html")]
    );
    for f in &files {
        assert!(std::fs::metadata(f).unwrap().len() > 5000);
    }
}

#[test]
fn a_response_shows_its_version_final_url_wire_size_and_note() {
    let html = render(&full(), "summary.html").replace("&#x2f;", "/");
    for part in [
        "HTTP/1.1 200",
        "from https://focus.lab:8443/focus-server/configure?retry=1",
        "18874368 bytes on the wire",
        "… (body over max_body (16777216 bytes): its start is kept",
    ] {
        assert!(html.contains(part), "summary.html lacks {part:?}");
    }
    // The note says why the body is cut; the generic line would only repeat it less precisely.
    assert!(!html.contains("(body cut to the excerpt size)"));
}

#[test]
fn snapshots() {
    let r = full();
    insta::assert_snapshot!("summary_full", render(&r, "summary.html"));
    insta::assert_snapshot!("coverage_full", render(&r, "coverage.html"));
    let p = fixture("results-passing.json");
    insta::assert_snapshot!("summary_passing", render(&p, "summary.html"));
    insta::assert_snapshot!("coverage_none", render(&p, "coverage.html"));
}

// ---------------------------------------------------------------------------------------------
// Headless Chromium
// ---------------------------------------------------------------------------------------------

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

fn chromium_args(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// Lines of Chromium's log that come from a page: uncaught errors, CSP refusals, and any
/// console output at all (the report pages never log, and Chromium logs every console level
/// as `INFO:CONSOLE:<line>]` or, in older versions, `CONSOLE(<line>)`).
fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            l.contains(":CONSOLE")
                || l.contains("CONSOLE(")
                || l.contains("Uncaught")
                || l.contains("Refused to")
        })
        .collect()
}

fn run_chromium(bin: &Path, args: &[String]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(bin)
        .args(chromium_args(profile.path()))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "chromium {args:?} failed: {}\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

#[test]
fn chromium_renders_without_script_errors() {
    let Some(bin) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromium is not installed (apt-get install -y chromium); CI must run the browser check");
        }
        eprintln!(
            "NOTICE: chromium not found (/usr/bin/chromium); skipping the headless browser check"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    html::write(&full(), dir.path(), None).unwrap();
    // A second report without a catalog and with only passing specs.
    let passing = dir.path().join("passing");
    html::write(&fixture("results-passing.json"), &passing, None).unwrap();

    let shots = std::env::temp_dir().join("focusqa-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let pages: Vec<(PathBuf, &str, &str)> = vec![
        (dir.path().join("summary.html"), "summary.png", "1280,2400"),
        (
            dir.path().join("coverage.html"),
            "coverage.png",
            "1280,2000",
        ),
        (
            dir.path().join("summary.html"),
            "summary-narrow.png",
            "360,2400",
        ),
        (
            dir.path().join("coverage.html"),
            "coverage-narrow.png",
            "360,2000",
        ),
        (
            passing.join("summary.html"),
            "summary-passing.png",
            "1280,1200",
        ),
        (
            passing.join("coverage.html"),
            "coverage-none.png",
            "1280,800",
        ),
    ];
    for (page, png, size) in &pages {
        let url = format!("file://{}", page.display());
        let narrow = png.contains("narrow");
        // The DOM after load: the page's script marks success, its onerror handler marks failure.
        // (Once per page: the narrow screenshots show the same pages.)
        if !narrow {
            let (dom, stderr) = run_chromium(&bin, &["--dump-dom".into(), url.clone()]);
            assert!(
                dom.contains("data-js-ok=\"1\""),
                "{url}: the page script did not finish\n{stderr}"
            );
            let root = &dom[dom.find("<html").expect("dumped DOM")..];
            let root = &root[..root.find('>').unwrap()];
            assert!(
                !root.contains("data-js-error"),
                "{url}: script error: {root}"
            );
            assert!(
                !dom.contains("<form id=\"filters\" class=\"filters\" hidden"),
                "{url}: filters were not shown"
            );
            let errs = console_errors(&stderr);
            assert!(
                errs.is_empty(),
                "{url}: console errors:\n{}",
                errs.join("\n")
            );
        }

        let target = dir.path().join(png);
        let (_, stderr) = run_chromium(
            &bin,
            &[
                format!("--screenshot={}", target.display()),
                format!("--window-size={size}"),
                url.clone(),
            ],
        );
        let errs = console_errors(&stderr);
        assert!(
            errs.is_empty(),
            "{url}: console errors:\n{}",
            errs.join("\n")
        );
        let bytes = std::fs::read(&target)
            .unwrap_or_else(|e| panic!("{}: no screenshot: {e}\n{stderr}", target.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "{png}: not a PNG");
        assert!(
            bytes.len() > 20_000,
            "{png}: suspiciously small screenshot ({} bytes)",
            bytes.len()
        );
        std::fs::copy(&target, shots.join(png)).unwrap();
    }

    // Filters work in the browser, and can be set from the address.
    let url = format!(
        "file://{}?status=problem&tag=load",
        dir.path().join("summary.html").display()
    );
    let (dom, stderr) = run_chromium(&bin, &["--dump-dom".into(), url]);
    assert!(dom.contains("data-js-ok=\"1\""), "{stderr}");
    assert!(dom.contains("1 of 6 specs shown"), "filter count");
    let rows: Vec<&str> = dom
        .split("<tr ")
        .skip(1)
        .map(|t| &t[..t.find('>').unwrap()])
        .filter(|t| t.contains("data-filterable"))
        .collect();
    assert_eq!(rows.len(), 6);
    for r in rows {
        let shown = !r.contains(" hidden");
        assert_eq!(
            shown,
            r.contains("|load|") && r.contains("data-status=\"failed\""),
            "{r}"
        );
    }

    // The checks above do catch a broken page.
    let broken = tempfile::tempdir().unwrap();
    std::fs::write(
        broken.path().join("summary.html"),
        "{% extends \"_layout.html\" %}{% block main %}<p>broken</p>{% endblock %}{% block script %}notAFunction();{% endblock %}",
    )
    .unwrap();
    let out = dir.path().join("broken");
    html::write(&full(), &out, Some(broken.path())).unwrap();
    let url = format!("file://{}", out.join("summary.html").display());
    let (dom, stderr) = run_chromium(&bin, &["--dump-dom".into(), url]);
    assert!(!dom.contains("data-js-ok=\"1\""));
    assert!(
        dom.contains("data-js-error=\"Uncaught ReferenceError: notAFunction is not defined"),
        "{dom}"
    );
    assert!(
        console_errors(&stderr)
            .iter()
            .any(|l| l.contains("Uncaught ReferenceError")),
        "{stderr}"
    );

    println!("screenshots: {}", shots.display());
    eprintln!("screenshots: {}", shots.display());
}
