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
    schema.to_value()
}
