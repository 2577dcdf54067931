//! XML ↔ JSON, by these rules (docs in plugins/README.md):
//! - the root element is the one key of the object: `<user>alice</user>` ↔ `{"user": "alice"}`;
//! - an element with only text is a string (numbers stay strings: XML has no types); an empty
//!   one is `""`; attributes are `@name` keys; text beside child elements or attributes is
//!   `#text`;
//! - sibling elements of one name become an array, in document order;
//! - names are kept as written, namespace prefix included (`soap:Body`), and `xmlns`
//!   declarations are attributes like any other;
//! - comments, processing instructions and the DOCTYPE are dropped; entities other than XML's
//!   five and character references are refused (so a DTD cannot expand: no billion laughs).
//!
//! JSON → XML is the reverse; an object with one key becomes that root element, anything else
//! is wrapped in the configured root; array elements at the top are `<item>`; `null` is an
//! empty element; numbers and booleans are their text.

use quick_xml::Reader;
use quick_xml::escape::escape;
use quick_xml::events::{BytesStart, Event};
use serde_json::{Map, Value};

/// An element being read: its name, its attributes and children so far, its text.
struct Open {
    name: String,
    fields: Map<String, Value>,
    text: String,
}

/// Parses `text` as XML into JSON; refuses nesting deeper than `max_depth`.
pub fn to_json(text: &str, max_depth: usize) -> Result<Value, String> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<(String, Value)> = None;
    loop {
        let at = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| format!("at byte {at}: {e}"))?;
        match event {
            Event::Start(e) => {
                if stack.len() >= max_depth {
                    return Err(format!("elements nest deeper than {max_depth}"));
                }
                stack.push(open(&e)?);
            }
            Event::Empty(e) => {
                if stack.len() >= max_depth {
                    return Err(format!("elements nest deeper than {max_depth}"));
                }
                let el = open(&e)?;
                close(el, &mut stack, &mut root)?;
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("an end tag without its start")?;
                close(el, &mut stack, &mut root)?;
            }
            Event::Text(t) => {
                let s = t.unescape().map_err(|e| format!("at byte {at}: {e}"))?;
                text_of(&mut stack, &s)?;
            }
            Event::CData(c) => {
                let s = std::str::from_utf8(c.as_ref()).map_err(|e| e.to_string())?;
                text_of(&mut stack, s)?;
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    let (name, value) = root.ok_or("there is no root element")?;
    let mut m = Map::new();
    m.insert(name, value);
    Ok(Value::Object(m))
}

fn open(e: &BytesStart) -> Result<Open, String> {
    let name = std::str::from_utf8(e.name().as_ref())
        .map_err(|e| e.to_string())?
        .to_string();
    let mut fields = Map::new();
    for a in e.attributes() {
        let a = a.map_err(|e| format!("in <{name}>: {e}"))?;
        let key = std::str::from_utf8(a.key.as_ref()).map_err(|e| e.to_string())?;
        let value = a
            .unescape_value()
            .map_err(|e| format!("in <{name}>: {e}"))?;
        fields.insert(format!("@{key}"), Value::String(value.into_owned()));
    }
    Ok(Open {
        name,
        fields,
        text: String::new(),
    })
}

fn text_of(stack: &mut [Open], s: &str) -> Result<(), String> {
    let el = stack.last_mut().ok_or("text outside the root element")?;
    el.text.push_str(s);
    Ok(())
}

fn close(el: Open, stack: &mut [Open], root: &mut Option<(String, Value)>) -> Result<(), String> {
    let Open {
        name,
        mut fields,
        text,
    } = el;
    let value = if fields.is_empty() {
        Value::String(text)
    } else {
        if !text.is_empty() {
            fields.insert("#text".into(), Value::String(text));
        }
        Value::Object(fields)
    };
    let Some(parent) = stack.last_mut() else {
        if root.is_some() {
            return Err("there is more than one root element".into());
        }
        *root = Some((name, value));
        return Ok(());
    };
    match parent.fields.get_mut(&name) {
        None => {
            parent.fields.insert(name, value);
        }
        Some(Value::Array(items)) => items.push(value),
        Some(first) => {
            let first = first.take();
            parent.fields.insert(name, Value::Array(vec![first, value]));
        }
    }
    Ok(())
}

/// Writes `v` as an XML document; `root` names the wrapping element when `v` is not an object
/// with one key.
pub fn from_json(v: &Value, root: &str) -> Result<String, String> {
    let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    match v {
        Value::Object(m) if m.len() == 1 && !m.keys().any(|k| k.starts_with(['@', '#'])) => {
            for (k, v) in m {
                element(k, v, &mut out)?;
            }
        }
        Value::Array(items) => {
            let wrapped: Map<String, Value> =
                std::iter::once(("item".to_string(), Value::Array(items.clone()))).collect();
            element(root, &Value::Object(wrapped), &mut out)?;
        }
        other => element(root, other, &mut out)?,
    }
    Ok(out)
}

fn element(name: &str, v: &Value, out: &mut String) -> Result<(), String> {
    if let Value::Array(items) = v {
        for item in items {
            element(name, item, out)?;
        }
        return Ok(());
    }
    check_name(name)?;
    out.push('<');
    out.push_str(name);
    match v {
        Value::Null => {
            out.push_str("/>");
            return Ok(());
        }
        Value::Object(m) => {
            for (k, a) in m.iter().filter(|(k, _)| k.starts_with('@')) {
                let attr = &k[1..];
                check_name(attr)?;
                out.push_str(&format!(" {attr}=\"{}\"", escape(&scalar(a)?)));
            }
            out.push('>');
            for (k, child) in m.iter().filter(|(k, _)| !k.starts_with('@')) {
                if k == "#text" {
                    out.push_str(&escape(&scalar(child)?));
                } else {
                    element(k, child, out)?;
                }
            }
        }
        other => {
            out.push('>');
            out.push_str(&escape(&scalar(other)?));
        }
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
    Ok(())
}

fn scalar(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Bool(_) | Value::Number(_) => Ok(v.to_string()),
        _ => Err("an attribute or `#text` holds an object or array".into()),
    }
}

/// An XML name (prefix allowed): a letter or `_` first, then letters, digits, `-`, `.`, `_`, `:`.
fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'));
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not an XML name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn xml_to_json_rules() {
        assert_eq!(
            to_json("<user>alice</user>", 64).unwrap(),
            json!({"user": "alice"})
        );
        let doc = r#"<?xml version="1.0"?>
            <!-- a comment -->
            <order id="7" xmlns:x="urn:x">
              <item sku="a">2</item>
              <item sku="b">1</item>
              <note>fish &amp; chips &#x263A;</note>
              <empty/>
              <x:tag><![CDATA[<raw>]]></x:tag>
            </order>"#;
        assert_eq!(
            to_json(doc, 64).unwrap(),
            json!({"order": {
                "@id": "7", "@xmlns:x": "urn:x",
                "item": [{"@sku": "a", "#text": "2"}, {"@sku": "b", "#text": "1"}],
                "note": "fish & chips ☺", "empty": "", "x:tag": "<raw>"
            }})
        );
    }

    #[test]
    fn hostile_xml_is_refused() {
        let laughs = r#"<?xml version="1.0"?>
            <!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
            <lolz>&lol2;</lolz>"#;
        assert!(to_json(laughs, 64).is_err());
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(to_json(&deep, 64).unwrap_err().contains("deeper than 64"));
        for bad in ["<a>", "<a></b>", "<a/><b/>", "text", "", "<a x='1' x='2'/>"] {
            assert!(to_json(bad, 64).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_to_xml_rules() {
        let prolog = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
        assert_eq!(
            from_json(&json!({"user": "alice"}), "root").unwrap(),
            format!("{prolog}<user>alice</user>")
        );
        assert_eq!(
            from_json(
                &json!({"a": 1, "b": [true, null], "c": {"@id": 5, "#text": "x<y"}}),
                "root"
            )
            .unwrap(),
            format!(r#"{prolog}<root><a>1</a><b>true</b><b/><c id="5">x&lt;y</c></root>"#)
        );
        assert_eq!(
            from_json(&json!([1, 2]), "list").unwrap(),
            format!("{prolog}<list><item>1</item><item>2</item></list>")
        );
        assert!(
            from_json(&json!({"a b": 1}), "root")
                .unwrap_err()
                .contains("not an XML name")
        );
        // Round trip of what XML → JSON makes.
        let doc = r#"<order id="7"><item sku="a">2</item><item sku="b">1</item></order>"#;
        assert_eq!(
            from_json(&to_json(doc, 64).unwrap(), "root").unwrap(),
            format!("{prolog}{doc}")
        );
    }
}
