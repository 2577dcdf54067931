//! Media types as plugins test them.

/// The media type of a Content-Type value without its parameters, lowercased:
/// `Application/JSON; charset=utf-8` is `application/json`.
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether `content_type` names JSON: `application/json` or any `+json` type (RFC 6839), with
/// or without parameters.
pub fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let essence = essence(ct);
    essence == "application/json" || essence.ends_with("+json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_its_suffix_types() {
        assert!(is_json(Some("application/json; charset=utf-8")));
        assert!(is_json(Some("application/problem+json")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(None));
        assert_eq!(essence(" Text/XML ; charset=utf-8"), "text/xml");
    }
}
