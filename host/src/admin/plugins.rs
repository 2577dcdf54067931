//! The admin's `GET /plugins`: each plugin of the config with its file, the file's hash (its
//! version: the contract has no other), the routes that use it, and how it is doing.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::runtime::Runtime;

pub fn list(rt: &Runtime) -> Value {
    let mut out = BTreeMap::new();
    for (name, def) in &rt.loaded.config.plugins {
        let file = rt.loaded.resolve(def.get_ref().file.get_ref());
        let module = rt.modules.iter().find(|m| m.path == file);
        let (mut routes, mut instances, mut calls, mut failures) = (Vec::new(), 0, 0, 0);
        let mut kind = "plugin";
        for route in rt.router.values() {
            for step in route.chain.steps.iter().filter(|s| s.name() == name) {
                routes.push(route.name.to_string());
                instances += step.idle_instances();
                let (c, f) = step.calls();
                calls += c;
                failures += f;
            }
            if route
                .handler
                .as_ref()
                .is_some_and(|h| &*h.env.name == name.as_str())
            {
                routes.push(route.name.to_string());
                kind = "handler";
            }
        }
        routes.dedup();
        out.insert(
            name.clone(),
            json!({
                "file": file,
                "sha256": module.map(|m| m.sha256()),
                "kind": kind,
                "routes": routes,
                "instances": instances,
                "calls": calls,
                "failures": failures,
            }),
        );
    }
    json!(out)
}
