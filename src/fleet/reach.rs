//! Which path reaches a machine: Session Manager (its agent), an EC2 Instance Connect
//! Endpoint in its VPC (no agent needed), or neither, and why. Pure decisions over the
//! fleet's records; the picker, `list`, `doctor` and the connecting commands all ask
//! here, so they can never disagree about a row.

use serde::Deserialize;

use super::model::{Eice, EiceEndpoint, Instance, Ping};

/// Which path to use (config `via`, `--via`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// Session Manager when the agent is Online, else an EC2 Instance Connect Endpoint
    #[default]
    Auto,
    /// Always Session Manager
    Ssm,
    /// Always an EC2 Instance Connect Endpoint
    Eice,
}

/// The path a row would use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Ssm,
    Eice(EiceEndpoint),
    /// Neither path works; the reason, one sentence.
    None(String),
}

impl Reach {
    /// `ssm`, `eice` or `none` (`list --json`'s `reach`).
    pub fn label(&self) -> &'static str {
        match self {
            Reach::Ssm => "ssm",
            Reach::Eice(_) => "eice",
            Reach::None(_) => "none",
        }
    }

    /// One cell for the picker's path column.
    pub fn glyph(&self) -> char {
        match self {
            Reach::Ssm => 'S',
            Reach::Eice(_) => 'E',
            Reach::None(_) => '-',
        }
    }
}

/// The endpoint states a tunnel may use (the AWS CLI's set; an endpoint being updated
/// keeps its old configuration until `update-complete`).
pub fn usable_state(state: &str) -> bool {
    matches!(
        state,
        "create-complete" | "update-in-progress" | "update-failed" | "update-complete"
    )
}

/// The endpoint for a machine in `vpc`/`subnet`, as the AWS CLI picks it: a usable one
/// in its own subnet, else the first usable one of its VPC.
pub fn endpoint_for<'a>(
    endpoints: &'a [EiceEndpoint],
    vpc: &str,
    subnet: Option<&str>,
) -> Option<&'a EiceEndpoint> {
    let mut usable = endpoints
        .iter()
        .filter(|e| e.vpc_id == vpc && usable_state(&e.state));
    let first = usable.clone().next();
    usable
        .find(|e| Some(e.subnet_id.as_str()) == subnet)
        .or(first)
}

/// Sets every machine's `eice` from its region's endpoints; `None` (they could not be
/// listed) leaves them `Unknown`.
pub fn assign(instances: &mut [Instance], endpoints: Option<&[EiceEndpoint]>) {
    let Some(endpoints) = endpoints else {
        return;
    };
    for i in instances {
        i.eice = match (&i.vpc_id, i.is_hybrid()) {
            (Some(vpc), false) => endpoint_for(endpoints, vpc, i.subnet_id.as_deref())
                .map_or(Eice::None, |e| Eice::Endpoint(Box::new(e.clone()))),
            _ => Eice::None,
        };
    }
}

/// The path `via` gives `i`.
pub fn reach(i: &Instance, via: Via) -> Reach {
    let eice = || match (&i.eice, i.private_ip.as_deref()) {
        (Eice::Endpoint(e), Some(_)) if i.state.as_deref() == Some("running") => {
            Some(EiceEndpoint::clone(e))
        }
        _ => None,
    };
    match via {
        Via::Ssm => Reach::Ssm,
        Via::Eice => eice().map_or_else(|| Reach::None(no_eice(i)), Reach::Eice),
        Via::Auto if i.ping == Ping::Online => Reach::Ssm,
        Via::Auto => match eice() {
            Some(e) => Reach::Eice(e),
            // SSM could not be asked: trying it is the only chance.
            None if i.ping == Ping::Unknown && !matches!(i.eice, Eice::None) => Reach::Ssm,
            None => Reach::None(format!("{}; {}", no_ssm(i), no_eice(i))),
        },
    }
}

/// The path in a few words: `Session Manager`, `EICE eice-…` or `none`.
pub fn label(r: &Reach) -> String {
    match r {
        Reach::Ssm => "Session Manager".into(),
        Reach::Eice(e) => format!("EICE {}", e.id),
        Reach::None(_) => "none".into(),
    }
}

/// Why `i` gets the path `via` gives it, short (the picker's detail pane).
pub fn reason(i: &Instance, via: Via) -> String {
    match reach(i, via) {
        Reach::Ssm if via == Via::Ssm => "--via ssm".into(),
        Reach::Ssm if i.ping == Ping::Online => "agent Online".into(),
        Reach::Ssm => format!("{}; no other path known", no_ssm(i)),
        Reach::Eice(_) if via == Via::Eice => "--via eice".into(),
        Reach::Eice(_) => no_ssm(i),
        Reach::None(why) => why,
    }
}

/// The path and why, one line (`doctor`, the status line).
pub fn explain(i: &Instance, via: Via) -> String {
    let r = reach(i, via);
    match &r {
        Reach::None(why) => format!("no path: {why}"),
        Reach::Eice(_) => format!(
            "{} to {}:22 ({})",
            label(&r),
            i.private_ip.as_deref().unwrap_or(""),
            reason(i, via)
        ),
        Reach::Ssm => format!("{} ({})", label(&r), reason(i, via)),
    }
}

