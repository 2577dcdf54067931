//! `wasmgate plugin run`: one plugin on one sample request, with no gateway, listener or
//! upstream. The plugin is loaded the way the gateway loads it (same engine, limits, `init`);
//! its request phases run on the sample request, a sample upstream response goes through its
//! response phases, and what it changed is printed. The quick loop for plugin authors in any
//! language.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::plugin::{Chain, Exchange, Phase, PluginHost, ResponseState, Verdict};
use crate::store::Store;

/// The request (and the upstream's response) to run the plugin on.
pub struct Sample {
    pub method: String,
    /// Path and query, `/p?q`.
    pub target: String,
    pub headers: Vec<String>,
    pub body: Option<Vec<u8>>,
    pub status: u16,
    pub response_headers: Vec<String>,
    pub response_body: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    #[error("{0}")]
    Sample(String),
    #[error("the plugin's config: {0}")]
    Config(String),
    #[error("{0}")]
    Load(String),
}

/// Loads `file` with `config_json` and runs it on `sample`; returns the report.
pub async fn run(file: &Path, config_json: &str, sample: &Sample) -> Result<String, DryRunError> {
    let request = request(sample)?;
    let response = response(sample)?;
    let chain = load(file, config_json).await?;
    let before = snapshot(&request);
    let mut out = String::new();
    let (ex, verdict) = request_phases(&chain, request, sample).await;
    if let Verdict::Answer { reply, .. } = verdict {
        let _ = writeln!(out, "request: answered; the upstream is not called");
        report_request(&mut out, &before, &ex);
        let _ = writeln!(out, "client gets: {}", reply.status.as_u16());
        report_headers(&mut out, &HeaderMap::new(), &reply.headers);
        report_body(&mut out, None, Some(&reply.body));
        return Ok(out);
    }
    let _ = writeln!(out, "request: forwarded");
    report_request(&mut out, &before, &ex);
    let (status, headers, body) = (
        response.status,
        response.headers.clone(),
        sample_body(sample),
    );
    let ex = response_phases(&chain, ex, response, sample).await;
    let Some(r) = ex.response.as_ref() else {
        return Ok(out);
    };
    let how = if r.replaced {
        "replaced by the plugin"
    } else {
        "from the upstream"
    };
    let _ = writeln!(
        out,
        "response ({how}): {} -> {}",
        status.as_u16(),
        r.status.as_u16()
    );
    report_headers(&mut out, &headers, &r.headers);
    report_body(&mut out, body.as_ref(), r.body.as_ref());
    Ok(out)
}

fn sample_body(sample: &Sample) -> Option<Bytes> {
    sample.response_body.clone().map(Bytes::from)
}

/// The plugin as a one-route gateway config would load it: the same defaults, limits and
/// `init`. Its config goes through TOML as it would from `gateway.toml` (so no JSON `null`).
async fn load(file: &Path, config_json: &str) -> Result<Arc<Chain>, DryRunError> {
    let json: serde_json::Value =
        serde_json::from_str(config_json).map_err(|e| DryRunError::Config(e.to_string()))?;
    let config = toml::Value::try_from(&json)
        .map_err(|e| DryRunError::Config(format!("{e} (gateway.toml has no null)")))?;
    // Named after its file, as a user would name it in gateway.toml.
    let name = file.file_stem().map_or_else(
        || "plugin".into(),
        |s| s.to_string_lossy().replace('_', "-"),
    );
    let key = toml::Value::String(name.clone());
    let file = std::path::absolute(file).map_err(|e| DryRunError::Load(e.to_string()))?;
    let file_value = toml::Value::String(file.display().to_string());
    let text = format!(
        "[upstreams.sample]\ntargets = [\"127.0.0.1:9\"]\n\
         [plugins.{key}]\nfile = {file_value}\nstderr = true\n\
         [[routes]]\nname = \"sample\"\npath_prefix = \"/\"\nupstream = \"sample\"\n\
         plugins = [{{ name = {key}, config = {config} }}]\n"
    );
    let shown = file.display().to_string();
    let loaded = crate::config::parse(&text, Path::new("plugin run"))
        .map_err(|e| DryRunError::Load(messages(e.0, &name, &shown)))?;
    let host =
        PluginHost::new(Store::default(), None).map_err(|e| DryRunError::Load(e.to_string()))?;
    let plugins = host
        .load(&loaded, &Arc::new(BTreeMap::new()), &[])
        .await
        .map_err(|e| DryRunError::Load(messages(e, &name, &shown)))?;
    plugins
        .chains
        .into_iter()
        .next()
        .ok_or_else(|| DryRunError::Load("the plugin did not load".into()))
}

/// The errors without the synthetic config's file, line and names, which the user never wrote;
/// each names the plugin's file.
fn messages(errors: Vec<crate::config::ConfigError>, name: &str, file: &str) -> String {
    let (in_route, alone) = (
        format!("route `sample` plugin `{name}`: "),
        format!("plugin `{name}`: "),
    );
    let shown: Vec<String> = errors
        .iter()
        .map(|e| {
            let m = e
                .message
                .strip_prefix(&in_route)
                .or_else(|| e.message.strip_prefix(&alone))
                .unwrap_or(&e.message);
            if m.contains(file) {
                m.to_string()
            } else {
                format!("{file}: {m}")
            }
        })
        .collect();
    shown.join("\n")
}

