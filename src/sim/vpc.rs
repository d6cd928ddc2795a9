//! The network around the simulated fleet, for `ec2ssh doctor`: VPCs (with their DNS
//! attributes), subnets (each with its own route table), interface endpoints and
//! security groups, described in the fleet file and served as EC2
//! `DescribeRouteTables`, `DescribeVpcEndpoints`, `DescribeVpcAttribute` and
//! `DescribeSecurityGroups` (query/XML), plus STS `GetCallerIdentity`.
//!
//! ```toml
//! [[vpc]]
//! id = "vpc-1"
//! cidr = "10.0.0.0/16"
//! dns_hostnames = false          # dns_support / dns_hostnames default to true
//!
//! [[subnet]]
//! id = "subnet-1"
//! vpc_id = "vpc-1"
//! routes = ["0.0.0.0/0=nat-1"]   # besides the VPC's local route
//!
//! [[endpoint]]
//! service = "ssm"                # or com.amazonaws.REGION.ssm
//! vpc_id = "vpc-1"
//! security_groups = ["sg-vpce"]  # private_dns defaults to true
//!
//! [[security_group]]
//! id = "sg-vpce"
//! ingress = ["tcp:443:10.0.0.0/16", "tcp:0-65535:sg-app", "all:*:10.1.0.0/16"]
//! ```

use serde::Deserialize;

use super::ec2::{escape, Params};
use super::{ApiError, SimState};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SimVpc {
    pub id: String,
    /// Default: the fleet's default region.
    pub region: Option<String>,
    pub cidr: String,
    pub dns_support: bool,
    pub dns_hostnames: bool,
}

