//! What a phase decides.

use crate::bindings::wasmgate::plugin::types as wit;

/// Go on, or answer the client now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run the next plugin, then the next phase.
    Continue,
    /// Answer now: later plugins and the upstream are skipped.
    Respond(Answer),
}

/// A response made by a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Header name and value pairs, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// An empty answer with this status.
    pub fn new(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A problem document (RFC 9457), as the gateway's own errors are.
    pub fn problem(status: u16, detail: &str) -> Answer {
        let title = match status {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            413 => "Payload Too Large",
            429 => "Too Many Requests",
            500 => "Internal Server Error",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            _ => "Error",
        };
        let body = serde_json::json!({
            "type": "about:blank",
            "title": title,
            "status": status,
            "detail": detail,
        });
        Answer::new(status)
            .header("content-type", "application/problem+json")
            .body(body.to_string())
    }

    /// A 401 problem with its challenge (RFC 9110 §11.6.1):
    /// `WWW-Authenticate: <scheme> k1="v1", k2="v2"`. Quotes, backslashes, control and
    /// non-ASCII characters are dropped from the values, so a detail taken from a token cannot
    /// break (or lose) the header.
    pub fn unauthorized(scheme: &str, params: &[(&str, &str)], detail: &str) -> Answer {
        let mut challenge = scheme.to_string();
        for (i, (k, v)) in params.iter().enumerate() {
            let clean: String = v
                .chars()
                .filter(|c| c.is_ascii() && !c.is_ascii_control() && *c != '"' && *c != '\\')
                .collect();
            challenge.push_str(if i == 0 { " " } else { ", " });
            challenge.push_str(&format!("{k}=\"{clean}\""));
        }
        Answer::problem(401, detail).header("www-authenticate", &challenge)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Answer {
        self.body = body.into();
        self
    }
}

impl From<Answer> for Action {
    fn from(a: Answer) -> Action {
        Action::Respond(a)
    }
}

/// `Ok` continues; an `Err` from a host call answers 500 with the message, so `?`-style code
/// reads naturally in a phase.
impl From<Result<(), String>> for Action {
    fn from(r: Result<(), String>) -> Action {
        match r {
            Ok(()) => Action::Continue,
            Err(e) => Action::Respond(Answer::problem(500, &e)),
        }
    }
}

impl From<Action> for wit::Action {
    fn from(a: Action) -> wit::Action {
        match a {
            Action::Continue => wit::Action::Continue,
            Action::Respond(a) => wit::Action::Respond(wit::Answer {
                status: a.status,
                headers: a.headers,
                body: a.body,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_carries_a_clean_challenge() {
        let a = Answer::unauthorized(
            "Bearer",
            &[
                ("error", "invalid_token"),
                ("error_description", "bad \"sig\"\n\u{e9}"),
            ],
            "bad token",
        );
        assert_eq!(a.status, 401);
        let challenge = a
            .headers
            .iter()
            .find(|(k, _)| k == "www-authenticate")
            .map(|(_, v)| v.as_str());
        assert_eq!(
            challenge,
            Some("Bearer error=\"invalid_token\", error_description=\"bad sig\"")
        );
    }
}
