//! apt/dpkg: installed packages, candidate versions from apt's lists, security suites, and
//! the last successful upgrade from apt's history log. Everything here is pure: the
//! check's module reads the files and hands their contents (or readers) to these parsers.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::time::SystemTime;

use super::debversion::compare;
use super::time::{parse_local_datetime, parse_rfc2822};

/// A package dpkg has on disk (any state that has files unpacked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Package name.
    pub name: String,
    /// Architecture (`amd64`, `all`, ...).
    pub arch: String,
    /// Installed version.
    pub version: String,
}

/// One package paragraph's fields that matter here, borrowed from the text when it is
/// valid UTF-8 (nearly always: no allocation per field).
#[derive(Debug, Default)]
struct Paragraph<'a> {
    package: Option<Cow<'a, str>>,
    version: Option<Cow<'a, str>>,
    arch: Option<Cow<'a, str>>,
    status: Option<Cow<'a, str>>,
}

/// A field's value after its `Key:` (`key_len` bytes), trimmed; lossily decoded when it
/// is not UTF-8.
fn value_of(line: &[u8], key_len: usize) -> Cow<'_, str> {
    match String::from_utf8_lossy(line.get(key_len..).unwrap_or_default()) {
        Cow::Borrowed(value) => Cow::Borrowed(value.trim()),
        Cow::Owned(value) => Cow::Owned(value.trim().to_owned()),
    }
}

/// Walks the deb822 paragraphs of a dpkg status file or an apt `Packages` list, calling
/// `f` for each paragraph with (package, architecture, version, status). Paragraphs whose
/// package `wanted` rejects are skipped whole, as are continuation lines and other fields,
/// so a 50 MB list streams through a fixed buffer. Bytes that are not UTF-8 (descriptions
/// of old packages) are tolerated: only the named fields are decoded, lossily.
///
/// Why paragraphs and not lines: a list has ~60,000 paragraphs but a laptop has only a
/// few thousand packages installed. `Package:` comes first in both file kinds, so an
/// unwanted paragraph is skipped with one SIMD search for the blank line that ends it,
/// instead of a search per line (about a million of them).
/// [`for_each_paragraph`] over text already in memory: no copy into a read buffer.
fn for_each_paragraph_in(
    bytes: &[u8],
    wanted: impl Fn(&str) -> bool,
    mut f: impl FnMut(&str, &str, &str, Option<&str>),
) {
    let separator = memchr::memmem::Finder::new(b"\n\n");
    let mut start = 0;
    while let Some(end) = separator.find(bytes.get(start..).unwrap_or_default()) {
        paragraph(
            bytes.get(start..start + end + 1).unwrap_or_default(),
            &wanted,
            &mut f,
        );
        start += end + 2;
    }
    paragraph(bytes.get(start..).unwrap_or_default(), &wanted, &mut f);
}

fn for_each_paragraph(
    mut reader: impl Read,
    wanted: impl Fn(&str) -> bool,
    mut f: impl FnMut(&str, &str, &str, Option<&str>),
) -> std::io::Result<()> {
    let separator = memchr::memmem::Finder::new(b"\n\n");
    let mut buffer = vec![0u8; 1 << 20];
    let mut filled = 0;
    loop {
        if filled == buffer.len() {
            // One paragraph larger than the buffer: grow (the reader is size-capped).
            buffer.resize(buffer.len() * 2, 0);
        }
        let read = reader.read(&mut buffer[filled..])?;
        filled += read;
        let mut start = 0;
        while let Some(end) = separator.find(&buffer[start..filled]) {
            paragraph(&buffer[start..start + end + 1], &wanted, &mut f);
            start += end + 2;
        }
        if read == 0 {
            paragraph(&buffer[start..filled], &wanted, &mut f);
            return Ok(());
        }
        buffer.copy_within(start..filled, 0);
        filled -= start;
    }
}

