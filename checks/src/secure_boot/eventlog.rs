//! The TCG PC Client event log (`/sys/kernel/security/tpm0/binary_bios_measurements`):
//! parsing, replay into PCR values, and the boot facts a verifier can write policy on.
//!
//! Format (TCG PC Client Platform Firmware Profile, §10): the first event is a SHA-1
//! format `TCG_PCR_EVENT`; when it is the `Spec ID Event03` (an `EV_NO_ACTION`), the rest
//! are crypto-agile `TCG_PCR_EVENT2`s (PCR index, type, one digest per bank, data) whose
//! digest sizes the Spec ID event lists. Without it the whole log is SHA-1 format.
//!
//! Replay: every event except `EV_NO_ACTION` extends its PCR (`PCR = H(PCR || digest)`),
//! from zeros, or from the locality in a `StartupLocality` event for PCR 0. The replayed
//! values are compared with PCRs quoted in the same evidence (by the verifier): only a
//! log that replays to the quoted values may be believed, and then policy can look at
//! events ("Secure Boot enabled", "boot loader digest", "signed by db certificate X")
//! rather than opaque PCR values.

use std::collections::BTreeMap;

use serde::Serialize;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::siglist::{guid, hex, summarise_cert};

/// `TPM_ALG_SHA1`.
pub const ALG_SHA1: u16 = 0x0004;
/// `TPM_ALG_SHA256`.
pub const ALG_SHA256: u16 = 0x000b;
/// `TPM_ALG_SHA384`.
pub const ALG_SHA384: u16 = 0x000c;
/// `TPM_ALG_SHA512`.
pub const ALG_SHA512: u16 = 0x000d;

/// Event types used here (TCG PFP §10.4.1).
pub mod event_type {
    /// Not extended.
    pub const EV_NO_ACTION: u32 = 0x0000_0003;
    /// Separator between pre-OS and OS-present.
    pub const EV_SEPARATOR: u32 = 0x0000_0004;
    /// Boot loader measurements of OS components (grub: kernel, command line).
    pub const EV_IPL: u32 = 0x0000_000d;
    /// A Secure Boot configuration variable (`SecureBoot`, `PK`, `KEK`, `db`, `dbx`).
    pub const EV_EFI_VARIABLE_DRIVER_CONFIG: u32 = 0x8000_0001;
    /// A UEFI application (boot loader, shim, kernel EFI stub) loaded by the firmware.
    pub const EV_EFI_BOOT_SERVICES_APPLICATION: u32 = 0x8000_0003;
    /// The `db` entry that authorised a loaded image.
    pub const EV_EFI_VARIABLE_AUTHORITY: u32 = 0x8000_00e0;
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// PCR index.
    pub pcr: u32,
    /// Event type.
    pub kind: u32,
    /// Digest per algorithm id.
    pub digests: Vec<(u16, Vec<u8>)>,
    /// Event data.
    pub data: Vec<u8>,
}

impl Event {
    /// This event's digest in a bank.
    pub fn digest(&self, alg: u16) -> Option<&[u8]> {
        self.digests
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, d)| d.as_slice())
    }
}

/// A parsed log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLog {
    /// Whether it is crypto-agile (`Spec ID Event03`).
    pub crypto_agile: bool,
    /// The banks (algorithm id, digest size) it records.
    pub algorithms: Vec<(u16, u16)>,
    /// Every event after the header, in order.
    pub events: Vec<Event>,
    /// PCR 0's starting locality (`StartupLocality` event), when given.
    pub startup_locality: Option<u8>,
}

/// Largest event data accepted (a `db` with many certificates is tens of KiB).
const MAX_EVENT_DATA: usize = 1 << 20;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("event log truncated at byte {}", self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn data(&mut self) -> Result<&'a [u8], String> {
        let size = self.u32()? as usize;
        if size > MAX_EVENT_DATA {
            return Err(format!("event data of {size} bytes at byte {}", self.at));
        }
        self.take(size)
    }
    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }
}

