//! A small reader of Apple XML property lists (`plist` 1.0), the form macOS keeps its
//! version, update and security settings in (`SystemVersion.plist`, `XProtect.bundle`'s
//! `Info.plist`, `com.apple.SoftwareUpdate.plist`, managed preferences).
//!
//! Binary plists are not read here: on macOS the source glue converts them first with
//! `plutil -convert xml1 -o - FILE` (part of every macOS), so this parser stays pure, small
//! and testable on Linux. Why not the `plist` crate: it would add an XML parser, base64,
//! `time` and `indexmap` for the dozen keys posture reads; this file is under 300 lines.
//!
//! Values come out as [`serde_json::Value`]: `<integer>` and `<real>` as numbers,
//! `<true/>`/`<false/>` as booleans, `<string>`, `<date>` and `<data>` as strings (dates in
//! their ISO 8601 text, data as its base64 text), `<array>` and `<dict>` as arrays and
//! objects.

use serde_json::{Map, Number, Value};

/// Nesting deeper than this is refused (the plists posture reads are 3-4 levels deep).
const MAX_DEPTH: usize = 64;

/// Why a plist could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a readable XML property list: {0}")]
pub struct PlistError(pub String);

fn err<T>(why: impl Into<String>) -> Result<T, PlistError> {
    Err(PlistError(why.into()))
}

/// Parses an XML property list document into its root value.
pub fn parse(text: &str) -> Result<Value, PlistError> {
    let mut reader = Reader { rest: text };
    reader.skip_prolog()?;
    let root = match reader.next_tag()? {
        Some(Tag::Open("plist")) => {
            let value = reader.value(0)?;
            match reader.next_tag()? {
                Some(Tag::Close("plist")) => value,
                other => return err(format!("expected </plist>, found {other:?}")),
            }
        }
        Some(Tag::Empty("plist")) => return err("empty <plist/>"),
        other => return err(format!("expected <plist>, found {other:?}")),
    };
    Ok(root)
}

#[derive(Debug, PartialEq, Eq)]
enum Tag<'a> {
    Open(&'a str),
    Close(&'a str),
    Empty(&'a str),
}

struct Reader<'a> {
    rest: &'a str,
}

impl<'a> Reader<'a> {
    /// Skips the XML declaration, the DOCTYPE, comments and whitespace before the root.
    fn skip_prolog(&mut self) -> Result<(), PlistError> {
        loop {
            self.rest = self
                .rest
                .trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
            if self.rest.starts_with("<?") {
                self.skip_past("?>")?;
            } else if self.rest.starts_with("<!--") {
                self.skip_past("-->")?;
            } else if self.rest.starts_with("<!") {
                self.skip_past(">")?;
            } else {
                return Ok(());
            }
        }
    }

    fn skip_past(&mut self, end: &str) -> Result<(), PlistError> {
        match self.rest.find(end) {
            Some(at) => {
                self.rest = &self.rest[at + end.len()..];
                Ok(())
            }
            None => err(format!("unterminated markup (no `{end}`)")),
        }
    }

    /// The next tag, skipping whitespace and comments; text between tags is an error.
    fn next_tag(&mut self) -> Result<Option<Tag<'a>>, PlistError> {
        loop {
            self.rest = self.rest.trim_start();
            if self.rest.is_empty() {
                return Ok(None);
            }
            if self.rest.starts_with("<!--") {
                self.skip_past("-->")?;
                continue;
            }
            if !self.rest.starts_with('<') {
                let snippet: String = self.rest.chars().take(20).collect();
                return err(format!("unexpected text `{snippet}`"));
            }
            let Some(end) = self.rest.find('>') else {
                return err("unterminated tag");
            };
            let inner = &self.rest[1..end];
            self.rest = &self.rest[end + 1..];
            let tag = if let Some(name) = inner.strip_prefix('/') {
                Tag::Close(name.trim())
            } else if let Some(body) = inner.strip_suffix('/') {
                Tag::Empty(tag_name(body))
            } else {
                Tag::Open(tag_name(inner))
            };
            return Ok(Some(tag));
        }
    }

    /// The raw text up to `</name>`, consumed with the closing tag.
    fn text_until_close(&mut self, name: &str) -> Result<String, PlistError> {
        let close = format!("</{name}>");
        let Some(at) = self.rest.find(&close) else {
            return err(format!("no {close}"));
        };
        let raw = &self.rest[..at];
        self.rest = &self.rest[at + close.len()..];
        if raw.contains('<') {
            return err(format!("markup inside <{name}>"));
        }
        crate::xml::decode_entities(raw).map_err(PlistError)
    }

    /// One value, starting at its opening tag.
    fn value(&mut self, depth: usize) -> Result<Value, PlistError> {
        match self.next_tag()? {
            Some(tag) => self.value_from(tag, depth),
            None => err("expected a value, found the end"),
        }
    }

    fn value_from(&mut self, tag: Tag<'a>, depth: usize) -> Result<Value, PlistError> {
        if depth > MAX_DEPTH {
            return err("nested too deeply");
        }
        match tag {
            Tag::Empty("true") => Ok(Value::Bool(true)),
            Tag::Empty("false") => Ok(Value::Bool(false)),
            Tag::Empty("dict") => Ok(Value::Object(Map::new())),
            Tag::Empty("array") => Ok(Value::Array(Vec::new())),
            Tag::Empty("string") | Tag::Empty("data") => Ok(Value::String(String::new())),
            Tag::Open(name @ ("string" | "date")) => {
                Ok(Value::String(self.text_until_close(name)?))
            }
            Tag::Open("data") => {
                let text = self.text_until_close("data")?;
                Ok(Value::String(text.split_whitespace().collect()))
            }
            Tag::Open("integer") => {
                let text = self.text_until_close("integer")?;
                let text = text.trim();
                if let Ok(n) = text.parse::<i64>() {
                    Ok(Value::Number(n.into()))
                } else if let Ok(n) = text.parse::<u64>() {
                    Ok(Value::Number(n.into()))
                } else {
                    err(format!("bad <integer> `{text}`"))
                }
            }
            Tag::Open("real") => {
                let text = self.text_until_close("real")?;
                text.trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| PlistError(format!("bad <real> `{}`", text.trim())))
            }
            Tag::Open("array") => {
                let mut items = Vec::new();
                loop {
                    match self.next_tag()? {
                        Some(Tag::Close("array")) => return Ok(Value::Array(items)),
                        Some(tag) => items.push(self.value_from(tag, depth + 1)?),
                        None => return err("unterminated <array>"),
                    }
                }
            }
            Tag::Open("dict") => {
                let mut map = Map::new();
                loop {
                    match self.next_tag()? {
                        Some(Tag::Close("dict")) => return Ok(Value::Object(map)),
                        Some(Tag::Open("key")) => {
                            let key = self.text_until_close("key")?;
                            let value = self.value(depth + 1)?;
                            map.insert(key, value);
                        }
                        Some(Tag::Empty("key")) => {
                            let value = self.value(depth + 1)?;
                            map.insert(String::new(), value);
                        }
                        other => return err(format!("expected <key> in <dict>, found {other:?}")),
                    }
                }
            }
            other => err(format!("unexpected {other:?}")),
        }
    }
}

