//! `ec2ssh doctor` and `ec2ssh iam-policy` against the simulator: a healthy instance
//! passes every check (exit 0); each broken set-up (no instance profile, old agent, a
//! private subnet with no way out, endpoints whose security group shuts out 443, DNS
//! hostnames off, a lost agent, a denied API) fails with its own fix line (exit 1).

use std::path::Path;
use std::process::Output;

use crate::common::Sim;

const FLEET: &str = include_str!("doctor-fleet.toml");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sim(home: &Path, deny: &[&str]) -> Sim {
    let path = home.join("fleet.toml");
    std::fs::write(&path, FLEET).unwrap();
    let mut args = vec!["--fleet", path.to_str().unwrap()];
    let deny = deny.join(",");
    if !deny.is_empty() {
        args.extend(["--deny", deny.as_str()]);
    }
    Sim::start(home, &args)
}

fn doctor(sim: &Sim, home: &Path, args: &[&str]) -> Output {
    sim.ec2ssh(home).arg("doctor").args(args).output().unwrap()
}

/// The line of check `name` and the line after it (its fix, if it failed).
fn check<'a>(out: &'a str, name: &str) -> (&'a str, &'a str) {
    let lines: Vec<&str> = out.lines().collect();
    let i = lines
        .iter()
        .position(|l| {
            let mut rest = l.trim_start().chars();
            rest.next();
            rest.as_str().trim_start().starts_with(name)
        })
        .unwrap_or_else(|| panic!("no check {name:?} in:\n{out}"));
    (lines[i], lines.get(i + 1).copied().unwrap_or(""))
}

fn assert_fails(out: &Output, name: &str, fix: &str) {
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let (line, next) = check(&stdout, name);
    assert!(
        line.trim_start().starts_with('✗'),
        "{name} should fail:\n{stdout}"
    );
    assert!(
        next.trim_start().starts_with("fix: ") && next.contains(fix),
        "{name}: expected a fix line with {fix:?}, got {next:?}:\n{stdout}"
    );
}

