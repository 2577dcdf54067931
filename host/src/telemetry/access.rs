//! The access log: one line per request, with the fields the config selects, as JSON or text,
//! to stdout or a file that SIGUSR1 reopens (for logrotate). Written by a background thread, so
//! a slow disk or pipe never stalls a worker; successful requests may be sampled.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, RandomState};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

/// Every field, in the order a line shows them.
pub const FIELDS: &[&str] = &[
    "time",
    "client",
    "method",
    "path",
    "status",
    "route",
    "upstream",
    "target_addr",
    "attempts",
    "request_id",
    "trace_id",
    "consumer",
    "tenant",
    "user_agent",
    "answered_by",
    "request_bytes",
    "response_bytes",
    "duration_ms",
    "upstream_ms",
    "complete",
];

/// A field's bit in [`Format::fields`].
pub fn field_bit(name: &str) -> Option<u32> {
    FIELDS.iter().position(|f| *f == name).map(|i| 1 << i)
}

/// How lines look, per config generation.
#[derive(Debug, Clone)]
pub struct Format {
    pub json: bool,
    /// Bits of [`FIELDS`].
    pub fields: u32,
    /// Share of requests answered below 400 that are logged (errors always are).
    pub sample: f64,
}

impl Format {
    pub fn wants(&self, field: &str) -> bool {
        field_bit(field).is_some_and(|b| self.fields & b != 0)
    }

    /// Whether a request with this status gets a line.
    pub fn sampled(&self, status: u16) -> bool {
        if status >= 400 || self.sample >= 1.0 {
            return true;
        }
        let r = RandomState::new().hash_one(std::time::Instant::now()) % 1_000_000;
        (r as f64) < self.sample * 1_000_000.0
    }
}

/// One value of a line.
pub enum Value<'a> {
    Str(Option<&'a str>),
    Num(u64),
    Float(Option<f64>),
    Bool(bool),
}

/// Builds one line from `(field, value)` pairs; fields not selected are skipped.
pub fn line(format: &Format, values: &[(&str, Value<'_>)]) -> String {
    let mut out = String::with_capacity(256);
    let time = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
    if format.json {
        out.push('{');
        if format.wants("time") {
            let _ = write!(out, "\"timestamp\":\"{time}\",");
        }
        out.push_str("\"level\":\"INFO\",\"target\":\"access\"");
    } else {
        if format.wants("time") {
            out.push_str(&time);
            out.push_str("  ");
        }
        out.push_str("INFO access:");
    }
    for (name, value) in values {
        if !format.wants(name) {
            continue;
        }
        if format.json {
            let _ = write!(out, ",\"{name}\":");
        } else {
            let _ = write!(out, " {name}=");
        }
        match value {
            Value::Str(Some(s)) if format.json => json_string(&mut out, s),
            Value::Str(Some(s)) if !s.is_empty() && s.bytes().all(plain) => out.push_str(s),
            Value::Str(Some(s)) => {
                let _ = write!(out, "{s:?}");
            }
            Value::Str(None) | Value::Float(None) => {
                out.push_str(if format.json { "null" } else { "-" });
            }
            Value::Num(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Float(Some(f)) => {
                let _ = write!(out, "{f:.3}");
            }
            Value::Bool(b) => {
                let _ = write!(out, "{b}");
            }
        }
    }
    if format.json {
        out.push('}');
    }
    out.push('\n');
    out
}

/// Text values written bare: no spaces, quotes or controls that would blur the line.
fn plain(b: u8) -> bool {
    b.is_ascii_graphic() && b != b'"' && b != b'\\' && b != b'='
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

static SINK: OnceLock<Mutex<NonBlocking>> = OnceLock::new();

/// Opens where lines go: `file` (appended to, created if missing), else stdout. Keep the guard
/// alive until exit so buffered lines are written.
pub fn init(file: Option<&Path>) -> std::io::Result<WorkerGuard> {
    let builder = NonBlockingBuilder::default().lossy(false);
    let (writer, guard) = match file {
        Some(path) => builder.finish(ReopenFile::open(path)?),
        None => builder.finish(std::io::stdout()),
    };
    let _ = SINK.set(Mutex::new(writer));
    Ok(guard)
}

pub fn write(line: &str) {
    if let Some(sink) = SINK.get()
        && let Ok(mut w) = sink.lock()
    {
        let _ = w.write_all(line.as_bytes());
    }
}

static REOPEN: AtomicBool = AtomicBool::new(false);

/// Asks the writer to reopen the file before its next line (SIGUSR1, after logrotate moved it).
pub fn reopen() {
    REOPEN.store(true, Ordering::Relaxed);
}

/// The access-log file, reopened by path when asked: logrotate renames it, then signals.
struct ReopenFile {
    path: PathBuf,
    file: File,
}

impl ReopenFile {
    fn open(path: &Path) -> std::io::Result<Self> {
        Ok(ReopenFile {
            path: path.to_path_buf(),
            file: append(path)?,
        })
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Write for ReopenFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if REOPEN.swap(false, Ordering::Relaxed) {
            match append(&self.path) {
                Ok(f) => self.file = f,
                // Keep writing where we were rather than lose lines.
                Err(e) => eprintln!("cannot reopen the access log {}: {e}", self.path.display()),
            }
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(json: bool) -> Format {
        Format {
            json,
            fields: u32::MAX,
            sample: 1.0,
        }
    }

    #[test]
    fn json_lines_parse_and_escape() {
        let l = line(
            &all(true),
            &[
                ("user_agent", Value::Str(Some("a \"quoted\"\nagent"))),
                ("status", Value::Num(200)),
                ("consumer", Value::Str(None)),
                ("upstream_ms", Value::Float(Some(1.5))),
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&l).expect("json");
        assert_eq!(v["user_agent"], "a \"quoted\"\nagent");
        assert_eq!(v["status"], 200);
        assert!(v["consumer"].is_null());
        assert_eq!(v["target"], "access");
    }

    #[test]
    fn only_selected_fields_are_written() {
        let f = Format {
            fields: field_bit("status").unwrap_or(0) | field_bit("route").unwrap_or(0),
            ..all(false)
        };
        let l = line(
            &f,
            &[
                ("route", Value::Str(Some("api"))),
                ("status", Value::Num(404)),
                ("client", Value::Str(Some("10.0.0.1"))),
                ("path", Value::Str(Some("/a b"))),
            ],
        );
        assert_eq!(l, "INFO access: route=api status=404\n");
    }

    #[test]
    fn errors_are_never_sampled_away() {
        let f = Format {
            sample: 0.0,
            ..all(true)
        };
        assert!(f.sampled(500) && f.sampled(404));
        assert!(!f.sampled(200));
    }
}
