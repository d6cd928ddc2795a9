//! `ec2ssh forget TARGET`: drops an instance's pinned host key from ec2ssh's own
//! known_hosts, for when it was rebuilt and ssh refuses its new key.

use std::path::Path;

use crate::config::Paths;
use crate::error::AppError;

pub fn run(target: &str) -> Result<u8, AppError> {
    let paths = Paths::detect().ok_or_else(AppError::no_data_dir)?;
    let removed = forget(&paths.known_hosts(), target)?;
    if removed == 0 {
        eprintln!(
            "ec2ssh: no host key was pinned for {}",
            crate::text::sanitize(target)
        );
    } else {
        eprintln!(
            "ec2ssh: forgot {removed} host key(s) of {}; the next connection records the new one",
            crate::text::sanitize(target)
        );
    }
    Ok(0)
}

/// Removes the lines for `host` (written with HostKeyAlias, unhashed); returns how many.
pub fn forget(known_hosts: &Path, host: &str) -> Result<usize, AppError> {
    let text = match std::fs::read_to_string(known_hosts) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(AppError::other(
                format!("cannot read {}: {e}", known_hosts.display()),
                "check its permissions",
            ))
        }
    };
    let matches = |line: &str| {
        let hosts = line.split_whitespace().next().unwrap_or("");
        !line.starts_with('#') && hosts.split(',').any(|h| h == host)
    };
    let kept: Vec<&str> = text.lines().filter(|l| !matches(l)).collect();
    let removed = text.lines().count() - kept.len();
    if removed > 0 {
        let mut out = kept.join("\n");
        out.push('\n');
        let dir = known_hosts.parent().unwrap_or(Path::new("."));
        let write = || -> std::io::Result<()> {
            let tmp = tempfile::NamedTempFile::new_in(dir)?;
            std::fs::write(tmp.path(), out.as_bytes())?;
            tmp.persist(known_hosts).map_err(|e| e.error)?;
            Ok(())
        };
        write().map_err(|e| {
            AppError::other(
                format!("cannot rewrite {}: {e}", known_hosts.display()),
                "check its permissions",
            )
        })?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_the_named_instance() {
        let dir = tempfile::tempdir().unwrap();
        let kh = dir.path().join("known_hosts");
        std::fs::write(
            &kh,
            "i-01 ssh-ed25519 AAAA1\ni-02 ssh-ed25519 AAAA2\ni-01 ecdsa-sha2-nistp256 AAAA3\n# i-01 comment\n",
        )
        .unwrap();
        assert_eq!(forget(&kh, "i-01").unwrap(), 2);
        assert_eq!(
            std::fs::read_to_string(&kh).unwrap(),
            "i-02 ssh-ed25519 AAAA2\n# i-01 comment\n"
        );
        assert_eq!(forget(&kh, "i-01").unwrap(), 0);
        assert_eq!(forget(&dir.path().join("none"), "i-01").unwrap(), 0);
    }
}
