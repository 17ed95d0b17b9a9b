//! The loaded ruleset as typed data: nftables' JSON (`nft -j list ruleset`, libnftables-json(5))
//! and the same model built from `iptables-save` text.
//!
//! Only what the input-policy decision needs is typed (tables, chains, rules and the kind of
//! each rule statement); every other object and statement is kept as its name, so a ruleset
//! using features we do not model still parses.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

/// A parsed ruleset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// nft's version from the `metainfo` object, when the input was nft JSON.
    pub nft_version: Option<String>,
    /// Every chain, base chains and regular chains.
    pub chains: Vec<Chain>,
    /// Every rule, in the order nft lists them (which is evaluation order within a chain).
    pub rules: Vec<Rule>,
    /// Table names as (family, name).
    pub tables: Vec<(String, String)>,
}

/// A chain. Base chains have a type, hook and (usually) a policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Chain {
    /// Address family: `ip`, `ip6`, `inet`, `arp`, `bridge`, `netdev`.
    pub family: String,
    /// The table the chain is in.
    pub table: String,
    /// The chain's name.
    pub name: String,
    /// `filter`, `nat` or `route` for a base chain.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The netfilter hook of a base chain: `input`, `forward`, `output`, ...
    #[serde(default)]
    pub hook: Option<String>,
    /// `accept` or `drop` for a base chain (nft's default is accept).
    #[serde(default)]
    pub policy: Option<String>,
}

/// A rule: a list of statements evaluated left to right.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Rule {
    /// Address family of its table.
    pub family: String,
    /// The table.
    pub table: String,
    /// The chain it is in.
    pub chain: String,
    /// Its statements.
    #[serde(default)]
    pub expr: Vec<Statement>,
}

/// One rule statement, reduced to what matters for the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `reject` (any flavour).
    Reject,
    /// `return`.
    Return,
    /// `continue`.
    Continue,
    /// `jump CHAIN`.
    Jump(String),
    /// `goto CHAIN`.
    Goto(String),
    /// A statement that neither matches nor decides: `counter`, `log`, an iptables LOG target.
    Neutral(String),
    /// Anything that only applies to some packets (a `match`, an iptables match, `limit`, ...)
    /// or that we do not model; it makes the rule conditional.
    Condition(String),
}

impl<'de> Deserialize<'de> for Statement {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(StatementVisitor)
    }
}

#[derive(Deserialize)]
struct Target {
    target: String,
}

/// An `xt` statement: an iptables match or target nft could not translate (iptables-nft).
#[derive(Deserialize)]
struct Xt {
    #[serde(rename = "type")]
    kind: String,
    name: String,
}

struct StatementVisitor;

impl<'de> Visitor<'de> for StatementVisitor {
    type Value = Statement;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an nft statement object with one key")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Statement, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom("empty statement object"));
        };
        let statement = match key.as_str() {
            "accept" => skip(&mut map, Statement::Accept)?,
            "drop" => skip(&mut map, Statement::Drop)?,
            "reject" => skip(&mut map, Statement::Reject)?,
            "return" => skip(&mut map, Statement::Return)?,
            "continue" => skip(&mut map, Statement::Continue)?,
            "jump" => Statement::Jump(map.next_value::<Target>()?.target),
            "goto" => Statement::Goto(map.next_value::<Target>()?.target),
            "counter" | "log" => skip(&mut map, Statement::Neutral(key))?,
            "xt" => {
                let xt: Xt = map.next_value()?;
                xt_statement(&xt.kind, &xt.name)
            }
            _ => skip(&mut map, Statement::Condition(key))?,
        };
        // A statement object has exactly one key; tolerate (and ignore) more.
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(statement)
    }
}

fn skip<'de, A: MapAccess<'de>>(map: &mut A, statement: Statement) -> Result<Statement, A::Error> {
    map.next_value::<IgnoredAny>()?;
    Ok(statement)
}

