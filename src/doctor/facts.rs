//! What doctor learns before judging anything: plain data, gathered by
//! `commands::doctor` from AWS and the local machine, evaluated by `checks`.

use crate::aws::AwsError;
use crate::fleet::Instance;

/// A fact, or the AWS call that could not fetch it.
pub type Fact<T> = Result<T, AwsError>;

/// Whose credentials are in use (STS GetCallerIdentity).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Identity {
    pub account: String,
    pub arn: String,
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalFacts {
    pub identity: Fact<Identity>,
    pub profile: Option<String>,
    pub regions: Vec<String>,
    /// The first line of `ssh -V`, or why it could not be run.
    pub ssh: Result<String, String>,
    /// AWS's clock minus ours, in seconds, from the `Date` header of a response.
    pub clock_skew_secs: Option<i64>,
}

/// One harmless call per API ec2ssh uses, tried in every region.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The IAM action, e.g. `ec2:DescribeInstances`.
    pub action: String,
    /// Regions where the call worked.
    pub allowed: Vec<String>,
    /// The calls that failed.
    pub errors: Vec<AwsError>,
}

/// The machine `doctor TARGET` is about, and what surrounds it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetFacts {
    pub instance: Instance,
    /// Whether EC2 could be asked about it (DescribeInstances not denied).
    pub ec2: Result<(), AwsError>,
    /// Whether SSM could be asked about it.
    pub ssm: Result<(), AwsError>,
    /// Unix seconds now, for ping ages.
    pub now: i64,
    /// The VPC around an EC2 instance (`None` for hybrid nodes or when unknown).
    pub network: Option<NetworkFacts>,
    /// The EC2 Instance Connect Endpoint path, for a row on it (`None`: not on it).
    pub eice: Option<EiceFacts>,
}

/// What the EICE checks look at: the instance's `eice` (listed with the fleet) and
/// the security groups of the endpoint and of the instance.
#[derive(Debug, Clone, PartialEq)]
pub struct EiceFacts {
    /// Both sides' groups (`None` when there is no endpoint to ask about).
    pub groups: Option<Fact<Vec<SecurityGroup>>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkFacts {
    pub region: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    /// The instance's own security groups.
    pub instance_groups: Fact<Vec<String>>,
    /// The subnet's route table (explicitly associated, else the VPC's main one);
    /// `None` when there is none to be found.
    pub route_table: Fact<Option<RouteTable>>,
    /// The VPC's endpoints (all services).
    pub endpoints: Fact<Vec<Endpoint>>,
    pub dns_support: Fact<bool>,
    pub dns_hostnames: Fact<bool>,
    /// The security groups of the Systems Manager endpoints.
    pub endpoint_groups: Fact<Vec<SecurityGroup>>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteTable {
    pub id: String,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Route {
    /// e.g. `0.0.0.0/0`.
    pub destination: String,
    /// `igw-…`, `nat-…`, `local`, `eni-…`, `tgw-…`…
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Endpoint {
    pub id: String,
    /// e.g. `com.amazonaws.us-east-1.ssm`.
    pub service: String,
    pub private_dns: bool,
    /// `available`, `pending`, …
    pub state: String,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SecurityGroup {
    pub id: String,
    pub ingress: Vec<Rule>,
    /// Outbound rules (`cidrs`/`groups` are destinations).
    pub egress: Vec<Rule>,
}

/// One ingress permission: protocol and ports, from CIDRs and/or security groups.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rule {
    /// `tcp`, `udp`, `icmp`, or `-1` for all.
    pub protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub cidrs: Vec<String>,
    pub groups: Vec<String>,
}

impl Rule {
    /// Does this rule let TCP `port` in from `ip` (or from a member of `groups`)?
    pub fn admits(&self, port: i32, ip: Option<&str>, groups: &[String]) -> bool {
        let proto = matches!(self.protocol.as_str(), "-1" | "all" | "tcp" | "6");
        let all_ports = matches!(self.protocol.as_str(), "-1" | "all");
        let ports = all_ports
            || match (self.from_port, self.to_port) {
                (Some(f), Some(t)) => (f == -1 && t == -1) || (f <= port && port <= t),
                _ => false,
            };
        let source = ip
            .is_some_and(|ip| self.cidrs.iter().any(|c| crate::net::cidr_contains(c, ip)))
            || self.groups.iter().any(|g| groups.contains(g));
        proto && ports && source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_admit_443_by_cidr_group_or_all_traffic() {
        let tcp = |from, to, cidrs: &[&str], groups: &[&str]| Rule {
            protocol: "tcp".into(),
            from_port: Some(from),
            to_port: Some(to),
            cidrs: cidrs.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        };
        let mine = vec!["sg-app".to_string()];
        let ip = Some("10.0.1.5");
        assert!(tcp(443, 443, &["10.0.0.0/16"], &[]).admits(443, ip, &mine));
        assert!(tcp(0, 65535, &[], &["sg-app"]).admits(443, ip, &mine));
        assert!(!tcp(22, 22, &["10.0.0.0/16"], &[]).admits(443, ip, &mine));
        assert!(!tcp(443, 443, &["192.168.0.0/16"], &["sg-other"]).admits(443, ip, &mine));
        let all = Rule {
            protocol: "-1".into(),
            cidrs: vec!["10.0.0.0/8".into()],
            ..Rule::default()
        };
        assert!(all.admits(443, ip, &mine));
        let udp = Rule {
            protocol: "udp".into(),
            ..tcp(443, 443, &["0.0.0.0/0"], &[])
        };
        assert!(!udp.admits(443, ip, &mine));
    }
}
