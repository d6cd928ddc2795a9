//! Gathering the facts a diagnosis rests on (STS identity and clock, `ssh -V`, harmless
//! calls for each API ec2ssh uses, and for a target its EC2/SSM records and VPC: route
//! table, endpoints, DNS attributes, security groups), and the checklist
//! [`super::checks`] makes of them. `ec2ssh doctor` and the picker's F2 both use it.

use std::sync::{Arc, Mutex};

use aws_sdk_ec2::types::{Filter, VpcAttributeName};
use aws_sdk_ssm::types::SessionState;
use aws_sdk_sts::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_sts::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_sts::error::BoxError;
use futures::future::join_all;

use super::evidence::Evidence;
use super::facts::{
    EiceFacts, Endpoint, Fact, Identity, LocalFacts, NetworkFacts, Probe, Route, RouteTable, Rule,
    SecurityGroup, TargetFacts,
};
use super::{checks, Check};
use crate::aws::{AwsContext, AwsError};
use crate::fleet::reach::reach;
use crate::fleet::{self, Instance, Reach, Via};
use crate::time::unix_now;

/// The whole checklist: local, permissions and, for `target`, the instance and its
/// network path. Also what the picker's diagnose key shows, with what the picker's
/// connections already proved (`evidence`).
pub async fn diagnose(ctx: &AwsContext, target: Option<&str>, evidence: &Evidence) -> Vec<Check> {
    let Some(target) = target else {
        // Each profile's credentials and permissions; the local checks once.
        let several = ctx.profile_count() > 1;
        let mut list = Vec::new();
        for (k, view) in ctx.each_profile().enumerate() {
            let mut checks = account_checks(&view, None, evidence).await;
            if k > 0 {
                checks.retain(|c| {
                    c.group != "local" || c.name == "credentials" || c.name == "regions"
                });
            }
            if several {
                let profile = view.profile.clone().unwrap_or_default();
                for c in &mut checks {
                    if c.group != "local" || c.name == "credentials" || c.name == "regions" {
                        c.name = format!("{} [{profile}]", c.name);
                    }
                }
            }
            list.extend(checks);
        }
        return list;
    };
    // The instance's own profile and region are examined.
    let (facts, view) = match target_facts(ctx, target).await {
        Ok(t) => match ctx.for_instance(&t.instance) {
            Ok(view) => (Ok(t), view),
            Err(e) => (
                Err(Check::fail(
                    "target",
                    "instance",
                    e.to_string(),
                    "run again",
                )),
                ctx.clone(),
            ),
        },
        Err(c) => (Err(c), ctx.clone()),
    };
    let facts = match facts {
        Ok(mut t) => {
            if let (Some(vpc), Some(subnet)) =
                (t.instance.vpc_id.clone(), t.instance.subnet_id.clone())
            {
                if !t.instance.is_hybrid() {
                    t.network = Some(network_facts(&view, &t.instance, &vpc, &subnet).await);
                }
            }
            if on_eice_path(&t.instance) {
                t.eice = Some(eice_facts(&view, &t.instance).await);
            }
            Ok(t)
        }
        Err(c) => Err(c),
    };
    account_checks(&view, Some(facts), evidence).await
}

/// The checklist of one profile: local, permissions and the target's facts.
async fn account_checks(
    ctx: &AwsContext,
    target: Option<Result<TargetFacts, Check>>,
    evidence: &Evidence,
) -> Vec<Check> {
    let region = ctx.regions.first().cloned().unwrap_or_default();
    let (local, probes) = tokio::join!(local_facts(ctx, &region), probes(ctx));
    let mut list: Vec<Check> = checks::local(&local);
    let arn = local.identity.as_ref().ok().map(|i| i.arn.as_str());
    let id = match &target {
        Some(Ok(t)) => Some(t.instance.id.as_str()),
        _ => None,
    };
    list.extend(checks::permissions(&probes, arn, evidence, id));
    match target {
        Some(Ok(t)) => list.extend(checks::target(&t)),
        Some(Err(c)) => list.push(c),
        None => {}
    }
    list
}

