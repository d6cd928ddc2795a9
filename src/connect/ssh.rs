//! The OpenSSH command line for a connection, as an argv (no shell is involved,
//! except the ProxyCommand that ssh itself hands to `sh -c`). Every value that ssh
//! re-reads (file names, the ProxyCommand) is written by [`super::ssh_escape`], the
//! same escaper `ec2ssh ssh-config` uses.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::ssh_escape::{self, Arg, EscapeError, Token};
use crate::error::AppError;

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
    /// Which path the proxy takes.
    pub via: &'a ProxyVia,
}

/// The path a ProxyCommand takes, decided by the caller (so the proxy needs no AWS
/// call to decide it). Every value was validated before it got here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyVia {
    /// Session Manager, falling back to an endpoint if the agent turns out not to be
    /// connected (the proxy's `--via auto`, its default).
    Auto,
    Ssm,
    Eice {
        endpoint_id: String,
        dns_name: String,
        ip: std::net::IpAddr,
        max_duration: u32,
    },
}

impl ProxyVia {
    /// The proxy's arguments for this path.
    fn words(&self) -> Vec<String> {
        match self {
            ProxyVia::Auto => Vec::new(),
            ProxyVia::Ssm => vec!["--via".into(), "ssm".into()],
            ProxyVia::Eice {
                endpoint_id,
                dns_name,
                ip,
                max_duration,
            } => vec![
                "--via".into(),
                "eice".into(),
                "--eice-id".into(),
                endpoint_id.clone(),
                "--eice-host".into(),
                dns_name.clone(),
                "--ip".into(),
                ip.to_string(),
                "--max-tunnel-duration".into(),
                max_duration.to_string(),
            ],
        }
    }
}

/// `ssh` when `program` is not given on PATH.
pub fn default_program() -> PathBuf {
    PathBuf::from("ssh")
}

/// The error a user sees when a path cannot be handed to ssh.
pub fn unusable(e: EscapeError) -> AppError {
    AppError::other(
        format!("cannot pass a path to ssh: {e}"),
        "use directories without control characters or \"${\" (XDG_DATA_HOME, XDG_RUNTIME_DIR, --key)",
    )
}

/// The ProxyCommand: this binary's `proxy` for `%h %p` in the instance's region,
/// over the path `via`.
pub fn proxy_command(
    exe: &Path,
    region: &str,
    profile: Option<&str>,
    progress: Option<&Path>,
    via: &ProxyVia,
) -> Result<String, EscapeError> {
    let exe = exe
        .to_str()
        .ok_or_else(|| EscapeError::NotUtf8(exe.to_string_lossy().into_owned()))?;
    let progress = match progress {
        Some(p) => Some(
            p.to_str()
                .ok_or_else(|| EscapeError::NotUtf8(p.to_string_lossy().into_owned()))?,
        ),
        None => None,
    };
    let mut args = vec![
        Arg::Word(exe),
        Arg::Word("proxy"),
        Arg::Token(Token::Host),
        Arg::Token(Token::Port),
        Arg::Word("--region"),
        Arg::Word(region),
    ];
    if let Some(p) = profile {
        args.extend([Arg::Word("--profile"), Arg::Word(p)]);
    }
    if let Some(p) = progress {
        args.extend([Arg::Word("--progress"), Arg::Word(p)]);
    }
    let via = via.words();
    args.extend(via.iter().map(|w| Arg::Word(w)));
    ssh_escape::proxy_command(&args)
}

/// The options every ssh and scp run gets: the tunnel, the key, host keys pinned
/// per instance id, no password prompts.
fn common_options(spec: &SshSpec) -> Result<Vec<OsString>, EscapeError> {
    let mut a: Vec<OsString> = Vec::new();
    let mut opt = |o: String| {
        a.push("-o".into());
        a.push(o.into());
    };
    opt(format!(
        "ProxyCommand={}",
        proxy_command(spec.exe, spec.region, spec.profile, spec.progress, spec.via)?
    ));
    opt(format!("HostKeyAlias={}", spec.instance));
    opt(format!(
        "UserKnownHostsFile={}",
        ssh_escape::path_value(spec.known_hosts)?
    ));
    opt("StrictHostKeyChecking=accept-new".into());
    // Plain entries, so `ec2ssh forget` can find them (ids are not secrets).
    opt("HashKnownHosts=no".into());
    opt("CheckHostIP=no".into());
    opt("IdentitiesOnly=yes".into());
    opt("PasswordAuthentication=no".into());
    opt("KbdInteractiveAuthentication=no".into());
    // Not `-i`: ssh checks that argument's path before expanding `%` tokens in it, so
    // no escaping could make a path with a `%` work there.
    opt(format!(
        "IdentityFile={}",
        ssh_escape::path_value(spec.key)?
    ));
    Ok(a)
}

/// The ssh arguments (without the program).
pub fn args(spec: &SshSpec) -> Result<Vec<OsString>, EscapeError> {
    let mut a = common_options(spec)?;
    a.extend(spec.options.iter().map(OsString::from));
    a.push(format!("{}@{}", spec.user, spec.instance).into());
    a.extend(spec.command.iter().map(OsString::from));
    Ok(a)
}

