//! `ec2ssh list` against the built-in simulator: scale, filters, errors.

use std::collections::BTreeSet;

use crate::common::{ec2ssh, free_port, Sim};

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "ec2ssh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

/// `ec2ssh list --json` against `sim`, parsed.
fn list_json(sim: &Sim, home: &std::path::Path) -> serde_json::Value {
    json(&sim.ec2ssh(home).args(["list", "--json"]).output().unwrap())
}

#[test]
fn lists_a_generated_fleet_of_5000_across_regions() {
    let home = tempfile::tempdir().unwrap();
    let sim = Sim::start(home.path(), &["--generate", "5000"]);
    let doc = list_json(&sim, home.path());
    let instances = doc["instances"].as_array().unwrap();
    assert_eq!(instances.len(), sim.instances);
    let ids: BTreeSet<&str> = instances
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), instances.len(), "no instance listed twice");
    assert!(doc["warnings"].as_array().unwrap().is_empty());
    let regions: BTreeSet<&str> = instances
        .iter()
        .map(|i| i["region"].as_str().unwrap())
        .collect();
    assert!(regions.len() > 1, "regions are all listed: {regions:?}");
    // Online first.
    let first_not_online = instances
        .iter()
        .position(|i| i["ping"] != "Online")
        .unwrap();
    assert!(instances[first_not_online..]
        .iter()
        .all(|i| i["ping"] != "Online"));
    // The listing was cached for the picker.
    let cached = std::fs::read_dir(home.path().join("cache/ec2ssh"))
        .unwrap()
        .count();
    assert_eq!(cached, 1);
}

#[test]
fn demo_fleet_has_every_kind_of_machine() {
    let home = tempfile::tempdir().unwrap();
    let sim = Sim::start(home.path(), &[]);
    let doc = list_json(&sim, home.path());
    let instances = doc["instances"].as_array().unwrap();
    let pings: BTreeSet<&str> = instances
        .iter()
        .map(|i| i["ping"].as_str().unwrap())
        .collect();
    for p in ["Online", "ConnectionLost", "Inactive", "NotManaged"] {
        assert!(pings.contains(p), "demo fleet has a {p} machine");
    }
    let hybrid = instances
        .iter()
        .find(|i| i["id"].as_str().unwrap().starts_with("mi-"))
        .expect("a hybrid node");
    assert!(hybrid["state"].is_null());
    assert!(hybrid["agent_version"].is_string());
    assert!(instances.iter().any(|i| i["platform_type"] == "Windows"));
    assert!(instances.iter().any(|i| i["state"] == "stopped"));

    // --online -q: exactly the Online ids.
    let out = sim
        .ec2ssh(home.path())
        .args(["list", "--online", "-q"])
        .output()
        .unwrap();
    let online: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let expected: BTreeSet<String> = instances
        .iter()
        .filter(|i| i["ping"] == "Online")
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(online, expected);

    // The table never lets control characters through, even from hostile tags.
    let out = sim
        .ec2ssh(home.path())
        .args(["list", "--color", "never"])
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        !table.chars().any(|c| c.is_control() && c != '\n'),
        "{table}"
    );
    assert_eq!(table.lines().count(), instances.len() + 1);
}

