//! XFCE: xfce4-screensaver's xfconf channel, stored as
//! `xfce-perchannel-xml/xfce4-screensaver.xml` (the user's under `~/.config/xfce4/xfconf`,
//! the system's under `/etc/xdg/xfce4/xfconf`).
//!
//! The XML is read by a deliberately small parser: it only understands the nested
//! `<property name=… type=… value=…>` elements of xfconf's format, caps nesting depth,
//! and treats anything malformed as a reason rather than guessing.
//!
//! Defaults (xfce4-screensaver `gs-prefs.h`): `/saver/enabled=true`,
//! `/saver/idle-activation/enabled=true`, `/saver/idle-activation/delay=5` (minutes),
//! `/lock/enabled=true`, `/lock/saver-activation/enabled=true`,
//! `/lock/saver-activation/delay=0` (minutes after the screensaver starts).

use std::collections::BTreeMap;

use serde_json::json;

use super::LockSettings;
use crate::source::{find_program, read_bytes, read_user_file};
use crate::Context;

const CHANNEL: &str = "xfce-perchannel-xml/xfce4-screensaver.xml";
const MAX_DEPTH: usize = 32;

/// Parses an xfconf channel file into property path -> value (`/lock/enabled` -> `true`).
pub fn parse_channel(xml: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<String> = Vec::new();
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        rest = rest.get(open..).unwrap_or_default();
        if let Some(after) = rest.strip_prefix("<!--") {
            let end = after.find("-->").ok_or("unterminated XML comment")?;
            rest = after.get(end + 3..).unwrap_or_default();
            continue;
        }
        let close = rest.find('>').ok_or("unterminated XML tag")?;
        let tag = rest.get(1..close).unwrap_or_default();
        rest = rest.get(close + 1..).unwrap_or_default();
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            if name.trim() == "property" && stack.pop().is_none() {
                return Err("unbalanced </property>".to_owned());
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.strip_suffix('/').unwrap_or(tag);
        let (element, attributes) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
        if element != "property" {
            continue;
        }
        let attributes = parse_attributes(attributes)?;
        let name = attributes
            .get("name")
            .filter(|n| !n.is_empty() && !n.contains('/'))
            .ok_or("property without a valid name")?;
        let path = format!("{}/{name}", stack.last().map_or("", String::as_str));
        if let Some(value) = attributes.get("value") {
            out.insert(path.clone(), value.clone());
        }
        if !self_closing {
            if stack.len() >= MAX_DEPTH {
                return Err("properties nested too deeply".to_owned());
            }
            stack.push(path);
        }
    }
    Ok(out)
}

/// Parses `key="value"` pairs (double or single quotes) and decodes XML entities.
fn parse_attributes(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or("attribute without a value")?;
        let key = rest.get(..eq).unwrap_or_default().trim().to_owned();
        let after = rest.get(eq + 1..).unwrap_or_default().trim_start();
        let quote = after.chars().next().ok_or("attribute without a value")?;
        if quote != '"' && quote != '\'' {
            return Err("unquoted attribute value".to_owned());
        }
        let body = after.get(1..).unwrap_or_default();
        let end = body.find(quote).ok_or("unterminated attribute value")?;
        out.insert(
            key,
            crate::xml::decode_entities(body.get(..end).unwrap_or_default())?,
        );
        rest = body.get(end + 1..).unwrap_or_default().trim_start();
    }
    Ok(out)
}

/// Turns the merged channel properties into the settings the check evaluates.
pub fn settings(props: &BTreeMap<String, String>) -> Result<LockSettings, String> {
    let boolean = |key: &str, default: bool| match props.get(key).map(String::as_str) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(format!("xfce4-screensaver: {key}={other} is not a boolean")),
    };
    let minutes = |key: &str, default: u64| match props.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("xfce4-screensaver: {key}={v} is not a number")),
    };
    let saver_enabled = boolean("/saver/enabled", true)?;
    let idle_activation = boolean("/saver/idle-activation/enabled", true)?;
    let idle_delay = minutes("/saver/idle-activation/delay", 5)?;
    let lock_enabled = boolean("/lock/enabled", true)?;
    let lock_with_saver = boolean("/lock/saver-activation/enabled", true)?;
    let lock_delay = minutes("/lock/saver-activation/delay", 0)?;
    let locks_on_idle = saver_enabled && idle_activation && lock_with_saver;
    Ok(LockSettings {
        desktop: "xfce",
        lock_enabled,
        lock_after_seconds: locks_on_idle
            .then(|| idle_delay.saturating_add(lock_delay).saturating_mul(60)),
        lock_on_resume: None,
        settings: json!({
            "saver_enabled": saver_enabled,
            "idle_activation_enabled": idle_activation,
            "idle_delay_minutes": idle_delay,
            "lock_enabled": lock_enabled,
            "lock_with_saver_enabled": lock_with_saver,
            "lock_with_saver_delay_minutes": lock_delay,
        }),
    })
}

/// Reads the user's XFCE lock settings.
pub fn read(ctx: &Context, home: &str, sources: &mut Vec<String>) -> Result<LockSettings, String> {
    if find_program(ctx, "xfce4-screensaver").is_none() {
        return Err(
            "xfce4-screensaver is not installed; other XFCE lockers (light-locker, xscreensaver) \
             are not read"
                .to_owned(),
        );
    }
    let mut props = BTreeMap::new();
    // System defaults first, then the user's channel over them.
    let system = format!("/etc/xdg/xfce4/xfconf/{CHANNEL}");
    // The user's channel is the user's file: read without following links, regular files
    // only, size-capped.
    for (path, read) in [
        (system.clone(), read_bytes(ctx, &system)),
        (
            format!("{home}/.config/xfce4/xfconf/{CHANNEL}"),
            read_user_file(ctx, home, &format!(".config/xfce4/xfconf/{CHANNEL}")),
        ),
    ] {
        match read {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                props.extend(parse_channel(&text).map_err(|e| format!("{path}: {e}"))?);
                sources.push(path);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    settings(&props)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_properties_become_paths() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment with <property name="x"/> inside -->
<channel name="xfce4-screensaver" version="1.0">
  <property name="lock" type="empty">
    <property name="enabled" type="bool" value="false"/>
    <property name="saver-activation" type="empty">
      <property name="delay" type="int" value="2"/>
    </property>
  </property>
  <property name="odd" type="string" value="a &amp; &#x41;"/>
</channel>"#;
        let props = parse_channel(xml).unwrap();
        assert_eq!(props["/lock/enabled"], "false");
        assert_eq!(props["/lock/saver-activation/delay"], "2");
        assert_eq!(props["/odd"], "a & A");
        assert_eq!(props.len(), 3);
    }

    #[test]
    fn malformed_xml_is_an_error() {
        assert!(parse_channel("<property name=\"a\" value=\"1\"").is_err());
        assert!(parse_channel("</property>").is_err());
        assert!(parse_channel("<property value=\"1\"/>").is_err());
        assert!(parse_channel("<property name=\"a\" value=\"&bogus;\"/>").is_err());
        assert!(parse_channel("<!-- never closed").is_err());
    }
}
