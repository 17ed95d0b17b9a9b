//! Device identity: a stable id derived by hashing, never the raw machine id or serial.

use posture_core::Device;
use sha2::{Digest, Sha256};

#[cfg(not(windows))]
use crate::source::read_attr;
use crate::Context;

/// Domain separation: the same machine id hashed by another tool gives another value,
/// so our device id cannot be joined with other data sets that use the raw machine id.
const DEVICE_ID_DOMAIN: &[u8] = b"posture device id v1\0";

/// Derives the device id from a machine id (hex SHA-256 with domain separation).
pub fn device_id_from_machine_id(machine_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(DEVICE_ID_DOMAIN);
    hasher.update(machine_id.trim().as_bytes());
    posture_core::hex::encode(&hasher.finalize())
}

/// Windows: the device id is derived from the registry's
/// `HKLM\SOFTWARE\Microsoft\Cryptography\MachineGuid` (set at installation; what MDMs
/// key devices by), read with `reg.exe query` from System32; the host name from
/// `COMPUTERNAME`. Never the Unix files: `\etc\machine-id` on the current drive is a path
/// any user may create. Without a MachineGuid (a fixture root, no `reg.exe`, a malformed
/// value) the id is `unidentified`, as on Linux.
#[cfg(windows)]
pub fn device_identity(ctx: &Context) -> Device {
    let id = crate::source::run_command(
        ctx,
        "reg.exe",
        &[
            "query",
            "HKLM\\SOFTWARE\\Microsoft\\Cryptography",
            "/v",
            "MachineGuid",
        ],
        std::time::Duration::from_secs(10),
    )
    .ok()
    .and_then(|out| machine_guid_from_reg_query(&out.stdout))
    .map_or_else(
        || "unidentified".to_owned(),
        |guid| device_id_from_machine_id(&guid),
    );
    let hostname = if ctx.live {
        std::env::var("COMPUTERNAME").ok().filter(|h| !h.is_empty())
    } else {
        None
    };
    Device {
        id,
        hostname: hostname.unwrap_or_else(|| "unknown".to_owned()),
        vendor: None,
        model: None,
        serial_number: None,
    }
}

/// The `MachineGuid` value from `reg.exe query HKLM\SOFTWARE\Microsoft\Cryptography /v
/// MachineGuid` output (`    MachineGuid    REG_SZ    <guid>`), lower-cased; `None` unless
/// it is a GUID (8-4-4-4-12 hex digits).
#[cfg_attr(not(windows), allow(dead_code))]
pub fn machine_guid_from_reg_query(output: &str) -> Option<String> {
    let line = output
        .lines()
        .find(|l| l.split_whitespace().next() == Some("MachineGuid"))?;
    let mut fields = line.split_whitespace();
    let (_, kind, value) = (fields.next()?, fields.next()?, fields.next()?);
    let groups: Vec<&str> = value.split('-').collect();
    let shape_ok = kind == "REG_SZ"
        && fields.next().is_none()
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    shape_ok.then(|| value.to_ascii_lowercase())
}

/// Reads the device's identity: hashed machine id, host name, DMI vendor, model and serial
/// number (the serial only as root: `product_serial` is 0400 root).
#[cfg(not(windows))]
pub fn device_identity(ctx: &Context) -> Device {
    // systemd's machine id first; D-Bus's copy on systems without systemd; the firmware
    // UUID (root-only) last. "unidentified" makes a missing id visible rather than invented.
    let machine_id = [
        "/etc/machine-id",
        "/var/lib/dbus/machine-id",
        "/sys/class/dmi/id/product_uuid",
    ]
    .iter()
    .filter_map(|p| read_attr(ctx, p).ok())
    .find(|id| !id.is_empty());
    let id = machine_id.map_or_else(
        || "unidentified".to_owned(),
        |m| device_id_from_machine_id(&m),
    );
    let hostname = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| read_attr(ctx, p).ok())
        .find(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    Device {
        id,
        hostname,
        vendor: dmi(ctx, "sys_vendor"),
        model: dmi(ctx, "product_name"),
        serial_number: read_attr(ctx, "/sys/class/dmi/id/product_serial")
            .ok()
            .and_then(|v| serial_number(&v)),
    }
}

/// A DMI serial number as reported: `None` for what firmware writes when no serial was set
/// (empty, "To Be Filled By O.E.M.", "0", "Default string", all zeros, ...). A device is
/// mapped to other systems by this value, so a shared placeholder must never stand in
/// for a serial.
#[cfg_attr(windows, allow(dead_code))]
pub fn serial_number(raw: &str) -> Option<String> {
    let value = raw.trim();
    let lower = value.to_ascii_lowercase();
    let placeholder = value.is_empty()
        || is_placeholder(value)
        || [
            "none",
            "n/a",
            "na",
            "unknown",
            "not applicable",
            "oem",
            "o.e.m.",
            "system serial number",
            "chassis serial number",
            "serial number",
            "123456789",
            "0123456789",
            "1234567890",
        ]
        .contains(&lower.as_str())
        // "0", "00000000", "XXXXXXXX", "        ": one character repeated.
        || value.chars().all(|c| value.starts_with(c));
    (!placeholder).then(|| value.to_owned())
}

