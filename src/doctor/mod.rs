//! `ec2ssh doctor`'s core: the checklist model, its rendering (text and JSON), the
//! facts gathered from AWS and the machine, and the pure evaluation of those facts into
//! checks (including which network path an instance uses to reach Systems Manager),
//! and what the run itself proved (`evidence`).
//! The AWS calls live in `commands::doctor`; everything here is testable offline.

pub mod checks;
pub mod evidence;
pub mod facts;
pub mod gather;
pub mod policy;

pub use gather::diagnose;

use serde::Serialize;

use crate::text::sanitize;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Fail,
    /// Could not be checked (denied, unreachable, or not checkable harmlessly).
    Unknown,
}

impl Status {
    pub fn glyph(self) -> &'static str {
        match self {
            Status::Ok => "✓",
            Status::Fail => "✗",
            Status::Unknown => "?",
        }
    }
}

/// The groups, in the order they print.
pub const GROUPS: [&str; 3] = ["local", "permissions", "target"];

/// One line of the checklist. A failed check always carries a fix; an unknown one
/// says in `fix` how to check by hand.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub group: &'static str,
    pub name: String,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(group: &'static str, name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            group,
            name: name.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn fail(
        group: &'static str,
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            group,
            name: name.into(),
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn unknown(
        group: &'static str,
        name: impl Into<String>,
        detail: impl Into<String>,
        how: impl Into<String>,
    ) -> Check {
        Check {
            group,
            name: name.into(),
            status: Status::Unknown,
            detail: detail.into(),
            fix: Some(how.into()),
        }
    }
}

/// Nothing failed (unknowns do not count as failures).
pub fn all_ok(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status != Status::Fail)
}

#[derive(Serialize)]
struct DoctorJson<'a> {
    version: u32,
    ok: bool,
    checks: &'a [Check],
}

/// The `--json` document.
pub fn to_json(checks: &[Check]) -> String {
    let doc = DoctorJson {
        version: 1,
        ok: all_ok(checks),
        checks,
    };
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// The checklist as lines: a heading per group, one line per check, a `fix:` line
/// under each ✗ (a `check:` line under each ?), and a summary. Untrusted text is
/// sanitized; `color` adds ANSI colours to the marks.
pub fn render(checks: &[Check], color: bool) -> Vec<String> {
    let width = checks
        .iter()
        .map(|c| crate::text::width(&c.name))
        .max()
        .unwrap_or(0);
    let paint = |s: Status| {
        let g = s.glyph();
        if !color {
            return g.to_string();
        }
        let code = match s {
            Status::Ok => "32",
            Status::Fail => "31",
            Status::Unknown => "33",
        };
        format!("\x1b[{code}m{g}\x1b[0m")
    };
    let mut lines = Vec::new();
    for group in GROUPS {
        let in_group: Vec<&Check> = checks.iter().filter(|c| c.group == group).collect();
        if in_group.is_empty() {
            continue;
        }
        if !lines.is_empty() {
            lines.push(String::new());
        }
        lines.push(group.to_string());
        for c in in_group {
            let name = sanitize(&c.name);
            let pad = width.saturating_sub(crate::text::width(&name));
            lines.push(
                format!(
                    "  {} {name}{}  {}",
                    paint(c.status),
                    " ".repeat(pad),
                    sanitize(&c.detail)
                )
                .trim_end()
                .to_string(),
            );
            if let Some(fix) = &c.fix {
                let label = match c.status {
                    Status::Fail => "fix",
                    Status::Unknown => "check",
                    Status::Ok => continue,
                };
                lines.push(format!("      {label}: {}", sanitize(fix)));
            }
        }
    }
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    lines.push(String::new());
    let (failed, unknown, ok) = (
        count(Status::Fail),
        count(Status::Unknown),
        count(Status::Ok),
    );
    lines.push(if failed == 0 {
        format!("no problems found ({ok} ok, {unknown} not checked)")
    } else {
        format!("{failed} failed, {unknown} not checked, {ok} ok")
    });
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_puts_one_fix_under_each_failure_and_sanitizes() {
        let checks = vec![
            Check::ok("local", "credentials", "arn:aws:iam::1:user/me"),
            Check::fail(
                "target",
                "instance profile",
                "none \u{1b}[31m",
                "attach one",
            ),
            Check::unknown(
                "permissions",
                "ssm:StartSession",
                "not tried",
                "run ec2ssh ssh",
            ),
        ];
        let lines = render(&checks, false);
        let text = lines.join("\n");
        assert_eq!(
            text,
            "local\n  ✓ credentials       arn:aws:iam::1:user/me\n\n\
permissions\n  ? ssm:StartSession  not tried\n      check: run ec2ssh ssh\n\n\
target\n  ✗ instance profile  none ␛[31m\n      fix: attach one\n\n\
1 failed, 1 not checked, 1 ok"
        );
        assert_eq!(text.matches("fix:").count(), 1);
        assert!(!all_ok(&checks));
        assert!(all_ok(&checks[..1]));
    }

    #[test]
    fn json_has_the_documented_shape() {
        let checks = vec![Check::fail("local", "OpenSSH client", "missing", "install")];
        let v: serde_json::Value = serde_json::from_str(&to_json(&checks)).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["ok"], false);
        assert_eq!(v["checks"][0]["group"], "local");
        assert_eq!(v["checks"][0]["status"], "fail");
        assert_eq!(v["checks"][0]["fix"], "install");
    }
}
