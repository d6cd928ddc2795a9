//! `ec2ssh status` against the simulator: exit codes scripts can gate on, `--wait`
//! for an instance that comes Online while we wait, JSON, and `--watch` on a terminal.

use std::time::Instant;

use crate::common::Sim;

fn fleet(home: &std::path::Path) -> std::path::PathBuf {
    let path = home.join("fleet.toml");
    std::fs::write(
        &path,
        r#"default_region = "us-east-1"

[[instance]]
id = "i-0c0c0000000000001"
name = "up"
state = "running"
ping = "Online"
agent_version = "3.3.1611.0"

[[instance]]
id = "i-0c0c0000000000002"
name = "lost"
state = "running"
ping = "ConnectionLost"

[[instance]]
id = "i-0c0c0000000000003"
name = "booting"
state = "running"
online_after_secs = 6
"#,
    )
    .unwrap();
    path
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn status_exit_codes_json_and_wait() {
    let home = tempfile::tempdir().unwrap();
    let fleet = fleet(home.path());
    let sim = Sim::start(home.path(), &["--fleet", fleet.to_str().unwrap()]);
    let status = |args: &[&str]| {
        sim.ec2ssh(home.path())
            .arg("status")
            .args(args)
            .output()
            .unwrap()
    };

    let out = status(&["booting"]);
    assert_eq!(out.status.code(), Some(3), "not Online yet");

    let out = status(&["up"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("i-0c0c0000000000001") && table.contains("Online"),
        "{table}"
    );
    assert!(table.contains("3.3.1611.0"));

    let out = status(&["up", "lost"]);
    assert_eq!(out.status.code(), Some(3), "not all Online");
    assert!(text(&out.stdout).contains("ConnectionLost"));

    let out = status(&["--json", "lost"]);
    assert_eq!(out.status.code(), Some(3));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["all_online"], false);
    assert_eq!(doc["instances"][0]["id"], "i-0c0c0000000000002");
    assert_eq!(doc["instances"][0]["ping"], "ConnectionLost");

    let out = status(&["nonexistent-host"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no instance matches"));

    // Comes Online 6 s after the simulator started: --wait sees it through.
    let t0 = Instant::now();
    let out = status(&[
        "--wait",
        "--interval",
        "200ms",
        "--timeout",
        "30s",
        "booting",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(t0.elapsed().as_secs() < 30);

    // A target that never comes up: exit 3 after the timeout, naming it.
    let out = status(&[
        "--wait",
        "--interval",
        "200ms",
        "--timeout",
        "1s",
        "lost",
        "up",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(
        err.contains("timed out after 1s waiting for: i-0c0c0000000000002 (ConnectionLost)"),
        "{err}"
    );
}

/// `--watch` on a terminal redraws in place and marks the transition when the
/// instance comes Online; SIGINT (what Ctrl-C sends) ends it with 130.
#[test]
fn status_watch_marks_the_transition() {
    let home = tempfile::tempdir().unwrap();
    let fleet = fleet(home.path());
    let sim = Sim::start(home.path(), &["--fleet", fleet.to_str().unwrap()]);
    let env = [("AWS_ENDPOINT_URL", sim.endpoint.as_str())];
    let t = crate::common::in_tmux(
        home.path(),
        &env,
        "--region us-east-1 status --watch --interval 333ms booting up",
        false,
    );
    t.wait_screen("the table", |sc| {
        sc.contains("booting") && sc.contains("ConnectionLost")
    });
    let screen = t.wait_screen("the transition", |sc| {
        sc.contains("Online (was ConnectionLost)")
    });
    assert_eq!(
        screen.matches("LAST PING").count(),
        1,
        "redrawn in place, not appended:\n{screen}"
    );
    // Not `send-keys C-c`: in cooked mode that signals the whole foreground group,
    // the test's wrapper shell included.
    let killed = std::process::Command::new("pkill")
        .args(["-INT", "-f", "status --watch --interval 333ms"])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(t.finished(home.path()).1, 130);
}