fn no_ssm(i: &Instance) -> String {
    match i.ping {
        Ping::NotManaged => "not managed by SSM".into(),
        Ping::Unknown => "SSM not asked".into(),
        p => format!("agent {}", p.label()),
    }
}

fn no_eice(i: &Instance) -> String {
    if i.is_hybrid() {
        return "hybrid node: no EICE".into();
    }
    match (&i.eice, i.state.as_deref(), i.private_ip.as_deref()) {
        (Eice::Unknown, ..) => "EICE unknown (ec2:DescribeInstanceConnectEndpoints failed)".into(),
        (Eice::None, ..) => match &i.vpc_id {
            Some(vpc) => format!("no EICE in {vpc}"),
            None => "not in a VPC".into(),
        },
        (_, Some(s), _) if s != "running" => format!("it is {s}"),
        (_, _, None) => "no private IP".into(),
        _ => "no EICE".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(id: &str, vpc: &str, subnet: &str, state: &str) -> EiceEndpoint {
        EiceEndpoint {
            id: id.into(),
            vpc_id: vpc.into(),
            subnet_id: subnet.into(),
            dns_name: format!("{id}.example"),
            state: state.into(),
            ..Default::default()
        }
    }

    fn inst(ping: Ping, eice: Eice) -> Instance {
        Instance {
            id: "i-0123456789abcdef0".into(),
            state: Some("running".into()),
            ping,
            private_ip: Some("10.0.0.9".into()),
            vpc_id: Some("vpc-1".into()),
            subnet_id: Some("subnet-2".into()),
            eice,
            ..Default::default()
        }
    }

    #[test]
    fn the_endpoint_in_the_own_subnet_wins_then_the_first_usable_one_of_the_vpc() {
        let all = [
            ep("eice-a", "vpc-1", "subnet-1", "create-in-progress"),
            ep("eice-b", "vpc-1", "subnet-1", "create-complete"),
            ep("eice-c", "vpc-1", "subnet-2", "update-complete"),
            ep("eice-d", "vpc-2", "subnet-2", "create-complete"),
        ];
        let id = |v, s| endpoint_for(&all, v, s).map(|e| e.id.as_str());
        assert_eq!(id("vpc-1", Some("subnet-2")), Some("eice-c"));
        assert_eq!(id("vpc-1", Some("subnet-9")), Some("eice-b"));
        assert_eq!(id("vpc-3", None), None);
        assert!(!usable_state("delete-in-progress"));
    }

    #[test]
    fn assign_marks_rows_without_an_endpoint_and_leaves_unknown_when_not_listed() {
        let mut v = vec![inst(Ping::NotManaged, Eice::Unknown)];
        v.push(Instance {
            id: "mi-0123456789abcdef0".into(),
            ..Default::default()
        });
        assign(&mut v, None);
        assert_eq!(v[0].eice, Eice::Unknown);
        assign(
            &mut v,
            Some(&[ep("eice-b", "vpc-1", "subnet-1", "create-complete")]),
        );
        assert_eq!(v[0].eice.endpoint().map(|e| e.id.as_str()), Some("eice-b"));
        assert_eq!(v[1].eice, Eice::None);
        assign(&mut v, Some(&[]));
        assert_eq!(v[0].eice, Eice::None);
    }

    #[test]
    fn auto_prefers_an_online_agent_then_the_endpoint_then_says_why_not() {
        let e = Eice::Endpoint(Box::new(ep(
            "eice-b",
            "vpc-1",
            "subnet-1",
            "create-complete",
        )));
        assert_eq!(reach(&inst(Ping::Online, e.clone()), Via::Auto), Reach::Ssm);
        let lost = inst(Ping::ConnectionLost, e.clone());
        assert_eq!(reach(&lost, Via::Auto).label(), "eice");
        assert_eq!(reach(&lost, Via::Ssm), Reach::Ssm);
        assert_eq!(
            explain(&lost, Via::Auto),
            "EICE eice-b to 10.0.0.9:22 (agent ConnectionLost)"
        );
        assert_eq!(reason(&lost, Via::Eice), "--via eice");
        let none = inst(Ping::NotManaged, Eice::None);
        assert_eq!(
            reach(&none, Via::Auto),
            Reach::None("not managed by SSM; no EICE in vpc-1".into())
        );
        let unknown = inst(Ping::NotManaged, Eice::Unknown);
        assert!(
            matches!(reach(&unknown, Via::Eice), Reach::None(w) if w.contains("ec2:DescribeInstanceConnectEndpoints"))
        );
        // SSM not asked and no endpoint known: trying SSM is the only chance.
        assert_eq!(
            reach(&inst(Ping::Unknown, Eice::Unknown), Via::Auto),
            Reach::Ssm
        );
        let mut stopped = inst(Ping::ConnectionLost, e);
        stopped.state = Some("stopped".into());
        assert!(matches!(reach(&stopped, Via::Eice), Reach::None(w) if w == "it is stopped"));
    }
}
