//! Localization at the gateway: the request's locale negotiated from a query parameter, a
//! cookie, a header, the request context or `Accept-Language` (q-values, RFC 4647 lookup)
//! against the supported locales, sent upstream in a header and kept in the context as
//! `locale`; the request sent to the upstream serving that locale's region; JSON response fields
//! formatted for the locale with ICU4X's CLDR data (numbers, currency amounts, dates); and the
//! `title`/`detail` of problem+json error answers (the gateway's, a plugin's, the upstream's)
//! translated from message catalogs in the config. Answers get `Content-Language` and, when
//! `Accept-Language` decides, `Vary: Accept-Language`.

mod format;
mod negotiate;

use std::collections::BTreeMap;

use icu_experimental::dimension::currency::CurrencyCode;
use icu_locale_core::Locale;
use serde_json::Value;
use wasmgate_plugin_sdk::fields::Path;
use wasmgate_plugin_sdk::media::is_json;
use wasmgate_plugin_sdk::prelude::*;

use format::{Formatters, Kind, currency_code};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The supported locales (BCP 47 tags, e.g. "en", "de", "fr-CA").
    locales: Vec<String>,
    /// The locale when no source finds a supported one (default: the first of `locales`).
    default: Option<String>,
    /// Where the locale comes from, in order.
    from: Option<Vec<SourceConfig>>,
    /// The request header the negotiated locale goes upstream in.
    #[serde(default = "default_header")]
    header: String,
    /// Upstream name → the locales it serves (a locale listed by its language serves every
    /// region of it).
    #[serde(default)]
    upstreams: BTreeMap<String, Vec<String>>,
    /// JSON response fields to format for the locale.
    #[serde(default)]
    format: Vec<RuleConfig>,
    /// Locale → status (`"429"`, or a class, `"5xx"`) → the problem's `title` and `detail`.
    #[serde(default)]
    messages: BTreeMap<String, BTreeMap<String, Message>>,
}

