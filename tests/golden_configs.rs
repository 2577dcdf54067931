//! Golden tests for bad configs: `wasmgate check` on each `tests/configs/invalid/NAME.toml` must
//! fail and print exactly `NAME.err` (file, line, column, what is wrong and what to do).
//! Run with `UPDATE_GOLDEN=1` to rewrite the `.err` files after a deliberate change of wording.

use std::path::Path;
use std::process::Command;

mod build_plugins;

fn check(config: &Path) -> (bool, String) {
    // Configs name plugin files: they must exist and be current.
    build_plugins::plugins_built();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_wasmgate"))
        .current_dir(&root)
        .arg("check")
        .arg("-c")
        .arg(config)
        .output()
        .expect("run wasmgate check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn invalid_configs_fail_with_their_golden_errors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("tests/configs/invalid");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/configs/invalid")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "at least 10 golden configs");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for path in names {
        let rel = path.strip_prefix(&root).expect("inside the repo");
        let (ok, stderr) = check(rel);
        assert!(!ok, "{} should be refused", rel.display());
        let golden = path.with_extension("err");
        if update {
            std::fs::write(&golden, &stderr).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if want != stderr {
            failures.push(format!(
                "{}:\n--- want\n{want}--- got\n{stderr}",
                rel.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn example_config_is_valid() {
    let (ok, stderr) = check(Path::new("gateway.toml"));
    assert!(ok, "gateway.toml: {stderr}");
    // On success, what the config serves.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_wasmgate"))
        .current_dir(&root)
        .args(["check", "-c", "gateway.toml"])
        .output()
        .expect("run wasmgate check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = std::fs::read_to_string(root.join("gateway.toml")).expect("gateway.toml");
    let routes = text.matches("[[routes]]").count();
    assert!(
        stdout.starts_with("gateway.toml: ok: 1 listener(s), ")
            && stdout.contains(&format!(", {routes} route(s), ")),
        "{stdout}"
    );
}

#[test]
fn the_schema_command_prints_the_schema_editors_get() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_wasmgate"))
        .arg("schema")
        .output()
        .expect("run wasmgate schema");
    assert!(out.status.success());
    let file = std::fs::read(root.join("docs/gateway.schema.json")).expect("the schema file");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&file),
        "`wasmgate schema` and docs/gateway.schema.json differ"
    );
}
