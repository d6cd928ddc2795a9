//! The simulator authenticates like AWS: `ec2ssh sim` makes a fresh key pair per run,
//! prints it in its summary, and refuses every other caller with each protocol's
//! real error, whether the caller is ec2ssh (the Rust SDK), botocore, or raw HTTP.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use crate::common::{ec2ssh, hermetic, repo, require, Sim};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `ec2ssh ARGS` against `sim` with `key` as its credentials.
fn as_caller(sim: &Sim, home: &std::path::Path, key: (&str, &str), args: &[&str]) -> Output {
    let mut c = ec2ssh(home);
    c.env("AWS_ENDPOINT_URL", &sim.endpoint)
        .env("AWS_ACCESS_KEY_ID", key.0)
        .env("AWS_SECRET_ACCESS_KEY", key.1);
    if !args.contains(&"--region") {
        c.arg("--region").arg(sim.regions.join(","));
    }
    c.args(args).stdin(Stdio::null()).output().unwrap()
}

fn active_sessions(sim: &Sim) -> usize {
    let (status, v) = sim.ssm(
        "DescribeSessions",
        &serde_json::json!({ "State": "Active" }),
    );
    assert!(status.starts_with("HTTP/1.1 200"), "{status} {v}");
    v["Sessions"].as_array().unwrap().len()
}

#[test]
fn each_run_makes_its_own_key_and_prints_it() {
    let home = tempfile::tempdir().unwrap();
    let a = Sim::start_random(home.path(), &[]);
    let b = Sim::start_random(home.path(), &[]);
    assert!(a.access_key_id.starts_with("AKIA") && a.access_key_id.len() == 20);
    assert_eq!(a.secret_access_key.len(), 40);
    assert_ne!(a.access_key_id, b.access_key_id);
    assert_ne!(a.secret_access_key, b.secret_access_key);
    // The hermetic environment's key is not one of them.
    assert_ne!(a.access_key_id, "AKIDTEST");
}

