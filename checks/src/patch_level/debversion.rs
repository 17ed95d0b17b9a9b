//! Debian version ordering, as dpkg implements it (deb-version(7), dpkg's `verrevcmp`):
//! `[epoch:]upstream[-revision]`, compared epoch first (numerically), then upstream, then
//! revision, each by alternating non-digit runs (letters before non-letters, `~` before
//! everything, even the end of the string) and digit runs (numerically).

use std::cmp::Ordering;

/// A parsed Debian version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebVersion<'a> {
    /// The epoch (0 when absent).
    pub epoch: u64,
    /// The upstream part.
    pub upstream: &'a str,
    /// The Debian revision ("" when absent, which sorts equal to "0").
    pub revision: &'a str,
}

impl<'a> DebVersion<'a> {
    /// Splits a version string. An unparseable epoch counts as 0, as an unsortable
    /// version must still sort somewhere; dpkg would reject such a version at install time.
    pub fn parse(text: &'a str) -> Self {
        let text = text.trim();
        let (epoch, rest) = match text.split_once(':') {
            Some((epoch, rest)) if epoch.bytes().all(|b| b.is_ascii_digit()) => {
                (epoch.parse().unwrap_or(0), rest)
            }
            _ => (0, text),
        };
        let (upstream, revision) = rest.rsplit_once('-').unwrap_or((rest, ""));
        Self {
            epoch,
            upstream,
            revision,
        }
    }
}

impl Ord for DebVersion<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream, other.upstream))
            .then_with(|| verrevcmp(self.revision, other.revision))
    }
}

impl PartialOrd for DebVersion<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares two Debian version strings.
pub fn compare(a: &str, b: &str) -> Ordering {
    DebVersion::parse(a).cmp(&DebVersion::parse(b))
}

/// The weight of one character in a non-digit run; `None` is the end of the string.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp` over one part (upstream or revision).
pub fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let digit_at = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        // Non-digit run.
        while (i < a.len() && !digit_at(a, i)) || (j < b.len() && !digit_at(b, j)) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        // Digit run: skip leading zeros, then the longer run is larger, else the first
        // differing digit decides.
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit_at(a, i) && digit_at(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit_at(a, i) {
            return Ordering::Greater;
        }
        if digit_at(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal, Greater, Less};

    #[test]
    fn parses_epoch_upstream_and_revision() {
        let v = DebVersion::parse("1:4.13+dfsg1-1+deb12u2");
        assert_eq!(v.epoch, 1);
        assert_eq!(v.upstream, "4.13+dfsg1");
        assert_eq!(v.revision, "1+deb12u2");
        // The revision is after the last hyphen; upstream may contain hyphens.
        let v = DebVersion::parse("2.0-rc1-3");
        assert_eq!((v.upstream, v.revision), ("2.0-rc1", "3"));
        // A colon that is not preceded by digits only is not an epoch.
        let v = DebVersion::parse("a:b");
        assert_eq!((v.epoch, v.upstream), (0, "a:b"));
    }

    // Cases from dpkg's own test suite (lib/dpkg/t/t-version.c) and deb-version(7).
    #[test]
    fn orders_like_dpkg() {
        let cases: &[(&str, &str, Ordering)] = &[
            ("0", "0", Equal),
            ("0", "00", Equal),
            ("1.0", "1.0-0", Equal),
            ("1", "0", Greater),
            ("0:1", "1", Equal),
            ("1:0", "2", Greater),
            ("1:2.0", "2:1.0", Less),
            ("1.0", "1.0.0", Less),
            ("1.2", "1.10", Less),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0~", "1.0", Less),
            ("1.0", "1.0a", Less),
            ("1.0a", "1.0+", Less),
            ("1.0+", "1.0.", Less),
            ("1.0-1", "1.0-1~bpo1", Greater),
            ("1.0-1", "1.0-1+deb12u1", Less),
            ("1.0-1+b1", "1.0-1", Greater),
            ("5.2.15-2+b8", "5.2.15-2+b13", Less),
            ("12.4+deb12u11", "12.4+deb12u15", Less),
            ("20230311+deb12u1", "20250419~deb12u2", Less),
            ("1:4.13+dfsg1-1+deb12u1", "1:4.13+dfsg1-1+deb12u2", Less),
            ("2.6.1", "2.6.2", Less),
            ("a", "b", Less),
            ("a", "A", Greater),
            ("1.000", "1.0", Equal),
            ("0.1-9", "0.1-10", Less),
            ("1:19.1.7-3~deb12u1", "1:19.1.7-3", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), *want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn kernel_release_strings_order_numerically() {
        assert_eq!(verrevcmp("6.1.0-26-amd64", "6.1.0-3-amd64"), Greater);
        assert_eq!(
            verrevcmp("6.11.4-301.fc41.x86_64", "6.9.12-200.fc40.x86_64"),
            Greater
        );
        assert_eq!(verrevcmp("6.11.5-arch1-1", "6.11.5-arch1-1"), Equal);
    }
}