/// Handles one paragraph (its text, possibly preceded by extra blank lines).
fn paragraph(
    text: &[u8],
    wanted: &impl Fn(&str) -> bool,
    f: &mut impl FnMut(&str, &str, &str, Option<&str>),
) {
    let first = text.iter().position(|b| *b != b'\n').unwrap_or(text.len());
    let text = &text[first..];
    if let Some(rest) = text.strip_prefix(b"Package:") {
        let line_end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        if !wanted(&value_of(&rest[..line_end], 0)) {
            return;
        }
    }
    let mut fields = Paragraph::default();
    // Line ends found with memchr (SIMD) rather than a byte-by-byte split: a status file
    // is ~1 MB of mostly description and conffile lines.
    let mut line_start = 0;
    for line_end in memchr::memchr_iter(b'\n', text).chain(std::iter::once(text.len())) {
        let line = text.get(line_start..line_end).unwrap_or_default();
        line_start = line_end + 1;
        match line.first() {
            // Continuation lines (descriptions, conffiles) belong to other fields.
            Some(b' ' | b'\t') | None => {}
            _ if line.starts_with(b"Package:") => fields.package = Some(value_of(line, 8)),
            _ if line.starts_with(b"Version:") => fields.version = Some(value_of(line, 8)),
            _ if line.starts_with(b"Architecture:") => fields.arch = Some(value_of(line, 13)),
            _ if line.starts_with(b"Status:") => fields.status = Some(value_of(line, 7)),
            _ => {}
        }
    }
    if let (Some(name), Some(version)) = (fields.package, fields.version) {
        if wanted(&name) {
            let arch = fields.arch.unwrap_or_default();
            f(&name, &arch, &version, fields.status.as_deref());
        }
    }
}

/// Whether a dpkg `Status:` value (`want flag state`) means the package's files are
/// installed. `config-files` and `not-installed` are not.
fn status_is_installed(status: &str) -> bool {
    let state = status.split_whitespace().nth(2).unwrap_or("");
    matches!(
        state,
        "installed" | "triggers-awaited" | "triggers-pending" | "half-configured" | "unpacked"
    )
}

/// Parses `/var/lib/dpkg/status`: the installed packages.
pub fn parse_dpkg_status(text: &str) -> Vec<Installed> {
    let mut out = Vec::new();
    for_each_paragraph_in(
        text.as_bytes(),
        |_| true,
        |name, arch, version, status| {
            if status.is_some_and(status_is_installed) {
                out.push(Installed {
                    name: name.to_owned(),
                    arch: arch.to_owned(),
                    version: version.to_owned(),
                });
            }
        },
    );
    out
}

/// Whether a package is installed according to a dpkg status file's text.
pub fn is_installed(status_text: &str, package: &str) -> bool {
    // Only the paragraphs naming the package are parsed: one SIMD search for its
    // `Package:` line (dpkg writes exactly one space) instead of parsing and copying all
    // of a status file that lists thousands of packages.
    let bytes = status_text.as_bytes();
    let needle = format!("Package: {package}\n");
    let mut found = false;
    for at in memchr::memmem::find_iter(bytes, needle.as_bytes()) {
        if at > 0 && bytes.get(at - 1) != Some(&b'\n') {
            continue;
        }
        let before = bytes.get(..at).unwrap_or_default();
        let start = memchr::memmem::rfind(before, b"\n\n").map_or(0, |p| p + 2);
        let end = memchr::memmem::find(bytes.get(at..).unwrap_or_default(), b"\n\n")
            .map_or(bytes.len(), |e| at + e + 1);
        paragraph(
            bytes.get(start..end).unwrap_or_default(),
            &|name: &str| name == package,
            &mut |_: &str, _: &str, _: &str, status: Option<&str>| {
                found |= status.is_some_and(status_is_installed);
            },
        );
    }
    found
}

/// The fields of a `Release`/`InRelease` file that matter here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Release {
    /// `Origin`.
    pub origin: String,
    /// `Label`.
    pub label: String,
    /// `Suite`, e.g. `bookworm-security` or `oldstable-security`.
    pub suite: String,
    /// `Codename`.
    pub codename: String,
    /// `Date`, when the archive generated this Release file.
    pub date: Option<SystemTime>,
    /// `NotAutomatic: yes` (experimental, backports): apt never picks it by itself.
    pub not_automatic: bool,
    /// `ButAutomaticUpgrades: yes`: upgrades of packages installed from it are picked.
    pub but_automatic_upgrades: bool,
}

