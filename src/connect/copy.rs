//! The scp side of a copy: what scp (and the ssh and proxy under it) said on stderr,
//! turned into one reason and one fix per host; creating a missing destination
//! directory (`--mkdir`) through sftp; ending scp cleanly on cancel.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::user::Resolved;
use crate::error::AppError;
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

/// A copy that failed: why, and the remote directory it lacked when that was the
/// reason (the picker offers to create it).
#[derive(Debug)]
pub struct CopyError {
    pub error: AppError,
    pub missing_dir: Option<String>,
}

impl From<AppError> for CopyError {
    fn from(error: AppError) -> Self {
        CopyError {
            error,
            missing_dir: None,
        }
    }
}

/// What scp's last lines say went wrong, for the failures it names. OpenSSH's scp
/// speaks SFTP by default (9.0+): its messages carry the server's status (`No such
/// file or directory`, `Permission denied`, and `Failure` for everything else, a full
/// disk included: SFTP has no code for it). The legacy protocol's own words are
/// recognised too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// ec2ssh's own proxy said what and what to do.
    Proxy {
        what: String,
        fix: String,
    },
    KeyRefused,
    HostKeyChanged,
    /// The remote directory to copy into does not exist.
    MissingDir(String),
    /// The login may not write (push) or read (pull) this remote path.
    Denied(String),
    /// Writing this remote file failed: over SFTP, what a full disk or quota looks like.
    WriteFailed(String),
    /// The legacy protocol's "No space left on device" / "Disk quota exceeded".
    NoSpace,
    /// A remote source that does not exist.
    NoSuchRemote(String),
    /// A directory where a file was expected (it needs -r).
    NotAFile(String),
    /// Anything else: scp's last line.
    Other(String),
}

/// The quoted path in `PREFIX "PATH": REASON`, if `line` is that with this reason.
fn quoted<'a>(line: &'a str, prefix: &str, reason: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(prefix)?.strip_prefix(" \"")?;
    rest.strip_suffix(reason)?.strip_suffix("\": ")
}

/// The directory scp needed for target `path`: the path itself when it ends in `/`
/// (a directory by the user's own writing), else its parent.
fn target_dir(path: &str) -> String {
    match path.trim_end_matches('/') {
        _ if !path.ends_with('/') => parent(path),
        "" => "/".into(),
        dir => dir.into(),
    }
}

/// The parent directory of a remote path (`.` for a bare name).
fn parent(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) => "/".into(),
        Some((dir, _)) => dir.into(),
        None => ".".into(),
    }
}

/// Names the failure in scp's last stderr lines (sanitized, without the `scp: ` prefix
/// removed).
pub fn classify(lines: &[String]) -> Failure {
    // ec2ssh's own proxy speaks in "error: …" / "  fix: …" pairs: the most precise.
    if let Some(i) = lines.iter().rposition(|l| l.starts_with("error: ")) {
        let what = lines[i]["error: ".len()..].to_string();
        let fix = lines
            .get(i + 1)
            .and_then(|l| l.trim_start().strip_prefix("fix: "))
            .unwrap_or("run `ec2ssh status` to see whether the instance is Online")
            .to_string();
        return Failure::Proxy { what, fix };
    }
    let has = |s: &str| lines.iter().any(|l| l.contains(s));
    if has("Permission denied (publickey") {
        return Failure::KeyRefused;
    }
    if has("Host key verification failed") || has("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        return Failure::HostKeyChanged;
    }
    const ENOENT: &str = "No such file or directory";
    const EACCES: &str = "Permission denied";
    for line in lines.iter().rev() {
        let l = line.strip_prefix("scp: ").unwrap_or(line);
        if let Some(p) = quoted(l, "dest open", ENOENT) {
            return Failure::MissingDir(target_dir(p));
        }
        // Opening `DIR/` for writing when DIR does not exist: EISDIR, reported as Failure.
        if let Some(p) = quoted(l, "dest open", "Failure").filter(|p| p.ends_with('/')) {
            return Failure::MissingDir(target_dir(p));
        }
        // `-r` into a directory that does not exist.
        if let Some(p) = l
            .strip_prefix("realpath ")
            .and_then(|r| r.strip_suffix(": No such file"))
        {
            return Failure::MissingDir(target_dir(p));
        }
        if let Some(p) = quoted(l, "remote mkdir", ENOENT) {
            return Failure::MissingDir(parent(p));
        }
        if let Some(p) = quoted(l, "dest open", EACCES)
            .or_else(|| quoted(l, "remote mkdir", EACCES))
            .or_else(|| quoted(l, "remote open", EACCES))
        {
            return Failure::Denied(p.into());
        }
        if let Some(p) = quoted(l, "write remote", "Failure") {
            return Failure::WriteFailed(p.into());
        }
        if let Some(p) = quoted(l, "remote open", ENOENT).or_else(|| {
            l.strip_suffix(&format!(": {ENOENT}"))
                .filter(|p| !p.contains(['"', ' ']))
        }) {
            return Failure::NoSuchRemote(p.into());
        }
        if let Some(p) = l
            .strip_prefix("download ")
            .and_then(|r| r.strip_suffix(": not a regular file"))
            .or_else(|| quoted(l, "local", "is not a regular file"))
        {
            return Failure::NotAFile(p.trim_matches('"').into());
        }
        // `-r` into a directory the login cannot write: scp's mkdir fails silently, then
        // its stat of the new directory does not find it.
        if l == format!("stat remote: {ENOENT}") {
            if let Some(dest) = lines.iter().find_map(|l| {
                l.strip_prefix("scp: failed to upload directory ")
                    .and_then(|r| r.split_once(" to "))
                    .map(|(_, d)| d)
            }) {
                return Failure::Denied(dest.into());
            }
        }
    }
    if has("No space left on device") || has("Disk quota exceeded") {
        return Failure::NoSpace;
    }
    Failure::Other(lines.last().cloned().unwrap_or_default())
}