fn default_header() -> String {
    "x-locale".into()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SourceConfig {
    Named(String),
    Query { query: String },
    Cookie { cookie: String },
    Header { header: String },
    Context { context: String },
}

#[derive(Debug, Clone, PartialEq)]
enum Source {
    AcceptLanguage,
    Query(String),
    Cookie(String),
    Header(String),
    Context(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    path: String,
    #[serde(rename = "as")]
    kind: Kind,
    /// The currency of every amount at `path` (ISO 4217, e.g. "EUR").
    currency: Option<String>,
    /// Or the name of the field beside each amount that holds its currency code.
    currency_field: Option<String>,
    /// Fraction digits numbers are rounded and padded to (currency: 2; numbers: as they are).
    digits: Option<i16>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Message {
    title: Option<String>,
    /// `{detail}` stands for the original detail.
    detail: Option<String>,
}

struct Rule {
    path: Path,
    kind: Kind,
    currency: Option<CurrencyCode>,
    currency_field: Option<String>,
    digits: Option<i16>,
}

pub struct Localize {
    /// Canonical tags, in config order.
    locales: Vec<String>,
    default: String,
    from: Vec<Source>,
    header: String,
    /// (locale, upstream).
    upstreams: Vec<(String, String)>,
    rules: Vec<Rule>,
    /// Per locale, in `locales` order.
    formatters: Vec<Formatters>,
    messages: BTreeMap<String, BTreeMap<String, Message>>,
}

fn canonical(tag: &str) -> Result<String, String> {
    tag.parse::<Locale>()
        .map(|l| l.to_string())
        .map_err(|e| format!("`{tag}` is not a BCP 47 locale: {e}"))
}

fn sources(from: Option<Vec<SourceConfig>>) -> Result<Vec<Source>, String> {
    let Some(from) = from else {
        return Ok(vec![
            Source::Query("lang".into()),
            Source::Cookie("lang".into()),
            Source::AcceptLanguage,
        ]);
    };
    if from.is_empty() {
        return Err("from: list at least one source".into());
    }
    from.into_iter()
        .map(|s| match s {
            SourceConfig::Named(n) if n.eq_ignore_ascii_case("accept-language") => Ok(Source::AcceptLanguage),
            SourceConfig::Named(n) => Err(format!(
                "from: `{n}` is not a source; use \"accept-language\", {{ query = \"lang\" }}, {{ cookie = \"lang\" }}, {{ header = \"x-lang\" }} or {{ context = \"locale\" }}"
            )),
            SourceConfig::Query { query } => Ok(Source::Query(query)),
            SourceConfig::Cookie { cookie } => Ok(Source::Cookie(cookie)),
            SourceConfig::Header { header } => Ok(Source::Header(header.to_ascii_lowercase())),
            SourceConfig::Context { context } => Ok(Source::Context(context)),
        })
        .collect()
}

/// A status key of `messages`: a code 400–599 or a class `4xx`/`5xx`.
fn status_key(k: &str) -> bool {
    matches!(k, "4xx" | "5xx") || k.parse::<u16>().is_ok_and(|s| (400..600).contains(&s))
}

impl Localize {
    /// The supported locale for one candidate tag (RFC 4647 lookup), if any.
    fn supported(&self, tag: &str) -> Option<&str> {
        negotiate::lookup(tag.trim(), &self.locales)
    }

    fn negotiate(&self, req: &Request) -> String {
        for source in &self.from {
            let found = match source {
                Source::AcceptLanguage => req.header("accept-language").and_then(|h| {
                    negotiate::accept_language(&h, &self.locales).map(str::to_string)
                }),
                Source::Query(q) => req
                    .query_param(q)
                    .and_then(|v| self.supported(&v).map(str::to_string)),
                Source::Cookie(c) => req
                    .cookie(c)
                    .and_then(|v| self.supported(&v).map(str::to_string)),
                Source::Header(h) => req
                    .header(h)
                    .and_then(|v| self.supported(&v).map(str::to_string)),
                Source::Context(c) => req
                    .context_get(c)
                    .and_then(|v| self.supported(&v).map(str::to_string)),
            };
            if let Some(l) = found {
                return l;
            }
        }
        self.default.clone()
    }

    fn locale_of(&self, req: &Request) -> String {
        req.context_get("locale")
            .filter(|l| self.locales.contains(l))
            .unwrap_or_else(|| self.default.clone())
    }

    fn message(&self, locale: &str, status: u16) -> Option<&Message> {
        let catalog = self.messages.get(locale)?;
        let class = format!("{}xx", status / 100);
        catalog
            .get(&status.to_string())
            .or_else(|| catalog.get(&class))
    }

    /// Formats the configured fields of `doc` for the locale at `index`.
    fn format(&self, index: usize, doc: &mut Value) {
        let Some(f) = self.formatters.get(index) else {
            return;
        };
        for rule in &self.rules {
            rule.path.each_parent(doc, |parent, field| {
                let code = match (&rule.currency, &rule.currency_field) {
                    (Some(c), _) => Some(*c),
                    (None, Some(beside)) => parent
                        .get(beside)
                        .and_then(Value::as_str)
                        .and_then(currency_code),
                    (None, None) => None,
                };
                let Some(v) = parent.get_mut(field) else {
                    return;
                };
                if let Some(text) = f.format(rule.kind, v, code.as_ref(), rule.digits) {
                    *v = Value::String(text);
                }
            });
        }
    }
}

#[plugin]
impl Plugin for Localize {
    type Config = Config;

    fn new(c: Config) -> Result<Self, String> {
        if c.locales.is_empty() {
            return Err("give the supported `locales`, e.g. [\"en\", \"de\", \"fr\"]".into());
        }
        let locales = c
            .locales
            .iter()
            .map(|l| canonical(l).map_err(|e| format!("locales: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let default = match c.default {
            Some(d) => {
                let d = canonical(&d).map_err(|e| format!("default: {e}"))?;
                if !locales.contains(&d) {
                    return Err(format!("default: `{d}` is not one of `locales`"));
                }
                d
            }
            None => locales[0].clone(),
        };
        let mut upstreams = Vec::new();
        for (upstream, served) in c.upstreams {
            for l in served {
                let l = canonical(&l).map_err(|e| format!("upstreams.{upstream}: {e}"))?;
                upstreams.push((l, upstream.clone()));
            }
        }
        let rules = c
            .format
            .into_iter()
            .map(|r| {
                let path = Path::parse(&r.path).map_err(|e| format!("format: {e}"))?;
                let currency = r
                    .currency
                    .map(|c| {
                        currency_code(&c).ok_or_else(|| {
                            format!(
                                "format `{}`: currency `{c}` is not an ISO 4217 code like \"EUR\"",
                                r.path
                            )
                        })
                    })
                    .transpose()?;
                if r.kind == Kind::Currency && currency.is_none() && r.currency_field.is_none() {
                    return Err(format!(
                        "format `{}`: a currency needs `currency` (\"EUR\") or `currency_field`",
                        r.path
                    ));
                }
                if r.digits.is_some_and(|d| !(0..=10).contains(&d)) {
                    return Err(format!("format `{}`: digits must be 0 to 10", r.path));
                }
                Ok(Rule {
                    path,
                    kind: r.kind,
                    currency,
                    currency_field: r.currency_field,
                    digits: r.digits,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let kinds: Vec<Kind> = rules.iter().map(|r| r.kind).collect();
        let formatters = if kinds.is_empty() {
            Vec::new()
        } else {
            locales
                .iter()
                .map(|l| {
                    let locale: Locale = l.parse().map_err(|e| format!("locales: `{l}`: {e}"))?;
                    Formatters::new(&locale, &kinds)
                })
                .collect::<Result<Vec<_>, String>>()?
        };
        let mut messages = BTreeMap::new();
        for (locale, catalog) in c.messages {
            let l = canonical(&locale).map_err(|e| format!("messages: {e}"))?;
            if !locales.contains(&l) {
                return Err(format!("messages.{locale}: `{l}` is not one of `locales`"));
            }
            if let Some(k) = catalog.keys().find(|k| !status_key(k)) {
                return Err(format!(
                    "messages.{locale}.\"{k}\": give an error status (400 to 599) or a class (\"4xx\", \"5xx\")"
                ));
            }
            messages.insert(l, catalog);
        }
        let header = c.header.to_ascii_lowercase();
        Ok(Localize {
            locales,
            default,
            from: sources(c.from)?,
            header,
            upstreams,
            rules,
            formatters,
            messages,
        })
    }

    fn phases(&self, written: Phases) -> Phases {
        let mut p = written;
        if self.rules.is_empty() && self.messages.is_empty() {
            p.remove(Phases::RESPONSE_BODY);
        }
        p
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        let locale = self.negotiate(req);
        req.context_set("locale", &locale);
        let region = self
            .upstreams
            .iter()
            .find(|(served, _)| negotiate::lookup(&locale, std::slice::from_ref(served)).is_some());
        let mut result = req.set_header(&self.header, &locale);
        if let Some((_, upstream)) = region {
            result = result.and_then(|()| req.set_upstream(upstream, None));
        }
        result.into()
    }

    fn on_response_headers(&self, req: &Request, resp: &Response) -> Action {
        let locale = self.locale_of(req);
        let mut result = Ok(());
        if resp.header("content-language").is_none() {
            result = resp.set_header("content-language", &locale);
        }
        if self.from.contains(&Source::AcceptLanguage) {
            let varies = resp
                .header_all("vary")
                .iter()
                .flat_map(|v| v.split(','))
                .any(|v| v.trim().eq_ignore_ascii_case("accept-language") || v.trim() == "*");
            if !varies {
                result = result.and_then(|()| resp.append_header("vary", "Accept-Language"));
            }
        }
        let ct = resp.header("content-type");
        let status = resp.status();
        let formats = !self.rules.is_empty() && is_json(ct.as_deref());
        let translates =
            status >= 400 && is_json(ct.as_deref()) && self.message(&locale, status).is_some();
        if !(formats || translates) {
            resp.skip_body();
        }
        result.into()
    }

    fn on_response_body(&self, req: &Request, resp: &Response) -> Action {
        let locale = self.locale_of(req);
        let Some(body) = resp.body().filter(|b| !b.is_empty()) else {
            return Action::Continue;
        };
        let Ok(mut doc) = serde_json::from_slice::<Value>(&body) else {
            log::debug("the response is not JSON: left as it is");
            return Action::Continue;
        };
        if let Some(i) = self.locales.iter().position(|l| *l == locale) {
            self.format(i, &mut doc);
        }
        let status = resp.status();
        if status >= 400
            && let Some(m) = self.message(&locale, status)
            && let Value::Object(problem) = &mut doc
        {
            if let Some(title) = &m.title {
                problem.insert("title".into(), Value::String(title.clone()));
            }
            if let Some(detail) = &m.detail {
                let original = problem.get("detail").and_then(Value::as_str).unwrap_or("");
                let text = detail.replace("{detail}", original);
                problem.insert("detail".into(), Value::String(text));
            }
        }
        match serde_json::to_vec(&doc) {
            Ok(out) => resp.set_body(&out),
            Err(e) => log::warn(&format!("the localized response could not be written: {e}")),
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests;
