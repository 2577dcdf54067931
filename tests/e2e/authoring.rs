//! Tools for plugin authors: `wasmgate plugin run` runs one real plugin on a sample request,
//! with no gateway or upstream.

use std::process::{Command, Output};

use crate::harness::{plugin, plugin_cache};

fn plugin_run(name: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmgate"))
        .args(["plugin", "run"])
        .arg(plugin(name))
        .args(args)
        // The compiled-code cache the other tests share, not the user's.
        .env("XDG_CACHE_HOME", plugin_cache())
        .output()
        .expect("wasmgate plugin run")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plugin_run_prints_what_a_plugin_changed_and_what_it_answered() {
    // Edits both ways, from the plugin's config.
    let out = plugin_run(
        "headers",
        &[
            "/shop?x=1",
            "--config",
            r#"{"request": {"set": {"x-gateway": "wasmgate"}, "remove": ["authorization"]}, "security_headers": true}"#,
            "-H",
            "authorization: Bearer secret",
            "--response-header",
            "content-type: text/plain",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    for line in [
        "request: forwarded",
        "  - authorization: Bearer secret",
        "  + x-gateway: wasmgate",
        "response (from the upstream): 200 -> 200",
        "  + x-frame-options: DENY",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no `{line}` in:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("content-type: text/plain"),
        "unchanged headers are not listed:\n{stdout}"
    );

    // An early answer: the upstream is not called.
    let out = plugin_run(
        "deny",
        &[
            "--config",
            r#"{"status": 429, "when_header": "x-deny"}"#,
            "-H",
            "x-deny: 1",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("request: answered;") && stdout.contains("client gets: 429"),
        "{stdout}"
    );
    assert!(!stdout.contains("response ("), "{stdout}");

    // Context, a WASI print on stderr, and a trap with the guest's message, answered per the
    // plugin's fail mode (closed: 500).
    let out = plugin_run("trap", &["-H", "x-trap: print"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("trap plugin: printed to stderr"),
        "{stderr}"
    );
    assert!(stdout.contains("  + x-trap-passed: 1"), "{stdout}");
    let out = plugin_run("trap", &["-H", "x-trap: now"]);
    let (stdout, stderr) = text(&out);
    assert!(
        stderr.contains("asked to trap"),
        "the guest's message: {stderr}"
    );
    assert!(stdout.contains("client gets: 500"), "{stdout}");
}

#[test]
fn plugin_run_refuses_a_bad_config_or_sample_with_the_reason() {
    let out = plugin_run("rate-limit", &["--config", r#"{"limit": -1}"#]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("limit"), "names the key: {stderr}");
    assert!(
        !stderr.contains("plugin run:"),
        "no synthetic file positions: {stderr}"
    );

    let out = plugin_run("headers", &["--config", "{not json"]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("the plugin's config"),
        "{}",
        text(&out).1
    );

    let out = plugin_run("headers", &["-H", "no colon"]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("name: value"), "{}", text(&out).1);
}

#[test]
fn a_component_importing_what_the_host_lacks_is_refused_before_compiling() {
    // componentize-js's default build imports wasi:http (for `fetch`), which plugins do not get.
    let dir = crate::harness::temp_dir("js-default-build");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let guest = dir.join("guest.js");
    std::fs::write(
        &guest,
        "const go = () => ({ tag: 'continue' });\n\
         export const guest = { init: () => ({ requestHeaders: true }), onRequestHeaders: go,\n\
         onRequestBody: go, onResponseHeaders: go, onResponseBody: go, onLog() {} };\n",
    )
    .expect("write guest.js");
    let wasm = dir.join("default.wasm");
    let built = Command::new("node")
        .arg(root.join("plugin-sdk/js/node_modules/@bytecodealliance/componentize-js/src/cli.js"))
        .arg(&guest)
        .arg("--wit")
        .arg(root.join("wit"))
        .args(["-n", "plugin", "-o"])
        .arg(&wasm)
        .output()
        .expect("node (plugins/build.sh installs componentize-js)");
    assert!(built.status.success(), "{}", text(&built).1);

    let cache = dir.join("cache");
    let out = Command::new(env!("CARGO_BIN_EXE_wasmgate"))
        .args(["plugin", "run"])
        .arg(&wasm)
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .expect("wasmgate plugin run");
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("imports `wasi:http/types@"), "{stderr}");
    assert!(
        stderr.contains("--disable http fetch-event"),
        "says what to do: {stderr}"
    );
    let compiled = std::fs::read_dir(cache.join("wasmgate/plugins"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(compiled, 0, "refused before compiling: nothing cached");
}

/// `wasmgate plugin new`, `plugin build` and the project's own test, in an empty folder outside
/// the repository; the built plugin then runs.
fn scaffold(lang: &str, test: &[&str]) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let parent =
        std::env::temp_dir().join(format!("wasmgate-scaffold-{lang}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&parent);
    std::fs::create_dir_all(&parent).expect("temp folder");
    let name = format!("hello-{lang}");
    let wasmgate = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_wasmgate"))
            .args(args)
            .current_dir(&parent)
            // The Rust project builds its dependencies in the repository's target folder
            // (reusing what plugins/build.sh compiled), not in a fresh one per run.
            .env("CARGO_TARGET_DIR", root.join("target"))
            .env("XDG_CACHE_HOME", plugin_cache())
            .output()
            .expect("wasmgate");
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "wasmgate {args:?}:\n{stdout}{stderr}");
        stdout
    };
    wasmgate(&["plugin", "new", &name, "--lang", lang]);
    let dir = parent.join(&name);
    if lang == "rust" {
        // The same versions as this repository's plugins, so their builds are reused.
        std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).expect("Cargo.lock");
    }
    wasmgate(&["plugin", "build", &name]);
    let wasm = dir.join(format!("{name}.wasm"));
    assert!(wasm.is_file(), "no {}", wasm.display());

    let tested = Command::new(test[0])
        .args(&test[1..])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", root.join("target"))
        // With `--release` and the repository's release settings, the test build reuses the
        // dependencies `tests/run.sh` already compiled instead of building them again.
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        .output()
        .expect("the project's test");
    let (stdout, stderr) = text(&tested);
    assert!(tested.status.success(), "{test:?}:\n{stdout}{stderr}");

    let run = wasmgate(&[
        "plugin",
        "run",
        wasm.to_str().expect("path"),
        "-H",
        "x-deny: 1",
    ]);
    assert!(run.contains("client gets: 403"), "{run}");
    let run = wasmgate(&["plugin", "run", wasm.to_str().expect("path")]);
    assert!(run.contains(&format!("+ x-{name}: seen")), "{run}");
    let _ = std::fs::remove_dir_all(&parent);
}

#[test]
fn plugin_new_in_rust_builds_and_passes_its_test() {
    scaffold("rust", &["cargo", "test", "-q", "--release"]);
}

#[test]
fn plugin_new_in_python_builds_and_passes_its_test() {
    scaffold("python", &[".venv/bin/python", "-m", "unittest", "-q"]);
}

#[test]
fn plugin_new_in_javascript_builds_and_passes_its_test() {
    scaffold("js", &["npm", "test", "--silent"]);
}
