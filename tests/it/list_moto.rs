//! `ec2ssh list` against a real moto server: ~1,200 EC2 instances over several
//! pages, while SSM (which moto does not implement) fails.

use std::collections::BTreeSet;

use crate::common::{ec2ssh, Moto};

/// Creates `n` instances, one reservation each (moto pages by reservation), half
/// named, one terminated; prints the ids of the live ones.
const POPULATE: &str = r#"
import os, boto3
ec2 = boto3.client("ec2", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1")
ids = []
for k in range(N):
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": f"moto-{k:04d}"}, {"Key": "Team", "Value": "<b>&\u202e"}]}] if k % 2 == 0 else []
    r = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.micro", TagSpecifications=tags)
    ids.append(r["Instances"][0]["InstanceId"])
ec2.terminate_instances(InstanceIds=[ids[1]])
print("\n".join(i for k, i in enumerate(ids) if k != 1))
"#;

#[test]
fn lists_every_page_and_reports_the_ssm_failure() {
    let moto = Moto::start();
    let n = 1200;
    let expected: BTreeSet<String> = moto
        .python(&format!("N = {n}\n{POPULATE}"))
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(expected.len(), n - 1);

    let home = tempfile::tempdir().unwrap();
    let out = ec2ssh(home.path())
        .args(["list", "--json", "--region", "us-east-1"])
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "list failed: {stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    let instances = doc["instances"].as_array().unwrap();
    let got: BTreeSet<String> = instances
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        got, expected,
        "every live instance of every page, once, none terminated"
    );
    assert_eq!(instances.len(), expected.len(), "no duplicates");

    // SSM failed, so ping status is unknown (not "not managed"), and we say why.
    assert!(instances.iter().all(|i| i["ping"] == "Unknown"));
    let w = &doc["warnings"][0];
    assert_eq!(w["action"], "ssm:DescribeInstanceInformation");
    assert_eq!(w["region"], "us-east-1");
    assert!(w["fix"].as_str().unwrap().contains("AWS_ENDPOINT_URL"));

    // Named ones come first, sorted by name; tags survive raw in JSON.
    assert_eq!(instances[0]["name"], "moto-0000");
    assert_eq!(instances[0]["tags"]["Team"], "<b>&\u{202e}");

    // The table: aligned, inert, the warning on stderr.
    let out = ec2ssh(home.path())
        .args(["list", "--region", "us-east-1", "--filter", "moto-0042"])
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    let first = table.lines().nth(1).unwrap();
    assert!(first.starts_with("? moto-0042 "), "{table}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning: the endpoint for us-east-1 does not implement ssm:DescribeInstanceInformation"), "{stderr}");

    // -q: ids only.
    let out = ec2ssh(home.path())
        .args(["list", "-q", "--region", "us-east-1"])
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .output()
        .unwrap();
    let ids: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ids, expected);
}
