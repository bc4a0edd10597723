//! Any bytes as a spec file: the loader returns a spec or diagnostics, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(diags) = focusqa::spec::load::load_text("fuzz.yaml", &text, None, &[]) {
        for d in diags {
            assert!(
                d.pos.line > 0 && d.pos.col > 0,
                "a diagnostic without file:line:col: {d}"
            );
        }
    }
});