/// Another local process, with other credentials or a guessed secret, gets nothing:
/// no listing, no key pushed, no session. The run's own key works.
#[test]
fn another_process_with_other_credentials_can_neither_list_nor_start_a_session() {
    let home = tempfile::tempdir().unwrap();
    let sim = Sim::start_random(home.path(), &[]);
    let id = "i-0a1b2c3d4e5f60001";
    let own = (sim.access_key_id.as_str(), sim.secret_access_key.as_str());
    let guessed = (sim.access_key_id.as_str(), "not-the-secret");
    let other = ("AKIDTEST", "test-secret");

    let listed = as_caller(&sim, home.path(), own, &["--no-cache", "list", "-q"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(
        text(&listed.stdout).contains(id),
        "{}",
        text(&listed.stdout)
    );

    for (key, ec2_code, ssm_code) in [
        (other, "AuthFailure", "UnrecognizedClientException"),
        (
            guessed,
            "SignatureDoesNotMatch",
            "InvalidSignatureException",
        ),
    ] {
        let out = as_caller(&sim, home.path(), key, &["--no-cache", "list", "-q"]);
        let err = text(&out.stderr);
        assert!(
            !out.status.success(),
            "{key:?} listed: {}",
            text(&out.stdout)
        );
        assert!(text(&out.stdout).is_empty());
        assert!(err.contains(&format!("({ec2_code})")), "{key:?}: {err}");
        assert!(err.contains(&format!("({ssm_code})")), "{key:?}: {err}");
        assert!(err.contains("AWS rejected the credentials"), "{err}");

        // With a key push first (refused there), and without (refused at StartSession).
        for (args, action) in [
            (
                vec![
                    "--region",
                    "us-east-1",
                    "proxy",
                    id,
                    "22",
                    "--push-key",
                    "ec2-user",
                ],
                "ec2-instance-connect:SendSSHPublicKey",
            ),
            (
                vec!["--region", "us-east-1", "proxy", id, "22"],
                "ssm:StartSession",
            ),
        ] {
            let out = as_caller(&sim, home.path(), key, &args);
            let err = text(&out.stderr);
            assert!(!out.status.success());
            assert!(err.contains(action), "{key:?}: {err}");
            assert!(err.contains(&format!("({ssm_code})")), "{key:?}: {err}");
            assert_eq!(active_sessions(&sim), 0, "{key:?} started a session");
        }
    }
}

/// The refusals, byte for byte as each protocol sends them, for a raw caller.
#[test]
fn refusals_carry_each_protocols_code_status_and_message() {
    let home = tempfile::tempdir().unwrap();
    let sim = Sim::start_random(home.path(), &[]);
    let now = SystemTime::now();
    let own = (sim.access_key_id.as_str(), sim.secret_access_key.as_str());
    let ssm = Some("AmazonSSM.DescribeInstanceInformation");
    let ec2 = "Action=DescribeInstances&Version=2016-11-15";
    let sts = "Action=GetCallerIdentity&Version=2011-06-15";

    let (status, body) = sim.signed_call(("AKIAOTHER", "x"), now, "ssm", ssm, "{}");
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert_eq!(
        body,
        r#"{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}"#
    );
    let (status, body) = sim.signed_call((own.0, "x"), now, "ssm", ssm, "{}");
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert!(
        body.contains(r#""__type":"InvalidSignatureException""#),
        "{body}"
    );
    assert!(body.contains("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."));

    let (status, body) = sim.signed_call(("AKIAOTHER", "x"), now, "ec2", None, ec2);
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    assert!(body.contains("<Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided access credentials</Message></Error></Errors><RequestID>"), "{body}");
    let (status, body) = sim.signed_call((own.0, "x"), now, "ec2", None, ec2);
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    assert!(
        body.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{body}"
    );

    let (status, body) = sim.signed_call(("AKIAOTHER", "x"), now, "sts", None, sts);
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    assert!(body.contains("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code>"), "{body}");

    // A clock 20 minutes slow, with the right key.
    let slow = now - Duration::from_secs(20 * 60);
    let (status, body) = sim.signed_call(own, slow, "ssm", ssm, "{}");
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert!(
        body.contains(r#""__type":"InvalidSignatureException","message":"Signature expired: "#),
        "{body}"
    );
    assert!(body.contains(" - 15 min.)"), "{body}");
    let (status, body) = sim.signed_call(own, slow, "ec2", None, ec2);
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert!(
        body.contains("<Code>RequestExpired</Code><Message>Request has expired.</Message>"),
        "{body}"
    );
    // 20 minutes fast.
    let fast = now + Duration::from_secs(20 * 60);
    let (status, body) = sim.signed_call(own, fast, "ssm", ssm, "{}");
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert!(body.contains("Signature not yet current: "), "{body}");

    // StartSession itself, with someone else's key: no session.
    let start = r#"{"Target":"i-0a1b2c3d4e5f60001","DocumentName":"AWS-StartSSHSession","Parameters":{"portNumber":["22"]}}"#;
    let (status, _) = sim.signed_call(
        ("AKIAOTHER", "x"),
        now,
        "ssm",
        Some("AmazonSSM.StartSession"),
        start,
    );
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert_eq!(active_sessions(&sim), 0);
    // And with the run's key, one.
    let (status, body) = sim.signed_call(own, now, "ssm", Some("AmazonSSM.StartSession"), start);
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert_eq!(active_sessions(&sim), 1);
}

/// A second, independent SigV4 implementation (botocore's) is accepted with the
/// run's key and refused with the service's error codes otherwise.
#[test]
fn botocore_signs_the_way_the_simulator_verifies() {
    let python = repo().join(".venv/bin/python");
    require(&python, "the moto venv's python");
    let home = tempfile::tempdir().unwrap();
    let sim = Sim::start_random(home.path(), &[]);
    let code = r#"
import os, boto3, botocore.exceptions as x
kw = dict(endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1")
out = []
for name, call in [
    ("ssm", lambda c: c.describe_instance_information()),
    # One instance: the demo fleet's hostile tags are numeric character references
    # that botocore's XML parser refuses.
    ("ec2", lambda c: c.describe_instances(InstanceIds=["i-0a1b2c3d4e5f60001"])),
    ("sts", lambda c: c.get_caller_identity()),
]:
    try:
        call(boto3.client(name, **kw))
        out.append(name + ":ok")
    except x.ClientError as e:
        out.append(name + ":" + e.response["Error"]["Code"])
print(" ".join(out))
"#;
    let run = |key: (&str, &str)| {
        let mut c = Command::new(&python);
        hermetic(&mut c, home.path());
        let out = c
            .arg("-c")
            .arg(code)
            .env("ENDPOINT", &sim.endpoint)
            .env("AWS_ACCESS_KEY_ID", key.0)
            .env("AWS_SECRET_ACCESS_KEY", key.1)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    assert_eq!(
        run((&sim.access_key_id, &sim.secret_access_key)),
        "ssm:ok ec2:ok sts:ok"
    );
    assert_eq!(
        run(("AKIDTEST", "test-secret")),
        "ssm:UnrecognizedClientException ec2:AuthFailure sts:InvalidClientTokenId"
    );
    assert_eq!(
        run((&sim.access_key_id, "guessed")),
        "ssm:InvalidSignatureException ec2:SignatureDoesNotMatch sts:SignatureDoesNotMatch"
    );
}
