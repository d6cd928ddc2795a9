//! The cheap check behind the picker's live ping column: SSM
//! `DescribeInstanceInformation` alone (no EC2), for the whole fleet or a few
//! instances, giving fresh ping status, last ping and agent version per id.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;

use super::inventory::{merge_regions, ssm_records};
use super::merge::SsmRecord;
use super::model::{Instance, Ping};
use crate::aws::{AwsContext, AwsError};

/// Instances to ask about: (profile, region) → instance ids.
pub type Targets = BTreeMap<(Option<String>, String), Vec<String>>;

/// Groups instances by profile and region for `fetch_pings` (each is asked with its
/// own account's credentials).
pub fn targets<'a>(instances: impl IntoIterator<Item = &'a Instance>) -> Targets {
    let mut out = Targets::new();
    for i in instances {
        out.entry((i.profile.clone(), i.region.clone()))
            .or_default()
            .push(i.id.clone());
    }
    out
}

/// What SSM says now about one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct PingUpdate {
    /// The profile that asked (rows are matched by profile and id).
    pub profile: Option<String>,
    pub id: String,
    pub ping: Ping,
    pub last_ping: Option<i64>,
    pub agent_version: Option<String>,
}

impl From<SsmRecord> for PingUpdate {
    fn from(r: SsmRecord) -> Self {
        PingUpdate {
            profile: None,
            id: r.id,
            ping: r.ping,
            last_ping: r.last_ping,
            agent_version: r.agent_version,
        }
    }
}

impl PingUpdate {
    pub fn apply(&self, i: &mut Instance) {
        i.ping = self.ping;
        i.last_ping = self.last_ping;
        i.agent_version.clone_from(&self.agent_version);
    }
}

/// The answers, plus the calls that failed (their instances get no update).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PingReport {
    pub updates: Vec<PingUpdate>,
    pub warnings: Vec<AwsError>,
}

/// Asks SSM about every managed node in every profile × region of `ctx`, or only
/// about `only`; all in parallel, each with its profile's credentials. A node SSM
/// does not list gets no update: it may simply not know it.
pub async fn fetch_pings(ctx: &AwsContext, only: Option<&Targets>) -> PingReport {
    let mut report = PingReport::default();
    let mut asks: Vec<(AwsContext, String, Option<&[String]>)> = Vec::new();
    match only {
        None => {
            for view in ctx.each_profile() {
                for r in view.regions.clone() {
                    asks.push((view.clone(), r, None));
                }
            }
        }
        Some(t) => {
            for ((profile, region), ids) in t {
                match ctx.for_profile(profile.as_deref()) {
                    Ok(view) => asks.push((view, region.clone(), Some(ids.as_slice()))),
                    Err(e) => tracing::debug!(error = %e, "ping check skipped"),
                }
            }
        }
    }
    let answers = join_all(asks.iter().map(|(view, r, ids)| async move {
        let records = ssm_records(view, r, *ids).await.map_err(|e| view.tag(e))?;
        let profile = view.profile_info().map(|p| p.name.clone());
        Ok::<_, AwsError>(records.into_iter().map(move |r| PingUpdate {
            profile: profile.clone(),
            ..PingUpdate::from(r)
        }))
    }))
    .await;
    for answer in answers {
        match answer {
            Ok(updates) => report.updates.extend(updates),
            Err(e) => report.warnings.push(e),
        }
    }
    report.warnings = merge_regions(report.warnings);
    report
}

/// The wait between two polls of SSM (`status --wait`, the picker's ping refresh):
/// `every`, doubled after each poll AWS throttled, back to `every` after one it did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    every: Duration,
    wait: Duration,
}

impl Backoff {
    /// Throttled polls stretch the wait up to this many times `every`…
    const MAX_FACTOR: u32 = 16;
    /// …but not beyond this, unless `every` itself is longer.
    const CEILING: Duration = Duration::from_secs(300);

    pub fn new(every: Duration) -> Self {
        Backoff { every, wait: every }
    }

