//! The simulated fleet: a TOML file (`assets/demo-fleet.toml`) or a generated one.
//! Times are relative (seconds/days ago) so the demo always looks fresh.

use std::collections::BTreeMap;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

const DEMO: &str = include_str!("../../assets/demo-fleet.toml");

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    /// Region for machines that name neither a region nor an AZ.
    #[serde(default = "default_region")]
    pub default_region: String,
    #[serde(rename = "instance", default)]
    pub instances: Vec<SimInstance>,
    /// The network around the fleet, for `ec2ssh doctor` (see `sim::vpc`).
    #[serde(rename = "vpc", default)]
    pub vpcs: Vec<super::vpc::SimVpc>,
    #[serde(rename = "subnet", default)]
    pub subnets: Vec<super::vpc::SimSubnet>,
    #[serde(rename = "endpoint", default)]
    pub endpoints: Vec<super::vpc::SimEndpoint>,
    #[serde(rename = "security_group", default)]
    pub security_groups: Vec<super::vpc::SimSecurityGroup>,
    /// The AWS accounts, each with its own key pair and instances (`account` of an
    /// instance); none: one account, [`super::auth::ACCOUNT_ID`].
    #[serde(rename = "account", default)]
    pub accounts: Vec<SimAccount>,
}

/// One simulated AWS account.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SimAccount {
    /// 12 digits.
    pub id: String,
    /// What the demo calls it (its profile name).
    pub name: Option<String>,
    /// IAM actions this account's identity is denied (e.g. `ec2:DescribeInstances`).
    pub deny: Vec<String>,
}

impl Default for FleetFile {
    fn default() -> Self {
        FleetFile {
            default_region: default_region(),
            instances: Vec::new(),
            vpcs: Vec::new(),
            subnets: Vec::new(),
            endpoints: Vec::new(),
            security_groups: Vec::new(),
            accounts: Vec::new(),
        }
    }
}

fn default_region() -> String {
    "us-east-1".into()
}

/// One simulated machine. Absent `state` = a hybrid node EC2 does not know;
/// absent `ping` = not managed by SSM.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SimInstance {
    pub id: String,
    pub name: Option<String>,
    pub region: Option<String>,
    pub az: Option<String>,
    pub state: Option<String>,
    pub ping: Option<String>,
    pub platform_type: Option<String>,
    pub platform_name: Option<String>,
    pub platform_version: Option<String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub instance_type: Option<String>,
    pub image_id: Option<String>,
    pub agent_version: Option<String>,
    /// Seconds before the simulator started that the agent last pinged.
    pub last_ping_secs_ago: Option<i64>,
    pub launched_days_ago: Option<i64>,
    pub instance_profile: Option<String>,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Where the simulated agent relays port sessions (e.g. a local sshd),
    /// `"127.0.0.1:2222"`; default: the simulator's `--target`.
    pub target: Option<std::net::SocketAddr>,
    /// The agent comes Online this many seconds after the simulator starts (it is
    /// ConnectionLost before), e.g. for `ec2ssh status --wait`.
    pub online_after_secs: Option<u64>,
    /// Where SendSSHPublicKey stores keys for this instance (its own sshd's
    /// AuthorizedKeysCommand reads them); default: the simulator's `--keys-dir`.
    pub keys_dir: Option<std::path::PathBuf>,
    /// Its security groups (`sg-…`), for `ec2ssh doctor`'s endpoint checks.
    pub security_groups: Vec<String>,
    /// The account that owns it (an `[[account]]` id); default: the first account.
    pub account: Option<String>,
    /// The account's Session Manager preferences name this KMS key: the agent asks
    /// for KMS encryption in the handshake of shell sessions.
    pub kms_key_id: Option<String>,
}

impl SimInstance {
    /// The region: explicit, else the AZ without its letter, else the fleet default.
    pub fn region<'a>(&'a self, default: &'a str) -> &'a str {
        if let Some(r) = &self.region {
            return r;
        }
        // Without its last character (which need not be one byte in a hostile file).
        match self.az.as_deref().and_then(|az| az.char_indices().last()) {
            Some((last, _)) if last > 0 => &self.az.as_deref().unwrap_or(default)[..last],
            _ => default,
        }
    }

    pub fn in_ec2(&self) -> bool {
        self.state.is_some()
    }

    /// The `Name` tag EC2 reports (the name, unless tags already set one).
    pub fn tags_with_name(&self) -> BTreeMap<String, String> {
        let mut tags = self.tags.clone();
        if let Some(n) = &self.name {
            tags.entry("Name".into()).or_insert_with(|| n.clone());
        }
        tags
    }
}

impl FleetFile {
    pub fn parse(text: &str) -> Result<FleetFile, toml::de::Error> {
        toml::from_str(text)
    }

    pub fn demo() -> FleetFile {
        Self::parse(DEMO).expect("the bundled demo fleet parses (checked by a unit test)")
    }

