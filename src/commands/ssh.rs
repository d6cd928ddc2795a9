//! `ec2ssh ssh [user@]TARGET [-- ssh options and/or remote command]`: connect without
//! the picker. TARGET is an instance id, an IP address, or a Name (exact, else a
//! unique fuzzy match); the exit code is ssh's.

use crate::cli::SshArgs;
use crate::connect::{user, Connector};
use crate::error::AppError;
use crate::fleet::{self, Instance, Ping};
use crate::signals::Signals;
use crate::text::sanitize;

pub async fn run(mut connector: Connector, args: &SshArgs) -> Result<u8, AppError> {
    let mut signals = Signals::install();
    let (login, target) = match args.destination.split_once('@') {
        Some((u, t)) => (Some(u.to_string()), t.to_string()),
        None => (None, args.destination.clone()),
    };
    if let Some(u) = args.user.clone().or(login) {
        if !user::valid(&u) {
            return Err(AppError::other(
                format!("{:?} is not a valid login name", sanitize(&u)),
                "use letters, digits, '.', '_', '-' (e.g. ec2-user)",
            ));
        }
        connector.rules.explicit = Some(u);
    }
    connector.key = args.key.clone();
    let (options, command) = split_ssh_args(&args.rest);
    connector.ssh_options = options;

    let inventory = fleet::fetch(&connector.ctx).await?;
    let instance = find(&inventory.instances, &target)?;
    if instance.ping != Ping::Online {
        return Err(AppError::other(
            format!(
                "{} ({}) is not connected to Systems Manager (ping status: {})",
                instance.id,
                sanitize(instance.display_name()),
                instance.ping.label()
            ),
            "it must be running with its SSM agent Online; `ec2ssh list` shows the fleet",
        ));
    }
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

/// The one instance `target` names: an id, an IP, an exact Name, or a unique fuzzy match.
pub fn find<'a>(instances: &'a [Instance], target: &str) -> Result<&'a Instance, AppError> {
    let by = |f: &dyn Fn(&Instance) -> bool| instances.iter().filter(|i| f(i)).collect::<Vec<_>>();
    let exact_id = by(&|i| i.id == target);
    let candidates = if !exact_id.is_empty() {
        exact_id
    } else {
        let ip = by(&|i| {
            i.private_ip.as_deref() == Some(target) || i.public_ip.as_deref() == Some(target)
        });
        if !ip.is_empty() {
            ip
        } else {
            let named = by(&|i| {
                i.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(target))
            });
            if !named.is_empty() {
                named
            } else {
                crate::filter::filter_instances(instances, target)
            }
        }
    };
    match candidates.as_slice() {
        [one] => Ok(one),
        [] => Err(AppError::other(
            format!("no instance matches {:?}", sanitize(target)),
            "`ec2ssh list` shows the fleet; pass an id, an IP or a Name",
        )),
        many => {
            let list: Vec<String> = many
                .iter()
                .take(10)
                .map(|i| {
                    format!(
                        "{} {} ({})",
                        i.id,
                        sanitize(i.display_name()),
                        i.ping.label()
                    )
                })
                .collect();
            let more = many.len().saturating_sub(10);
            let tail = if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            };
            Err(AppError::other(
                format!(
                    "{:?} matches {} instances: {}{tail}",
                    sanitize(target),
                    many.len(),
                    list.join("; ")
                ),
                "use the instance id, or more of the name",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, name: &str, ip: &str) -> Instance {
        Instance {
            id: id.into(),
            name: Some(name.into()),
            private_ip: Some(ip.into()),
            ..Instance::default()
        }
    }

    #[test]
    fn finds_by_id_ip_name_and_unique_fuzzy_match() {
        let fleet = [
            inst("i-01", "web-prod-1", "10.0.0.1"),
            inst("i-02", "web-prod-2", "10.0.0.2"),
            inst("i-03", "db-primary", "10.0.0.3"),
        ];
        assert_eq!(find(&fleet, "i-02").unwrap().id, "i-02");
        assert_eq!(find(&fleet, "10.0.0.3").unwrap().id, "i-03");
        assert_eq!(find(&fleet, "WEB-PROD-1").unwrap().id, "i-01");
        assert_eq!(find(&fleet, "dbprim").unwrap().id, "i-03");
        let e = find(&fleet, "webprod").unwrap_err().to_string();
        assert!(
            e.contains("matches 2 instances") && e.contains("i-01") && e.contains("i-02"),
            "{e}"
        );
        assert!(find(&fleet, "nothing-like-it").is_err());
    }

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
