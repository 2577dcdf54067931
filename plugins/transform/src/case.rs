//! Key naming conventions, converted recursively through a document.

use heck::{ToKebabCase, ToLowerCamelCase, ToSnakeCase, ToUpperCamelCase};
use serde::Deserialize;
use serde_json::Value;

/// A key naming convention.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Case {
    /// `user_id`
    Snake,
    /// `userId`
    Camel,
    /// `user-id`
    Kebab,
    /// `UserId`
    Pascal,
}

impl Case {
    /// `key` in this case; an XML attribute's `@` or a text node's `#` stays in front.
    pub fn key(self, key: &str) -> String {
        let (mark, rest) = match key.as_bytes().first() {
            Some(b'@' | b'#') => key.split_at(1),
            _ => ("", key),
        };
        let converted = match self {
            Case::Snake => rest.to_snake_case(),
            Case::Camel => rest.to_lower_camel_case(),
            Case::Kebab => rest.to_kebab_case(),
            Case::Pascal => rest.to_upper_camel_case(),
        };
        format!("{mark}{converted}")
    }

    /// Every object key in `v`, at every depth.
    pub fn keys(self, v: Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .map(|(k, v)| (self.key(&k), self.keys(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.keys(v)).collect()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_cases_either_way() {
        let v = json!({"user_id": 1, "homeAddress": {"zip_code": "x", "@lang": "en"}, "list": [{"first_name": "a"}]});
        assert_eq!(
            Case::Camel.keys(v.clone()),
            json!({"userId": 1, "homeAddress": {"zipCode": "x", "@lang": "en"}, "list": [{"firstName": "a"}]})
        );
        assert_eq!(
            Case::Snake.keys(Case::Camel.keys(v)),
            json!({"user_id": 1, "home_address": {"zip_code": "x", "@lang": "en"}, "list": [{"first_name": "a"}]})
        );
        assert_eq!(Case::Kebab.key("userId"), "user-id");
        assert_eq!(Case::Pascal.key("user_id"), "UserId");
    }
}
