//! dnf, pacman and zypper: their logs (last upgrade) and, where no file source for pending
//! updates exists, the output of their read-only query commands. All parsers are pure.

use std::time::SystemTime;

use super::time::parse_local_datetime;

/// Newest package upgrade in dnf's `/var/log/dnf.rpm.log` (dnf 4): lines such as
/// `2024-10-20T10:15:32+0000 SUBDEBUG Upgrade: bash-5.2.32-1.fc41.x86_64`. dnf logs no
/// "whole-system upgrade finished" marker there, so this is the last time any package
/// was upgraded (dnf upgrade, dnf-automatic, GNOME Software all write it).
pub fn dnf_last_upgrade(log: &str) -> Option<SystemTime> {
    log.lines()
        .filter(|line| line.contains(" Upgrade: ") || line.contains(" Upgraded: "))
        .filter_map(|line| parse_local_datetime(line.split_whitespace().next()?))
        .max()
}

/// Newest successful full system upgrade in `/var/log/pacman.log`: a `starting full system
/// upgrade` whose transaction completed, or which had nothing to do (no transaction before
/// the next command). An interrupted or failed transaction does not count.
pub fn pacman_last_upgrade(log: &str) -> Option<SystemTime> {
    let mut newest: Option<SystemTime> = None;
    // (when the upgrade started, whether a transaction started)
    let mut open: Option<(SystemTime, bool)> = None;
    let record = |t: SystemTime, newest: &mut Option<SystemTime>| {
        *newest = Some(newest.map_or(t, |n| n.max(t)));
    };
    for line in log.lines() {
        let Some(rest) = line.strip_prefix('[') else {
            continue;
        };
        let Some((stamp, message)) = rest.split_once(']') else {
            continue;
        };
        let Some(when) = parse_local_datetime(stamp) else {
            continue;
        };
        let message = message.trim();
        if message.starts_with("[PACMAN] Running") {
            if let Some((started, false)) = open.take() {
                record(started, &mut newest);
            }
        } else if message == "[PACMAN] starting full system upgrade" {
            open = Some((when, false));
        } else if message == "[ALPM] transaction started" {
            if let Some((_, tx)) = open.as_mut() {
                *tx = true;
            }
        } else if message == "[ALPM] transaction completed" && open.is_some() {
            open = None;
            record(when, &mut newest);
        } else if message.starts_with("[ALPM] transaction failed") {
            open = None;
        }
    }
    if let Some((started, false)) = open {
        record(started, &mut newest);
    }
    newest
}

fn is_zypper_upgrade(args: &str) -> bool {
    args.split_whitespace()
        .map(|w| w.trim_matches('\''))
        .skip(1)
        .any(|w| matches!(w, "up" | "update" | "dup" | "dist-upgrade" | "patch"))
}

/// Newest whole-system upgrade in `/var/log/zypp/history`: a `command` record running
/// `zypper up|update|dup|dist-upgrade|patch`, dated by its last `install` record (or by
/// itself when it installed nothing). libzypp logs no failure marker, so an aborted run
/// that installed some packages counts too; this is said in the module documentation.
pub fn zypper_last_upgrade(history: &str) -> Option<SystemTime> {
    let mut newest: Option<SystemTime> = None;
    let mut open: Option<SystemTime> = None;
    for line in history.lines() {
        if line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        let (Some(stamp), Some(action)) = (fields.first(), fields.get(1)) else {
            continue;
        };
        let Some(when) = parse_local_datetime(stamp) else {
            continue;
        };
        match *action {
            "command" => {
                if let Some(t) = open.take() {
                    newest = Some(newest.map_or(t, |n| n.max(t)));
                }
                if fields.get(3).is_some_and(|args| is_zypper_upgrade(args)) {
                    open = Some(when);
                }
            }
            "install" => {
                if let Some(t) = open.as_mut() {
                    *t = (*t).max(when);
                }
            }
            _ => {}
        }
    }
    if let Some(t) = open {
        newest = Some(newest.map_or(t, |n| n.max(t)));
    }
    newest
}