fn parse_headers(lines: &[String]) -> Result<HeaderMap, DryRunError> {
    let mut map = HeaderMap::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| DryRunError::Sample(format!("`{line}`: a header is `name: value`")))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| DryRunError::Sample(format!("`{name}` is not a header name")))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| DryRunError::Sample(format!("`{value}` is not a header value")))?;
        map.append(name, value);
    }
    Ok(map)
}

fn request(sample: &Sample) -> Result<Box<Exchange>, DryRunError> {
    let method = Method::from_bytes(sample.method.as_bytes())
        .map_err(|_| DryRunError::Sample(format!("`{}` is not a method", sample.method)))?;
    let pq = PathAndQuery::try_from(sample.target.as_str())
        .ok()
        .filter(|pq| pq.path().starts_with('/'))
        .ok_or_else(|| {
            DryRunError::Sample(format!("`{}` is not a path (and query)", sample.target))
        })?;
    let headers = parse_headers(&sample.headers)?;
    let authority = headers
        .get(http::header::HOST)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("localhost"));
    let mut ex = Box::new(Exchange::detached());
    ex.method = method;
    ex.pq = pq;
    ex.authority = authority;
    ex.route = "sample".into();
    ex.client_ip = std::net::IpAddr::from([127, 0, 0, 1]);
    ex.headers = headers;
    Ok(ex)
}

fn response(sample: &Sample) -> Result<ResponseState, DryRunError> {
    let status = StatusCode::from_u16(sample.status)
        .map_err(|_| DryRunError::Sample(format!("{} is not a status", sample.status)))?;
    Ok(ResponseState {
        status,
        headers: parse_headers(&sample.response_headers)?,
        body: None,
        replaced: false,
    })
}

/// What the report compares the request with.
struct Before {
    method: Method,
    pq: PathAndQuery,
    headers: HeaderMap,
    body: Option<Bytes>,
}

fn snapshot(ex: &Exchange) -> Before {
    Before {
        method: ex.method.clone(),
        pq: ex.pq.clone(),
        headers: ex.headers.clone(),
        body: ex.body.clone(),
    }
}

async fn request_phases(
    chain: &Chain,
    mut ex: Box<Exchange>,
    sample: &Sample,
) -> (Box<Exchange>, Verdict) {
    let verdict;
    (ex, verdict) = chain.run(Phase::RequestHeaders, ex, 1).await;
    if matches!(verdict, Verdict::Answer { .. }) || !chain.has(Phase::RequestBody) {
        return (ex, verdict);
    }
    ex.body = Some(sample.body.clone().map(Bytes::from).unwrap_or_default());
    chain.run(Phase::RequestBody, ex, 1).await
}

async fn response_phases(
    chain: &Chain,
    mut ex: Box<Exchange>,
    response: ResponseState,
    sample: &Sample,
) -> Box<Exchange> {
    ex.body = None;
    ex.response = Some(response);
    (ex, _) = chain.run(Phase::ResponseHeaders, ex, 1).await;
    if chain.has(Phase::ResponseBody)
        && let Some(r) = ex.response.as_mut()
    {
        // A replacement made in the headers phase already has its body.
        if !r.replaced {
            r.body = Some(sample_body(sample).unwrap_or_default());
        }
        (ex, _) = chain.run(Phase::ResponseBody, ex, 1).await;
    }
    ex
}

fn report_request(out: &mut String, before: &Before, ex: &Exchange) {
    if before.method != ex.method {
        let _ = writeln!(out, "  method: {} -> {}", before.method, ex.method);
    }
    if before.pq != ex.pq {
        let _ = writeln!(out, "  target: {} -> {}", before.pq, ex.pq);
    }
    report_headers(out, &before.headers, &ex.headers);
    report_body(out, before.body.as_ref(), ex.body.as_ref());
    for (k, v) in &ex.context {
        let _ = writeln!(out, "  context {k} = {v}");
    }
    if let Some((up, target)) = &ex.upstream {
        let target = target.as_ref().map(|t| format!(" ({})", t.authority));
        let _ = writeln!(out, "  upstream: {}{}", up.name, target.unwrap_or_default());
    }
}

/// `+ name: value` for what was added, `- name: value` for what went.
fn report_headers(out: &mut String, before: &HeaderMap, after: &HeaderMap) {
    let lines = |h: &HeaderMap| -> Vec<String> {
        let mut v: Vec<String> = h
            .iter()
            .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        v.sort();
        v
    };
    let (was, now) = (lines(before), lines(after));
    for l in was.iter().filter(|l| !now.contains(l)) {
        let _ = writeln!(out, "  - {l}");
    }
    for l in now.iter().filter(|l| !was.contains(l)) {
        let _ = writeln!(out, "  + {l}");
    }
}

fn report_body(out: &mut String, before: Option<&Bytes>, after: Option<&Bytes>) {
    let Some(after) = after.filter(|a| before != Some(*a) && !a.is_empty()) else {
        return;
    };
    match std::str::from_utf8(after) {
        Ok(text) => {
            let _ = writeln!(out, "  body: {text}");
        }
        Err(_) => {
            let _ = writeln!(out, "  body: {} bytes (not UTF-8)", after.len());
        }
    }
}