/// Remembers the `Date` header of the responses it sees.
#[derive(Debug, Clone, Default)]
struct DateHeader(Arc<Mutex<Option<String>>>);

impl Intercept for DateHeader {
    fn name(&self) -> &'static str {
        "ec2ssh-doctor-date"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(date) = context.response().headers().get("date") {
            if let Ok(mut d) = self.0.lock() {
                *d = Some(date.to_string());
            }
        }
        Ok(())
    }
}

/// AWS's time minus ours, from an HTTP `Date` header.
pub fn skew_from_date(date: &str, now: i64) -> Option<i64> {
    use aws_sdk_sts::primitives::{DateTime, DateTimeFormat};
    DateTime::from_str(date, DateTimeFormat::HttpDate)
        .ok()
        .map(|t| t.secs() - now)
}

async fn local_facts(ctx: &AwsContext, region: &str) -> LocalFacts {
    let date = DateHeader::default();
    let sts = ctx.sts_with(region, date.clone());
    let identity = sts
        .get_caller_identity()
        .send()
        .await
        .map(|o| Identity {
            account: o.account().unwrap_or_default().to_string(),
            arn: o.arn().unwrap_or_default().to_string(),
            user_id: o.user_id().unwrap_or_default().to_string(),
        })
        .map_err(|e| ctx.tag(AwsError::from_sdk("sts:GetCallerIdentity", region, &e)));
    let now = unix_now();
    let header = date.0.lock().ok().and_then(|d| d.clone());
    let clock_skew_secs = header.and_then(|d| skew_from_date(&d, now));
    LocalFacts {
        identity,
        profile: ctx.profile.clone(),
        regions: ctx.regions.clone(),
        ssh: ssh_version().await,
        clock_skew_secs,
    }
}

/// `ssh -V` (it prints on stderr).
async fn ssh_version() -> Result<String, String> {
    let out = tokio::process::Command::new(crate::connect::ssh::default_program())
        .arg("-V")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| e.to_string())?;
    let text = if out.stderr.is_empty() {
        out.stdout
    } else {
        out.stderr
    };
    Ok(String::from_utf8_lossy(&text).trim().to_string())
}

/// The harmless calls, in every region.
async fn probes(ctx: &AwsContext) -> Vec<Probe> {
    type Call<'a> =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), AwsError>> + Send + 'a>>;
    let calls = |region: String| -> Vec<(&'static str, Call<'_>)> {
        let ec2 = ctx.ec2(&region);
        let ssm = ctx.ssm(&region);
        let (r1, r2, r3) = (region.clone(), region.clone(), region);
        let (ssm2, ssm3) = (ssm.clone(), ssm);
        vec![
            (
                "ec2:DescribeInstances",
                Box::pin(async move {
                    ec2.describe_instances()
                        .max_results(5)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| AwsError::from_sdk("ec2:DescribeInstances", &r1, &e))
                }),
            ),
            (
                "ssm:DescribeInstanceInformation",
                Box::pin(async move {
                    ssm2.describe_instance_information()
                        .max_results(5)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| AwsError::from_sdk("ssm:DescribeInstanceInformation", &r2, &e))
                }),
            ),
            (
                "ssm:DescribeSessions",
                Box::pin(async move {
                    ssm3.describe_sessions()
                        .state(SessionState::Active)
                        .max_results(1)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| AwsError::from_sdk("ssm:DescribeSessions", &r3, &e))
                }),
            ),
        ]
    };
    let mut probes: Vec<Probe> = Vec::new();
    let mut pending = Vec::new();
    for region in &ctx.regions {
        for (action, call) in calls(region.clone()) {
            pending.push(async move { (action, region.clone(), call.await) });
        }
    }
    for (action, region, result) in join_all(pending).await {
        let i = match probes.iter().position(|p| p.action == action) {
            Some(i) => i,
            None => {
                probes.push(Probe {
                    action: action.to_string(),
                    allowed: vec![],
                    errors: vec![],
                });
                probes.len() - 1
            }
        };
        match result {
            Ok(()) => probes[i].allowed.push(region),
            Err(e) => probes[i].errors.push(e),
        }
    }
    probes
}

