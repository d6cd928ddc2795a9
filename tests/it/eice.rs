//! The EC2 Instance Connect Endpoint path end to end: machines Session Manager cannot
//! reach (not managed, ConnectionLost) reached through the simulator's openTunnel
//! websocket with `ec2ssh ssh`, plain ssh through the `ec2ssh ssh-config` block, and
//! scp; the simulator refusing tampered and expired presigned URLs; the tunnel's
//! duration limit; a denied OpenTunnel, a refused connection and a full endpoint, each
//! one line and a fix; doctor's security group check.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

use crate::common::{free_port, wait_for};
use crate::rig::Rig;

/// Not managed by SSM, in a VPC with an endpoint whose security groups let it in.
const DARK: &str = "i-0eeee000000000001";
/// The same, but its security group does not admit the endpoint.
const WALLED: &str = "i-0eeee000000000002";
/// ConnectionLost, in the endpoint's VPC.
const LOST: &str = "i-0eeee000000000003";
/// Not managed; nothing listens where the endpoint connects.
const CLOSED: &str = "i-0eeee000000000004";
/// Not managed, behind an endpoint that takes one tunnel at a time.
const CROWDED: &str = "i-0eeee000000000005";
const ENDPOINT: &str = "eice-0e1c0000000000001";

fn fleet(home: &Path, target: &str, closed: &str) -> PathBuf {
    let path = home.join("eice-fleet.toml");
    let instance = |id: &str, name: &str, ip: &str, vpc: &str, sg: &str, ping: &str, to: &str| {
        format!(
            "[[instance]]\nid = \"{id}\"\nname = \"{name}\"\nstate = \"running\"\n{ping}platform_type = \"Linux\"\nplatform_name = \"Amazon Linux\"\nprivate_ip = \"{ip}\"\nvpc_id = \"{vpc}\"\nsubnet_id = \"subnet-{vpc}\"\nsecurity_groups = [\"{sg}\"]\ntarget = \"{to}\"\n\n"
        )
    };
    let mut text = String::from("default_region = \"us-east-1\"\n\n");
    text += &instance(DARK, "dark-1", "10.1.0.11", "vpc-e", "sg-app", "", target);
    text += &instance(
        WALLED,
        "walled-1",
        "10.1.0.12",
        "vpc-e",
        "sg-closed",
        "",
        target,
    );
    text += &instance(
        LOST,
        "lost-1",
        "10.1.0.13",
        "vpc-e",
        "sg-app",
        "ping = \"ConnectionLost\"\nagent_version = \"3.3.1611.0\"\n",
        target,
    );
    text += &instance(
        CLOSED,
        "closed-1",
        "10.1.0.14",
        "vpc-e",
        "sg-app",
        "",
        closed,
    );
    text += &instance(
        CROWDED,
        "crowded-1",
        "10.2.0.11",
        "vpc-c",
        "sg-app-c",
        "",
        target,
    );
    text += r#"
[[vpc]]
id = "vpc-e"
cidr = "10.1.0.0/16"

[[vpc]]
id = "vpc-c"
cidr = "10.2.0.0/16"

[[instance_connect_endpoint]]
id = "eice-0e1c0000000000001"
vpc_id = "vpc-e"
subnet_id = "subnet-vpc-e"
security_groups = ["sg-eice"]
private_ip = "10.1.0.250"

[[instance_connect_endpoint]]
id = "eice-0e1c0000000000002"
vpc_id = "vpc-c"
subnet_id = "subnet-vpc-c"
security_groups = ["sg-eice-c"]
max_connections = 1

[[security_group]]
id = "sg-eice"
vpc_id = "vpc-e"
egress = ["tcp:22:10.1.0.0/16"]

[[security_group]]
id = "sg-app"
vpc_id = "vpc-e"
ingress = ["tcp:22:sg-eice"]

[[security_group]]
id = "sg-closed"
vpc_id = "vpc-e"
ingress = ["tcp:443:10.1.0.0/16"]

[[security_group]]
id = "sg-eice-c"
vpc_id = "vpc-c"

[[security_group]]
id = "sg-app-c"
vpc_id = "vpc-c"
ingress = ["tcp:22:sg-eice-c"]
"#;
    std::fs::write(&path, text).unwrap();
    path
}

