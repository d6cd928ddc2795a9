//! EC2 `DescribeInstances` in the query protocol: form parameters in, XML out.

use std::collections::BTreeMap;

use super::fleet::SimInstance;
use super::{ApiError, SimState};

/// The form parameters of an EC2 query request (`Action`, `Filter.1.Name`, …).
pub type Params = BTreeMap<String, String>;

pub fn describe_instances(state: &SimState, region: &str, p: &Params) -> Result<String, ApiError> {
    let ids: Vec<&str> = indexed(p, "InstanceId").collect();
    let filters = filters(p)?;
    let mut matching: Vec<&SimInstance> = state
        .fleet
        .instances
        .iter()
        .filter(|i| i.in_ec2() && i.region(&state.fleet.default_region) == region)
        .filter(|i| ids.is_empty() || ids.contains(&i.id.as_str()))
        .filter(|i| {
            filters
                .iter()
                .all(|(name, values)| matches(i, name, values))
        })
        .collect();
    if let Some(missing) = ids.iter().find(|id| !matching.iter().any(|i| i.id == **id)) {
        return Err(ApiError::new(
            400,
            "InvalidInstanceID.NotFound",
            format!("The instance ID '{missing}' does not exist"),
        ));
    }
    let start: usize = match p.get("NextToken") {
        Some(t) => t.parse().map_err(|_| {
            ApiError::new(400, "InvalidParameterValue", "Invalid value for NextToken")
        })?,
        None => 0,
    };
    let page = match p.get("MaxResults") {
        Some(m) => {
            let m: usize = m.parse().unwrap_or(0);
            if !(5..=1000).contains(&m) || !ids.is_empty() {
                return Err(ApiError::new(
                    400,
                    "InvalidParameterValue",
                    "MaxResults must be between 5 and 1000 and cannot be used with InstanceIds",
                ));
            }
            m
        }
        None => usize::MAX,
    };
    if start > matching.len() {
        return Err(ApiError::new(
            400,
            "InvalidParameterValue",
            "Invalid value for NextToken",
        ));
    }
    let end = start.saturating_add(page).min(matching.len());
    let next = (end < matching.len()).then(|| end.to_string());
    matching = matching
        .get(start..end)
        .map(<[_]>::to_vec)
        .unwrap_or_default();

    let mut xml = String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    xml.push_str(r#"<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">"#);
    xml.push_str(&format!(
        "<requestId>{}</requestId><reservationSet>",
        state.request_id()
    ));
    for i in matching {
        xml.push_str(&format!(
            "<item><reservationId>r-{}</reservationId><ownerId>123456789012</ownerId><groupSet/><instancesSet><item>",
            i.id.trim_start_matches("i-")
        ));
        instance_xml(state, i, &mut xml);
        xml.push_str("</item></instancesSet></item>");
    }
    xml.push_str("</reservationSet>");
    if let Some(n) = next {
        xml.push_str(&format!("<nextToken>{n}</nextToken>"));
    }
    xml.push_str("</DescribeInstancesResponse>");
    Ok(xml)
}

fn instance_xml(state: &SimState, i: &SimInstance, xml: &mut String) {
    let st = i.state.as_deref().unwrap_or("running");
    let code = match st {
        "pending" => 0,
        "running" => 16,
        "shutting-down" => 32,
        "terminated" => 48,
        "stopping" => 64,
        _ => 80,
    };
    let dashed = |ip: &String| ip.replace('.', "-");
    let private_dns = i
        .private_ip
        .as_ref()
        .map(|ip| format!("ip-{}.ec2.internal", dashed(ip)));
    let public_dns = i
        .public_ip
        .as_ref()
        .map(|ip| format!("ec2-{}.compute-1.amazonaws.com", dashed(ip)));
    let launch = state.days_ago(i.launched_days_ago.unwrap_or(30));
    let windows = i.platform_type.as_deref() == Some("Windows");
    element(xml, "instanceId", Some(&i.id));
    element(xml, "imageId", i.image_id.as_deref());
    xml.push_str(&format!(
        "<instanceState><code>{code}</code><name>{}</name></instanceState>",
        escape(st)
    ));
    element(xml, "privateDnsName", private_dns.as_deref());
    element(xml, "dnsName", Some(public_dns.as_deref().unwrap_or("")));
    element(xml, "instanceType", i.instance_type.as_deref());
    element(xml, "launchTime", Some(&launch));
    element(xml, "platform", windows.then_some("windows"));
    element(
        xml,
        "platformDetails",
        Some(if windows { "Windows" } else { "Linux/UNIX" }),
    );
    element(xml, "privateIpAddress", i.private_ip.as_deref());
    element(xml, "ipAddress", i.public_ip.as_deref());
    element(
        xml,
        "vpcId",
        Some(i.vpc_id.as_deref().unwrap_or("vpc-0demo0000000000001")),
    );
    element(
        xml,
        "subnetId",
        Some(i.subnet_id.as_deref().unwrap_or("subnet-0demo000000000001")),
    );
    element(xml, "architecture", Some("x86_64"));
    if !i.security_groups.is_empty() {
        xml.push_str("<groupSet>");
        for g in &i.security_groups {
            xml.push_str(&format!(
                "<item><groupId>{}</groupId><groupName>{}</groupName></item>",
                escape(g),
                escape(g)
            ));
        }
        xml.push_str("</groupSet>");
    }
    if let Some(az) = &i.az {
        xml.push_str(&format!(
            "<placement><availabilityZone>{}</availabilityZone><tenancy>default</tenancy></placement>",
            escape(az)
        ));
    }
    if let Some(p) = &i.instance_profile {
        xml.push_str(&format!(
            "<iamInstanceProfile><arn>arn:aws:iam::123456789012:instance-profile/{}</arn><id>AIPADEMO{}</id></iamInstanceProfile>",
            escape(p),
            i.id.len()
        ));
    }
    let tags = i.tags_with_name();
    if !tags.is_empty() {
        xml.push_str("<tagSet>");
        for (k, v) in tags {
            xml.push_str(&format!(
                "<item><key>{}</key><value>{}</value></item>",
                escape(&k),
                escape(&v)
            ));
        }
        xml.push_str("</tagSet>");
    }
}

/// `<name>value</name>`, escaped; nothing when there is no value.
fn element(xml: &mut String, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        xml.push_str(&format!("<{name}>{}</{name}>", escape(v)));
    }
}

