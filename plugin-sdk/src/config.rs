//! A plugin's config table, parsed into its `Config` type with errors a person can act on: the
//! key that is wrong and what was expected, not a position in the JSON the gateway made from
//! `gateway.toml` (a position the user never wrote).

/// Parses `json` (the route's `config` table) into `T`.
pub fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, String> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let full = e.into_inner().to_string();
        let what = without_position(&full);
        if key.is_empty() || key == "." {
            format!("{what}; fix this plugin's `config` table")
        } else {
            format!("`{key}`: {what}; fix `{key}` in this plugin's `config` table")
        }
    })
}

/// serde_json ends its messages with " at line L column C".
fn without_position(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(" column ") => &msg[..i],
        _ => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Limits {
        limit: u64,
        #[serde(default)]
        per: Vec<Tier>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Tier {
        name: String,
    }

    #[test]
    fn errors_name_the_key_and_drop_the_json_position() {
        let e = parse::<Limits>(r#"{"limit": -1}"#).unwrap_err();
        assert_eq!(
            e,
            "`limit`: invalid value: integer `-1`, expected u64; fix `limit` in this plugin's `config` table"
        );
        let e = parse::<Limits>(r#"{"limit": 1, "per": [{"nmae": "x"}]}"#).unwrap_err();
        assert!(
            e.starts_with("`per[0].nmae`: unknown field `nmae`, expected `name`"),
            "{e}"
        );
        let e = parse::<Limits>(r#"{}"#).unwrap_err();
        assert!(e.starts_with("missing field `limit`"), "{e}");
    }
}
