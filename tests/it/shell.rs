//! `ec2ssh shell` end to end in tmux: the simulator runs a real `/bin/sh` on a pty for
//! the default shell document, so the prompt, arithmetic, `stty size` after a resize,
//! Ctrl-C and `exit` are all the remote shell's own.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::common::{in_tmux, Sim, Tmux};
use crate::rig::assert_no_active_sessions;

const WEB: &str = "i-0bbbb000000000001";
const LOST: &str = "i-0bbbb000000000002";
const KMS: &str = "i-0bbbb000000000003";
/// What the simulated shell prints as its prompt (`sim::shell::PROMPT`).
const PROMPT: &str = "sim$";

fn fleet(home: &Path) -> PathBuf {
    let path = home.join("fleet.toml");
    std::fs::write(
        &path,
        format!(
            r#"default_region = "us-east-1"

[[instance]]
id = "{WEB}"
name = "web-1"
state = "running"
ping = "Online"
platform_type = "Linux"
agent_version = "3.3.1611.0"

[[instance]]
id = "{LOST}"
name = "gone-away"
state = "running"
ping = "ConnectionLost"

[[instance]]
id = "{KMS}"
name = "audited"
state = "running"
ping = "Online"
agent_version = "3.3.1611.0"
kms_key_id = "arn:aws:kms:us-east-1:123456789012:key/sessions"
"#
        ),
    )
    .unwrap();
    path
}

struct Setup {
    home: tempfile::TempDir,
    sim: Sim,
}

fn setup() -> Setup {
    setup_with(&[])
}

fn setup_with(sim_args: &[&str]) -> Setup {
    let home = tempfile::tempdir().unwrap();
    let fleet = fleet(home.path());
    let mut args = vec!["--fleet", fleet.to_str().unwrap()];
    args.extend_from_slice(sim_args);
    let sim = Sim::start(home.path(), &args);
    Setup { home, sim }
}

impl Setup {
    fn tmux(&self, args: &str) -> Tmux {
        let env = [("AWS_ENDPOINT_URL", self.sim.endpoint.as_str())];
        in_tmux(
            self.home.path(),
            &env,
            &format!("--region us-east-1 {args}"),
            false,
        )
    }

    /// Types a line into the remote shell.
    fn line(t: &Tmux, text: &str) {
        t.type_text(text);
        t.send(&["Enter"]);
    }
}

fn has_line(screen: &str, want: &str) -> bool {
    screen.lines().any(|l| l.trim_end() == want)
}

#[test]
fn shell_runs_commands_follows_resizes_and_exits_cleanly() {
    let s = setup();
    let t = s.tmux("shell web-1");
    t.wait_screen("the remote prompt", |sc| sc.contains(PROMPT));
    Setup::line(&t, "echo $((6*7))");
    t.wait_screen("the remote arithmetic", |sc| has_line(sc, "42"));

    // The remote pty has the pane's size from the start...
    let size = t.pane_size();
    Setup::line(&t, "stty size");
    t.wait_screen("the initial size", |sc| has_line(sc, &size));
    // ...and follows it when the terminal is resized (SIGWINCH).
    t.resize(100, 25);
    let resized = t.pane_size();
    assert_ne!(size, resized);
    Setup::line(&t, "clear; stty size");
    t.wait_screen("the new size", |sc| has_line(sc, &resized));

    // Ctrl-C interrupts the remote command, not ec2ssh.
    Setup::line(&t, "clear; sleep 30");
    std::thread::sleep(std::time::Duration::from_millis(300));
    t.send(&["C-c"]);
    Setup::line(&t, "echo still-$((40+2))");
    t.wait_screen("the shell after Ctrl-C", |sc| has_line(sc, "still-42"));

    Setup::line(&t, "exit");
    let (_, code) = t.finished(s.home.path());
    assert_eq!(code, 0);
    assert_no_active_sessions(&s.sim);
}

#[test]
fn exit_ends_the_session_at_once_on_the_services_channel_closed() {
    let s = setup();
    let t = s.tmux("shell web-1");
    t.wait_screen("the remote prompt", |sc| sc.contains(PROMPT));
    let typed = std::time::Instant::now();
    Setup::line(&t, "exit");
    let (_, code) = t.finished(s.home.path());
    let took = typed.elapsed();
    assert_eq!(code, 0, "{}", t.screen());
    // It ended on the service's channel_closed (HeaderLength 112, NUL-padded type):
    // one websocket, never resumed. Had the frame been refused, the session would
    // have ended on the websocket's close, through ResumeSession, with an error.
    let stats = s.sim.stats();
    assert_eq!(stats["channel_closed_sent"], 1, "{stats}");
    assert_eq!(stats["websockets_opened"], 1, "{stats}");
    assert_eq!(stats["resumes_with_token"], 0, "{stats}");
    assert_eq!(stats["resumes_without_token"], 0, "{stats}");
    // Generous: the driver only gives a silent websocket up after 75 s.
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    assert_no_active_sessions(&s.sim);
}

