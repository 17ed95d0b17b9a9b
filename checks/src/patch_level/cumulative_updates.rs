//! The newest Windows cumulative update (LCU) per build that posture knows of: a dated
//! table, and how a device's `build.UBR` compares with it (pure; every OS).
//!
//! Source: Microsoft's Windows release health pages, "Windows 11 release information" and
//! "Windows 10 release information" (`https://learn.microsoft.com/windows/release-health/windows11-release-information`,
//! `.../release-information`), the 2025-07-08 security updates. The table is data with a
//! date: a device below it is certainly missing cumulative updates; a device at or above
//! it is only known to be current while the table is recent ([`TABLE_MAX_AGE_DAYS`]). After
//! that, Windows Update's own scan (see `windows_update`) decides, or the answer is
//! `unknown`. Refresh the table with each month's Patch Tuesday.

/// Day of the newest update in [`TABLE`].
pub const TABLE_AS_OF: &str = "2025-07-08";

/// How old the table may be for "at or above the table" to count as current: a month's
/// update plus a week's grace.
pub const TABLE_MAX_AGE_DAYS: u64 = 38;

/// (build, UBR of the newest LCU, KB, release day).
pub const TABLE: &[(u32, u32, &str, &str)] = &[
    (26100, 4652, "KB5062553", "2025-07-08"), // Windows 11 24H2
    (22631, 5624, "KB5062552", "2025-07-08"), // Windows 11 23H2
    (22621, 5624, "KB5062552", "2025-07-08"), // Windows 11 22H2 (Enterprise, Education)
    (19045, 6093, "KB5062554", "2025-07-08"), // Windows 10 22H2
];

/// How a device's build compares with the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LcuState {
    /// Below the newest LCU in the table: missing at least that update.
    Behind {
        /// UBR of the newest known LCU.
        latest_ubr: u32,
        /// Its KB number.
        kb: &'static str,
        /// Its release day.
        released: &'static str,
    },
    /// At or above the newest LCU in the table.
    AtLeastTable {
        /// Its KB number.
        kb: &'static str,
    },
    /// The build is not in the table.
    UnknownBuild,
}

/// Compares `build.ubr` with the table.
pub fn assess(build: u32, ubr: u32) -> LcuState {
    match TABLE.iter().find(|(b, ..)| *b == build) {
        None => LcuState::UnknownBuild,
        Some((_, latest, kb, released)) if ubr < *latest => LcuState::Behind {
            latest_ubr: *latest,
            kb,
            released,
        },
        Some((_, _, kb, _)) => LcuState::AtLeastTable { kb },
    }
}
