//! `ec2ssh ssh-config`: an ~/.ssh/config block that makes plain `ssh`, `scp`, `rsync`,
//! `sftp` and editors' remote plugins reach instances by id through `ec2ssh proxy`,
//! which pushes ec2ssh's managed key before tunnelling.

use std::fmt::Write;
use std::path::Path;

use crate::aws::{AwsContext, Selection};
use crate::cli::SshConfigArgs;
use crate::config::Paths;
use crate::connect::ssh_escape::{self, Arg, EscapeError, Token};
use crate::connect::{key, ssh, user};
use crate::error::AppError;
use crate::fleet::{self, Instance};

pub async fn run(ctx: &AwsContext, args: &SshConfigArgs) -> Result<u8, AppError> {
    if !crate::names::valid_login(&args.user) {
        return Err(AppError::other(
            format!(
                "{:?} is not a valid login name",
                crate::text::sanitize(&args.user)
            ),
            "use e.g. --user ec2-user",
        ));
    }
    let paths = Paths::detect().ok_or_else(|| {
        AppError::other(
            "cannot find ec2ssh's data directory",
            "set HOME (or XDG_DATA_HOME)",
        )
    })?;
    let key = key::managed(&paths.data_dir).map_err(|e| AppError::other(e.to_string(), e.fix()))?;
    let exe = std::env::current_exe().map_err(|e| {
        AppError::other(
            format!("cannot find the ec2ssh executable: {e}"),
            "run ec2ssh by its full path",
        )
    })?;
    let instances = if args.aliases {
        fleet::fetch(ctx).await?.instances
    } else {
        Vec::new()
    };
    let block = render(&Block {
        exe: &exe,
        identity: &key.private,
        known_hosts: &paths.known_hosts(),
        user: &args.user,
        regions: &ctx.all_regions(),
        // The profiles only if the user named them: the proxy finds the id's owner.
        profiles: match &ctx.selection {
            Selection::Chain => ctx.profile.clone(),
            Selection::Named(names) => Some(names.join(",")),
            Selection::All => Some(String::new()),
        },
        instances: &instances,
    })
    .map_err(ssh::unusable)?;
    print!("{block}");
    Ok(0)
}

pub struct Block<'a> {
    pub exe: &'a Path,
    pub identity: &'a Path,
    pub known_hosts: &'a Path,
    pub user: &'a str,
    pub regions: &'a [String],
    /// `--profile a,b` for the proxy (`Some("")`: `--all-profiles`); `None`: the chain.
    pub profiles: Option<String>,
    pub instances: &'a [Instance],
}

/// A Name usable as an ssh Host pattern: no spaces, wildcards or odd characters.
fn alias(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !name.starts_with("i-")
        && !name.starts_with("mi-")
}

/// `ec2ssh proxy [--push-key %r] %h %p [--region R] [--profile P]`, every word quoted.
/// `profile` pins one row's profile (a Name alias); else the block's profiles.
fn proxy(
    b: &Block,
    exe: &str,
    push_key: bool,
    region: Option<&str>,
    profile: Option<&str>,
) -> Result<String, EscapeError> {
    let mut args = vec![Arg::Word(exe), Arg::Word("proxy")];
    if push_key {
        args.extend([Arg::Word("--push-key"), Arg::Token(Token::User)]);
    }
    args.extend([Arg::Token(Token::Host), Arg::Token(Token::Port)]);
    if let Some(r) = region {
        args.extend([Arg::Word("--region"), Arg::Word(r)]);
    }
    match (profile, b.profiles.as_deref()) {
        (Some(p), _) => args.extend([Arg::Word("--profile"), Arg::Word(p)]),
        (None, Some("")) => args.push(Arg::Word("--all-profiles")),
        (None, Some(p)) => args.extend([Arg::Word("--profile"), Arg::Word(p)]),
        (None, None) => {}
    }
    ssh_escape::proxy_command(&args)
}

