//! Facts in, checks out: every judgement doctor makes, with no I/O, including the
//! decision of how an instance reaches Systems Manager (public IP through an internet
//! gateway, a NAT gateway, or VPC interface endpoints) and what that path needs.

use super::evidence::Evidence;
use super::facts::{
    EiceFacts, Endpoint, Fact, LocalFacts, NetworkFacts, Probe, RouteTable, SecurityGroup,
    TargetFacts,
};
use super::Check;
use crate::aws::{AwsError, AwsErrorKind};
use crate::fleet::{Eice, Ping};
use crate::session::client::version_greater;
use crate::time::age;

/// The oldest SSM agent that supports SSH sessions (`AWS-StartSSHSession`).
pub const MIN_AGENT_FOR_SSH: &str = "2.3.672.0";
/// The oldest OpenSSH client that understands every option ec2ssh passes
/// (`StrictHostKeyChecking=accept-new` came in 7.6).
pub const MIN_OPENSSH: (u32, u32) = (7, 6);
/// How far our clock may be from AWS's before SigV4 signatures are rejected.
pub const MAX_SKEW_SECS: i64 = 300;
/// The services an agent must reach.
pub const SSM_SERVICES: [&str; 3] = ["ssm", "ec2messages", "ssmmessages"];

const POLICY_HINT: &str = "`ec2ssh iam-policy` prints the policy ec2ssh needs";

/// A check that could not be run because its AWS call failed: `?` naming the action.
fn not_checked(group: &'static str, name: &str, e: &AwsError) -> Check {
    let how = if e.kind == AwsErrorKind::AccessDenied {
        format!("allow {} to let doctor check this", e.action)
    } else {
        e.fix()
    };
    Check::unknown(group, name, format!("not checked: {}", e.summary()), how)
}

pub fn local(f: &LocalFacts) -> Vec<Check> {
    const G: &str = "local";
    let mut out = Vec::new();
    let profile = f.profile.as_deref().unwrap_or("default");
    out.push(match &f.identity {
        Ok(id) => Check::ok(
            G,
            "credentials",
            format!("{} (account {})", id.arn, id.account),
        ),
        Err(e) if e.kind == AwsErrorKind::ExpiredCredentials => Check::fail(
            G,
            "credentials",
            format!("the credentials of profile {profile} have expired (SSO token or session)"),
            e.sso_login()
                .map(str::to_string)
                .unwrap_or_else(|| format!("aws sso login --profile {profile}")),
        ),
        Err(e) if e.kind == AwsErrorKind::AccessDenied => not_checked(G, "credentials", e),
        Err(e) => Check::fail(G, "credentials", e.summary(), e.fix()),
    });
    out.push(if f.regions.is_empty() {
        Check::fail(
            G,
            "regions",
            "no region is set",
            "pass --region (e.g. --region us-east-1), set `regions` in the config file, or AWS_REGION",
        )
    } else {
        Check::ok(
            G,
            "regions",
            format!("{} (profile {profile})", f.regions.join(", ")),
        )
    });
    out.push(openssh(&f.ssh));
    out.push(match f.clock_skew_secs {
        None => Check::unknown(
            G,
            "clock",
            "no AWS response carried a Date header",
            "compare `date -u` with an NTP source",
        ),
        Some(s) if s.abs() > MAX_SKEW_SECS => Check::fail(
            G,
            "clock",
            format!(
                "this machine's clock is {} {} AWS's; requests more than 5 minutes off are rejected",
                humantime::format_duration(std::time::Duration::from_secs(s.unsigned_abs())),
                if s > 0 { "behind" } else { "ahead of" }
            ),
            "synchronise the clock (e.g. `sudo timedatectl set-ntp true`, or your OS's time settings)",
        ),
        Some(s) => Check::ok(G, "clock", format!("within {}s of AWS", s.abs().max(1))),
    });
    out
}

