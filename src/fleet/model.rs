//! The `Instance` record: one machine of the fleet, merged from EC2 and SSM and
//! decoupled from the SDK's types. This is also the stable `--json` schema.

use serde::{Deserialize, Serialize};

pub use super::tags::Tags;

/// Session Manager's view of a machine: its agent's ping status, or why there is none.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord,
)]
pub enum Ping {
    Online,
    ConnectionLost,
    Inactive,
    /// EC2 knows the instance but SSM does not manage it (no agent, no instance profile…).
    NotManaged,
    /// SSM could not be asked (denied, unreachable), so the status is not known.
    #[default]
    Unknown,
}

impl Ping {
    pub fn from_ssm(s: &str) -> Ping {
        match s {
            "Online" => Ping::Online,
            "ConnectionLost" => Ping::ConnectionLost,
            "Inactive" => Ping::Inactive,
            _ => Ping::Unknown,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Ping::Online => "Online",
            Ping::ConnectionLost => "ConnectionLost",
            Ping::Inactive => "Inactive",
            Ping::NotManaged => "not managed",
            Ping::Unknown => "unknown",
        }
    }

    /// A one-cell glyph that still reads without colour.
    pub fn glyph(self) -> char {
        match self {
            Ping::Online => '●',
            Ping::ConnectionLost => '◐',
            Ping::Inactive => '○',
            Ping::NotManaged => '·',
            Ping::Unknown => '?',
        }
    }

    /// Sort rank: reachable machines first.
    pub fn rank(self) -> u8 {
        match self {
            Ping::Online => 0,
            Ping::ConnectionLost => 1,
            Ping::Inactive => 2,
            Ping::Unknown => 3,
            Ping::NotManaged => 4,
        }
    }
}

/// An EC2 Instance Connect Endpoint, as `DescribeInstanceConnectEndpoints` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EiceEndpoint {
    /// `eice-…`.
    pub id: String,
    pub vpc_id: String,
    pub subnet_id: String,
    /// Where the tunnel's websocket goes (`wss://DNS/openTunnel`).
    pub dns_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fips_dns_name: Option<String>,
    /// e.g. `create-complete` (see `fleet::reach::usable_state`).
    pub state: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    /// The instance sees the client's IP rather than the endpoint's.
    #[serde(default)]
    pub preserve_client_ip: bool,
}

/// What is known of an EC2 Instance Connect Endpoint path to a machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Eice {
    /// The endpoints could not be listed (denied, unreachable) or were not asked for.
    #[default]
    Unknown,
    /// No usable endpoint in the machine's VPC (or it is in none: hybrid nodes).
    None,
    /// The endpoint a tunnel would use (boxed: most rows have none, and every row
    /// would otherwise carry its size).
    Endpoint(Box<EiceEndpoint>),
}

impl Eice {
    pub fn endpoint(&self) -> Option<&EiceEndpoint> {
        match self {
            Eice::Endpoint(e) => Some(e),
            _ => None,
        }
    }
}

/// One machine. Field names are the `--json` schema (see docs/json.md); add, never rename.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Instance {
    /// `i-…` for EC2 instances, `mi-…` for hybrid managed nodes.
    pub id: String,
    pub region: String,
    /// The `Name` tag (EC2), or the SSM name / computer name of a hybrid node.
    pub name: Option<String>,
    pub tags: Tags,
    /// EC2 state (`running`, `stopped`…); `None` for hybrid nodes EC2 does not know.
    pub state: Option<String>,
    pub ping: Ping,
    /// `Linux`, `Windows` or `MacOS`, from SSM (or `Windows` from EC2's platform field).
    pub platform_type: Option<String>,
    /// e.g. `Amazon Linux`, `Ubuntu`, from SSM; EC2's platform details otherwise.
    pub platform_name: Option<String>,
    pub platform_version: Option<String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub instance_type: Option<String>,
    pub availability_zone: Option<String>,
    pub image_id: Option<String>,
    pub agent_version: Option<String>,
    /// Unix seconds of the agent's last ping.
    pub last_ping: Option<i64>,
    /// Unix seconds of the instance's launch.
    pub launch_time: Option<i64>,
    pub iam_instance_profile: Option<String>,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    /// Security group ids (`sg-…`) of an EC2 instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    /// The AWS profile the row was listed with, and that acts on it; `None` when no
    /// profile was named (the SDK's standard chain).
    #[serde(default)]
    pub profile: Option<String>,
    /// The AWS account that owns the machine (EC2's reservation owner, else the
    /// profile's account).
    #[serde(default)]
    pub account_id: Option<String>,
    /// A name for that account, when one is known (SSO account name, config alias).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
    /// The EC2 Instance Connect Endpoint that reaches it, if any (see docs/json.md).
    #[serde(default)]
    pub eice: Eice,
}