#[test]
fn doctor_passes_a_healthy_instance_and_explains_each_broken_one() {
    let home = tempfile::tempdir().unwrap();
    let sim = sim(home.path(), &[]);

    let out = doctor(&sim, home.path(), &["healthy"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(!stdout.contains('✗'), "{stdout}");
    for name in [
        "credentials",
        "OpenSSH client",
        "clock",
        "ec2:DescribeInstances",
        "EC2 state",
        "instance profile",
        "agent ping",
        "agent version",
        "network path",
        "VPC DNS",
    ] {
        assert!(
            check(&stdout, name).0.trim_start().starts_with('✓'),
            "{name}:\n{stdout}"
        );
    }
    assert!(stdout.contains("arn:aws:iam::123456789012:user/demo"));
    assert!(stdout.contains("igw-0a"));

    let out = doctor(&sim, home.path(), &["no-profile"]);
    assert_fails(&out, "instance profile", "associate-iam-instance-profile");

    let out = doctor(&sim, home.path(), &["old-agent"]);
    assert_fails(&out, "agent version", "AWS-UpdateSSMAgent");
    assert!(text(&out.stdout).contains("2.3.612.0 is older than 2.3.672.0"));

    let out = doctor(&sim, home.path(), &["no-way-out"]);
    assert_fails(&out, "network path", "com.amazonaws.us-east-1.ssmmessages");
    assert_fails(&out, "network path", "nat-");
    assert_fails(&out, "agent ping", "amazon-ssm-agent");
    assert!(text(&out.stdout).contains("ConnectionLost, last ping 2 h ago"));

    let out = doctor(&sim, home.path(), &["endpoint-sg"]);
    assert_fails(
        &out,
        "endpoint security groups",
        "allow inbound TCP 443 from sg-0app (the instance's security group) in sg-0vpce22",
    );
    assert!(check(&text(&out.stdout), "network path").0.contains('✓'));

    let out = doctor(&sim, home.path(), &["no-dns-hostnames"]);
    assert_fails(&out, "VPC DNS", "--enable-dns-hostnames");
    assert!(check(&text(&out.stdout), "endpoint security groups")
        .0
        .contains('✓'));

    let out = doctor(&sim, home.path(), &["--json", "endpoint-sg"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["ok"], false);
    let checks = doc["checks"].as_array().unwrap();
    let sg = checks
        .iter()
        .find(|c| c["name"] == "endpoint security groups")
        .unwrap();
    assert_eq!(sg["group"], "target");
    assert_eq!(sg["status"], "fail");
    assert!(sg["fix"].as_str().unwrap().contains("sg-0vpce22"));
    assert!(checks
        .iter()
        .any(|c| c["status"] == "unknown" && c["name"] == "ssm:StartSession"));

    // No target: the local and permission checks only.
    let out = doctor(&sim, home.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], true);
    assert!(doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["group"] != "target"));
}

#[test]
fn doctor_names_the_denied_action() {
    let home = tempfile::tempdir().unwrap();
    let sim = sim(
        home.path(),
        &["ec2:DescribeInstances", "ec2:DescribeVpcEndpoints"],
    );
    let out = doctor(&sim, home.path(), &["i-0d0c0000000000001"]);
    let stdout = text(&out.stdout);
    assert_fails(
        &out,
        "ec2:DescribeInstances",
        "allow ec2:DescribeInstances for arn:aws:iam::123456789012:user/demo",
    );
    let (line, _) = check(&stdout, "ec2:DescribeInstances");
    assert!(
        line.contains("ec2:DescribeInstances was denied in us-east-1 (UnauthorizedOperation)"),
        "{line}"
    );
    // What EC2 would have told us is not checked (?) rather than failed.
    let (line, next) = check(&stdout, "EC2 state");
    assert!(line.trim_start().starts_with('?'), "{stdout}");
    assert!(
        next.contains("check: allow ec2:DescribeInstances"),
        "{next}"
    );
    assert!(check(&stdout, "agent ping").0.contains('✓'), "{stdout}");
}

#[test]
fn iam_policy_is_json_naming_every_action() {
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = crate::common::ec2ssh(home.path())
            .arg("iam-policy")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let p = run(&[]);
    assert_eq!(p["Version"], "2012-10-17");
    let s = p.to_string();
    for action in [
        "ec2:DescribeInstances",
        "ssm:DescribeInstanceInformation",
        "ssm:StartSession",
        "ssm:TerminateSession",
        "ssm:ResumeSession",
        "ec2-instance-connect:SendSSHPublicKey",
        "arn:aws:ssm:*::document/AWS-StartSSHSession",
        "ssm:SessionDocumentAccessCheck",
    ] {
        assert!(s.contains(action), "{action} in {s}");
    }
    assert!(!s.contains("SSM-SessionManagerRunShell"));

    let p = run(&["--forward", "--tag", "Team=web", "--ssh-only"]).to_string();
    assert!(p.contains("AWS-StartPortForwardingSessionToRemoteHost"));
    assert!(p.contains("ssm:resourceTag/Team"));
    assert!(p.contains("\"Deny\""));

    let p = run(&["--shell"]).to_string();
    assert!(p.contains("SSM-SessionManagerRunShell") && !p.contains("\"Deny\""));

    let out = crate::common::ec2ssh(home.path())
        .args(["iam-policy", "--shell", "--ssh-only"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "conflicting flags are a usage error"
    );
}

/// The picker in tmux, filtered to `name`, once its row shows.
fn picker_on(sim: &Sim, home: &Path, name: &str) -> crate::common::Tmux {
    let env = [("AWS_ENDPOINT_URL", sim.endpoint.as_str())];
    let t = crate::common::in_tmux(
        home,
        &env,
        &format!("--region us-east-1 pick --ping-refresh off --filter {name}"),
        false,
    );
    t.wait_screen("the row", |sc| {
        sc.lines().nth(2).is_some_and(|l| l.contains(name))
    });
    t
}

/// In the picker: Enter on an instance no path reaches says why and offers F2;
/// F2 shows doctor's checklist for it in an overlay; any key closes it.
#[test]
fn the_picker_diagnoses_the_selected_row() {
    let home = tempfile::tempdir().unwrap();
    let sim = sim(home.path(), &[]);
    let t = picker_on(&sim, home.path(), "no-way-out");
    t.send(&["Enter"]);
    t.wait_screen("the refusal", |sc| {
        sc.contains("no-way-out: no path: agent ConnectionLost; no EICE in vpc-0pub")
            && sc.contains("F2 diagnoses")
    });
    t.send(&["F2"]);
    let screen = t.wait_screen("the checklist", |sc| {
        sc.contains("ec2ssh doctor no-way-out") && sc.contains("fix:")
    });
    assert!(screen.contains("✗"), "{screen}");
    assert!(screen.contains("network path"), "{screen}");
    assert!(
        screen.contains("ok (`ec2ssh doctor` lists every check)"),
        "{screen}"
    );
    t.wait_screen("the count", |sc| sc.contains("problems found"));
    t.send(&["x"]);
    t.wait_screen("the overlay closed", |sc| {
        !sc.contains("ec2ssh doctor no-way-out")
    });
    t.send(&["Escape"]);
    assert_eq!(t.finished(home.path()).1, 130);
}

/// What the picker's own sessions proved counts: after a shell on `healthy` opened and
/// closed, F2 no longer calls ssm:StartSession "not tried"; the one action this run
/// did not use (pushing a key) still is.
#[test]
fn the_picker_diagnosis_counts_the_session_that_just_ran() {
    let home = tempfile::tempdir().unwrap();
    let sim = sim(home.path(), &[]);
    let t = picker_on(&sim, home.path(), "healthy");
    t.send(&["C-o"]);
    // The simulated shell's prompt (`sim::shell::PROMPT`).
    t.wait_screen("the remote prompt", |sc| sc.contains("sim$"));
    t.type_text("exit");
    t.send(&["Enter"]);
    t.wait_screen("the picker again", |sc| {
        sc.contains("healthy: shell closed after")
    });
    t.send(&["F2"]);
    let screen = t.wait_screen("the checklist", |sc| {
        sc.contains("ec2ssh doctor healthy")
            && sc.contains("1 not checked")
            && sc.contains("ec2-instance-connect:SendSSHPublicKey")
            && sc.contains("not tried: it would push a key")
    });
    assert!(!screen.contains("ssm:StartSession"), "{screen}");
    t.send(&["x"]);
    t.wait_screen("the overlay closed", |sc| !sc.contains("ec2ssh doctor"));
    t.send(&["Escape"]);
    assert_eq!(t.finished(home.path()).1, 130);
}
