//! The loaded nftables ruleset read straight from the kernel over netlink
//! (`NETLINK_NETFILTER`, subsystem `NFNL_SUBSYS_NFTABLES`): the same dumps `nft list
//! ruleset` asks for (tables, chains, rules), with no `nft` binary and no subprocess, so the
//! check also works on minimal installs that ship neither `nft` nor `iptables-save`.
//!
//! Reading ([`dump`], Linux only) returns the kernel's reply bytes unchanged — a sequence of
//! netlink messages — and parsing ([`parse_dump`]) turns them into the same [`Ruleset`]
//! model the JSON and iptables-save parsers build, so [`assess`](super::assess()) is shared.
//! Message decoding is done by `netlink-packet-netfilter` (rust-netlink); this module only
//! maps the decoded objects to the model. Dumps captured from real rulesets are the test
//! fixtures (`tests/fixtures/firewall/*.nlmsg`).

use netlink_packet_core::{NetlinkBuffer, NetlinkMessage, NetlinkPayload, Nla, Parseable};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, DataAttribute, ExpressionAttribute, Expressions, Hook, HookNumber, Immediate,
    InetHookNumber, ListAttribute, NfTablesMessage, RuleAttribute, TableAttribute, Verdict,
    VerdictAttribute,
};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};

use super::ruleset::{xt_statement, Chain, Rule, Ruleset, Statement};

/// Why a netlink dump could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The kernel answered a dump request with an error (`errno`, positive).
    #[error("the kernel refused the nftables dump: {}", std::io::Error::from_raw_os_error(*.0))]
    Kernel(i32),
    /// A message did not decode.
    #[error("cannot decode an nftables netlink message: {0}")]
    Decode(String),
    /// The socket could not be used.
    #[error("nftables netlink socket: {0}")]
    Io(#[from] std::io::Error),
    /// The ruleset kept changing while it was dumped.
    #[error("the nftables ruleset changed during every attempt to read it")]
    Unstable,
}

impl NetlinkError {
    /// Whether the kernel (or socket) said the caller lacks privilege (EPERM/EACCES).
    pub fn is_permission(&self) -> bool {
        const EPERM: i32 = 1;
        const EACCES: i32 = 13;
        match self {
            NetlinkError::Kernel(errno) => *errno == EPERM || *errno == EACCES,
            NetlinkError::Io(e) => e.kind() == std::io::ErrorKind::PermissionDenied,
            _ => false,
        }
    }
}

/// Parses a sequence of netlink messages (the replies to the table, chain and rule dumps,
/// concatenated) into the ruleset model. Objects of other kinds, `NLMSG_DONE` and padding
/// are skipped; an `NLMSG_ERROR` with a non-zero code is an error.
pub fn parse_dump(bytes: &[u8]) -> Result<Ruleset, NetlinkError> {
    let mut ruleset = Ruleset::default();
    let mut offset = 0;
    while offset + 16 <= bytes.len() {
        let rest = &bytes[offset..];
        let buffer = NetlinkBuffer::new_checked(&rest)
            .map_err(|e| NetlinkError::Decode(format!("at byte {offset}: {e}")))?;
        let length = buffer.length() as usize;
        if length < 16 {
            return Err(NetlinkError::Decode(format!(
                "message of {length} bytes at byte {offset}"
            )));
        }
        let message = decode(&buffer, offset)?;
        match message.payload {
            NetlinkPayload::InnerMessage(inner) => add_object(&mut ruleset, inner),
            NetlinkPayload::Error(error) => {
                if let Some(code) = error.code {
                    return Err(NetlinkError::Kernel(code.get().saturating_abs()));
                }
            }
            _ => {}
        }
        // Messages are 4-byte aligned.
        offset += (length + 3) & !3;
    }
    Ok(ruleset)
}

/// Decodes one message. netlink-packet-netfilter 0.4 slices some nested attributes
/// without checking their length (`NFTA_BITWISE_MASK`/`XOR` via an unchecked
/// `NlaBuffer::new`) and panics on a malformed one — found by this crate's fuzz target
/// (`fuzz/fuzz_targets/boot_and_disk.rs`, input kept as
/// `tests/fixtures/firewall/fuzz-crash-bitwise-mask.nlmsg`). The kernel never sends such
/// messages, but a panic must not take the check down: it becomes a decode error.
fn decode(
    buffer: &NetlinkBuffer<&&[u8]>,
    offset: usize,
) -> Result<NetlinkMessage<NetfilterMessage>, NetlinkError> {
    match std::panic::catch_unwind(|| NetlinkMessage::<NetfilterMessage>::parse(buffer)) {
        Ok(Ok(message)) => Ok(message),
        Ok(Err(e)) => Err(NetlinkError::Decode(format!("at byte {offset}: {e}"))),
        Err(_) => Err(NetlinkError::Decode(format!(
            "at byte {offset}: malformed nested attribute"
        ))),
    }
}

