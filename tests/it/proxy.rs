//! `ec2ssh proxy` end to end: real OpenSSH `ssh`/`scp` with ec2ssh as ProxyCommand,
//! through the simulator's Session Manager gateway, to a real sshd on loopback; with
//! and without injected faults and websocket cuts. Every test checks that no session
//! is left active.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

use crate::common::{bin, hermetic, Guarded, Sim};
use crate::rig::{
    active_sessions, assert_no_active_sessions, client_key, fleet_file, openssh, proxy_option,
    ssm_call, Sshd, LOST, OLD_AGENT, ONLINE, USER,
};

struct Setup {
    home: tempfile::TempDir,
    sshd: Sshd,
    sim: Sim,
    key: std::path::PathBuf,
}

fn setup(sim_args: &[&str]) -> Setup {
    let home = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(home.path());
    let (key, public) = client_key(home.path());
    sshd.authorize(USER, &public);
    let fleet = fleet_file(home.path(), &sshd.addr());
    let mut args = vec!["--fleet", fleet.to_str().unwrap()];
    args.extend_from_slice(sim_args);
    let sim = Sim::start(home.path(), &args);
    Setup {
        home,
        sshd,
        sim,
        key,
    }
}

impl Setup {
    fn ssh(&self, target: &str, extra: &str) -> Command {
        let mut c = openssh("ssh", self.home.path(), &self.key, Some(&self.sim));
        c.arg("-o")
            .arg(proxy_option(extra))
            .arg(format!("{USER}@{target}"));
        c
    }

