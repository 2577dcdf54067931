//! Who is calling, as auth plugins found it and policy plugins read it: one typed value kept in
//! the request context under fixed keys, so every plugin (and a plugin written in another
//! language, or the log phase's record) agrees on the names and the encodings.
//!
//! | field | context key | encoding |
//! |---|---|---|
//! | consumer | `consumer` | text |
//! | tier | `tier` | text |
//! | groups | `groups` | comma-separated |
//! | scopes | `scopes` | space-separated (as OAuth's `scope`) |
//! | roles | `roles` | comma-separated |
//! | tenant | `tenant` | text (the gateway puts it on the access log line and plugin metrics) |

use crate::Request;

/// The caller of one request. Empty until an auth plugin sets it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// Who: a user, an API client.
    pub consumer: Option<String>,
    /// A service tier (rate limits per tier).
    pub tier: Option<String>,
    /// Groups the consumer belongs to.
    pub groups: Vec<String>,
    /// OAuth scopes granted.
    pub scopes: Vec<String>,
    /// Roles held.
    pub roles: Vec<String>,
    /// The tenant the caller belongs to (multi-tenancy).
    pub tenant: Option<String>,
}

impl Identity {
    /// The non-empty, trimmed items of a list such as a claim's `"a, b"` or `"a b"`.
    pub fn items(value: Option<&str>, separators: &[char]) -> Vec<String> {
        value
            .map(|v| {
                v.split(separators)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A consumer with nothing else known yet.
    pub fn consumer(name: &str) -> Identity {
        Identity {
            consumer: Some(name.to_string()),
            ..Identity::default()
        }
    }

    /// The identity earlier plugins put on `req`.
    pub fn of(req: &Request) -> Identity {
        let list = |field| Self::items(req.context_get(field).as_deref(), Self::separators(field));
        Identity {
            consumer: req.context_get("consumer"),
            tier: req.context_get("tier"),
            groups: list("groups"),
            scopes: list("scopes"),
            roles: list("roles"),
            tenant: req.context_get("tenant"),
        }
    }

    /// One field of the identity on `req`, in one read: its values (none, one, or a list's
    /// items). `None` when `field` is not one of the identity's fields.
    pub fn field_of(req: &Request, field: &str) -> Option<Vec<String>> {
        match field {
            "consumer" | "tier" | "tenant" => Some(req.context_get(field).into_iter().collect()),
            "groups" | "scopes" | "roles" => Some(Self::items(
                req.context_get(field).as_deref(),
                Self::separators(field),
            )),
            _ => None,
        }
    }

    /// How a list field is written in the context (the table above).
    fn separators(field: &str) -> &'static [char] {
        if field == "scopes" { &[' '] } else { &[','] }
    }

    /// Only the consumer earlier plugins put on `req` (one read, where the rest is not needed).
    pub fn consumer_of(req: &Request) -> Option<String> {
        req.context_get("consumer")
    }

    /// Only the tenant earlier plugins put on `req`.
    pub fn tenant_of(req: &Request) -> Option<String> {
        req.context_get("tenant")
    }

    /// Puts this identity on `req` for later plugins and phases. Fields left empty are not
    /// written, so two auth plugins can each add what they know.
    pub fn set_on(&self, req: &Request) {
        if let Some(c) = &self.consumer {
            req.context_set("consumer", c);
        }
        if let Some(t) = &self.tier {
            req.context_set("tier", t);
        }
        if !self.groups.is_empty() {
            req.context_set("groups", &self.groups.join(","));
        }
        if !self.scopes.is_empty() {
            req.context_set("scopes", &self.scopes.join(" "));
        }
        if !self.roles.is_empty() {
            req.context_set("roles", &self.roles.join(","));
        }
        if let Some(t) = &self.tenant {
            req.context_set("tenant", t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestRequest;

    #[test]
    fn round_trips_through_the_context_with_its_encodings() {
        let req = TestRequest::get("/");
        let who = Identity {
            consumer: Some("ann".into()),
            tier: Some("gold".into()),
            groups: vec!["staff".into(), "ops".into()],
            scopes: vec!["orders:read".into(), "orders:write".into()],
            roles: vec![],
            tenant: Some("acme".into()),
        };
        who.set_on(&req.view());
        assert_eq!(Identity::of(&req.view()), who);
        assert_eq!(
            req.view().context_get("scopes").as_deref(),
            Some("orders:read orders:write")
        );
        assert_eq!(
            req.view().context_get("roles"),
            None,
            "empty fields stay unset"
        );
        let req = TestRequest::get("/").context("groups", " a, ,b ");
        assert_eq!(Identity::of(&req.view()).groups, ["a", "b"]);
    }
}