/// What went wrong, and what to do, from scp's exit code and last stderr lines; and
/// the missing remote directory when that was it.
pub fn explain(
    lines: &[String],
    code: i32,
    instance: &str,
    user: &Resolved,
    pushing: bool,
) -> CopyError {
    let login = &user.user;
    let ssh = format!("`ec2ssh ssh {instance}`");
    let mut missing_dir = None;
    let (what, fix) = match classify(lines) {
        Failure::Proxy { what, fix } => (what, fix),
        Failure::KeyRefused => (
            format!("the instance refused the key for {login} ({})", user.source.label()),
            "pass the right login with --user (or tag the instance ec2ssh:user=NAME); the instance needs the ec2-instance-connect package".into(),
        ),
        Failure::HostKeyChanged => (
            lines.last().cloned().unwrap_or_default(),
            format!("the instance's host key changed; if that is expected, run `ec2ssh forget {instance}`"),
        ),
        Failure::MissingDir(dir) => {
            missing_dir = Some(dir.clone());
            (
                format!("the directory {dir} does not exist on {instance}"),
                "add --mkdir to create it (and its parents), or check the path".into(),
            )
        }
        Failure::Denied(path) if pushing => (
            format!("{login} may not write to {path} on {instance} (permission denied)"),
            format!("copy into a directory {login} can write (its home: `:`), or pass --user"),
        ),
        Failure::Denied(path) => (
            format!("{login} may not read {path} on {instance} (permission denied)"),
            format!("copy a file {login} can read, or pass --user"),
        ),
        Failure::WriteFailed(path) => (
            format!("writing {path} on {instance} failed: the disk is full or over quota, most likely (SFTP reports only \"Failure\")"),
            format!("free space on the instance ({ssh}, then `df -h`), or copy somewhere else"),
        ),
        Failure::NoSpace => (
            lines.last().cloned().unwrap_or_default(),
            format!("free space on the instance ({ssh}, then `df -h`), or copy somewhere else"),
        ),
        Failure::NoSuchRemote(path) => (
            format!("{path} does not exist on {instance}"),
            format!("check the remote path ({ssh}, then `ls`)"),
        ),
        Failure::NotAFile(path) => (
            format!("{path} is a directory"),
            "copy directories with -r".into(),
        ),
        Failure::Other(last) if last.is_empty() => (
            format!("scp exited with code {code}"),
            format!("try {ssh} to see whether you can log in"),
        ),
        Failure::Other(last) => (last, format!("try {ssh} to see whether you can log in")),
    };
    CopyError {
        error: AppError::other(what, fix),
        missing_dir,
    }
}

/// Why `--mkdir` cannot create a directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MkdirRefused {
    #[error("--mkdir cannot create {0:?}: name it from / or from the login's home, not ~user")]
    OtherHome(String),
    #[error(
        "--mkdir cannot create a directory whose name has a control character or is this long"
    )]
    Unrepresentable,
}

/// The remote directory a push to `dest` needs, by scp's own reading of the target:
/// `DIR/` or several sources copy into DIR; a single source to `DIR/NAME` is named
/// NAME there, so DIR is what must exist. `None`: the login's home, which exists.
/// `~/x` is relative to the home, as scp has it.
pub fn dir_to_create(dest: &str, sources: usize) -> Result<Option<String>, MkdirRefused> {
    let dest = match dest.strip_prefix('~') {
        None => dest,
        Some("") => return Ok(None),
        Some(rest) => match rest.strip_prefix('/') {
            Some(rel) => rel.trim_start_matches('/'),
            None => return Err(MkdirRefused::OtherHome(dest.into())),
        },
    };
    let dir = if dest.ends_with('/') || sources > 1 {
        dest.trim_end_matches('/').to_string()
    } else {
        match parent(dest).as_str() {
            "." => String::new(),
            p => p.to_string(),
        }
    };
    Ok(match dir.as_str() {
        "" | "." => None,
        d if dest.starts_with('/') && d.trim_end_matches('/').is_empty() => None,
        d => Some(d.to_string()),
    })
}