/// The text of the block. Every value ssh re-reads is written by `ssh_escape`, as on
/// ec2ssh's own ssh command line.
pub fn render(b: &Block) -> Result<String, EscapeError> {
    let exe = b
        .exe
        .to_str()
        .ok_or_else(|| EscapeError::NotUtf8(b.exe.to_string_lossy().into_owned()))?;
    let identity = ssh_escape::path_value(b.identity)?;
    let known_hosts = ssh_escape::path_value(b.known_hosts)?;
    let only_region = match b.regions {
        [only] => Some(only.as_str()),
        _ => None,
    };
    let aliases: Vec<(&str, &Instance)> = b
        .instances
        .iter()
        .filter(|i| !i.is_hybrid() && crate::names::is_instance_id(&i.id))
        .filter(|i| {
            !i.region.is_empty()
                && i.region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        .filter_map(|i| i.name.as_deref().filter(|n| alias(n)).map(|n| (n, i)))
        .collect();
    let common = |out: &mut String| {
        let _ = writeln!(out, "    IdentityFile {identity}");
        let _ = writeln!(out, "    IdentitiesOnly yes");
        let _ = writeln!(out, "    UserKnownHostsFile {known_hosts}");
        let _ = writeln!(out, "    StrictHostKeyChecking accept-new");
    };
    let mut out = String::new();
    out.push_str("# Written by `ec2ssh ssh-config`: reach EC2 instances by id over AWS Systems\n");
    out.push_str(
        "# Manager; each connection pushes ec2ssh's key with EC2 Instance Connect (valid 60 s).\n",
    );
    out.push_str(
        "# Every word of the ProxyCommands is quoted for the shell. A quote in a login or host\n\
         # name could still end that quoting on an OpenSSH older than 9.6 (CVE-2023-51385),\n\
         # so such names get no ProxyCommand.\n",
    );
    let mut hosts = vec!["i-*", "mi-*"];
    hosts.extend(aliases.iter().map(|(n, _)| *n));
    let _ = writeln!(out, "Match host \"{}\" user \"*'*\"", hosts.join(","));
    let _ = writeln!(out, "    ProxyCommand none");
    let _ = writeln!(out, "\nHost i-* \"!*'*\"");
    let _ = writeln!(out, "    User {}", b.user);
    let _ = writeln!(
        out,
        "    ProxyCommand {}",
        proxy(b, exe, true, only_region, None)?
    );
    common(&mut out);
    out.push_str(
        "\n# Hybrid nodes (mi-*): Instance Connect cannot push keys; use a key they trust.\n",
    );
    let _ = writeln!(out, "Host mi-* \"!*'*\"");
    let _ = writeln!(
        out,
        "    ProxyCommand {}",
        proxy(b, exe, false, only_region, None)?
    );
    let _ = writeln!(out, "    UserKnownHostsFile {known_hosts}");
    for (name, i) in aliases {
        let _ = writeln!(out, "\nHost {name}");
        let _ = writeln!(out, "    HostName {}", i.id);
        let _ = writeln!(out, "    HostKeyAlias {}", i.id);
        let _ = writeln!(out, "    User {}", user::platform_default(i));
        let _ = writeln!(
            out,
            "    ProxyCommand {}",
            proxy(b, exe, true, Some(&i.region), i.profile.as_deref())?
        );
        common(&mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "i-0123456789abcdef0";

    fn named(id: &str, name: &str) -> Instance {
        Instance {
            id: id.into(),
            name: Some(name.into()),
            region: "eu-west-1".into(),
            platform_name: Some("Ubuntu".into()),
            ..Instance::default()
        }
    }

    fn block<'a>(instances: &'a [Instance], dir: &'a Path, exe: &'a Path) -> Block<'a> {
        Block {
            exe,
            identity: Box::leak(dir.join("id_ed25519").into_boxed_path()),
            known_hosts: Box::leak(dir.join("known_hosts").into_boxed_path()),
            user: "ec2-user",
            regions: Box::leak(Box::new(["us-east-1".to_string()])),
            profiles: Some("prod".into()),
            instances,
        }
    }

    /// The words `sh` makes of a line of single-quoted words (with `\'` and `\\`
    /// between quotes); `None` if anything in it is unquoted, so that the shell could
    /// expand or split it.
    fn quoted_words(line: &str) -> Option<Vec<String>> {
        let mut words = Vec::new();
        let mut chars = line.chars().peekable();
        while chars.peek().is_some() {
            let mut word = String::new();
            loop {
                match chars.next() {
                    Some('\'') => {
                        for c in chars.by_ref() {
                            if c == '\'' {
                                break;
                            }
                            word.push(c);
                        }
                    }
                    Some('\\') => word.push(chars.next()?),
                    Some(' ') | None => break,
                    Some(_) => return None,
                }
            }
            words.push(word);
        }
        Some(words)
    }

    fn proxy_line<'t>(text: &'t str, host: &str) -> &'t str {
        let block = text.split(&format!("Host {host}")).nth(1).unwrap();
        block
            .lines()
            .find_map(|l| l.strip_prefix("    ProxyCommand "))
            .unwrap()
    }

    #[test]
    fn every_word_of_the_proxy_command_is_quoted() {
        let dir = Path::new("/h/.local/share/ec2ssh");
        let exe = Path::new("/opt/my tools/ec2ssh's 100%");
        let instances = [named(ID, "web-1")];
        let text = render(&block(&instances, dir, exe)).unwrap();
        let words = |host| quoted_words(proxy_line(&text, host)).expect("all quoted");
        assert_eq!(
            words("i-* \"!*'*\""),
            [
                "/opt/my tools/ec2ssh's 100%%",
                "proxy",
                "--push-key",
                "%r",
                "%h",
                "%p",
                "--region",
                "us-east-1",
                "--profile",
                "prod"
            ]
        );
        assert_eq!(
            words("mi-* \"!*'*\""),
            [
                "/opt/my tools/ec2ssh's 100%%",
                "proxy",
                "%h",
                "%p",
                "--region",
                "us-east-1",
                "--profile",
                "prod"
            ]
        );
        assert_eq!(words("web-1")[7], "eu-west-1");
        assert!(
            text.contains("Match host \"i-*,mi-*,web-1\" user \"*'*\"\n    ProxyCommand none\n")
        );
    }

    #[test]
    fn the_block_tunnels_by_id_and_aliases_only_safe_names() {
        let instances = [
            named(ID, "web-1"),
            named("i-0123456789abcdef1", "bad name*"),
            named("i-0123456789abcdef2", "x\u{1b}[31m"),
            named("mi-0123456789abcdef3", "onprem"),
            named("i-0123 HostName evil", "looks-fine"),
        ];
        let dir = Path::new("/h/.local/share/ec2ssh");
        let text = render(&block(&instances, dir, Path::new("/usr/local/bin/ec2ssh"))).unwrap();
        assert!(text.contains(&format!(
            "Host web-1\n    HostName {ID}\n    HostKeyAlias {ID}\n    User ubuntu\n"
        )));
        assert!(text.contains("    IdentityFile \"/h/.local/share/ec2ssh/id_ed25519\"\n"));
        for absent in ["bad name", "\u{1b}", "Host onprem", "looks-fine", "evil"] {
            assert!(!text.contains(absent), "{absent}: {text}");
        }
    }

    /// OpenSSH reads the block as meant, with a data directory holding a space and `%h`.
    #[test]
    fn ssh_reads_the_block_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("my data %h");
        let exe = Path::new("/usr/local/bin/ec2ssh");
        let instances = [named(ID, "web-1")];
        let text = render(&block(&instances, &data, exe)).unwrap();
        let config = dir.path().join("config");
        std::fs::write(&config, &text).unwrap();
        let resolve = |host: &str| {
            let out = std::process::Command::new("ssh")
                .arg("-G")
                .arg("-F")
                .arg(&config)
                .arg(host)
                .output()
                .expect("ssh (OpenSSH client) runs: scripts/test-deps.sh installs it");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        for host in [ID, "web-1"] {
            let g = resolve(host);
            let line = |k: &str| {
                g.lines()
                    .find_map(|l| l.strip_prefix(&format!("{k} ")))
                    .unwrap_or_else(|| panic!("{k} in {g}"))
                    .to_string()
            };
            assert_eq!(line("hostname"), ID);
            assert_eq!(
                line("userknownhostsfile"),
                data.join("known_hosts").to_str().unwrap()
            );
            assert_eq!(
                line("proxycommand"),
                proxy_line(&text, if host == ID { "i-*" } else { host })
            );
            // IdentityFile is shown before ssh's `%` expansion.
            assert_eq!(
                line("identityfile"),
                data.join("id_ed25519").to_str().unwrap().replace('%', "%%")
            );
        }
        assert_eq!(
            resolve("web-1").lines().find(|l| l.starts_with("user ")),
            Some("user ubuntu")
        );
    }
}