    pub fn load(path: &Path) -> anyhow::Result<FleetFile> {
        Ok(Self::parse(&std::fs::read_to_string(path)?)?)
    }

    /// Every account's id, in file order; one default account when none is declared.
    pub fn account_ids(&self) -> Vec<String> {
        if self.accounts.is_empty() {
            vec![super::auth::ACCOUNT_ID.to_string()]
        } else {
            self.accounts.iter().map(|a| a.id.clone()).collect()
        }
    }

    /// The account that owns `i`.
    pub fn account_of<'a>(&'a self, i: &'a SimInstance) -> &'a str {
        i.account
            .as_deref()
            .or_else(|| self.accounts.first().map(|a| a.id.as_str()))
            .unwrap_or(super::auth::ACCOUNT_ID)
    }

    /// `n` accounts (`111111111111`, `222222222222`, …) sharing the machines round
    /// robin, each under a fresh id: for benchmarks and tests of several accounts.
    pub fn split_accounts(mut self, n: usize) -> FleetFile {
        let n = n.clamp(1, 9);
        self.accounts = (1..=n)
            .map(|k| SimAccount {
                id: k.to_string().repeat(12),
                name: Some(format!("account{k}")),
                deny: Vec::new(),
            })
            .collect();
        for (k, i) in self.instances.iter_mut().enumerate() {
            i.account = Some(self.accounts[k % n].id.clone());
        }
        self
    }

    /// The demo's two accounts, `dev` and `prod`: machines tagged `Environment=prod`
    /// are prod's, the rest dev's (unless the fleet declares its own accounts).
    pub fn demo_accounts(mut self) -> FleetFile {
        if !self.accounts.is_empty() {
            return self;
        }
        let (dev, prod) = ("111111111111", "222222222222");
        self.accounts = [("dev", dev), ("prod", prod)]
            .map(|(name, id)| SimAccount {
                id: id.into(),
                name: Some(name.into()),
                deny: Vec::new(),
            })
            .to_vec();
        for i in &mut self.instances {
            let is_prod = i.tags.get("Environment").map(String::as_str) == Some("prod");
            i.account = Some(if is_prod { prod } else { dev }.into());
        }
        self
    }

    /// Regions that hold at least one machine, sorted.
    pub fn regions(&self) -> Vec<String> {
        let mut r: Vec<String> = self
            .instances
            .iter()
            .map(|i| i.region(&self.default_region).to_string())
            .collect();
        r.sort();
        r.dedup();
        if r.is_empty() {
            r.push(self.default_region.clone());
        }
        r
    }

    /// How many machines `ec2ssh list` should show: all but terminated ones.
    pub fn listable(&self) -> usize {
        self.instances
            .iter()
            .filter(|i| i.state.as_deref() != Some("terminated"))
            .count()
    }