/// `OpenSSH_9.2p1 Debian-2, OpenSSL 3.0.11` → (9, 2).
pub fn openssh_version(line: &str) -> Option<(u32, u32)> {
    let rest = line.trim().strip_prefix("OpenSSH_")?;
    let (major, rest) = rest.split_once('.')?;
    let minor: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn openssh(ssh: &Result<String, String>) -> Check {
    const G: &str = "local";
    const NAME: &str = "OpenSSH client";
    let install = "install OpenSSH's client (apt install openssh-client, dnf install openssh-clients, or your OS's package)";
    match ssh {
        Err(why) => Check::fail(G, NAME, format!("`ssh -V` failed: {why}"), install),
        Ok(line) => {
            let first = line.lines().next().unwrap_or("").trim();
            match openssh_version(first) {
                Some(v) if v >= MIN_OPENSSH => Check::ok(G, NAME, first),
                Some((a, b)) => Check::fail(
                    G,
                    NAME,
                    format!(
                        "OpenSSH {a}.{b} is too old: ec2ssh needs {}.{} or later (StrictHostKeyChecking=accept-new)",
                        MIN_OPENSSH.0, MIN_OPENSSH.1
                    ),
                    "upgrade OpenSSH's client",
                ),
                None => Check::unknown(
                    G,
                    NAME,
                    format!("not OpenSSH? `ssh -V` said {first:?}"),
                    format!(
                        "ec2ssh runs OpenSSH's `ssh`; make sure it comes first on PATH ({}.{}+)",
                        MIN_OPENSSH.0, MIN_OPENSSH.1
                    ),
                ),
            }
        }
    }
}

/// One check per probed action, plus the two actions that cannot be tried harmlessly
/// (proved by `evidence` when this run already did them, on `target` or elsewhere).
pub fn permissions(
    probes: &[Probe],
    identity: Option<&str>,
    evidence: &Evidence,
    target: Option<&str>,
) -> Vec<Check> {
    const G: &str = "permissions";
    let mut out = Vec::new();
    for p in probes {
        let denied: Vec<&AwsError> = p
            .errors
            .iter()
            .filter(|e| e.kind == AwsErrorKind::AccessDenied)
            .collect();
        let check = if let Some(first) = denied.first() {
            let regions: Vec<&str> = denied.iter().map(|e| e.region.as_str()).collect();
            let code = first
                .code
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            Check::fail(
                G,
                &p.action,
                format!("{} was denied in {}{code}", p.action, regions.join(", ")),
                format!(
                    "allow {} for {}; {POLICY_HINT}",
                    p.action,
                    identity.unwrap_or("your IAM identity")
                ),
            )
        } else if let Some(e) = p.errors.first() {
            not_checked(G, &p.action, e)
        } else {
            Check::ok(G, &p.action, format!("allowed in {}", p.allowed.join(", ")))
        };
        out.push(check);
    }
    let simulate = |action: &str| {
        format!(
            "`aws iam simulate-principal-policy --policy-source-arn {} --action-names {action}`, or just try `ec2ssh ssh TARGET`; {POLICY_HINT}",
            identity.unwrap_or("YOUR_ROLE_OR_USER_ARN")
        )
    };
    // Not tried here (they would open a session, push a key), unless this run already
    // did it: that counts.
    let untried = |action: &str, proved: &str, not_tried: &str| match evidence.proof(action, target)
    {
        Some((p, here)) => {
            let elsewhere = if here || target.is_none() {
                ""
            } else {
                "; not yet on this instance (policies can differ per instance)"
            };
            Check::ok(
                G,
                action,
                format!("{proved} {} ({}) in this run{elsewhere}", p.label, p.id),
            )
        }
        None => Check::unknown(G, action, not_tried, simulate(action)),
    };
    out.push(untried(
        "ssm:StartSession",
        "allowed: a session started on",
        "not tried: it would open a session (needs document AWS-StartSSHSession)",
    ));
    out.push(untried(
        "ec2-instance-connect:SendSSHPublicKey",
        "allowed: a key was pushed to",
        "not tried: it would push a key",
    ));
    out
}

pub fn target(t: &TargetFacts) -> Vec<Check> {
    const G: &str = "target";
    let i = &t.instance;
    let id = i.id.as_str();
    let mut out = Vec::new();
    let label = match i.name.as_deref() {
        Some(n) => format!("{id} ({n}) in {}", i.region),
        None => format!("{id} in {}", i.region),
    };
    out.push(Check::ok(G, "instance", label));

    // EC2's view.
    if i.is_hybrid() {
        out.push(Check::ok(
            G,
            "EC2 state",
            "hybrid managed node (not an EC2 instance)",
        ));
    } else if let Err(e) = &t.ec2 {
        out.push(not_checked(G, "EC2 state", e));
        out.push(not_checked(G, "instance profile", e));
    } else {
        out.push(match i.state.as_deref() {
            Some("running") => Check::ok(G, "EC2 state", "running"),
            Some(s) => Check::fail(
                G,
                "EC2 state",
                format!("{s}, not running"),
                format!(
                    "start it: aws ec2 start-instances --region {} --instance-ids {id}",
                    i.region
                ),
            ),
            None => Check::unknown(
                G,
                "EC2 state",
                "EC2 did not return it",
                "check `ec2ssh list`",
            ),
        });
        out.push(match &i.iam_instance_profile {
            Some(p) => Check::ok(G, "instance profile", p.rsplit('/').next().unwrap_or(p)),
            None => Check::fail(
                G,
                "instance profile",
                "no IAM instance profile is attached, so the SSM agent has no credentials",
                format!(
                    "attach one whose role has AmazonSSMManagedInstanceCore: aws ec2 associate-iam-instance-profile --region {} --instance-id {id} --iam-instance-profile Name=PROFILE (or enable Default Host Management Configuration)",
                    i.region
                ),
            ),
        });
    }

    // SSM's view.
    match (&t.ssm, i.ping) {
        (Err(e), _) => out.push(not_checked(G, "managed by SSM", e)),
        (_, Ping::Unknown) => out.push(Check::unknown(
            G,
            "managed by SSM",
            "Systems Manager's view of it is not known",
            format!("aws ssm describe-instance-information --region {} --filters Key=InstanceIds,Values={id}", i.region),
        )),
        (_, Ping::NotManaged) => out.push(Check::fail(
            G,
            "managed by SSM",
            "Systems Manager does not know this instance: its agent has never registered",
            "make sure the SSM agent is installed and running, the instance profile allows it (AmazonSSMManagedInstanceCore), and it can reach Systems Manager (see the network checks)",
        )),
        (_, ping) => {
            out.push(Check::ok(G, "managed by SSM", "registered with Systems Manager"));
            let last = i
                .last_ping
                .map(|p| format!(", last ping {}", age(t.now - p)))
                .unwrap_or_default();
            out.push(match ping {
                Ping::Online => Check::ok(G, "agent ping", format!("Online{last}")),
                Ping::ConnectionLost => Check::fail(
                    G,
                    "agent ping",
                    format!("ConnectionLost{last}: the agent stopped reaching Systems Manager"),
                    format!("check that the instance is up and `amazon-ssm-agent` is running on it, and the network path below; then `ec2ssh status --wait {id}`"),
                ),
                _ => Check::fail(
                    G,
                    "agent ping",
                    format!("{}{last}", ping.label()),
                    "start the instance (or re-register the managed node) and its SSM agent",
                ),
            });
            out.push(agent_version(i.agent_version.as_deref(), id));
            out.push(platform(i));
        }
    }

    if let Some(e) = &t.eice {
        out.extend(eice(i, e));
    }
    if let Some(net) = &t.network {
        out.extend(network(net));
    } else if !i.is_hybrid() && t.ec2.is_ok() {
        out.push(Check::unknown(
            G,
            "network path",
            "EC2 did not say which VPC and subnet it is in",
            "check the instance's subnet in the EC2 console",
        ));
    }
    out
}

/// The EC2 Instance Connect Endpoint path: an endpoint in the VPC, security groups
/// that let it reach TCP 22 on the instance, and OpenTunnel (which only a tunnel can
/// prove: it is never opened to check).
pub fn eice(i: &crate::fleet::Instance, f: &EiceFacts) -> Vec<Check> {
    const G: &str = "target";
    let vpc = i.vpc_id.as_deref().unwrap_or("its VPC");
    let mut out = Vec::new();
    let e = match &i.eice {
        Eice::Unknown => {
            out.push(Check::unknown(
                G,
                "EICE endpoint",
                "the EC2 Instance Connect Endpoints could not be listed",
                "allow ec2:DescribeInstanceConnectEndpoints (`ec2ssh iam-policy --eice`)",
            ));
            return out;
        }
        Eice::None => {
            out.push(Check::fail(
                G,
                "EICE endpoint",
                format!("no available EC2 Instance Connect Endpoint in {vpc}"),
                format!(
                    "create one: aws ec2 create-instance-connect-endpoint --region {} --subnet-id {} --security-group-ids SG",
                    i.region,
                    i.subnet_id.as_deref().unwrap_or("SUBNET")
                ),
            ));
            return out;
        }
        Eice::Endpoint(e) => e,
    };
    out.push(Check::ok(
        G,
        "EICE endpoint",
        format!("{} ({}) in {vpc}", e.id, e.state),
    ));
    if let Some(groups) = &f.groups {
        out.push(eice_groups(i, e, groups));
    }
    out.push(Check::unknown(
        G,
        "ec2-instance-connect:OpenTunnel",
        "not tried: it would open a tunnel",
        format!("`ec2ssh iam-policy --eice` shows what to allow on {}", e.id),
    ));
    out
}

fn eice_groups(
    i: &crate::fleet::Instance,
    e: &crate::fleet::EiceEndpoint,
    groups: &Fact<Vec<SecurityGroup>>,
) -> Check {
    const G: &str = "target";
    const NAME: &str = "EICE security groups";
    let groups = match groups {
        Err(err) => return not_checked(G, NAME, err),
        Ok(g) => g,
    };
    let of = |ids: &[String]| -> Vec<&SecurityGroup> {
        groups.iter().filter(|g| ids.contains(&g.id)).collect()
    };
    let ip = i.private_ip.as_deref();
    let (theirs, mine) = (of(&e.security_groups), of(&i.security_groups));
    let join = |v: &[String]| v.join(", ");
    // Out of the endpoint: to the instance's group or address.
    let out_ok = theirs.iter().any(|g| {
        g.egress
            .iter()
            .any(|r| r.admits(22, ip, &i.security_groups))
    });
    if !out_ok {
        return Check::fail(
            G,
            NAME,
            format!(
                "the endpoint's {} do not let TCP 22 out to {}",
                join(&e.security_groups),
                ip.unwrap_or(&i.id)
            ),
            format!(
                "allow outbound TCP 22 to {} in {}",
                i.security_groups
                    .first()
                    .map_or("the instance's address", String::as_str),
                join(&e.security_groups)
            ),
        );
    }
    // Into the instance: by the endpoint's group (always valid), or by a CIDR that
    // holds the source: the endpoint's address in the VPC (a CIDR holding the
    // instance's own address stands for the VPC's), or with PreserveClientIp the
    // client's own address, which cannot be known from here.
    let by_group = mine.iter().any(|g| {
        g.ingress
            .iter()
            .any(|r| r.admits(22, None, &e.security_groups))
    });
    let open = mine.iter().any(|g| {
        g.ingress
            .iter()
            .any(|r| r.admits(22, Some("0.0.0.0"), &[]) && r.cidrs.iter().any(|c| c == "0.0.0.0/0"))
    });
    let by_vpc_cidr = !e.preserve_client_ip
        && mine
            .iter()
            .any(|g| g.ingress.iter().any(|r| r.admits(22, ip, &[])));
    let any_22 = mine.iter().any(|g| {
        g.ingress
            .iter()
            .any(|r| !r.cidrs.is_empty() && r.admits(22, r.cidrs[0].split('/').next(), &[]))
    });
    if by_group || open || by_vpc_cidr {
        let how = if by_group {
            format!("by {}", join(&e.security_groups))
        } else if open {
            "from anywhere".to_string()
        } else {
            "by the VPC's addresses".to_string()
        };
        return Check::ok(
            G,
            NAME,
            format!(
                "TCP 22 from {} to {} is allowed ({how})",
                e.id,
                ip.unwrap_or(&i.id)
            ),
        );
    }
    if e.preserve_client_ip && any_22 {
        return Check::unknown(
            G,
            NAME,
            format!(
                "{} preserves the client's IP and {} admit TCP 22 only from CIDRs",
                e.id,
                join(&i.security_groups)
            ),
            format!(
                "allow inbound TCP 22 from {} in {} to be sure",
                join(&e.security_groups),
                join(&i.security_groups)
            ),
        );
    }
    Check::fail(
        G,
        NAME,
        format!(
            "{} do not admit TCP 22 from {}",
            join(&i.security_groups),
            e.id
        ),
        format!(
            "allow inbound TCP 22 from {} in {}",
            e.security_groups
                .first()
                .map_or("the endpoint's security group", String::as_str),
            join(&i.security_groups)
        ),
    )
}

fn agent_version(v: Option<&str>, id: &str) -> Check {
    const G: &str = "target";
    match v {
        None => Check::unknown(G, "agent version", "not reported", "run `ec2ssh status ID`"),
        Some(v) if v == MIN_AGENT_FOR_SSH || version_greater(v, MIN_AGENT_FOR_SSH) => {
            Check::ok(G, "agent version", v)
        }
        Some(v) if v.split('.').all(|p| p.parse::<u64>().is_ok()) => Check::fail(
            G,
            "agent version",
            format!("{v} is older than {MIN_AGENT_FOR_SSH}, the first with SSH sessions"),
            format!("update the agent: aws ssm send-command --document-name AWS-UpdateSSMAgent --instance-ids {id}"),
        ),
        Some(v) => Check::unknown(
            G,
            "agent version",
            format!("cannot read version {v:?}"),
            format!("it must be {MIN_AGENT_FOR_SSH} or later"),
        ),
    }
}

fn platform(i: &crate::fleet::Instance) -> Check {
    const G: &str = "target";
    let label = i.platform_label();
    match i.platform_type.as_deref() {
        Some("Windows") => Check::fail(
            G,
            "platform",
            format!("{label}: EC2 Instance Connect pushes keys to Linux only"),
            "use Fleet Manager or RDP, or an OpenSSH server with your own key in authorized_keys and `ec2ssh proxy` as ProxyCommand",
        ),
        Some(_) => Check::ok(G, "platform", label),
        None => Check::unknown(G, "platform", "not reported", "see `ec2ssh list`"),
    }
}

/// How the instance reaches Systems Manager.
#[derive(Debug, Clone, PartialEq)]
pub enum NetPath {
    /// A public IP and a default route to an internet gateway.
    Internet { igw: String },
    /// A default route to a NAT gateway (or NAT instance/ENI, transit gateway).
    Nat { via: String },
    /// Interface endpoints with private DNS for the services (some may be missing).
    Endpoints { missing: Vec<String> },
    /// No way out.
    None { why: String },
}

/// The default route's target in `table`, if any.
fn default_route(table: &RouteTable) -> Option<&str> {
    table
        .routes
        .iter()
        .find(|r| r.destination == "0.0.0.0/0")
        .map(|r| r.target.as_str())
}

/// The interface endpoints for `ssm`, `ec2messages` and `ssmmessages` that are in use
/// (private DNS on, not failed), and the services that have none.
pub fn ssm_endpoints<'a>(
    endpoints: &'a [Endpoint],
    region: &str,
) -> (Vec<&'a Endpoint>, Vec<String>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for s in SSM_SERVICES {
        let name = format!("com.amazonaws.{region}.{s}");
        let usable: Vec<&Endpoint> = endpoints
            .iter()
            .filter(|e| e.service == name && e.private_dns)
            .filter(|e| {
                !matches!(
                    e.state.as_str(),
                    "deleted" | "deleting" | "failed" | "rejected"
                )
            })
            .collect();
        if usable.is_empty() {
            missing.push(name);
        } else {
            found.extend(usable);
        }
    }
    (found, missing)
}

