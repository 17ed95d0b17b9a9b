//! Device identity: a stable id derived by hashing, never the raw machine id or serial.

use posture_core::Device;
use sha2::{Digest, Sha256};

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

/// Reads the device's identity: hashed machine id, host name, DMI vendor, model and serial
/// number (the serial only as root: `product_serial` is 0400 root).
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

fn dmi(ctx: &Context, attr: &str) -> Option<String> {
    read_attr(ctx, format!("/sys/class/dmi/id/{attr}"))
        .ok()
        .filter(|v| !v.is_empty() && !is_placeholder(v))
}

/// Firmware fills unset DMI fields with placeholders; reporting them is noise.
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
    use crate::ChecksConfig;
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
