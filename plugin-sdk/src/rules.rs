//! What the gateway accepts from a plugin (header names and values, paths, queries, statuses),
//! so the test host refuses exactly what the gateway refuses, in its words. Both run the cases
//! of `wit/contract-cases.jsonl`.

/// The name in the form the host keeps it (lowercase), or why it is not one.
pub fn header_name(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(format!("`{name}` is not a header name"))
    }
}

/// Visible ASCII, spaces and tabs only.
pub fn header_value(value: &str) -> Result<(), String> {
    if value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        Ok(())
    } else {
        Err("the header value has a control or non-ASCII character".into())
    }
}

/// A path a plugin may set: starts with `/`, visible ASCII (percent-encode the rest), no `?`
/// (that is the query's) and no `#`.
pub fn path(path: &str) -> Result<(), String> {
    let ok = path.starts_with('/')
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{path}` is not a valid path: it must start with `/`, be visible ASCII and hold no `?` or `#`"
        ))
    }
}

/// A query a plugin may set (without the `?`): visible ASCII, no `#`.
pub fn query(query: &str) -> Result<(), String> {
    if query.bytes().all(|b| b.is_ascii_graphic() && b != b'#') {
        Ok(())
    } else {
        Err(format!("`{query}` is not a valid query"))
    }
}

/// A final status a plugin may set.
pub fn status(status: u16) -> Result<(), String> {
    if (200..=999).contains(&status) {
        Ok(())
    } else {
        Err(format!("{status} is not a final HTTP status"))
    }
}

/// The shared contract cases (`wit/contract-cases.jsonl`): `(operation, input, accepted)`.
#[cfg(test)]
pub(crate) fn contract_cases() -> Vec<(String, String, bool)> {
    include_str!("../../wit/contract-cases.jsonl")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_follow_the_host() {
        assert_eq!(header_name("X-Trace").as_deref(), Ok("x-trace"));
        assert!(header_name("bad name").is_err());
        assert!(header_name("").is_err());
        assert!(header_value("a b\tc").is_ok());
        assert!(header_value("line\nbreak").is_err());
        assert!(header_value("caf\u{e9}").is_err());
    }
}
