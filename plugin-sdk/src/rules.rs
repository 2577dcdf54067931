//! What the gateway accepts as a header name and value, so the test host refuses exactly what
//! the gateway refuses, in its words: the `http` crate's `HeaderName::from_bytes` and
//! `HeaderValue::from_str` (an earlier test host accepted non-ASCII values the gateway refuses).

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
