//! Values that are checked as they are read, so a bad one is reported at its own line and column.

use std::fmt;

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A JSON Schema written out, inlined where it is used (so an editor shows the key's own
/// description with it).
macro_rules! inline_schema {
    ($name:ty, $schema:tt) => {
        impl JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

/// The schema of a value written as a string: its description and an example.
macro_rules! text_schema {
    ($name:ty, $description:expr, $example:expr) => {
        inline_schema!($name, {
            "type": "string",
            "description": $description,
            "examples": [$example],
            "x-kind": stringify!($name),
        });
    };
}

macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident, $check:path, $description:expr, $example:expr) => {
        text_schema!($name, $description, $example);

        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                $check(&s).map(|()| $name(s))
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

validated_string!(
    /// `host:port` of an upstream target.
    TargetAddr,
    check_target,
    "`host:port` of an upstream target",
    "api.internal:8080"
);
validated_string!(
    /// `api.example.com` or `*.example.com`, stored lower-case.
    HostPattern,
    check_host,
    "a host name, or `*.` and a domain",
    "*.example.com"
);
validated_string!(
    /// `/users/{id}/posts`: literal segments and `{name}` parameters.
    PathPattern,
    check_pattern,
    "a path of literal segments and `{name}` parameters",
    "/users/{id}"
);
validated_string!(
    /// A literal path starting with `/`.
    PathPrefix,
    check_prefix,
    "a literal path starting with `/`",
    "/api"
);
validated_string!(
    /// An HTTP method token such as `GET`.
    MethodName,
    check_method,
    "an HTTP method",
    "GET"
);
validated_string!(
    /// A header name.
    HeaderNameStr,
    check_header,
    "an HTTP header name",
    "x-request-id"
);

fn check_target(s: &str) -> Result<(), String> {
    let hint = "write it as host:port, e.g. \"127.0.0.1:8080\"";
    let auth: http::uri::Authority = s
        .parse()
        .map_err(|_| format!("invalid target address `{s}`: {hint}"))?;
    if auth.port_u16().is_none() {
        return Err(format!("target address `{s}` has no port: {hint}"));
    }
    if s.contains('@') || s.contains('/') {
        return Err(format!("invalid target address `{s}`: {hint}"));
    }
    Ok(())
}

fn check_host(s: &str) -> Result<(), String> {
    let name = s.strip_prefix("*.").unwrap_or(s);
    if name.contains('*') {
        return Err(format!(
            "invalid host `{s}`: a wildcard may only be the whole first label, as in \"*.example.com\""
        ));
    }
    if name.is_empty()
        || s.bytes().any(|b| b.is_ascii_uppercase())
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(format!(
            "invalid host `{s}`: use a lower-case DNS name without port, e.g. \"api.example.com\""
        ));
    }
    Ok(())
}

fn check_prefix(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err(format!("path `{s}` must start with `/`"));
    }
    if s.contains(['{', '}', '?', '#']) {
        return Err(format!(
            "path `{s}` must be literal (no `{{`, `}}`, `?` or `#`); use `path` for patterns"
        ));
    }
    Ok(())
}

/// The segments of a pattern: `Ok(None)` for a literal, `Ok(Some(name))` for `{name}`.
pub fn pattern_segments(s: &str) -> impl Iterator<Item = Result<Option<&str>, String>> {
    s[1.min(s.len())..].split('/').map(|seg| {
        if let Some(inner) = seg.strip_prefix('{') {
            match inner.strip_suffix('}') {
                Some(name)
                    if !name.is_empty()
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
                {
                    Ok(Some(name))
                }
                _ => Err(format!(
                    "bad parameter `{seg}`: a parameter is a whole segment `{{name}}` with letters, digits or `_`"
                )),
            }
        } else if seg.contains(['{', '}']) {
            Err(format!(
                "bad segment `{seg}`: a parameter must be a whole segment, as in \"/users/{{id}}\""
            ))
        } else {
            Ok(None)
        }
    })
}

fn check_pattern(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err(format!("path `{s}` must start with `/`"));
    }
    if s.contains(['?', '#']) {
        return Err(format!(
            "path `{s}` must not hold `?` or `#`; match query parameters with `query`"
        ));
    }
    let mut names = Vec::new();
    for seg in pattern_segments(s) {
        if let Some(name) = seg.map_err(|e| format!("in path `{s}`: {e}"))? {
            if names.contains(&name) {
                return Err(format!("in path `{s}`: parameter `{name}` appears twice"));
            }
            names.push(name);
        }
    }
    Ok(())
}

