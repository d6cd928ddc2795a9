//! The OpenSSH command line for a connection, as an argv (no shell is involved,
//! except the ProxyCommand that ssh itself hands to `sh -c`, whose few values are
//! validated or quoted here).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Everything the ssh command line depends on.
#[derive(Debug, Clone)]
pub struct SshSpec<'a> {
    /// The ssh (or scp) program.
    pub program: &'a Path,
    pub key: &'a Path,
    pub user: &'a str,
    /// Instance id: the host ssh dials (through the proxy) and the host key's alias.
    pub instance: &'a str,
    pub region: &'a str,
    pub profile: Option<&'a str>,
    pub known_hosts: &'a Path,
    /// This executable, for the ProxyCommand.
    pub exe: &'a Path,
    /// Extra ssh options from the user, before the destination.
    pub options: &'a [String],
    /// A remote command, after the destination.
    pub command: &'a [String],
    /// Where the proxy reports the bytes it carries (`ec2ssh scp`).
    pub progress: Option<&'a Path>,
}

/// `ssh` when `program` is not given on PATH.
pub fn default_program() -> PathBuf {
    PathBuf::from("ssh")
}

/// Quotes `s` for `sh -c` (single quotes; `'` becomes `'\''`).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The ProxyCommand: this binary's `proxy` for `%h %p` in the instance's region.
pub fn proxy_command(
    exe: &Path,
    region: &str,
    profile: Option<&str>,
    progress: Option<&Path>,
) -> String {
    let mut cmd = format!(
        "{} proxy %h %p --region {}",
        shell_quote(&exe.to_string_lossy()),
        shell_quote(region)
    );
    if let Some(p) = profile {
        cmd.push_str(&format!(" --profile {}", shell_quote(p)));
    }
    if let Some(p) = progress {
        cmd.push_str(&format!(
            " --progress {}",
            shell_quote(&p.to_string_lossy())
        ));
    }
    // ssh expands %-tokens in ProxyCommand; a literal % in a path or profile must
    // not be taken for one.
    cmd.replace('%', "%%")
        .replace("%%h", "%h")
        .replace("%%p", "%p")
}

/// The options every ssh and scp run gets: the tunnel, the key, host keys pinned
/// per instance id, no password prompts.
fn common_options(spec: &SshSpec) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut opt = |o: String| {
        a.push("-o".into());
        a.push(o.into());
    };
    opt(format!(
        "ProxyCommand={}",
        proxy_command(spec.exe, spec.region, spec.profile, spec.progress)
    ));
    opt(format!("HostKeyAlias={}", spec.instance));
    opt(format!("UserKnownHostsFile={}", spec.known_hosts.display()));
    opt("StrictHostKeyChecking=accept-new".into());
    // Plain entries, so `ec2ssh forget` can find them (ids are not secrets).
    opt("HashKnownHosts=no".into());
    opt("CheckHostIP=no".into());
    opt("IdentitiesOnly=yes".into());
    opt("PasswordAuthentication=no".into());
    opt("KbdInteractiveAuthentication=no".into());
    a.push("-i".into());
    a.push(spec.key.as_os_str().to_owned());
    a
}

/// The ssh arguments (without the program).
pub fn args(spec: &SshSpec) -> Vec<OsString> {
    let mut a = common_options(spec);
    a.extend(spec.options.iter().map(OsString::from));
    a.push(format!("{}@{}", spec.user, spec.instance).into());
    a.extend(spec.command.iter().map(OsString::from));
    a
}

/// The scp arguments (without the program): `flags` such as `-r`, then `--` so no
/// operand is taken for an option, then the operands.
pub fn scp_args(spec: &SshSpec, flags: &[&str], operands: &[String]) -> Vec<OsString> {
    let mut a = common_options(spec);
    // Nothing may prompt (there is no terminal to answer), and only errors are
    // worth reporting per host (not "Permanently added … to known hosts").
    a.extend(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR"].map(OsString::from));
    a.extend(flags.iter().map(OsString::from));
    a.extend(spec.options.iter().map(OsString::from));
    a.push("--".into());
    a.extend(operands.iter().map(OsString::from));
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(exe: &'a Path, profile: Option<&'a str>) -> SshSpec<'a> {
        SshSpec {
            program: Path::new("ssh"),
            key: Path::new("/run/user/1/ec2ssh/conn-x/id_ed25519"),
            user: "ec2-user",
            instance: "i-0123456789abcdef0",
            region: "eu-west-1",
            profile,
            known_hosts: Path::new("/home/a/.local/share/ec2ssh/known_hosts"),
            exe,
            options: &[],
            command: &[],
            progress: None,
        }
    }

    #[test]
    fn the_command_line_pins_the_host_key_to_the_instance_id() {
        let exe = Path::new("/usr/bin/ec2ssh");
        let a: Vec<String> = args(&spec(exe, None))
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        let joined = a.join(" ");
        assert!(
            joined.contains("ProxyCommand='/usr/bin/ec2ssh' proxy %h %p --region 'eu-west-1'"),
            "{joined}"
        );
        assert!(joined.contains("HostKeyAlias=i-0123456789abcdef0"));
        assert!(joined.contains("UserKnownHostsFile=/home/a/.local/share/ec2ssh/known_hosts"));
        assert!(joined.contains("IdentitiesOnly=yes"));
        assert_eq!(a.last().unwrap(), "ec2-user@i-0123456789abcdef0");
    }

    #[test]
    fn scp_operands_come_after_a_double_dash_and_the_proxy_reports_progress() {
        let exe = Path::new("/usr/bin/ec2ssh");
        let mut sp = spec(exe, None);
        let sock = Path::new("/run/user/1/ec2ssh/xfer-a/progress.sock");
        sp.progress = Some(sock);
        let ops = [
            "-rf.txt".to_string(),
            "ec2-user@i-0123456789abcdef0:".into(),
        ];
        let a: Vec<String> = scp_args(&sp, &["-r"], &ops)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        let dashes = a.iter().position(|x| x == "--").unwrap();
        assert_eq!(&a[dashes + 1..], &ops);
        assert!(a[..dashes].contains(&"-r".to_string()));
        assert!(a.contains(&"BatchMode=yes".to_string()));
        assert!(a
            .iter()
            .any(|x| x.ends_with("--progress '/run/user/1/ec2ssh/xfer-a/progress.sock'")));
    }

    #[test]
    fn odd_paths_and_profiles_are_quoted_for_the_proxy_shell() {
        let exe = Path::new("/opt/my tools/ec2ssh's 100%");
        let cmd = proxy_command(exe, "us-east-1", Some("prod; rm -rf ~"), None);
        assert_eq!(
            cmd,
            r"'/opt/my tools/ec2ssh'\''s 100%%' proxy %h %p --region 'us-east-1' --profile 'prod; rm -rf ~'"
        );
    }
}
