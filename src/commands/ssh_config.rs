//! `ec2ssh ssh-config`: an ~/.ssh/config block that makes plain `ssh`, `scp`, `rsync`,
//! `sftp` and editors' remote plugins reach instances by id through `ec2ssh proxy`,
//! which pushes ec2ssh's managed key before tunnelling.

use std::fmt::Write;

use crate::aws::AwsContext;
use crate::cli::SshConfigArgs;
use crate::config::Paths;
use crate::connect::{key, ssh::shell_quote, user};
use crate::error::AppError;
use crate::fleet::{self, Instance};

pub async fn run(ctx: &AwsContext, args: &SshConfigArgs) -> Result<u8, AppError> {
    if !user::valid(&args.user) {
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
    let key = key::managed(&paths.data_dir).map_err(|e| {
        AppError::other(
            e.to_string(),
            "check the permissions of the directory named above",
        )
    })?;
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
        exe: &exe.to_string_lossy(),
        identity: &key.private.to_string_lossy(),
        known_hosts: &paths.known_hosts().to_string_lossy(),
        user: &args.user,
        regions: &ctx.regions,
        profile: ctx.profile.as_deref(),
        instances: &instances,
    });
    print!("{block}");
    Ok(0)
}

pub struct Block<'a> {
    pub exe: &'a str,
    pub identity: &'a str,
    pub known_hosts: &'a str,
    pub user: &'a str,
    pub regions: &'a [String],
    pub profile: Option<&'a str>,
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

/// The text of the block.
pub fn render(b: &Block) -> String {
    let mut flags = String::new();
    if let [only] = b.regions {
        let _ = write!(flags, " --region {}", shell_quote(only));
    }
    if let Some(p) = b.profile {
        let _ = write!(flags, " --profile {}", shell_quote(p));
    }
    let exe = shell_quote(b.exe).replace('%', "%%");
    let common = |out: &mut String| {
        let _ = writeln!(out, "    IdentityFile \"{}\"", b.identity);
        let _ = writeln!(out, "    IdentitiesOnly yes");
        let _ = writeln!(out, "    UserKnownHostsFile \"{}\"", b.known_hosts);
        let _ = writeln!(out, "    StrictHostKeyChecking accept-new");
    };
    let mut out = String::new();
    out.push_str("# Written by `ec2ssh ssh-config`: reach EC2 instances by id over AWS Systems\n");
    out.push_str(
        "# Manager; each connection pushes ec2ssh's key with EC2 Instance Connect (valid 60 s).\n",
    );
    let _ = writeln!(out, "Host i-*");
    let _ = writeln!(out, "    User {}", b.user);
    let _ = writeln!(
        out,
        "    ProxyCommand {exe} proxy --push-key %r %h %p{flags}"
    );
    common(&mut out);
    out.push_str(
        "\n# Hybrid nodes (mi-*): Instance Connect cannot push keys; use a key they trust.\n",
    );
    let _ = writeln!(out, "Host mi-*");
    let _ = writeln!(out, "    ProxyCommand {exe} proxy %h %p{flags}");
    let _ = writeln!(out, "    UserKnownHostsFile \"{}\"", b.known_hosts);
    for i in b.instances.iter().filter(|i| !i.is_hybrid()) {
        let Some(name) = i.name.as_deref().filter(|n| alias(n)) else {
            continue;
        };
        let _ = writeln!(out, "\nHost {name}");
        let _ = writeln!(out, "    HostName {}", i.id);
        let _ = writeln!(out, "    HostKeyAlias {}", i.id);
        let _ = writeln!(out, "    User {}", user::platform_default(i));
        let _ = writeln!(
            out,
            "    ProxyCommand {exe} proxy --push-key %r %h %p --region {}{}",
            shell_quote(&i.region),
            b.profile
                .map(|p| format!(" --profile {}", shell_quote(p)))
                .unwrap_or_default()
        );
        common(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_tunnels_by_id_and_aliases_only_safe_names() {
        let named = |id: &str, name: &str| Instance {
            id: id.into(),
            name: Some(name.into()),
            region: "eu-west-1".into(),
            platform_name: Some("Ubuntu".into()),
            ..Instance::default()
        };
        let instances = [
            named("i-01", "web-1"),
            named("i-02", "bad name*"),
            named("i-03", "x\u{1b}[31m"),
            named("mi-04", "onprem"),
        ];
        let text = render(&Block {
            exe: "/usr/local/bin/ec2ssh",
            identity: "/h/.local/share/ec2ssh/id_ed25519",
            known_hosts: "/h/.local/share/ec2ssh/known_hosts",
            user: "ec2-user",
            regions: &["us-east-1".to_string()],
            profile: Some("prod"),
            instances: &instances,
        });
        assert!(text.contains("Host i-*\n    User ec2-user\n    ProxyCommand '/usr/local/bin/ec2ssh' proxy --push-key %r %h %p --region 'us-east-1' --profile 'prod'\n"), "{text}");
        assert!(
            text.contains(
                "Host mi-*\n    ProxyCommand '/usr/local/bin/ec2ssh' proxy %h %p --region"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "Host web-1\n    HostName i-01\n    HostKeyAlias i-01\n    User ubuntu\n"
            ),
            "{text}"
        );
        assert!(text.contains("--region 'eu-west-1'"));
        assert!(
            !text.contains("bad name") && !text.contains('\u{1b}') && !text.contains("Host onprem")
        );
    }
}
