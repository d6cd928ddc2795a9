//! The real picker in a real terminal (tmux): type, see the best match first, pick
//! it, read the id on stdout, and find the terminal as it was.

use crate::common::{finished, picker_in_tmux, Sim};

#[test]
fn picker_end_to_end() {
    let home = tempfile::tempdir().unwrap();
    let sim = Sim::start(home.path(), &[]);
    let expected = {
        let out = sim
            .ec2ssh(home.path())
            .args(["list", "-q", "--filter", "db prod"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .expect("a db prod instance")
            .to_string()
    };

    // Type a query, the best match is first, Enter prints its id.
    let dir = tempfile::tempdir().unwrap();
    let env = [("AWS_ENDPOINT_URL", sim.endpoint.as_str())];
    let regions = sim.regions.join(",");
    let t = picker_in_tmux(
        dir.path(),
        &env,
        &format!("--region {regions} pick --print"),
    );
    t.wait_screen("the fleet", |s| {
        s.contains(" shown ·") && s.contains("updated")
    });
    t.type_text("db prod");
    t.wait_screen("the filtered list", |s| {
        s.starts_with("> db prod\n") && s.lines().nth(2).is_some_and(|l| l.contains(&expected))
    });
    t.send(&["Enter"]);
    let (out, code) = finished(dir.path());
    assert_eq!((out.trim(), code), (expected.as_str(), 0));
    drop(t);

    // Help, the online toggle, then Ctrl-c: exit 130, nothing on stdout.
    let dir = tempfile::tempdir().unwrap();
    let t = picker_in_tmux(dir.path(), &env, &format!("--region {regions}"));
    t.wait_screen("the fleet", |s| s.contains(" shown ·"));
    t.send(&["?"]);
    t.wait_screen("the help", |s| s.contains("ec2ssh keys"));
    t.send(&["Escape"]);
    t.send(&["Tab"]);
    t.wait_screen("online only", |s| s.contains("online only"));
    t.send(&["C-c"]);
    let (out, code) = finished(dir.path());
    assert_eq!((out.as_str(), code), ("", 130));
    drop(t);

    // SIGTERM while the picker owns the terminal: terminal restored, exit 143.
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("sigterm-{}", std::process::id());
    let t = picker_in_tmux(
        dir.path(),
        &env,
        &format!("--region {regions} pick --print --filter {marker}"),
    );
    t.wait_screen("the picker", |s| s.contains(" shown ·"));
    let killed = std::process::Command::new("pkill")
        .args(["-TERM", "-f", &marker])
        .status()
        .unwrap();
    assert!(killed.success(), "pkill found the picker");
    let (out, code) = finished(dir.path());
    assert_eq!((out.as_str(), code), ("", 143));
    drop(t);

    // The demo command itself, as a newcomer runs it; the warm cache is not needed.
    let dir = tempfile::tempdir().unwrap();
    let t = picker_in_tmux(dir.path(), &[], "demo --print --filter 'db prod'");
    t.wait_screen("the demo fleet", |s| {
        s.lines().nth(2).is_some_and(|l| l.contains(&expected))
    });
    t.send(&["Enter"]);
    let (out, code) = finished(dir.path());
    assert_eq!((out.trim(), code), (expected.as_str(), 0));
}
