//! TOML syntax errors told as a person would: the line the mistake is on (an array left open is
//! noticed lines later, where the parser trips) and what to type to fix it.

use std::ops::Range;

/// The place and sentence for a syntax error the parser reported at `span` with `message`.
pub fn explain(text: &str, span: Range<usize>, message: &str) -> (Range<usize>, String) {
    let message = message.trim_end();
    if message.contains("array")
        && (message.contains("comma") || message.contains("unclosed"))
        && let Some(open) = open_array_before(text, span.start)
    {
        let line = text[..span.start].matches('\n').count() + 1;
        return (
            open,
            format!(
                "this array is not closed: end it with `]` (the file goes on at line {line} as if it were still inside)"
            ),
        );
    }
    if message.contains("basic string")
        || message.contains("literal string") && message.contains("unclosed")
    {
        return (
            span,
            "this string is not closed: end it with `\"` on the same line (use '''...''' or \"\"\"...\"\"\" for text over several lines)".to_string(),
        );
    }
    if message.contains("string values must be quoted") {
        return (
            span,
            "this value is not quoted: write text as \"text\" (numbers, true/false, [arrays] and { tables } need no quotes)".to_string(),
        );
    }
    if message.starts_with("invalid ") {
        return (
            span,
            format!(
                "this value is not valid TOML ({message}): write text in quotes (\"text\"), numbers as digits, and true or false unquoted"
            ),
        );
    }
    (span, format!("TOML syntax: {message}"))
}

/// The `[` of the last array opened on a `key = [` line before `at` and not closed on it.
fn open_array_before(text: &str, at: usize) -> Option<Range<usize>> {
    let mut start = 0;
    let mut last = None;
    for line in text[..at].split_inclusive('\n') {
        let code = line.split('#').next().unwrap_or("");
        if let Some(eq) = code.find('=') {
            let value = &code[eq + 1..];
            let opens = value.matches('[').count();
            let closes = value.matches(']').count();
            if opens > closes
                && let Some(b) = value.find('[')
            {
                let pos = start + eq + 1 + b;
                last = Some(pos..pos + 1);
            }
        }
        start += line.len();
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_array_is_blamed_on_its_own_line() {
        let text = "[upstreams.api]\ntargets = [\"a:1\"\n\n[[routes]]\nupstream = \"api\"\n";
        let at = text.find("[[routes]]").unwrap_or(0);
        let (span, why) = explain(
            text,
            at..at + 1,
            "missing comma between array elements, expected `,`",
        );
        assert_eq!(
            text[..span.start].matches('\n').count() + 1,
            2,
            "line 2: {why}"
        );
        assert!(
            why.contains("not closed") && why.contains("line 4"),
            "{why}"
        );
    }
}
