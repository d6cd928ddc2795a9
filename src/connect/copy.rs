//! The scp side of a copy: what scp (and the ssh and proxy under it) said on stderr,
//! turned into one reason and one fix per host, and ending scp cleanly on cancel.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::user::Resolved;
use crate::text::sanitize;

/// Lines of stderr kept per host (the reason is near the end).
const KEEP: usize = 20;

/// The last lines of `stderr`, sanitized (they may quote remote file names).
pub async fn last_lines(stderr: impl AsyncRead + Unpin) -> Vec<String> {
    let mut lines = BufReader::new(stderr).lines();
    let mut kept = VecDeque::with_capacity(KEEP);
    while let Ok(Some(line)) = lines.next_line().await {
        let line = sanitize(line.trim_end()).into_owned();
        if line.is_empty() {
            continue;
        }
        if kept.len() == KEEP {
            kept.pop_front();
        }
        kept.push_back(line);
    }
    kept.into()
}

/// SIGTERM to scp, which passes it on to its ssh (ssh then hangs up on the proxy,
/// which terminates the session); SIGKILL if it has not gone within 5 s.
pub async fn terminate(child: &mut tokio::process::Child) {
    if let Some(pid) = child
        .id()
        .and_then(|p| rustix::process::Pid::from_raw(p as i32))
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

/// What went wrong, and what to do, from scp's exit code and last stderr lines.
pub fn explain(lines: &[String], code: i32, instance: &str, user: &Resolved) -> (String, String) {
    // ec2ssh's own proxy speaks in "error: …" / "  fix: …" pairs: the most precise.
    if let Some(i) = lines.iter().rposition(|l| l.starts_with("error: ")) {
        let what = lines[i]["error: ".len()..].to_string();
        let fix = lines
            .get(i + 1)
            .and_then(|l| l.trim_start().strip_prefix("fix: "))
            .unwrap_or("run `ec2ssh status` to see whether the instance is Online")
            .to_string();
        return (what, fix);
    }
    let last = lines
        .last()
        .cloned()
        .unwrap_or_else(|| format!("scp exited with code {code}"));
    let has = |s: &str| lines.iter().any(|l| l.contains(s));
    let fix = if has("Permission denied (publickey") {
        return (
            format!("the instance refused the key for {} ({})", user.user, user.source.label()),
            "pass the right login with --user (or tag the instance ec2ssh:user=NAME); the instance needs the ec2-instance-connect package".into(),
        );
    } else if has("Host key verification failed") || has("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        format!(
            "the instance's host key changed; if that is expected, run `ec2ssh forget {instance}`"
        )
    } else if has("No space left on device") || has("Disk quota exceeded") {
        "free space on the instance (`df -h`), or copy somewhere else".into()
    } else if has("Permission denied") {
        format!(
            "copy to a directory {} can write (its home, with `:`), or pass --user",
            user.user
        )
    } else if has("No such file or directory") || has("not a regular file") || has("Is a directory")
    {
        "check the path (a directory needs -r)".into()
    } else {
        format!("try `ec2ssh ssh {instance}` to see whether you can log in")
    };
    (last, fix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::user::Source;

    fn user() -> Resolved {
        Resolved {
            user: "ec2-user".into(),
            source: Source::Platform,
        }
    }

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_proxys_own_error_wins() {
        let l = lines(&[
            "error: i-01 is not connected to Systems Manager (TargetNotConnected)",
            "  fix: start the instance",
            "Connection closed by UNKNOWN port 65535",
            "scp: Connection closed",
        ]);
        let (what, fix) = explain(&l, 255, "i-01", &user());
        assert!(what.starts_with("i-01 is not connected"), "{what}");
        assert_eq!(fix, "start the instance");
    }

    #[test]
    fn common_scp_failures_get_their_own_fix() {
        let (what, fix) = explain(
            &lines(&[
                "ec2-user@i-01: Permission denied (publickey).",
                "scp: Connection closed",
            ]),
            255,
            "i-01",
            &user(),
        );
        assert!(
            what.contains("refused the key for ec2-user (platform default)"),
            "{what}"
        );
        assert!(fix.contains("--user"));
        let (what, fix) = explain(
            &lines(&["scp: write remote \"/data/big.bin\": No space left on device"]),
            1,
            "i-01",
            &user(),
        );
        assert!(what.contains("No space left"), "{what}");
        assert!(fix.contains("df -h"));
        let (_, fix) = explain(
            &lines(&["scp: dest open \"/root/x\": Permission denied"]),
            1,
            "i-01",
            &user(),
        );
        assert!(fix.contains("can write"), "{fix}");
        let (what, _) = explain(&[], 1, "i-01", &user());
        assert_eq!(what, "scp exited with code 1");
    }

    #[tokio::test]
    async fn keeps_the_last_lines_sanitized() {
        let mut input = String::new();
        for i in 0..30 {
            input.push_str(&format!("line {i}\n"));
        }
        input.push_str("evil \x1b[2J name\n\n");
        let kept = last_lines(input.as_bytes()).await;
        assert_eq!(kept.len(), KEEP);
        assert_eq!(kept[0], "line 11");
        assert!(!kept.last().unwrap().contains('\x1b'));
    }
}
