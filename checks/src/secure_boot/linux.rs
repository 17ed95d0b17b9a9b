//! Linux implementation (its sources are described in the parent module).

#[allow(unused_imports)]
use super::*;
use posture_core::{Finding, Remediation};
use serde_json::{json, Value};

use crate::source::{exists, list_dir, read_attr, read_bytes};
use crate::Context;

/// The EFI global variable GUID that `SecureBoot` and `SetupMode` live under.
pub const EFI_GLOBAL_GUID: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

const EFI_DIR: &str = "/sys/firmware/efi";
const EFIVARS_DIR: &str = "/sys/firmware/efi/efivars";
const LEGACY_VARS_DIR: &str = "/sys/firmware/efi/vars";
const LOCKDOWN: &str = "/sys/kernel/security/lockdown";
const HELP_URL: &str = "https://wiki.debian.org/SecureBoot";
/// The EFI image security database GUID that `db` and `dbx` live under.
pub const EFI_IMAGE_SECURITY_GUID: &str = "d719b2cb-3d3a-4596-a3bc-dad00e67656f";
/// shim's GUID (`MokListRT` and `MokListXRT`: the runtime copies of the Machine Owner
/// Key list and of its revocations).
pub const SHIM_GUID: &str = "605dab50-e046-4300-abb6-3dd810dd8b23";
const EVENT_LOG: &str = "/sys/kernel/security/tpm0/binary_bios_measurements";
const SIG_ENFORCE: &str = "/sys/module/module/parameters/sig_enforce";
const DBX_URL: &str = "https://fwupd.github.io/libfwupdplugin/uefi-dbx.html";

/// Why an EFI variable's bytes are not a usable boolean.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EfiVarError {
    /// Shorter than 4 attribute bytes plus one data byte (or empty data, legacy layout).
    #[error("{name} is truncated ({len} bytes)")]
    Truncated {
        /// Variable name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// More data than the one byte the UEFI specification defines.
    #[error("{name} has {len} data bytes, expected 1")]
    TooLong {
        /// Variable name.
        name: String,
        /// Data length in bytes.
        len: usize,
    },
    /// The data byte is neither 0 nor 1.
    #[error("{name} holds {value:#04x}, expected 0 or 1")]
    NotBoolean {
        /// Variable name.
        name: String,
        /// The byte.
        value: u8,
    },
}

/// Parses an efivarfs file (4 attribute bytes, then the data) holding a UEFI boolean.
pub fn parse_efivar_bool(name: &str, bytes: &[u8]) -> Result<bool, EfiVarError> {
    match bytes.get(4..) {
        Some(data) if !data.is_empty() => parse_data_bool(name, data),
        _ => Err(EfiVarError::Truncated {
            name: name.to_owned(),
            len: bytes.len(),
        }),
    }
}

/// Parses the data of a UEFI boolean variable without the attribute prefix (the legacy
/// sysfs-efivars `data` file).
pub fn parse_data_bool(name: &str, data: &[u8]) -> Result<bool, EfiVarError> {
    match data {
        [] => Err(EfiVarError::Truncated {
            name: name.to_owned(),
            len: 0,
        }),
        [0] => Ok(false),
        [1] => Ok(true),
        [value] => Err(EfiVarError::NotBoolean {
            name: name.to_owned(),
            value: *value,
        }),
        _ => Err(EfiVarError::TooLong {
            name: name.to_owned(),
            len: data.len(),
        }),
    }
}

/// Parses `/sys/kernel/security/lockdown`: the mode in brackets is the active one.
pub fn parse_lockdown(text: &str) -> Option<String> {
    text.split_whitespace()
        .find_map(|word| word.strip_prefix('[')?.strip_suffix(']'))
        .filter(|mode| !mode.is_empty())
        .map(str::to_owned)
}

/// How a UEFI boolean variable was read.
#[derive(Debug)]
enum VarRead {
    /// The value and the file it came from.
    Value(bool, String),
    /// The variable does not exist.
    Absent,
    /// It exists but cannot be read or understood: the reason.
    Bad(String, String),
}

impl VarRead {
    /// The observed fact: the boolean, or null when not known.
    fn fact(&self) -> Value {
        match self {
            VarRead::Value(value, _) => Value::Bool(*value),
            VarRead::Absent | VarRead::Bad(_, _) => Value::Null,
        }
    }
}

