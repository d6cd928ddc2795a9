use super::*;
use crate::doctor::evidence::Evidence;
use crate::doctor::facts::{Identity, Route, Rule, SecurityGroup};
use crate::doctor::Status;
use crate::fleet::Instance;

fn err(action: &str, kind: AwsErrorKind) -> AwsError {
    AwsError {
        action: action.into(),
        region: "us-east-1".into(),
        kind,
        code: Some("AccessDeniedException".into()),
        message: String::new(),
        profile: None,
    }
}

fn local_facts() -> LocalFacts {
    LocalFacts {
        identity: Ok(Identity {
            account: "123456789012".into(),
            arn: "arn:aws:iam::123456789012:user/me".into(),
            user_id: "AIDA".into(),
        }),
        profile: Some("work".into()),
        regions: vec!["us-east-1".into()],
        ssh: Ok("OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15 3 Sep 2024".into()),
        clock_skew_secs: Some(2),
    }
}

fn status_of(checks: &[Check], name: &str) -> Status {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {checks:#?}"))
        .status
}

fn fix_of<'a>(checks: &'a [Check], name: &str) -> &'a str {
    checks
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.fix.as_deref())
        .unwrap_or("")
}

#[test]
fn local_checks_pass_and_fail_for_the_right_reasons() {
    let ok = local(&local_facts());
    assert!(ok.iter().all(|c| c.status == Status::Ok), "{ok:#?}");

    let mut f = local_facts();
    f.identity = Err(err(
        "sts:GetCallerIdentity",
        AwsErrorKind::ExpiredCredentials,
    ));
    f.ssh = Ok("OpenSSH_7.4p1, OpenSSL 1.0.2k-fips".into());
    f.clock_skew_secs = Some(-900);
    let c = local(&f);
    assert_eq!(status_of(&c, "credentials"), Status::Fail);
    assert_eq!(fix_of(&c, "credentials"), "aws sso login --profile work");
    assert_eq!(status_of(&c, "OpenSSH client"), Status::Fail);
    assert_eq!(status_of(&c, "clock"), Status::Fail);
    assert!(c
        .iter()
        .find(|c| c.name == "clock")
        .unwrap()
        .detail
        .contains("15m ahead of"));

    f.ssh = Err("No such file or directory (os error 2)".into());
    f.clock_skew_secs = None;
    let c = local(&f);
    assert_eq!(status_of(&c, "OpenSSH client"), Status::Fail);
    assert_eq!(status_of(&c, "clock"), Status::Unknown);
}

#[test]
fn openssh_versions_parse() {
    assert_eq!(openssh_version("OpenSSH_9.2p1 Debian-2"), Some((9, 2)));
    assert_eq!(openssh_version("OpenSSH_7.6p1 Ubuntu-4"), Some((7, 6)));
    assert_eq!(openssh_version("OpenSSH_for_Windows_8.1p1"), None);
    assert_eq!(openssh_version("Dropbear"), None);
}

#[test]
fn denied_probes_fail_naming_the_action_and_others_are_unknown() {
    let probes = vec![
        Probe {
            action: "ec2:DescribeInstances".into(),
            allowed: vec![],
            errors: vec![err("ec2:DescribeInstances", AwsErrorKind::AccessDenied)],
        },
        Probe {
            action: "ssm:DescribeSessions".into(),
            allowed: vec!["us-east-1".into()],
            errors: vec![],
        },
        Probe {
            action: "ssm:DescribeInstanceInformation".into(),
            allowed: vec![],
            errors: vec![err(
                "ssm:DescribeInstanceInformation",
                AwsErrorKind::Unreachable,
            )],
        },
    ];
    let c = permissions(
        &probes,
        Some("arn:aws:iam::1:user/me"),
        &Evidence::default(),
        None,
    );
    assert_eq!(status_of(&c, "ec2:DescribeInstances"), Status::Fail);
    let denied = c
        .iter()
        .find(|c| c.name == "ec2:DescribeInstances")
        .unwrap();
    assert!(denied
        .detail
        .contains("ec2:DescribeInstances was denied in us-east-1"));
    assert!(fix_of(&c, "ec2:DescribeInstances").contains("ec2ssh iam-policy"));
    assert_eq!(status_of(&c, "ssm:DescribeSessions"), Status::Ok);
    assert_eq!(
        status_of(&c, "ssm:DescribeInstanceInformation"),
        Status::Unknown
    );
    assert_eq!(status_of(&c, "ssm:StartSession"), Status::Unknown);
    assert_eq!(
        status_of(&c, "ec2-instance-connect:SendSSHPublicKey"),
        Status::Unknown
    );
}

