//! Rendering a report for people: one line per finding, the fix under each failure.

use std::io::{self, Write};

use posture_agent::Assessment;
use posture_core::{Report, Status};

/// Whether to use colours: only on a terminal, never with `NO_COLOR` set (no-color.org).
pub fn use_colour(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

struct Style {
    colour: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// Prints `report` on stdout (pretty JSON, or for people with an optional heading and the
/// verdict) and returns the exit code the verdict means: 0 compliant, 1 not. Shared by
/// `check` and `status`, which get the verdict from the agent's policy.
pub fn print_report(
    report: &Report,
    assessment: &Assessment,
    json: bool,
    heading: Option<&str>,
) -> io::Result<u8> {
    use std::io::IsTerminal;
    let stdout = io::stdout();
    // Stdout is line-buffered: without this, pretty JSON is one `write` per line (hundreds
    // of system calls for a report).
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    if json {
        serde_json::to_writer_pretty(&mut out, report)?;
        writeln!(out)?;
    } else {
        if let Some(heading) = heading {
            writeln!(out, "{heading}\n")?;
        }
        write_human(
            &mut out,
            report,
            assessment,
            use_colour(io::stdout().is_terminal()),
        )?;
    }
    out.flush()?;
    Ok(if assessment.compliant {
        crate::EXIT_OK
    } else {
        crate::EXIT_NONCOMPLIANT
    })
}

/// Writes the human report.
pub fn write_human(
    out: &mut impl Write,
    report: &Report,
    assessment: &Assessment,
    colour: bool,
) -> io::Result<()> {
    let style = Style { colour };
    let privilege = match report.privilege {
        posture_core::Privilege::Root => "as root",
        posture_core::Privilege::User => "as user",
    };
    writeln!(
        out,
        "{} · {} · {}",
        style.paint("1", &report.device.hostname),
        report.os.name,
        privilege
    )?;
    writeln!(out)?;
    let title_width = report
        .findings
        .iter()
        .map(|f| title(&f.id).chars().count())
        .max()
        .unwrap_or(0);
    for finding in &report.findings {
        let (mark, colour) = match finding.status {
            Status::Pass => ("✔ pass   ", "32"),
            Status::Fail => ("✘ fail   ", "31"),
            Status::Unknown => ("? unknown", "33"),
        };
        writeln!(
            out,
            "  {}  {:<title_width$}  {}",
            style.paint(colour, mark),
            title(&finding.id),
            finding.summary,
        )?;
        let indent = " ".repeat(2 + 9 + 2 + title_width + 2);
        if let Some(remediation) = &finding.remediation {
            let label = if finding.status == Status::Fail {
                "fix"
            } else {
                "hint"
            };
            writeln!(
                out,
                "{indent}{} {}",
                style.paint("1", &format!("→ {label}:")),
                remediation.text
            )?;
            if let Some(url) = &remediation.url {
                writeln!(out, "{indent}  {url}")?;
            }
        }
    }
    writeln!(out)?;
    let s = report.summary;
    let verdict = if assessment.compliant {
        style.paint("1;32", "COMPLIANT")
    } else {
        style.paint("1;31", "NOT COMPLIANT")
    };
    writeln!(
        out,
        "{} pass · {} fail · {} unknown — {verdict}",
        s.pass, s.fail, s.unknown
    )?;
    if s.unknown > 0 && s.fail == 0 {
        writeln!(
            out,
            "(a check that could not tell is not counted as a pass)"
        )?;
    }
    // Rules of the configured policy that fail although their finding (if any) passed:
    // the finding lines above do not show them.
    for reason in &assessment.reasons {
        if reason.status.is_none_or(|status| status == Status::Pass) {
            writeln!(out, "  policy {}: {}", reason.rule, reason.message)?;
            if let Some(fix) = &reason.remediation {
                writeln!(out, "    → fix: {}", fix.text)?;
            }
        }
    }
    Ok(())
}

fn title(id: &str) -> &str {
    posture_checks::check_by_id(id).map_or(id, |c| c.title)
}

#[cfg(test)]
mod tests {
    use super::*;
    use posture_core::{Device, Finding, OsFacts, Remediation, Timestamp};

    fn report() -> Report {
        Report::new(
            Device {
                id: "x".into(),
                hostname: "laptop".into(),
                vendor: None,
                model: None,
                serial_number: None,
            },
            OsFacts {
                name: "Debian GNU/Linux 12 (bookworm)".into(),
                ..OsFacts::default()
            },
            Timestamp::now(),
            vec![
                Finding::pass("os", "Debian 12"),
                Finding::fail(
                    "firewall",
                    "no firewall is active",
                    Remediation::new("sudo ufw enable"),
                ),
            ],
        )
    }

    fn assessment(report: &Report) -> Assessment {
        posture_agent::Compliance::default()
            .assess(report, posture_core::keys::KeyAssurance::Software)
    }

    #[test]
    fn a_policy_rule_without_a_failing_finding_is_shown() {
        let report = report();
        let policy =
            posture_core::policy::Policy::from_toml_str("required_key_assurance = \"tpm\"\n")
                .unwrap();
        let assessment = posture_agent::Compliance::new(Some(policy))
            .assess(&report, posture_core::keys::KeyAssurance::Software);
        let mut out = Vec::new();
        write_human(&mut out, &report, &assessment, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("NOT COMPLIANT"), "{text}");
        assert!(text.contains("policy required_key_assurance"), "{text}");
    }

    #[test]
    fn failure_shows_its_fix_and_verdict() {
        let mut out = Vec::new();
        let report = report();
        write_human(&mut out, &report, &assessment(&report), false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("✘ fail     Firewall"), "{text}");
        assert!(text.contains("→ fix: sudo ufw enable"), "{text}");
        assert!(
            text.contains("1 pass · 1 fail · 0 unknown — NOT COMPLIANT"),
            "{text}"
        );
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn colour_only_when_asked() {
        let mut out = Vec::new();
        let report = report();
        write_human(&mut out, &report, &assessment(&report), true).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("\x1b[31m"));
    }
}
