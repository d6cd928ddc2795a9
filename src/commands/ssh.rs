//! `ec2ssh ssh [user@]TARGET [-- ssh options and/or remote command]`: connect without
//! the picker. TARGET is an instance id, an IP address, or a Name (exact, else a
//! unique fuzzy match); the exit code is ssh's.

use crate::cli::SshArgs;
use crate::connect::Connector;
use crate::error::AppError;
use crate::fleet;
use crate::select;
use crate::signals::Signals;

pub async fn run(mut connector: Connector, args: &SshArgs) -> Result<u8, AppError> {
    let mut signals = Signals::install();
    let (login, target) = match args.destination.split_once('@') {
        Some((u, t)) => (Some(u.to_string()), t.to_string()),
        None => (None, args.destination.clone()),
    };
    connector.set_login(args.user.clone().or(login), args.key.clone())?;
    let (options, command) = split_ssh_args(&args.rest);
    connector.ssh_options = options;

    let inventory = fleet::fetch(&connector.ctx).await?;
    let instance = select::find_reachable(&inventory.instances, &target, connector.via)?;
    let finished = connector.connect(instance, &command, &mut signals).await?;
    if let Some(hint) = finished.hint() {
        eprintln!("ec2ssh: {hint}");
    }
    Ok(finished.code.clamp(0, 255) as u8)
}

/// Leading `-x [value]` tokens are ssh options; the rest is the remote command.
pub fn split_ssh_args(rest: &[String]) -> (Vec<String>, Vec<String>) {
    const WITH_VALUE: &str = "BbcDEeFIiJLlmOoPpQRSWw";
    let mut options = Vec::new();
    let mut i = 0;
    while i < rest.len() && rest[i].starts_with('-') && rest[i].len() > 1 {
        let opt = &rest[i];
        options.push(opt.clone());
        let letter = opt.chars().nth(1).unwrap_or(' ');
        if opt.len() == 2 && WITH_VALUE.contains(letter) {
            if let Some(value) = rest.get(i + 1) {
                options.push(value.clone());
                i += 1;
            }
        }
        i += 1;
    }
    (options, rest[i..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_ssh_options_from_the_remote_command() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (o, c) = split_ssh_args(&v(&["-L", "8080:localhost:80", "-v", "uptime", "-a"]));
        assert_eq!(o, v(&["-L", "8080:localhost:80", "-v"]));
        assert_eq!(c, v(&["uptime", "-a"]));
        let (o, c) = split_ssh_args(&v(&["echo", "hi"]));
        assert!(o.is_empty() && c == v(&["echo", "hi"]));
        let (o, c) = split_ssh_args(&v(&["-oBatchMode=yes"]));
        assert_eq!((o, c), (v(&["-oBatchMode=yes"]), vec![]));
    }
}