fn family_name(family: NetfilterProtoFamily) -> String {
    match family {
        NetfilterProtoFamily::Inet => "inet".to_owned(),
        NetfilterProtoFamily::IPv4 => "ip".to_owned(),
        NetfilterProtoFamily::IPv6 => "ip6".to_owned(),
        NetfilterProtoFamily::ARP => "arp".to_owned(),
        NetfilterProtoFamily::NetDev => "netdev".to_owned(),
        NetfilterProtoFamily::Bridge => "bridge".to_owned(),
        other => format!("family {}", u8::from(other)),
    }
}

fn add_object(ruleset: &mut Ruleset, message: NetfilterMessage) {
    let family = family_name(message.header.family);
    let NetfilterMessageInner::NfTables(object) = message.inner else {
        return;
    };
    match object {
        NfTablesMessage::NewTable(table) => {
            if let Some(name) = table.attributes.into_iter().find_map(|a| match a {
                TableAttribute::Name(name) => Some(name),
                _ => None,
            }) {
                ruleset.tables.push((family, name));
            }
        }
        NfTablesMessage::NewChain(chain) => {
            let mut model = Chain {
                family,
                table: String::new(),
                name: String::new(),
                kind: None,
                hook: None,
                policy: None,
            };
            for attribute in chain.attributes {
                match attribute {
                    ChainAttribute::Table(table) => model.table = table,
                    ChainAttribute::Name(name) => model.name = name,
                    ChainAttribute::Type(kind) => model.kind = Some(kind),
                    ChainAttribute::Policy(policy) => {
                        // NF_DROP = 0, NF_ACCEPT = 1 (linux/netfilter.h).
                        model.policy = Some(match policy {
                            0 => "drop".to_owned(),
                            1 => "accept".to_owned(),
                            other => format!("verdict {other}"),
                        })
                    }
                    ChainAttribute::Hook(hooks) => {
                        model.hook = hooks.into_iter().find_map(|h| match h {
                            Hook::Number(number) => Some(hook_name(&model.family, number)),
                            _ => None,
                        })
                    }
                    _ => {}
                }
            }
            ruleset.chains.push(model);
        }
        NfTablesMessage::NewRule(rule) => {
            let mut model = Rule {
                family,
                table: String::new(),
                chain: String::new(),
                expr: Vec::new(),
            };
            for attribute in rule.attributes {
                match attribute {
                    RuleAttribute::Table(table) => model.table = table,
                    RuleAttribute::Chain(chain) => model.chain = chain,
                    RuleAttribute::Expressions(list) => {
                        model.expr = list.into_iter().filter_map(statement).collect()
                    }
                    _ => {}
                }
            }
            ruleset.rules.push(model);
        }
        _ => {}
    }
}

/// The hook's name as nft prints it. For `ip`, `ip6` and `inet` tables the numbers are the
/// `NF_INET_*` hooks; `netdev` has ingress/egress; `arp` and `bridge` are never input-filter
/// chains for our purpose and keep a number-based name.
fn hook_name(family: &str, number: HookNumber) -> String {
    let inet = |n: InetHookNumber| match n {
        InetHookNumber::PreRouting => "prerouting".to_owned(),
        InetHookNumber::LocalIn => "input".to_owned(),
        InetHookNumber::Forward => "forward".to_owned(),
        InetHookNumber::LocalOut => "output".to_owned(),
        InetHookNumber::PostRouting => "postrouting".to_owned(),
        InetHookNumber::Ingress => "ingress".to_owned(),
        other => format!("hook {}", u32::from(other)),
    };
    match (family, number) {
        ("ip" | "ip6" | "inet", HookNumber::Inet(n)) => inet(n),
        ("ip" | "ip6" | "inet", HookNumber::Other(n)) => inet(InetHookNumber::from(n)),
        (_, HookNumber::Inet(n)) => format!("hook {}", u32::from(n)),
        (_, HookNumber::Dev(n)) => format!("{n:?}").to_lowercase(),
        (_, HookNumber::Other(n)) => format!("hook {n}"),
        (_, other) => format!("{other:?}"),
    }
}

