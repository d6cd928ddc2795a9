//! What `ec2ssh scp` was asked to copy, from its operands, by scp's own rules: an
//! operand is remote when a `:` comes before any `/` (`web-1:/etc/app.conf`,
//! `ec2-user@i-0abc…:logs/`), and `:PATH` means "on the hosts given with `--target`".
//! Pure: nothing here touches the network or the disk.

use std::fmt;

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Local files to the instances.
    Push,
    /// Instance files to here.
    Pull,
}

/// A parsed `ec2ssh scp` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySpec {
    pub direction: Direction,
    /// Local paths (push) or remote paths (pull), as given.
    pub sources: Vec<String>,
    /// The remote path (push; empty means the login's home) or the local path (pull).
    pub dest: String,
    /// The host in the remote operand(s), `None` for `:PATH` (the `--target` hosts).
    pub host: Option<String>,
    /// The login in `user@host:path`, if given.
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("scp needs a source and a destination")]
    TooFew,
    #[error("one side must be local: {0:?} and {1:?} are both remote")]
    BothRemote(String, String),
    #[error("neither {0:?} nor {1:?} names an instance")]
    NoRemote(String, String),
    #[error("the remote sources name different hosts ({0:?} and {1:?})")]
    MixedHosts(String, String),
    #[error("{0:?} is not a valid login name")]
    BadUser(String),
}

impl SpecError {
    pub fn fix(&self) -> &'static str {
        match self {
            SpecError::TooFew | SpecError::NoRemote(..) => {
                "write it like scp: `ec2ssh scp FILE… HOST:DEST`, `ec2ssh scp HOST:PATH DEST`, or `ec2ssh scp -t tag:Role=web FILE :DEST`"
            }
            SpecError::BothRemote(..) => "copy to here first, then on to the other instance",
            SpecError::MixedHosts(..) => "fetch from one host per run, or use `:PATH` with --target for several",
            SpecError::BadUser(_) => "use letters, digits, '.', '_', '-' (e.g. ec2-user)",
        }
    }
}

/// A remote operand, split.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Remote<'a> {
    user: Option<&'a str>,
    host: &'a str,
    path: &'a str,
}

/// `[user@]host:path` or `:path` when a `:` comes before any `/`; else local.
fn remote(operand: &str) -> Option<Remote<'_>> {
    let colon = operand.find(':')?;
    if operand.find('/').is_some_and(|slash| slash < colon) {
        return None;
    }
    let (login, path) = (&operand[..colon], &operand[colon + 1..]);
    let (user, host) = match login.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, login),
    };
    Some(Remote { user, host, path })
}

impl CopySpec {
    pub fn parse(operands: &[String]) -> Result<CopySpec, SpecError> {
        let [sources @ .., dest] = operands else {
            return Err(SpecError::TooFew);
        };
        if sources.is_empty() {
            return Err(SpecError::TooFew);
        }
        let user_of = |r: &Remote| -> Result<Option<String>, SpecError> {
            match r.user {
                Some(u) if !crate::names::valid_login(u) => Err(SpecError::BadUser(u.into())),
                u => Ok(u.map(String::from)),
            }
        };
        let host_of = |r: &Remote| (!r.host.is_empty()).then(|| r.host.to_string());
        if let Some(to) = remote(dest) {
            if let Some(src) = sources.iter().find(|s| remote(s).is_some()) {
                return Err(SpecError::BothRemote(src.clone(), dest.clone()));
            }
            return Ok(CopySpec {
                direction: Direction::Push,
                sources: sources.to_vec(),
                dest: to.path.to_string(),
                host: host_of(&to),
                user: user_of(&to)?,
            });
        }
        let mut first: Option<Remote> = None;
        let mut paths = Vec::new();
        for s in sources {
            let Some(r) = remote(s) else {
                return Err(SpecError::NoRemote(s.clone(), dest.clone()));
            };
            if let Some(f) = &first {
                if (f.user, f.host) != (r.user, r.host) {
                    return Err(SpecError::MixedHosts(
                        format!("{}", Shown(f)),
                        format!("{}", Shown(&r)),
                    ));
                }
            }
            paths.push(r.path.to_string());
            first.get_or_insert(r);
        }
        let from = first.ok_or(SpecError::TooFew)?;
        Ok(CopySpec {
            direction: Direction::Pull,
            sources: paths,
            dest: dest.clone(),
            host: host_of(&from),
            user: user_of(&from)?,
        })
    }

