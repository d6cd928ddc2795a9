//! A private OpenSSH sshd on loopback for `ec2ssh demo`, standing in for the
//! instances' sshd. It runs as the current user (so only that user can log in) and
//! trusts the keys the simulator's SendSSHPublicKey writes to its authorized_keys,
//! each with a 60 s `expiry-time`, as EC2 Instance Connect does.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ssh_key::{rand_core::OsRng, Algorithm, LineEnding, PrivateKey};

/// The sshd binary, if OpenSSH's server is installed.
pub fn find() -> Option<PathBuf> {
    let candidates = ["/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| crate::config::find_program("sshd"))
}

/// A running sshd; killed when dropped.
pub struct PrivateSshd {
    pub addr: SocketAddr,
    pub authorized_keys: PathBuf,
    log: PathBuf,
    child: Child,
}

impl PrivateSshd {
    /// Starts `sshd` with its files in `dir` (which should be private).
    pub fn start(sshd: &Path, dir: &Path) -> std::io::Result<PrivateSshd> {
        let host_key = dir.join("host_ed25519");
        let key =
            PrivateKey::random(&mut OsRng, Algorithm::Ed25519).map_err(std::io::Error::other)?;
        let pem = key
            .to_openssh(LineEnding::LF)
            .map_err(std::io::Error::other)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&host_key)?
            .write_all(pem.as_bytes())?;
        let authorized_keys = dir.join("authorized_keys");
        std::fs::write(&authorized_keys, "")?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nPidFile none\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nAuthorizedKeysFile {}\nStrictModes no\n\
                 PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n",
                host_key.display(),
                authorized_keys.display()
            ),
        )?;
        let log = dir.join("sshd.log");
        let child = Command::new(sshd)
            .arg("-f")
            .arg(&config)
            .args(["-D", "-e"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let mut sshd = PrivateSshd {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            authorized_keys,
            log,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        // Our sshd's own word, not just an open port (another process could hold it).
        let listening = format!("Server listening on 127.0.0.1 port {port}");
        let said = |log: &Path| std::fs::read_to_string(log).is_ok_and(|l| l.contains(&listening));
        while !said(&sshd.log) || TcpStream::connect(sshd.addr).is_err() {
            if let Ok(Some(status)) = sshd.child.try_wait() {
                return Err(std::io::Error::other(format!(
                    "sshd exited ({status}): {}",
                    sshd.log_tail()
                )));
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "sshd did not start listening: {}",
                    sshd.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(sshd)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines().rev().take(3).collect::<Vec<_>>().join(" / ")
    }
}

impl Drop for PrivateSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Adds `key` to an authorized_keys file with a 60 s `expiry-time` (UTC), dropping
/// entries that have expired.
pub fn authorize_for_a_minute(file: &Path, key: &str) -> std::io::Result<()> {
    let now = std::time::SystemTime::now();
    let stamp = |t: std::time::SystemTime| {
        // RFC 3339 "2026-11-23T08:50:15Z" → "20261123085015Z".
        humantime::format_rfc3339_seconds(t)
            .to_string()
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == 'Z')
            .collect::<String>()
    };
    let current = stamp(now);
    let existing = std::fs::read_to_string(file).unwrap_or_default();
    let mut lines: Vec<String> = existing
        .lines()
        .filter(|l| {
            l.strip_prefix("expiry-time=\"")
                .and_then(|rest| rest.split('"').next())
                .is_some_and(|expiry| expiry > current.as_str())
        })
        .map(str::to_string)
        .collect();
    let expiry = stamp(now + Duration::from_secs(60));
    lines.push(format!("expiry-time=\"{expiry}\" {}", key.trim()));
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, lines.join("\n") + "\n")?;
    std::fs::rename(tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_get_an_expiry_and_expired_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("authorized_keys");
        std::fs::write(
            &file,
            "expiry-time=\"20000101000000Z\" ssh-ed25519 AAAAold\nno-expiry ssh-ed25519 AAAAjunk\n",
        )
        .unwrap();
        authorize_for_a_minute(&file, "ssh-ed25519 AAAAnew ec2ssh\n").unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(lines[0].starts_with("expiry-time=\"20"), "{text}");
        assert!(
            lines[0].ends_with("Z\" ssh-ed25519 AAAAnew ec2ssh"),
            "{text}"
        );
    }
}
