//! Routes, upstreams and plugins kept in etcd (the model of Apache APISIX): under the
//! `[etcd] config_prefix`, one key per object, `<prefix>routes/<name>`, `<prefix>upstreams/<name>`
//! or `<prefix>plugins/<name>`, whose value is the object's TOML, written as it would stand in
//! `gateway.toml` under its table header. Table headers inside a value are relative to the
//! object (`[retry]` in an upstream is its `retry`).
//!
//! The entries are appended to the file's text line for line, so the whole config goes through
//! the one parser and the one validation, and an error in an entry is reported at the entry's
//! key and its own line.

use super::ConfigError;

/// Where a stretch of the assembled text came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Byte offset in the assembled text where the entry's header starts.
    pub start: usize,
    /// The etcd key, shown as the "file" of errors in the entry.
    pub key: String,
    /// Generated header lines before the value's first line.
    pub header_lines: usize,
}

/// The file's text with every entry appended, and where each entry starts. Keys that name no
/// kind of object are errors.
pub fn assemble(
    file_text: &str,
    prefix: &str,
    entries: &[(String, String)],
) -> Result<(String, Vec<Origin>), Vec<ConfigError>> {
    let mut text = String::from(file_text);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let mut origins = Vec::new();
    let mut errors = Vec::new();
    for (key, value) in entries {
        let rest = key.strip_prefix(prefix).unwrap_or(key);
        let Some((kind, name)) = rest.split_once('/') else {
            errors.push(key_error(key, "is not <prefix>routes/<name>, upstreams/<name> or plugins/<name>; move or delete it"));
            continue;
        };
        if name.is_empty() || name.contains(['/', '"', '\\', '\n']) {
            errors.push(key_error(
                key,
                "has a name that is empty or holds `/`, a quote or a backslash; rename it",
            ));
            continue;
        }
        let (header, table) = match kind {
            "routes" => (
                format!("[[routes]]\nname = \"{name}\"\n"),
                "routes".to_string(),
            ),
            "upstreams" => (
                format!("[upstreams.\"{name}\"]\n"),
                format!("upstreams.\"{name}\""),
            ),
            "plugins" => (
                format!("[plugins.\"{name}\"]\n"),
                format!("plugins.\"{name}\""),
            ),
            _ => {
                errors.push(key_error(
                    key,
                    "is not under routes/, upstreams/ or plugins/; move or delete it",
                ));
                continue;
            }
        };
        origins.push(Origin {
            start: text.len(),
            key: key.clone(),
            header_lines: header.matches('\n').count(),
        });
        text.push_str(&header);
        for line in value.lines() {
            text.push_str(&relative_header(line, &table));
            text.push('\n');
        }
    }
    if errors.is_empty() {
        Ok((text, origins))
    } else {
        Err(errors)
    }
}

/// `[retry]` in an upstream's value is `[upstreams."name".retry]`; `[[plugins]]` in a route's
/// is `[[routes.plugins]]`. Other lines stay as written.
fn relative_header(line: &str, table: &str) -> String {
    let indent = line.len() - line.trim_start().len();
    let (lead, body) = line.split_at(indent);
    if let Some(inner) = body.strip_prefix("[[") {
        format!("{lead}[[{table}.{}", inner.trim_start())
    } else if let Some(inner) = body.strip_prefix('[') {
        format!("{lead}[{table}.{}", inner.trim_start())
    } else {
        line.to_string()
    }
}

fn key_error(key: &str, what: &str) -> ConfigError {
    ConfigError::whole(format!("etcd:{key}"), format!("the key {what}"))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn entries_become_tables_line_for_line() {
        let entries = vec![
            (
                "/gw/routes/api".to_string(),
                "path_prefix = \"/api\"\nupstream = \"api\"\n[[plugins]]\nname = \"auth\""
                    .to_string(),
            ),
            (
                "/gw/upstreams/api".to_string(),
                "targets = [\"127.0.0.1:1\"]\n  [retry]\nattempts = 2".to_string(),
            ),
        ];
        let (text, origins) = assemble("[server]\nworkers = 1", "/gw/", &entries).expect("ok");
        assert_eq!(
            text,
            "[server]\nworkers = 1\n[[routes]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"api\"\n[[routes.plugins]]\nname = \"auth\"\n[upstreams.\"api\"]\ntargets = [\"127.0.0.1:1\"]\n  [upstreams.\"api\".retry]\nattempts = 2\n"
        );
        assert_eq!(origins[0].header_lines, 2);
        assert_eq!(&text[origins[1].start..][..17], "[upstreams.\"api\"]");
    }

    #[test]
    fn keys_that_name_no_object_are_refused() {
        let entries = vec![
            ("/gw/routes".to_string(), String::new()),
            ("/gw/services/x".to_string(), String::new()),
        ];
        let errs = assemble("", "/gw/", &entries).expect_err("refused");
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[1].file, PathBuf::from("etcd:/gw/services/x"));
    }
}