/// Parses an event log.
pub fn parse(bytes: &[u8]) -> Result<EventLog, String> {
    let mut r = Reader { bytes, at: 0 };
    // The first event is always in SHA-1 format.
    let pcr = r.u32()?;
    let kind = r.u32()?;
    let sha1 = r.take(20)?.to_vec();
    let data = r.data()?.to_vec();
    let mut log = EventLog {
        crypto_agile: false,
        algorithms: vec![(ALG_SHA1, 20)],
        events: Vec::new(),
        startup_locality: None,
    };
    if kind == event_type::EV_NO_ACTION && data.starts_with(b"Spec ID Event03\0") {
        log.crypto_agile = true;
        log.algorithms = parse_spec_id(&data)?;
    } else {
        log.events.push(Event {
            pcr,
            kind,
            digests: vec![(ALG_SHA1, sha1)],
            data,
        });
    }
    while !r.done() {
        let pcr = r.u32()?;
        let kind = r.u32()?;
        let digests = if log.crypto_agile {
            let count = r.u32()?;
            if count as usize > log.algorithms.len() {
                return Err(format!("event with {count} digests at byte {}", r.at));
            }
            let mut digests = Vec::new();
            for _ in 0..count {
                let alg = r.u16()?;
                let size = log
                    .algorithms
                    .iter()
                    .find(|(a, _)| *a == alg)
                    .map(|(_, s)| *s as usize)
                    .ok_or_else(|| format!("digest of unlisted algorithm {alg:#06x}"))?;
                digests.push((alg, r.take(size)?.to_vec()));
            }
            digests
        } else {
            vec![(ALG_SHA1, r.take(20)?.to_vec())]
        };
        let data = r.data()?.to_vec();
        if kind == event_type::EV_NO_ACTION && pcr == 0 && data.starts_with(b"StartupLocality\0") {
            log.startup_locality = data.get(16).copied();
        }
        log.events.push(Event {
            pcr,
            kind,
            digests,
            data,
        });
    }
    Ok(log)
}

/// `TCG_EfiSpecIdEvent`: signature[16], platformClass u32, versions (4 bytes),
/// uintnSize u8, numberOfAlgorithms u32, then (algorithmId u16, digestSize u16) each.
fn parse_spec_id(data: &[u8]) -> Result<Vec<(u16, u16)>, String> {
    let mut r = Reader {
        bytes: data,
        at: 24,
    };
    let count = r.u32()?;
    if count == 0 || count > 16 {
        return Err(format!("Spec ID event lists {count} algorithms"));
    }
    (0..count)
        .map(|_| Ok((r.u16()?, r.u16()?)))
        .collect::<Result<Vec<_>, String>>()
}

fn hash(alg: u16, parts: &[&[u8]]) -> Option<Vec<u8>> {
    fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
        let mut d = D::new();
        for p in parts {
            d.update(p);
        }
        d.finalize().to_vec()
    }
    Some(match alg {
        ALG_SHA1 => run::<Sha1>(parts),
        ALG_SHA256 => run::<Sha256>(parts),
        ALG_SHA384 => run::<Sha384>(parts),
        ALG_SHA512 => run::<Sha512>(parts),
        _ => return None,
    })
}

/// Replays one bank: the PCR values the log implies (only PCRs it extends).
pub fn replay(log: &EventLog, alg: u16) -> Option<BTreeMap<u32, Vec<u8>>> {
    let size = log.algorithms.iter().find(|(a, _)| *a == alg)?.1 as usize;
    let mut pcrs: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    for event in &log.events {
        if event.kind == event_type::EV_NO_ACTION {
            continue;
        }
        let digest = event.digest(alg)?;
        let current = pcrs.entry(event.pcr).or_insert_with(|| {
            let mut start = vec![0u8; size];
            if event.pcr == 0 {
                if let (Some(locality), Some(last)) = (log.startup_locality, start.last_mut()) {
                    *last = locality;
                }
            }
            start
        });
        *current = hash(alg, &[current, digest])?;
    }
    Some(pcrs)
}