    /// A realistic large fleet, the same for the same seed: mostly Online Linux
    /// across three regions, with stopped, unmanaged, lost, Windows and hybrid machines.
    pub fn generate(n: usize, seed: u64) -> FleetFile {
        let mut rng = StdRng::seed_from_u64(seed);
        let roles = [
            "web", "api", "db", "cache", "worker", "batch", "bastion", "kafka", "search", "etl",
        ];
        let envs = ["prod", "staging", "dev", "qa"];
        let zones = [
            "us-east-1a",
            "us-east-1b",
            "us-east-1c",
            "eu-west-1a",
            "eu-west-1b",
            "ap-northeast-1a",
        ];
        let linux = [
            ("Amazon Linux", "2023"),
            ("Amazon Linux", "2"),
            ("Ubuntu", "22.04"),
            ("Ubuntu", "24.04"),
            ("Debian GNU/Linux", "12"),
            ("Red Hat Enterprise Linux", "9.4"),
        ];
        let types = [
            "t3.micro",
            "t3.large",
            "m6i.large",
            "c7g.xlarge",
            "r6i.2xlarge",
        ];
        let instances = (0..n)
            .map(|k| {
                let hybrid = k % 97 == 96;
                let windows = k % 23 == 0;
                let role = roles[rng.random_range(0..roles.len())];
                let env = envs[rng.random_range(0..envs.len())];
                let az = zones[rng.random_range(0..zones.len())];
                let roll: u32 = rng.random_range(0..100);
                let (state, ping) = match roll {
                    0..=79 => ("running", Some("Online")),
                    80..=84 => ("running", Some("ConnectionLost")),
                    85..=87 => ("stopped", Some("ConnectionLost")),
                    88..=90 => ("stopped", Some("Inactive")),
                    91..=97 => ("running", None),
                    _ => ("terminated", None),
                };
                let (pname, pver) = if windows {
                    ("Microsoft Windows Server 2022 Datacenter", "10.0.20348")
                } else {
                    linux[rng.random_range(0..linux.len())]
                };
                let mut tags = BTreeMap::new();
                tags.insert("Environment".into(), env.into());
                tags.insert("Role".into(), role.into());
                SimInstance {
                    id: if hybrid {
                        format!("mi-{:017x}", seed.wrapping_mul(1_000_003) ^ k as u64)
                    } else {
                        format!(
                            "i-{:017x}",
                            seed.wrapping_mul(7_919) ^ (k as u64 * 2_654_435_761)
                        )
                    },
                    name: Some(format!("{role}-{env}-{k:04}")),
                    az: Some(az.into()),
                    state: (!hybrid).then(|| state.into()),
                    ping: if hybrid {
                        Some("Online".into())
                    } else {
                        ping.map(Into::into)
                    },
                    platform_type: Some(if windows { "Windows" } else { "Linux" }.into()),
                    platform_name: Some(pname.into()),
                    platform_version: Some(pver.into()),
                    private_ip: Some(format!(
                        "10.{}.{}.{}",
                        (k >> 16) & 255,
                        (k >> 8) & 255,
                        k & 255
                    )),
                    public_ip: (k % 7 == 0)
                        .then(|| format!("54.{}.{}.{}", (k >> 16) & 255, (k >> 8) & 255, k & 255)),
                    instance_type: (!hybrid).then(|| types[k % types.len()].into()),
                    image_id: (!hybrid).then(|| format!("ami-{:017x}", k % 13)),
                    agent_version: Some(["3.3.987.0", "3.2.582.0", "3.3.1611.0"][k % 3].into()),
                    last_ping_secs_ago: Some(rng.random_range(1..600)),
                    launched_days_ago: Some(rng.random_range(0..400)),
                    tags,
                    ..Default::default()
                }
            })
            .collect();
        FleetFile {
            default_region: default_region(),
            instances,
            ..FleetFile::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_fleet_covers_the_cases() {
        let f = FleetFile::demo();
        assert!(
            (35..=50).contains(&f.instances.len()),
            "{}",
            f.instances.len()
        );
        let has = |p: &dyn Fn(&SimInstance) -> bool| f.instances.iter().any(p);
        assert!(has(&|i| i.id.starts_with("mi-") && !i.in_ec2()));
        assert!(has(&|i| i.platform_type.as_deref() == Some("Windows")));
        assert!(has(&|i| i.state.as_deref() == Some("stopped")));
        assert!(has(&|i| i.ping.is_none() && i.in_ec2()));
        for p in ["Online", "ConnectionLost", "Inactive"] {
            assert!(has(&|i| i.ping.as_deref() == Some(p)), "{p}");
        }
        assert!(
            has(&|i| i.tags.values().any(|v| v.contains('\u{1b}'))),
            "a hostile tag"
        );
        assert!(f.regions().len() >= 2);
        let mut ids: Vec<_> = f.instances.iter().map(|i| &i.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), f.instances.len(), "ids are unique");
    }

    #[test]
    fn generated_fleets_are_deterministic_and_unique() {
        let a = FleetFile::generate(2000, 7);
        assert_eq!(a, FleetFile::generate(2000, 7));
        assert_ne!(a, FleetFile::generate(2000, 8));
        let mut ids: Vec<_> = a.instances.iter().map(|i| i.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 2000);
        assert_eq!(a.regions(), ["ap-northeast-1", "eu-west-1", "us-east-1"]);
    }

    #[test]
    fn accounts_own_their_machines() {
        let f = FleetFile::parse(
            "[[account]]\nid = \"111111111111\"\n[[account]]\nid = \"222222222222\"\ndeny = [\"ec2:DescribeInstances\"]\n\
             [[instance]]\nid = \"i-1\"\n[[instance]]\nid = \"i-2\"\naccount = \"222222222222\"\n",
        )
        .unwrap();
        assert_eq!(f.account_ids(), ["111111111111", "222222222222"]);
        assert_eq!(
            f.account_of(&f.instances[0]),
            "111111111111",
            "the first by default"
        );
        assert_eq!(f.account_of(&f.instances[1]), "222222222222");
        assert_eq!(
            FleetFile::default().account_ids(),
            [crate::sim::auth::ACCOUNT_ID]
        );
        let split = FleetFile::generate(9, 1).split_accounts(3);
        assert_eq!(
            split.account_ids(),
            ["111111111111", "222222222222", "333333333333"]
        );
        let owners: Vec<&str> = split
            .instances
            .iter()
            .map(|i| split.account_of(i))
            .collect();
        assert_eq!(owners.iter().filter(|a| **a == "333333333333").count(), 3);
        let demo = FleetFile::demo().demo_accounts();
        let prod = demo
            .instances
            .iter()
            .filter(|i| demo.account_of(i) == "222222222222");
        assert!(prod.clone().count() > 0);
        assert!(prod
            .into_iter()
            .all(|i| i.tags.get("Environment").map(String::as_str) == Some("prod")));
    }

    #[test]
    fn region_comes_from_the_az() {
        let i = SimInstance {
            az: Some("eu-west-1b".into()),
            ..Default::default()
        };
        assert_eq!(i.region("us-east-1"), "eu-west-1");
        assert_eq!(SimInstance::default().region("us-east-1"), "us-east-1");
    }
}