    /// The proxy alone, stdin and stdout piped.
    fn proxy(&self, target: &str) -> Command {
        let mut c = Command::new(bin());
        hermetic(&mut c, self.home.path());
        c.env("AWS_ENDPOINT_URL", &self.sim.endpoint)
            .args(["proxy", target, "22", "--region", "us-east-1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Copies `size` random bytes to the instance with scp and checks the SHA-256 there.
    fn scp_roundtrip(&self, size: usize) {
        let mut data = vec![0u8; size];
        rand::rngs::StdRng::seed_from_u64(size as u64).fill_bytes(&mut data);
        let local = self.home.path().join("payload.bin");
        std::fs::write(&local, &data).unwrap();
        let remote = self.inbox().join("arrived.bin");
        let out = openssh("scp", self.home.path(), &self.key, Some(&self.sim))
            .arg("-o")
            .arg(proxy_option(""))
            .arg(&local)
            .arg(format!("{USER}@{ONLINE}:{}", remote.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scp failed: {}\nsshd log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.sshd.log()
        );
        let arrived = std::fs::read(&remote).unwrap();
        assert_eq!(arrived.len(), data.len(), "size differs");
        assert_eq!(
            Sha256::digest(&arrived),
            Sha256::digest(&data),
            "content differs"
        );
        assert_no_active_sessions(&self.sim);
    }
}

impl Setup {
    /// A directory the login user may write into (the test home is root's, 0700).
    fn inbox(&self) -> std::path::PathBuf {
        crate::rig::user_dir(self.home.path(), "inbox")
    }
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn ssh_runs_a_command_and_returns_its_output_and_exit_code() {
    let s = setup(&[]);
    let out = s
        .ssh(ONLINE, "")
        .arg("echo tunnel-ok; id -un; exit 3")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "tunnel-ok\nec2-user\n",
        "stderr: {}\nsshd: {}",
        stderr_of(&out),
        s.sshd.log()
    );
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr_of(&out));
    assert_no_active_sessions(&s.sim);
    let history = ssm_call(
        &s.sim,
        "DescribeSessions",
        &serde_json::json!({"State": "History"}),
    );
    let sessions = history["Sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{history}");
    assert_eq!(sessions[0]["Target"], ONLINE);
    assert_eq!(sessions[0]["DocumentName"], "AWS-StartSSHSession");
    assert_eq!(sessions[0]["Status"], "Terminated");
}

#[test]
fn an_old_agent_session_is_terminated_through_the_api() {
    // Agents up to 2.3.722.0 do not know the in-band TerminateSession flag.
    let s = setup(&[]);
    let out = s.ssh(OLD_AGENT, "").arg("exit 0").output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_no_active_sessions(&s.sim);
}

#[test]
fn scp_64_mib_arrives_byte_exact() {
    setup(&[]).scp_roundtrip(64 << 20);
}

/// The simulator applied every kind of fault, both ways.
fn assert_faults_happened(stats: &serde_json::Value) {
    for fault in ["dropped", "duplicated", "reordered", "delayed"] {
        for way in ["to_client", "from_client"] {
            let key = format!("{fault}_{way}");
            assert!(stats[&key].as_u64().unwrap() > 0, "no frame {key}: {stats}");
        }
    }
}

/// The websocket was cut at least `at_least` times and every cut was resumed on a new
/// connection with a fresh token.
fn assert_cut_and_resumed(stats: &serde_json::Value, at_least: u64) {
    let n = |k: &str| stats[k].as_u64().unwrap();
    assert!(n("cuts") >= at_least, "{stats}");
    assert_eq!(n("websockets_opened"), n("cuts") + 1, "{stats}");
    assert!(n("resumes_with_token") >= n("cuts"), "{stats}");
    assert_eq!(n("resumes_without_token"), 0, "{stats}");
}

#[test]
fn scp_64_mib_arrives_byte_exact_under_injected_faults() {
    let s = setup(&[
        "--faults",
        "drop=0.01,duplicate=0.01,reorder=0.02,delay=0.01,delay-ms=15,seed=11",
    ]);
    s.scp_roundtrip(64 << 20);
    assert_faults_happened(&s.sim.stats());
}

#[test]
fn scp_64_mib_arrives_byte_exact_across_websocket_cuts() {
    // Every 12 MB on the wire the simulator drops the TCP connection under the
    // websocket, so the transfer needs several ResumeSession reconnects.
    let s = setup(&["--faults", "cut-after=12000000,seed=3"]);
    s.scp_roundtrip(64 << 20);
    assert_cut_and_resumed(&s.sim.stats(), 5);
}

#[test]
fn scp_arrives_byte_exact_under_faults_and_cuts_together() {
    let s = setup(&[
        "--faults",
        "drop=0.02,duplicate=0.02,reorder=0.02,delay=0.02,delay-ms=10,cut-after=3000000,seed=29",
    ]);
    s.scp_roundtrip(16 << 20);
    let stats = s.sim.stats();
    assert_faults_happened(&stats);
    assert_cut_and_resumed(&stats, 5);
}

#[test]
fn what_ssh_sends_before_the_agent_has_dialled_is_resent() {
    // The agent answers the handshake, then takes 500 ms to reach sshd; ssh's first
    // bytes arrive meanwhile and are refused unacknowledged, so ec2ssh must resend.
    let s = setup(&["--faults", "dial-delay-ms=500"]);
    let out = s.ssh(ONLINE, "").arg("echo resent-ok").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "resent-ok\n",
        "stderr: {}",
        stderr_of(&out)
    );
    let stats = s.sim.stats();
    assert!(stats["refused_not_ready"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(stats["sessions_ssh"], 1);
    assert_no_active_sessions(&s.sim);
}

#[test]
fn stdout_carries_only_tunnel_bytes_and_end_of_input_ends_the_session() {
    let s = setup(&[]);
    let mut child = Guarded(s.proxy(ONLINE).spawn().unwrap());
    let mut stdout = child.0.stdout.take().unwrap();
    let mut banner = [0u8; 8];
    stdout.read_exact(&mut banner).unwrap();
    assert_eq!(
        &banner, b"SSH-2.0-",
        "the first bytes must be sshd's banner"
    );
    assert_eq!(active_sessions(&s.sim).len(), 1);
    drop(child.0.stdin.take()); // end of input
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}");
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(err, "", "nothing on stderr without -v");
    assert_no_active_sessions(&s.sim);
}

fn signal_ends_the_session(signal: &str, code: i32) {
    let s = setup(&[]);
    let mut child = Guarded(
        s.proxy(ONLINE)
            .env("RUST_LOG", "ec2ssh=debug")
            .spawn()
            .unwrap(),
    );
    let mut banner = [0u8; 8];
    child
        .0
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut banner)
        .unwrap();
    assert_eq!(active_sessions(&s.sim).len(), 1);
    // Input stays open: `Child::wait` would close it, and end of input is another
    // (clean) way for the proxy to finish that could win the race with the signal.
    let _stdin = child.0.stdin.take();
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap()
        .success());
    let status = child.0.wait().unwrap();
    let mut log = String::new();
    let _ = child.0.stderr.take().unwrap().read_to_string(&mut log);
    assert_eq!(
        status.code(),
        Some(code),
        "{signal}; the proxy's log:\n{log}"
    );
    assert_no_active_sessions(&s.sim);
}

#[test]
fn sigterm_terminates_the_session() {
    signal_ends_the_session("-TERM", 143);
}

#[test]
fn sighup_terminates_the_session() {
    // What ssh sends its ProxyCommand when it exits.
    signal_ends_the_session("-HUP", 129);
}

#[test]
fn sigint_terminates_the_session() {
    signal_ends_the_session("-INT", 130);
}

fn one_line_error(out: &std::process::Output) -> (String, String) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(out));
    assert!(out.stdout.is_empty(), "stdout must stay clean");
    let err = stderr_of(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "one error line and one fix line: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[1].starts_with("  fix: "), "{err}");
    (lines[0].to_string(), lines[1].to_string())
}

