//! Deciding, from a loaded ruleset, whether unsolicited incoming traffic is restricted.
//!
//! netfilter runs every base chain registered on the input hook; a packet is dropped when
//! any of them drops it, and an `accept` only ends the chain it is in. So input is
//! restricted for an address family when at least one filter chain on the input hook of
//! that family (or of `inet`, which covers both) ends, for packets no rule picked out, in
//! drop or reject: either its policy is drop, or an unconditional drop/reject rule is
//! reached first. An unconditional `accept` reached first makes that chain accept-all.

use serde::Serialize;

use super::ruleset::{Chain, Rule, Ruleset, Statement};

/// How deep `jump`/`goto` chains are followed; nft itself limits nesting to 16.
const MAX_DEPTH: usize = 16;

/// What one input-hook filter chain does with a packet no rule picked out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputChain {
    /// Address family (`ip`, `ip6`, `inet`).
    pub family: String,
    /// Table name.
    pub table: String,
    /// Chain name.
    pub chain: String,
    /// The chain's policy (`accept` when not set).
    pub policy: String,
    /// Whether the chain drops or rejects what no rule allowed.
    pub restricts: bool,
    /// Why, in words: "policy drop", "catch-all reject rule", "unconditional accept rule", ...
    pub because: String,
}

/// The decision over a whole ruleset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputAssessment {
    /// Every filter chain on the input hook.
    pub chains: Vec<InputChain>,
    /// Whether IPv4 input is restricted.
    pub ipv4_restricted: bool,
    /// Whether IPv6 input is restricted.
    pub ipv6_restricted: bool,
    /// Which frontend wrote the rules, judged from table and chain names.
    pub managed_by: Option<String>,
    /// Number of rules in the ruleset (all tables).
    pub rule_count: usize,
    /// firewalld's zones that the input dispatch chain sends traffic to (from the
    /// `filter_INPUT_ZONES` chain), when firewalld wrote the rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub firewalld_zones: Vec<String>,
    /// Docker's chains, when present. They open, never close: published container ports
    /// are DNATed in `nat/DOCKER` and accepted on the forward hook, so the host's input
    /// chain never sees them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerChains>,
}

/// What Docker's chains do to incoming traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DockerChains {
    /// Rules in the nat `DOCKER` chain that DNAT to a container: ports reachable from
    /// outside whatever the input chain says.
    pub published_ports: usize,
}

enum Flow {
    /// The chain decided: `true` for drop/reject.
    Decided { restricts: bool, because: String },
    /// The end of the chain (or `return`) was reached.
    FallThrough,
}

/// Assesses a loaded ruleset.
pub fn assess(ruleset: &Ruleset) -> InputAssessment {
    let chains: Vec<InputChain> = ruleset
        .chains
        .iter()
        .filter(|c| is_input_filter_chain(c))
        .map(|c| assess_chain(ruleset, c))
        .collect();
    let restricted = |families: &[&str]| {
        chains
            .iter()
            .any(|c| c.restricts && families.contains(&c.family.as_str()))
    };
    InputAssessment {
        ipv4_restricted: restricted(&["ip", "inet"]),
        ipv6_restricted: restricted(&["ip6", "inet"]),
        managed_by: managed_by(ruleset),
        rule_count: ruleset.rules.len(),
        firewalld_zones: firewalld_zones(ruleset),
        docker: docker(ruleset),
        chains,
    }
}

/// The zones firewalld's `filter_INPUT_ZONES` dispatches to (`goto filter_IN_<zone>`).
fn firewalld_zones(ruleset: &Ruleset) -> Vec<String> {
    let mut zones: Vec<String> = ruleset
        .rules
        .iter()
        .filter(|r| r.table == "firewalld" && r.chain == "filter_INPUT_ZONES")
        .flat_map(|r| r.expr.iter())
        .filter_map(|s| match s {
            Statement::Jump(target) | Statement::Goto(target) => {
                target.strip_prefix("filter_IN_").map(str::to_owned)
            }
            _ => None,
        })
        .collect();
    zones.dedup();
    zones
}

fn docker(ruleset: &Ruleset) -> Option<DockerChains> {
    let has_docker = ruleset
        .chains
        .iter()
        .any(|c| c.name == "DOCKER" || c.name == "DOCKER-USER");
    if !has_docker {
        return None;
    }
    let is_dnat = |s: &Statement| match s {
        Statement::Condition(what) => what == "xt target DNAT" || what == "dnat" || what == "nat",
        _ => false,
    };
    let published_ports = ruleset
        .rules
        .iter()
        .filter(|r| r.table == "nat" && r.chain == "DOCKER" && r.expr.iter().any(is_dnat))
        .count();
    Some(DockerChains { published_ports })
}

fn is_input_filter_chain(chain: &Chain) -> bool {
    chain.hook.as_deref() == Some("input")
        && chain.kind.as_deref() == Some("filter")
        && matches!(chain.family.as_str(), "ip" | "ip6" | "inet")
}

fn assess_chain(ruleset: &Ruleset, chain: &Chain) -> InputChain {
    let policy = chain.policy.clone().unwrap_or_else(|| "accept".to_owned());
    let (restricts, because) = match walk(ruleset, chain, &chain.name, 0) {
        Flow::Decided { restricts, because } => (restricts, because),
        Flow::FallThrough => (policy == "drop", format!("policy {policy}")),
    };
    InputChain {
        family: chain.family.clone(),
        table: chain.table.clone(),
        chain: chain.name.clone(),
        policy,
        restricts,
        because,
    }
}

