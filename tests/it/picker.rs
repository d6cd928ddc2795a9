//! The real picker in a real terminal (tmux): type a query of several words, see the
//! best match first, pick it, read the id on stdout, and find the terminal as it was;
//! mark rows (Tab, Shift-Tab) and watch the ping column change under them; columns
//! sized to their content.

use crate::common::{picker_in_tmux, Sim};

#[test]
fn picker_end_to_end() {
    let home = tempfile::tempdir().unwrap();
    let sim = Sim::start(home.path(), &[]);
    let best = |query: &str| {
        let out = sim
            .ec2ssh(home.path())
            .args(["list", "-q", "--filter", query])
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap_or_else(|| panic!("an instance matching {query:?}"))
            .to_string()
    };
    // Space is query text: both words must match, as `list --filter` does.
    let expected = best("db prod");
    let matching = {
        let out = sim
            .ec2ssh(home.path())
            .args(["list", "-q", "--filter", "db prod"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().lines().count()
    };
    assert!(matching > 0);

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
    t.type_text("db");
    t.send(&["Space"]);
    t.type_text("prod");
    let count = format!("{matching}/");
    let s = t.wait_screen("the filtered list", |s| {
        s.starts_with("> db prod\n")
            && s.lines().nth(2).is_some_and(|l| l.contains(&expected))
            && s.lines()
                .any(|l| l.starts_with(&count) && l.contains(" shown ·"))
    });
    assert!(!s.contains("marked"), "space typed, nothing marked: {s}");
    t.send(&["Enter"]);
    let (out, code) = t.finished(dir.path());
    assert_eq!((out.trim(), code), (expected.as_str(), 0));
    drop(t);

    // Help, the online toggle, then Ctrl-c: exit 130, nothing on stdout.
    let dir = tempfile::tempdir().unwrap();
    let t = picker_in_tmux(dir.path(), &env, &format!("--region {regions}"));
    t.wait_screen("the fleet", |s| s.contains(" shown ·"));
    t.send(&["?"]);
    t.wait_screen("the help", |s| s.contains("ec2ssh keys"));
    t.send(&["Escape"]);
    // Esc and a key in one read would be Alt-key: let the help close first.
    t.wait_screen("the help closed", |s| !s.contains("ec2ssh keys"));
    t.send(&["F4"]);
    t.wait_screen("online only", |s| s.contains("online only"));
    t.send(&["M-o"]);
    t.wait_screen("all again", |s| {
        s.contains(" shown ·") && !s.contains("online only")
    });
    t.send(&["C-c"]);
    let (out, code) = t.finished(dir.path());
    assert_eq!((out.as_str(), code), ("", 130));
    drop(t);

    // Columns follow their content: on a 160-cell terminal short names leave room for
    // the whole platform label (a 40-cell NAME column used to cut it to 18).
    let dir = tempfile::tempdir().unwrap();
    let t = picker_in_tmux(
        dir.path(),
        &env,
        &format!("--region {regions} pick --print --filter win-ad-1"),
    );
    t.resize(160, 30);
    let s = t.wait_screen("the whole platform", |s| {
        s.lines().nth(2).is_some_and(|l| {
            l.contains("win-ad-1")
                && l.contains("Microsoft Windows Server 2022 Datacenter 10.0.20348")
        })
    });
    assert!(!s.lines().nth(2).unwrap().contains('…'), "nothing cut: {s}");
    t.send(&["Escape"]);
    t.finished(dir.path());
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
    let (out, code) = t.finished(dir.path());
    assert_eq!((out.as_str(), code), ("", 143));
    drop(t);

    // The demo command itself, as a newcomer runs it; the warm cache is not needed.
    // A query with a space still works from the command line.
    let expected = best("db prod");
    let dir = tempfile::tempdir().unwrap();
    let t = picker_in_tmux(dir.path(), &[], "demo --print --filter 'db prod'");
    t.wait_screen("the demo fleet", |s| {
        s.lines().nth(2).is_some_and(|l| l.contains(&expected))
    });
    t.send(&["Enter"]);
    let (out, code) = t.finished(dir.path());
    assert_eq!((out.trim(), code), (expected.as_str(), 0));
}

/// alpha and beta are Online; gamma's agent comes Online 10 s after the simulator starts.
fn booting_fleet(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("fleet.toml");
    std::fs::write(
        &path,
        r#"default_region = "us-east-1"

[[instance]]
id = "i-0d0d0000000000001"
name = "alpha"
state = "running"
ping = "Online"

[[instance]]
id = "i-0d0d0000000000002"
name = "beta"
state = "running"
ping = "Online"

[[instance]]
id = "i-0d0d0000000000003"
name = "gamma"
state = "running"
online_after_secs = 10
"#,
    )
    .unwrap();
    path
}

#[test]
fn picker_marks_rows_and_refreshes_pings_in_place() {
    let home = tempfile::tempdir().unwrap();
    let fleet = booting_fleet(home.path());
    let sim = Sim::start(home.path(), &["--fleet", fleet.to_str().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let env = [("AWS_ENDPOINT_URL", sim.endpoint.as_str())];
    let t = picker_in_tmux(
        dir.path(),
        &env,
        "--region us-east-1 pick --print --ping-refresh 1s",
    );
    let row = |s: &str, n: usize| s.lines().nth(2 + n).unwrap_or("").to_string();
    // The SSM line of the detail pane (right of the list).
    let ssm = |s: &str| {
        s.lines()
            .find_map(|l| l.split_once("│SSM").map(|(_, v)| v.to_string()))
            .unwrap_or_default()
    };
    t.wait_screen("gamma ConnectionLost", |s| {
        s.contains(" shown ·") && row(s, 2).contains("◐- gamma")
    });

    // Tab marks alpha and beta and leaves the selection on gamma.
    t.send(&["Tab"]);
    t.send(&["Tab"]);
    t.send(&["C-d"]);
    let s = t.wait_screen("two marked, gamma selected", |s| {
        s.contains("3 shown · 2 online · 2 marked")
            && row(s, 0).starts_with("* ●  alpha")
            && row(s, 1).starts_with("* ●  beta")
            && s.contains("│Name        gamma")
    });
    assert!(ssm(&s).contains("ConnectionLost"), "{s}");

    // The ping check turns gamma Online where it is, still selected, marks kept.
    t.wait_screen("gamma Online in place", |s| {
        row(s, 2).starts_with("  ●  gamma")
            && ssm(s).contains("Online")
            && s.contains("│Name        gamma")
            && s.contains("3 online · 2 marked")
            && row(s, 0).starts_with("* ●  alpha")
            && row(s, 1).starts_with("* ●  beta")
    });

    // Ctrl-r with marks re-checks just them; Esc clears the marks, a second Esc quits.
    t.send(&["C-r"]);
    t.wait_screen("the re-check", |s| s.contains("re-checked 2 marked"));
    // Shift-Tab marks gamma and moves up to beta.
    t.send(&["BTab"]);
    t.wait_screen("gamma marked, beta selected", |s| {
        s.contains("3 marked")
            && row(s, 2).starts_with("* ●  gamma")
            && s.contains("│Name        beta")
    });
    t.send(&["Escape"]);
    t.wait_screen("no marks", |s| {
        !s.contains("online · 2 marked") && row(s, 0).starts_with("  ●  alpha")
    });
    t.send(&["Escape"]);
    let (out, code) = t.finished(dir.path());
    assert_eq!((out.as_str(), code), ("", 130));
}

#[test]
fn the_status_line_says_aws_is_throttling_while_the_sdk_retries() {
    let home = tempfile::tempdir().unwrap();
    let sim = Sim::start(home.path(), &["--throttle", "1"]);
    let dir = tempfile::tempdir().unwrap();
    // Enough attempts that the retries are still going when the screen is read.
    let env = [
        ("AWS_ENDPOINT_URL", sim.endpoint.as_str()),
        ("AWS_MAX_ATTEMPTS", "10"),
    ];
    let regions = sim.regions.join(",");
    let t = picker_in_tmux(
        dir.path(),
        &env,
        &format!("--region {regions} pick --print"),
    );
    t.wait_screen("the throttling notice", |s| {
        s.contains("loading the fleet") && s.contains("AWS is throttling, retrying")
    });
    t.send(&["C-c"]);
    let (out, code) = t.finished(dir.path());
    assert_eq!((out.as_str(), code), ("", 130));
}

/// The first frame shows only the head of a warm cache; the whole cache is on screen
/// before the first key: its counts are the whole fleet's, and a row far past the
/// head is found, picked and printed. The simulator is gone, so only the cache speaks.
#[test]
fn a_warm_cache_longer_than_the_first_frame_is_all_there() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(home.path(), &["--generate", "900"]);
    let out = sim
        .ec2ssh(dir.path())
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let ids: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        ids.len() > 400,
        "a fleet longer than the first frame's rows"
    );
    let (endpoint, regions) = (sim.endpoint.clone(), sim.regions.join(","));
    drop(sim);

    let env = [("AWS_ENDPOINT_URL", endpoint.as_str())];
    let t = picker_in_tmux(
        dir.path(),
        &env,
        &format!("--region {regions} pick --print"),
    );
    let count = format!("{n}/{n} shown", n = ids.len());
    t.wait_screen("the whole cached fleet", |s| {
        s.contains(&count) && s.contains("cached")
    });
    let last = ids.last().unwrap();
    t.type_text(last);
    t.wait_screen("the last cached row found", |s| {
        s.lines().nth(2).is_some_and(|l| l.contains(last.as_str()))
    });
    t.send(&["Enter"]);
    let (out, code) = t.finished(dir.path());
    assert_eq!((out.trim(), code), (last.as_str(), 0));
}
