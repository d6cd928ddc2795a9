//! The SSH side of the test rig: a private OpenSSH sshd on loopback whose keys come
//! from an EC2-Instance-Connect-like AuthorizedKeysCommand (installed by
//! scripts/test-deps.sh), client keys, hermetic ssh/scp commands, and raw calls to
//! the simulator's Session Manager API.

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{free_port, hermetic, require, wait_for, Guarded, Sim};

/// The AuthorizedKeysCommand: prints KEYS_DIR/USER/*.pub younger than 60 s.
pub const AUTHORIZED_KEYS_COMMAND: &str = "/usr/local/libexec/ec2ssh-test/authorized-keys";
/// The login user of the simulated instances (created by scripts/test-deps.sh).
pub const USER: &str = "ec2-user";

/// sshd on 127.0.0.1, killed on drop.
pub struct Sshd {
    pub port: u16,
    dir: PathBuf,
    _child: Guarded,
}

impl Sshd {
    pub fn start(home: &Path) -> Sshd {
        Sshd::start_named(home, "sshd", None)
    }

    /// Another sshd in the same home (`home/NAME`), e.g. one per simulated host;
    /// with `sftp_home`, scp/sftp sessions start there (each host's own "home").
    pub fn start_named(home: &Path, name: &str, sftp_home: Option<&Path>) -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        require(sshd, "OpenSSH sshd");
        require(
            Path::new(AUTHORIZED_KEYS_COMMAND),
            "the test AuthorizedKeysCommand",
        );
        let dir = home.join(name);
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        let sftp = match sftp_home {
            Some(d) => format!("internal-sftp -d {}", d.display()),
            None => "internal-sftp".into(),
        };
        keygen(&dir.join("hostkey"));
        // A free port can be taken by another test between the probe and sshd's bind;
        // then sshd exits and the port answers for someone else. So success is this
        // sshd saying it listens, and a lost race is retried on another port.
        for _attempt in 0..5 {
            let port = free_port();
            let config = dir.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "ListenAddress 127.0.0.1\n\
                     Port {port}\n\
                     HostKey {dir}/hostkey\n\
                     PidFile none\n\
                     UsePAM no\n\
                     PasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\n\
                     PubkeyAuthentication yes\n\
                     AuthorizedKeysFile none\n\
                     AuthorizedKeysCommand {AUTHORIZED_KEYS_COMMAND} {dir}/keys %u\n\
                     AuthorizedKeysCommandUser root\n\
                     StrictModes no\n\
                     Subsystem sftp {sftp}\n",
                    dir = dir.display()
                ),
            )
            .unwrap();
            let _ = std::fs::create_dir_all("/run/sshd");
            let check = Command::new(sshd)
                .args(["-t", "-f"])
                .arg(&config)
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "sshd -t: {}",
                String::from_utf8_lossy(&check.stderr)
            );
            let log_path = dir.join("sshd.log");
            let log = std::fs::File::create(&log_path).unwrap();
            let child = Command::new(sshd)
                .arg("-f")
                .arg(&config)
                .args(["-D", "-e"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start sshd");
            let mut child = Guarded(child);
            let listening = format!("Server listening on 127.0.0.1 port {port}");
            let up = wait_for("sshd to listen or exit", Duration::from_secs(10), || {
                if std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains(&listening)) {
                    return Some(true);
                }
                matches!(child.0.try_wait(), Ok(Some(_))).then_some(false)
            });
            if up {
                wait_for("sshd to accept", Duration::from_secs(10), || {
                    TcpStream::connect(("127.0.0.1", port)).ok()
                });
                return Sshd {
                    port,
                    dir,
                    _child: child,
                };
            }
        }
        panic!(
            "sshd did not start: {}",
            std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
        );
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes `pubkey` for `user`, as SendSSHPublicKey does: valid for 60 s.
    pub fn authorize(&self, user: &str, pubkey: &str) {
        let dir = self.dir.join("keys").join(user);
        std::fs::create_dir_all(&dir).unwrap();
        let n = std::fs::read_dir(&dir).unwrap().count();
        std::fs::write(dir.join(format!("{n}.pub")), format!("{pubkey}\n")).unwrap();
    }

    /// Where the simulator's `--keys-dir` must write pushed keys for this sshd.
    pub fn keys_dir(&self) -> PathBuf {
        self.dir.join("keys")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

/// `parent/name`, owned by the instances' login user (so scp can write there), with
/// `parent` opened up for it to pass through.
pub fn user_dir(parent: &Path, name: &str) -> PathBuf {
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o711)).unwrap();
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let uid = Command::new("id").args(["-u", USER]).output().unwrap();
    let uid: u32 = String::from_utf8_lossy(&uid.stdout).trim().parse().unwrap();
    std::os::unix::fs::chown(&dir, Some(uid), None).unwrap();
    dir
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ec2ssh-test", "-f"])
        .arg(path)
        .status()
        .expect("run ssh-keygen");
    assert!(status.success());
}

/// A client key pair: (private key path, public key line).
pub fn client_key(home: &Path) -> (PathBuf, String) {
    let path = home.join("id_ed25519");
    if !path.exists() {
        keygen(&path);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_string())
}

