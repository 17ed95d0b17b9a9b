//! Facts about this process (not about the system it runs on): who it runs as.

/// This process's effective uid (Unix).
#[cfg(unix)]
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// Whether this process runs with effective uid 0 (always false off Unix).
pub fn is_root() -> bool {
    #[cfg(unix)]
    {
        effective_uid() == 0
    }
    #[cfg(not(unix))]
    {
        false
    }
}

#[cfg(all(test, unix))]
mod tests {
    #[test]
    fn matches_procfs() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let euid: u32 = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|r| r.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(super::effective_uid(), euid);
    }
}
