//! Which supported locale a request gets: `Accept-Language` ranges ordered by their q-values
//! (RFC 9110 §12.5.4), each looked up against the supported tags (RFC 4647 §3.4: the range,
//! then shorter by one subtag at a time, so `de-CH` finds `de`).

/// The language ranges of an `Accept-Language` value with q > 0, best first; ranges of equal
/// weight keep the client's order. Malformed entries are skipped.
pub fn ranges(header: &str) -> Vec<&str> {
    let mut weighted: Vec<(&str, u16)> = header
        .split(',')
        .filter_map(|entry| {
            let mut parts = entry.split(';');
            let tag = parts.next()?.trim();
            if tag.is_empty() {
                return None;
            }
            let mut q = 1000;
            for p in parts {
                let p = p.trim();
                if let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
                    q = weight(v)?;
                }
            }
            (q > 0).then_some((tag, q))
        })
        .collect();
    weighted.sort_by_key(|w| std::cmp::Reverse(w.1));
    weighted.into_iter().map(|(t, _)| t).collect()
}

/// A q-value in thousandths: `0` to `1` with at most three decimals.
fn weight(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// RFC 4647 lookup of one range among `supported`: the range itself, then with its last
/// subtag cut (and a single-letter subtag left at the end cut with it), until one matches.
pub fn lookup<'a>(range: &str, supported: &'a [String]) -> Option<&'a str> {
    if range == "*" {
        return None;
    }
    let mut r = range;
    loop {
        if let Some(s) = supported.iter().find(|s| s.eq_ignore_ascii_case(r)) {
            return Some(s);
        }
        r = &r[..r.rfind('-')?];
        if let Some(c) = r.rfind('-')
            && r.len() - c == 2
        {
            r = &r[..c];
        }
    }
}

/// The supported locale for an `Accept-Language` value, if any range finds one.
pub fn accept_language<'a>(header: &str, supported: &'a [String]) -> Option<&'a str> {
    ranges(header)
        .into_iter()
        .find_map(|r| lookup(r, supported))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supported() -> Vec<String> {
        ["en", "de", "fr", "pt-BR"].map(String::from).to_vec()
    }

    #[test]
    fn q_values_then_lookup() {
        let s = supported();
        assert_eq!(accept_language("de-CH, fr;q=0.8", &s), Some("de"));
        assert_eq!(accept_language("fr;q=0.2, de-AT;q=0.9, xx", &s), Some("de"));
        assert_eq!(accept_language("xx, it;q=0.9, fr;q=0.1", &s), Some("fr"));
        assert_eq!(accept_language("pt-br", &s), Some("pt-BR"));
        assert_eq!(
            accept_language("pt", &s),
            None,
            "lookup never widens a range"
        );
        assert_eq!(accept_language("zh-Hant-x-private", &s), None);
        assert_eq!(
            accept_language("de;q=0, *", &s),
            None,
            "q=0 means not acceptable"
        );
        assert_eq!(
            accept_language("en;q=1.5, fr;q=abc, de;q=0.5", &s),
            Some("de")
        );
        assert_eq!(accept_language("", &s), None);
        assert_eq!(lookup("de-CH-x-a", &s), Some("de"));
    }
}
