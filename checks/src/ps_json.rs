//! Reading the JSON that Windows PowerShell's `ConvertTo-Json` writes (pure; every OS).
//!
//! Its quirks, handled once here: a pipeline of one object is written as that object, not
//! a one-element array; nothing at all is written as nothing (read as `null`); enums are
//! numbers unless the script turns them into strings; booleans from the registry are
//! numbers.

use serde_json::Value;

/// The items of a pipeline result: an array's elements, a single object, or none.
pub fn list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// A field as an unsigned number (a JSON number or a decimal string).
pub fn uint(value: &Value, key: &str) -> Option<u64> {
    match value.get(key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A field as a string (numbers are written out).
pub fn text(value: &Value, key: &str) -> Option<String> {
    match value.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A field as a boolean: `true`/`false`, `"True"`/`"False"`, or 1/0.
pub fn boolean(value: &Value, key: &str) -> Option<bool> {
    match value.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_u64().map(|n| n != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}
