//! EC2 `DescribeInstances` in the query protocol: form parameters in, XML out.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::fleet::SimInstance;
use super::{ApiError, SimState};

/// The form parameters of an EC2 query request (`Action`, `Filter.1.Name`, …).
pub type Params = BTreeMap<String, String>;

/// `account`'s instances in `region` (another account's ids do not exist for it).
pub fn describe_instances(
    state: &SimState,
    account: &str,
    region: &str,
    p: &Params,
) -> Result<String, ApiError> {
    let ids: Vec<&str> = indexed(p, "InstanceId").collect();
    let filters = filters(p)?;
    let fleet = &state.fleet.instances;
    let positions = state.region_positions(account, region);
    let wanted = |i: &SimInstance| {
        i.in_ec2()
            && (ids.is_empty() || ids.contains(&i.id.as_str()))
            && filters
                .iter()
                .all(|(name, values)| matches(i, name, values))
    };
    if let Some(missing) = ids.iter().find(|id| {
        !positions
            .iter()
            .any(|&k| fleet[k].id == **id && wanted(&fleet[k]))
    }) {
        return Err(ApiError::new(
            400,
            "InvalidInstanceID.NotFound",
            format!("The instance ID '{missing}' does not exist"),
        ));
    }
    // The token is a position in the region's machines: each page scans on from it.
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
    if start > positions.len() {
        return Err(ApiError::new(
            400,
            "InvalidParameterValue",
            "Invalid value for NextToken",
        ));
    }
    let mut rest = positions
        .iter()
        .enumerate()
        .skip(start)
        .filter(|&(_, &k)| wanted(&fleet[k]));
    let matching: Vec<&SimInstance> = rest.by_ref().take(page).map(|(_, &k)| &fleet[k]).collect();
    let next = rest.next().map(|(at, _)| at.to_string());

    let mut xml = String::with_capacity(1024 * matching.len() + 512);
    xml.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    xml.push_str(r#"<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">"#);
    let _ = write!(
        xml,
        "<requestId>{}</requestId><reservationSet>",
        state.request_id()
    );
    for i in matching {
        let _ = write!(
            xml,
            "<item><reservationId>r-{}</reservationId><ownerId>{account}</ownerId><groupSet/><instancesSet><item>",
            i.id.trim_start_matches("i-")
        );
        instance_xml(state, i, &mut xml);
        xml.push_str("</item></instancesSet></item>");
    }
    xml.push_str("</reservationSet>");
    if let Some(n) = next {
        let _ = write!(xml, "<nextToken>{n}</nextToken>");
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
    xml.push_str("<instanceState><code>");
    let _ = write!(xml, "{code}");
    xml.push_str("</code><name>");
    escape_into(xml, st);
    xml.push_str("</name></instanceState>");
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
            xml.push_str("<item>");
            element(xml, "groupId", Some(g));
            element(xml, "groupName", Some(g));
            xml.push_str("</item>");
        }
        xml.push_str("</groupSet>");
    }
    if let Some(az) = &i.az {
        xml.push_str("<placement>");
        element(xml, "availabilityZone", Some(az));
        xml.push_str("<tenancy>default</tenancy></placement>");
    }
    if let Some(p) = &i.instance_profile {
        xml.push_str("<iamInstanceProfile><arn>arn:aws:iam::123456789012:instance-profile/");
        escape_into(xml, p);
        let _ = write!(
            xml,
            "</arn><id>AIPADEMO{}</id></iamInstanceProfile>",
            i.id.len()
        );
    }
    let name = i.name.as_ref().filter(|_| !i.tags.contains_key("Name"));
    if name.is_some() || !i.tags.is_empty() {
        // The `Name` tag among the others, in key order (as `tags_with_name` gives them).
        let mut tags: Vec<(&str, &str)> = i
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(n) = name {
            let at = tags.partition_point(|(k, _)| *k < "Name");
            tags.insert(at, ("Name", n));
        }
        xml.push_str("<tagSet>");
        for (k, v) in tags {
            xml.push_str("<item>");
            element(xml, "key", Some(k));
            element(xml, "value", Some(v));
            xml.push_str("</item>");
        }
        xml.push_str("</tagSet>");
    }
}

/// `<name>value</name>`, escaped; nothing when there is no value.
fn element(xml: &mut String, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        xml.push('<');
        xml.push_str(name);
        xml.push('>');
        escape_into(xml, v);
        xml.push_str("</");
        xml.push_str(name);
        xml.push('>');
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
    escape_into(&mut out, s);
    out
}

/// [`escape`], appended to `out`.
pub fn escape_into(out: &mut String, s: &str) {
    if !s
        .bytes()
        .any(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'' | 0..=0x1f | 0x7f..))
    {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {
                let _ = write!(out, "&#x{:X};", c as u32);
            }
            c => out.push(c),
        }
    }
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
