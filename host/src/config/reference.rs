//! The JSON Schema of `gateway.toml`, made from the config types themselves (their doc comments
//! are its descriptions, their defaults its defaults): for editors (`wasmgate schema`,
//! `docs/gateway.schema.json`) and for the key reference in `docs/CONFIG.md`, which a test
//! checks against it.

use super::Config;

/// The schema as JSON.
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<Config>();
    schema.insert("title".into(), "wasmgate gateway.toml".into());
    sorted(schema.to_value())
}

/// Keys in order, whatever `serde_json`'s map is: with `preserve_order` (which a workspace
/// build may turn on) it keeps insertion order, and the file must not depend on the build.
fn sorted(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted).collect())
        }
        other => other,
    }
}