#[test]
fn what_this_run_proved_counts_for_the_untried_actions() {
    let web = Instance {
        id: "i-1".into(),
        name: Some("web-1".into()),
        ..Default::default()
    };
    let mut e = Evidence::default();
    e.connected(&web, true, 0);
    let detail = |c: &[Check], name: &str| {
        c.iter()
            .find(|c| c.name == name)
            .map(|c| (c.status, c.detail.clone()))
            .unwrap()
    };
    let c = permissions(&[], None, &e, Some("i-1"));
    assert_eq!(
        detail(&c, "ssm:StartSession"),
        (
            Status::Ok,
            "allowed: a session started on web-1 (i-1) in this run".into()
        )
    );
    assert_eq!(
        detail(&c, "ec2-instance-connect:SendSSHPublicKey"),
        (
            Status::Ok,
            "allowed: a key was pushed to web-1 (i-1) in this run".into()
        )
    );
    assert!(!c.iter().any(|c| c.detail.contains("not tried")));
    // Diagnosing another instance: proved, and said where.
    let c = permissions(&[], None, &e, Some("i-2"));
    let (status, text) = detail(&c, "ssm:StartSession");
    assert_eq!(status, Status::Ok);
    assert!(text.ends_with("not yet on this instance (policies can differ per instance)"));
    // ssh that could not log in proves the key, not the session.
    let mut e = Evidence::default();
    e.connected(&web, true, 255);
    let c = permissions(&[], None, &e, Some("i-1"));
    assert_eq!(detail(&c, "ssm:StartSession").0, Status::Unknown);
    assert_eq!(
        detail(&c, "ec2-instance-connect:SendSSHPublicKey").0,
        Status::Ok
    );
}

fn healthy() -> TargetFacts {
    TargetFacts {
        instance: Instance {
            id: "i-1".into(),
            region: "us-east-1".into(),
            name: Some("web".into()),
            state: Some("running".into()),
            ping: Ping::Online,
            platform_type: Some("Linux".into()),
            platform_name: Some("Amazon Linux".into()),
            agent_version: Some("3.3.1611.0".into()),
            last_ping: Some(990),
            iam_instance_profile: Some("arn:aws:iam::1:instance-profile/ssm".into()),
            private_ip: Some("10.0.1.5".into()),
            ..Instance::default()
        },
        ec2: Ok(()),
        ssm: Ok(()),
        now: 1000,
        network: Some(private_net(vec![], true)),
        eice: None,
    }
}

fn endpoint(service: &str, sg: &str) -> Endpoint {
    Endpoint {
        id: format!("vpce-{service}"),
        service: format!("com.amazonaws.us-east-1.{service}"),
        private_dns: true,
        state: "available".into(),
        groups: vec![sg.into()],
    }
}

fn private_net(routes: Vec<Route>, with_endpoints: bool) -> NetworkFacts {
    let mut all = vec![Route {
        destination: "10.0.0.0/16".into(),
        target: "local".into(),
    }];
    all.extend(routes);
    NetworkFacts {
        region: "us-east-1".into(),
        vpc_id: "vpc-1".into(),
        subnet_id: "subnet-1".into(),
        private_ip: Some("10.0.1.5".into()),
        public_ip: None,
        instance_groups: Ok(vec!["sg-app".into()]),
        route_table: Ok(Some(RouteTable {
            id: "rtb-1".into(),
            routes: all,
        })),
        endpoints: Ok(if with_endpoints {
            SSM_SERVICES
                .iter()
                .map(|s| endpoint(s, "sg-vpce"))
                .collect()
        } else {
            vec![]
        }),
        dns_support: Ok(true),
        dns_hostnames: Ok(true),
        endpoint_groups: Ok(vec![SecurityGroup {
            id: "sg-vpce".into(),
            ingress: vec![Rule {
                protocol: "tcp".into(),
                from_port: Some(443),
                to_port: Some(443),
                cidrs: vec!["10.0.0.0/16".into()],
                groups: vec![],
            }],
            egress: vec![],
        }]),
    }
}

#[test]
fn a_healthy_target_passes_every_check() {
    let c = target(&healthy());
    assert!(c.iter().all(|c| c.status == Status::Ok), "{c:#?}");
    assert!(c.iter().any(|c| c.detail.contains("last ping 10 s ago")));
}

