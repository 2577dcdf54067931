//! Property tests of the config reader: any text is refused or read without panicking, and a
//! config read from a file reads back the same after being written out (as the admin shows it).

use std::path::Path;

use proptest::prelude::*;

use super::parse;

/// Pieces of plausible and broken `gateway.toml` lines, shuffled into documents.
fn fragments() -> impl Strategy<Value = String> {
    let pieces = vec![
        "[server]\n",
        "workers = 2\n",
        "workers = 0\n",
        "workers = 100000000000\n",
        "header_read_timeout = \"1s\"\n",
        "max_body = \"1KiB\"\n",
        "max_body = \"12 parsecs\"\n",
        "allow_empty = true\n",
        "[[listeners]]\n",
        "address = \"127.0.0.1:8080\"\n",
        "address = \"nowhere\"\n",
        "max_connections = 0\n",
        "[upstreams.u]\n",
        "targets = [\"127.0.0.1:9000\"]\n",
        "targets = []\n",
        "balance = \"hash\"\n",
        "[[routes]]\n",
        "path = \"/a/{id}\"\n",
        "path = \"/a/{\"\n",
        "path_prefix = \"/b\"\n",
        "upstream = \"u\"\n",
        "upstream = \"missing\"\n",
        "secret = \"${env:WASMGATE_PROPTEST_UNSET}\"\n",
        "url = \"${file:/nonexistent}\"\n",
        "x = \"${\"\n",
        "= = =\n",
        "[admin]\n",
        "token = \"short\"\n",
        "\u{0}\n",
        "é = 1\n",
    ];
    prop::collection::vec(prop::sample::select(pieces), 0..24).prop_map(|v| v.concat())
}

/// A valid config: upstreams and routes with random names, paths, hosts and settings.
fn valid_config() -> impl Strategy<Value = String> {
    // Literal segments, or parameters (`None`), named by position so that no name repeats.
    let segment = prop::option::of("[a-z0-9]{1,6}");
    let path = prop::collection::vec(segment, 0..4).prop_map(|segs| {
        let segs: Vec<String> = segs
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.unwrap_or_else(|| format!("{{p{i}}}")))
            .collect();
        format!("/{}", segs.join("/"))
    });
    let prefix =
        prop::collection::vec("[a-z0-9]{1,6}", 1..3).prop_map(|s| format!("/{}", s.join("/")));
    let route = (
        prop::option::of(path),
        prefix,
        prop::sample::select(vec!["GET", "POST", "PUT"]),
        -5i32..5,
        prop::option::of("[a-z]{1,8}\\.example\\.com"),
        prop::option::of(1u32..64),
    )
        .prop_map(|(path, prefix, method, priority, host, max_kib)| {
            let mut r = String::from("[[routes]]\nupstream = \"u\"\n");
            match path {
                Some(p) => r.push_str(&format!("path = \"{p}\"\n")),
                None => r.push_str(&format!(
                    "path_prefix = \"{prefix}\"\nstrip_prefix = true\n"
                )),
            }
            r.push_str(&format!(
                "methods = [\"{method}\"]\npriority = {priority}\n"
            ));
            if let Some(h) = host {
                r.push_str(&format!("hosts = [\"{h}\"]\n"));
            }
            if let Some(k) = max_kib {
                r.push_str(&format!("max_body = \"{k}KiB\"\n"));
            }
            r
        });
    (
        1usize..16,
        prop::sample::select(vec!["round_robin", "least_conn", "weighted"]),
        1u64..120,
        prop::collection::vec(route, 1..6),
    )
        .prop_map(|(workers, balance, secs, routes)| {
            format!(
                "[server]\nworkers = {workers}\nidle_timeout = \"{secs}s\"\n\n\
                 [upstreams.u]\ntargets = [\"127.0.0.1:9000\", \"10.0.0.2:80\"]\nbalance = \"{balance}\"\n\
                 read_timeout = \"{secs}s\"\n\n{}",
                routes.concat()
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_text_is_read_or_refused_without_panicking(text in "\\PC{0,300}") {
        let _ = parse(&text, Path::new("gateway.toml"));
    }

    #[test]
    fn config_shaped_text_is_read_or_refused_with_located_errors(text in fragments()) {
        if let Err(errors) = parse(&text, Path::new("gateway.toml")) {
            prop_assert!(!errors.0.is_empty());
            let lines = text.lines().count();
            for e in &errors.0 {
                prop_assert!(e.line <= lines.max(1), "{e} points past the end of the text");
                prop_assert!(!e.message.is_empty());
            }
        }
    }

    #[test]
    fn a_valid_config_reads_back_the_same_once_written_out(text in valid_config()) {
        let first = parse(&text, Path::new("gateway.toml"));
        prop_assert!(first.is_ok(), "{text}\n{:?}", first.err());
        let first = first.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let written = toml::to_string(&first.config).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let again = parse(&written, Path::new("gateway.toml"))
            .map_err(|e| TestCaseError::fail(format!("{written}\n{e}")))?;
        prop_assert_eq!(first.config, again.config);
    }
}