/// One netlink expression as a statement of the model. Only `counter` and `log` (and
/// register loads of constants) are neutral; verdicts decide; every other expression —
/// payload and meta loads, comparisons, lookups, limits, iptables matches — may stop the
/// rule for some packets and makes it conditional, as its JSON form (`match`) does.
fn statement(list: ListAttribute<ExpressionAttribute>) -> Option<Statement> {
    let ListAttribute::Element(attributes) = list else {
        return None;
    };
    let mut name = None;
    let mut data = None;
    for attribute in attributes {
        match attribute {
            ExpressionAttribute::Name(n) => name = Some(n),
            ExpressionAttribute::Data(d) => data = Some(d),
            _ => {}
        }
    }
    let name = name?;
    Some(match (name.as_str(), data) {
        ("immediate", Some(Expressions::Immediate(attributes))) => immediate(attributes),
        ("counter" | "log", _) => Statement::Neutral(name),
        ("reject", _) => Statement::Reject,
        ("match" | "target", Some(Expressions::Other { attributes, .. })) => {
            // NFTA_MATCH_NAME = NFTA_TARGET_NAME = 1: the xtables extension's name.
            let xt_name = attributes
                .iter()
                .find(|a| a.kind() == 1)
                .map(|a| {
                    let mut value = vec![0; a.value_len()];
                    a.emit_value(&mut value);
                    String::from_utf8_lossy(&value)
                        .trim_end_matches('\0')
                        .to_owned()
                })
                .unwrap_or_default();
            xt_statement(&name, &xt_name)
        }
        _ => Statement::Condition(name),
    })
}

fn immediate(attributes: Vec<Immediate>) -> Statement {
    let verdict = attributes.into_iter().find_map(|a| match a {
        Immediate::Data(DataAttribute::Verdict(v)) => Some(v),
        _ => None,
    });
    let Some(verdict) = verdict else {
        // Loading a constant into a register matches nothing by itself.
        return Statement::Neutral("immediate".to_owned());
    };
    let mut code = None;
    let mut chain = String::new();
    for attribute in verdict {
        match attribute {
            VerdictAttribute::Code(c) => code = Some(c),
            VerdictAttribute::Chain(c) => chain = c,
            _ => {}
        }
    }
    match code {
        // NF_DROP = 0, NF_ACCEPT = 1; NF_QUEUE (3) hands the packet to userspace.
        Some(Verdict::Other(0)) => Statement::Drop,
        Some(Verdict::Other(1)) => Statement::Accept,
        Some(Verdict::Jump) => Statement::Jump(chain),
        Some(Verdict::Goto) => Statement::Goto(chain),
        Some(Verdict::Return) => Statement::Return,
        Some(Verdict::Continue) => Statement::Continue,
        Some(other) => Statement::Condition(format!("verdict {other:?}")),
        None => Statement::Condition("verdict".to_owned()),
    }
}

/// Dumps the loaded nftables ruleset (tables, chains, rules of every family) over a
/// `NETLINK_NETFILTER` socket and returns the kernel's replies unchanged. The ruleset
/// generation is read before and after; if it changed in between the dumps are repeated
/// (at most three times), so tables, chains and rules belong to one ruleset.
#[cfg(target_os = "linux")]
pub fn dump(cancelled: &dyn Fn() -> bool) -> Result<Vec<u8>, NetlinkError> {
    use netlink_packet_netfilter::nftables::{ChainMessage, RuleMessage, TableMessage};
    use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut sequence = 0u32;
    for _ in 0..3 {
        let before = generation(&socket, &mut sequence)?;
        let mut bytes = Vec::new();
        for request in [
            NfTablesMessage::GetTable(TableMessage { attributes: vec![] }),
            NfTablesMessage::GetChain(ChainMessage { attributes: vec![] }),
            NfTablesMessage::GetRule(RuleMessage { attributes: vec![] }),
        ] {
            if cancelled() {
                return Err(NetlinkError::Io(std::io::Error::other("cancelled")));
            }
            request_dump(&socket, &mut sequence, request, &mut bytes)?;
        }
        if generation(&socket, &mut sequence)? == before {
            return Ok(bytes);
        }
    }
    Err(NetlinkError::Unstable)
}

