//! `ec2ssh ssh` end to end: user resolution, a one-time key pushed with
//! SendSSHPublicKey to the simulator (which hands it to the loopback sshd's
//! AuthorizedKeysCommand), ssh through `ec2ssh proxy`, host keys pinned per instance.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::{ec2ssh, in_tmux, Sim};
use crate::rig::{
    assert_no_active_sessions, fleet_file, openssh, proxy_option, Sshd, LOST, ONLINE, USER,
};

struct Setup {
    home: tempfile::TempDir,
    sshd: Sshd,
    sim: Sim,
}

fn setup(sim_args: &[&str]) -> Setup {
    let home = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(home.path());
    let fleet = fleet_file(home.path(), &sshd.addr());
    let keys = sshd.keys_dir();
    let mut args = vec![
        "--fleet",
        fleet.to_str().unwrap(),
        "--keys-dir",
        keys.to_str().unwrap(),
    ];
    args.extend_from_slice(sim_args);
    let sim = Sim::start(home.path(), &args);
    Setup { home, sshd, sim }
}

impl Setup {
    fn ec2ssh(&self) -> Command {
        let mut c = ec2ssh(self.home.path());
        c.env("AWS_ENDPOINT_URL", &self.sim.endpoint)
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .env("XDG_DATA_HOME", self.home.path().join("data"))
            .env("XDG_STATE_HOME", self.home.path().join("state"))
            .args(["--region", "us-east-1"])
            .stdin(Stdio::null());
        c
    }

    fn runtime_dir(&self) -> PathBuf {
        self.home.path().join("run")
    }

    fn known_hosts(&self) -> PathBuf {
        self.home.path().join("data/ec2ssh/known_hosts")
    }

    fn ssh(&self, destination: &str, rest: &[&str]) -> Output {
        let mut c = self.ec2ssh();
        c.args(["ssh", destination, "--"])
            .args(["-o", "BatchMode=yes"]);
        c.args(rest).output().unwrap()
    }

