//! SSM `DescribeInstanceInformation` in JSON 1.1.

use serde_json::{json, Value};

use super::fleet::SimInstance;
use super::{ApiError, SimState};

pub fn describe_instance_information(
    state: &SimState,
    account: &str,
    region: &str,
    req: &Value,
) -> Result<Value, ApiError> {
    let invalid = |m: &str| ApiError::new(400, "InvalidFilterKey", m.to_string());
    // Both the current `Filters` and the legacy `InstanceInformationFilterList`.
    let mut filters: Vec<(String, Vec<String>)> = Vec::new();
    for f in req["Filters"].as_array().into_iter().flatten() {
        filters.push((
            f["Key"].as_str().unwrap_or("").to_string(),
            strings(&f["Values"]),
        ));
    }
    for f in req["InstanceInformationFilterList"]
        .as_array()
        .into_iter()
        .flatten()
    {
        filters.push((
            f["key"].as_str().unwrap_or("").to_string(),
            strings(&f["valueSet"]),
        ));
    }
    for (k, _) in &filters {
        let known = [
            "PingStatus",
            "InstanceIds",
            "ResourceType",
            "PlatformTypes",
            "AgentVersion",
        ]
        .contains(&k.as_str())
            || k.starts_with("tag:");
        if !known {
            return Err(invalid(&format!("The filter key {k} is not valid")));
        }
    }
    let max = match req["MaxResults"].as_u64() {
        None => 10,
        Some(m @ 5..=50) => m as usize,
        Some(_) => return Err(ApiError::new(400, "ValidationException", "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must have value between 5 and 50")),
    };
    let start: usize = match req["NextToken"].as_str() {
        Some(t) => t.parse().map_err(|_| {
            ApiError::new(400, "InvalidNextToken", "The specified token is not valid.")
        })?,
        None => 0,
    };
    // The token is a position in the region's machines (or, with an `InstanceIds`
    // filter, in those instances'): each page scans on from it.
    let fleet = &state.fleet.instances;
    let named: Option<Vec<usize>> = filters
        .iter()
        .find(|(k, _)| k == "InstanceIds")
        .map(|(_, ids)| state.positions_of(account, region, ids));
    let candidates = named
        .as_deref()
        .unwrap_or_else(|| state.region_positions(account, region));
    if start > candidates.len() {
        return Err(ApiError::new(
            400,
            "InvalidNextToken",
            "The specified token is not valid.",
        ));
    }
    let mut rest = candidates
        .iter()
        .enumerate()
        .skip(start)
        .filter(|&(_, &k)| {
            let i = &fleet[k];
            state.ping_of(i).is_some()
                && i.state.as_deref() != Some("terminated")
                && filters.iter().all(|(key, v)| matches(state, i, key, v))
        });
    let list: Vec<Value> = rest
        .by_ref()
        .take(max)
        .map(|(_, &k)| info(state, &fleet[k]))
        .collect();
    let mut out = json!({ "InstanceInformationList": list });
    if let Some((at, _)) = rest.next() {
        out["NextToken"] = json!(at.to_string());
    }
    Ok(out)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn resource_type(i: &SimInstance) -> &'static str {
    if i.in_ec2() {
        "EC2Instance"
    } else {
        "ManagedInstance"
    }
}

fn matches(state: &SimState, i: &SimInstance, key: &str, values: &[String]) -> bool {
    let any = |v: Option<&str>| v.is_some_and(|v| values.iter().any(|w| w == v));
    match key {
        "PingStatus" => any(state.ping_of(i)),
        "InstanceIds" => any(Some(&i.id)),
        "ResourceType" => any(Some(resource_type(i))),
        "PlatformTypes" => any(i.platform_type.as_deref()),
        "AgentVersion" => any(i.agent_version.as_deref()),
        _ => any(key
            .strip_prefix("tag:")
            .and_then(|k| i.tags_with_name().get(k).cloned())
            .as_deref()),
    }
}

fn info(state: &SimState, i: &SimInstance) -> Value {
    let mut v = json!({
        "InstanceId": i.id,
        "PingStatus": state.ping_of(i),
        "LastPingDateTime": state.secs_ago(i.last_ping_secs_ago.unwrap_or(60)),
        "AgentVersion": i.agent_version,
        "IsLatestVersion": i.agent_version.as_deref() == Some("3.3.1611.0"),
        "PlatformType": i.platform_type.as_deref().unwrap_or("Linux"),
        "PlatformName": i.platform_name,
        "PlatformVersion": i.platform_version,
        "ResourceType": resource_type(i),
        "IPAddress": i.private_ip,
        "ComputerName": format!("{}.internal", i.id),
        "AssociationStatus": "Success",
    });
    if !i.in_ec2() {
        v["Name"] = json!(i.name);
        v["RegistrationDate"] = json!(state.secs_ago(86_400 * i.launched_days_ago.unwrap_or(90)));
    }
    v
}
