//! Any string as a template or expression: rendering returns a value or an error, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|src: &str| {
    let mut scope = focusqa::template::Scope::default();
    scope.set("x", serde_json::json!("a,b"));
    scope.set("xs", serde_json::json!([1, 2, 3]));
    scope.set("m", serde_json::json!({"a": {"b": 1}}));
    let _ = scope.render_str(src);
    let _ = scope.eval(src);
    let _ = focusqa::template::lint(src, false);
    let _ = focusqa::template::lint(src, true);
    let _ = focusqa::spec::parse_duration(src);
});