/// An iptables target or match as nft shows it when it has no native translation.
pub(crate) fn xt_statement(kind: &str, name: &str) -> Statement {
    match (kind, name) {
        ("target", "REJECT") => Statement::Reject,
        ("target", "DROP") => Statement::Drop,
        ("target", "ACCEPT") => Statement::Accept,
        ("target", "LOG" | "NFLOG") => Statement::Neutral(format!("xt {name}")),
        _ => Statement::Condition(format!("xt {kind} {name}")),
    }
}

/// nft's JSON document: `{"nftables": [ {"metainfo": ...}, {"table": ...}, ... ]}`.
#[derive(Deserialize)]
struct Document {
    nftables: Vec<Object>,
}

enum Object {
    Metainfo(Metainfo),
    Table(Table),
    Chain(Chain),
    Rule(Rule),
    Other,
}

#[derive(Deserialize)]
struct Metainfo {
    #[serde(default)]
    version: Option<String>,
}

#[derive(Deserialize)]
struct Table {
    family: String,
    name: String,
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Object;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an nft object with one key")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::custom("empty nftables object"));
                };
                let object = match key.as_str() {
                    "metainfo" => Object::Metainfo(map.next_value()?),
                    "table" => Object::Table(map.next_value()?),
                    "chain" => Object::Chain(map.next_value()?),
                    "rule" => Object::Rule(map.next_value()?),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                        Object::Other
                    }
                };
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(object)
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Why a ruleset could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum RulesetError {
    /// nft's JSON did not have the documented shape.
    #[error("cannot parse `nft -j list ruleset` output: {0}")]
    Json(#[from] serde_json::Error),
}

/// Parses the output of `nft -j list ruleset`.
pub fn parse_nft_json(text: &str) -> Result<Ruleset, RulesetError> {
    let document: Document = serde_json::from_str(text)?;
    let mut ruleset = Ruleset::default();
    for object in document.nftables {
        match object {
            Object::Metainfo(meta) => ruleset.nft_version = meta.version,
            Object::Table(table) => ruleset.tables.push((table.family, table.name)),
            Object::Chain(chain) => ruleset.chains.push(chain),
            Object::Rule(rule) => ruleset.rules.push(rule),
            Object::Other => {}
        }
    }
    Ok(ruleset)
}

/// Builds the model from `iptables-save` (family `ip`) or `ip6tables-save` (family `ip6`)
/// output, as used where nft is not installed (iptables-legacy). Only the `filter` table
/// matters for the input policy; built-in chains become base chains on their hook.
pub fn parse_iptables_save(text: &str, family: &str) -> Ruleset {
    let mut ruleset = Ruleset::default();
    let mut table = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('*') {
            table = name.to_owned();
            ruleset.tables.push((family.to_owned(), table.clone()));
        } else if let Some(rest) = line.strip_prefix(':') {
            // ":INPUT DROP [0:0]" for a built-in chain, ":name - [0:0]" for a user chain.
            let mut parts = rest.split_whitespace();
            let name = parts.next().unwrap_or_default().to_owned();
            let policy = parts.next().filter(|p| *p != "-").map(str::to_lowercase);
            let hook = builtin_hook(&name);
            ruleset.chains.push(Chain {
                family: family.to_owned(),
                table: table.clone(),
                kind: hook.map(|_| table_kind(&table).to_owned()),
                hook: hook.map(str::to_owned),
                policy,
                name,
            });
        } else if let Some(rest) = line.strip_prefix("-A ") {
            let words = split_words(rest);
            let Some((chain, args)) = words.split_first() else {
                continue;
            };
            ruleset.rules.push(Rule {
                family: family.to_owned(),
                table: table.clone(),
                chain: chain.clone(),
                expr: iptables_statements(args),
            });
        }
    }
    ruleset
}

fn builtin_hook(chain: &str) -> Option<&'static str> {
    match chain {
        "INPUT" => Some("input"),
        "OUTPUT" => Some("output"),
        "FORWARD" => Some("forward"),
        "PREROUTING" => Some("prerouting"),
        "POSTROUTING" => Some("postrouting"),
        _ => None,
    }
}

