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

/// Reads the text forms in which Windows outputs are usually published: PowerShell's
/// `Format-List` view (`Name : Value` lines, one record per blank-line-separated block;
/// the default view of `Get-CimInstance`, `Get-ItemProperty`, `Get-NetFirewallProfile`)
/// and `wmic ... get /format:list` (`Name=Value` lines). Each record becomes an object
/// of strings, the whole an array, so the JSON parsers of the checks read a published
/// capture as they read `ConvertTo-Json`: enum names and `True`/`False` are strings
/// there too (`ConvertTo-Json` writes the numbers), and [`uint`] / [`boolean`] accept
/// both. A value that `Format-List` wrapped onto an indented next line is joined back.
/// Lines that are neither (a prompt, a header) are skipped.
pub fn from_list_text(text: &str) -> Value {
    let mut records: Vec<serde_json::Map<String, Value>> = Vec::new();
    let mut current = serde_json::Map::new();
    // The previous name and the column its value started at: Format-List indents a
    // wrapped value's continuation to that column.
    let mut last: Option<(String, usize)> = None;
    for raw in text.lines() {
        let line = raw.trim_end();
        if line.trim().is_empty() {
            if !current.is_empty() {
                records.push(std::mem::take(&mut current));
            }
            last = None;
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if let Some((key, column)) = &last {
            if indent >= *column && *column > 0 {
                if let Some(Value::String(v)) = current.get_mut(key) {
                    v.push_str(line.trim());
                }
                continue;
            }
        }
        if let Some((key, value, column)) = list_line(line) {
            if current.contains_key(&key) {
                // A repeated name without a blank line between: a new record.
                records.push(std::mem::take(&mut current));
            }
            current.insert(key.clone(), Value::String(value));
            last = Some((key, column));
        } else {
            last = None;
        }
    }
    if !current.is_empty() {
        records.push(current);
    }
    Value::Array(records.into_iter().map(Value::Object).collect())
}

/// `Name : Value` (Format-List) or `Name=Value` (wmic), with the column the value starts
/// at for Format-List (0 for wmic, which does not wrap); the name is one word.
fn list_line(line: &str) -> Option<(String, String, usize)> {
    let trimmed = line.trim_start();
    let (key, value, column) = match trimmed.split_once(" :") {
        Some((k, v)) if !k.trim().contains(' ') && (v.is_empty() || v.starts_with(' ')) => {
            // The value starts after " : " (name, padding, colon, one space).
            let column = line.len() - v.len() + 1;
            (k.trim(), v.trim(), column)
        }
        _ => {
            let (k, v) = trimmed.split_once('=')?;
            (k, v.trim(), 0)
        }
    };
    let word = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    word.then(|| (key.to_owned(), value.to_owned(), column))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_list_and_wmic_list() {
        let fl = "\nName        : Domain\nEnabled     : True\nLogFileName : %systemroot%\\pf\n              irewall.log\n__PATH      : \\\\H\\root:Win32_X.D\n              eviceID=\"x\"\n\nName        : Private\nEnabled     : False\n";
        let v = from_list_text(fl);
        assert_eq!(list(&v).len(), 2);
        assert_eq!(boolean(list(&v)[0], "Enabled"), Some(true));
        assert_eq!(
            text(list(&v)[0], "LogFileName").as_deref(),
            Some("%systemroot%\\pfirewall.log")
        );
        assert_eq!(
            text(list(&v)[0], "__PATH").as_deref(),
            Some("\\\\H\\root:Win32_X.DeviceID=\"x\"")
        );
        assert!(list(&v)[0].get("eviceID").is_none());
        assert_eq!(boolean(list(&v)[1], "Enabled"), Some(false));
        let wmic = "displayName=Windows Defender\r\nproductState=397568\r\n\r\n\r\n";
        let w = from_list_text(wmic);
        assert_eq!(uint(list(&w)[0], "productState"), Some(397_568));
        // A prompt line is not a record.
        assert!(list(&from_list_text("PS C:\\> Get-Thing\n")).is_empty());
        // Empty values stay (as empty strings).
        let e = from_list_text("RegisteredOrganization    :\nUBR : 1\n");
        assert_eq!(
            text(list(&e)[0], "RegisteredOrganization").as_deref(),
            Some("")
        );
    }
}