/// Parses a `Release` or clearsigned `InRelease` file (only its first paragraph).
pub fn parse_release(text: &str) -> Release {
    let mut lines = text.lines().peekable();
    if lines
        .peek()
        .is_some_and(|l| l.starts_with("-----BEGIN PGP SIGNED MESSAGE"))
    {
        // Skip the armor header ("Hash: ...") up to its blank line.
        for line in lines.by_ref() {
            if line.trim().is_empty() {
                break;
            }
        }
    }
    let mut release = Release::default();
    for line in lines {
        if line.trim().is_empty() || line.starts_with("-----BEGIN PGP SIGNATURE") {
            break;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Origin" => release.origin = value.to_owned(),
            "Label" => release.label = value.to_owned(),
            "Suite" => release.suite = value.to_owned(),
            "Codename" => release.codename = value.to_owned(),
            "Date" => release.date = parse_rfc2822(value),
            "NotAutomatic" => release.not_automatic = value.eq_ignore_ascii_case("yes"),
            "ButAutomaticUpgrades" => {
                release.but_automatic_upgrades = value.eq_ignore_ascii_case("yes")
            }
            _ => {}
        }
    }
    release
}

/// Whether a list belongs to a security suite: its suite or codename ends in `-security`
/// (Debian >= 11, Ubuntu), its label/origin says so (`Debian-Security`), or it was fetched
/// from a security archive (`security.debian.org`, `security.ubuntu.com`,
/// `.../debian-security`, also Debian <= 10's `buster/updates` there).
pub fn is_security_list(list_file: &str, release: Option<&Release>) -> bool {
    let by_release = release.is_some_and(|r| {
        r.suite.ends_with("-security")
            || r.codename.ends_with("-security")
            || r.label.to_ascii_lowercase().contains("security")
            || r.origin.to_ascii_lowercase().contains("security")
    });
    let name = list_file.to_ascii_lowercase();
    by_release
        || name.contains("security.debian.org")
        || name.contains("security.ubuntu.com")
        || name.contains("_debian-security_")
        || name.contains("-security_")
}

/// The compression of a `Packages` list, from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain text.
    None,
    /// `.lz4` (apt with `Acquire::GzipIndexes` on recent apt).
    Lz4,
    /// `.gz`.
    Gzip,
}

/// Classifies a file in `/var/lib/apt/lists`: a binary `Packages` list (with its
/// compression, or `Err(extension)` for a compression we do not read), or not a list.
pub fn packages_list_kind(file: &str) -> Option<Result<Compression, String>> {
    let (_, suffix) = file.rsplit_once("_Packages")?;
    Some(match suffix {
        "" => Ok(Compression::None),
        ".lz4" => Ok(Compression::Lz4),
        ".gz" => Ok(Compression::Gzip),
        other => Err(other.trim_start_matches('.').to_owned()),
    })
}

/// The `Release`/`InRelease` file that describes a `Packages` list, among `files` (the
/// names in the lists directory): the longest `_`-separated prefix of the list's name that
/// has one (`host_path_dists_suite_main_binary-amd64_Packages` ->
/// `host_path_dists_suite_InRelease`). Works for flat repositories too.
pub fn release_file_for<'a>(list_file: &str, files: &'a [String]) -> Option<&'a String> {
    let stem = &list_file[..list_file.rfind("_Packages")?];
    let mut prefix = stem;
    loop {
        for name in ["InRelease", "Release"] {
            let wanted = format!("{prefix}_{name}");
            if let Some(found) = files.iter().find(|f| **f == wanted) {
                return Some(found);
            }
        }
        prefix = &prefix[..prefix.rfind('_')?];
    }
}

/// What one list offers for installed packages.
#[derive(Debug, Clone, Default)]
pub struct ListContents {
    /// Newest version per installed (name, arch).
    pub newest: HashMap<(String, String), String>,
    /// Installed (name, arch) whose installed version this list carries.
    pub carries_installed: HashSet<(String, String)>,
}