#[test]
fn an_offline_target_is_a_one_line_error_with_the_fix() {
    let s = setup(&[]);
    let out = s.proxy(LOST).stdin(Stdio::null()).output().unwrap();
    let (error, fix) = one_line_error(&out);
    assert!(
        error.contains(LOST) && error.contains("TargetNotConnected")
            || error.contains("not connected"),
        "{error}"
    );
    assert!(
        fix.contains("Online") && fix.contains("ssmmessages"),
        "{fix}"
    );
    assert!(active_sessions(&s.sim).is_empty());
}

#[test]
fn a_denied_start_session_names_the_action() {
    let s = setup(&["--deny", "ssm:StartSession"]);
    let out = s.proxy(ONLINE).stdin(Stdio::null()).output().unwrap();
    let (error, fix) = one_line_error(&out);
    assert!(
        error.contains("ssm:StartSession was denied in us-east-1"),
        "{error}"
    );
    assert!(fix.contains("allow ssm:StartSession"), "{fix}");
}

#[test]
fn a_bad_target_is_refused_before_any_aws_call() {
    let s = setup(&[]);
    let out = s
        .proxy("web-1;touch /tmp/x")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (error, _) = one_line_error(&out);
    assert!(error.contains("is not an instance id"), "{error}");
    let history = ssm_call(
        &s.sim,
        "DescribeSessions",
        &serde_json::json!({"State": "History"}),
    );
    assert_eq!(history["Sessions"].as_array().unwrap().len(), 0);
}

#[test]
fn the_plugin_transport_explains_a_missing_plugin() {
    let s = setup(&[]);
    let out = s
        .proxy(ONLINE)
        .arg("--transport")
        .arg("plugin")
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (error, fix) = one_line_error(&out);
    assert!(error.contains("session-manager-plugin"), "{error}");
    assert!(fix.contains("install"), "{fix}");
    assert!(active_sessions(&s.sim).is_empty());
}

/// A stand-in session-manager-plugin that records how it was called.
fn fake_plugin(dir: &Path) -> std::path::PathBuf {
    fake_plugin_answering(dir, "echo 1.2.650.0; exit 0")
}

