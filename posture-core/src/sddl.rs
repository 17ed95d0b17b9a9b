//! Whether a Windows security descriptor (in SDDL, as
//! `ConvertSecurityDescriptorToStringSecurityDescriptorW` writes it) keeps a file private
//! to its user: what `files::private_problem` checks on Windows, as mode 0600/0700 and the
//! owner's uid are checked on Unix. Pure, so it is tested on every OS.
//!
//! Private means: the owner is this user (or the Administrators group or SYSTEM, which own
//! what elevated processes and services create), there is a DACL (a null DACL lets
//! everyone in), and every ACE that grants anything to this object names this user,
//! SYSTEM, Administrators, `OWNER RIGHTS` or `CREATOR OWNER`. Administrators and SYSTEM
//! stand where root does on Unix: they can take any file anyway.

/// SIDs that may hold or own a private file besides the user: SYSTEM, Administrators,
/// `OWNER RIGHTS`, `CREATOR OWNER`, as SDDL aliases and spelled out.
const TRUSTED: [&str; 8] = [
    "SY",
    "S-1-5-18",
    "BA",
    "S-1-5-32-544",
    "OW",
    "S-1-3-4",
    "CO",
    "S-1-3-0",
];

/// Why the descriptor `sddl` (owner and DACL at least) does not keep its object private
/// to the user whose SID is `user_sid`, or `None` when it does.
pub fn private_problem(sddl: &str, user_sid: &str) -> Option<String> {
    let trusted = |sid: &str| sid.eq_ignore_ascii_case(user_sid) || TRUSTED.contains(&sid);
    let Some(owner) = component(sddl, 'O') else {
        return Some("its security descriptor names no owner".into());
    };
    if !trusted(owner) {
        return Some(format!(
            "owned by {owner}, but this process runs as {user_sid}"
        ));
    }
    let Some(dacl) = component(sddl, 'D') else {
        return Some("it has no DACL: everyone may open it".into());
    };
    let (flags, aces) = dacl.split_at(dacl.find('(').unwrap_or(dacl.len()));
    if flags.contains("NO_ACCESS_CONTROL") {
        return Some("it has a null DACL: everyone may open it".into());
    }
    for ace in aces.split(')') {
        let Some(ace) = ace.strip_prefix('(') else {
            continue;
        };
        let fields: Vec<&str> = ace.split(';').collect();
        let (Some(kind), Some(ace_flags), Some(sid)) =
            (fields.first(), fields.get(1), fields.get(5))
        else {
            return Some(format!("unreadable ACE ({ace})"));
        };
        // Deny ACEs take access away; inherit-only ACEs do not apply to this object.
        if matches!(*kind, "D" | "OD" | "XD") || has_flag(ace_flags, "IO") {
            continue;
        }
        if !trusted(sid) {
            return Some(format!(
                "its DACL grants access to {sid} (fix: remove every entry but yours, SYSTEM \
                 and Administrators, and disable inheritance)"
            ));
        }
    }
    None
}

/// The value of the `O:`, `G:`, `D:` or `S:` component.
fn component(sddl: &str, tag: char) -> Option<&str> {
    let marker = format!("{tag}:");
    let start = find_component(sddl, &marker)? + 2;
    let rest = &sddl[start..];
    let end = ["O:", "G:", "D:", "S:"]
        .iter()
        .filter_map(|m| find_component(rest, m))
        .min()
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Where the component `marker` starts: at the start or right after an ACE's `)` or a SID
/// (never inside an ACE's parentheses).
fn find_component(text: &str, marker: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 && text[i..].starts_with(marker) => return Some(i),
            _ => {}
        }
    }
    None
}

/// Whether the ACE flags string (two-letter codes run together) has `flag`.
fn has_flag(flags: &str, flag: &str) -> bool {
    flags
        .as_bytes()
        .chunks(2)
        .any(|pair| pair == flag.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";

    #[test]
    fn what_posture_sets_is_private() {
        // The descriptor `files` sets on a key directory, as Windows reads it back.
        let sddl = format!("O:{ME}D:PAI(A;OICI;FA;;;{ME})(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)");
        assert_eq!(private_problem(&sddl, ME), None);
        // An elevated process's files are owned by Administrators.
        let sddl = format!("O:BAG:SYD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;;FA;;;{ME})");
        assert_eq!(private_problem(&sddl, ME), None);
    }

    #[test]
    fn others_granted_anything_or_no_dacl_or_another_owner_is_a_problem() {
        // A file under %USERPROFILE% with the usual inherited ACL is private...
        let sddl = format!("O:{ME}D:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;FA;;;{ME})");
        assert_eq!(private_problem(&sddl, ME), None);
        // ...one under C:\ProgramData, readable by Users, is not.
        let sddl = format!("O:{ME}D:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;0x1200a9;;;BU)");
        assert!(private_problem(&sddl, ME).unwrap().contains("BU"));
        let sddl = format!("O:{ME}D:(A;;FR;;;WD)");
        assert!(private_problem(&sddl, ME).unwrap().contains("WD"));
        let sddl = format!("O:{ME}D:NO_ACCESS_CONTROL");
        assert!(private_problem(&sddl, ME).unwrap().contains("null DACL"));
        assert!(private_problem(&format!("O:{ME}"), ME)
            .unwrap()
            .contains("no DACL"));
        let other = "S-1-5-21-1004336348-1177238915-682003330-1002";
        let sddl = format!("O:{other}D:P(A;;FA;;;{other})");
        assert!(private_problem(&sddl, ME).unwrap().contains("owned by"));
        assert!(private_problem("D:P(A;;FA;;;SY)", ME).is_some());
    }

    #[test]
    fn deny_and_inherit_only_entries_grant_nothing_here() {
        let sddl = format!("O:{ME}D:P(D;;FA;;;WD)(A;OICIIO;FA;;;BU)(A;;FA;;;{ME})");
        assert_eq!(private_problem(&sddl, ME), None);
        // "IO" must be a whole flag, not the end of one and the start of the next.
        let sddl = format!("O:{ME}D:P(A;CIOI;FA;;;BU)(A;;FA;;;{ME})");
        assert!(private_problem(&sddl, ME).is_some());
    }
}