#[cfg(target_os = "linux")]
fn send(
    socket: &netlink_sys::Socket,
    sequence: &mut u32,
    request: NfTablesMessage,
    flags: u16,
) -> Result<u32, NetlinkError> {
    use netlink_packet_core::Emitable;
    use netlink_packet_netfilter::NetfilterHeader;

    *sequence += 1;
    let mut message = NetlinkMessage::from(NetfilterMessage::new(
        NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, 0),
        request,
    ));
    message.header.flags = flags;
    message.header.sequence_number = *sequence;
    message.finalize();
    let mut buffer = vec![0; message.buffer_len()];
    message.emit(&mut buffer);
    socket.send(&buffer, 0)?;
    Ok(*sequence)
}

/// Sends one dump request and appends every reply message up to `NLMSG_DONE` to `out`.
#[cfg(target_os = "linux")]
fn request_dump(
    socket: &netlink_sys::Socket,
    sequence: &mut u32,
    request: NfTablesMessage,
    out: &mut Vec<u8>,
) -> Result<(), NetlinkError> {
    use netlink_packet_core::{NLMSG_DONE, NLMSG_ERROR, NLM_F_DUMP, NLM_F_REQUEST};

    let sent = send(socket, sequence, request, NLM_F_REQUEST | NLM_F_DUMP)?;
    loop {
        let (datagram, _) = socket.recv_from_full()?;
        let mut offset = 0;
        while offset + 16 <= datagram.len() {
            let buffer = NetlinkBuffer::new_checked(&datagram[offset..])
                .map_err(|e| NetlinkError::Decode(e.to_string()))?;
            let length = (buffer.length() as usize).max(16);
            let end = (offset + length).min(datagram.len());
            let kind = buffer.message_type();
            let for_us = buffer.sequence_number() == sent;
            if for_us {
                out.extend_from_slice(&datagram[offset..end]);
                // Keep the stream 4-byte aligned, as the kernel sends it.
                out.resize((out.len() + 3) & !3, 0);
            }
            if for_us && kind == NLMSG_DONE {
                return Ok(());
            }
            if for_us && kind == NLMSG_ERROR {
                let payload = buffer.payload();
                let errno = payload
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(i32::from_ne_bytes)
                    .unwrap_or(0);
                if errno != 0 {
                    return Err(NetlinkError::Kernel(errno.saturating_abs()));
                }
                return Ok(());
            }
            offset += (length + 3) & !3;
        }
        if datagram.is_empty() {
            return Err(NetlinkError::Decode("empty netlink reply".to_owned()));
        }
    }
}

/// The ruleset's generation id (`NFT_MSG_GETGEN`), which the kernel bumps on every change.
#[cfg(target_os = "linux")]
fn generation(socket: &netlink_sys::Socket, sequence: &mut u32) -> Result<u32, NetlinkError> {
    use netlink_packet_core::NLM_F_REQUEST;
    use netlink_packet_netfilter::nftables::{GenAttribute, GenMessage};

    let sent = send(
        socket,
        sequence,
        NfTablesMessage::GetGen(GenMessage { attributes: vec![] }),
        NLM_F_REQUEST,
    )?;
    loop {
        let (datagram, _) = socket.recv_from_full()?;
        let buffer = NetlinkBuffer::new_checked(&datagram)
            .map_err(|e| NetlinkError::Decode(e.to_string()))?;
        if buffer.sequence_number() != sent {
            continue;
        }
        let message = NetlinkMessage::<NetfilterMessage>::parse(&buffer)
            .map_err(|e| NetlinkError::Decode(e.to_string()))?;
        return match message.payload {
            NetlinkPayload::InnerMessage(NetfilterMessage {
                inner: NetfilterMessageInner::NfTables(NfTablesMessage::NewGen(gen)),
                ..
            }) => Ok(gen
                .attributes
                .into_iter()
                .find_map(|a| match a {
                    GenAttribute::Id(id) => Some(id),
                    _ => None,
                })
                .unwrap_or(0)),
            NetlinkPayload::Error(error) => Err(NetlinkError::Kernel(
                error.code.map_or(0, |c| c.get().saturating_abs()),
            )),
            other => Err(NetlinkError::Decode(format!(
                "unexpected reply to GETGEN: {other:?}"
            ))),
        };
    }
}