/// An `sftp -b -` batch creating `dir` and its parents: `-mkdir` each (the `-` lets
/// one that exists pass), then `cd` into it, which fails unless it is now a directory.
/// No shell is involved: sftp parses these lines itself. Inside its double quotes only
/// `"` and `\` are special (`\` would also undo a glob escape), so they are escaped;
/// a line break cannot be expressed and is refused.
pub fn mkdir_batch(dir: &str) -> Result<String, MkdirRefused> {
    if dir.chars().any(char::is_control) || dir.len() > 1024 {
        return Err(MkdirRefused::Unrepresentable);
    }
    let quote = |p: &str| format!("\"{}\"", p.replace('\\', "\\\\").replace('"', "\\\""));
    // A relative path starting with `-` would be taken for an option of mkdir.
    let dir = if dir.starts_with('/') {
        dir.to_string()
    } else {
        format!("./{dir}")
    };
    let mut batch = String::new();
    let mut prefix = String::new();
    for part in dir.split('/') {
        if (!prefix.is_empty() || dir.starts_with('/')) && !prefix.ends_with('/') {
            prefix.push('/');
        }
        prefix.push_str(part);
        if part.is_empty() || part == "." {
            continue;
        }
        batch.push_str(&format!("-mkdir {}\n", quote(&prefix)));
    }
    batch.push_str(&format!("cd {}\n", quote(&dir)));
    Ok(batch)
}

