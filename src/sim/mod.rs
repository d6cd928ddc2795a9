//! The built-in simulator: on 127.0.0.1, the AWS operations ec2ssh uses, in their
//! real wire formats (EC2 query/XML, SSM JSON 1.1), for a fleet from a file or
//! generated. It powers `ec2ssh demo` and the end-to-end tests; later parts add
//! sessions and key pushes. It is a faithful stand-in, not the reference.

pub mod auth;
pub mod ec2;
pub mod fault;
pub mod fleet;
pub mod gateway;
#[cfg(test)]
mod gateway_tests;
pub mod instance_connect;
pub mod mux;
pub mod pacing;
mod server;
#[cfg(test)]
mod session_tests;
pub mod sessions;
pub mod shell;
pub mod sshd;
pub mod ssm;
pub mod stats;
pub mod throttle;
pub mod vpc;
pub mod wire;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use fault::FaultConfig;
pub use fleet::{FleetFile, SimInstance};
pub use server::parse_json_body;

/// How the simulator behaves beyond the fleet itself.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    /// IAM actions answered with AccessDenied, e.g. `ssm:DescribeInstanceInformation`.
    pub denied_actions: HashSet<String>,
    /// Added to every response.
    pub latency: Duration,
    /// 0 picks a free port.
    pub port: u16,
    /// Where port sessions are relayed for instances without their own `target`
    /// (default: 127.0.0.1 and the session's port number).
    pub default_target: Option<SocketAddr>,
    /// The agent version every instance reports in its handshake, overriding the fleet.
    pub agent_version: Option<String>,
    /// Faults injected into every data channel.
    pub faults: FaultConfig,
    /// Turns off the agent's pacing (at most 1024 bytes read from the target per
    /// message, then 1 ms), which caps agent-to-client traffic near 1 MB/s as on the
    /// real service; for tests that need speed.
    pub unpaced: bool,
    /// How long a session whose client went away may wait to be resumed (default
    /// [`sessions::DISCONNECT_TIMEOUT`]).
    pub disconnect_timeout: Option<Duration>,
    /// Where keys pushed with SendSSHPublicKey are written (`DIR/USER/*.pub`) for a
    /// local sshd's AuthorizedKeysCommand.
    pub keys_dir: Option<std::path::PathBuf>,
    /// An authorized_keys file that pushed keys are added to, each valid 60 s (the
    /// demo's private sshd reads it).
    pub authorized_keys: Option<std::path::PathBuf>,
    /// The key pair of the simulator's account; `None` makes a random one, so that
    /// nobody who has not been told it can call the simulator.
    pub access_key: Option<crate::aws::AccessKey>,
    /// Share of API calls answered with the service's throttling error (0 to 1).
    pub throttle: f64,
}

/// What every handler sees.
pub struct SimState {
    pub fleet: FleetFile,
    pub opts: SimOptions,
    /// Who may call the simulator (requests are SigV4-verified against these).
    pub accounts: auth::Accounts,
    /// Relative times in the fleet count back from here.
    pub started: SystemTime,
    requests: AtomicU64,
    /// Session Manager sessions.
    pub sessions: sessions::Registry,
    /// Keys accepted by SendSSHPublicKey.
    pub keys_pushed: AtomicU64,
    /// What the data channels did.
    pub stats: Arc<stats::Stats>,
    /// `--throttle`: which calls are over the request rate.
    pub throttle: throttle::Throttle,
    /// Positions in `fleet.instances` of each account's machines per region, in
    /// fleet order: an account sees only its own.
    by_region: std::collections::HashMap<(String, String), Vec<usize>>,
    /// Position in `fleet.instances` of each (account, id).
    by_id: std::collections::HashMap<(String, String), usize>,
    addr: SocketAddr,
}