/// The scp arguments (without the program): `flags` such as `-r`, then `--` so no
/// operand is taken for an option, then the operands.
pub fn scp_args(
    spec: &SshSpec,
    flags: &[&str],
    operands: &[String],
) -> Result<Vec<OsString>, EscapeError> {
    let mut a = common_options(spec)?;
    // Nothing may prompt (there is no terminal to answer), and only errors are
    // worth reporting per host (not "Permanently added … to known hosts").
    a.extend(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR"].map(OsString::from));
    a.extend(flags.iter().map(OsString::from));
    a.extend(spec.options.iter().map(OsString::from));
    a.push("--".into());
    a.extend(operands.iter().map(OsString::from));
    Ok(a)
}

/// The variable naming the file where `ec2ssh proxy`, run by ssh as its ProxyCommand,
/// records why the tunnel failed: ssh itself only exits 255, as for a refused login.
pub const TUNNEL_STATUS_ENV: &str = "EC2SSH_TUNNEL_STATUS";

/// Records a proxy's failure for the ec2ssh that ran ssh, when it asked (the file is
/// in that ec2ssh's private per-connection directory).
pub fn record_tunnel_failure(what: &str) {
    let Some(path) = std::env::var_os(TUNNEL_STATUS_ENV) else {
        return;
    };
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path);
    if let Ok(mut f) = file {
        let _ = f.write_all(what.as_bytes());
    }
}

/// What the proxy recorded at `path`, if its tunnel failed.
pub fn tunnel_failure(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
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
            via: &ProxyVia::Ssm,
        }
    }

    fn strings(a: Vec<OsString>) -> Vec<String> {
        a.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn the_command_line_pins_the_host_key_to_the_instance_id() {
        let exe = Path::new("/usr/bin/ec2ssh");
        let a = strings(args(&spec(exe, None)).unwrap());
        let joined = a.join(" ");
        assert!(
            joined.contains(
                "ProxyCommand='/usr/bin/ec2ssh' 'proxy' '%h' '%p' '--region' 'eu-west-1' '--via' 'ssm'"
            ),
            "{joined}"
        );
        assert!(joined.contains("HostKeyAlias=i-0123456789abcdef0"));
        assert!(joined.contains("UserKnownHostsFile=\"/home/a/.local/share/ec2ssh/known_hosts\""));
        assert!(joined.contains("IdentityFile=\"/run/user/1/ec2ssh/conn-x/id_ed25519\""));
        assert!(joined.contains("IdentitiesOnly=yes"));
        assert!(!a.contains(&"-i".to_string()));
        assert_eq!(a.last().unwrap(), "ec2-user@i-0123456789abcdef0");
    }

    #[test]
    fn an_eice_row_hands_the_proxy_everything_it_needs() {
        let via = ProxyVia::Eice {
            endpoint_id: "eice-0123456789abcdef0".into(),
            dns_name:
                "eice-0123456789abcdef0.a1.ec2-instance-connect-endpoint.eu-west-1.amazonaws.com"
                    .into(),
            ip: "10.0.3.7".parse().unwrap(),
            max_duration: 600,
        };
        let cmd =
            proxy_command(Path::new("/usr/bin/ec2ssh"), "eu-west-1", None, None, &via).unwrap();
        assert!(cmd.ends_with("'--via' 'eice' '--eice-id' 'eice-0123456789abcdef0' '--eice-host' 'eice-0123456789abcdef0.a1.ec2-instance-connect-endpoint.eu-west-1.amazonaws.com' '--ip' '10.0.3.7' '--max-tunnel-duration' '600'"), "{cmd}");
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
        let a = strings(scp_args(&sp, &["-r"], &ops).unwrap());
        let dashes = a.iter().position(|x| x == "--").unwrap();
        assert_eq!(&a[dashes + 1..], &ops);
        assert!(a[..dashes].contains(&"-r".to_string()));
        assert!(a.contains(&"BatchMode=yes".to_string()));
        assert!(a
            .iter()
            .any(|x| x.contains("'--progress' '/run/user/1/ec2ssh/xfer-a/progress.sock'")));
    }

    #[test]
    fn odd_paths_and_profiles_are_quoted_and_no_percent_is_left_live() {
        let exe = Path::new("/opt/my tools/ec2ssh's 100%h");
        let cmd = proxy_command(
            exe,
            "us-east-1",
            Some("prod; rm -rf ~"),
            None,
            &ProxyVia::Ssm,
        )
        .unwrap();
        assert_eq!(
            cmd,
            r"'/opt/my tools/ec2ssh'\''s 100%%h' 'proxy' '%h' '%p' '--region' 'us-east-1' '--profile' 'prod; rm -rf ~' '--via' 'ssm'"
        );
        let mut sp = spec(exe, None);
        let data = Path::new("/home/a b/%h data/known_hosts");
        sp.known_hosts = data;
        let a = strings(args(&sp).unwrap());
        assert!(a.contains(&"UserKnownHostsFile=\"/home/a b/%%h data/known_hosts\"".to_string()));
        sp.known_hosts = Path::new("/home/${USER}/kh");
        assert!(matches!(args(&sp), Err(EscapeError::EnvReference(_))));
    }
}