fn table_kind(table: &str) -> &'static str {
    match table {
        "nat" => "nat",
        "mangle" => "route",
        _ => "filter",
    }
}

/// Turns the arguments of one `-A CHAIN ...` line into statements: every option except a
/// comment is a condition; the `-j`/`-g` target decides.
fn iptables_statements(args: &[String]) -> Vec<Statement> {
    let mut statements = Vec::new();
    let mut target = None;
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        match arg.as_str() {
            "-j" | "--jump" => {
                target = args.get(i + 1).map(|t| (false, t.clone()));
                // Target options (--reject-with, --log-prefix) follow; none is a condition.
                break;
            }
            "-g" | "--goto" => {
                target = args.get(i + 1).map(|t| (true, t.clone()));
                break;
            }
            "-m" if args.get(i + 1).map(String::as_str) == Some("comment") => {
                // "-m comment --comment TEXT"
                i += 4;
                continue;
            }
            option if option.starts_with('-') => {
                statements.push(Statement::Condition(option.to_owned()));
            }
            _ => {}
        }
        i += 1;
    }
    if let Some((goto, name)) = target {
        statements.push(match name.as_str() {
            "ACCEPT" => Statement::Accept,
            "DROP" => Statement::Drop,
            "REJECT" => Statement::Reject,
            "RETURN" => Statement::Return,
            "LOG" | "NFLOG" => Statement::Neutral(name),
            _ if goto => Statement::Goto(name),
            _ if name.chars().all(|c| c.is_ascii_uppercase()) => {
                // Other built-in targets (MASQUERADE, MARK, ...) do not decide input filtering.
                Statement::Neutral(name)
            }
            _ => Statement::Jump(name),
        });
    }
    statements
}

/// Splits an iptables-save line into words; double quotes group (and `\"` escapes).
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_quotes = false;
    let mut has_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_quotes => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            '"' => {
                in_quotes = !in_quotes;
                has_word = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if has_word {
                    words.push(std::mem::take(&mut word));
                    has_word = false;
                }
            }
            c => {
                word.push(c);
                has_word = true;
            }
        }
    }
    if has_word {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_objects_and_statements_are_tolerated() {
        let text = r#"{"nftables": [
            {"metainfo": {"version": "1.0.9", "json_schema_version": 1}},
            {"set": {"family": "inet", "table": "t", "name": "s", "type": "ipv4_addr"}},
            {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 4,
                "expr": [{"quota": {"val": 1}}, {"counter": null}, {"reject": {"type": "tcp reset"}}]}}
        ]}"#;
        let ruleset = parse_nft_json(text).unwrap();
        assert_eq!(ruleset.nft_version.as_deref(), Some("1.0.9"));
        assert_eq!(
            ruleset.rules[0].expr,
            vec![
                Statement::Condition("quota".into()),
                Statement::Neutral("counter".into()),
                Statement::Reject
            ]
        );
    }

    #[test]
    fn not_nft_json_is_an_error() {
        assert!(parse_nft_json("Error: Operation not permitted").is_err());
        assert!(parse_nft_json(r#"{"nftables": [{}]}"#).is_err());
    }

    #[test]
    fn iptables_words_respect_quotes() {
        assert_eq!(
            split_words(r#"INPUT -m comment --comment "allow \"ssh\" in" -j ACCEPT"#),
            vec![
                "INPUT",
                "-m",
                "comment",
                "--comment",
                "allow \"ssh\" in",
                "-j",
                "ACCEPT"
            ]
        );
    }

    #[test]
    fn iptables_comment_is_not_a_condition() {
        let ruleset = parse_iptables_save(
            "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment \"catch all\" -j DROP\nCOMMIT\n",
            "ip",
        );
        assert_eq!(ruleset.rules[0].expr, vec![Statement::Drop]);
        assert_eq!(ruleset.chains[0].hook.as_deref(), Some("input"));
        assert_eq!(ruleset.chains[0].policy.as_deref(), Some("accept"));
    }
}