/// Reads one `Packages` list, keeping only what concerns installed packages.
pub fn read_list(
    reader: impl Read,
    installed: &HashMap<(String, String), String>,
) -> std::io::Result<ListContents> {
    let mut out = ListContents::default();
    let names: HashSet<&str> = installed.keys().map(|(name, _)| name.as_str()).collect();
    for_each_paragraph(
        reader,
        |name| names.contains(name),
        |name, arch, version, _| {
            let key = (name.to_owned(), arch.to_owned());
            let Some(installed_version) = installed.get(&key) else {
                return;
            };
            if compare(version, installed_version).is_eq() {
                out.carries_installed.insert(key.clone());
            }
            match out.newest.get_mut(&key) {
                Some(v) if compare(version, v).is_gt() => *v = version.to_owned(),
                Some(_) => {}
                None => {
                    out.newest.insert(key, version.to_owned());
                }
            }
        },
    )?;
    Ok(out)
}

/// apt's default pin priority of a list, from its Release file (apt_preferences(5)):
/// 1 for `NotAutomatic` (experimental), 100 with `ButAutomaticUpgrades` (backports),
/// else 500. `/etc/apt/preferences` pins are not read (see the module documentation).
pub fn default_priority(release: Option<&Release>) -> i32 {
    match release {
        Some(r) if r.not_automatic && r.but_automatic_upgrades => 100,
        Some(r) if r.not_automatic => 1,
        _ => 500,
    }
}

/// The installed version's own priority in apt: 100 (dpkg status), or the list's if higher.
const INSTALLED_PRIORITY: i32 = 100;

/// One list's offer, with what its Release file says.
#[derive(Debug, Clone)]
pub struct ListOffer {
    /// The list's file name.
    pub file: String,
    /// Whether it is a security suite.
    pub security: bool,
    /// Its Release file's `Date`.
    pub date: Option<SystemTime>,
    /// Its pin priority ([`default_priority`]).
    pub priority: i32,
    /// What it offers.
    pub contents: ListContents,
}

/// A pending update of one installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpdate {
    /// Package name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// Installed version.
    pub installed: String,
    /// The version apt would upgrade to.
    pub candidate: String,
    /// Whether a security list offers a version newer than the installed one.
    pub security: bool,
    /// The earliest `Date` of a security Release file that offers a newer version: the
    /// update has been available at least since then.
    pub available_since: Option<SystemTime>,
}

/// Pending updates: installed packages whose apt candidate is newer than the installed
/// version. The candidate is chosen as apt does without pins: among the installed version
/// (at priority 100, or the highest priority of a list carrying it) and the newer versions
/// offered, the highest priority wins, then the highest version; versions older than the
/// installed one are never candidates (no downgrades below priority 1000).
pub fn pending_updates(installed: &[Installed], offers: &[ListOffer]) -> Vec<PendingUpdate> {
    let mut out = BTreeMap::new();
    for pkg in installed {
        let key = (pkg.name.clone(), pkg.arch.clone());
        let installed_priority = offers
            .iter()
            .filter(|o| o.contents.carries_installed.contains(&key))
            .map(|o| o.priority)
            .fold(INSTALLED_PRIORITY, i32::max);
        let mut best: (i32, &str) = (installed_priority, pkg.version.as_str());
        let mut security = false;
        let mut available_since: Option<SystemTime> = None;
        for offer in offers {
            let Some(version) = offer.contents.newest.get(&key) else {
                continue;
            };
            if compare(version, &pkg.version).is_le() {
                continue;
            }
            let better = offer.priority > best.0
                || (offer.priority == best.0 && compare(version, best.1).is_gt());
            if better {
                best = (offer.priority, version);
            }
            if offer.security && offer.priority >= installed_priority {
                security = true;
                if let Some(date) = offer.date {
                    available_since = Some(available_since.map_or(date, |d| d.min(date)));
                }
            }
        }
        if compare(best.1, &pkg.version).is_gt() {
            out.insert(
                key,
                PendingUpdate {
                    name: pkg.name.clone(),
                    arch: pkg.arch.clone(),
                    installed: pkg.version.clone(),
                    candidate: best.1.to_owned(),
                    security,
                    available_since,
                },
            );
        }
    }
    out.into_values().collect()
}