fn tag_name(inner: &str) -> &str {
    inner.split_whitespace().next().unwrap_or("")
}

/// A boolean setting as macOS `defaults` writes it: a `<true/>`/`<false/>`, or an
/// integer 0/1 (older tools and some profiles write integers), or the strings
/// `YES`/`NO`/`true`/`false`/`1`/`0`.
pub fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" | "1" => Some(true),
            "no" | "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// An integer setting (an `<integer>`, or a `<real>` or string holding one).
pub fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_type() {
        let text = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<!-- a comment -->
	<key>s</key>
	<string>a &amp; b &lt;c&gt; &#233;</string>
	<key>i</key>
	<integer>-3</integer>
	<key>r</key>
	<real>1.5</real>
	<key>t</key>
	<true/>
	<key>f</key>
	<false/>
	<key>d</key>
	<date>2024-01-02T03:04:05Z</date>
	<key>b</key>
	<data>
	AAEC
	Aw==
	</data>
	<key>a</key>
	<array>
		<string>x</string>
		<dict/>
		<array/>
		<string/>
	</array>
</dict>
</plist>
"#;
        let v = parse(text).unwrap();
        assert_eq!(v["s"], "a & b <c> é");
        assert_eq!(v["i"], -3);
        assert_eq!(v["r"], 1.5);
        assert_eq!(v["t"], true);
        assert_eq!(v["f"], false);
        assert_eq!(v["d"], "2024-01-02T03:04:05Z");
        assert_eq!(v["b"], "AAECAw==");
        assert_eq!(v["a"], serde_json::json!(["x", {}, [], ""]));
    }

    #[test]
    fn refuses_broken_documents() {
        for bad in [
            "",
            "bplist00\u{0}\u{1}",
            "<plist version=\"1.0\"><dict><key>a</key></dict></plist>",
            "<plist><dict><key>a</key><string>x</dict></plist>",
            "<plist><integer>12x</integer></plist>",
            "<plist><string>&bogus;</string></plist>",
            "<plist><dict><string>no key</string></dict></plist>",
            "<plist><array><string>x</string>",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = format!(
            "<plist>{}{}</plist>",
            "<array>".repeat(10_000),
            "</array>".repeat(10_000)
        );
        assert!(parse(&text).is_err());
    }

    #[test]
    fn booleans_as_defaults_writes_them() {
        assert_eq!(as_bool(&Value::Bool(true)), Some(true));
        assert_eq!(as_bool(&serde_json::json!(0)), Some(false));
        assert_eq!(as_bool(&serde_json::json!("YES")), Some(true));
        assert_eq!(as_bool(&serde_json::json!("maybe")), None);
        assert_eq!(as_i64(&serde_json::json!("300")), Some(300));
    }
}
