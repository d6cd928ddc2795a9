//! `ec2ssh scp` end to end: several simulated instances, each its own loopback sshd
//! with its own key store and its own "home" (sftp start directory), so every host's
//! copy is checked by SHA-256 on that host; offline and key-refusing hosts are
//! reported exactly; pulls land per host; Ctrl-C ends every session.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

use crate::common::{ec2ssh, in_tmux, wait_for, Sim};
use crate::rig::{active_sessions, assert_no_active_sessions, user_dir, Sshd};

/// One simulated host: its sshd and the directory its scp sessions start in.
struct Host {
    id: String,
    home: PathBuf,
    _sshd: Sshd,
}

struct Fleet {
    dir: tempfile::TempDir,
    hosts: Vec<Host>,
    sim: Sim,
}

/// `online` hosts with their own sshd (tagged Role=web, named web-N), plus an
/// offline one (`down`) and one whose sshd never sees the pushed keys (`refuser`).
fn fleet(online: usize, extra_args: &[&str]) -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let mut hosts = Vec::new();
    let mut toml = String::from("default_region = \"us-east-1\"\n");
    let entry = |id: &str, name: &str, role: &str, ping: &str, target: &str, keys: &Path| {
        format!(
            "\n[[instance]]\nid = \"{id}\"\nname = \"{name}\"\nstate = \"running\"\nping = \"{ping}\"\n\
             platform_type = \"Linux\"\nplatform_name = \"Amazon Linux\"\nagent_version = \"3.3.1611.0\"\n\
             target = \"{target}\"\nkeys_dir = \"{}\"\ntags = {{ Role = \"{role}\" }}\n",
            keys.display()
        )
    };
    for n in 1..=online + 1 {
        let home = user_dir(dir.path(), &format!("home-{n}"));
        let sshd = Sshd::start_named(dir.path(), &format!("sshd-{n}"), Some(&home));
        let id = format!("i-0bbbb00000000000{n}");
        if n <= online {
            toml.push_str(&entry(
                &id,
                &format!("web-{n}"),
                "web",
                "Online",
                &sshd.addr(),
                &sshd.keys_dir(),
            ));
        } else {
            // Instance Connect takes the key, but this host's sshd reads another store.
            let elsewhere = dir.path().join("keys-nobody-reads");
            toml.push_str(&entry(
                &id,
                "refuser",
                "edge",
                "Online",
                &sshd.addr(),
                &elsewhere,
            ));
        }
        hosts.push(Host {
            id,
            home,
            _sshd: sshd,
        });
    }
    let nowhere = dir.path().join("unused");
    toml.push_str(&entry(
        "i-0bbbb0000000000ff",
        "down",
        "edge",
        "ConnectionLost",
        "127.0.0.1:9",
        &nowhere,
    ));
    let path = dir.path().join("fleet.toml");
    std::fs::write(&path, toml).unwrap();
    let mut args = vec!["--fleet", path.to_str().unwrap()];
    args.extend_from_slice(extra_args);
    let sim = Sim::start(dir.path(), &args);
    Fleet { dir, hosts, sim }
}

impl Fleet {
    fn ec2ssh(&self) -> Command {
        let d = self.dir.path();
        let mut c = ec2ssh(d);
        c.env("AWS_ENDPOINT_URL", &self.sim.endpoint)
            .env("XDG_RUNTIME_DIR", d.join("run"))
            .env("XDG_DATA_HOME", d.join("data"))
            .env("XDG_STATE_HOME", d.join("state"))
            .args(["--region", "us-east-1", "scp"])
            .stdin(Stdio::null());
        c
    }

    fn scp(&self, args: &[&str]) -> Output {
        self.ec2ssh().args(args).output().unwrap()
    }

    fn payload(&self, name: &str, size: usize) -> (PathBuf, String) {
        let mut data = vec![0u8; size];
        rand::rngs::StdRng::seed_from_u64(size as u64).fill_bytes(&mut data);
        let path = self.dir.path().join(name);
        std::fs::write(&path, &data).unwrap();
        (path, sha256(&data))
    }

