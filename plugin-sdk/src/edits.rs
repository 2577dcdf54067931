//! Header edits as plugins take them from their config: set, append, remove and rename, checked
//! once at load with the gateway's own header rules, applied to a request or a response.
//!
//! ```ignore
//! #[derive(Deserialize)]
//! struct Tag { request: HeaderEdits }
//! // config = { request = { set = { x-tenant = "acme" }, remove = ["x-debug"] } }
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::message::{Request, Response};
use crate::rules;

/// One message's header edits, applied in this order: `rename`, `remove`, `set`, `append`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderEdits {
    /// Header → value, replacing what was there.
    pub set: BTreeMap<String, String>,
    /// Header → value, added to what was there.
    pub append: BTreeMap<String, String>,
    /// Headers to drop.
    pub remove: Vec<String>,
    /// Old name → new name; every value moves.
    pub rename: BTreeMap<String, String>,
}

/// Where header edits apply: a request or a response.
pub trait Headers {
    /// Every value of `name`.
    fn header_all(&self, name: &str) -> Vec<String>;
    /// Replaces `name`'s values with `value`.
    fn set_header(&self, name: &str, value: &str) -> Result<(), String>;
    /// Adds a value to `name`.
    fn append_header(&self, name: &str, value: &str) -> Result<(), String>;
    /// Drops `name`.
    fn remove_header(&self, name: &str);
}

macro_rules! headers_of {
    ($t:ty) => {
        impl Headers for $t {
            fn header_all(&self, name: &str) -> Vec<String> {
                <$t>::header_all(self, name)
            }
            fn set_header(&self, name: &str, value: &str) -> Result<(), String> {
                <$t>::set_header(self, name, value)
            }
            fn append_header(&self, name: &str, value: &str) -> Result<(), String> {
                <$t>::append_header(self, name, value)
            }
            fn remove_header(&self, name: &str) {
                <$t>::remove_header(self, name)
            }
        }
    };
}
headers_of!(Request<'_>);
headers_of!(Response<'_>);

impl HeaderEdits {
    /// No edit at all: the phase need not be called.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.append.is_empty()
            && self.remove.is_empty()
            && self.rename.is_empty()
    }

    /// Refuses a name or value the gateway would refuse, naming it: call it in `new`, so a bad
    /// config fails at load, not on a request.
    pub fn check(&self) -> Result<(), String> {
        let names = self
            .set
            .keys()
            .chain(self.append.keys())
            .chain(&self.remove)
            .chain(self.rename.keys())
            .chain(self.rename.values());
        for name in names {
            rules::header_name(name)?;
        }
        for (name, value) in self.set.iter().chain(&self.append) {
            rules::header_value(value).map_err(|e| format!("`{name}`: {e}"))?;
        }
        Ok(())
    }

    /// Applies the edits to `h`.
    pub fn apply(&self, h: &impl Headers) -> Result<(), String> {
        for (from, to) in &self.rename {
            let values = h.header_all(from);
            h.remove_header(from);
            for v in values {
                h.append_header(to, &v)?;
            }
        }
        self.remove.iter().for_each(|n| h.remove_header(n));
        self.set.iter().try_for_each(|(k, v)| h.set_header(k, v))?;
        self.append
            .iter()
            .try_for_each(|(k, v)| h.append_header(k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_the_bad_name_or_value() {
        let bad: HeaderEdits =
            serde_json::from_str(r#"{"set": {"x tenant": "a"}}"#).expect("parse");
        assert_eq!(bad.check(), Err("`x tenant` is not a header name".into()));
        let bad: HeaderEdits =
            serde_json::from_str(r#"{"append": {"x-a": "line\nbreak"}}"#).expect("parse");
        assert!(bad.check().is_err_and(|e| e.starts_with("`x-a`: ")));
        let good: HeaderEdits =
            serde_json::from_str(r#"{"rename": {"X-Old": "x-new"}, "remove": ["x-b"]}"#)
                .expect("parse");
        assert_eq!(good.check(), Ok(()));
        assert!(!good.is_empty() && HeaderEdits::default().is_empty());
    }
}