/// The network path decision. With private-DNS endpoints for any of the services, the
/// VPC's resolver sends the agent to them, so they decide; otherwise the default route.
pub fn net_path(
    route_table: Option<&RouteTable>,
    endpoints: &[Endpoint],
    region: &str,
    public_ip: Option<&str>,
) -> NetPath {
    let (found, missing) = ssm_endpoints(endpoints, region);
    let internet = route_table.and_then(default_route);
    if !found.is_empty() {
        // A service without an endpoint still resolves publicly and needs a way out.
        let covered = match internet {
            Some(t) if t.starts_with("nat-") || t.starts_with("eni-") || t.starts_with("tgw-") => {
                true
            }
            Some(t) if t.starts_with("igw-") => public_ip.is_some(),
            _ => false,
        };
        return NetPath::Endpoints {
            missing: if covered { vec![] } else { missing },
        };
    }
    match internet {
        Some(t) if t.starts_with("igw-") && public_ip.is_some() => {
            NetPath::Internet { igw: t.to_string() }
        }
        Some(t) if t.starts_with("igw-") => NetPath::None {
            why: format!("the subnet routes 0.0.0.0/0 to {t}, but the instance has no public IP"),
        },
        Some(t) if t.starts_with("nat-") || t.starts_with("eni-") || t.starts_with("tgw-") || t.starts_with("i-") => {
            NetPath::Nat { via: t.to_string() }
        }
        Some(t) => NetPath::None {
            why: format!("the default route goes to {t}, which does not reach the internet"),
        },
        None => NetPath::None {
            why: "the subnet has no default route (0.0.0.0/0) and the VPC has no Systems Manager endpoints".into(),
        },
    }
}