    /// The wait before the next poll, given whether the last one was throttled.
    pub fn after(&mut self, throttled: bool) -> Duration {
        let most = (self.every * Self::MAX_FACTOR).min(Self::CEILING.max(self.every));
        self.wait = if throttled {
            (self.wait * 2).min(most)
        } else {
            self.every
        };
        self.wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{self, FleetFile, SimInstance, SimOptions};

    fn fleet(n: usize) -> FleetFile {
        let instances = (0..n)
            .map(|k| SimInstance {
                id: format!("i-{k:017x}"),
                name: Some(format!("host-{k}")),
                region: Some(if k % 2 == 0 { "us-east-1" } else { "eu-west-1" }.into()),
                state: Some("running".into()),
                // Every third one is not managed by SSM.
                ping: (k % 3 != 0).then(|| "Online".to_string()),
                agent_version: Some("3.3.1611.0".into()),
                ..Default::default()
            })
            .collect();
        FleetFile {
            default_region: "us-east-1".into(),
            instances,
            ..FleetFile::default()
        }
    }

    fn ids(report: &PingReport) -> Vec<&str> {
        let mut v: Vec<&str> = report.updates.iter().map(|u| u.id.as_str()).collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn every_region_or_only_the_targets_in_chunks() {
        let sim = sim::start(fleet(240), SimOptions::default()).await.unwrap();
        let ctx = AwsContext::for_endpoint(&sim.endpoint(), sim.regions(), &sim.access_key());

        let all = fetch_pings(&ctx, None).await;
        assert_eq!(all.warnings, []);
        assert_eq!(all.updates.len(), 160, "every managed node, all pages");
        let u = &all.updates[0];
        assert_eq!(
            (u.ping, u.agent_version.as_deref()),
            (Ping::Online, Some("3.3.1611.0"))
        );
        assert!(u.last_ping.is_some());

        // 120 targets in two regions: more than one filter's worth in each.
        let wanted: Vec<Instance> = (0..120)
            .map(|k| Instance {
                id: format!("i-{k:017x}"),
                region: if k % 2 == 0 { "us-east-1" } else { "eu-west-1" }.into(),
                ..Default::default()
            })
            .collect();
        let t = targets(&wanted);
        assert_eq!(t.len(), 2);
        let some = fetch_pings(&ctx, Some(&t)).await;
        assert_eq!(some.warnings, []);
        let mut expected: Vec<String> = (0..120)
            .filter(|k| k % 3 != 0)
            .map(|k| format!("i-{k:017x}"))
            .collect();
        expected.sort();
        assert_eq!(ids(&some), expected);
    }

    #[tokio::test]
    async fn a_denied_call_is_a_warning_and_no_update() {
        let opts = SimOptions {
            denied_actions: ["ssm:DescribeInstanceInformation".to_string()].into(),
            ..SimOptions::default()
        };
        let sim = sim::start(fleet(4), opts).await.unwrap();
        let ctx = AwsContext::for_endpoint(&sim.endpoint(), sim.regions(), &sim.access_key());
        let report = fetch_pings(&ctx, None).await;
        assert_eq!(report.updates, []);
        assert_eq!(report.warnings.len(), 1, "one line for both regions");
        assert_eq!(report.warnings[0].action, "ssm:DescribeInstanceInformation");
    }

    #[test]
    fn polls_back_off_while_throttled_and_recover_at_once() {
        let mut b = Backoff::new(Duration::from_secs(2));
        let waits: Vec<u64> = [true, true, true, true, true, true, false, true]
            .into_iter()
            .map(|t| b.after(t).as_secs())
            .collect();
        assert_eq!(waits, [4, 8, 16, 32, 32, 32, 2, 4]);
        let mut slow = Backoff::new(Duration::from_secs(30));
        let most = (0..10).map(|_| slow.after(true)).last().unwrap();
        assert_eq!(most, Duration::from_secs(300), "five minutes at most");
        assert_eq!(
            Backoff::new(Duration::from_secs(600)).after(true),
            Duration::from_secs(600)
        );
    }

    #[test]
    fn an_update_changes_only_the_ssm_fields() {
        let mut i = Instance {
            id: "i-1".into(),
            name: Some("web".into()),
            ping: Ping::ConnectionLost,
            agent_version: Some("1".into()),
            ..Default::default()
        };
        PingUpdate {
            profile: None,
            id: "i-1".into(),
            ping: Ping::Online,
            last_ping: Some(5),
            agent_version: Some("2".into()),
        }
        .apply(&mut i);
        assert_eq!(i.ping, Ping::Online);
        assert_eq!(i.last_ping, Some(5));
        assert_eq!(i.agent_version.as_deref(), Some("2"));
        assert_eq!(i.name.as_deref(), Some("web"));
    }
}
