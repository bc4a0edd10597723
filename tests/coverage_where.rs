//! Coverage says where: the same specs run on the embedded simulator and on a real server (a
//! local one, kind `remote`) read differently in every report (console, coverage.html with its
//! hard-requirement box, junit.xml properties), re-rendering keeps it, and a trend over both
//! runs says that it mixes kinds.

use crate::common;

use common::{assert_exit, results_in, stdout, Project, TestServer};

/// A catalog of three in-scope items (one a hard requirement): one verified, one failing, one
/// gap, whatever the target.
fn project() -> (TestServer, Project) {
    let srv = TestServer::start(0);
    let p = Project::new(&srv.url);
    p.with_scope(
        "title: Where scope\nareas: [{id: a, title: Area}]\nitems:\n  - {id: x.ok, area: a, status: in, hard_requirement: true, title: Holds}\n  - {id: x.bad, area: a, status: in, title: Breaks}\n  - {id: x.gap, area: a, status: in, title: Untested}\n",
        "specs: [specs]",
    );
    p.spec(
        "ok.yaml",
        "id: ok\ntitle: Holds\ncovers: [x.ok]\nsteps:\n  - sleep: 1ms\n",
    );
    p.spec(
        "bad.yaml",
        "id: bad\ntitle: Breaks\ncovers: [x.bad]\nsteps:\n  - assert: [{expr: \"1 == 2\"}]\n",
    );
    (srv, p)
}

/// The properties of the testsuite named `suite`, as (name, value), from junit.xml parsed.
fn suite_properties(xml: &str, suite: &str) -> Vec<(String, String)> {
    let parsed = quick_junit::Report::deserialize_from_str(xml).expect("junit parses back");
    let s = parsed
        .test_suites
        .iter()
        .find(|s| s.name.as_str() == suite)
        .unwrap_or_else(|| panic!("no testsuite {suite} in\n{xml}"));
    s.properties
        .iter()
        .map(|p| (p.name.to_string(), p.value.to_string()))
        .collect()
}

