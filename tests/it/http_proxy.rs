//! Through a real HTTP proxy (tinyproxy on loopback): `list`, `ssh` and `scp` with the
//! simulator behind it, proven by the proxy's own log (the SDK's calls and the data
//! channel's CONNECT); NO_PROXY; credentials in the proxy URL; and what a user reads
//! when the proxy refuses or is not there.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::common::{ec2ssh, free_port, Sim, Tinyproxy};
use crate::rig::{assert_no_active_sessions, fleet_file, sim_for, user_dir, Sshd, ONLINE};

struct Setup {
    home: tempfile::TempDir,
    /// Where the instance's scp sessions start.
    remote: PathBuf,
    _sshd: Sshd,
    sim: Sim,
}

fn setup() -> Setup {
    let home = tempfile::tempdir().unwrap();
    let remote = user_dir(home.path(), "remote");
    let sshd = Sshd::start_named(home.path(), "sshd", Some(&remote));
    let fleet = fleet_file(home.path(), &sshd.addr());
    let sim = sim_for(home.path(), &sshd, &fleet, &[]);
    Setup {
        home,
        remote,
        _sshd: sshd,
        sim,
    }
}

impl Setup {
    /// `ec2ssh ARGS` against the simulator with the proxy variables `env`.
    fn run(&self, env: &[(&str, String)], args: &[&str]) -> Output {
        let d = self.home.path();
        let mut c = ec2ssh(d);
        c.env("AWS_ENDPOINT_URL", &self.sim.endpoint)
            .env("XDG_RUNTIME_DIR", d.join("run"))
            .env("XDG_DATA_HOME", d.join("data"))
            .env("XDG_STATE_HOME", d.join("state"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["--region", "us-east-1"])
            .args(args)
            .stdin(Stdio::null());
        c.output().unwrap()
    }

    fn ssh(&self, env: &[(&str, String)], command: &str) -> Output {
        self.run(
            env,
            &["ssh", "tunnel-target", "--", "-o", "BatchMode=yes", command],
        )
    }

    /// The simulator's `host:port`: what the SDK posts to and the data channel dials.
    fn sim_addr(&self) -> &str {
        self.sim.endpoint.trim_start_matches("http://")
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn count(requests: &[String], wanted: &str) -> usize {
    requests.iter().filter(|r| *r == wanted).count()
}

#[test]
fn list_ssh_and_scp_go_through_the_proxy() {
    let s = setup();
    let proxy = Tinyproxy::start(s.home.path(), &[]);
    let env = [("http_proxy", proxy.url())];
    let (post, connect) = (
        format!("POST http://{}/", s.sim_addr()),
        format!("CONNECT {}", s.sim_addr()),
    );

    let listed = ok(&s.run(&env, &["list", "--json"]));
    assert!(listed.contains(ONLINE), "{listed}");
    let after_list = proxy.requests();
    // EC2 DescribeInstances and SSM DescribeInstanceInformation at least, no tunnel.
    assert!(count(&after_list, &post) >= 2, "{after_list:?}");
    assert_eq!(count(&after_list, &connect), 0, "{after_list:?}");

    let out = s.ssh(&env, "echo through-the-proxy");
    assert_eq!(ok(&out), "through-the-proxy\n");
    let after_ssh = proxy.requests();
    // The key push and StartSession were posted through it, and the data channel
    // was one CONNECT to the simulator's websocket.
    assert!(
        count(&after_ssh, &post) >= count(&after_list, &post) + 2,
        "{after_ssh:?}"
    );
    assert_eq!(count(&after_ssh, &connect), 1, "{after_ssh:?}");

    let file = s.home.path().join("payload.bin");
    let data: Vec<u8> = (0..256 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    ok(&s.run(&env, &["scp", file.to_str().unwrap(), "tunnel-target:"]));
    assert_eq!(std::fs::read(s.remote.join("payload.bin")).unwrap(), data);
    let after_scp = proxy.requests();
    assert_eq!(count(&after_scp, &connect), 2, "{after_scp:?}");
    // Nothing else went through it (no other method, no other destination).
    assert!(
        after_scp.iter().all(|r| *r == post || *r == connect),
        "{after_scp:?}"
    );
    assert_no_active_sessions(&s.sim);
}

#[test]
fn no_proxy_bypasses_it_and_loopback_is_not_bypassed_by_itself() {
    let s = setup();
    let proxy = Tinyproxy::start(s.home.path(), &[]);
    let env = [
        ("http_proxy", proxy.url()),
        ("NO_PROXY", "example.com, 127.0.0.0/8".to_string()),
    ];
    assert!(ok(&s.run(&env, &["list", "--json"])).contains(ONLINE));
    assert_eq!(ok(&s.ssh(&env, "echo direct")), "direct\n");
    assert_eq!(proxy.requests(), Vec::<String>::new(), "{}", proxy.log());

    // A proxy that is not there: `localhost` in no_proxy does not cover 127.0.0.1,
    // and nothing exempts loopback by itself, so the calls try it and say so.
    let dead = free_port();
    let env = [
        ("http_proxy", format!("http://127.0.0.1:{dead}")),
        ("no_proxy", "localhost".to_string()),
    ];
    let out = s.run(&env, &["list", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "in us-east-1: cannot connect to the proxy at http://127.0.0.1:{dead}: "
        )) && err.contains("\n  fix: check https_proxy/HTTPS_PROXY, http_proxy"),
        "{err}"
    );
}

#[test]
fn credentials_in_the_proxy_url_are_sent_to_it() {
    let s = setup();
    let proxy = Tinyproxy::start(s.home.path(), &["BasicAuth user pa-ss_w.rd"]);
    // Percent-encoded in the URL, as a user must for special characters.
    let good = format!("http://us%65r:pa%2Dss_w.rd@127.0.0.1:{}", proxy.port);
    let env = [("http_proxy", good.clone())];
    assert!(ok(&s.run(&env, &["list", "--json"])).contains(ONLINE));
    assert_eq!(ok(&s.ssh(&env, "echo logged-in")), "logged-in\n");
    let connect = format!("CONNECT {}", s.sim_addr());
    assert_eq!(count(&proxy.requests(), &connect), 1);

    // Without them, the SDK's first call is refused and says what to do.
    let out = s.run(&[("http_proxy", proxy.url())], &["list", "--json"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "the proxy at {} wants a user and password",
            proxy.url()
        )),
        "{err}"
    );

    // Wrong ones for the data channel only (ws_proxy comes before http_proxy for ws://):
    // the API calls pass, the CONNECT is refused, once, with one error and its fix.
    // (tinyproxy answers wrong credentials with 401, not 407.)
    let wrong = format!("http://user:wrong@127.0.0.1:{}", proxy.port);
    let out = s.ssh(&[("http_proxy", good), ("ws_proxy", wrong)], "true");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    let expected = format!(
        "error: the proxy at {} rejected the user and password for {} (401 Unauthorized)\n  \
         fix: check the user and password in ws_proxy",
        proxy.url(),
        s.sim_addr()
    );
    assert!(err.starts_with(&expected), "{err}");
    assert_eq!(count(&proxy.requests(), &connect), 2, "no retries");
    assert_no_active_sessions(&s.sim);
}

#[test]
fn a_proxy_that_refuses_connect_gives_one_error_and_a_fix() {
    let s = setup();
    // Plain-HTTP calls are forwarded; CONNECT only to port 443.
    let proxy = Tinyproxy::start(s.home.path(), &["ConnectPort 443"]);
    let env = [("http_proxy", proxy.url())];
    let out = s.ssh(&env, "true");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[..2],
        [
            format!(
                "error: the proxy at {} refused CONNECT to {} (403 Access violation)",
                proxy.url(),
                s.sim_addr()
            )
            .as_str(),
            format!(
                "  fix: the proxy (from http_proxy) must allow CONNECT to {}: ask its administrator, or list the host in NO_PROXY to connect without it",
                s.sim_addr()
            )
            .as_str(),
        ],
        "{err}"
    );
    let connects = count(&proxy.requests(), &format!("CONNECT {}", s.sim_addr()));
    assert_eq!(connects, 1, "a refusal is not retried");
    assert_no_active_sessions(&s.sim);
}

#[test]
fn an_unusable_proxy_setting_is_reported_before_any_call() {
    let home = tempfile::tempdir().unwrap();
    let out = ec2ssh(home.path())
        .env("HTTPS_PROXY", "socks5h://127.0.0.1:1080")
        .args(["list", "--region", "us-east-1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: HTTPS_PROXY is not a proxy URL ec2ssh can use: socks5h:// proxies are not supported \
         (ec2ssh talks plain HTTP to the proxy; the TLS to AWS runs inside the CONNECT tunnel)\n  \
         fix: set HTTPS_PROXY to http://HOST:PORT (http://USER:PASSWORD@HOST:PORT if the proxy wants a login, \
         special characters percent-encoded), or unset it\n"
    );
    // Not for a command that makes no call.
    let status = Command::new(crate::common::bin())
        .env("HTTPS_PROXY", "socks5h://127.0.0.1:1080")
        .args(["iam-policy"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}
