//! Reboot pending: the running kernel against the newest installed one of the same flavour.

use std::cmp::Ordering;

use super::debversion::verrevcmp;

/// A kernel release's flavour: what remains when digits and dots are removed, so
/// `6.1.0-26-amd64` and `6.1.0-27-amd64` share one (`--amd64`) but `-rt-amd64`, Arch's
/// `-lts` or Ubuntu's `-lowlatency` kernels are told apart: only a newer kernel of the
/// running flavour means a reboot would change the kernel.
pub fn flavour(release: &str) -> String {
    release
        .chars()
        .filter(|c| !c.is_ascii_digit() && *c != '.')
        .collect()
}

/// Orders kernel releases (`6.1.0-26-amd64`, `6.11.4-301.fc41.x86_64`, `6.11.5-arch1-1`)
/// by dpkg's algorithm, which compares digit runs numerically.
pub fn compare(a: &str, b: &str) -> Ordering {
    verrevcmp(a, b)
}

/// The newest installed kernel of the running kernel's flavour, from the names found in
/// `/lib/modules` and `/boot/vmlinuz-*` (the `vmlinuz-` prefix already removed).
pub fn newest_of_flavour<'a>(running: &str, installed: &'a [String]) -> Option<&'a str> {
    let wanted = flavour(running);
    installed
        .iter()
        .filter(|k| flavour(k) == wanted)
        .max_by(|a, b| compare(a, b))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn debian_abi_bumps_are_newer() {
        let installed = names(&["6.1.0-9-amd64", "6.1.0-26-amd64", "6.1.0-27-rt-amd64"]);
        assert_eq!(
            newest_of_flavour("6.1.0-9-amd64", &installed),
            Some("6.1.0-26-amd64")
        );
    }

    #[test]
    fn other_flavours_are_ignored() {
        let installed = names(&["6.6.50-1-lts", "6.11.5-arch1-1"]);
        assert_eq!(
            newest_of_flavour("6.6.50-1-lts", &installed),
            Some("6.6.50-1-lts")
        );
        assert_eq!(newest_of_flavour("6.18.44-fc-v782", &installed), None);
    }

    #[test]
    fn fedora_releases() {
        let installed = names(&["6.9.12-200.fc40.x86_64", "6.11.4-301.fc41.x86_64"]);
        assert_eq!(
            newest_of_flavour("6.9.12-200.fc40.x86_64", &installed),
            Some("6.11.4-301.fc41.x86_64")
        );
    }
}