/// `Prefix.1`, `Prefix.2`, … values in order.
fn indexed<'a>(p: &'a Params, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    (1..).map_while(move |n| p.get(&format!("{prefix}.{n}")).map(String::as_str))
}

fn filters(p: &Params) -> Result<Vec<(String, Vec<String>)>, ApiError> {
    let mut out = Vec::new();
    for n in 1.. {
        let Some(name) = p.get(&format!("Filter.{n}.Name")) else {
            break;
        };
        let values: Vec<String> = indexed(p, &format!("Filter.{n}.Value"))
            .map(str::to_string)
            .collect();
        let known = ["instance-state-name", "instance-id", "tag-key"].contains(&name.as_str())
            || name.starts_with("tag:");
        if !known {
            return Err(ApiError::new(
                400,
                "InvalidParameterValue",
                format!("The filter '{name}' is invalid"),
            ));
        }
        out.push((name.clone(), values));
    }
    Ok(out)
}

fn matches(i: &SimInstance, name: &str, values: &[String]) -> bool {
    let any = |v: Option<&str>| v.is_some_and(|v| values.iter().any(|w| w == v));
    let tags = i.tags_with_name();
    match name {
        "instance-state-name" => any(i.state.as_deref()),
        "instance-id" => any(Some(&i.id)),
        "tag-key" => tags.keys().any(|k| values.contains(k)),
        _ => any(name
            .strip_prefix("tag:")
            .and_then(|k| tags.get(k))
            .map(String::as_str)),
    }
}

/// Escapes XML text. Characters XML 1.0 cannot carry at all (most C0 controls)
/// are sent as numeric references, which is what the SDK's parser accepts.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push_str(&format!("&#x{:X};", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
        assert_eq!(escape("x\u{1b}[31m\n"), "x&#x1B;[31m&#xA;");
        assert_eq!(escape("日本"), "日本");
    }
}