/// Follows the rules of `name` (in the base chain's table) for a packet that matches no
/// conditional rule.
fn walk(ruleset: &Ruleset, base: &Chain, name: &str, depth: usize) -> Flow {
    if depth > MAX_DEPTH {
        return Flow::FallThrough;
    }
    let rules = ruleset
        .rules
        .iter()
        .filter(|r| r.family == base.family && r.table == base.table && r.chain == name);
    for rule in rules {
        match unconditional_verdict(rule) {
            None => continue,
            Some(Statement::Accept) => {
                return decided(false, describe("unconditional accept rule", name, depth))
            }
            Some(Statement::Drop) => {
                return decided(true, describe("catch-all drop rule", name, depth))
            }
            Some(Statement::Reject) => {
                return decided(true, describe("catch-all reject rule", name, depth))
            }
            Some(Statement::Return) => return Flow::FallThrough,
            Some(Statement::Jump(target)) => {
                if let Flow::Decided { restricts, because } =
                    walk(ruleset, base, &target, depth + 1)
                {
                    return Flow::Decided { restricts, because };
                }
            }
            // A goto does not come back: falling off the target ends this chain too.
            Some(Statement::Goto(target)) => return walk(ruleset, base, &target, depth + 1),
            Some(_) => continue,
        }
    }
    Flow::FallThrough
}

fn decided(restricts: bool, because: String) -> Flow {
    Flow::Decided { restricts, because }
}

fn describe(what: &str, chain: &str, depth: usize) -> String {
    if depth == 0 {
        what.to_owned()
    } else {
        format!("{what} in chain {chain}")
    }
}

/// The verdict of a rule that applies to every packet, if it is one: only neutral
/// statements (counters, logging) before the verdict. `None` for conditional rules and
/// rules without a verdict.
fn unconditional_verdict(rule: &Rule) -> Option<Statement> {
    for statement in &rule.expr {
        match statement {
            Statement::Neutral(_) => continue,
            Statement::Condition(_) => return None,
            Statement::Continue => return None,
            verdict => return Some(verdict.clone()),
        }
    }
    None
}

fn managed_by(ruleset: &Ruleset) -> Option<String> {
    let has_chain = |prefix: &str| ruleset.chains.iter().any(|c| c.name.starts_with(prefix));
    if ruleset.tables.iter().any(|(_, name)| name == "firewalld") {
        Some("firewalld".to_owned())
    } else if has_chain("ufw-") || has_chain("ufw6-") {
        Some("ufw".to_owned())
    } else if ruleset.tables.iter().any(|(_, name)| name == "nixos-fw") || has_chain("nixos-fw") {
        Some("nixos".to_owned())
    } else if ruleset.chains.iter().any(is_input_filter_chain) {
        Some("nftables".to_owned())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::ruleset::parse_nft_json;

    fn ruleset(rules: &str) -> Ruleset {
        parse_nft_json(&format!(
            r#"{{"nftables": [
            {{"table": {{"family": "inet", "name": "t"}}}},
            {{"chain": {{"family": "inet", "table": "t", "name": "in", "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}}},
            {{"chain": {{"family": "inet", "table": "t", "name": "sub"}}}},
            {rules}
        ]}}"#
        ))
        .unwrap()
    }

    fn rule(chain: &str, expr: &str) -> String {
        format!(
            r#"{{"rule": {{"family": "inet", "table": "t", "chain": "{chain}", "expr": {expr}}}}}"#
        )
    }

    #[test]
    fn jump_into_chain_with_catch_all_drop_restricts() {
        let r = ruleset(
            &[
                rule("in", r#"[{"jump": {"target": "sub"}}]"#),
                rule("sub", r#"[{"counter": null}, {"drop": null}]"#),
            ]
            .join(","),
        );
        let a = assess(&r);
        assert!(a.ipv4_restricted && a.ipv6_restricted);
        assert_eq!(a.chains[0].because, "catch-all drop rule in chain sub");
    }

    #[test]
    fn return_from_jumped_chain_continues_to_policy() {
        let r = ruleset(
            &[
                rule("in", r#"[{"jump": {"target": "sub"}}]"#),
                rule("sub", r#"[{"return": null}]"#),
                rule("sub", r#"[{"drop": null}]"#),
            ]
            .join(","),
        );
        let a = assess(&r);
        assert!(!a.ipv4_restricted);
        assert_eq!(a.chains[0].because, "policy accept");
    }

    #[test]
    fn conditional_drop_does_not_restrict() {
        let r = ruleset(&rule(
            "in",
            r#"[{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "eth0"}}, {"drop": null}]"#,
        ));
        assert!(!assess(&r).ipv4_restricted);
    }

    #[test]
    fn jump_loop_terminates() {
        let r = ruleset(
            &[
                rule("in", r#"[{"jump": {"target": "sub"}}]"#),
                rule("sub", r#"[{"jump": {"target": "sub"}}]"#),
            ]
            .join(","),
        );
        assert!(!assess(&r).ipv4_restricted);
    }
}