/// What the log says about this boot, for people and for policy on events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BootFacts {
    /// The `SecureBoot` variable as measured into PCR 7 (`None`: not measured).
    pub secure_boot: Option<bool>,
    /// Secure Boot variables measured into PCR 7, by name.
    pub measured_variables: Vec<String>,
    /// SHA-256 digests (or the log's first bank) of the UEFI applications the firmware
    /// started, in order (PCR 4): shim / the boot loader first, then what it loaded
    /// through the firmware (grub, a kernel's EFI stub, a UKI).
    pub boot_applications: Vec<String>,
    /// The `db`/MOK certificates that authorised what was loaded (PCR 7
    /// `EV_EFI_VARIABLE_AUTHORITY`), by subject.
    pub authorities: Vec<String>,
    /// What the boot loader measured as `EV_IPL` into PCR 8/9 (grub: the kernel path and
    /// command line), as text, truncated.
    pub ipl: Vec<String>,
    /// The SHA-256 (else first bank) digests grub measured into PCR 9 (kernel, initrd).
    pub pcr9_digests: Vec<String>,
}

/// `UEFI_VARIABLE_DATA`: VariableName GUID, UnicodeNameLength u64, VariableDataLength
/// u64, UnicodeName (UTF-16LE), VariableData.
fn variable(data: &[u8]) -> Option<(String, &[u8])> {
    let name_len = usize::try_from(u64::from_le_bytes(data.get(16..24)?.try_into().ok()?)).ok()?;
    let data_len = usize::try_from(u64::from_le_bytes(data.get(24..32)?.try_into().ok()?)).ok()?;
    let name_end = 32usize.checked_add(name_len.checked_mul(2)?)?;
    let units: Vec<u16> = data
        .get(32..name_end)?
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let name = String::from_utf16_lossy(&units);
    let value = data.get(name_end..name_end.checked_add(data_len)?)?;
    Some((name, value))
}

/// Variables shim measures as `EV_EFI_VARIABLE_AUTHORITY` that name no certificate.
const SHIM_CONFIG_VARIABLES: &[&str] = &["SbatLevel", "MokListTrusted"];

/// Extracts the boot facts.
pub fn facts(log: &EventLog) -> BootFacts {
    let bank = if log.algorithms.iter().any(|(a, _)| *a == ALG_SHA256) {
        ALG_SHA256
    } else {
        log.algorithms.first().map_or(ALG_SHA1, |(a, _)| *a)
    };
    let mut facts = BootFacts::default();
    for event in &log.events {
        match (event.pcr, event.kind) {
            (7, event_type::EV_EFI_VARIABLE_DRIVER_CONFIG) => {
                if let Some((name, value)) = variable(&event.data) {
                    if name == "SecureBoot" {
                        facts.secure_boot = value.first().map(|v| *v == 1).or(Some(false));
                    }
                    facts.measured_variables.push(name);
                }
            }
            (7, event_type::EV_EFI_VARIABLE_AUTHORITY) => {
                if let Some((name, value)) = variable(&event.data) {
                    // shim measures its SBAT revocation level and MOK trust setting with the
                    // authority event type; they are configuration, not a signer, and a
                    // policy on authorities must not see them as one.
                    if SHIM_CONFIG_VARIABLES.contains(&name.as_str()) {
                        if !facts.measured_variables.contains(&name) {
                            facts.measured_variables.push(name);
                        }
                        continue;
                    }
                    // EFI_SIGNATURE_DATA: owner GUID, then the certificate.
                    let who = value
                        .get(16..)
                        .and_then(|der| summarise_cert(der, guid(value).unwrap_or_default()))
                        .map(|c| c.subject)
                        .unwrap_or_else(|| format!("{name} entry ({} bytes)", value.len()));
                    if !facts.authorities.contains(&who) {
                        facts.authorities.push(who);
                    }
                }
            }
            (4, event_type::EV_EFI_BOOT_SERVICES_APPLICATION) => {
                if let Some(d) = event.digest(bank) {
                    facts.boot_applications.push(hex(d));
                }
            }
            (8 | 9, event_type::EV_IPL) => {
                let text = String::from_utf8_lossy(&event.data);
                let text: String = text.trim_end_matches('\0').chars().take(200).collect();
                facts.ipl.push(text);
                if event.pcr == 9 {
                    if let Some(d) = event.digest(bank) {
                        facts.pcr9_digests.push(hex(d));
                    }
                }
            }
            _ => {}
        }
    }
    facts
}