fn read_var(ctx: &Context, name: &str) -> VarRead {
    let efivarfs = format!("{EFIVARS_DIR}/{name}-{EFI_GLOBAL_GUID}");
    match read_bytes(ctx, &efivarfs) {
        Ok(bytes) => {
            return match parse_efivar_bool(name, &bytes) {
                Ok(value) => VarRead::Value(value, efivarfs),
                Err(e) => VarRead::Bad(e.to_string(), efivarfs),
            }
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return VarRead::Bad(e.to_string(), efivarfs),
    }
    // Kernels before efivarfs (or without it mounted) may still have sysfs-efivars.
    let legacy = format!("{LEGACY_VARS_DIR}/{name}-{EFI_GLOBAL_GUID}/data");
    match read_bytes(ctx, &legacy) {
        Ok(bytes) => match parse_data_bool(name, &bytes) {
            Ok(value) => VarRead::Value(value, legacy),
            Err(e) => VarRead::Bad(e.to_string(), legacy),
        },
        Err(e) if e.is_not_found() => VarRead::Absent,
        Err(e) => VarRead::Bad(e.to_string(), legacy),
    }
}

/// Whether any EFI variables are visible at all: if none are, efivarfs is not mounted
/// and an absent `SecureBoot` says nothing about the firmware.
fn variables_visible(ctx: &Context) -> bool {
    let non_empty = |dir: &str| list_dir(ctx, dir).is_ok_and(|names| !names.is_empty());
    non_empty(EFIVARS_DIR) || non_empty(LEGACY_VARS_DIR)
}

fn lockdown(ctx: &Context) -> Value {
    match read_attr(ctx, LOCKDOWN) {
        Ok(text) => parse_lockdown(&text).map_or(Value::Null, Value::String),
        Err(_) => Value::Null,
    }
}

fn enable_remediation() -> Remediation {
    Remediation::new(
        "Turn on Secure Boot in the firmware setup (UEFI/BIOS settings, usually opened with F2, \
         F10, F12 or Del while the machine starts), then boot again. Distributions signed by \
         Microsoft's UEFI CA (Debian, Ubuntu, Fedora, RHEL, SUSE) boot with it unchanged.",
    )
    .with_url(HELP_URL)
}

fn setup_mode_remediation() -> Remediation {
    Remediation::new(
        "The firmware is in Setup Mode: no platform key is enrolled, so nothing is verified. \
         In the firmware setup, restore the factory Secure Boot keys (often \"Restore default \
         keys\" or \"Install default Secure Boot keys\") or enroll your own platform key, then \
         enable Secure Boot.",
    )
    .with_url(HELP_URL)
}

/// The signature databases as efivarfs shows them, parsed: `(name, file, result)`.
fn read_databases(
    ctx: &Context,
) -> Vec<(&'static str, String, Result<siglist::SignatureDb, String>)> {
    [
        ("PK", EFI_GLOBAL_GUID),
        ("KEK", EFI_GLOBAL_GUID),
        ("db", EFI_IMAGE_SECURITY_GUID),
        ("dbx", EFI_IMAGE_SECURITY_GUID),
        ("MokListRT", SHIM_GUID),
        ("MokListXRT", SHIM_GUID),
    ]
    .into_iter()
    .filter_map(|(name, guid)| {
        let path = format!("{EFIVARS_DIR}/{name}-{guid}");
        match read_bytes(ctx, &path) {
            Ok(bytes) => Some((name, path, siglist::parse_efivar_db(&bytes))),
            Err(e) if e.is_not_found() => None,
            Err(e) => Some((name, path, Err(e.to_string()))),
        }
    })
    .collect()
}

/// What the databases say: certificates per database, the Microsoft CA generations, and
/// how current `dbx` is. `None` for the dbx assessment when `dbx` was not read.
fn databases_json(
    databases: &[(&'static str, String, Result<siglist::SignatureDb, String>)],
) -> (Value, Option<siglist::DbxAssessment>) {
    let mut out = serde_json::Map::new();
    let get = |name: &str| {
        databases
            .iter()
            .find(|(n, _, _)| *n == name)
            .and_then(|(_, _, r)| r.as_ref().ok())
    };
    for (name, _, result) in databases {
        let value = match result {
            Ok(db) => json!({
                "certificates": db.certificates,
                "sha256_entries": db.sha256.len(),
                "other_entries": db.other,
            }),
            Err(reason) => json!({ "error": reason }),
        };
        out.insert((*name).to_owned(), value);
    }
    let present = |cas: &[&str]| -> Vec<String> {
        cas.iter()
            .filter(|cn| {
                get("db").is_some_and(|db| db.has_cn(cn))
                    || get("KEK").is_some_and(|k| k.has_cn(cn))
            })
            .map(|cn| (*cn).to_owned())
            .collect()
    };
    let dbx = get("dbx").map(siglist::assess_dbx);
    let revoked_2011: Vec<String> = siglist::MICROSOFT_2011_CAS
        .iter()
        .filter(|cn| get("dbx").is_some_and(|dbx| dbx.has_cn(cn)))
        .map(|cn| (*cn).to_owned())
        .collect();
    out.insert(
        "microsoft_cas".to_owned(),
        json!({
            "ca_2023_present": present(siglist::MICROSOFT_2023_CAS),
            "ca_2011_present": present(siglist::MICROSOFT_2011_CAS),
            "ca_2011_revoked": revoked_2011,
        }),
    );
    out.insert("dbx_assessment".to_owned(), json!(dbx));
    (Value::Object(out), dbx)
}

/// The TCG event log: boot facts and the replayed PCRs (SHA-256 bank, else the first),
/// for the verifier to compare with a quote. Null when there is no log (no TPM, not root).
fn measured_boot(ctx: &Context) -> Value {
    let bytes = match read_bytes(ctx, EVENT_LOG) {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => return Value::Null,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let log = match eventlog::parse(&bytes) {
        Ok(log) => log,
        Err(reason) => return json!({ "error": reason }),
    };
    let bank = if log
        .algorithms
        .iter()
        .any(|(a, _)| *a == eventlog::ALG_SHA256)
    {
        eventlog::ALG_SHA256
    } else {
        eventlog::ALG_SHA1
    };
    let replayed: serde_json::Map<String, Value> = eventlog::replay(&log, bank)
        .unwrap_or_default()
        .into_iter()
        .map(|(pcr, value)| (pcr.to_string(), Value::String(siglist::hex(&value))))
        .collect();
    json!({
        "events": log.events.len(),
        "banks": log.algorithms.iter().map(|(a, _)| format!("{a:#06x}")).collect::<Vec<_>>(),
        "replay_bank": format!("{bank:#06x}"),
        "replayed_pcrs": replayed,
        "facts": eventlog::facts(&log),
    })
}

/// fwupd's Host Security ID, live only (D-Bus); null with the reason otherwise.
fn fwupd_hsi(ctx: &Context) -> Value {
    if !ctx.live {
        return Value::Null;
    }
    match fwupd::read_hsi() {
        Ok(hsi) => json!(hsi),
        Err(reason) => json!({ "unavailable": reason }),
    }
}

fn module_sig_enforce(ctx: &Context) -> Value {
    match read_attr(ctx, SIG_ENFORCE) {
        Ok(v) if v == "Y" || v == "1" => Value::Bool(true),
        Ok(v) if v == "N" || v == "0" => Value::Bool(false),
        _ => Value::Null,
    }
}

fn dbx_remediation(dbx: &siglist::DbxAssessment) -> Remediation {
    Remediation::new(format!(
        "The firmware's revocation list (dbx) lacks {} of the {} revocations for known-vulnerable \
         boot loaders, so one of those could still be started with Secure Boot on. Apply the \
         UEFI dbx update: `sudo fwupdmgr refresh && sudo fwupdmgr update` (fwupd ships it as \
         a firmware update), or install the vendor's latest firmware.",
        dbx.missing, dbx.reference_entries
    ))
    .with_url(DBX_URL)
}

/// Runs the check.
pub(super) fn check(ctx: &Context) -> Finding {
    let finding = check_variables(ctx);
    let uefi = finding.observed.get("uefi").and_then(Value::as_bool);
    if uefi != Some(true) {
        return finding.observe("module_sig_enforce", module_sig_enforce(ctx));
    }
    let databases = read_databases(ctx);
    let (databases_value, dbx) = databases_json(&databases);
    let mut finding = finding
        .observe("signature_databases", databases_value)
        .observe("measured_boot", measured_boot(ctx))
        .observe("module_sig_enforce", module_sig_enforce(ctx))
        .observe("fwupd_hsi", fwupd_hsi(ctx))
        .source(EVENT_LOG)
        .source(SIG_ENFORCE);
    for (_, path, _) in &databases {
        finding = finding.source(path.clone());
    }
    // An outdated dbx is a finding of its own weight: Secure Boot "on" while a revoked
    // boot loader can still start.
    match dbx {
        Some(dbx) if dbx.missing > 0 && finding.status == posture_core::Status::Pass => {
            let mut failed = Finding::fail(
                ID,
                format!(
                    "Secure Boot is enabled but its revocation list (dbx) is outdated: {} of {} known boot loader revocations are missing",
                    dbx.missing, dbx.reference_entries
                ),
                dbx_remediation(&dbx),
            );
            failed.observed = finding.observed;
            failed.source = finding.source;
            failed
        }
        _ => finding,
    }
}

fn check_variables(ctx: &Context) -> Finding {
    let lockdown = lockdown(ctx);
    // Every finding carries the same facts; null where they are not known.
    let facts = |finding: Finding, uefi: bool, enabled: Value, setup_mode: Value| {
        let finding = finding
            .observe("uefi", uefi)
            .observe("enabled", enabled)
            .observe("setup_mode", setup_mode)
            .observe("lockdown", lockdown.clone());
        if lockdown.is_null() {
            finding
        } else {
            finding.source(LOCKDOWN)
        }
    };

    if !exists(ctx, EFI_DIR) {
        let finding = Finding::unknown(
            ID,
            "legacy BIOS boot: the machine was not booted by UEFI, so Secure Boot does not apply",
        )
        .source(EFI_DIR);
        return facts(finding, false, Value::Null, Value::Null);
    }

    let secure_boot = read_var(ctx, "SecureBoot");
    let setup_mode = read_var(ctx, "SetupMode");
    let add_sources = |mut finding: Finding| {
        for read in [&secure_boot, &setup_mode] {
            if let VarRead::Value(_, path) | VarRead::Bad(_, path) = read {
                finding = finding.source(path.clone());
            }
        }
        facts(finding, true, secure_boot.fact(), setup_mode.fact()).source(EFIVARS_DIR)
    };

    match (&secure_boot, &setup_mode) {
        (VarRead::Bad(reason, _), _) | (_, VarRead::Bad(reason, _)) => {
            add_sources(Finding::unknown(ID, reason.clone()))
        }
        (VarRead::Absent, _) if !variables_visible(ctx) => add_sources(Finding::unknown(
            ID,
            "no EFI variables are visible: efivarfs is not mounted at /sys/firmware/efi/efivars",
        )),
        (VarRead::Absent, _) => add_sources(Finding::fail(
            ID,
            "the firmware has no SecureBoot variable: it does not support Secure Boot",
            Remediation::new(
                "This firmware does not offer Secure Boot. Look for a firmware update from the \
                 vendor that adds it (UEFI 2.3.1 or later), or use a machine that supports it.",
            )
            .with_url(HELP_URL),
        )),
        (VarRead::Value(_, _), VarRead::Absent) => add_sources(Finding::unknown(
            ID,
            "the SetupMode variable is missing, so whether platform keys are enrolled is not known",
        )),
        (VarRead::Value(_, _), VarRead::Value(true, _)) => add_sources(Finding::fail(
            ID,
            "Secure Boot is in Setup Mode: no platform key is enrolled",
            setup_mode_remediation(),
        )),
        (VarRead::Value(false, _), VarRead::Value(false, _)) => add_sources(Finding::fail(
            ID,
            "Secure Boot is disabled",
            enable_remediation(),
        )),
        (VarRead::Value(true, _), VarRead::Value(false, _)) => {
            let summary = match lockdown.as_str() {
                Some(mode) => format!("Secure Boot is enabled (kernel lockdown: {mode})"),
                None => "Secure Boot is enabled".to_owned(),
            };
            add_sources(Finding::pass(ID, summary))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn efivar_bytes() {
        // Attributes 0x06 (boot service + runtime access), then the data byte.
        assert_eq!(parse_efivar_bool("SecureBoot", &[6, 0, 0, 0, 1]), Ok(true));
        assert_eq!(parse_efivar_bool("SecureBoot", &[6, 0, 0, 0, 0]), Ok(false));
        assert!(matches!(
            parse_efivar_bool("SecureBoot", &[6, 0, 0, 0]),
            Err(EfiVarError::Truncated { len: 4, .. })
        ));
        assert!(matches!(
            parse_efivar_bool("SecureBoot", &[6, 0, 0, 0, 2]),
            Err(EfiVarError::NotBoolean { value: 2, .. })
        ));
        assert!(matches!(
            parse_efivar_bool("SecureBoot", &[6, 0, 0, 0, 1, 0]),
            Err(EfiVarError::TooLong { len: 2, .. })
        ));
    }

    #[test]
    fn lockdown_mode_is_the_bracketed_word() {
        assert_eq!(
            parse_lockdown("none [integrity] confidentiality\n").as_deref(),
            Some("integrity")
        );
        assert_eq!(
            parse_lockdown("[none] integrity confidentiality").as_deref(),
            Some("none")
        );
        assert_eq!(parse_lockdown("none integrity"), None);
        assert_eq!(parse_lockdown("[]"), None);
    }
}