#[cfg(not(windows))]
fn dmi(ctx: &Context, attr: &str) -> Option<String> {
    read_attr(ctx, format!("/sys/class/dmi/id/{attr}"))
        .ok()
        .filter(|v| !v.is_empty() && !is_placeholder(v))
}

/// Firmware fills unset DMI fields with placeholders; reporting them is noise.
#[cfg_attr(windows, allow(dead_code))]
fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    [
        "to be filled by o.e.m.",
        "default string",
        "system product name",
        "not specified",
    ]
    .contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_guid_from_reg_query_output() {
        // Captured here from Wine 8.0's reg.exe (scripts/wine/run.sh reg query ...); the
        // same layout as Windows' reg.exe (four-space indents, REG_SZ).
        let wine = "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Cryptography\r\n    MachineGuid    REG_SZ    119e84be-5627-4798-a0d5-c15773f35631\r\n\r\n";
        assert_eq!(
            machine_guid_from_reg_query(wine).as_deref(),
            Some("119e84be-5627-4798-a0d5-c15773f35631")
        );
        let upper = "    MachineGuid    REG_SZ    119E84BE-5627-4798-A0D5-C15773F35631";
        assert_eq!(
            machine_guid_from_reg_query(upper).as_deref(),
            Some("119e84be-5627-4798-a0d5-c15773f35631")
        );
        for bad in [
            "",
            "ERROR: The system was unable to find the specified registry key or value.",
            "    MachineGuid    REG_SZ    ",
            "    MachineGuid    REG_SZ    not-a-guid",
            "    MachineGuid    REG_DWORD    0x1",
            "    MachineGuid    REG_SZ    119e84be-5627-4798-a0d5-c15773f3563",
            "    MachineGuid    REG_SZ    119e84be-5627-4798-a0d5-c15773f35631 x",
        ] {
            assert_eq!(machine_guid_from_reg_query(bad), None, "{bad:?}");
        }
        // The id is the hash of the GUID, not the GUID.
        let id = device_id_from_machine_id("119e84be-5627-4798-a0d5-c15773f35631");
        assert_eq!(id.len(), 64);
        assert!(!id.contains("119e84be"));
    }
    #[cfg(not(windows))]
    use crate::ChecksConfig;
    #[cfg(not(windows))]
    use std::time::SystemTime;

    #[test]
    fn device_id_is_a_hash_not_the_machine_id() {
        let id = device_id_from_machine_id("0123456789abcdef0123456789abcdef\n");
        assert_eq!(id.len(), 64);
        assert!(!id.contains("0123456789abcdef"));
        assert_eq!(
            id,
            device_id_from_machine_id("0123456789abcdef0123456789abcdef")
        );
    }

    #[cfg(not(windows))]
    #[test]
    fn reads_identity_from_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("proc/sys/kernel")).unwrap();
        std::fs::create_dir_all(root.join("sys/class/dmi/id")).unwrap();
        std::fs::write(root.join("etc/machine-id"), "5f2b\n").unwrap();
        std::fs::write(root.join("proc/sys/kernel/hostname"), "laptop-7\n").unwrap();
        std::fs::write(root.join("sys/class/dmi/id/sys_vendor"), "LENOVO\n").unwrap();
        std::fs::write(
            root.join("sys/class/dmi/id/product_name"),
            "To Be Filled By O.E.M.\n",
        )
        .unwrap();
        let ctx = Context::fixture(root, ChecksConfig::default(), SystemTime::now());
        let device = device_identity(&ctx);
        assert_eq!(device.id, device_id_from_machine_id("5f2b"));
        assert_eq!(device.hostname, "laptop-7");
        assert_eq!(device.vendor.as_deref(), Some("LENOVO"));
        assert_eq!(device.model, None);
        // product_serial missing (or unreadable: not root): absent, never guessed.
        assert_eq!(device.serial_number, None);

        std::fs::write(root.join("sys/class/dmi/id/product_serial"), "PF3ABC12\n").unwrap();
        let device = device_identity(&ctx);
        assert_eq!(device.serial_number.as_deref(), Some("PF3ABC12"));
    }

    #[test]
    fn placeholder_serials_are_absent() {
        for raw in [
            "",
            "\n",
            "To Be Filled By O.E.M.",
            "0",
            "00000000",
            "Default string",
            "System Serial Number",
            "Not Specified",
            "None",
            "XXXXXXXXXX",
        ] {
            assert_eq!(serial_number(raw), None, "{raw:?}");
        }
        assert_eq!(
            serial_number(" C02XK1ABJG5H \n").as_deref(),
            Some("C02XK1ABJG5H")
        );
        assert_eq!(
            serial_number("VMware-56 4d 1a 2b").as_deref(),
            Some("VMware-56 4d 1a 2b")
        );
    }
}
