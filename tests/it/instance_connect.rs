//! The simulator's Instance Connect takes what the service takes: AWS's documented
//! usage, `aws ec2-instance-connect send-ssh-public-key --ssh-public-key file://key.pub`,
//! sends the file as it is, comment and trailing newline included (botocore here,
//! which the AWS CLI is built on), and the key then logs in.

use std::process::Command;

use crate::common::{repo, require};
use crate::rig::{fleet_file, openssh, proxy_option, Rig, ONLINE, USER};

#[test]
fn a_key_file_sent_as_the_cli_sends_it_logs_in() {
    let rig = Rig::start(fleet_file, &[]);
    let (home, sim) = (&rig.home, &rig.sim);
    let key = home.path().join("id_cli");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "me@laptop", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    assert!(public.ends_with(" me@laptop\n"), "{public:?}");

    let python = repo().join(".venv/bin/python");
    require(&python, "the test venv's python (boto3)");
    let out = Command::new(python)
        .arg("-c")
        .arg(
            r#"
import os, sys, boto3
c = boto3.client("ec2-instance-connect", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1")
# What `--ssh-public-key file://PATH` does: the file's text, unchanged.
key = open(sys.argv[1]).read()
r = c.send_ssh_public_key(InstanceId=sys.argv[2], InstanceOSUser=sys.argv[3], SSHPublicKey=key)
print(r["Success"])
"#,
        )
        .arg(key.with_extension("pub"))
        .args([ONLINE, USER])
        .env("ENDPOINT", &sim.endpoint)
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "True");

    // The pushed key opens a session: ssh through ec2ssh's proxy with it.
    let login = openssh("ssh", home.path(), &key, Some(sim))
        .arg("-o")
        .arg(proxy_option(""))
        .arg(format!("{USER}@{ONLINE}"))
        .arg("echo logged-in")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&login.stdout).trim(),
        "logged-in",
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
}