#[test]
fn each_broken_target_fails_with_its_fix() {
    let mut t = healthy();
    t.instance.iam_instance_profile = None;
    t.instance.agent_version = Some("2.3.612.0".into());
    t.instance.ping = Ping::ConnectionLost;
    t.instance.state = Some("stopped".into());
    let c = target(&t);
    assert_eq!(status_of(&c, "instance profile"), Status::Fail);
    assert!(fix_of(&c, "instance profile").contains("associate-iam-instance-profile"));
    assert_eq!(status_of(&c, "agent version"), Status::Fail);
    assert!(fix_of(&c, "agent version").contains("AWS-UpdateSSMAgent"));
    assert_eq!(status_of(&c, "agent ping"), Status::Fail);
    assert_eq!(status_of(&c, "EC2 state"), Status::Fail);

    t.instance.ping = Ping::NotManaged;
    assert_eq!(status_of(&target(&t), "managed by SSM"), Status::Fail);

    t.ec2 = Err(err("ec2:DescribeInstances", AwsErrorKind::AccessDenied));
    let c = target(&t);
    assert_eq!(status_of(&c, "EC2 state"), Status::Unknown);
    assert!(fix_of(&c, "EC2 state").contains("ec2:DescribeInstances"));
}

#[test]
fn the_network_path_decision() {
    let igw = |t: &str| {
        Some(RouteTable {
            id: "rtb-1".into(),
            routes: vec![Route {
                destination: "0.0.0.0/0".into(),
                target: t.into(),
            }],
        })
    };
    assert_eq!(
        net_path(igw("igw-1").as_ref(), &[], "us-east-1", Some("54.1.2.3")),
        NetPath::Internet {
            igw: "igw-1".into()
        }
    );
    assert!(matches!(
        net_path(igw("igw-1").as_ref(), &[], "us-east-1", None),
        NetPath::None { .. }
    ));
    assert_eq!(
        net_path(igw("nat-1").as_ref(), &[], "us-east-1", None),
        NetPath::Nat {
            via: "nat-1".into()
        }
    );
    assert!(matches!(
        net_path(None, &[], "us-east-1", None),
        NetPath::None { .. }
    ));
    let all: Vec<Endpoint> = SSM_SERVICES.iter().map(|s| endpoint(s, "sg")).collect();
    assert_eq!(
        net_path(None, &all, "us-east-1", None),
        NetPath::Endpoints { missing: vec![] }
    );
    let two = &all[..2];
    assert_eq!(
        net_path(None, two, "us-east-1", None),
        NetPath::Endpoints {
            missing: vec!["com.amazonaws.us-east-1.ssmmessages".into()]
        }
    );
    assert_eq!(
        net_path(igw("nat-1").as_ref(), two, "us-east-1", None),
        NetPath::Endpoints { missing: vec![] },
        "the NAT covers the missing one"
    );
    let mut no_dns = all.clone();
    no_dns[0].private_dns = false;
    assert!(matches!(
        net_path(None, &no_dns, "us-east-1", None),
        NetPath::Endpoints { .. }
    ));
}

#[test]
fn network_failures_explain_themselves() {
    let mut t = healthy();
    t.network = Some(private_net(vec![], false));
    let c = target(&t);
    assert_eq!(status_of(&c, "network path"), Status::Fail);
    assert!(fix_of(&c, "network path").contains("com.amazonaws.us-east-1.ssmmessages"));
    assert!(fix_of(&c, "network path").contains("nat-"));

    let mut n = private_net(vec![], true);
    n.dns_hostnames = Ok(false);
    let c = network(&n);
    assert_eq!(status_of(&c, "VPC DNS"), Status::Fail);
    assert!(fix_of(&c, "VPC DNS").contains("--enable-dns-hostnames"));

    let mut n = private_net(vec![], true);
    if let Ok(g) = &mut n.endpoint_groups {
        g[0].ingress[0].from_port = Some(22);
        g[0].ingress[0].to_port = Some(22);
    }
    let c = network(&n);
    assert_eq!(status_of(&c, "endpoint security groups"), Status::Fail);
    assert!(fix_of(&c, "endpoint security groups").contains("TCP 443 from sg-app"));
    assert!(fix_of(&c, "endpoint security groups").contains("sg-vpce"));

    let mut n = private_net(vec![], true);
    n.endpoints = Err(err("ec2:DescribeVpcEndpoints", AwsErrorKind::AccessDenied));
    let c = network(&n);
    assert_eq!(status_of(&c, "network path"), Status::Unknown);
    assert!(fix_of(&c, "network path").contains("ec2:DescribeVpcEndpoints"));
}

