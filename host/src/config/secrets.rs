//! `${env:NAME}` and `${file:PATH}` in string values, so secrets stay out of `gateway.toml`.
//! References are resolved on the parsed document, before it is read into the config types, so
//! every error still points at the line of the value that holds the reference.

use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Resolves every reference in `root`. Returns the values that were substituted (so that the
/// admin's `/config` can hide them) or every reference that could not be resolved.
pub(super) fn resolve(
    root: &mut DeTable<'_>,
    config_path: &Path,
) -> Result<Vec<String>, Vec<(Range<usize>, String)>> {
    let mut secrets = Vec::new();
    let mut errors = Vec::new();
    for (_, v) in root.iter_mut() {
        walk(v, config_path, &mut secrets, &mut errors);
    }
    if errors.is_empty() {
        Ok(secrets)
    } else {
        Err(errors)
    }
}

fn walk(
    v: &mut Spanned<DeValue<'_>>,
    config_path: &Path,
    secrets: &mut Vec<String>,
    errors: &mut Vec<(Range<usize>, String)>,
) {
    let span = v.span();
    match v.get_mut() {
        DeValue::String(s) if s.contains("${") => match substitute(s, config_path, secrets) {
            Ok(out) => *s = out.into(),
            Err(message) => errors.push((span, message)),
        },
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                walk(item, config_path, secrets, errors);
            }
        }
        DeValue::Table(t) => {
            for (_, item) in t.iter_mut() {
                walk(item, config_path, secrets, errors);
            }
        }
        _ => {}
    }
}

/// Replaces each `${env:NAME}` / `${file:PATH}` in `s`; `$${` stands for a literal `${`.
fn substitute(s: &str, config_path: &Path, secrets: &mut Vec<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            out.push_str(&rest[..at]);
            out.push('{');
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after.find('}').ok_or_else(|| {
            format!("`{rest}` opens a `${{` reference without its closing `}}`; write ${{env:NAME}} or ${{file:PATH}} (or $${{ for a literal ${{)")
        })?;
        let reference = &after[..end];
        let value = lookup(reference, config_path)?;
        secrets.push(value.clone());
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn lookup(reference: &str, config_path: &Path) -> Result<String, String> {
    match reference.split_once(':') {
        Some(("env", name)) => std::env::var(name).map_err(|_| {
            format!("`${{env:{name}}}`: the environment variable {name} is not set (or not UTF-8); set it before starting the gateway")
        }),
        Some(("file", path)) => {
            let full = super::resolve(config_path, Path::new(path));
            std::fs::read_to_string(&full)
                .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| {
                    format!(
                        "`${{file:{path}}}`: cannot read {}: {e}; check the path (relative paths start at the config file's folder)",
                        full.display()
                    )
                })
        }
        _ => Err(format!(
            "`${{{reference}}}` is not a reference the gateway knows; write ${{env:NAME}} or ${{file:PATH}} (or $${{ for a literal ${{)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_and_escape() {
        let dir = std::env::temp_dir().join(format!("wasmgate-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("pw"), "s3cret\n").expect("write");
        let cfg = dir.join("gateway.toml");
        let mut secrets = Vec::new();
        let path = std::env::var("PATH").expect("PATH");
        assert_eq!(
            substitute("a ${env:PATH} b", &cfg, &mut secrets).as_deref(),
            Ok(format!("a {path} b").as_str())
        );
        assert_eq!(
            substitute("redis://:${file:pw}@h", &cfg, &mut secrets).as_deref(),
            Ok("redis://:s3cret@h")
        );
        assert_eq!(secrets, vec![path, "s3cret".to_string()]);
        assert_eq!(
            substitute("$${env:X}", &cfg, &mut secrets).as_deref(),
            Ok("${env:X}")
        );
        assert!(
            substitute("${env:WASMGATE_SURELY_UNSET}", &cfg, &mut secrets)
                .unwrap_err()
                .contains("is not set")
        );
        assert!(
            substitute("${vault:x}", &cfg, &mut secrets)
                .unwrap_err()
                .contains("not a reference")
        );
        assert!(
            substitute("${env:X", &cfg, &mut secrets)
                .unwrap_err()
                .contains("closing")
        );
    }
}
