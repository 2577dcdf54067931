//! Text templated from the request: `{param.id}` (a route pattern's segment), `{query.page}`,
//! `{header.x-user}`, `{context.consumer}`, plus bare `{name}`s a plugin defines itself (its
//! computed values). Parsed once at load, so a typo is refused with the config.

use crate::Request;

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Literal text.
    Text(String),
    /// `{param.NAME}`.
    Param(String),
    /// `{query.NAME}`, percent-decoded.
    Query(String),
    /// `{header.NAME}` (name lowercased).
    Header(String),
    /// `{context.KEY}`.
    Context(String),
    /// `{NAME}`: one of the names the plugin passed to [`Template::parse`].
    Var(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

impl Template {
    /// Parses `text`; `vars` are the bare `{name}`s the plugin computes (none for most).
    pub fn parse(text: &str, vars: &[&str]) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .map(|c| open + c)
                .ok_or_else(|| format!("`{text}` has a `{{` without its `}}`"))?;
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let name = &rest[open + 1..close];
            parts.push(match name.split_once('.') {
                Some(("param", p)) => Part::Param(p.to_string()),
                Some(("query", q)) => Part::Query(q.to_string()),
                Some(("header", h)) => Part::Header(h.to_ascii_lowercase()),
                Some(("context", c)) => Part::Context(c.to_string()),
                _ if vars.contains(&name) => Part::Var(name.to_string()),
                _ => {
                    let mut known = "{param.X}, {query.X}, {header.X}, {context.X}".to_string();
                    for v in vars {
                        known.push_str(&format!(", {{{v}}}"));
                    }
                    return Err(format!("`{{{name}}}` is not one of {known}"));
                }
            });
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() || parts.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template(parts))
    }

    /// The pieces, in order.
    pub fn parts(&self) -> &[Part] {
        &self.0
    }

    /// The one placeholder this template is made of, if it is nothing else (so a plugin can
    /// keep a computed value's type, e.g. a number).
    pub fn only_placeholder(&self) -> Option<&Part> {
        match self.0.as_slice() {
            [p] if !matches!(p, Part::Text(_)) => Some(p),
            _ => None,
        }
    }

    /// The text for `req`: each placeholder's value goes through `escape` (e.g. percent
    /// encoding for a URL), bare names through `var`. `Err` says which value the request lacks.
    pub fn render(
        &self,
        req: &Request,
        var: impl Fn(&str) -> Option<String>,
        escape: impl Fn(&str, &mut String),
    ) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.0 {
            if let Part::Text(t) = part {
                out.push_str(t);
                continue;
            }
            let value = value(part, req, &var)?;
            escape(&value, &mut out);
        }
        Ok(out)
    }
}

/// The value of one placeholder for `req`, or which value the request lacks.
pub fn value(
    part: &Part,
    req: &Request,
    var: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let (value, what) = match part {
        Part::Text(t) => return Ok(t.clone()),
        Part::Param(p) => (req.path_param(p), format!("path parameter `{p}`")),
        Part::Query(q) => (req.query_param(q), format!("query parameter `{q}`")),
        Part::Header(h) => (req.header(h), format!("header `{h}`")),
        Part::Context(c) => (req.context_get(c), format!("`{c}` in the request context")),
        Part::Var(v) => (var(v), format!("value for `{{{v}}}`")),
    };
    value.ok_or_else(|| format!("the request has no {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestRequest;

    #[test]
    fn placeholders_and_text() {
        let t = Template::parse("http://users/u/{param.id}?p={query.page}", &[]).unwrap();
        let req = TestRequest::get("/x?page=2").route("r", &[("id", "7")]);
        let out = t.render(&req.view(), |_| None, |v, o| o.push_str(v));
        assert_eq!(out.unwrap(), "http://users/u/7?p=2");
        let missing = Template::parse("{header.x-user}", &[]).unwrap();
        let err = missing.render(&req.view(), |_| None, |v, o| o.push_str(v));
        assert_eq!(err.unwrap_err(), "the request has no header `x-user`");
    }

    #[test]
    fn plugin_names_and_typos() {
        let t = Template::parse("{now}", &["now"]).unwrap();
        assert_eq!(t.only_placeholder(), Some(&Part::Var("now".into())));
        let err = Template::parse("{nwo}", &["now"]).unwrap_err();
        assert!(err.contains("`{nwo}`") && err.contains("{now}"), "{err}");
        assert!(Template::parse("{param.id", &[]).is_err());
        assert_eq!(
            Template::parse("", &[]).unwrap().parts(),
            &[Part::Text(String::new())]
        );
    }
}