#[test]
fn a_slow_agent_is_waited_for_with_a_notice_and_ctrl_c_gives_up() {
    // Six seconds each way: the shell's first output is twelve seconds out.
    let s = setup_with(&["--faults", "latency-ms=6000"]);
    let t = s.tmux("shell web-1");
    let screen = t.wait_screen("the notice", |sc| {
        sc.contains("ec2ssh: the SSM agent has not answered yet; still waiting (Ctrl-C gives up)")
    });
    assert!(!screen.contains(PROMPT), "{screen}");
    // Raw mode turns Ctrl-C into a byte; before the session is up it still gives up.
    t.send(&["C-c"]);
    let (_, code) = t.finished(s.home.path());
    assert_eq!(code, 130, "{}", t.screen());
    assert_no_active_sessions(&s.sim);
}

/// The ec2ssh process run by `in_tmux`'s wrapper script (the pane's shell's child).
fn ec2ssh_pid(t: &Tmux) -> u32 {
    let pane: u32 = t.pane_pid();
    let children = std::fs::read_to_string(format!("/proc/{pane}/task/{pane}/children"))
        .expect("the wrapper's children");
    children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("ec2ssh running under the wrapper")
}

#[test]
fn sigterm_restores_the_terminal_and_terminates_the_session() {
    let s = setup();
    let t = s.tmux("shell web-1");
    t.wait_screen("the remote prompt", |sc| sc.contains(PROMPT));
    assert_eq!(crate::rig::active_sessions(&s.sim).len(), 1);
    let pid = ec2ssh_pid(&t);
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    // `finished` checks the terminal modes are as before.
    let (_, code) = t.finished(s.home.path());
    assert_eq!(code, 128 + 15);
    assert_no_active_sessions(&s.sim);
}

#[test]
fn picker_ctrl_o_opens_a_shell_and_comes_back() {
    let s = setup();
    let t = s.tmux("pick");
    t.wait_screen("the fleet", |sc| sc.contains(" shown ·"));
    t.type_text("web-1");
    t.wait_screen("the match", |sc| {
        sc.lines().nth(2).is_some_and(|l| l.contains("web-1"))
    });
    t.send(&["C-o"]);
    t.wait_screen("the remote prompt", |sc| sc.contains(PROMPT));
    Setup::line(&t, "echo picked-$((6*7))");
    t.wait_screen("the command's output", |sc| has_line(sc, "picked-42"));
    Setup::line(&t, "exit");
    t.wait_screen("the picker again", |sc| {
        sc.contains("web-1: shell closed after")
            && sc.lines().nth(2).is_some_and(|l| l.contains("web-1"))
    });
    assert_no_active_sessions(&s.sim);
    // The picker has the keyboard again: every key reaches it.
    t.send(&["Escape"]);
    assert_eq!(t.finished(s.home.path()).1, 130);
}

#[test]
fn an_offline_instance_is_refused() {
    let s = setup();
    let out = s
        .sim
        .ec2ssh(s.home.path())
        .args(["shell", "gone-away"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "error: {LOST} (gone-away) is not connected to Systems Manager (ping status: ConnectionLost)"
        )),
        "{err}"
    );
    assert!(err.contains("  fix: "), "{err}");
    assert!(crate::rig::active_sessions(&s.sim).is_empty());
}

#[test]
fn without_a_terminal_it_says_what_to_use_instead() {
    let s = setup();
    let out = s
        .sim
        .ec2ssh(s.home.path())
        .args(["shell", "web-1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("needs an interactive terminal"), "{err}");
    assert!(err.contains("ec2ssh ssh TARGET -- COMMAND"), "{err}");
    assert!(crate::rig::active_sessions(&s.sim).is_empty());
}

#[test]
fn a_kms_encrypted_account_is_refused_with_the_setting_named() {
    let s = setup();
    let t = s.tmux("shell audited");
    let (_, code) = t.finished(s.home.path());
    let screen = t.screen();
    assert_eq!(code, 1, "{screen}");
    assert!(
        screen.contains("KMS encryption is enabled for this account/region"),
        "{screen}"
    );
    assert!(screen.contains(&format!("ec2ssh ssh {KMS}")), "{screen}");
    assert_no_active_sessions(&s.sim);
}