pub fn network(n: &NetworkFacts) -> Vec<Check> {
    const G: &str = "target";
    let mut out = Vec::new();
    let (table, endpoints) = match (&n.route_table, &n.endpoints) {
        (Err(e), _) | (_, Err(e)) => {
            out.push(not_checked(G, "network path", e));
            return out;
        }
        (Ok(t), Ok(e)) => (t, e),
    };
    let path = net_path(table.as_ref(), endpoints, &n.region, n.public_ip.as_deref());
    let rtb = table
        .as_ref()
        .map(|t| t.id.clone())
        .unwrap_or_else(|| "the subnet's route table".into());
    let services = SSM_SERVICES
        .map(|s| format!("com.amazonaws.{}.{s}", n.region))
        .join(", ");
    let endpoint_fix = format!(
        "add a NAT gateway route (0.0.0.0/0 → nat-…) to {rtb}, or create interface endpoints {services} with private DNS in {}",
        n.vpc_id
    );
    match &path {
        NetPath::Internet { igw } => out.push(Check::ok(
            G,
            "network path",
            format!(
                "public IP {} and 0.0.0.0/0 → {igw} in {rtb}",
                n.public_ip.as_deref().unwrap_or("")
            ),
        )),
        NetPath::Nat { via } => out.push(Check::ok(
            G,
            "network path",
            format!("0.0.0.0/0 → {via} in {rtb} ({})", n.subnet_id),
        )),
        NetPath::Endpoints { missing } if missing.is_empty() => out.push(Check::ok(
            G,
            "network path",
            format!("VPC interface endpoints in {}", n.vpc_id),
        )),
        NetPath::Endpoints { missing } => out.push(Check::fail(
            G,
            "network path",
            format!(
                "{} has endpoints for Systems Manager but none for {} and no other way out",
                n.vpc_id,
                missing.join(", ")
            ),
            format!(
                "create interface endpoints {} with private DNS in {}, or a NAT route in {rtb}",
                missing.join(", "),
                n.vpc_id
            ),
        )),
        NetPath::None { why } => {
            if table.is_none() {
                out.push(Check::unknown(
                    G,
                    "network path",
                    format!("no route table found for {}", n.subnet_id),
                    "check the subnet's route table in the VPC console",
                ));
            } else {
                out.push(Check::fail(
                    G,
                    "network path",
                    format!("{why} ({} in {})", n.subnet_id, n.vpc_id),
                    endpoint_fix,
                ));
            }
        }
    }
    let via_endpoints = matches!(path, NetPath::Endpoints { .. });
    out.push(vpc_dns(n, via_endpoints));
    if via_endpoints {
        out.push(endpoint_groups(n, endpoints));
    }
    out
}