fn property<'a>(props: &'a [(String, String)], name: &str) -> Option<&'a str> {
    props
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn read(p: &Project, path: &str) -> String {
    std::fs::read_to_string(p.path().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_report_says_where_coverage_was_established() {
    let (_srv, p) = project();
    let emb = p.run(&[
        "run",
        "--target",
        "embedded",
        "--history",
        "hist",
        "--report-dir",
        "emb",
    ]);
    assert_exit(&emb, 1);
    let real = p.run(&[
        "run",
        "--target",
        "local",
        "--history",
        "hist",
        "--report-dir",
        "real",
    ]);
    assert_exit(&real, 1);

    // Console: the closing coverage line says where, a simulator's says it is one, and the hard
    // requirement has its own line.
    let (emb_out, real_out) = (stdout(&emb), stdout(&real));
    assert!(
        emb_out.contains("Scope coverage: 1 of 3 in-scope items verified on the embedded simulator, 1 failing, 1 gaps"),
        "{emb_out}"
    );
    assert!(
        emb_out.contains("these outcomes come from a simulator, not from a real Focus Server"),
        "{emb_out}"
    );
    assert!(
        emb_out.contains("hard requirement x.ok (Holds): Verified on the embedded simulator"),
        "{emb_out}"
    );
    assert!(
        real_out.contains(
            "Scope coverage: 1 of 3 in-scope items verified on local (a real server), 1 failing"
        ),
        "{real_out}"
    );
    assert!(!real_out.contains("from a simulator"), "{real_out}");
    assert!(
        real_out.contains("hard requirement x.ok (Holds): Verified on local (a real server)"),
        "{real_out}"
    );

    // coverage.html: headline, the note under it, the hard-requirement box and each item.
    let emb_html = read(&p, "emb/coverage.html");
    for want in [
        "1 of 3 in-scope items verified on the embedded simulator</h2>",
        "Not a real Focus Server",
        "Met on the embedded simulator.",
        "whether a real server meets this requirement is still to be shown",
        "Verified on the embedded simulator</span>",
        "Failing on the embedded simulator</span>",
    ] {
        assert!(emb_html.contains(want), "coverage.html lacks {want:?}");
    }
    assert!(!emb_html.contains("(a real server)"));
    let real_html = read(&p, "real/coverage.html");
    for want in [
        "1 of 3 in-scope items verified on local (a real server)</h2>",
        "Met on local (a real server).",
        "Verified on local (a real server)</span>",
        "Failing on local (a real server)</span>",
    ] {
        assert!(real_html.contains(want), "coverage.html lacks {want:?}");
    }
    assert!(!real_html.contains("Not a real Focus Server"));
    assert!(!real_html.contains("still to be shown"));

    // junit.xml: each suite's target kind, and where its covered items were verified or failed.
    for (dir, on, kind) in [
        ("emb", "embedded simulator", "embedded simulator"),
        ("real", "local (real server)", "real server"),
    ] {
        let path = p.path().join(dir).join("junit.xml");
        common::xmllint_validate(&path);
        let xml = std::fs::read_to_string(&path).unwrap();
        let ok = suite_properties(&xml, "ok");
        assert_eq!(property(&ok, "target.kind"), Some(kind), "{ok:?}");
        assert_eq!(property(&ok, "coverage.verified_on"), Some(on), "{ok:?}");
        assert_eq!(property(&ok, "coverage.failing_on"), None, "{ok:?}");
        let bad = suite_properties(&xml, "bad");
        assert_eq!(property(&bad, "coverage.failing_on"), Some(on), "{bad:?}");
        assert_eq!(property(&bad, "coverage.verified_on"), None, "{bad:?}");
    }

    // results.json keeps each item's target and kind; a re-render says the same.
    let items =
        |dir: &str| results_in(&p.path().join(dir))["coverage"]["areas"][0]["items"].clone();
    assert_eq!(
        items("real")[0]["target"],
        serde_json::json!({"name": "local", "kind": "remote"})
    );
    assert!(
        items("real")[2].get("target").is_none(),
        "a gap ran nowhere"
    );
    let again = p.run(&["report", "real/results.json", "--report-dir", "again"]);
    assert_exit(&again, 0);
    assert!(read(&p, "again/coverage.html").contains("Verified on local (a real server)</span>"));
    // A results.json from before items recorded where: established on its run's target.
    let mut old = results_in(&p.path().join("emb"));
    for item in old["coverage"]["areas"][0]["items"].as_array_mut().unwrap() {
        item.as_object_mut().unwrap().remove("target");
    }
    std::fs::create_dir_all(p.path().join("old")).unwrap();
    std::fs::write(p.path().join("old/results.json"), old.to_string()).unwrap();
    let old_out = p.run(&["report", "old/results.json"]);
    assert_exit(&old_out, 0);
    assert!(
        stdout(&old_out).contains("verified on the embedded simulator"),
        "{}",
        stdout(&old_out)
    );

    // History: each record keeps its kind; a trend over both kinds says so, on both pages.
    let kinds: Vec<String> = std::fs::read_dir(p.path().join("hist"))
        .unwrap()
        .map(|e| {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap();
            v["target_kind"].as_str().unwrap().to_string()
        })
        .collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(sorted, ["embedded", "remote"]);
    for page in ["real/coverage.html", "real/summary.html"] {
        let html = read(&p, page);
        assert!(
            html.contains("<strong>Caution:</strong> These runs were on different kinds of target (the embedded simulator: run 1; local (a real server): run 2)"),
            "{page} does not say its trend mixes kinds"
        );
        assert!(html.contains("<td>local (real server)</td>"), "{page}");
    }
    // One kind only: named, no caution.
    let emb_trend = read(&p, "emb/coverage.html");
    assert!(emb_trend.contains("The run on the embedded simulator."));
    assert!(!emb_trend.contains("Caution:"));
}
