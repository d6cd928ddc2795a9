//! Pure merge of what EC2 and SSM each know about a region into one `Instance` per machine.

use std::collections::{HashMap, HashSet};

use super::model::{Instance, Ping};

/// What `DescribeInstanceInformation` says about one managed node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SsmRecord {
    pub id: String,
    pub ping: Ping,
    pub agent_version: Option<String>,
    pub last_ping: Option<i64>,
    pub platform_type: Option<String>,
    pub platform_name: Option<String>,
    pub platform_version: Option<String>,
    pub ip_address: Option<String>,
    pub computer_name: Option<String>,
    /// The name given to a hybrid activation's node.
    pub name: Option<String>,
}

/// Merges one region's EC2 instances with its SSM records.
///
/// `ssm` is `None` when SSM could not be asked: every EC2 instance then gets
/// `Ping::Unknown` rather than a misleading "not managed". Terminated instances
/// are dropped (together with SSM's stale records of them); SSM nodes EC2 does
/// not know (hybrid `mi-*`, or any node when EC2 could not be asked) are added.
pub fn merge_region(
    region: &str,
    ec2: Option<Vec<Instance>>,
    ssm: Option<Vec<SsmRecord>>,
) -> Vec<Instance> {
    let ec2_known = ec2.is_some();
    // In place: a big fleet is not copied into a second vector.
    let mut out = ec2.unwrap_or_default();
    let is_terminated = |i: &Instance| i.state.as_deref() == Some("terminated");
    let terminated: HashSet<String> = out
        .iter()
        .filter(|i| is_terminated(i))
        .map(|i| i.id.clone())
        .collect();
    out.retain(|i| !is_terminated(i));
    let Some(ssm) = ssm else {
        for i in &mut out {
            i.ping = Ping::Unknown;
        }
        return out;
    };
    let mut by_id: HashMap<String, SsmRecord> =
        ssm.into_iter().map(|r| (r.id.clone(), r)).collect();
    for i in &mut out {
        match by_id.remove(&i.id) {
            Some(r) => apply_ssm(i, r),
            None => i.ping = Ping::NotManaged,
        }
    }
    let mut extra: Vec<SsmRecord> = by_id
        .into_values()
        .filter(|r| !terminated.contains(&r.id))
        // With EC2's answer in hand, an `i-*` it does not list is gone; keep hybrids.
        .filter(|r| !ec2_known || !r.id.starts_with("i-"))
        .collect();
    extra.sort_by(|a, b| a.id.cmp(&b.id));
    for r in extra {
        let mut i = Instance {
            id: r.id.clone(),
            region: region.to_string(),
            name: r.name.clone().or_else(|| r.computer_name.clone()),
            private_ip: r.ip_address.clone(),
            ..Default::default()
        };
        apply_ssm(&mut i, r);
        out.push(i);
    }
    out
}

fn apply_ssm(i: &mut Instance, r: SsmRecord) {
    i.ping = r.ping;
    i.agent_version = r.agent_version;
    i.last_ping = r.last_ping;
    if r.platform_type.is_some() {
        i.platform_type = r.platform_type;
    }
    // SSM's platform name ("Ubuntu", "Amazon Linux") is more telling than EC2's
    // platform details ("Linux/UNIX").
    if r.platform_name.is_some() {
        i.platform_name = r.platform_name;
        i.platform_version = r.platform_version;
    }
    if i.private_ip.is_none() {
        i.private_ip = r.ip_address;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ec2(id: &str, state: &str) -> Instance {
        Instance {
            id: id.into(),
            region: "us-east-1".into(),
            state: Some(state.into()),
            platform_name: Some("Linux/UNIX".into()),
            private_ip: Some("10.0.0.1".into()),
            ..Default::default()
        }
    }

    fn ssm(id: &str, ping: Ping) -> SsmRecord {
        SsmRecord {
            id: id.into(),
            ping,
            agent_version: Some("3.3.1.0".into()),
            platform_type: Some("Linux".into()),
            platform_name: Some("Ubuntu".into()),
            platform_version: Some("22.04".into()),
            ip_address: Some("10.9.9.9".into()),
            computer_name: Some("host.local".into()),
            last_ping: Some(1_700_000_000),
            ..Default::default()
        }
    }

    #[test]
    fn managed_instances_take_ssm_fields() {
        let out = merge_region(
            "us-east-1",
            Some(vec![ec2("i-1", "running")]),
            Some(vec![ssm("i-1", Ping::Online)]),
        );
        assert_eq!(out.len(), 1);
        let i = &out[0];
        assert_eq!(i.ping, Ping::Online);
        assert_eq!(i.platform_name.as_deref(), Some("Ubuntu"));
        assert_eq!(i.platform_version.as_deref(), Some("22.04"));
        assert_eq!(i.agent_version.as_deref(), Some("3.3.1.0"));
        // EC2's private IP wins over the agent's reported address.
        assert_eq!(i.private_ip.as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn unmanaged_ec2_instances_are_marked_not_managed() {
        let out = merge_region("r", Some(vec![ec2("i-1", "running")]), Some(vec![]));
        assert_eq!(out[0].ping, Ping::NotManaged);
        assert_eq!(out[0].platform_name.as_deref(), Some("Linux/UNIX"));
    }

    #[test]
    fn hybrid_nodes_are_added_with_their_name() {
        let mut node = ssm("mi-0abc", Ping::ConnectionLost);
        node.name = Some("rack-7".into());
        let out = merge_region("eu-west-1", Some(vec![]), Some(vec![node]));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, "mi-0abc");
        assert_eq!(out[0].region, "eu-west-1");
        assert_eq!(out[0].name.as_deref(), Some("rack-7"));
        assert_eq!(out[0].state, None);
        assert_eq!(out[0].private_ip.as_deref(), Some("10.9.9.9"));
        assert_eq!(out[0].ping, Ping::ConnectionLost);
    }

    #[test]
    fn hybrid_without_name_falls_back_to_computer_name() {
        let out = merge_region("r", Some(vec![]), Some(vec![ssm("mi-1", Ping::Online)]));
        assert_eq!(out[0].name.as_deref(), Some("host.local"));
    }

    #[test]
    fn terminated_instances_and_their_stale_ssm_records_are_dropped() {
        let out = merge_region(
            "r",
            Some(vec![ec2("i-dead", "terminated"), ec2("i-live", "stopped")]),
            Some(vec![
                ssm("i-dead", Ping::ConnectionLost),
                ssm("i-gone", Ping::Inactive),
            ]),
        );
        let ids: Vec<_> = out.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["i-live"]);
        assert_eq!(out[0].ping, Ping::NotManaged);
    }

    #[test]
    fn ssm_failure_makes_ping_unknown_not_unmanaged() {
        let out = merge_region("r", Some(vec![ec2("i-1", "running")]), None);
        assert_eq!(out[0].ping, Ping::Unknown);
    }

    #[test]
    fn ec2_failure_still_lists_every_ssm_node() {
        let out = merge_region(
            "r",
            None,
            Some(vec![ssm("i-1", Ping::Online), ssm("mi-2", Ping::Online)]),
        );
        let ids: Vec<_> = out.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["i-1", "mi-2"]);
    }
}
