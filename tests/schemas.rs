//! The JSON Schemas in schemas/ are generated from the Rust types and must stay in sync;
//! every shipped spec and the scope catalog validate against them.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn committed_schemas_match_the_types() {
    for (name, generated) in focusqa::cli::schemas() {
        let path = root().join("schemas").join(name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "schemas/{name} is out of date with the Rust types; regenerate with `cargo run -- schema --out schemas`"
        );
    }
}

fn yaml_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push(p);
        }
    }
}

#[test]
fn shipped_specs_and_catalog_validate_against_the_schemas() {
    let load = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(root().join("schemas").join(name)).unwrap())
            .unwrap()
    };
    let spec_schema =
        jsonschema::validator_for(&load("spec.schema.json")).expect("spec schema compiles");
    let scope_schema =
        jsonschema::validator_for(&load("scope.schema.json")).expect("scope schema compiles");
    let config_schema =
        jsonschema::validator_for(&load("config.schema.json")).expect("config schema compiles");
    let mut files = Vec::new();
    yaml_files(&root().join("specs"), &mut files);
    assert!(!files.is_empty());
    for f in files {
        let v: serde_json::Value =
            focusqa::spec::yaml::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let validator = if f.file_name().unwrap() == "scope.yaml" {
            &scope_schema
        } else {
            &spec_schema
        };
        let errors: Vec<String> = validator
            .iter_errors(&v)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{} does not match its schema:\n{}",
            f.display(),
            errors.join("\n")
        );
    }
    let cfg: serde_json::Value = focusqa::spec::yaml::from_str(
        &std::fs::read_to_string(root().join("focusqa.yaml")).unwrap(),
    )
    .unwrap();
    let errors: Vec<String> = config_schema
        .iter_errors(&cfg)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "focusqa.yaml: {errors:?}");
}

#[test]
fn the_schema_rejects_a_grpc_step_and_typos() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schemas/spec.schema.json")).unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let ok: serde_json::Value = focusqa::spec::yaml::from_str(
        "id: a\ntitle: t\nsteps:\n  - http: {path: /x}\n    expect: {status: 200}\n",
    )
    .unwrap();
    assert!(v.is_valid(&ok));
    let grpc: serde_json::Value =
        focusqa::spec::yaml::from_str("id: a\ntitle: t\nsteps:\n  - grpc: {service: x}\n").unwrap();
    assert!(!v.is_valid(&grpc));
    let typo: serde_json::Value = focusqa::spec::yaml::from_str(
        "id: a\ntitle: t\nsteps:\n  - http: {path: /x}\n    expct: {}\n",
    )
    .unwrap();
    assert!(!v.is_valid(&typo));
}