fn tcp22(cidrs: &[&str], groups: &[&str]) -> Rule {
    Rule {
        protocol: "tcp".into(),
        from_port: Some(22),
        to_port: Some(22),
        cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn sg(id: &str, ingress: Vec<Rule>, egress: Vec<Rule>) -> SecurityGroup {
    SecurityGroup {
        id: id.into(),
        ingress,
        egress,
    }
}

fn on_eice(preserve_client_ip: bool) -> Instance {
    Instance {
        id: "i-1".into(),
        region: "us-east-1".into(),
        state: Some("running".into()),
        ping: Ping::NotManaged,
        private_ip: Some("10.0.1.5".into()),
        vpc_id: Some("vpc-1".into()),
        subnet_id: Some("subnet-1".into()),
        security_groups: vec!["sg-app".into()],
        eice: crate::fleet::Eice::Endpoint(Box::new(crate::fleet::EiceEndpoint {
            id: "eice-1".into(),
            vpc_id: "vpc-1".into(),
            subnet_id: "subnet-1".into(),
            dns_name: "eice-1.example".into(),
            state: "create-complete".into(),
            security_groups: vec!["sg-eice".into()],
            preserve_client_ip,
            ..Default::default()
        })),
        ..Instance::default()
    }
}

fn eice_check(i: &Instance, groups: Vec<SecurityGroup>) -> Check {
    let facts = EiceFacts {
        groups: Some(Ok(groups)),
    };
    eice(i, &facts)
        .into_iter()
        .find(|c| c.name == "EICE security groups")
        .unwrap()
}

#[test]
fn eice_groups_pass_by_reference_or_the_vpcs_cidr_and_fail_with_the_rule_to_add() {
    let i = on_eice(false);
    let out_to_app = vec![tcp22(&[], &["sg-app"])];
    let by_ref = eice_check(
        &i,
        vec![
            sg("sg-eice", vec![], out_to_app.clone()),
            sg("sg-app", vec![tcp22(&[], &["sg-eice"])], vec![]),
        ],
    );
    assert_eq!(by_ref.status, Status::Ok, "{by_ref:?}");
    let by_cidr = eice_check(
        &i,
        vec![
            sg("sg-eice", vec![], vec![tcp22(&["10.0.0.0/16"], &[])]),
            sg("sg-app", vec![tcp22(&["10.0.0.0/16"], &[])], vec![]),
        ],
    );
    assert_eq!(by_cidr.status, Status::Ok, "{by_cidr:?}");
    let closed = eice_check(
        &i,
        vec![
            sg("sg-eice", vec![], out_to_app.clone()),
            sg("sg-app", vec![tcp22(&["192.168.0.0/16"], &[])], vec![]),
        ],
    );
    assert_eq!(closed.status, Status::Fail);
    assert_eq!(
        closed.fix.as_deref(),
        Some("allow inbound TCP 22 from sg-eice in sg-app")
    );
    let no_egress = eice_check(
        &i,
        vec![
            sg("sg-eice", vec![], vec![]),
            sg("sg-app", vec![tcp22(&[], &["sg-eice"])], vec![]),
        ],
    );
    assert_eq!(
        no_egress.fix.as_deref(),
        Some("allow outbound TCP 22 to sg-app in sg-eice")
    );
    // With the client's IP preserved a VPC CIDR proves nothing: say so.
    let preserved = eice_check(
        &on_eice(true),
        vec![
            sg("sg-eice", vec![], out_to_app),
            sg("sg-app", vec![tcp22(&["10.0.0.0/16"], &[])], vec![]),
        ],
    );
    assert_eq!(preserved.status, Status::Unknown, "{preserved:?}");
}

#[test]
fn no_endpoint_or_an_unknown_one_is_said_with_what_to_do() {
    let mut i = on_eice(false);
    i.eice = crate::fleet::Eice::None;
    let c = eice(&i, &EiceFacts { groups: None });
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].status, Status::Fail);
    assert!(c[0]
        .fix
        .as_deref()
        .unwrap()
        .starts_with("create one: aws ec2 create-instance-connect-endpoint --region us-east-1 --subnet-id subnet-1"));
    i.eice = crate::fleet::Eice::Unknown;
    let c = eice(&i, &EiceFacts { groups: None });
    assert_eq!(c[0].status, Status::Unknown);
    assert!(c[0].fix.as_deref().unwrap().contains("iam-policy --eice"));
}