/// The same, with `version` the shell code that answers `--version`.
fn fake_plugin_answering(dir: &Path, version: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin_dir = dir.join("plugin-bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let script = bin_dir.join("session-manager-plugin");
    let record = dir.join("plugin-call");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             if [ \"$1\" = --version ]; then {version}; fi\n\
             for a in \"$@\"; do printf '%s\\n' \"$a\"; done > {rec}.argv\n\
             printf '%s' \"$AWS_SSM_START_SESSION_RESPONSE\" > {rec}.env\n\
             exit 0\n",
            rec = record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin_dir
}

impl Setup {
    fn proxy_with_plugin(&self, bin_dir: &Path) -> std::process::Output {
        self.proxy(ONLINE)
            .arg("--transport")
            .arg("plugin")
            .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// Only a plugin whose version is known to predate the environment variable gets
/// the response (and its token) on the command line, and the user is told.
#[test]
fn an_old_plugin_gets_the_token_in_argv_and_the_user_is_told() {
    let s = setup(&[]);
    let bin_dir = fake_plugin_answering(s.home.path(), "echo 1.2.497.0; exit 0");
    let out = s.proxy_with_plugin(&bin_dir);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let argv = std::fs::read_to_string(s.home.path().join("plugin-call.argv")).unwrap();
    let response: serde_json::Value = serde_json::from_str(argv.lines().next().unwrap()).unwrap();
    assert!(!response["TokenValue"].as_str().unwrap().is_empty());
    let err = stderr_of(&out);
    assert!(
        err.contains("session-manager-plugin 1.2.497.0 predates 1.2.536.0")
            && err.contains("command line"),
        "{err}"
    );
    assert_no_active_sessions(&s.sim);
}

/// A `--version` that fails, prints no version, or hangs is an error before any
/// session starts: the token never goes on a command line by default.
#[test]
fn a_plugin_whose_version_cannot_be_read_is_an_error_not_a_downgrade() {
    let s = setup(&[]);
    for (answer, says) in [
        ("exit 1", "`--version` failed"),
        ("echo unknown; exit 0", "not a version"),
        ("exec sleep 30", "did not answer within 5s"),
    ] {
        let bin_dir = fake_plugin_answering(s.home.path(), answer);
        let out = s.proxy_with_plugin(&bin_dir);
        let err = stderr_of(&out);
        assert!(!out.status.success(), "{answer}: {err}");
        assert!(
            err.contains(says) && err.contains("fix:"),
            "{answer}: {err}"
        );
        assert!(
            !s.home.path().join("plugin-call.argv").exists(),
            "{answer}: the plugin ran"
        );
        let history = ssm_call(
            &s.sim,
            "DescribeSessions",
            &serde_json::json!({ "State": "History" }),
        );
        assert_eq!(
            history["Sessions"],
            serde_json::json!([]),
            "{answer}: a session started"
        );
        assert!(active_sessions(&s.sim).is_empty());
    }
}

#[test]
fn the_plugin_transport_runs_the_plugin_like_the_aws_cli_and_terminates() {
    let s = setup(&[]);
    let bin_dir = fake_plugin(s.home.path());
    let out = s.proxy_with_plugin(&bin_dir);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        !stderr_of(&out).contains("command line"),
        "{}",
        stderr_of(&out)
    );
    let record = s.home.path().join("plugin-call");
    let argv = std::fs::read_to_string(record.with_extension("argv")).unwrap();
    let argv: Vec<&str> = argv.lines().collect();
    assert_eq!(argv[0], "AWS_SSM_START_SESSION_RESPONSE");
    assert_eq!(argv[1], "us-east-1");
    assert_eq!(argv[2], "StartSession");
    let request: serde_json::Value = serde_json::from_str(argv[4]).unwrap();
    assert_eq!(request["Target"], ONLINE);
    assert_eq!(request["DocumentName"], "AWS-StartSSHSession");
    assert_eq!(request["Parameters"]["portNumber"][0], "22");
    assert_eq!(argv[5], s.sim.endpoint);
    let response: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(record.with_extension("env")).unwrap())
            .unwrap();
    assert!(response["SessionId"].as_str().unwrap().starts_with("demo-"));
    assert!(!response["TokenValue"].as_str().unwrap().is_empty());
    assert!(response["StreamUrl"]
        .as_str()
        .unwrap()
        .starts_with("ws://127.0.0.1:"));
    // The token is not on the command line.
    assert!(!argv
        .iter()
        .any(|a| a.contains(response["TokenValue"].as_str().unwrap())));
    assert_no_active_sessions(&s.sim);
}
