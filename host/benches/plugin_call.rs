//! What one plugin call costs, per phase, with no I/O: the host's call path and the guest's
//! entry, measured in-process so a regression shows without wrk. Also the policy plugins of
//! `bench/run.sh`, each alone, on a request like wrk's.
//!
//! Run `plugins/build.sh` first, then `cargo bench -p wasmgate --bench plugin_call`. Prints
//! microseconds per call (median of rounds); not a test.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use http::HeaderValue;
use wasmgate::plugin::{Chain, Exchange, Phase, PluginHost, ResponseState};
use wasmgate::store::Store;

const SECRET: &str = "bench-secret-of-at-least-32-bytes";
/// HS256 over {"sub":"bench","scope":"shop","exp":4102444800} with `SECRET`.
const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJiZW5jaCIsInNjb3BlIjoic2hvcCIsImV4cCI6NDEwMjQ0NDgwMH0.gR849d-DCGP9RvPL1Jd726cG-TWfkv3rNa3z5aWm2XY";

fn config(plugins: &Path) -> String {
    let p = plugins.display();
    format!(
        r#"
[server]
plugin_cache = ""
[upstreams.up]
targets = ["127.0.0.1:9"]
[plugins.noop]
file = "{p}/noop.wasm"
[plugins.request-id]
file = "{p}/request_id.wasm"
[plugins.jwt]
file = "{p}/jwt.wasm"
[plugins.acl]
file = "{p}/acl.wasm"
[plugins.rate-limit]
file = "{p}/rate_limit.wasm"
[plugins.headers]
file = "{p}/headers.wasm"
[[routes]]
path_prefix = "/noop"
upstream = "up"
plugins = ["noop"]
[[routes]]
path_prefix = "/request-id"
upstream = "up"
plugins = ["request-id"]
[[routes]]
path_prefix = "/jwt"
upstream = "up"
plugins = [{{ name = "jwt", config = {{ algorithms = ["HS256"], secret = "{SECRET}", forward_claims = {{ x-user-id = "sub" }} }} }}]
[[routes]]
path_prefix = "/acl"
upstream = "up"
plugins = [{{ name = "acl", config = {{ allow = {{ scopes = ["shop"] }} }} }}]
[[routes]]
path_prefix = "/rate-limit"
upstream = "up"
plugins = [{{ name = "rate-limit", config = {{ limit = 1000000000, window_s = 60 }} }}]
[[routes]]
path_prefix = "/headers"
upstream = "up"
plugins = [{{ name = "headers", config = {{ request = {{ remove = ["authorization"] }}, security_headers = true }} }}]
"#
    )
}

/// A request like wrk's in `bench/run.sh`, with the identity the chain's earlier plugins set.
fn exchange() -> Box<Exchange> {
    let mut ex = Box::new(Exchange::detached());
    ex.headers
        .insert("host", HeaderValue::from_static("127.0.0.1:8080"));
    ex.headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {TOKEN}")).expect("token is a header value"),
    );
    ex.context.push(("consumer".into(), "bench".into()));
    ex.context.push(("scopes".into(), "shop".into()));
    ex.response = Some(ResponseState {
        status: http::StatusCode::OK,
        headers: http::HeaderMap::new(),
        body: Some(bytes::Bytes::from_static(b"hello")),
        replaced: false,
    });
    ex.body = Some(bytes::Bytes::from_static(b"{}"));
    ex
}

/// Microseconds per `phase` call on `chain`: the median of 7 rounds.
async fn per_call(chain: &Chain, phase: Phase) -> f64 {
    const CALLS: u32 = 20_000;
    let mut rounds = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        for _ in 0..CALLS {
            let (ex, _) = chain.run(phase, exchange(), 1).await;
            std::hint::black_box(ex);
        }
        rounds.push(started.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS));
    }
    rounds.sort_by(f64::total_cmp);
    rounds[rounds.len() / 2]
}

/// The cost of making the bench's exchange, which `per_call` includes; subtracted.
fn exchange_cost() -> f64 {
    const N: u32 = 200_000;
    let started = Instant::now();
    for _ in 0..N {
        std::hint::black_box(exchange());
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(N)
}

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // WASMGATE_BENCH_PLUGINS: another folder of builds (e.g. with symbols, for `perf`).
    let plugins = std::env::var_os("WASMGATE_BENCH_PLUGINS")
        .map_or_else(|| root.join("target/plugins"), std::path::PathBuf::from);
    // WASMGATE_BENCH_ONLY: one plugin's name, to profile it alone.
    let only = std::env::var("WASMGATE_BENCH_ONLY").ok();
    if !plugins.join("noop.wasm").exists() {
        anyhow::bail!(
            "run plugins/build.sh first: no {}",
            plugins.join("noop.wasm").display()
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let loaded = wasmgate::config::parse(&config(&plugins), &root.join("bench.toml"))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let host = PluginHost::new(Store::default(), None)?;
        let loaded_plugins = host
            .load(&loaded, &Arc::new(BTreeMap::new()), &[])
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let chains: Vec<Arc<Chain>> = loaded_plugins.chains;
        let base = exchange_cost();
        println!("{:<12} {:>10}", "plugin", "us/call");
        let phases = [
            ("request_headers", Phase::RequestHeaders),
            ("request_body", Phase::RequestBody),
            ("response_headers", Phase::ResponseHeaders),
            ("response_body", Phase::ResponseBody),
        ];
        for (name, phase) in phases {
            if only.is_some() {
                break;
            }
            let us = per_call(&chains[0], phase).await - base;
            println!("noop {name:<18} {us:>8.3}");
        }
        let names = ["request-id", "jwt", "acl", "rate-limit", "headers"];
        for (name, chain) in names.iter().zip(&chains[1..]) {
            if only.as_deref().is_some_and(|o| o != *name) {
                continue;
            }
            let mut us = 0.0;
            for (_, phase) in phases {
                if chain.has(phase) {
                    us += per_call(chain, phase).await - base;
                }
            }
            println!("{name:<23} {us:>8.3}  (all its phases)");
        }
        Ok(())
    })
}