    /// `ec2ssh ARGS` in tmux, with this fleet's simulator and private XDG dirs.
    fn tmux(&self, args: &str) -> crate::common::Tmux {
        let d = self.dir.path();
        let (run, data, state) = (d.join("run"), d.join("data"), d.join("state"));
        let env = [
            ("AWS_ENDPOINT_URL", self.sim.endpoint.as_str()),
            ("XDG_RUNTIME_DIR", run.to_str().unwrap()),
            ("XDG_DATA_HOME", data.to_str().unwrap()),
            ("XDG_STATE_HOME", state.to_str().unwrap()),
        ];
        in_tmux(d, &env, args, false)
    }

    /// Nothing left in ec2ssh's runtime dir: no key, no progress socket.
    fn assert_clean(&self) {
        let dir = self.dir.path().join("run/ec2ssh");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left behind: {left:?}");
        assert_no_active_sessions(&self.sim);
    }
}

fn sha256(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

fn file_sha(path: &Path) -> String {
    sha256(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_push_to_three_hosts_arrives_on_each() {
    let f = fleet(3, &[]);
    let (file, sum) = f.payload("build.bin", 4 << 20);
    let out = f.scp(&["-t", "tag:Role=web", file.to_str().unwrap(), ":"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("3 hosts: 3 ok, 0 failed"), "{stdout}");
    for h in &f.hosts[..3] {
        assert_eq!(file_sha(&h.home.join("build.bin")), sum, "on {}", h.id);
        let line = stdout
            .lines()
            .find(|l| l.contains(&h.id))
            .unwrap_or_default();
        assert!(line.starts_with("ok      web-"), "{stdout}");
    }
    assert!(
        !f.hosts[3].home.join("build.bin").exists(),
        "only the selected hosts"
    );
    // One host by name, into a subdirectory, recursively.
    let tree = f.dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/conf"), "x=1\n").unwrap();
    let out = f.scp(&["-r", tree.to_str().unwrap(), "web-2:"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let copied = f.hosts[1].home.join("tree/sub/conf");
    assert_eq!(std::fs::read_to_string(copied).unwrap(), "x=1\n");
    f.assert_clean();
}

#[test]
fn an_offline_and_a_refusing_host_are_reported_and_the_rest_succeed() {
    let f = fleet(1, &[]);
    let (file, sum) = f.payload("app.conf", 64 << 10);
    let out = f.scp(&[
        "--json",
        "-t",
        "web-1",
        "-t",
        "refuser",
        "-t",
        "down",
        file.to_str().unwrap(),
        ":",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let by_name = |n: &str| results.iter().find(|r| r["name"] == n).unwrap();
    assert_eq!(by_name("web-1")["ok"], true);
    assert_eq!(by_name("web-1")["user"], "ec2-user");
    assert!(by_name("web-1")["bytes"].as_u64().unwrap() >= 64 << 10);
    let refused = by_name("refuser");
    assert_eq!(refused["ok"], false);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("refused the key for ec2-user"),
        "{refused}"
    );
    assert!(refused["fix"].as_str().unwrap().contains("--user"));
    let down = by_name("down");
    assert!(
        down["error"].as_str().unwrap().contains("ConnectionLost"),
        "{down}"
    );
    assert_eq!(file_sha(&f.hosts[0].home.join("app.conf")), sum);
    f.assert_clean();
}

#[test]
fn a_pull_from_several_hosts_lands_per_host() {
    let f = fleet(2, &[]);
    let mut sums = Vec::new();
    for (n, h) in f.hosts[..2].iter().enumerate() {
        let data = format!("log of host {n}\n").repeat(1000);
        std::fs::write(h.home.join("app.log"), &data).unwrap();
        sums.push(sha256(data.as_bytes()));
    }
    let out_dir = f.dir.path().join("logs");
    let out = f.scp(&["-t", "tag:Role=web", ":app.log", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    for (h, sum) in f.hosts[..2].iter().zip(&sums) {
        assert_eq!(&file_sha(&out_dir.join(&h.id).join("app.log")), sum);
    }
    // A directory, recursively, from one host.
    let tree = f.hosts[0].home.join("conf.d");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/app.conf"), "x=1\n").unwrap();
    let got = f.dir.path().join("got");
    let out = f.scp(&["-r", "web-1:conf.d", got.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(
        std::fs::read_to_string(got.join("sub/app.conf")).unwrap(),
        "x=1\n"
    );
    // A missing remote file is that host's failure, named.
    let out = f.scp(&["web-1:no-such.log", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("no-such.log does not exist on {}", f.hosts[0].id)),
        "{stdout}"
    );
    f.assert_clean();
}

#[test]
fn usage_errors_are_caught_before_anything_is_pushed() {
    let f = fleet(1, &[]);
    let cases: [(&[&str], &str); 4] = [
        (&["missing.bin", "web-1:"], "cannot copy"),
        (&["a", ":"], "none were given"),
        (&["a:x", "b:y"], "both remote"),
        (&[".", "web-1:"], "needs -r"),
    ];
    for (args, expected) in cases {
        let out = f.scp(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(err.contains("fix:"), "{err}");
    }
}

#[test]
fn ctrl_c_ends_every_session_and_removes_the_keys() {
    // Slow frames so the copy is still running when the signal comes.
    let f = fleet(2, &["--faults", "delay=1.0,delay-ms=20,seed=3"]);
    let (file, _) = f.payload("big.bin", 32 << 20);
    let mut child = f
        .ec2ssh()
        .args(["-t", "tag:Role=web", file.to_str().unwrap(), ":"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(
        "both copies to be under way",
        Duration::from_secs(30),
        || (active_sessions(&f.sim).len() == 2).then_some(()),
    );
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    wait_for("ec2ssh scp to end", Duration::from_secs(20), || {
        child.try_wait().unwrap()
    });
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("2 hosts: 0 ok, 2 failed"), "{stdout}");
    f.assert_clean();
}

/// The picker journey: filter, mark every shown row, Ctrl-t, Tab-complete a path,
/// push, watch both copies finish, close, quit. Both hosts hold the file.
#[test]
fn the_picker_marks_rows_and_pushes_to_them() {
    let f = fleet(2, &[]);
    let (_, sum) = f.payload("build.bin", 2 << 20);
    let d = f.dir.path();
    let t = f.tmux("--region us-east-1 pick --ping-refresh off");
    t.wait_screen("the fleet", |sc| sc.contains(" shown ·"));
    t.type_text("web");
    t.wait_screen("the web hosts", |sc| sc.contains("2/4 shown"));
    t.type_text("*");
    t.wait_screen("both marked", |sc| sc.contains("2 marked"));
    t.send(&["C-t"]);
    t.wait_screen("the push dialog", |sc| {
        sc.contains("Push to 2 hosts") && sc.contains("web-1, web-2")
    });
    t.type_text(&format!("{}/bui", d.display()));
    t.send(&["Tab"]);
    t.wait_screen("the completed path", |sc| sc.contains("build.bin"));
    t.send(&["Enter"]);
    t.send(&["Enter"]);
    let screen = t.wait_screen("both copies done", |sc| sc.contains("2 ok, 0 failed"));
    assert!(screen.contains("Pushing to ~ (home)"), "{screen}");
    assert_eq!(screen.matches("ok      2.0 MiB").count(), 2, "{screen}");
    for h in &f.hosts[..2] {
        assert_eq!(file_sha(&h.home.join("build.bin")), sum, "on {}", h.id);
    }
    t.send(&["Enter"]);
    t.wait_screen("the picker again", |sc| {
        sc.contains("push to ~ (home): 2 ok, 0 failed")
    });
    t.send(&["Escape"]);
    t.wait_screen("the marks cleared", |sc| !sc.contains("marked"));
    t.send(&["Escape"]);
    assert_eq!(t.finished(d).1, 130);
    f.assert_clean();
}

/// Esc while the picker's copies run ends them: each host's result says so, and no
/// session or key is left behind.
#[test]
fn esc_cancels_a_push_from_the_picker() {
    // Slow frames, so the copies are still running when Esc comes.
    let f = fleet(2, &["--faults", "delay=1.0,delay-ms=20,seed=5"]);
    let (file, _) = f.payload("big.bin", 32 << 20);
    let d = f.dir.path();
    let t = f.tmux("--region us-east-1 pick --ping-refresh off --filter web");
    t.wait_screen("the web hosts", |sc| sc.contains("2/4 shown"));
    t.type_text("*");
    t.send(&["C-t"]);
    t.wait_screen("the push dialog", |sc| sc.contains("Push to 2 hosts"));
    t.type_text(file.to_str().unwrap());
    t.send(&["Enter"]);
    t.send(&["Enter"]);
    t.wait_screen("the copies under way", |sc| sc.contains("Esc cancel"));
    wait_for("both sessions", Duration::from_secs(30), || {
        (active_sessions(&f.sim).len() == 2).then_some(())
    });
    t.send(&["Escape"]);
    let screen = t.wait_screen("the cancelled copies", |sc| sc.contains("0 ok, 2 failed"));
    assert_eq!(screen.matches("FAILED  cancelled").count(), 2, "{screen}");
    assert_no_active_sessions(&f.sim);
    t.send(&["Enter"]);
    t.wait_screen("the picker again", |sc| sc.contains("0 ok, 2 failed"));
    t.send(&["Escape"]);
    t.send(&["Escape"]);
    assert_eq!(t.finished(d).1, 130);
    f.assert_clean();
}

/// On a terminal each host gets a progress bar (bytes, rate, ETA) fed by its tunnel,
/// then the per-host lines and the count.
#[test]
fn progress_bars_on_a_terminal() {
    let f = fleet(2, &["--faults", "delay=1.0,delay-ms=10,seed=7"]);
    let (file, sum) = f.payload("bar.bin", 6 << 20);
    let d = f.dir.path();
    let args = format!(
        "--region us-east-1 scp -t tag:Role=web {} :",
        file.display()
    );
    let t = f.tmux(&args);
    let bars = t.wait_screen("the progress bars", |sc| {
        sc.lines()
            .filter(|l| l.contains("ETA") && l.contains("MiB"))
            .count()
            == 2
    });
    assert!(bars.contains("web-1") && bars.contains("web-2"), "{bars}");
    t.wait_screen("the count", |sc| sc.contains("2 hosts: 2 ok, 0 failed"));
    assert_eq!(t.finished(d).1, 0);
    for h in &f.hosts[..2] {
        assert_eq!(file_sha(&h.home.join("bar.bin")), sum);
    }
    f.assert_clean();
}

/// `ec2ssh scp ARGS` from this fleet's dir, stdout as text.
fn summary_of(out: &Output) -> String {
    text(&out.stdout)
}

/// A push into a directory that does not exist says so (for a file, a tree, several
/// files), and `--mkdir` creates it, parents included, whatever its name holds: sftp
/// parses the path, no remote shell does.
#[test]
fn a_missing_directory_is_named_and_mkdir_creates_it() {
    let f = fleet(1, &[]);
    let (file, sum) = f.payload("build.bin", 64 << 10);
    let file = file.to_str().unwrap();
    let home = &f.hosts[0].home;
    let id = &f.hosts[0].id;

    let out = f.scp(&[file, "web-1:releases/v2/"]);
    assert_eq!(out.status.code(), Some(1));
    let s = summary_of(&out);
    assert!(
        s.contains(&format!("the directory releases/v2 does not exist on {id}")),
        "{s}"
    );
    assert!(s.contains("fix: add --mkdir to create it"), "{s}");
    assert!(!s.contains("ec2ssh ssh"), "not a login problem: {s}");
    let out = f.scp(&["--json", file, "web-1:releases/v2/"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["results"][0]["missing_dir"], "releases/v2");

    let out = f.scp(&["--mkdir", file, "web-1:releases/v2/"]);
    assert_eq!(out.status.code(), Some(0), "{}", summary_of(&out));
    assert_eq!(file_sha(&home.join("releases/v2/build.bin")), sum);

    // A tree, recursively, into a missing directory; then with --mkdir.
    let tree = f.dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/conf"), "x=1\n").unwrap();
    let tree = tree.to_str().unwrap();
    let out = f.scp(&["-r", tree, "web-1:conf/d/"]);
    assert!(
        summary_of(&out).contains("the directory conf/d does not exist"),
        "{}",
        summary_of(&out)
    );
    let out = f.scp(&["-r", "--mkdir", tree, "web-1:conf/d/"]);
    assert_eq!(out.status.code(), Some(0), "{}", summary_of(&out));
    assert_eq!(
        std::fs::read_to_string(home.join("conf/d/tree/sub/conf")).unwrap(),
        "x=1\n"
    );

    // Several files into a directory whose parent is missing.
    let (other, _) = f.payload("other.bin", 1000);
    let out = f.scp(&[file, other.to_str().unwrap(), "web-1:multi/dir"]);
    assert!(
        summary_of(&out).contains("the directory multi does not exist"),
        "{}",
        summary_of(&out)
    );
    let out = f.scp(&["--mkdir", file, other.to_str().unwrap(), "web-1:multi/dir"]);
    assert_eq!(out.status.code(), Some(0), "{}", summary_of(&out));
    assert!(home.join("multi/dir/other.bin").is_file());

    // Quotes, backslashes, `$(…)` and a leading dash are a name, nothing more.
    let odd = r#"-odd "dir" $(touch pwned) \x/sub/"#;
    let out = f.scp(&["--mkdir", file, &format!("web-1:{odd}")]);
    assert_eq!(out.status.code(), Some(0), "{}", summary_of(&out));
    assert_eq!(file_sha(&home.join(odd).join("build.bin")), sum);
    assert!(!home.join("pwned").exists());

    // --mkdir is for pushes.
    let out = f.scp(&["--mkdir", "web-1:build.bin", f.dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--mkdir creates the remote directory of a push"));
    f.assert_clean();
}

/// A directory the login may not write, and a full disk (`/dev/full` answers every
/// write with ENOSPC, which SFTP can only call "Failure"), each named as such.
#[test]
fn permission_denied_and_a_full_disk_are_named() {
    let f = fleet(1, &[]);
    let (file, _) = f.payload("build.bin", 64 << 10);
    let file = file.to_str().unwrap();
    let id = &f.hosts[0].id;
    // Root's, inside the login's home: the login cannot write there.
    let locked = f.hosts[0].home.join("locked");
    std::fs::create_dir(&locked).unwrap();

    let out = f.scp(&[file, "web-1:locked/"]);
    assert_eq!(out.status.code(), Some(1));
    let s = summary_of(&out);
    assert!(
        s.contains(&format!(
            "ec2-user may not write to locked/build.bin on {id} (permission denied)"
        )),
        "{s}"
    );
    assert!(
        s.contains("fix: copy into a directory ec2-user can write"),
        "{s}"
    );

    let tree = f.dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("a"), "a").unwrap();
    let out = f.scp(&["-r", tree.to_str().unwrap(), "web-1:locked/"]);
    let s = summary_of(&out);
    assert!(s.contains("ec2-user may not write to locked/"), "{s}");

    let out = f.scp(&["--mkdir", file, "web-1:locked/new/"]);
    assert_eq!(out.status.code(), Some(1));
    let s = summary_of(&out);
    assert!(
        s.contains(&format!(
            "cannot create locked/new on {id}: ec2-user may not create it (permission denied)"
        )),
        "{s}"
    );
    assert!(s.contains("sudo mkdir -p"), "{s}");

    let out = f.scp(&[file, "web-1:/dev/full"]);
    assert_eq!(out.status.code(), Some(1));
    let s = summary_of(&out);
    assert!(
        s.contains(&format!(
            "writing /dev/full on {id} failed: the disk is full or over quota"
        )),
        "{s}"
    );
    assert!(s.contains("df -h"), "{s}");
    f.assert_clean();
}

/// The picker: a push to a missing directory fails with the offer to create it; `m`
/// does and pushes again. The dialog then reopens with the same paths, and its toggle
/// creates another directory up front. F2 afterwards counts what the pushes proved.
#[test]
fn the_picker_offers_to_create_a_missing_directory() {
    let f = fleet(1, &[]);
    let (file, sum) = f.payload("build.bin", 1 << 20);
    let home = &f.hosts[0].home;
    let d = f.dir.path();
    let t = f.tmux("--region us-east-1 pick --ping-refresh off --filter web-1");
    t.wait_screen("web-1", |sc| sc.contains("1/3 shown"));
    t.send(&["C-t"]);
    t.wait_screen("the push dialog", |sc| sc.contains("Push to 1 host"));
    t.type_text(file.to_str().unwrap());
    t.send(&["Enter"]);
    t.type_text("fresh/dir/");
    t.send(&["Enter"]);
    t.wait_screen("the failure, with the offer", |sc| {
        sc.contains("0 ok, 1 failed · m create fresh/dir and push again")
            && sc.contains("FAILED  the directory fresh/dir does not exist")
            && sc.contains("fix: press m to create fresh/dir and push again")
    });
    t.send(&["m"]);
    t.wait_screen("the push again", |sc| sc.contains("1 ok, 0 failed · Enter"));
    assert_eq!(file_sha(&home.join("fresh/dir/build.bin")), sum);
    t.send(&["Enter"]);
    t.wait_screen("the picker again", |sc| {
        sc.contains("push to fresh/dir/: 1 ok")
    });

    // Opened again: the same local path and destination.
    t.send(&["C-t"]);
    // (One condition: a capture may catch the dialog half drawn.)
    t.wait_screen("the dialog as it was left", |sc| {
        sc.contains("Push to 1 host")
            && sc.contains("build.bin")
            && sc.contains("remote dest   fresh/dir/")
            && sc.contains("[ ] create the destination directory")
    });
    // Another destination, with the toggle on.
    t.send(&["Down"]);
    t.send(&["C-u"]);
    t.type_text("other/place/");
    t.send(&["Down"]);
    t.send(&["Space"]);
    t.wait_screen("the toggle on", |sc| {
        sc.contains("[x] create the destination")
    });
    t.send(&["Enter"]);
    t.wait_screen("the copy", |sc| {
        sc.contains("Pushing to other/place/") && sc.contains("1 ok, 0 failed · Enter")
    });
    assert_eq!(file_sha(&home.join("other/place/build.bin")), sum);
    t.send(&["Enter"]);

    // What the pushes proved: a session started and a key was pushed on web-1.
    t.send(&["F2"]);
    let screen = t.wait_screen("the diagnosis", |sc| {
        sc.contains("ec2ssh doctor web-1") && sc.contains("web-1: ") && sc.contains(" found")
    });
    assert!(!screen.contains("not tried"), "{screen}");
    t.send(&["x"]);
    t.wait_screen("closed", |sc| !sc.contains("ec2ssh doctor web-1"));
    t.send(&["Escape"]);
    assert_eq!(t.finished(d).1, 130);
    f.assert_clean();
}
