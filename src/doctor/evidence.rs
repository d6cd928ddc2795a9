//! What this run has already proved about the permissions doctor cannot try harmlessly:
//! a session that started proves `ssm:StartSession`, a key that was pushed proves
//! `ec2-instance-connect:SendSSHPublicKey` (each for the instance it was on). The
//! picker records them as connections, shells and pushes finish; pure state.

use crate::fleet::Instance;

/// One proof: the instance it happened on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub id: String,
    /// The instance's name, or its id when it has none.
    pub label: String,
}

/// The proofs gathered so far, oldest first, one per instance and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Sessions that started (`ssm:StartSession` was allowed).
    pub sessions: Vec<Proof>,
    /// Keys that were pushed (`ec2-instance-connect:SendSSHPublicKey` was allowed).
    pub keys: Vec<Proof>,
}

/// ssh's own failures (it could not connect or log in) exit 255; any other exit code
/// means ssh got through the tunnel, so the session had started.
const SSH_FAILED: i32 = 255;

impl Evidence {
    fn add(list: &mut Vec<Proof>, i: &Instance) {
        if !list.iter().any(|p| p.id == i.id) {
            let label = match i.display_name() {
                "" => i.id.clone(),
                n => crate::text::sanitize(n).into_owned(),
            };
            list.push(Proof {
                id: i.id.clone(),
                label,
            });
        }
    }

    /// An ssh connection finished with `code`; `pushed_key`: a key was pushed first
    /// (it was, unless the user's own key went to a hybrid node).
    pub fn connected(&mut self, i: &Instance, pushed_key: bool, code: i32) {
        if pushed_key {
            Self::add(&mut self.keys, i);
        }
        if code != SSH_FAILED {
            Self::add(&mut self.sessions, i);
        }
    }

    /// A Session Manager shell opened.
    pub fn shell_opened(&mut self, i: &Instance) {
        Self::add(&mut self.sessions, i);
    }

    /// A copy to or from `i` succeeded: its session ran, after a key push.
    pub fn copied(&mut self, i: &Instance, pushed_key: bool) {
        self.connected(i, pushed_key, 0);
    }

    /// The proof for `action` on `target` if there is one, else on any instance.
    pub fn proof(&self, action: &str, target: Option<&str>) -> Option<(&Proof, bool)> {
        let list = match action {
            "ssm:StartSession" => &self.sessions,
            "ec2-instance-connect:SendSSHPublicKey" => &self.keys,
            _ => return None,
        };
        list.iter()
            .find(|p| Some(p.id.as_str()) == target)
            .map(|p| (p, true))
            .or_else(|| list.last().map(|p| (p, false)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, name: Option<&str>) -> Instance {
        Instance {
            id: id.into(),
            name: name.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn what_each_outcome_proves() {
        let (web, db) = (inst("i-1", Some("web-1")), inst("i-2", None));
        let mut e = Evidence::default();
        // ssh could not log in: the key went out, the session is not proved.
        e.connected(&web, true, 255);
        assert_eq!(e.keys.len(), 1);
        assert!(e.sessions.is_empty());
        // A session that ran (whatever the remote command's exit code).
        e.connected(&web, true, 1);
        assert_eq!(e.sessions[0].label, "web-1");
        assert_eq!(e.keys.len(), 1, "one proof per instance");
        e.shell_opened(&db);
        assert_eq!(e.sessions[1].label, "i-2");
        // The user's own key to a hybrid node: nothing pushed.
        let mut own = Evidence::default();
        own.copied(&inst("mi-1", None), false);
        assert!(own.keys.is_empty() && own.sessions.len() == 1);
    }

    #[test]
    fn the_target_proof_comes_first() {
        let mut e = Evidence::default();
        e.shell_opened(&inst("i-1", Some("web-1")));
        e.shell_opened(&inst("i-2", Some("db-1")));
        let (p, here) = e.proof("ssm:StartSession", Some("i-1")).unwrap();
        assert_eq!((p.label.as_str(), here), ("web-1", true));
        let (p, here) = e.proof("ssm:StartSession", Some("i-9")).unwrap();
        assert_eq!((p.label.as_str(), here), ("db-1", false));
        assert!(e
            .proof("ec2-instance-connect:SendSSHPublicKey", None)
            .is_none());
        assert!(e.proof("ec2:DescribeInstances", None).is_none());
    }
}
