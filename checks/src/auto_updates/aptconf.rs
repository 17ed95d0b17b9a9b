//! apt.conf(5) syntax, enough to read `APT::Periodic::*`: `//`, `/* */` and `#` comments,
//! `A::B "v";` and nested `A { B "v"; };` scopes, `#clear`, list items, case-insensitive
//! names; later assignments override earlier ones.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Str(String),
    Open,
    Close,
    Semi,
    Clear,
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut line_start = true;
    while let Some(&c) = chars.get(i) {
        match c {
            '\n' => {
                line_start = true;
                i += 1;
                continue;
            }
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '/' if chars.get(i + 1) == Some(&'/') => {
                while chars.get(i).is_some_and(|c| *c != '\n') {
                    i += 1;
                }
                continue;
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
                continue;
            }
            '#' if line_start => {
                let end = chars[i..]
                    .iter()
                    .position(|c| *c == '\n')
                    .map_or(chars.len(), |p| i + p);
                let line: String = chars[i..end].iter().collect();
                if let Some(rest) = line.strip_prefix("#clear") {
                    tokens.push(Token::Clear);
                    for name in rest.split([' ', '\t', ';']).filter(|s| !s.is_empty()) {
                        tokens.push(Token::Word(name.to_owned()));
                    }
                    tokens.push(Token::Semi);
                }
                // `#include` would need another file read; posture does not follow it.
                i = end;
                continue;
            }
            '"' => {
                let mut value = String::new();
                i += 1;
                while let Some(&c) = chars.get(i) {
                    i += 1;
                    if c == '"' {
                        break;
                    }
                    value.push(c);
                }
                tokens.push(Token::Str(value));
            }
            '{' => {
                tokens.push(Token::Open);
                i += 1;
            }
            '}' => {
                tokens.push(Token::Close);
                i += 1;
            }
            ';' => {
                tokens.push(Token::Semi);
                i += 1;
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.get(i) {
                    if c.is_whitespace() || matches!(c, '{' | '}' | ';' | '"') {
                        break;
                    }
                    if c == '/' && matches!(chars.get(i + 1), Some('/') | Some('*')) {
                        break;
                    }
                    word.push(c);
                    i += 1;
                }
                tokens.push(Token::Word(word));
            }
        }
        line_start = false;
    }
    tokens
}

/// Applies one file's assignments to `config` (keys lowercased, `::`-joined).
pub fn apply(config: &mut BTreeMap<String, String>, text: &str) {
    let mut scope: Vec<String> = Vec::new();
    let mut tokens = tokenize(text).into_iter().peekable();
    let full = |scope: &[String], name: &str| {
        let mut parts = scope.to_vec();
        parts.push(name.trim_end_matches("::").to_ascii_lowercase());
        parts.join("::")
    };
    while let Some(token) = tokens.next() {
        match token {
            Token::Close => {
                scope.pop();
            }
            Token::Clear => {
                while let Some(Token::Word(name)) = tokens.peek().cloned() {
                    tokens.next();
                    let key = full(&scope, &name);
                    let prefix = format!("{key}::");
                    config.retain(|k, _| *k != key && !k.starts_with(&prefix));
                }
            }
            Token::Word(name) => match tokens.peek().cloned() {
                Some(Token::Open) => {
                    tokens.next();
                    scope.push(name.trim_end_matches("::").to_ascii_lowercase());
                }
                Some(Token::Str(value)) | Some(Token::Word(value)) => {
                    tokens.next();
                    config.insert(full(&scope, &name), value);
                }
                _ => {
                    config.insert(full(&scope, &name), String::new());
                }
            },
            // List items (`{ "a"; "b"; }`) and stray separators carry no named value.
            Token::Str(_) | Token::Open | Token::Semi => {}
        }
    }
}

/// Whether apt reads a file in `apt.conf.d`: only letters, digits, `_`, `-` and `.`, and
/// no extension other than `.conf` (apt silently skips `.dpkg-old`, `.disabled`, ...).
pub fn is_config_part(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && (!name.contains('.') || name.ends_with(".conf"))
}

/// An `APT::Periodic` interval value: enabled when a positive number of days or `always`.
pub fn periodic_enabled(value: Option<&str>) -> bool {
    match value.map(str::trim) {
        Some(v) if v.eq_ignore_ascii_case("always") => true,
        Some(v) => v.parse::<f64>().is_ok_and(|d| d > 0.0),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(texts: &[&str]) -> BTreeMap<String, String> {
        let mut config = BTreeMap::new();
        for t in texts {
            apply(&mut config, t);
        }
        config
    }

    #[test]
    fn flat_nested_and_comments() {
        let c = parse(&[
            "// 20auto-upgrades\nAPT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\"; // on\n",
            "/* block\n APT::Periodic::Unattended-Upgrade \"0\"; */\n# APT::Periodic::Update-Package-Lists \"0\";\nAPT { Periodic { AutocleanInterval \"7\"; }; };\n",
        ]);
        assert_eq!(c["apt::periodic::unattended-upgrade"], "1");
        assert_eq!(c["apt::periodic::update-package-lists"], "1");
        assert_eq!(c["apt::periodic::autocleaninterval"], "7");
    }

    #[test]
    fn later_files_override_and_clear() {
        let c = parse(&[
            "APT::Periodic::Unattended-Upgrade \"1\";",
            "apt::periodic::unattended-upgrade \"0\";",
        ]);
        assert_eq!(c["apt::periodic::unattended-upgrade"], "0");
        let c = parse(&[
            "APT::Periodic::Unattended-Upgrade \"1\";",
            "#clear APT::Periodic;\n",
        ]);
        assert!(!c.contains_key("apt::periodic::unattended-upgrade"));
    }

    #[test]
    fn lists_and_urls_in_values() {
        let c = parse(&[
            "Unattended-Upgrade::Origins-Pattern {\n  \"origin=Debian,codename=${distro_codename},label=Debian-Security\";\n};\nAcquire::http::Proxy \"http://proxy:3128/\";\n",
        ]);
        assert_eq!(c["acquire::http::proxy"], "http://proxy:3128/");
    }

    #[test]
    fn file_names_apt_reads() {
        assert!(is_config_part("20auto-upgrades"));
        assert!(is_config_part("99local.conf"));
        assert!(!is_config_part("20auto-upgrades.dpkg-old"));
        assert!(!is_config_part("50unattended-upgrades.ucf-dist"));
        assert!(!is_config_part("with space"));
    }

    #[test]
    fn periodic_values() {
        assert!(periodic_enabled(Some("1")));
        assert!(periodic_enabled(Some("always")));
        assert!(!periodic_enabled(Some("0")));
        assert!(!periodic_enabled(None));
    }
}
