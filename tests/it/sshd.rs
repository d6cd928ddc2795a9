//! The test rig itself, without ec2ssh: the loopback sshd (`rig::Sshd`) and its
//! EC2-Instance-Connect-style AuthorizedKeysCommand. When these fail, the
//! end-to-end tests' failures are the rig's, not ec2ssh's.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

use crate::rig::{client_key, openssh, Sshd, AUTHORIZED_KEYS_COMMAND, USER};

struct Rig {
    home: tempfile::TempDir,
    sshd: Sshd,
    key: PathBuf,
    public: String,
}

fn rig() -> Rig {
    let home = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(home.path());
    let (key, public) = client_key(home.path());
    Rig {
        home,
        sshd,
        key,
        public,
    }
}

impl Rig {
    /// `ssh -p PORT ec2-user@127.0.0.1 REMOTE`, no ProxyCommand.
    fn ssh(&self, remote: &str) -> Output {
        openssh("ssh", self.home.path(), &self.key, None)
            .args(["-p", &self.sshd.port.to_string()])
            .arg(format!("{USER}@127.0.0.1"))
            .arg(remote)
            .output()
            .expect("run ssh")
    }

    /// The key files `authorize` wrote for `user`.
    fn pushed(&self, user: &str) -> Vec<PathBuf> {
        std::fs::read_dir(self.sshd.keys_dir().join(user))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    fn context(&self, out: &Output) -> String {
        format!(
            "ssh exit {:?}\nstdout: {}\nstderr: {}\nsshd log:\n{}",
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr),
            self.sshd.log()
        )
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn set_age(path: &Path, age: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - age)
        .unwrap();
}

#[test]
fn an_authorized_key_logs_in_and_the_exit_code_comes_back() {
    let r = rig();
    r.sshd.authorize(USER, &r.public);
    let out = r.ssh("echo hi; exit 3");
    assert_eq!(out.status.code(), Some(3), "{}", r.context(&out));
    assert_eq!(text(&out.stdout), "hi\n", "{}", r.context(&out));
}

#[test]
fn without_an_authorized_key_sshd_refuses() {
    let r = rig();
    let out = r.ssh("true");
    assert_eq!(out.status.code(), Some(255), "{}", r.context(&out));
    assert!(
        text(&out.stderr).contains("Permission denied (publickey)"),
        "{}",
        r.context(&out)
    );
}

#[test]
fn a_key_pushed_more_than_60_s_ago_is_refused_and_a_fresh_one_accepted() {
    let r = rig();
    r.sshd.authorize(USER, &r.public);
    let pushed = r.pushed(USER);
    assert_eq!(pushed.len(), 1);
    set_age(&pushed[0], Duration::from_secs(120));
    let out = r.ssh("true");
    assert_eq!(out.status.code(), Some(255), "{}", r.context(&out));
    assert!(
        text(&out.stderr).contains("Permission denied (publickey)"),
        "{}",
        r.context(&out)
    );
    // Only the age differs: the same file, made fresh again, lets the key in.
    set_age(&pushed[0], Duration::ZERO);
    let out = r.ssh("true");
    assert_eq!(out.status.code(), Some(0), "{}", r.context(&out));
}

#[test]
fn scp_of_4_mib_arrives_byte_exact() {
    let r = rig();
    r.sshd.authorize(USER, &r.public);
    let mut data = vec![0u8; 4 << 20];
    rand::rngs::StdRng::seed_from_u64(4).fill_bytes(&mut data);
    let local = r.home.path().join("payload.bin");
    std::fs::write(&local, &data).unwrap();

    // The "instance" side: a directory of the test's own that the login user may
    // write into (the test home is root's and 0700). Removed with the home.
    let home = r.home.path();
    std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o711)).unwrap();
    let inbox = home.join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let uid = Command::new("id").args(["-u", USER]).output().unwrap();
    let uid: u32 = text(&uid.stdout).trim().parse().expect("uid of ec2-user");
    std::os::unix::fs::chown(&inbox, Some(uid), None).unwrap();
    let remote = inbox.join("arrived.bin");

    let out = openssh("scp", home, &r.key, None)
        .args(["-P", &r.sshd.port.to_string()])
        .arg(&local)
        .arg(format!("{USER}@127.0.0.1:{}", remote.display()))
        .output()
        .expect("run scp");
    assert!(out.status.success(), "{}", r.context(&out));
    let arrived = std::fs::read(&remote).unwrap();
    assert_eq!(arrived.len(), data.len(), "size differs");
    assert_eq!(
        Sha256::digest(&arrived),
        Sha256::digest(&data),
        "content differs"
    );
    let meta = std::fs::metadata(&remote).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        uid,
        "written by the login user"
    );
}

/// The AuthorizedKeysCommand's contract, called directly as sshd calls it.
#[test]
fn the_authorized_keys_command_prints_only_fresh_keys_of_a_valid_user() {
    let run = |args: &[&str]| -> String {
        let out = Command::new(AUTHORIZED_KEYS_COMMAND)
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("{AUTHORIZED_KEYS_COMMAND}: {e}: run scripts/test-deps.sh first")
            });
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let home = tempfile::tempdir().unwrap();
    let keys = home.path().join("keys");
    let k = keys.to_str().unwrap();
    let user_dir = keys.join(USER);
    std::fs::create_dir_all(&user_dir).unwrap();
    let marker = home.path().join("evaluated");
    let write = |name: &str, line: &str| {
        let p = user_dir.join(name);
        std::fs::write(&p, format!("{line}\n")).unwrap();
        p
    };
    write("a.pub", "ssh-ed25519 AAAAfresh a");
    let literal = format!("ssh-ed25519 AAAA$(touch {}) `id` b", marker.display());
    write("b.pub", &literal);
    set_age(
        &write("stale.pub", "ssh-ed25519 AAAAstale"),
        Duration::from_secs(61),
    );
    write("not-a-key.txt", "ssh-ed25519 AAAAtxt");
    std::fs::create_dir(user_dir.join("dir.pub")).unwrap();
    std::os::unix::fs::symlink(user_dir.join("a.pub"), user_dir.join("link.pub")).unwrap();

    let mut lines: Vec<String> = run(&[k, USER]).lines().map(String::from).collect();
    lines.sort();
    let mut want = vec!["ssh-ed25519 AAAAfresh a".to_string(), literal];
    want.sort();
    assert_eq!(lines, want);
    assert!(!marker.exists(), "a key file's content was evaluated");

    // Invalid user names, a missing user dir, and a wrong argument count print nothing.
    std::fs::create_dir_all(keys.join("Root")).unwrap();
    std::fs::write(keys.join("Root/k.pub"), "ssh-ed25519 AAAAupper\n").unwrap();
    for bad in [
        "",
        "Root",
        "../keys",
        "a b",
        "-x",
        "9lives",
        "ec2-user/",
        "a;id",
        &"a".repeat(33),
    ] {
        assert_eq!(run(&[k, bad]), "", "user {bad:?}");
    }
    assert_eq!(run(&[k, &"a".repeat(32)]), "");
    assert_eq!(run(&[k, "nobody"]), "");
    assert_eq!(run(&[k]), "");
    assert_eq!(run(&[k, USER, "extra"]), "");

    // Installed as sshd demands: root-owned, not group/world-writable, all the way up.
    let mut p = Path::new(AUTHORIZED_KEYS_COMMAND);
    loop {
        let meta = std::fs::metadata(p).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 0, "{p:?}");
        assert_eq!(meta.permissions().mode() & 0o022, 0, "{p:?}");
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
}