impl crate::aws::Row for Instance {
    fn profile(&self) -> Option<&str> {
        self.profile.as_deref()
    }

    fn region(&self) -> &str {
        &self.region
    }
}

impl Instance {
    pub fn is_hybrid(&self) -> bool {
        self.id.starts_with("mi-")
    }

    /// What to show as the machine's name: the Name tag, else the id.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// The ACCOUNT column: the account's name (else the profile's) and its id, e.g.
    /// `prod (111111111111)`.
    pub fn account_label(&self) -> String {
        let name = self.account_name.as_deref().or(self.profile.as_deref());
        match (name, self.account_id.as_deref()) {
            (Some(n), Some(id)) => format!("{n} ({id})"),
            (Some(n), None) => n.to_string(),
            (None, Some(id)) => id.to_string(),
            (None, None) => String::new(),
        }
    }

    /// The platform as one short label, e.g. `Ubuntu 22.04` or `Windows`.
    pub fn platform_label(&self) -> String {
        match (
            &self.platform_name,
            &self.platform_version,
            &self.platform_type,
        ) {
            (Some(n), Some(v), _) if !v.is_empty() => format!("{n} {v}"),
            (Some(n), _, _) => n.clone(),
            (None, _, Some(t)) => t.clone(),
            _ => String::new(),
        }
    }
}

/// Whether the rows belong to more than one account: two profiles, or two known
/// account ids (a row whose account is not known, a hybrid node listed without a
/// profile, counts as none). The ACCOUNT column shows only then.
pub fn several_accounts<'a>(instances: impl IntoIterator<Item = &'a Instance>) -> bool {
    let mut profile: Option<&Option<String>> = None;
    let mut account: Option<&str> = None;
    for i in instances {
        match profile {
            Some(p) if *p != i.profile => return true,
            _ => profile = Some(&i.profile),
        }
        if let Some(id) = i.account_id.as_deref() {
            match account {
                Some(a) if a != id => return true,
                _ => account = Some(id),
            }
        }
    }
    false
}

/// The sensible order for listings: online first, then by name (unnamed last), then id.
/// Each name is lower-cased once, not once per comparison.
pub fn sort_fleet(instances: &mut [Instance]) {
    instances.sort_by_cached_key(|i| {
        (
            i.ping.rank(),
            i.name.is_none(),
            i.display_name().to_lowercase(),
            i.id.clone(),
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row is held once per instance (10,000s in a picker): an endpoint, which most
    /// rows lack, is boxed rather than carried inline by every row.
    #[test]
    fn a_row_stays_small() {
        let size = std::mem::size_of::<Instance>();
        assert!(size <= 600, "{size} bytes");
    }

    #[test]
    fn several_accounts_means_two_profiles_or_two_known_accounts() {
        let row = |profile: Option<&str>, account: Option<&str>| Instance {
            profile: profile.map(Into::into),
            account_id: account.map(Into::into),
            ..Default::default()
        };
        let ec2 = row(None, Some("123456789012"));
        let hybrid = row(None, None);
        assert!(
            !several_accounts([&ec2, &hybrid, &ec2]),
            "one account, one unknown"
        );
        assert!(!several_accounts([]));
        assert!(several_accounts([&ec2, &row(None, Some("210987654321"))]));
        assert!(several_accounts([
            &row(Some("dev"), None),
            &row(Some("prod"), None)
        ]));
    }

    fn inst(id: &str, name: Option<&str>, ping: Ping) -> Instance {
        Instance {
            id: id.into(),
            name: name.map(Into::into),
            ping,
            ..Default::default()
        }
    }

    #[test]
    fn online_first_then_name_then_unnamed() {
        let mut v = vec![
            inst("i-3", None, Ping::Online),
            inst("i-1", Some("zeta"), Ping::ConnectionLost),
            inst("i-2", Some("Beta"), Ping::Online),
            inst("i-4", Some("alpha"), Ping::Online),
            inst("i-5", Some("aaa"), Ping::NotManaged),
        ];
        sort_fleet(&mut v);
        let ids: Vec<_> = v.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["i-4", "i-2", "i-3", "i-1", "i-5"]);
    }

    #[test]
    fn platform_label_prefers_name_and_version() {
        let mut i = inst("i-1", None, Ping::Online);
        assert_eq!(i.platform_label(), "");
        i.platform_type = Some("Linux".into());
        assert_eq!(i.platform_label(), "Linux");
        i.platform_name = Some("Ubuntu".into());
        i.platform_version = Some("22.04".into());
        assert_eq!(i.platform_label(), "Ubuntu 22.04");
    }
}