/// The target's facts, or the check that says why there is no target to examine.
async fn target_facts(ctx: &AwsContext, target: &str) -> Result<TargetFacts, Check> {
    let inventory = fleet::fetch(ctx).await.map_err(|e| {
        let first = e.errors.first();
        Check::fail(
            "target",
            "instance",
            format!("cannot list the fleet: {e}"),
            first.map(|e| e.fix()).unwrap_or_default(),
        )
    })?;
    let instance: Instance = crate::select::find(&inventory.instances, target)
        .map_err(|e| {
            let (what, fix) = e.explain().into_iter().next().unwrap_or_default();
            Check::fail("target", "instance", what, fix.unwrap_or_default())
        })?
        .clone();
    let failed = |action: &str| {
        inventory
            .warnings
            .iter()
            .find(|w| {
                // Merged errors name every call and region they hit, ", "-separated.
                w.action.split(", ").any(|a| a == action)
                    && w.region.split(", ").any(|r| r == instance.region)
                    && (w.profile().is_none()
                        || w.profile().is_some_and(|p| {
                            p.split(", ")
                                .any(|p| Some(p) == instance.profile.as_deref())
                        }))
            })
            .cloned()
    };
    let ec2 = failed("ec2:DescribeInstances").map_or(Ok(()), Err);
    let ssm = failed("ssm:DescribeInstanceInformation").map_or(Ok(()), Err);
    // The network is examined with the instance's own profile (see `diagnose`).
    Ok(TargetFacts {
        instance,
        ec2,
        ssm,
        now: unix_now(),
        network: None,
        eice: None,
    })
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

async fn network_facts(ctx: &AwsContext, i: &Instance, vpc: &str, subnet: &str) -> NetworkFacts {
    let region = i.region.as_str();
    let ec2 = ctx.ec2(region);
    // Listed with the fleet (DescribeInstances): no second call.
    let instance_groups: Fact<Vec<String>> = Ok(i.security_groups.clone());
    let route_table = async {
        let explicit = ec2
            .describe_route_tables()
            .filters(filter("association.subnet-id", subnet))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ec2:DescribeRouteTables", region, &e))?;
        let out = if explicit.route_tables().is_empty() {
            ec2.describe_route_tables()
                .filters(filter("vpc-id", vpc))
                .filters(filter("association.main", "true"))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ec2:DescribeRouteTables", region, &e))?
        } else {
            explicit
        };
        Ok::<_, AwsError>(out.route_tables().first().map(|t| {
            RouteTable {
                id: t.route_table_id().unwrap_or_default().to_string(),
                routes: t
                    .routes()
                    .iter()
                    .map(|r| Route {
                        destination: r.destination_cidr_block().unwrap_or_default().to_string(),
                        target: [
                            r.gateway_id(),
                            r.nat_gateway_id(),
                            r.network_interface_id(),
                            r.transit_gateway_id(),
                            r.instance_id(),
                            r.vpc_peering_connection_id(),
                        ]
                        .into_iter()
                        .flatten()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                    })
                    .collect(),
            }
        }))
    };
    let endpoints = async {
        let out = ec2
            .describe_vpc_endpoints()
            .filters(filter("vpc-id", vpc))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ec2:DescribeVpcEndpoints", region, &e))?;
        Ok::<_, AwsError>(
            out.vpc_endpoints()
                .iter()
                .map(|e| Endpoint {
                    id: e.vpc_endpoint_id().unwrap_or_default().to_string(),
                    service: e.service_name().unwrap_or_default().to_string(),
                    private_dns: e.private_dns_enabled().unwrap_or(false),
                    state: e
                        .state()
                        .map(|s| s.as_str().to_ascii_lowercase())
                        .unwrap_or_default(),
                    groups: e
                        .groups()
                        .iter()
                        .filter_map(|g| g.group_id().map(str::to_string))
                        .collect(),
                })
                .collect::<Vec<_>>(),
        )
    };
    let attribute = |name: VpcAttributeName| {
        let ec2 = ec2.clone();
        async move {
            let out = ec2
                .describe_vpc_attribute()
                .vpc_id(vpc)
                .attribute(name.clone())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ec2:DescribeVpcAttribute", region, &e))?;
            let value = match name {
                VpcAttributeName::EnableDnsHostnames => out.enable_dns_hostnames(),
                _ => out.enable_dns_support(),
            };
            Ok::<_, AwsError>(value.and_then(|v| v.value()).unwrap_or(false))
        }
    };
    let (route_table, endpoints, dns_support, dns_hostnames) = tokio::join!(
        route_table,
        endpoints,
        attribute(VpcAttributeName::EnableDnsSupport),
        attribute(VpcAttributeName::EnableDnsHostnames),
    );
    let endpoint_groups = endpoint_groups(&ec2, region, &endpoints).await;
    NetworkFacts {
        region: region.to_string(),
        vpc_id: vpc.to_string(),
        subnet_id: subnet.to_string(),
        private_ip: i.private_ip.clone(),
        public_ip: i.public_ip.clone(),
        instance_groups,
        route_table,
        endpoints,
        dns_support,
        dns_hostnames,
        endpoint_groups,
    }
}

/// The ingress rules of the Systems Manager endpoints' security groups.
async fn endpoint_groups(
    ec2: &aws_sdk_ec2::Client,
    region: &str,
    endpoints: &Fact<Vec<Endpoint>>,
) -> Fact<Vec<SecurityGroup>> {
    let Ok(endpoints) = endpoints else {
        return Ok(Vec::new());
    };
    let (found, _) = checks::ssm_endpoints(endpoints, region);
    let mut ids: Vec<String> = found.iter().flat_map(|e| e.groups.clone()).collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let out = ec2
        .describe_security_groups()
        .set_group_ids(Some(ids))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ec2:DescribeSecurityGroups", region, &e))?;
    Ok(out.security_groups().iter().map(to_group).collect())
}

fn to_group(g: &aws_sdk_ec2::types::SecurityGroup) -> SecurityGroup {
    let rules = |perms: &[aws_sdk_ec2::types::IpPermission]| -> Vec<Rule> {
        perms
            .iter()
            .map(|p| Rule {
                protocol: p.ip_protocol().unwrap_or_default().to_string(),
                from_port: p.from_port(),
                to_port: p.to_port(),
                cidrs: p
                    .ip_ranges()
                    .iter()
                    .filter_map(|r| r.cidr_ip().map(str::to_string))
                    .collect(),
                groups: p
                    .user_id_group_pairs()
                    .iter()
                    .filter_map(|g| g.group_id().map(str::to_string))
                    .collect(),
            })
            .collect()
    };
    SecurityGroup {
        id: g.group_id().unwrap_or_default().to_string(),
        ingress: rules(g.ip_permissions()),
        egress: rules(g.ip_permissions_egress()),
    }
}

/// Whether doctor examines the EC2 Instance Connect Endpoint path of `i`: an EC2
/// instance Session Manager would not carry (auto does not pick it).
fn on_eice_path(i: &Instance) -> bool {
    !i.is_hybrid() && i.state.is_some() && !matches!(reach(i, Via::Auto), Reach::Ssm)
}

/// The security groups on both sides of the endpoint (one call).
async fn eice_facts(ctx: &AwsContext, i: &Instance) -> EiceFacts {
    let Some(e) = i.eice.endpoint() else {
        return EiceFacts { groups: None };
    };
    let mut ids: Vec<String> = e
        .security_groups
        .iter()
        .chain(&i.security_groups)
        .cloned()
        .collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return EiceFacts {
            groups: Some(Ok(Vec::new())),
        };
    }
    let region = i.region.as_str();
    let groups = ctx
        .ec2(region)
        .describe_security_groups()
        .set_group_ids(Some(ids))
        .send()
        .await
        .map(|out| out.security_groups().iter().map(to_group).collect())
        .map_err(|e| AwsError::from_sdk("ec2:DescribeSecurityGroups", region, &e));
    EiceFacts {
        groups: Some(groups),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_from_the_date_header() {
        // Sun, 06 Nov 1994 08:49:37 GMT = 784111777
        assert_eq!(
            skew_from_date("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_777 - 400),
            Some(400)
        );
        assert_eq!(skew_from_date("yesterday", 0), None);
    }
}