    /// No key file or connection directory is left behind.
    fn assert_no_keys_left(&self) {
        let dir = self.runtime_dir().join("ec2ssh");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn ssh_by_name_runs_a_command_with_the_platform_user_and_returns_its_exit_code() {
    let s = setup(&[]);
    // "tunnel-target" runs Amazon Linux: the default user is ec2-user.
    let out = s.ssh("tunnel-target", &["id -un; exit 7"]);
    assert_eq!(
        text(&out.stdout),
        "ec2-user\n",
        "stderr: {}\nsshd: {}",
        text(&out.stderr),
        s.sshd.log()
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let pinned = std::fs::read_to_string(s.known_hosts()).unwrap();
    assert!(
        pinned.starts_with(&format!("{ONLINE} ssh-ed25519 ")),
        "{pinned}"
    );
    s.assert_no_keys_left();
    assert_no_active_sessions(&s.sim);
    // The user that worked is remembered for next time.
    let memory = std::fs::read_to_string(s.home.path().join("state/ec2ssh/users.json")).unwrap();
    assert!(memory.contains(ONLINE) && memory.contains(USER), "{memory}");
}

#[test]
fn without_a_pushed_key_sshd_refuses() {
    let s = setup(&[]);
    let key = s.home.path().join("unpushed");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    let out = openssh("ssh", s.home.path(), &key, Some(&s.sim))
        .arg("-o")
        .arg(proxy_option(""))
        .arg(format!("{USER}@{ONLINE}"))
        .arg("true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("Permission denied (publickey)"),
        "{}",
        text(&out.stderr)
    );
    assert_no_active_sessions(&s.sim);
}

#[test]
fn a_changed_host_key_is_refused_until_forgotten() {
    let s = setup(&[]);
    assert!(s.ssh(ONLINE, &["true"]).status.success());
    // The instance "was rebuilt": its pinned key no longer matches.
    let other = s.home.path().join("otherhost");
    Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    let fake = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let fake = fake
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(s.known_hosts(), format!("{ONLINE} {fake}\n")).unwrap();

    let out = s.ssh(ONLINE, &["true"]);
    assert_eq!(out.status.code(), Some(255));
    let err = text(&out.stderr);
    assert!(
        err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{err}"
    );
    assert!(err.contains(&format!("ec2ssh forget {ONLINE}")), "{err}");
    s.assert_no_keys_left();

    let forget = s.ec2ssh().args(["forget", ONLINE]).output().unwrap();
    assert!(forget.status.success(), "{}", text(&forget.stderr));
    assert!(s.ssh(ONLINE, &["true"]).status.success());
    assert_no_active_sessions(&s.sim);
}

#[test]
fn an_explicit_user_wins_and_a_bad_one_is_refused() {
    let s = setup(&[]);
    let out = s.ssh(&format!("nobody-here@{ONLINE}"), &["true"]);
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("as nobody-here (command line)"), "{err}");
    let out = s.ssh(&format!("x;y@{ONLINE}"), &["true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a valid login name"));
    s.assert_no_keys_left();
}

#[test]
fn a_denied_key_push_names_the_action() {
    let s = setup(&["--deny", "ec2-instance-connect:SendSSHPublicKey"]);
    let out = s.ssh(ONLINE, &["true"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("ec2-instance-connect:SendSSHPublicKey was denied in us-east-1"),
        "{err}"
    );
    assert!(err.contains(&format!("instance/{ONLINE}")), "{err}");
    s.assert_no_keys_left();
}

#[test]
fn an_offline_instance_is_refused_before_anything_is_pushed() {
    let s = setup(&[]);
    let out = s.ssh(LOST, &["true"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("not connected to Systems Manager") && err.contains("ConnectionLost"),
        "{err}"
    );
    assert!(
        !Path::new(&s.sshd.keys_dir().join(USER)).exists(),
        "no key pushed"
    );
}

/// The whole journey in a real terminal: pick by typing, Enter, a shell on the
/// instance, a command, `exit`, back in the picker with a status line, quit; the
/// terminal's modes are as before and no key is left behind.
#[test]
fn picker_connects_and_comes_back() {
    let s = setup(&[]);
    let dir = s.home.path();
    let run = s.runtime_dir();
    let data = dir.join("data");
    let state = dir.join("state");
    let env = [
        ("AWS_ENDPOINT_URL", s.sim.endpoint.as_str()),
        ("XDG_RUNTIME_DIR", run.to_str().unwrap()),
        ("XDG_DATA_HOME", data.to_str().unwrap()),
        ("XDG_STATE_HOME", state.to_str().unwrap()),
    ];
    let t = in_tmux(dir, &env, "--region us-east-1 pick", false);
    t.wait_screen("the fleet", |sc| sc.contains(" shown ·"));
    t.type_text("tunnel");
    t.wait_screen("the match", |sc| {
        sc.lines()
            .nth(2)
            .is_some_and(|l| l.contains("tunnel-target"))
    });
    // The detail pane shows who we will log in as before connecting.
    t.send(&["C-d"]);
    t.wait_screen("the login user", |sc| {
        sc.contains("ec2-user (platform default)")
    });
    t.send(&["Enter"]);
    t.wait_screen("the remote shell", |sc| sc.contains("ec2-user@"));
    // Ctrl-C belongs to the remote shell: it interrupts `sleep`, not ec2ssh.
    t.type_text("sleep 60");
    t.send(&["Enter"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    t.send(&["C-c"]);
    t.type_text("echo remote-$((6*7))");
    t.send(&["Enter"]);
    t.wait_screen("the command's output", |sc| sc.contains("remote-42"));
    t.type_text("exit");
    t.send(&["Enter"]);
    t.wait_screen("the picker again", |sc| {
        sc.contains("tunnel-target: ssh exited 0 after")
            && sc
                .lines()
                .nth(2)
                .is_some_and(|l| l.contains("tunnel-target"))
    });
    assert_no_active_sessions(&s.sim);
    s.assert_no_keys_left();
    t.send(&["Escape"]);
    assert_eq!(t.finished(dir).1, 130);
}

/// A newcomer's first run: `ec2ssh demo`, pick a host, get a real shell (a private
/// sshd plays the instance), exit, back in the picker, quit.
#[test]
fn the_demo_connects_for_real() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let t = in_tmux(dir, &[], "demo --filter web-prod-1", false);
    t.wait_screen("the demo fleet", |sc| {
        sc.lines().nth(2).is_some_and(|l| l.contains("web-prod-1"))
    });
    t.send(&["Enter"]);
    t.wait_screen("a shell", |sc| {
        sc.contains("ec2ssh: connecting to web-prod-1")
    });
    demo_credentials_are_private(&t, dir);
    t.type_text("echo demo-$((40+2)); exit");
    t.send(&["Enter"]);
    t.wait_screen("the picker again", |sc| {
        sc.contains("web-prod-1: ssh exited 0 after")
    });
    t.send(&["Escape"]);
    assert_eq!(t.finished(dir).1, 130);
}

/// While the demo's ssh runs: its ProxyCommand acts with the row's profile (web-prod-1
/// is the prod account's), whose random key pair it reads from the demo's own AWS
/// credentials file (0600), never from its argv (which every local user can read) nor
/// its environment; and a process with other credentials cannot use the demo's
/// simulator.
fn demo_credentials_are_private(t: &crate::common::Tmux, dir: &std::path::Path) {
    use crate::common::{cmdline, descendants, environ, wait_for};
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;
    let proxy = wait_for("the demo's ProxyCommand", Duration::from_secs(10), || {
        descendants(t.pane_pid())
            .into_iter()
            .find(|p| cmdline(*p).iter().any(|a| a == "proxy"))
    });
    let argv = cmdline(proxy);
    let at = argv
        .iter()
        .position(|a| a == "--profile")
        .expect("the row's profile");
    assert_eq!(argv[at + 1], "prod", "{argv:?}");
    assert_eq!(environ(proxy, "AWS_SECRET_ACCESS_KEY"), None);
    let file = environ(proxy, "AWS_SHARED_CREDENTIALS_FILE").expect("the demo's credentials file");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{file}");
    let creds = std::fs::read_to_string(&file).unwrap();
    let secrets: Vec<&str> = creds
        .lines()
        .filter_map(|l| l.strip_prefix("aws_secret_access_key = "))
        .collect();
    assert_eq!(secrets.len(), 2, "dev's and prod's: {file}");
    let endpoint = environ(proxy, "AWS_ENDPOINT_URL").unwrap();
    let procs = descendants(t.pane_pid());
    assert!(
        procs.len() >= 3,
        "sh, the picker, ssh, the proxy: {procs:?}"
    );
    for secret in secrets {
        assert_eq!(secret.len(), 40, "a fresh random secret");
        for p in &procs {
            let argv = cmdline(*p).join(" ");
            assert!(
                !argv.contains(secret),
                "a secret is in the argv of {p}: {argv}"
            );
        }
    }
    let out = ec2ssh(dir)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .args(["--no-cache", "--region", "us-east-1", "list", "-q"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && out.stdout.is_empty(), "{err}");
    assert!(err.contains("(AuthFailure)"), "{err}");
}

/// `ec2ssh ssh-config` makes plain OpenSSH tools work by instance id and by Name alias.
#[test]
fn plain_ssh_works_with_the_printed_config() {
    let s = setup(&[]);
    let out = s
        .ec2ssh()
        .args(["ssh-config", "--aliases"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let block = text(&out.stdout);
    assert!(block.contains("Host tunnel-target\n"), "{block}");
    let config = s.home.path().join("ssh_config");
    std::fs::write(
        &config,
        format!("{block}\nHost *\n    BatchMode yes\n    LogLevel ERROR\n"),
    )
    .unwrap();
    let ssh = |host: &str| {
        let mut c = Command::new("ssh");
        crate::common::hermetic(&mut c, s.home.path());
        c.env("AWS_ENDPOINT_URL", &s.sim.endpoint)
            .env("XDG_DATA_HOME", s.home.path().join("data"))
            .arg("-F")
            .arg(&config)
            .arg(host)
            .arg("echo via-$(id -un)")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    for host in [ONLINE, "tunnel-target"] {
        let out = ssh(host);
        assert_eq!(
            text(&out.stdout),
            "via-ec2-user\n",
            "{host}: {}\nsshd: {}",
            text(&out.stderr),
            s.sshd.log()
        );
    }
    assert_no_active_sessions(&s.sim);
}

/// ec2ssh's data directory may hold a space and a `%h` (macOS's is
/// "~/Library/Application Support/ec2ssh"): `ec2ssh ssh` (the argv) and plain ssh with
/// the `ec2ssh ssh-config` block both pin the host key in its known_hosts, and only
/// there, and ssh checks it there.
#[test]
fn a_data_directory_with_a_space_and_a_percent_h_pins_host_keys_in_it() {
    let s = setup(&[]);
    let data = s.home.path().join("Application Support %h");
    let runtime = s.home.path().join("run %h time");
    let known_hosts = data.join("ec2ssh/known_hosts");
    let ssh = |extra: &[&str]| {
        s.ec2ssh()
            .env("XDG_DATA_HOME", &data)
            .env("XDG_RUNTIME_DIR", &runtime)
            .args(["ssh", ONLINE, "--", "-o", "BatchMode=yes"])
            .args(extra)
            .arg("echo pinned")
            .output()
            .unwrap()
    };
    let out = ssh(&[]);
    assert_eq!(text(&out.stdout), "pinned\n", "{}", text(&out.stderr));
    let pinned = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(
        pinned.starts_with(&format!("{ONLINE} ssh-ed25519 ")),
        "{pinned}"
    );
    // Nothing went where a split or expanded path would have put it.
    let mut entries: Vec<String> = std::fs::read_dir(s.home.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert!(
        !entries
            .iter()
            .any(|e| e.contains(ONLINE) || e == "Application"),
        "{entries:?}"
    );
    // The pin is enforced from that file: another key there fails the connection.
    let other = pinned.replace(
        pinned.split_whitespace().nth(2).unwrap(),
        "AAAAC3NzaC1lZDI1NTE5AAAAIPQjlJmOafhCXDxgY9QOv2zaZ6O8y5aIxJSPocfb+/qF",
    );
    std::fs::write(&known_hosts, other).unwrap();
    let out = ssh(&[]);
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_file(&known_hosts).unwrap();

    // Plain ssh through the printed block writes the same file.
    let out = s
        .ec2ssh()
        .env("XDG_DATA_HOME", &data)
        .arg("ssh-config")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = s.home.path().join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "{}\nHost *\n    BatchMode yes\n    LogLevel ERROR\n",
            text(&out.stdout)
        ),
    )
    .unwrap();
    let mut c = Command::new("ssh");
    crate::common::hermetic(&mut c, s.home.path());
    let out = c
        .env("AWS_ENDPOINT_URL", &s.sim.endpoint)
        .env("XDG_DATA_HOME", &data)
        .arg("-F")
        .arg(&config)
        .args([ONLINE, "echo via-config"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "via-config\n", "{}", text(&out.stderr));
    let pinned = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(
        pinned.starts_with(&format!("{ONLINE} ssh-ed25519 ")),
        "{pinned}"
    );
    assert_no_active_sessions(&s.sim);
}

/// Host names from elsewhere (a script, a repository URL) that match `Host i-*` reach
/// `ec2ssh proxy` as one word, unexpanded: a command substitution runs nothing, and a
/// glob does not turn into some instance's id found in the working directory.
#[test]
fn hostile_host_names_through_ssh_config_run_nothing() {
    let s = setup(&[]);
    let out = s.ec2ssh().arg("ssh-config").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = s.home.path().join("ssh_config");
    std::fs::write(
        &config,
        format!("{}\nHost *\n    BatchMode yes\n", text(&out.stdout)),
    )
    .unwrap();
    let cwd = tempfile::tempdir().unwrap();
    // An unquoted %h would glob `i-0aaaa00000000000?` into this name.
    std::fs::write(cwd.path().join(ONLINE), "").unwrap();
    let marker = cwd.path().join("pwned");
    let ssh = |host: &str| {
        let mut c = Command::new("ssh");
        crate::common::hermetic(&mut c, s.home.path());
        c.env("AWS_ENDPOINT_URL", &s.sim.endpoint)
            .env("XDG_DATA_HOME", s.home.path().join("data"))
            .current_dir(cwd.path())
            .arg("-F")
            .arg(&config)
            .args([host, "echo reached"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    for host in [
        format!("i-$(touch {})", marker.display()),
        format!("i-`touch {}`", marker.display()),
        format!("i-0;touch {}", marker.display()),
    ] {
        let out = ssh(&host);
        assert!(!out.status.success(), "{host}");
        assert!(!marker.exists(), "{host} ran a command");
    }
    let glob = &format!("{}?", &ONLINE[..ONLINE.len() - 1]);
    let out = ssh(glob);
    assert!(!text(&out.stdout).contains("reached"), "the glob connected");
    assert!(
        text(&out.stderr).contains("is not an instance id"),
        "{}",
        text(&out.stderr)
    );
    assert_no_active_sessions(&s.sim);
}

/// Without XDG_RUNTIME_DIR, keys go to `$TMPDIR/ec2ssh-UID`, a name anyone can take
/// first. One found open to others, as a symlink, or owned by someone else is refused
/// with the fix, before any key is made or pushed.
#[test]
fn a_key_directory_someone_else_prepared_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup(&[]);
    let tmp = s.home.path().join("tmp");
    let uid = rustix::process::getuid().as_raw();
    let planted = tmp.join(format!("ec2ssh-{uid}"));
    let ssh = || {
        s.ec2ssh()
            .env_remove("XDG_RUNTIME_DIR")
            .env("TMPDIR", &tmp)
            .args(["ssh", ONLINE, "--", "-o", "BatchMode=yes", "echo fine"])
            .output()
            .unwrap()
    };
    let refused = |why: &str| {
        let out = ssh();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "error: refusing to keep connection keys in {}: {why}",
                planted.display()
            )),
            "{err}"
        );
        assert!(err.contains("  fix: if you did not make"), "{err}");
        let pushed = std::fs::read_dir(s.sshd.keys_dir())
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(pushed, 0, "a key was pushed");
    };
    std::fs::create_dir_all(&planted).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o777)).unwrap();
    refused("its mode is 777");

    std::fs::remove_dir(&planted).unwrap();
    let elsewhere = s.home.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &planted).unwrap();
    refused("it is a symbolic link");
    std::fs::remove_file(&planted).unwrap();

    if uid == 0 {
        std::fs::create_dir(&planted).unwrap();
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
        refused("it belongs to uid 65534");
        std::fs::remove_dir(&planted).unwrap();
    }

    // Made by ec2ssh itself: 0700, and the connection works.
    let out = ssh();
    assert_eq!(text(&out.stdout), "fine\n", "{}", text(&out.stderr));
    let mode = std::fs::symlink_metadata(&planted)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o700);
    assert_no_active_sessions(&s.sim);
}