fn vpc_dns(n: &NetworkFacts, via_endpoints: bool) -> Check {
    const G: &str = "target";
    const NAME: &str = "VPC DNS";
    let unknown = |e: &AwsError| not_checked(G, NAME, e);
    let (support, hostnames) = match (&n.dns_support, &n.dns_hostnames) {
        (Err(e), _) | (_, Err(e)) => return unknown(e),
        (Ok(s), Ok(h)) => (*s, *h),
    };
    let modify = |attr: &str| {
        format!(
            "aws ec2 modify-vpc-attribute --region {} --vpc-id {} --{attr} '{{\"Value\":true}}'",
            n.region, n.vpc_id
        )
    };
    if !support {
        return Check::fail(
            G,
            NAME,
            format!("enableDnsSupport is off in {}: the instance cannot resolve Systems Manager's endpoints", n.vpc_id),
            modify("enable-dns-support"),
        );
    }
    if !hostnames && via_endpoints {
        return Check::fail(
            G,
            NAME,
            format!(
                "enableDnsHostnames is off in {}: the endpoints' private DNS names do not resolve",
                n.vpc_id
            ),
            modify("enable-dns-hostnames"),
        );
    }
    Check::ok(
        G,
        NAME,
        format!(
            "enableDnsSupport on, enableDnsHostnames {}",
            if hostnames {
                "on"
            } else {
                "off (only endpoints need it)"
            }
        ),
    )
}

