//! Access control by who the request is: the `consumer`, its `groups` (comma-separated) and, for
//! tokens, its `scopes` (space-separated) and `roles`, all read from the request context that
//! an auth plugin filled. A deny match wins; with allow rules, one must match. 403 otherwise
//! (also when no auth plugin ran before).

use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    consumers: Vec<String>,
    groups: Vec<String>,
    scopes: Vec<String>,
    roles: Vec<String>,
}

impl Rules {
    fn is_empty(&self) -> bool {
        self.consumers.is_empty()
            && self.groups.is_empty()
            && self.scopes.is_empty()
            && self.roles.is_empty()
    }

    fn matches(&self, who: &Identity) -> bool {
        let any = |rule: &[String], have: &[String]| rule.iter().any(|r| have.contains(r));
        who.consumer
            .as_ref()
            .is_some_and(|c| self.consumers.contains(c))
            || any(&self.groups, &who.groups)
            || any(&self.scopes, &who.scopes)
            || any(&self.roles, &who.roles)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    #[serde(default)]
    allow: Rules,
    #[serde(default)]
    deny: Rules,
}

#[plugin]
impl Plugin for Acl {
    type Config = Self;

    fn new(c: Self) -> Result<Self, String> {
        if c.allow.is_empty() && c.deny.is_empty() {
            return Err("set `allow`, `deny` or both".into());
        }
        Ok(c)
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        let who = Identity::of(req);
        let denied =
            self.deny.matches(&who) || (!self.allow.is_empty() && !self.allow.matches(&who));
        if denied {
            let name = who.consumer.as_deref().unwrap_or("an anonymous client");
            return Answer::problem(403, &format!("{name} may not use this route")).into();
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::testing::{TestHost, TestRequest, status};

    #[test]
    fn allows_and_denies_by_consumer_group_scope_and_role() {
        let h = TestHost::<Acl>::new(
            r#"{"allow": {"groups": ["staff"], "scopes": ["orders:read"], "roles": ["admin"]}, "deny": {"consumers": ["mallory"]}}"#,
        )
        .unwrap();
        let run = |ctx: &[(&str, &str)]| {
            let mut r = TestRequest::get("/");
            for (k, v) in ctx {
                r = r.context(k, v);
            }
            status(&h.request_headers(&r))
        };
        assert_eq!(run(&[("consumer", "alice"), ("groups", "dev,staff")]), 200);
        assert_eq!(
            run(&[("consumer", "bob"), ("scopes", "profile orders:read")]),
            200
        );
        assert_eq!(run(&[("consumer", "root"), ("roles", "admin")]), 200);
        assert_eq!(
            run(&[("consumer", "mallory"), ("groups", "staff")]),
            403,
            "deny wins"
        );
        assert_eq!(run(&[("consumer", "carol"), ("groups", "dev")]), 403);
        assert_eq!(run(&[]), 403, "no auth plugin ran");
        assert!(TestHost::<Acl>::new("{}").is_err());
    }
}