impl SimState {
    /// `addr` is where the simulator listens (it goes into stream URLs).
    pub fn new(fleet: FleetFile, opts: SimOptions, addr: SocketAddr) -> Self {
        let key = opts
            .access_key
            .clone()
            .unwrap_or_else(auth::random_access_key);
        let mut by_region = std::collections::HashMap::<(String, String), Vec<usize>>::new();
        let mut by_id = std::collections::HashMap::new();
        for (k, i) in fleet.instances.iter().enumerate() {
            let region = i.region(&fleet.default_region).to_string();
            let account = fleet.account_of(i).to_string();
            by_region
                .entry((account.clone(), region))
                .or_default()
                .push(k);
            by_id.entry((account, i.id.clone())).or_insert(k);
        }
        // The first account acts with `key`; every other with a fresh key pair.
        let mut accounts = auth::Accounts::default();
        for (n, id) in fleet.account_ids().into_iter().enumerate() {
            let key = if n == 0 {
                key.clone()
            } else {
                auth::random_access_key()
            };
            accounts.add(auth::Account { id, key });
        }
        SimState {
            throttle: throttle::Throttle::new(opts.throttle, 0x7407),
            by_region,
            by_id,
            fleet,
            opts,
            accounts,
            started: SystemTime::now(),
            requests: AtomicU64::new(0),
            sessions: sessions::Registry::default(),
            keys_pushed: AtomicU64::new(0),
            stats: Arc::default(),
            addr,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Positions in `fleet.instances` of `account`'s machines in `region`, in fleet
    /// order (what the simulator's paging tokens count in).
    pub fn region_positions(&self, account: &str, region: &str) -> &[usize] {
        self.by_region
            .get(&(account.to_string(), region.to_string()))
            .map_or(&[], Vec::as_slice)
    }

    /// `account`'s machine `id` in `region`, if it has one.
    pub fn instance(&self, account: &str, region: &str, id: &str) -> Option<&SimInstance> {
        let i = &self.fleet.instances[*self.by_id.get(&(account.to_string(), id.to_string()))?];
        (i.region(&self.fleet.default_region) == region).then_some(i)
    }

    /// The key pair of every account, in fleet order: (account id, key).
    pub fn account_keys(&self) -> Vec<(String, crate::aws::AccessKey)> {
        self.fleet
            .account_ids()
            .into_iter()
            .filter_map(|id| {
                let key = self.accounts.iter().find(|a| a.id == id)?.key.clone();
                Some((id, key))
            })
            .collect()
    }

    /// Whether IAM denies `account`'s identity `action` (`--deny` denies every account).
    pub fn is_denied(&self, account: &str, action: &str) -> bool {
        self.opts.denied_actions.contains(action)
            || self
                .fleet
                .accounts
                .iter()
                .any(|a| a.id == account && a.deny.iter().any(|d| d == action))
    }

    /// Positions of `account`'s machines in `region` with these ids, in fleet order.
    pub fn positions_of(&self, account: &str, region: &str, ids: &[String]) -> Vec<usize> {
        let default = &self.fleet.default_region;
        let mut out: Vec<usize> = ids
            .iter()
            .filter_map(|id| self.by_id.get(&(account.to_string(), id.clone())).copied())
            .filter(|&k| self.fleet.instances[k].region(default) == region)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn epoch(&self) -> f64 {
        self.started
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }

    /// The instance's SSM ping status now (`online_after_secs` flips it Online).
    pub fn ping_of<'a>(&self, i: &'a SimInstance) -> Option<&'a str> {
        match i.online_after_secs {
            Some(after) => Some(
                if self.started.elapsed().unwrap_or_default().as_secs() >= after {
                    "Online"
                } else {
                    "ConnectionLost"
                },
            ),
            None => i.ping.as_deref(),
        }
    }

    /// Unix seconds, `secs` before the start.
    pub fn secs_ago(&self, secs: i64) -> f64 {
        (self.epoch() - secs as f64).floor()
    }

    /// ISO 8601 time `days` before the start.
    pub fn days_ago(&self, days: i64) -> String {
        let t = self.started - Duration::from_secs(days.max(0) as u64 * 86_400);
        humantime::format_rfc3339_seconds(t).to_string()
    }

    pub fn request_id(&self) -> String {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        format!("00000000-0000-4000-8000-{n:012x}")
    }
}

/// An error in the service's own terms (code, message, HTTP status).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// What AWS says when IAM denies `action` to `account`'s identity.
    pub fn denied(action: &str, ec2: bool, account: &str) -> Self {
        let who = format!("User: arn:aws:iam::{account}:user/demo");
        if ec2 {
            ApiError::new(403, "UnauthorizedOperation", format!("You are not authorized to perform this operation. {who} is not authorized to perform: {action} because no identity-based policy allows the {action} action"))
        } else {
            ApiError::new(400, "AccessDeniedException", format!("{who} is not authorized to perform: {action} on resource: arn:aws:ssm:*:{account}:* because no identity-based policy allows the {action} action"))
        }
    }
}

/// A running simulator; stops when dropped.
pub struct SimHandle {
    endpoint: String,
    regions: Vec<String>,
    listable: usize,
    access_key: crate::aws::AccessKey,
    accounts: Vec<(String, crate::aws::AccessKey)>,
    task: tokio::task::JoinHandle<()>,
    state: Arc<SimState>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    pub fn regions(&self) -> Vec<String> {
        self.regions.clone()
    }

    /// The key pair of the simulator's first account.
    pub fn access_key(&self) -> crate::aws::AccessKey {
        self.access_key.clone()
    }

    /// Every account and its key pair, the first account first.
    pub fn accounts(&self) -> Vec<(String, crate::aws::AccessKey)> {
        self.accounts.clone()
    }

    /// Sessions not yet terminated.
    pub fn active_sessions(&self) -> usize {
        self.state.sessions.active()
    }

    /// Machines `ec2ssh list` should show.
    pub fn instance_count(&self) -> usize {
        self.listable
    }

    /// What the data channels did so far.
    pub fn stats(&self) -> stats::Snapshot {
        self.state.stats.snapshot()
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds 127.0.0.1 and serves in a background task.
pub async fn start(fleet: FleetFile, mut opts: SimOptions) -> anyhow::Result<SimHandle> {
    let access_key = opts
        .access_key
        .get_or_insert_with(auth::random_access_key)
        .clone();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port)).await?;
    let addr = listener.local_addr()?;
    let endpoint = format!("http://{addr}");
    let regions = fleet.regions();
    let listable = fleet.listable();
    let state = Arc::new(SimState::new(fleet, opts, addr));
    let accounts = state.account_keys();
    let task = tokio::spawn(server::serve(listener, state.clone()));
    Ok(SimHandle {
        endpoint,
        regions,
        listable,
        access_key,
        accounts,
        task,
        state,
    })
}