    /// scp's operands for one host, `user@id:path` on the remote side; a pull from
    /// several hosts lands in `local_dest` (a per-host directory) instead of `dest`.
    pub fn operands(
        &self,
        login: &str,
        instance_id: &str,
        local_dest: Option<&str>,
    ) -> Vec<String> {
        let at = |path: &str| format!("{login}@{instance_id}:{path}");
        match self.direction {
            Direction::Push => {
                let mut v = self.sources.clone();
                v.push(at(&self.dest));
                v
            }
            Direction::Pull => {
                let mut v: Vec<String> = self.sources.iter().map(|p| at(p)).collect();
                v.push(local_dest.unwrap_or(&self.dest).to_string());
                v
            }
        }
    }
}

struct Shown<'a, 'b>(&'a Remote<'b>);

impl fmt::Display for Shown<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.user {
            Some(u) => write!(f, "{u}@{}", self.0.host),
            None => write!(f, "{}", self.0.host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(ops: &[&str]) -> Result<CopySpec, SpecError> {
        CopySpec::parse(&ops.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn a_push_to_a_named_host() {
        let s = parse(&["app.conf", "build/", "admin@web-1:/etc/app/"]).unwrap();
        assert_eq!(s.direction, Direction::Push);
        assert_eq!(s.sources, ["app.conf", "build/"]);
        assert_eq!(
            (s.host.as_deref(), s.user.as_deref()),
            (Some("web-1"), Some("admin"))
        );
        assert_eq!(s.dest, "/etc/app/");
        assert_eq!(
            s.operands("admin", "i-01", None),
            ["app.conf", "build/", "admin@i-01:/etc/app/"]
        );
    }

    #[test]
    fn colon_paths_go_to_the_target_hosts_and_empty_means_home() {
        let s = parse(&["f", ":"]).unwrap();
        assert_eq!(
            (s.host.clone(), s.user.clone(), s.dest.as_str()),
            (None, None, "")
        );
        assert_eq!(s.operands("ec2-user", "i-02", None)[1], "ec2-user@i-02:");
    }

    #[test]
    fn a_colon_after_a_slash_is_part_of_a_local_name() {
        let s = parse(&["./a:b", "web:"]).unwrap();
        assert_eq!(s.sources, ["./a:b"]);
        assert!(matches!(
            parse(&["./a:b", "./c:d"]),
            Err(SpecError::NoRemote(..))
        ));
    }

    #[test]
    fn a_pull_from_one_host_and_into_per_host_dirs() {
        let s = parse(&["web-1:/var/log/app.log", "web-1:/etc/hosts", "out/"]).unwrap();
        assert_eq!(s.direction, Direction::Pull);
        assert_eq!(s.sources, ["/var/log/app.log", "/etc/hosts"]);
        assert_eq!(
            s.operands("u", "i-03", Some("out/i-03")),
            ["u@i-03:/var/log/app.log", "u@i-03:/etc/hosts", "out/i-03"]
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(parse(&["only"]), Err(SpecError::TooFew));
        assert_eq!(parse(&[]), Err(SpecError::TooFew));
        assert!(matches!(
            parse(&["a:x", "b:y"]),
            Err(SpecError::BothRemote(..))
        ));
        assert!(matches!(
            parse(&["a:x", "b:y", "here"]),
            Err(SpecError::MixedHosts(..))
        ));
        assert!(matches!(
            parse(&["a:x", "local", "here"]),
            Err(SpecError::NoRemote(..))
        ));
        assert!(matches!(
            parse(&["f", "x;rm -rf@h:"]),
            Err(SpecError::BadUser(_))
        ));
    }
}
