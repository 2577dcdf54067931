//! JMESPath, as plugins that reshape JSON use it: the specification's functions, `avg` as the
//! specification has it (`avg([])` is null; the crate's own fails on an empty list), and
//! `split(text, separator)` for the reshapes the specification cannot express (a full name
//! into first and last).

use jmespath::functions::{ArgumentType, Function, Signature};
use jmespath::{Context, JmespathError, Rcvar, Variable};

pub use jmespath::Expression;

/// Compiles `expr` against the plugin's runtime (made once, on first use).
pub fn compile(expr: &str) -> Result<Expression<'static>, String> {
    runtime().compile(expr).map_err(|e| e.to_string())
}

/// Evaluates `expr` on a JSON value.
pub fn search(
    expr: &Expression<'static>,
    data: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let out = expr.search(data).map_err(|e| e.to_string())?;
    serde_json::to_value(&*out).map_err(|e| e.to_string())
}

fn runtime() -> &'static jmespath::Runtime {
    static RUNTIME: std::sync::OnceLock<jmespath::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        let mut rt = jmespath::Runtime::new();
        rt.register_builtin_functions();
        rt.register_function(
            "avg",
            Box::new(Avg(Signature::new(
                vec![ArgumentType::TypedArray(Box::new(ArgumentType::Number))],
                None,
            ))),
        );
        rt.register_function(
            "split",
            Box::new(Split(Signature::new(
                vec![ArgumentType::String, ArgumentType::String],
                None,
            ))),
        );
        rt
    })
}

struct Avg(Signature);

impl Function for Avg {
    fn evaluate(&self, args: &[Rcvar], ctx: &mut Context<'_>) -> Result<Rcvar, JmespathError> {
        self.0.validate(args, ctx)?;
        let values: Vec<f64> = args
            .first()
            .and_then(|a| a.as_array())
            .map(|items| items.iter().filter_map(|v| v.as_number()).collect())
            .unwrap_or_default();
        let avg = (!values.is_empty())
            .then(|| serde_json::Number::from_f64(values.iter().sum::<f64>() / values.len() as f64))
            .flatten();
        Ok(Rcvar::new(avg.map_or(Variable::Null, Variable::Number)))
    }
}

struct Split(Signature);

impl Function for Split {
    fn evaluate(&self, args: &[Rcvar], ctx: &mut Context<'_>) -> Result<Rcvar, JmespathError> {
        self.0.validate(args, ctx)?;
        let text = args.first().and_then(|a| a.as_string()).map_or("", |s| s);
        let sep = args.get(1).and_then(|a| a.as_string()).map_or("", |s| s);
        let parts: Vec<Rcvar> = if sep.is_empty() {
            text.chars()
                .map(|c| Rcvar::new(Variable::String(c.to_string())))
                .collect()
        } else {
            text.split(sep)
                .map(|p| Rcvar::new(Variable::String(p.to_string())))
                .collect()
        };
        Ok(Rcvar::new(Variable::Array(parts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn split_and_avg() {
        let e = compile("{first: split(name, ' ')[0], rest: join(' ', split(name, ' ')[1:]), n: avg(xs), e: avg(none)}").unwrap();
        let out = search(
            &e,
            json!({"name": "Ada King Lovelace", "xs": [1, 2], "none": []}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"first": "Ada", "rest": "King Lovelace", "n": 1.5, "e": null})
        );
        assert!(compile("a.[").is_err());
    }
}