fn endpoint_groups(n: &NetworkFacts, endpoints: &[Endpoint]) -> Check {
    const G: &str = "target";
    const NAME: &str = "endpoint security groups";
    let groups = match &n.endpoint_groups {
        Err(e) => return not_checked(G, NAME, e),
        Ok(g) => g,
    };
    let mine: Vec<String> = match &n.instance_groups {
        Ok(g) => g.clone(),
        Err(_) => Vec::new(),
    };
    let ip = n.private_ip.as_deref();
    let (found, _) = ssm_endpoints(endpoints, &n.region);
    let mut blocked = Vec::new();
    for e in &found {
        let admits = e.groups.iter().any(|gid| {
            groups
                .iter()
                .find(|g| &g.id == gid)
                .is_some_and(|g| g.ingress.iter().any(|r| r.admits(443, ip, &mine)))
        });
        if !admits {
            blocked.push(*e);
        }
    }
    if blocked.is_empty() {
        return Check::ok(
            G,
            NAME,
            format!("TCP 443 from {} is allowed", ip.unwrap_or("the instance")),
        );
    }
    let names: Vec<String> = blocked
        .iter()
        .map(|e| {
            let short = e.service.rsplit('.').next().unwrap_or(&e.service);
            format!("{short} ({})", e.id)
        })
        .collect();
    let sgs: Vec<&str> = {
        let mut v: Vec<&str> = blocked
            .iter()
            .flat_map(|e| e.groups.iter().map(String::as_str))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let source = match (ip, mine.first()) {
        (_, Some(g)) => format!("from {g} (the instance's security group)"),
        (Some(ip), None) => format!("from {ip}/32"),
        _ => "from the instance".into(),
    };
    Check::fail(
        G,
        NAME,
        format!(
            "the endpoint{} {} do{} not admit TCP 443 from {}",
            if names.len() == 1 { "" } else { "s" },
            names.join(", "),
            if names.len() == 1 { "es" } else { "" },
            ip.unwrap_or("the instance")
        ),
        format!(
            "allow inbound TCP 443 {source} in {}",
            if sgs.is_empty() {
                "the endpoints' security groups".to_string()
            } else {
                sgs.join(", ")
            }
        ),
    )
}

#[cfg(test)]
mod tests;