type Setup = Rig;

fn setup(sim_args: &[&str]) -> Setup {
    Rig::start(
        |home, target| {
            // Where closed-1's connections go: a port nothing listens on.
            let closed = format!("127.0.0.1:{}", free_port());
            fleet(home, target, &closed)
        },
        sim_args,
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Rig {
    fn ssh_over(&self, destination: &str, command: &str) -> Output {
        self.ec2ssh()
            .args(["ssh", destination, "--", "-o", "BatchMode=yes", command])
            .output()
            .unwrap()
    }

    fn config(&self, text: &str) -> PathBuf {
        let path = self.home.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// The last two lines of stderr: `error: …` and `fix: …`.
fn error_and_fix(out: &Output) -> (String, String) {
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let n = lines.len();
    assert!(n >= 2, "{err}");
    (
        lines[n - 2].trim().to_string(),
        lines[n - 1].trim().to_string(),
    )
}

#[test]
fn list_says_which_path_reaches_each_row() {
    let s = setup(&[]);
    let out = s.ec2ssh().args(["list", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reach = |id: &str| {
        doc["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .map(|i| (i["reach"].clone(), i["eice"]["id"].clone()))
            .unwrap()
    };
    assert_eq!(reach(DARK), ("eice".into(), ENDPOINT.into()));
    assert_eq!(reach(LOST).0, "eice");
    assert_eq!(reach(CROWDED).1, "eice-0e1c0000000000002");
    // Forced onto Session Manager, an unmanaged row still says ssm (it was asked for).
    let out = s
        .ec2ssh()
        .args(["list", "--json", "--via", "ssm"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["instances"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["reach"] == "ssm"));
}

#[test]
fn a_denied_endpoint_listing_leaves_the_path_unknown_and_says_which_action() {
    let s = setup(&["--deny", "ec2:DescribeInstanceConnectEndpoints"]);
    let out = s.ec2ssh().args(["list", "--json"]).output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dark = doc["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == DARK)
        .unwrap()
        .clone();
    assert_eq!(dark["reach"], "none");
    assert_eq!(dark["eice"]["status"], "unknown");
    let out = s.ssh_over("dark-1", "true");
    let (error, fix) = error_and_fix(&out);
    assert!(
        error.contains("ec2:DescribeInstanceConnectEndpoints"),
        "{error}"
    );
    assert!(fix.starts_with("fix: ") && fix.contains("doctor"), "{fix}");
}

#[test]
fn an_unmanaged_instance_is_reached_over_the_endpoint_with_ec2ssh_ssh() {
    let s = setup(&[]);
    let out = s.ssh_over("dark-1", "echo over-$(id -un); exit 3");
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(3), "over-ec2-user\n".to_string()),
        "{}\nsshd: {}",
        text(&out.stderr),
        s.sshd.log()
    );
    // No Session Manager session was involved.
    assert_eq!(s.sim.stats()["websockets_opened"], 0);
}

#[test]
fn plain_ssh_reaches_an_unmanaged_instance_through_the_printed_config() {
    let s = setup(&[]);
    let out = s
        .ec2ssh()
        .args(["ssh-config", "--aliases"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = crate::rig::write_ssh_config(s.home.path(), &out.stdout);
    for host in [DARK, "dark-1"] {
        let out = s.plain_ssh(&config, host, "echo plain-$(id -un)");
        assert_eq!(
            text(&out.stdout),
            "plain-ec2-user\n",
            "{host}: {}\nsshd: {}",
            text(&out.stderr),
            s.sshd.log()
        );
    }
}

#[test]
fn scp_16_mib_over_the_endpoint_arrives_byte_exact() {
    let s = setup(&[]);
    let mut data = vec![0u8; 16 << 20];
    rand::rngs::StdRng::seed_from_u64(16).fill_bytes(&mut data);
    let local = s.home.path().join("payload.bin");
    std::fs::write(&local, &data).unwrap();
    let inbox = crate::rig::user_dir(s.home.path(), "inbox");
    let remote = inbox.join("arrived.bin");
    let out = s
        .ec2ssh()
        .args(["scp"])
        .arg(&local)
        .arg(format!("dark-1:{}", remote.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let arrived = std::fs::read(&remote).unwrap();
    assert_eq!(arrived.len(), data.len());
    assert_eq!(Sha256::digest(&arrived), Sha256::digest(&data));
    // And back.
    let back = s.home.path().join("back.bin");
    let out = s
        .ec2ssh()
        .args(["scp"])
        .arg(format!("dark-1:{}", remote.display()))
        .arg(&back)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        Sha256::digest(std::fs::read(&back).unwrap()),
        Sha256::digest(&data)
    );
}

#[test]
fn the_tunnels_duration_limit_ends_the_session_with_a_message() {
    let s = setup(&[]);
    let config = s.config("max_tunnel_duration = 2\n");
    let started = std::time::Instant::now();
    let out = s
        .ec2ssh()
        .arg("--config")
        .arg(&config)
        .args(["ssh", "dark-1", "--", "-o", "BatchMode=yes", "sleep 30"])
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the limit did not end it"
    );
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("the tunnel reached its 2 s limit (maxTunnelDuration) and was closed"),
        "{err}"
    );
    assert!(err.contains("connect again"), "{err}");
}

#[test]
fn a_denied_open_tunnel_is_one_line_and_a_fix() {
    let s = setup(&["--deny", "ec2-instance-connect:OpenTunnel"]);
    let out = s
        .ec2ssh()
        .args(["proxy", DARK, "22", "--via", "eice"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let (error, fix) = error_and_fix(&out);
    assert!(error.starts_with("error: OpenTunnel was denied: User: arn:aws:iam::123456789012:user/demo is not authorized to perform: ec2-instance-connect:OpenTunnel"), "{error}");
    assert!(fix.contains("ec2ssh iam-policy --eice"), "{fix}");
}

#[test]
fn a_refused_connection_is_one_line_and_a_fix() {
    let s = setup(&[]);
    let out = s.ssh_over("closed-1", "true");
    assert_eq!(out.status.code(), Some(255));
    let err = text(&out.stderr);
    assert!(
        err.contains("error: the endpoint closed the tunnel (code 1011): Connection refused"),
        "{err}"
    );
    assert!(err.contains(&format!("`ec2ssh doctor {CLOSED}`")), "{err}");
}

#[test]
fn a_full_endpoint_is_one_line_and_a_fix() {
    let s = setup(&[]);
    // The first tunnel holds the endpoint's only place while its stdin stays open.
    let mut first = s
        .ec2ssh()
        .args(["proxy", CROWDED, "22", "--via", "eice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = [0u8; 4];
    first
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut banner)
        .unwrap();
    assert_eq!(&banner, b"SSH-", "sshd answered through the first tunnel");
    let out = s
        .ec2ssh()
        .args(["proxy", CROWDED, "22", "--via", "eice"])
        .output()
        .unwrap();
    let (error, fix) = error_and_fix(&out);
    assert!(
        error
            .starts_with("error: the EC2 Instance Connect Endpoint eice-0e1c0000000000002 is full"),
        "{error}"
    );
    assert!(fix.contains("20 connections at once"), "{fix}");
    drop(first.stdin.take());
    let _ = first.wait();
}

#[test]
fn doctor_says_when_a_security_group_keeps_the_endpoint_out() {
    let s = setup(&[]);
    let out = s
        .ec2ssh()
        .args(["doctor", "walled-1", "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
    let check = |name: &str| {
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} check in {doc}"))
            .clone()
    };
    assert_eq!(check("EICE endpoint")["status"], "ok");
    let sg = check("EICE security groups");
    assert_eq!(sg["status"], "fail", "{sg}");
    assert!(
        sg["fix"]
            .as_str()
            .unwrap()
            .contains("allow inbound TCP 22 from sg-eice in sg-closed"),
        "{sg}"
    );
    // The reachable one passes the same checks.
    let out = s
        .ec2ssh()
        .args(["doctor", "dark-1", "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sg = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "EICE security groups")
        .unwrap()
        .clone();
    assert_eq!(sg["status"], "ok", "{sg}");
}

/// A raw websocket upgrade of `url` (ws://HOST:PORT/…): the status line and body.
fn upgrade(url: &str) -> (String, String) {
    let rest = url.strip_prefix("ws://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut tcp = TcpStream::connect(authority).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // The head, then (for a refusal) the body up to its declared length.
    let head_end = wait_for("an answer", Duration::from_secs(10), || {
        let n = tcp.read(&mut buf).ok()?;
        answer.extend_from_slice(&buf[..n]);
        let t = String::from_utf8_lossy(&answer).into_owned();
        let end = t.find("\r\n\r\n")?;
        if t.starts_with("HTTP/1.1 101") {
            return Some(end);
        }
        let len: usize = t
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        (answer.len() >= end + 4 + len).then_some(end)
    });
    let t = String::from_utf8_lossy(&answer).into_owned();
    (
        t.lines().next().unwrap().to_string(),
        t[head_end + 4..].to_string(),
    )
}

#[test]
fn the_simulator_refuses_tampered_and_expired_presigned_urls() {
    use ec2ssh::eice::presign;
    let s = setup(&[]);
    let creds = presign::Credentials::new("AKIDTEST", "test-secret", None, None, "test");
    let request = presign::TunnelRequest {
        endpoint_id: ENDPOINT.into(),
        ip: "10.1.0.11".parse().unwrap(),
        port: 22,
        max_duration: 60,
    };
    let base = presign::base_url("ignored", Some(&s.sim.endpoint)).unwrap();
    let url = presign::unsigned_url(&base, &request);
    let sign = |t: SystemTime| presign::presign(&url, &creds, "us-east-1", t).unwrap();

    let (status, _) = upgrade(&sign(SystemTime::now()));
    assert_eq!(status, "HTTP/1.1 101 Switching Protocols");

    // Another address than the one signed.
    let tampered =
        sign(SystemTime::now()).replace("privateIpAddress=10.1.0.11", "privateIpAddress=10.1.0.12");
    let (status, body) = upgrade(&tampered);
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["ErrorCode"], "AccessDeniedException");

    // Signed 61 s ago: past its 60 s.
    let old = sign(SystemTime::now() - Duration::from_secs(61));
    let (status, body) = upgrade(&old);
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    assert!(body.contains("expired"), "{body}");

    // Another account's key.
    let stranger = presign::Credentials::new("AKIDOTHER", "test-secret", None, None, "test");
    let (status, _) =
        upgrade(&presign::presign(&url, &stranger, "us-east-1", SystemTime::now()).unwrap());
    assert_eq!(status, "HTTP/1.1 403 Forbidden");

    // Unsigned.
    let (status, _) = upgrade(&url);
    assert_eq!(status, "HTTP/1.1 403 Forbidden");

    // A duration beyond the service's 3600 s.
    let long = presign::unsigned_url(
        &base,
        &presign::TunnelRequest {
            max_duration: 3601,
            ..request.clone()
        },
    );
    let (status, body) =
        upgrade(&presign::presign(&long, &creds, "us-east-1", SystemTime::now()).unwrap());
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert!(body.contains("InvalidParameter"), "{body}");
}

/// The picker in a real terminal: a ConnectionLost row in a VPC with an endpoint is
/// marked `E`, its detail pane says why, Enter gives a shell on it through the
/// endpoint, `exit` comes back to the picker.
#[test]
fn the_picker_connects_to_a_row_whose_agent_is_not_online() {
    let s = setup(&[]);
    let dir = s.home.path();
    let (run, data, state) = (dir.join("run"), dir.join("data"), dir.join("state"));
    let env = [
        ("AWS_ENDPOINT_URL", s.sim.endpoint.as_str()),
        ("XDG_RUNTIME_DIR", run.to_str().unwrap()),
        ("XDG_DATA_HOME", data.to_str().unwrap()),
        ("XDG_STATE_HOME", state.to_str().unwrap()),
    ];
    let t = crate::common::in_tmux(dir, &env, "--region us-east-1 pick", false);
    t.wait_screen("the fleet", |sc| sc.contains(" shown ·"));
    t.type_text("lost-1");
    t.wait_screen("the row, marked E", |sc| {
        sc.lines()
            .nth(2)
            .is_some_and(|l| l.contains("lost-1") && l.starts_with("  ◐E "))
    });
    t.send(&["C-d"]);
    t.wait_screen("the reason", |sc| {
        sc.contains("Path        EICE eice-0e1c0000000000001")
            && sc.contains("  why       agent ConnectionLost")
    });
    t.send(&["Enter"]);
    t.wait_screen("the remote shell", |sc| sc.contains("ec2-user@"));
    t.type_text("echo through-$((6*7))");
    t.send(&["Enter"]);
    t.wait_screen("the command's output", |sc| sc.contains("through-42"));
    t.type_text("exit");
    t.send(&["Enter"]);
    t.wait_screen("the picker again", |sc| {
        sc.contains("lost-1: ssh exited 0 after")
    });
    t.send(&["Escape"]);
    assert_eq!(t.finished(dir).1, 130);
    assert_eq!(
        s.sim.stats()["websockets_opened"],
        0,
        "no Session Manager session"
    );
}

/// `ec2ssh demo`: an unmanaged demo machine behind the demo VPC's endpoint is
/// connected to for real.
#[test]
fn the_demo_reaches_an_unmanaged_machine_through_its_endpoint() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let t = crate::common::in_tmux(dir, &[], "demo --filter unmanaged-nat", false);
    t.wait_screen("the demo fleet", |sc| {
        sc.lines()
            .nth(2)
            .is_some_and(|l| l.contains("unmanaged-nat") && l.starts_with("  ·E "))
    });
    t.send(&["Enter"]);
    t.wait_screen("a shell", |sc| {
        sc.contains("ec2ssh: connecting to unmanaged-nat")
    });
    t.type_text("echo demo-$((40+2)); exit");
    t.send(&["Enter"]);
    t.wait_screen("the picker again", |sc| {
        sc.contains("unmanaged-nat: ssh exited 0 after")
    });
    t.send(&["Escape"]);
    assert_eq!(t.finished(dir).1, 130);
}

/// `ec2ssh forward` to an unmanaged instance: every local connection gets its own
/// tunnel to the port (here sshd's banner through two at once).
#[test]
fn forward_reaches_a_port_of_an_unmanaged_instance() {
    use std::io::BufRead;
    let s = setup(&[]);
    let mut child = s
        .ec2ssh()
        .args(["forward", "dark-1", "0:22"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{addr:?}");
    let banner = |tcp: &mut TcpStream| {
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 4];
        tcp.read_exact(&mut b).unwrap();
        b
    };
    let mut one = TcpStream::connect(&addr).unwrap();
    let mut two = TcpStream::connect(&addr).unwrap();
    assert_eq!(&banner(&mut one), b"SSH-");
    assert_eq!(&banner(&mut two), b"SSH-");
    drop((one, two));
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "SIGTERM ends it");
}

/// Behind an HTTP proxy the tunnel's websocket goes through it too (one CONNECT to the
/// endpoint per tunnel), as the SDK's calls do.
#[test]
fn the_tunnel_goes_through_the_http_proxy() {
    let s = setup(&[]);
    let proxy = crate::common::Tinyproxy::start(s.home.path(), &[]);
    let connect = format!("CONNECT {}", s.sim.endpoint.trim_start_matches("http://"));
    let out = s
        .ec2ssh()
        .env("http_proxy", proxy.url())
        .args(["ssh", "dark-1", "--", "-o", "BatchMode=yes", "echo proxied"])
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "proxied\n", "{}", text(&out.stderr));
    let requests = proxy.requests();
    assert_eq!(
        requests.iter().filter(|r| **r == connect).count(),
        1,
        "{requests:?}"
    );
}