/// Counts packages in `dnf -q check-update` output (`name.arch  version  repo` lines),
/// stopping at `Obsoleting Packages`.
pub fn count_dnf_check_update(output: &str) -> u64 {
    let mut count = 0;
    for line in output.lines() {
        if line.starts_with("Obsoleting") {
            break;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() == 3 && fields[0].contains('.') && !line.starts_with(' ') {
            count += 1;
        }
    }
    count
}

/// Counts packages in `pacman -Qu` output (`name old -> new`).
pub fn count_pacman_qu(output: &str) -> u64 {
    output.lines().filter(|l| l.contains(" -> ")).count() as u64
}

/// Counts the rows of a zypper table (`lu`, `lp`). When the table has a `Status` column
/// (`lp`), only rows whose status is `needed` count.
pub fn count_zypper_table(output: &str) -> u64 {
    let lines: Vec<&str> = output.lines().collect();
    let Some(sep) = lines
        .iter()
        .position(|l| l.starts_with('-') && l.contains('+'))
    else {
        return 0;
    };
    let header: Vec<String> = sep
        .checked_sub(1)
        .and_then(|i| lines.get(i))
        .map(|h| {
            h.split('|')
                .map(|c| c.trim().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    let status_col = header.iter().position(|c| c == "status");
    lines[sep + 1..]
        .iter()
        .filter(|l| l.contains('|'))
        .filter(|l| match status_col {
            Some(i) => l.split('|').nth(i).map(str::trim) == Some("needed"),
            None => true,
        })
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use posture_core::Timestamp;

    fn at(t: Option<SystemTime>) -> String {
        Timestamp::from_system_time(t.unwrap()).to_string()
    }

    #[test]
    fn zypper_upgrade_arguments() {
        assert!(is_zypper_upgrade("'zypper' '--non-interactive' 'dup'"));
        assert!(is_zypper_upgrade("'zypper' 'patch'"));
        assert!(!is_zypper_upgrade("'zypper' 'in' 'vim'"));
        assert!(!is_zypper_upgrade("'/usr/bin/up'"));
    }

    #[test]
    fn dnf_output_counts_packages_only() {
        let out = "\nbash.x86_64                5.2.32-1.fc41        updates\nkernel.x86_64              6.11.5-300.fc41      updates\nObsoleting Packages\ngrub2-tools.x86_64         1:2.12-10.fc41       updates\n";
        assert_eq!(count_dnf_check_update(out), 2);
        assert_eq!(count_dnf_check_update(""), 0);
    }

    #[test]
    fn pacman_qu() {
        assert_eq!(
            count_pacman_qu(
                "linux 6.11.4.arch1-1 -> 6.11.5.arch1-1\nvim 9.1-1 -> 9.1-2 [ignored]\n"
            ),
            2
        );
    }

    #[test]
    fn zypper_tables() {
        let lu = "S | Repository | Name | Current Version | Available Version | Arch\n--+------------+------+-----------------+-------------------+-------\nv | repo-oss   | bash | 5.2.26-1.1      | 5.2.32-1.1        | x86_64\nv | repo-oss   | vim  | 9.1-1.1         | 9.1-2.1           | x86_64\n";
        assert_eq!(count_zypper_table(lu), 2);
        let lp = "Repository | Name | Category | Severity | Interactive | Status | Summary\n-----------+------+----------+----------+-------------+--------+--------\nupdate | openSUSE-2024-1 | security | important | --- | needed | bash\nupdate | openSUSE-2024-2 | security | low | --- | applied | x\n";
        assert_eq!(count_zypper_table(lp), 1);
        assert_eq!(count_zypper_table("No updates found.\n"), 0);
    }

    #[test]
    fn dnf_log_newest_upgrade() {
        let log = "2024-10-19T08:00:00+0000 INFO --- logging initialized ---\n2024-10-19T08:00:01+0000 SUBDEBUG Installed: vim-9.1-1.fc41.x86_64\n2024-10-20T10:15:32+0200 SUBDEBUG Upgrade: bash-5.2.32-1.fc41.x86_64\n2024-10-20T10:15:33+0200 SUBDEBUG Upgraded: bash-5.2.26-3.fc41.x86_64\n2024-10-21T10:00:00+0000 SUBDEBUG Installed: htop-3.3-1.fc41.x86_64\n";
        assert_eq!(at(dnf_last_upgrade(log)), "2024-10-20T08:15:33Z");
        assert_eq!(
            dnf_last_upgrade("2024-10-21T10:00:00+0000 SUBDEBUG Installed: x\n"),
            None
        );
    }
}
