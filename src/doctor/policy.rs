//! `ec2ssh iam-policy`: the least-privilege IAM policy for ec2ssh's users, built as
//! JSON values (never by concatenating strings). Listing; StartSession on instances
//! (optionally only those with given tags) and on the session documents ec2ssh uses,
//! with the session-document access check so a missing `--document-name` cannot fall
//! back to a shell; ending and resuming one's own sessions; and key pushes.

use serde_json::{json, Map, Value};

use crate::cli::IamPolicyArgs;

pub const SSH_DOCUMENT: &str = "arn:aws:ssm:*::document/AWS-StartSSHSession";
pub const FORWARD_DOCUMENTS: [&str; 2] = [
    "arn:aws:ssm:*::document/AWS-StartPortForwardingSession",
    "arn:aws:ssm:*::document/AWS-StartPortForwardingSessionToRemoteHost",
];
/// The account's default session document: an interactive shell.
pub const SHELL_DOCUMENT: &str = "arn:aws:ssm:*:*:document/SSM-SessionManagerRunShell";
pub const INSTANCES: [&str; 2] = [
    "arn:aws:ec2:*:*:instance/*",
    "arn:aws:ssm:*:*:managed-instance/*",
];

/// What OpenTunnel acts on (the service prefix of its ARN is `ec2`).
pub const EICE_ENDPOINTS: &str = "arn:aws:ec2:*:*:instance-connect-endpoint/*";

