//! The simulator's request parsing, as exposed on its socket: a huge NextToken gets
//! the service's error instead of an arithmetic overflow, a malformed JSON body the
//! service's SerializationException, and the simulator keeps serving after both.

use std::time::SystemTime;

use crate::common::Sim;

const HUGE: &str = "18446744073709551615";

#[test]
fn a_huge_next_token_is_an_invalid_token_not_a_crash() {
    let home = tempfile::tempdir().unwrap();
    let sim = Sim::start(home.path(), &[]);
    for (op, body) in [
        (
            "DescribeInstanceInformation",
            serde_json::json!({ "NextToken": HUGE, "MaxResults": 50 }),
        ),
        (
            "DescribeSessions",
            serde_json::json!({ "State": "Active", "NextToken": HUGE, "MaxResults": 200 }),
        ),
        (
            "DescribeSessions",
            serde_json::json!({ "State": "History", "NextToken": "99" }),
        ),
    ] {
        let (status, v) = sim.ssm(op, &body);
        assert_eq!(status, "HTTP/1.1 400 Bad Request", "{op}: {v}");
        assert_eq!(v["__type"], "InvalidNextToken", "{op}: {v}");
    }
    let own = (sim.access_key_id.as_str(), sim.secret_access_key.as_str());
    let (status, body) = sim.signed_call(
        own,
        SystemTime::now(),
        "ec2",
        None,
        &format!("Action=DescribeInstances&Version=2016-11-15&MaxResults=5&NextToken={HUGE}"),
    );
    assert_eq!(status, "HTTP/1.1 400 Bad Request", "{body}");
    assert!(
        body.contains("<Code>InvalidParameterValue</Code>"),
        "{body}"
    );

    // Still serving, and paging still works from a real token.
    let (status, page) = sim.ssm(
        "DescribeInstanceInformation",
        &serde_json::json!({ "MaxResults": 5 }),
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    let next = page["NextToken"].as_str().unwrap();
    let (status, rest) = sim.ssm(
        "DescribeInstanceInformation",
        &serde_json::json!({ "MaxResults": 50, "NextToken": next }),
    );
    assert_eq!(status, "HTTP/1.1 200 OK", "{rest}");
    assert!(!rest["InstanceInformationList"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn a_malformed_json_body_is_a_serialization_exception() {
    let home = tempfile::tempdir().unwrap();
    let sim = Sim::start(home.path(), &[]);
    let own = (sim.access_key_id.as_str(), sim.secret_access_key.as_str());
    for (target, body) in [
        ("AmazonSSM.DescribeInstanceInformation", "{\"MaxResults\":"),
        ("AmazonSSM.StartSession", "[\"i-0a1b2c3d4e5f60001\"]"),
        ("AWSEC2InstanceConnectService.SendSSHPublicKey", "not json"),
        ("AmazonSSM.TerminateSession", "null"),
    ] {
        let service = if target.starts_with("AWSEC2") {
            "ec2-instance-connect"
        } else {
            "ssm"
        };
        let (status, answer) = sim.signed_call(own, SystemTime::now(), service, Some(target), body);
        assert_eq!(
            status, "HTTP/1.1 400 Bad Request",
            "{target} {body}: {answer}"
        );
        assert_eq!(
            answer, r#"{"__type":"SerializationException"}"#,
            "{target} {body}"
        );
    }
    // An empty body is an empty request, as for the service.
    let (status, answer) = sim.signed_call(
        own,
        SystemTime::now(),
        "ssm",
        Some("AmazonSSM.DescribeInstanceInformation"),
        "",
    );
    assert_eq!(status, "HTTP/1.1 200 OK", "{answer}");
}