#[test]
fn access_denied_names_the_action_and_the_fix() {
    let home = tempfile::tempdir().unwrap();
    let sim = Sim::start(
        home.path(),
        &[
            "--deny",
            "ec2:DescribeInstances,ssm:DescribeInstanceInformation",
        ],
    );
    let out = sim.ec2ssh(home.path()).args(["list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "error: ec2:DescribeInstances was denied in ap-northeast-1, eu-west-1, us-east-1 (UnauthorizedOperation)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("error: ssm:DescribeInstanceInformation was denied in ap-northeast-1, eu-west-1, us-east-1 (AccessDeniedException)"), "{stderr}");
    assert!(
        stderr.contains("  fix: allow ssm:DescribeInstanceInformation for your IAM identity"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn ssm_denied_alone_is_a_warning_and_ping_is_unknown() {
    let home = tempfile::tempdir().unwrap();
    let sim = Sim::start(home.path(), &["--deny", "ssm:DescribeInstanceInformation"]);
    let doc = list_json(&sim, home.path());
    let instances = doc["instances"].as_array().unwrap();
    assert!(!instances.is_empty());
    assert!(instances.iter().all(|i| i["ping"] == "Unknown"));
    assert!(
        instances
            .iter()
            .all(|i| i["id"].as_str().unwrap().starts_with("i-")),
        "hybrids come only from SSM"
    );
    let w = &doc["warnings"][0];
    assert_eq!(w["kind"], "access_denied");
    assert_eq!(w["code"], "AccessDeniedException");
}

#[test]
fn unreachable_endpoint_says_so() {
    let home = tempfile::tempdir().unwrap();
    let out = ec2ssh(home.path())
        .args(["list", "--region", "eu-west-1"])
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: could not reach AWS for ec2:DescribeInstances, ssm:DescribeInstanceInformation in eu-west-1: connection refused by 127.0.0.1:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("  fix: check the network or proxy"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_and_missing_region() {
    let home = tempfile::tempdir().unwrap();
    let out = ec2ssh(home.path())
        .args(["list", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = ec2ssh(home.path()).args(["list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: no AWS region is set") && stderr.contains("fix: pass --region"),
        "{stderr}"
    );
    std::fs::create_dir_all(home.path().join("config/ec2ssh")).unwrap();
    std::fs::write(
        home.path().join("config/ec2ssh/config.toml"),
        "regoins = []",
    )
    .unwrap();
    let out = ec2ssh(home.path()).args(["list"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is not valid") && stderr.contains("regoins"),
        "{stderr}"
    );
}

#[test]
fn per_service_endpoint_overrides_are_honoured() {
    let home = tempfile::tempdir().unwrap();
    let ec2_only = Sim::start(home.path(), &[]);
    let denying = Sim::start(home.path(), &["--deny", "ssm:DescribeInstanceInformation"]);
    // EC2 from one simulator, SSM from another that denies: the override took effect
    // exactly when the SSM call reports the denial.
    let out = ec2ssh(home.path())
        .args(["list", "--json", "--region", "us-east-1"])
        .env("AWS_ENDPOINT_URL_EC2", &ec2_only.endpoint)
        .env("AWS_ENDPOINT_URL_SSM", &denying.endpoint)
        .output()
        .unwrap();
    let doc = json(&out);
    assert!(!doc["instances"].as_array().unwrap().is_empty());
    assert_eq!(
        doc["warnings"][0]["action"],
        "ssm:DescribeInstanceInformation"
    );
    assert_eq!(doc["warnings"][0]["kind"], "access_denied");
}

/// `ec2ssh list` with the retry configuration users get (no `AWS_MAX_ATTEMPTS`).
fn list_with_default_retries(sim: &Sim, home: &std::path::Path) -> std::process::Output {
    sim.ec2ssh(home)
        .env_remove("AWS_MAX_ATTEMPTS")
        .args(["list", "--json"])
        .output()
        .unwrap()
}

#[test]
fn a_throttled_listing_retries_until_every_instance_is_there() {
    let home = tempfile::tempdir().unwrap();
    // One call in five answered RequestLimitExceeded / ThrottlingException.
    let sim = Sim::start(home.path(), &["--generate", "3000", "--throttle", "0.2"]);
    let doc = json(&list_with_default_retries(&sim, home.path()));
    let instances = doc["instances"].as_array().unwrap();
    let ids: BTreeSet<&str> = instances
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        (ids.len(), instances.len()),
        (sim.instances, sim.instances),
        "every instance, once"
    );
    assert_eq!(doc["warnings"], serde_json::json!([]));
    assert!(
        instances.iter().all(|i| i["ping"] != "Unknown"),
        "every SSM lookup got through"
    );
}

#[test]
fn an_always_throttled_listing_fails_with_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let sim = Sim::start(home.path(), &["--throttle", "1"]);
    let mut child = sim
        .ec2ssh(home.path())
        .env_remove("AWS_MAX_ATTEMPTS")
        .arg("list")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Not a hang: the SDK gives up after its attempts (seconds, not minutes).
    let status = crate::common::wait_for(
        "ec2ssh list to give up",
        std::time::Duration::from_secs(90),
        || child.try_wait().unwrap(),
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: ec2:DescribeInstances was throttled in ")
            && stderr.contains("(RequestLimitExceeded)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: ssm:DescribeInstanceInformation was throttled in ")
            && stderr.contains("(ThrottlingException)"),
        "{stderr}"
    );
    assert!(stderr.contains("  fix: wait a moment"), "{stderr}");
    assert!(out.stdout.is_empty());
}