impl Default for SimVpc {
    fn default() -> Self {
        SimVpc {
            id: String::new(),
            region: None,
            cidr: "10.0.0.0/16".into(),
            dns_support: true,
            dns_hostnames: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SimSubnet {
    pub id: String,
    pub vpc_id: String,
    /// `DESTINATION=TARGET`, e.g. `0.0.0.0/0=igw-1` or `0.0.0.0/0=nat-1`.
    pub routes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SimEndpoint {
    /// Default: derived from the service and VPC.
    pub id: Option<String>,
    /// `ssm`, `ec2messages`, `ssmmessages`, or a full `com.amazonaws.REGION.NAME`.
    pub service: String,
    pub vpc_id: String,
    pub private_dns: bool,
    pub security_groups: Vec<String>,
    pub state: String,
}

impl Default for SimEndpoint {
    fn default() -> Self {
        SimEndpoint {
            id: None,
            service: String::new(),
            vpc_id: String::new(),
            private_dns: true,
            security_groups: Vec::new(),
            state: "available".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SimSecurityGroup {
    pub id: String,
    pub vpc_id: Option<String>,
    /// `PROTOCOL:PORTS:SOURCE`: `tcp`/`udp`/`all`, `443` or `0-65535` or `*`, a CIDR or `sg-…`.
    pub ingress: Vec<String>,
}

/// One parsed ingress rule.
#[derive(Debug, Clone, PartialEq)]
struct IngressRule {
    protocol: String,
    ports: Option<(i32, i32)>,
    source: String,
}

fn parse_rule(s: &str) -> Option<IngressRule> {
    let mut parts = s.splitn(3, ':');
    let (proto, ports, source) = (parts.next()?, parts.next()?, parts.next()?);
    let protocol = match proto {
        "all" | "-1" => "-1".to_string(),
        p => p.to_string(),
    };
    let ports = match ports {
        "*" => None,
        p => match p.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => {
                let n = p.parse().ok()?;
                Some((n, n))
            }
        },
    };
    Some(IngressRule {
        protocol,
        ports,
        source: source.to_string(),
    })
}

fn vpc_region<'a>(state: &'a SimState, vpc_id: &str) -> Option<&'a str> {
    state
        .fleet
        .vpcs
        .iter()
        .find(|v| v.id == vpc_id)
        .map(|v| v.region.as_deref().unwrap_or(&state.fleet.default_region))
}

fn suffix(id: &str) -> &str {
    id.split_once('-').map(|(_, s)| s).unwrap_or(id)
}

/// `Filter.N.Name` → values, for the filters these operations accept.
fn filters(p: &Params, known: &[&str]) -> Result<Vec<(String, Vec<String>)>, ApiError> {
    let mut out = Vec::new();
    for n in 1.. {
        let Some(name) = p.get(&format!("Filter.{n}.Name")) else {
            break;
        };
        if !known.contains(&name.as_str()) {
            return Err(ApiError::new(
                400,
                "InvalidParameterValue",
                format!("The filter '{name}' is invalid"),
            ));
        }
        let values = (1..)
            .map_while(|k| p.get(&format!("Filter.{n}.Value.{k}")).cloned())
            .collect();
        out.push((name.clone(), values));
    }
    Ok(out)
}

fn indexed(p: &Params, prefix: &str) -> Vec<String> {
    (1..)
        .map_while(|n| p.get(&format!("{prefix}.{n}")).cloned())
        .collect()
}

fn matches(filters: &[(String, Vec<String>)], name: &str, value: &str) -> bool {
    filters
        .iter()
        .filter(|(n, _)| n == name)
        .all(|(_, vs)| vs.iter().any(|v| v == value))
}

fn response(op: &str, request_id: &str, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><{op}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>{request_id}</requestId>{body}</{op}Response>"#
    )
}

struct Table {
    id: String,
    vpc_id: String,
    subnet: Option<String>,
    routes: Vec<(String, String)>,
}

pub fn describe_route_tables(
    state: &SimState,
    region: &str,
    p: &Params,
) -> Result<String, ApiError> {
    let f = filters(
        p,
        &[
            "association.subnet-id",
            "vpc-id",
            "association.main",
            "route-table-id",
        ],
    )?;
    let mut tables = Vec::new();
    for v in &state.fleet.vpcs {
        if vpc_region(state, &v.id) != Some(region) {
            continue;
        }
        let local = (v.cidr.clone(), "local".to_string());
        tables.push(Table {
            id: format!("rtb-main{}", suffix(&v.id)),
            vpc_id: v.id.clone(),
            subnet: None,
            routes: vec![local.clone()],
        });
        for s in state.fleet.subnets.iter().filter(|s| s.vpc_id == v.id) {
            let mut routes = vec![local.clone()];
            routes.extend(s.routes.iter().filter_map(|r| {
                let (d, t) = r.split_once('=')?;
                Some((d.trim().to_string(), t.trim().to_string()))
            }));
            tables.push(Table {
                id: format!("rtb-{}", suffix(&s.id)),
                vpc_id: v.id.clone(),
                subnet: Some(s.id.clone()),
                routes,
            });
        }
    }
    let mut xml = String::from("<routeTableSet>");
    for t in tables.iter().filter(|t| {
        matches(&f, "vpc-id", &t.vpc_id)
            && matches(&f, "route-table-id", &t.id)
            && matches(
                &f,
                "association.main",
                if t.subnet.is_none() { "true" } else { "false" },
            )
            && (f.iter().all(|(n, _)| n != "association.subnet-id")
                || t.subnet
                    .as_deref()
                    .is_some_and(|s| matches(&f, "association.subnet-id", s)))
    }) {
        xml.push_str(&format!(
            "<item><routeTableId>{}</routeTableId><vpcId>{}</vpcId><ownerId>123456789012</ownerId><routeSet>",
            escape(&t.id),
            escape(&t.vpc_id)
        ));
        for (dest, target) in &t.routes {
            let element = match target.split('-').next().unwrap_or("") {
                "nat" => "natGatewayId",
                "eni" => "networkInterfaceId",
                "tgw" => "transitGatewayId",
                "pcx" => "vpcPeeringConnectionId",
                "i" => "instanceId",
                _ => "gatewayId",
            };
            xml.push_str(&format!(
                "<item><destinationCidrBlock>{}</destinationCidrBlock><{element}>{}</{element}><state>active</state><origin>CreateRoute</origin></item>",
                escape(dest),
                escape(target)
            ));
        }
        xml.push_str("</routeSet><associationSet><item>");
        xml.push_str(&format!(
            "<routeTableAssociationId>rtbassoc-{}</routeTableAssociationId><routeTableId>{}</routeTableId>",
            suffix(&t.id),
            escape(&t.id)
        ));
        match &t.subnet {
            Some(s) => xml.push_str(&format!(
                "<subnetId>{}</subnetId><main>false</main>",
                escape(s)
            )),
            None => xml.push_str("<main>true</main>"),
        }
        xml.push_str("<associationState><state>associated</state></associationState></item></associationSet><tagSet/></item>");
    }
    xml.push_str("</routeTableSet>");
    Ok(response("DescribeRouteTables", &state.request_id(), &xml))
}

fn endpoint_service(state: &SimState, e: &SimEndpoint) -> String {
    if e.service.starts_with("com.amazonaws.") {
        return e.service.clone();
    }
    let region = vpc_region(state, &e.vpc_id).unwrap_or(&state.fleet.default_region);
    format!("com.amazonaws.{region}.{}", e.service)
}

pub fn describe_vpc_endpoints(
    state: &SimState,
    region: &str,
    p: &Params,
) -> Result<String, ApiError> {
    let f = filters(p, &["vpc-id", "service-name", "vpc-endpoint-type"])?;
    let ids = indexed(p, "VpcEndpointId");
    let mut xml = String::from("<vpcEndpointSet>");
    for e in &state.fleet.endpoints {
        let id =
            e.id.clone()
                .unwrap_or_else(|| format!("vpce-{}{}", e.service, suffix(&e.vpc_id)));
        let service = endpoint_service(state, e);
        let in_region =
            vpc_region(state, &e.vpc_id).unwrap_or(&state.fleet.default_region) == region;
        if !in_region
            || !(ids.is_empty() || ids.contains(&id))
            || !matches(&f, "vpc-id", &e.vpc_id)
            || !matches(&f, "service-name", &service)
            || !matches(&f, "vpc-endpoint-type", "Interface")
        {
            continue;
        }
        xml.push_str(&format!(
            "<item><vpcEndpointId>{}</vpcEndpointId><vpcEndpointType>Interface</vpcEndpointType><vpcId>{}</vpcId><serviceName>{}</serviceName><state>{}</state><privateDnsEnabled>{}</privateDnsEnabled><groupSet>",
            escape(&id),
            escape(&e.vpc_id),
            escape(&service),
            escape(&e.state),
            e.private_dns
        ));
        for g in &e.security_groups {
            xml.push_str(&format!(
                "<item><groupId>{}</groupId><groupName>{}</groupName></item>",
                escape(g),
                escape(g)
            ));
        }
        xml.push_str("</groupSet><ownerId>123456789012</ownerId></item>");
    }
    xml.push_str("</vpcEndpointSet>");
    Ok(response("DescribeVpcEndpoints", &state.request_id(), &xml))
}

pub fn describe_vpc_attribute(
    state: &SimState,
    region: &str,
    p: &Params,
) -> Result<String, ApiError> {
    let id = p.get("VpcId").map(String::as_str).unwrap_or("");
    let vpc = state
        .fleet
        .vpcs
        .iter()
        .find(|v| v.id == id && vpc_region(state, &v.id) == Some(region))
        .ok_or_else(|| {
            ApiError::new(
                400,
                "InvalidVpcID.NotFound",
                format!("The vpc ID '{id}' does not exist"),
            )
        })?;
    let attr = p.get("Attribute").map(String::as_str).unwrap_or("");
    let value = match attr {
        "enableDnsSupport" => vpc.dns_support,
        "enableDnsHostnames" => vpc.dns_hostnames,
        _ => {
            return Err(ApiError::new(
                400,
                "InvalidParameterValue",
                format!("Value ({attr}) for parameter attribute is invalid."),
            ))
        }
    };
    let body = format!(
        "<vpcId>{}</vpcId><{attr}><value>{value}</value></{attr}>",
        escape(id)
    );
    Ok(response("DescribeVpcAttribute", &state.request_id(), &body))
}

pub fn describe_security_groups(
    state: &SimState,
    _region: &str,
    p: &Params,
) -> Result<String, ApiError> {
    let f = filters(p, &["group-id", "vpc-id"])?;
    let ids = indexed(p, "GroupId");
    if let Some(missing) = ids
        .iter()
        .find(|id| !state.fleet.security_groups.iter().any(|g| &g.id == *id))
    {
        return Err(ApiError::new(
            400,
            "InvalidGroup.NotFound",
            format!("The security group '{missing}' does not exist"),
        ));
    }
    let mut xml = String::from("<securityGroupInfo>");
    for g in &state.fleet.security_groups {
        let vpc = g.vpc_id.as_deref().unwrap_or("");
        if !(ids.is_empty() || ids.contains(&g.id))
            || !matches(&f, "group-id", &g.id)
            || !matches(&f, "vpc-id", vpc)
        {
            continue;
        }
        xml.push_str(&format!(
            "<item><ownerId>123456789012</ownerId><groupId>{}</groupId><groupName>{}</groupName><groupDescription>simulated</groupDescription><vpcId>{}</vpcId><ipPermissions>",
            escape(&g.id),
            escape(&g.id),
            escape(vpc)
        ));
        for r in g.ingress.iter().filter_map(|r| parse_rule(r)) {
            xml.push_str(&format!(
                "<item><ipProtocol>{}</ipProtocol>",
                escape(&r.protocol)
            ));
            if let Some((from, to)) = r.ports {
                xml.push_str(&format!("<fromPort>{from}</fromPort><toPort>{to}</toPort>"));
            }
            if r.source.starts_with("sg-") {
                xml.push_str(&format!(
                    "<groups><item><userId>123456789012</userId><groupId>{}</groupId></item></groups><ipRanges/>",
                    escape(&r.source)
                ));
            } else {
                xml.push_str(&format!(
                    "<groups/><ipRanges><item><cidrIp>{}</cidrIp></item></ipRanges>",
                    escape(&r.source)
                ));
            }
            xml.push_str("<ipv6Ranges/><prefixListIds/></item>");
        }
        xml.push_str("</ipPermissions><ipPermissionsEgress/></item>");
    }
    xml.push_str("</securityGroupInfo>");
    Ok(response(
        "DescribeSecurityGroups",
        &state.request_id(),
        &xml,
    ))
}

/// STS `GetCallerIdentity` (query protocol, its own XML namespace): the caller's account.
pub fn get_caller_identity(state: &SimState, account: &str) -> String {
    format!(
        r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::{account}:user/demo</Arn><UserId>AIDADEMO00000000000001</UserId><Account>{account}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></GetCallerIdentityResponse>"#,
        state.request_id()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingress_rules_parse() {
        assert_eq!(
            parse_rule("tcp:443:10.0.0.0/16"),
            Some(IngressRule {
                protocol: "tcp".into(),
                ports: Some((443, 443)),
                source: "10.0.0.0/16".into()
            })
        );
        assert_eq!(parse_rule("all:*:sg-1").unwrap().protocol, "-1");
        assert_eq!(
            parse_rule("tcp:0-65535:sg-1").unwrap().ports,
            Some((0, 65535))
        );
        assert_eq!(parse_rule("tcp:443"), None);
    }
}