/// The policy document for these options.
pub fn policy(args: &IamPolicyArgs) -> Value {
    // Every Allow of StartSession carries it, so `aws ssm start-session` without a
    // document cannot fall back to SSM-SessionManagerRunShell unless it is granted.
    let access_check = json!({ "BoolIfExists": { "ssm:SessionDocumentAccessCheck": "true" } });
    let tags = |prefix: &str| -> Map<String, Value> {
        args.tag
            .iter()
            .map(|(k, v)| (format!("{prefix}{k}"), Value::String(v.clone())))
            .collect()
    };
    let with_tags = |mut cond: Value, prefix: &str| {
        if !args.tag.is_empty() {
            cond["StringEquals"] = Value::Object(tags(prefix));
        }
        cond
    };

    let mut documents = vec![SSH_DOCUMENT];
    if args.forward {
        documents.extend(FORWARD_DOCUMENTS);
    }
    if args.shell {
        documents.push(SHELL_DOCUMENT);
    }

    let mut statements = vec![
        json!({
            "Sid": "ListInstances",
            "Effect": "Allow",
            "Action": [
                "ec2:DescribeInstances",
                "ssm:DescribeInstanceInformation",
                "ssm:DescribeSessions"
            ],
            "Resource": "*"
        }),
        json!({
            "Sid": "StartSessionOnInstances",
            "Effect": "Allow",
            "Action": "ssm:StartSession",
            "Resource": INSTANCES,
            "Condition": with_tags(access_check.clone(), "ssm:resourceTag/")
        }),
        json!({
            "Sid": "StartSessionWithDocuments",
            "Effect": "Allow",
            "Action": "ssm:StartSession",
            "Resource": documents,
            "Condition": access_check
        }),
        json!({
            "Sid": "OwnSessions",
            "Effect": "Allow",
            "Action": ["ssm:TerminateSession", "ssm:ResumeSession"],
            "Resource": "arn:aws:ssm:*:*:session/${aws:userid}-*"
        }),
    ];
    let mut push = json!({
        "Sid": "PushOneTimeKeys",
        "Effect": "Allow",
        "Action": "ec2-instance-connect:SendSSHPublicKey",
        "Resource": "arn:aws:ec2:*:*:instance/*"
    });
    if !args.tag.is_empty() {
        push["Condition"] = json!({ "StringEquals": Value::Object(tags("aws:ResourceTag/")) });
    }
    statements.push(push);
    if args.eice {
        statements.push(json!({
            "Sid": "ListInstanceConnectEndpoints",
            "Effect": "Allow",
            "Action": "ec2:DescribeInstanceConnectEndpoints",
            "Resource": "*"
        }));
        let mut tunnel = json!({
            "Sid": "OpenTunnelsToSsh",
            "Effect": "Allow",
            "Action": "ec2-instance-connect:OpenTunnel",
            "Resource": EICE_ENDPOINTS,
            "Condition": {
                "NumericEquals": { "ec2-instance-connect:remotePort": "22" },
                "NumericLessThanEquals": { "ec2-instance-connect:maxTunnelDuration": "3600" }
            }
        });
        if !args.tag.is_empty() {
            // The endpoint's tags: OpenTunnel acts on the endpoint, not the instance.
            tunnel["Condition"]["StringEquals"] = Value::Object(tags("aws:ResourceTag/"));
        }
        statements.push(tunnel);
    }
    if args.ssh_only {
        statements.push(json!({
            "Sid": "DenyPlainShellSessions",
            "Effect": "Deny",
            "Action": "ssm:StartSession",
            "Resource": SHELL_DOCUMENT
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The policy, pretty-printed.
pub fn render(args: &IamPolicyArgs) -> String {
    serde_json::to_string_pretty(&policy(args)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(shell: bool, forward: bool, tag: &[(&str, &str)], ssh_only: bool) -> IamPolicyArgs {
        IamPolicyArgs {
            eice: false,
            shell,
            forward,
            tag: tag
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ssh_only,
        }
    }

    fn statement<'a>(p: &'a Value, sid: &str) -> &'a Value {
        p["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("no {sid}"))
    }

    #[test]
    fn eice_adds_open_tunnel_to_port_22_for_at_most_an_hour_and_the_endpoint_listing() {
        let plain = policy(&args(false, false, &[], false)).to_string();
        assert!(!plain.contains("OpenTunnel") && !plain.contains("InstanceConnectEndpoints"));
        let mut a = args(false, false, &[], false);
        a.eice = true;
        let p = policy(&a);
        let t = statement(&p, "OpenTunnelsToSsh");
        assert_eq!(t["Action"], "ec2-instance-connect:OpenTunnel");
        assert_eq!(t["Resource"], EICE_ENDPOINTS);
        assert_eq!(
            t["Condition"]["NumericEquals"]["ec2-instance-connect:remotePort"],
            "22"
        );
        assert_eq!(
            t["Condition"]["NumericLessThanEquals"]["ec2-instance-connect:maxTunnelDuration"],
            "3600"
        );
        assert_eq!(
            statement(&p, "ListInstanceConnectEndpoints")["Action"],
            "ec2:DescribeInstanceConnectEndpoints"
        );
    }

    #[test]
    fn default_policy_allows_ssh_sessions_only_with_the_access_check() {
        let p = policy(&args(false, false, &[], false));
        let text = p.to_string();
        for action in [
            "ec2:DescribeInstances",
            "ssm:DescribeInstanceInformation",
            "ssm:StartSession",
            "ssm:TerminateSession",
            "ssm:ResumeSession",
            "ec2-instance-connect:SendSSHPublicKey",
        ] {
            assert!(text.contains(action), "{action}");
        }
        let docs = statement(&p, "StartSessionWithDocuments");
        assert_eq!(docs["Resource"], json!([SSH_DOCUMENT]));
        assert_eq!(
            docs["Condition"]["BoolIfExists"]["ssm:SessionDocumentAccessCheck"],
            "true"
        );
        assert!(!text.contains("SSM-SessionManagerRunShell"));
        assert!(!text.contains("Deny"));
        assert_eq!(
            statement(&p, "OwnSessions")["Resource"],
            "arn:aws:ssm:*:*:session/${aws:userid}-*"
        );
    }

    #[test]
    fn variants_add_documents_tags_and_the_deny() {
        let p = policy(&args(true, true, &[("Team", "web")], false));
        let docs = statement(&p, "StartSessionWithDocuments")["Resource"].to_string();
        assert!(docs.contains("AWS-StartPortForwardingSessionToRemoteHost"));
        assert!(docs.contains("SSM-SessionManagerRunShell"));
        let inst = statement(&p, "StartSessionOnInstances");
        assert_eq!(
            inst["Condition"]["StringEquals"]["ssm:resourceTag/Team"],
            "web"
        );
        assert_eq!(
            inst["Condition"]["BoolIfExists"]["ssm:SessionDocumentAccessCheck"],
            "true"
        );
        assert_eq!(
            statement(&p, "PushOneTimeKeys")["Condition"]["StringEquals"]["aws:ResourceTag/Team"],
            "web"
        );

        let p = policy(&args(false, false, &[], true));
        let deny = statement(&p, "DenyPlainShellSessions");
        assert_eq!(deny["Effect"], "Deny");
        assert_eq!(deny["Resource"], SHELL_DOCUMENT);
        // A tag value with quotes stays valid JSON.
        let p = render(&args(false, false, &[("a\"b", "c\\d")], false));
        let v: Value = serde_json::from_str(&p).unwrap();
        assert_eq!(
            statement(&v, "StartSessionOnInstances")["Condition"]["StringEquals"]
                ["ssm:resourceTag/a\"b"],
            "c\\d"
        );
    }
}