/// Whether an apt history `Commandline:` is a whole-system upgrade: `apt`/`apt-get`
/// `upgrade`/`full-upgrade`/`dist-upgrade`, `aptitude safe-upgrade`/`full-upgrade`,
/// unattended-upgrades, or PackageKit's update roles (GNOME Software, Discover).
pub fn is_upgrade_command(commandline: &str) -> bool {
    let mut words = commandline.split_whitespace();
    let Some(program) = words.next() else {
        return false;
    };
    let program = program.rsplit('/').next().unwrap_or(program);
    if program.starts_with("unattended-upgrade") {
        return true;
    }
    if program == "packagekit" {
        return commandline.contains("role='update-packages'")
            || commandline.contains("role='upgrade-system'");
    }
    matches!(program, "apt" | "apt-get" | "aptitude")
        && words.any(|w| {
            matches!(
                w,
                "upgrade" | "full-upgrade" | "dist-upgrade" | "safe-upgrade"
            )
        })
}

/// The end time of the newest successful whole-system upgrade in an apt `history.log`
/// (an entry with an upgrade `Commandline`, an `End-Date`, and no `Error`). Times in the
/// log are local wall-clock times without a zone; see [`parse_local_datetime`].
pub fn last_upgrade_in_history(text: &str) -> Option<SystemTime> {
    let mut newest: Option<SystemTime> = None;
    for entry in text.split("\n\n") {
        let mut commandline = None;
        let mut end = None;
        let mut error = false;
        for line in entry.lines() {
            if let Some(v) = line.strip_prefix("Commandline:") {
                commandline = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("End-Date:") {
                end = parse_local_datetime(v.trim());
            } else if line.starts_with("Error:") {
                error = true;
            }
        }
        if let (Some(cmd), Some(end), false) = (commandline, end, error) {
            if is_upgrade_command(cmd) {
                newest = Some(newest.map_or(end, |n| n.max(end)));
            }
        }
    }
    newest
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: bash
Status: install ok installed
Priority: required
Architecture: amd64
Version: 5.2.15-2+b8
Description: GNU Bourne Again SHell
 Bash is an sh-compatible command language interpreter.

Package: old-removed
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1

Package: held
Status: hold ok installed
Architecture: all
Version: 2.0
";

    /// A reader that hands out at most `step` bytes per read, to put paragraph and line
    /// boundaries at every possible place relative to the reads.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn paragraphs_straddling_reads_are_joined() {
        let text = b"Package: a\nVersion: 1.0\n\n\nPackage: skip\nVersion: 9\n Description continues\n\nPackage: b\nArchitecture: amd64\nVersion: 2.0";
        for step in 1..text.len() {
            let mut seen = Vec::new();
            for_each_paragraph(
                Trickle { data: text, step },
                |name| name != "skip",
                |n, a, v, _| seen.push(format!("{n}:{a}={v}")),
            )
            .unwrap();
            assert_eq!(seen, vec!["a:=1.0", "b:amd64=2.0"], "step {step}");
        }
    }

    #[test]
    fn dpkg_status_keeps_installed_and_held_not_config_files() {
        let installed = parse_dpkg_status(STATUS);
        let names: Vec<_> = installed.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["bash", "held"]);
        assert_eq!(installed[0].version, "5.2.15-2+b8");
        assert_eq!(installed[1].arch, "all");
        assert!(is_installed(STATUS, "held"));
        // The first paragraph of the file.
        assert!(is_installed(STATUS, "bash"));
        assert!(!is_installed(STATUS, "old-removed"));
        // A prefix of an installed package's name is not that package.
        assert!(!is_installed(STATUS, "hel"));
    }

    #[test]
    fn non_utf8_bytes_in_other_fields_are_tolerated() {
        let mut list =
            b"Package: bash\nArchitecture: amd64\nDescription: caf\xe9\n \xff\xfe\nVersion: 9.9\n"
                .to_vec();
        list.extend_from_slice(b"\nPackage: other\nVersion: 1\n");
        let index: HashMap<_, _> = [(("bash".to_owned(), "amd64".to_owned()), "1.0".to_owned())]
            .into_iter()
            .collect();
        let contents = read_list(list.as_slice(), &index).unwrap();
        assert_eq!(contents.newest.len(), 1);
        assert_eq!(
            contents.newest[&("bash".to_owned(), "amd64".to_owned())],
            "9.9"
        );
    }

    #[test]
    fn release_from_clearsigned_inrelease() {
        let text = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: Debian\nLabel: Debian-Security\nSuite: oldstable-security\nCodename: bookworm-security\nDate: Sat, 21 Nov 2026 00:53:02 UTC\nSHA256:\n abc 0 main/x\n-----BEGIN PGP SIGNATURE-----\n\nxyz\n";
        let r = parse_release(text);
        assert_eq!(r.codename, "bookworm-security");
        assert_eq!(r.label, "Debian-Security");
        assert_eq!(
            r.date,
            Some(
                posture_core::Timestamp::parse("2026-11-21T00:53:02Z")
                    .unwrap()
                    .system_time()
            )
        );
        assert!(is_security_list("x_InRelease", Some(&r)));
        let backports = parse_release(
            "Suite: bookworm-backports\nNotAutomatic: yes\nButAutomaticUpgrades: yes\n",
        );
        assert!(backports.not_automatic && backports.but_automatic_upgrades);
        assert!(!is_security_list(
            "deb.debian.org_debian_dists_bookworm-backports_InRelease",
            Some(&backports)
        ));
    }

    #[test]
    fn security_by_file_name_when_release_is_missing() {
        assert!(is_security_list(
            "security.ubuntu.com_ubuntu_dists_noble-security_main_binary-amd64_Packages",
            None
        ));
        assert!(is_security_list(
            "security.debian.org_dists_buster_updates_main_binary-amd64_Packages",
            None
        ));
        assert!(!is_security_list(
            "archive.ubuntu.com_ubuntu_dists_noble-updates_main_binary-amd64_Packages",
            None
        ));
    }

    #[test]
    fn finds_the_release_file_of_a_list() {
        let files: Vec<String> = [
            "deb.debian.org_debian_dists_bookworm_InRelease",
            "deb.debian.org_debian_dists_bookworm-updates_InRelease",
            "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4",
            "example.org_repo_._Release",
            "example.org_repo_._Packages",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            release_file_for(&files[2], &files).map(String::as_str),
            Some("deb.debian.org_debian_dists_bookworm_InRelease")
        );
        assert_eq!(
            release_file_for(&files[4], &files).map(String::as_str),
            Some("example.org_repo_._Release")
        );
        assert_eq!(release_file_for("nothing_Packages", &files), None);
    }

    #[test]
    fn list_kinds() {
        assert_eq!(
            packages_list_kind("a_main_binary-amd64_Packages"),
            Some(Ok(Compression::None))
        );
        assert_eq!(
            packages_list_kind("a_Packages.lz4"),
            Some(Ok(Compression::Lz4))
        );
        assert_eq!(packages_list_kind("a_Packages.xz"), Some(Err("xz".into())));
        assert_eq!(packages_list_kind("a_InRelease"), None);
        assert_eq!(packages_list_kind("a_main_i18n_Translation-en"), None);
    }

    fn offer(
        text: &str,
        security: bool,
        priority: i32,
        index: &HashMap<(String, String), String>,
    ) -> ListOffer {
        ListOffer {
            file: "list".into(),
            security,
            date: Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000)),
            priority,
            contents: read_list(text.as_bytes(), index).unwrap(),
        }
    }

    fn index(installed: &[Installed]) -> HashMap<(String, String), String> {
        installed
            .iter()
            .map(|p| ((p.name.clone(), p.arch.clone()), p.version.clone()))
            .collect()
    }

    #[test]
    fn pending_means_a_newer_version_for_the_same_arch() {
        let installed = parse_dpkg_status(STATUS);
        let index = index(&installed);
        let main = "Package: bash\nArchitecture: amd64\nVersion: 5.2.15-2+b13\n\nPackage: bash\nArchitecture: i386\nVersion: 9.9\n\nPackage: held\nArchitecture: all\nVersion: 2.0\n";
        let security = "Package: bash\nArchitecture: amd64\nVersion: 5.2.15-2+b9\n\nPackage: held\nArchitecture: all\nVersion: 1.9\n";
        let offers = vec![
            offer(main, false, 500, &index),
            offer(security, true, 500, &index),
        ];
        let pending = pending_updates(&installed, &offers);
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].name, "bash");
        assert_eq!(pending[0].candidate, "5.2.15-2+b13");
        assert!(pending[0].security);
        assert!(pending[0].available_since.is_some());
    }

    #[test]
    fn backports_upgrade_only_what_was_installed_from_backports() {
        let status = "Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\n\nPackage: b\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.0-1~bpo12+1\n";
        let installed = parse_dpkg_status(status);
        let index = index(&installed);
        let stable = "Package: a\nArchitecture: amd64\nVersion: 1.0-1\n\nPackage: b\nArchitecture: amd64\nVersion: 1.5-1\n";
        let backports = "Package: a\nArchitecture: amd64\nVersion: 1.2-1~bpo12+1\n\nPackage: b\nArchitecture: amd64\nVersion: 2.0-1~bpo12+1\n\nPackage: b\nArchitecture: amd64\nVersion: 2.1-1~bpo12+1\n";
        let experimental = "Package: a\nArchitecture: amd64\nVersion: 3.0-1\n";
        let offers = vec![
            offer(stable, false, 500, &index),
            offer(backports, false, 100, &index),
            offer(experimental, false, 1, &index),
        ];
        let pending = pending_updates(&installed, &offers);
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert_eq!(
            (pending[0].name.as_str(), pending[0].candidate.as_str()),
            ("b", "2.1-1~bpo12+1")
        );
        assert_eq!(
            default_priority(Some(&parse_release(
                "NotAutomatic: yes\nButAutomaticUpgrades: yes\n"
            ))),
            100
        );
        assert_eq!(
            default_priority(Some(&parse_release("NotAutomatic: yes\n"))),
            1
        );
        assert_eq!(default_priority(None), 500);
    }

    #[test]
    fn upgrade_commands() {
        assert!(is_upgrade_command("apt-get -y upgrade"));
        assert!(is_upgrade_command("apt full-upgrade"));
        assert!(is_upgrade_command("/usr/bin/apt-get -o X=1 dist-upgrade"));
        assert!(is_upgrade_command("/usr/bin/unattended-upgrade"));
        assert!(is_upgrade_command("aptitude safe-upgrade"));
        assert!(is_upgrade_command("packagekit role='update-packages'"));
        assert!(!is_upgrade_command(
            "apt-get install -y upgrade-helper-tool"
        ));
        assert!(!is_upgrade_command("apt-get install --only-upgrade bash"));
        assert!(!is_upgrade_command("packagekit role='install-packages'"));
    }

    #[test]
    fn history_skips_failed_and_unfinished_upgrades() {
        let log = "\nStart-Date: 2026-10-01  10:00:00\nCommandline: apt-get upgrade\nUpgrade: bash:amd64 (1, 2)\nEnd-Date: 2026-10-01  10:01:00\n\nStart-Date: 2026-10-05  10:00:00\nCommandline: apt-get dist-upgrade\nUpgrade: x:amd64 (1, 2)\nError: Sub-process /usr/bin/dpkg returned an error code (1)\nEnd-Date: 2026-10-05  10:02:00\n\nStart-Date: 2026-10-06  10:00:00\nCommandline: apt-get install vim\nEnd-Date: 2026-10-06  10:00:30\n\nStart-Date: 2026-10-07  10:00:00\nCommandline: apt upgrade\n";
        let when = last_upgrade_in_history(log).unwrap();
        assert_eq!(
            posture_core::Timestamp::from_system_time(when).to_string(),
            "2026-10-01T10:01:00Z"
        );
        assert_eq!(last_upgrade_in_history(""), None);
    }
}