/// `ssh` or `scp` with no user config, batch mode, a private known_hosts and only `key`;
/// the environment is hermetic and points ec2ssh (the ProxyCommand) at `sim`.
pub fn openssh(program: &str, home: &Path, key: &Path, sim: Option<&Sim>) -> Command {
    let mut c = Command::new(program);
    hermetic(&mut c, home);
    if let Some(sim) = sim {
        c.env("AWS_ENDPOINT_URL", &sim.endpoint);
    }
    c.args(["-F", "/dev/null", "-o", "BatchMode=yes"])
        .args(["-o", "StrictHostKeyChecking=accept-new"])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            home.join("known_hosts").display()
        ))
        .args(["-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR", "-i"])
        .arg(key)
        .stdin(Stdio::null());
    c
}

/// The ProxyCommand option for `ec2ssh proxy` (plus `extra` flags).
pub fn proxy_option(extra: &str) -> String {
    format!(
        "ProxyCommand={} proxy %h %p --region us-east-1 {extra}",
        crate::common::bin().display()
    )
}

/// A fleet file with one Online instance relayed to `target`, one ConnectionLost
/// instance and one with an old agent (no in-band TerminateSession flag).
pub fn fleet_file(home: &Path, target: &str) -> PathBuf {
    let path = home.join("fleet.toml");
    std::fs::write(
        &path,
        format!(
            r#"default_region = "us-east-1"

[[instance]]
id = "{ONLINE}"
name = "tunnel-target"
state = "running"
ping = "Online"
platform_type = "Linux"
platform_name = "Amazon Linux"
agent_version = "3.3.1611.0"
target = "{target}"

[[instance]]
id = "{LOST}"
name = "gone-away"
state = "running"
ping = "ConnectionLost"
agent_version = "3.3.1611.0"
target = "{target}"

[[instance]]
id = "{OLD_AGENT}"
name = "old-agent"
state = "running"
ping = "Online"
agent_version = "2.3.612.0"
target = "{target}"
"#
        ),
    )
    .unwrap();
    path
}

pub const ONLINE: &str = "i-0aaaa000000000001";
pub const LOST: &str = "i-0aaaa000000000002";
pub const OLD_AGENT: &str = "i-0aaaa000000000003";

/// Calls a Session Manager operation on the simulator (signed with its key) and
/// returns the JSON answer.
pub fn ssm_call(sim: &Sim, op: &str, body: &serde_json::Value) -> serde_json::Value {
    let (status, json) = sim.ssm(op, body);
    assert!(status.starts_with("HTTP/1.1 200"), "{op}: {status} {json}");
    json
}

/// Sessions DescribeSessions reports as Active, as (id, status).
pub fn active_sessions(sim: &Sim) -> Vec<(String, String)> {
    let v = ssm_call(
        sim,
        "DescribeSessions",
        &serde_json::json!({ "State": "Active" }),
    );
    v["Sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["SessionId"].as_str().unwrap().to_string(),
                s["Status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Waits until no session is active (termination is asynchronous on the service side).
pub fn assert_no_active_sessions(sim: &Sim) {
    let mut last = Vec::new();
    let done = (0..100).any(|_| {
        last = active_sessions(sim);
        if last.is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
        false
    });
    assert!(done, "sessions left active: {last:?}");
}

/// Writes the block `ec2ssh ssh-config` printed (`block`) as an ssh config file for
/// tests (batch mode, errors only) and returns its path.
pub fn write_ssh_config(home: &Path, block: &[u8]) -> PathBuf {
    let config = home.join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "{}\nHost *\n    BatchMode yes\n    LogLevel ERROR\n",
            String::from_utf8_lossy(block)
        ),
    )
    .unwrap();
    config
}

/// A simulator of `fleet` whose pushed keys go to `sshd`'s AuthorizedKeysCommand.
pub fn sim_for(home: &Path, sshd: &Sshd, fleet: &Path, extra: &[&str]) -> Sim {
    let keys = sshd.keys_dir();
    let mut args = vec![
        "--fleet",
        fleet.to_str().unwrap(),
        "--keys-dir",
        keys.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Sim::start(home, &args)
}

/// A loopback sshd, a simulator of the fleet `fleet(home, sshd address)` writes that
/// relays to it and hands pushed keys to its AuthorizedKeysCommand, and a private home.
pub struct Rig {
    pub home: tempfile::TempDir,
    pub sshd: Sshd,
    pub sim: Sim,
}

impl Rig {
    pub fn start(fleet: impl FnOnce(&Path, &str) -> PathBuf, sim_args: &[&str]) -> Rig {
        let home = tempfile::tempdir().unwrap();
        let sshd = Sshd::start(home.path());
        let fleet = fleet(home.path(), &sshd.addr());
        let sim = sim_for(home.path(), &sshd, &fleet, sim_args);
        Rig { home, sshd, sim }
    }

    /// `ec2ssh --region us-east-1` against the simulator, with the home's XDG dirs.
    pub fn ec2ssh(&self) -> Command {
        let mut c = crate::common::ec2ssh(self.home.path());
        c.env("AWS_ENDPOINT_URL", &self.sim.endpoint)
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .env("XDG_DATA_HOME", self.home.path().join("data"))
            .env("XDG_STATE_HOME", self.home.path().join("state"))
            .args(["--region", "us-east-1"])
            .stdin(Stdio::null());
        c
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.home.path().join("run")
    }

    /// Plain OpenSSH `ssh -F config host command` (ec2ssh only as its ProxyCommand).
    pub fn plain_ssh(&self, config: &Path, host: &str, command: &str) -> std::process::Output {
        let mut c = Command::new("ssh");
        hermetic(&mut c, self.home.path());
        c.env("AWS_ENDPOINT_URL", &self.sim.endpoint)
            .env("XDG_DATA_HOME", self.home.path().join("data"))
            .arg("-F")
            .arg(config)
            .arg(host)
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}