fn check_method(s: &str) -> Result<(), String> {
    if s.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(format!(
            "method `{s}` is not upper-case; methods are case-sensitive, write `{}`",
            s.to_ascii_uppercase()
        ));
    }
    http::Method::from_bytes(s.as_bytes())
        .map(|_| ())
        .map_err(|_| format!("invalid HTTP method `{s}`"))
}

fn check_header(s: &str) -> Result<(), String> {
    http::HeaderName::from_bytes(s.as_bytes())
        .map(|_| ())
        .map_err(|_| format!("invalid header name `{s}`"))
}

/// The schema of a duration (`with = "duration"`).
pub struct DurationText;
inline_schema!(
    DurationText,
    {
        "type": "string",
        "pattern": "^\\s*[0-9]",
        "x-kind": "DurationText",
    }
);

/// `with = "duration"`: `"5s"`, `"250ms"`, `"1m 30s"`.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|_| {
            serde::de::Error::custom(format!(
                "invalid duration `{s}`: write a number and a unit, e.g. \"5s\", \"250ms\" or \"1m\""
            ))
        })
    }

    pub fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*v).to_string())
    }
}

/// `with = "opt_duration"`: an optional `duration`.
pub mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super::duration")] Duration);
        Ok(Some(Wrap::deserialize(d)?.0))
    }

    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => super::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }
}

/// `with = "socket_addr"`: an IP address and a port.
pub mod socket_addr {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|_| {
            serde::de::Error::custom(format!(
                "invalid address `{s}`: write an IP address and a port, e.g. \"0.0.0.0:8080\", \"127.0.0.1:9901\" or \"[::]:8080\""
            ))
        })
    }

    pub fn serialize<S: Serializer>(v: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }
}

/// `[server] workers`: 1 to 1024 threads, checked when read so that `check` refuses what `run`
/// could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64", into = "u64")]
pub struct WorkerCount(usize);

inline_schema!(
    WorkerCount,
    {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_WORKERS,
    }
);

pub const MAX_WORKERS: usize = 1024;

impl WorkerCount {
    pub fn get(self) -> usize {
        self.0
    }
}

impl TryFrom<i64> for WorkerCount {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        match usize::try_from(n) {
            Ok(w @ 1..=MAX_WORKERS) => Ok(WorkerCount(w)),
            _ => Err(format!(
                "workers = {n} is out of range: give 1 to {MAX_WORKERS} (one per core is usual), or remove the key to use one per core"
            )),
        }
    }
}

impl From<WorkerCount> for u64 {
    fn from(w: WorkerCount) -> u64 {
        w.0 as u64
    }
}

/// A size: `"64MiB"`, `"512KiB"`, `"1GiB"`, `"1MB"` or a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

/// Written back the way people write sizes (`"16MiB"`), so `/config` and the schema's defaults
/// read as the config would.
impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.0;
        for (unit, size) in [("GiB", 1usize << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if n >= size && n.is_multiple_of(size) {
                return s.collect_str(&format_args!("{}{unit}", n / size));
            }
        }
        s.serialize_u64(n as u64)
    }
}

inline_schema!(
    ByteSize,
    {
        "type": ["string", "integer"],
        "x-kind": "ByteSize",
    }
);

impl ByteSize {
    pub fn bytes(self) -> usize {
        self.0
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        let bad = |s: &str| {
            serde::de::Error::custom(format!(
                "invalid size `{s}`: write a number and a unit, e.g. \"64MiB\", \"512KiB\" or \"1GiB\""
            ))
        };
        match Raw::deserialize(d)? {
            Raw::Number(n) => usize::try_from(n)
                .map(ByteSize)
                .map_err(|_| bad(&n.to_string())),
            Raw::Text(s) => parse_size(&s).map(ByteSize).ok_or_else(|| bad(&s)),
        }
    }
}

fn parse_size(s: &str) -> Option<usize> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// An address (`10.0.0.1`, `::1`) or a CIDR range (`10.0.0.0/8`, `2001:db8::/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr(pub ipnet::IpNet);

text_schema!(Cidr, "an IP address or a CIDR range", "10.0.0.0/8");

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        s.parse::<std::net::IpAddr>()
            .map(|ip| Cidr(ipnet::IpNet::from(ip)))
            .map_err(|_| {
                format!("`{s}` is not an address or a CIDR range; write e.g. \"10.0.0.0/8\" or \"192.0.2.10\"")
            })
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.0.to_string()
    }
}