/// What sftp said when the directory could not be created.
pub fn explain_mkdir(lines: &[String], dir: &str, instance: &str, user: &str) -> AppError {
    let denied = lines.iter().any(|l| l.ends_with(": Permission denied"));
    let why = if denied {
        format!("{user} may not create it (permission denied)")
    } else if let Some(l) = lines.iter().rev().find(|l| l.starts_with("remote mkdir ")) {
        l.clone()
    } else {
        lines
            .last()
            .cloned()
            .unwrap_or_else(|| "sftp failed".into())
    };
    AppError::other(
        format!("cannot create {dir} on {instance}: {why}"),
        if denied {
            format!("create it as a user who may (e.g. `ec2ssh ssh {instance}`, then `sudo mkdir -p`), or copy into a directory {user} can write")
        } else {
            format!("check the path; `ec2ssh ssh {instance}` shows what is there")
        },
    )
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

    fn what_fix(l: &[&str], pushing: bool) -> (String, String, Option<String>) {
        let e = explain(&lines(l), 1, "i-01", &user(), pushing);
        let (what, fix) = e.error.explain().remove(0);
        (what, fix.unwrap_or_default(), e.missing_dir)
    }

    #[test]
    fn the_proxys_own_error_wins() {
        let (what, fix, _) = what_fix(
            &[
                "error: i-01 is not connected to Systems Manager (TargetNotConnected)",
                "  fix: start the instance",
                "Connection closed by UNKNOWN port 65535",
                "scp: Connection closed",
            ],
            true,
        );
        assert!(what.starts_with("i-01 is not connected"), "{what}");
        assert_eq!(fix, "start the instance");
    }

    /// What OpenSSH 9.2's scp (SFTP mode) prints for each failure, as provoked against
    /// its sshd (the integration tests provoke them again through ec2ssh).
    #[test]
    fn scp_messages_are_named() {
        let cases: [(&[&str], Failure); 12] = [
            (
                &[
                    "scp: dest open \"/some/missing/dir/\": No such file or directory",
                    "scp: failed to upload file f.txt to /some/missing/dir/",
                ],
                Failure::MissingDir("/some/missing/dir".into()),
            ),
            (
                &[
                    "scp: dest open \"/some/missing/f.txt\": No such file or directory",
                    "scp: failed to upload file f.txt to /some/missing/f.txt",
                ],
                Failure::MissingDir("/some/missing".into()),
            ),
            (
                &[
                    "scp: dest open \"/tmp/new/\": Failure",
                    "scp: failed to upload file f.txt to /tmp/new/",
                ],
                Failure::MissingDir("/tmp/new".into()),
            ),
            (
                &[
                    "scp: realpath /some/missing/dir/: No such file",
                    "scp: upload \"/some/missing/dir/\": path canonicalization failed",
                    "scp: failed to upload directory tree to /some/missing/dir/",
                ],
                Failure::MissingDir("/some/missing/dir".into()),
            ),
            (
                &["scp: remote mkdir \"/tmp/nope/x\": No such file or directory"],
                Failure::MissingDir("/tmp/nope".into()),
            ),
            (
                &[
                    "scp: dest open \"/etc/x.txt\": Permission denied",
                    "scp: failed to upload file f.txt to /etc/x.txt",
                ],
                Failure::Denied("/etc/x.txt".into()),
            ),
            (
                &[
                    "scp: stat remote: No such file or directory",
                    "scp: failed to upload directory tree to /etc/",
                ],
                Failure::Denied("/etc/".into()),
            ),
            (
                &[
                    "scp: write remote \"/dev/full\": Failure",
                    "scp: remote fsetstat: Bad message",
                    "scp: failed to upload file f.txt to /dev/full",
                ],
                Failure::WriteFailed("/dev/full".into()),
            ),
            (
                &["scp: remote open \"/etc/shadow\": Permission denied"],
                Failure::Denied("/etc/shadow".into()),
            ),
            (
                &["scp: /nope.txt: No such file or directory"],
                Failure::NoSuchRemote("/nope.txt".into()),
            ),
            (
                &["scp: download /etc/ssh/: not a regular file"],
                Failure::NotAFile("/etc/ssh/".into()),
            ),
            (
                &["scp: write remote \"/data/big.bin\": No space left on device"],
                Failure::NoSpace,
            ),
        ];
        for (l, expected) in cases {
            assert_eq!(classify(&lines(l)), expected, "{l:?}");
        }
    }

    #[test]
    fn each_failure_has_its_own_fix() {
        let (what, fix, missing) = what_fix(
            &["scp: dest open \"/srv/app/\": No such file or directory"],
            true,
        );
        assert_eq!(what, "the directory /srv/app does not exist on i-01");
        assert!(fix.contains("--mkdir"), "{fix}");
        assert_eq!(missing.as_deref(), Some("/srv/app"));
        let (what, fix, _) = what_fix(
            &[
                "ec2-user@i-01: Permission denied (publickey).",
                "scp: Connection closed",
            ],
            true,
        );
        assert!(
            what.contains("refused the key for ec2-user (platform default)"),
            "{what}"
        );
        assert!(fix.contains("--user"));
        let (what, fix, _) = what_fix(&["scp: write remote \"/dev/full\": Failure"], true);
        assert!(what.contains("disk is full or over quota"), "{what}");
        assert!(fix.contains("df -h"));
        let (what, fix, missing) =
            what_fix(&["scp: dest open \"/root/x\": Permission denied"], true);
        assert_eq!(
            what,
            "ec2-user may not write to /root/x on i-01 (permission denied)"
        );
        assert!(fix.contains("can write"), "{fix}");
        assert_eq!(missing, None);
        let (what, _, _) = what_fix(&[], true);
        assert_eq!(what, "scp exited with code 1");
    }

    #[test]
    fn mkdir_creates_what_scp_will_copy_into() {
        let d = |dest: &str, n| dir_to_create(dest, n).unwrap();
        assert_eq!(d("/srv/app/", 1).as_deref(), Some("/srv/app"));
        assert_eq!(d("/srv/app", 2).as_deref(), Some("/srv/app"));
        assert_eq!(d("/srv/app/conf.yml", 1).as_deref(), Some("/srv/app"));
        assert_eq!(d("releases/v2/", 1).as_deref(), Some("releases/v2"));
        assert_eq!(d("~/releases/v2/", 1).as_deref(), Some("releases/v2"));
        for home in ["", "~", "~/", "name", "/", "/file"] {
            assert_eq!(d(home, 1), None, "{home:?}");
        }
        assert!(dir_to_create("~bob/x/", 1).is_err());
    }

    #[test]
    fn the_mkdir_batch_quotes_for_sftp_not_a_shell() {
        assert_eq!(
            mkdir_batch("/srv/my app").unwrap(),
            "-mkdir \"/srv\"\n-mkdir \"/srv/my app\"\ncd \"/srv/my app\"\n"
        );
        assert_eq!(
            mkdir_batch("-x/$(reboot)").unwrap(),
            "-mkdir \"./-x\"\n-mkdir \"./-x/$(reboot)\"\ncd \"./-x/$(reboot)\"\n"
        );
        // sftp unescapes \" and \\ inside double quotes; nothing else is special there.
        assert_eq!(
            mkdir_batch(r#"a"b\c*"#).unwrap(),
            "-mkdir \"./a\\\"b\\\\c*\"\ncd \"./a\\\"b\\\\c*\"\n"
        );
        assert_eq!(
            mkdir_batch("a\nrm -rf /"),
            Err(MkdirRefused::Unrepresentable)
        );
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
