//! The command line (clap derive). `ec2ssh` alone opens the picker.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "ec2ssh",
    version,
    about = "Pick an EC2 instance and get a shell on it over AWS Systems Manager",
    long_about = "Lists the instances AWS Systems Manager manages, with their ping status, \
in a fuzzy-filtered picker. No key pairs, public IPs or open ports: access is governed by IAM.\n\n\
Run `ec2ssh demo` to try it on a built-in simulated fleet, no AWS account needed."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// AWS profile(s) to use, comma-separated: every one is listed in one picker, each
    /// row acting with its own (default: config `profiles`, else the standard chain, e.g. AWS_PROFILE)
    #[arg(long, global = true, env = "EC2SSH_PROFILE", value_delimiter = ',')]
    pub profile: Vec<String>,

    /// Every profile of the AWS config files that has credentials or SSO settings
    #[arg(long, global = true, conflicts_with = "profile")]
    pub all_profiles: bool,

    /// Region(s) to list, comma-separated (default: config file, then the AWS chain)
    #[arg(long, global = true, value_delimiter = ',')]
    pub region: Vec<String>,

    /// Config file (default: $XDG_CONFIG_HOME/ec2ssh/config.toml)
    #[arg(long, global = true, env = "EC2SSH_CONFIG")]
    pub config: Option<std::path::PathBuf>,

    /// Ignore the on-disk inventory cache
    #[arg(long, global = true)]
    pub no_cache: bool,

    /// More diagnostics on stderr (-v info, -vv debug); RUST_LOG also works
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the picker (the default)
    Pick(PickArgs),
    /// List the fleet for scripts and humans
    List(ListArgs),
    /// Try ec2ssh on a built-in simulated fleet (no AWS account needed)
    Demo(DemoArgs),
    /// Are these instances Online? Exit 0 only if all are (3 if not); --wait until they are
    Status(StatusArgs),
    /// Connect to an instance by id, IP or Name: push a one-time key, then run ssh through the tunnel
    Ssh(SshArgs),
    /// Copy files to or from one or many instances with scp through the tunnel
    Scp(ScpArgs),
    /// Open a Session Manager shell on an instance by id, IP or Name (no ssh; Windows too)
    #[command(
        long_about = "Open an interactive Session Manager shell on an instance by id, IP or Name, \
with ec2ssh's own data-channel client: no ssh, no key push, the session is logged like any \
Session Manager session (for accounts that require audited shells), and Windows instances get \
PowerShell.\n\n\
stdin must be a terminal (it is put into raw mode, so Ctrl-C, Ctrl-Z and Ctrl-\\ reach the \
remote side); to run commands from a script use `ec2ssh ssh TARGET -- COMMAND`. \
The session is terminated on every exit. KMS-encrypted sessions are not supported yet."
    )]
    Shell(ShellArgs),
    /// Print an ~/.ssh/config block so plain ssh, scp, rsync and sftp reach instances by id
    SshConfig(SshConfigArgs),
    /// Check credentials, OpenSSH, permissions, and (with TARGET) why an instance cannot be reached
    Doctor(DoctorArgs),
    /// Print a least-privilege IAM policy (JSON) for ec2ssh's users
    IamPolicy(IamPolicyArgs),
    /// Forget the pinned host key of an instance (after it was rebuilt)
    Forget {
        /// Instance id
        target: String,
    },
    /// Tunnel stdin/stdout to PORT on an instance over Session Manager (an OpenSSH ProxyCommand)
    #[command(
        long_about = "Tunnel stdin/stdout to PORT on an instance over a Session Manager session \
(document AWS-StartSSHSession), for use as an OpenSSH ProxyCommand:\n\n  \
ssh -o ProxyCommand='ec2ssh proxy %h %p' ec2-user@i-0123456789abcdef0\n\n\
Only tunnel bytes go to stdout; diagnostics go to stderr. The session is terminated on every exit."
    )]
    Proxy(ProxyArgs),
    /// Forward a local port to a port on an instance (or a host it reaches) over Session Manager
    #[command(
        long_about = "Listen on 127.0.0.1:LOCAL and forward every connection to REMOTE_PORT on an \
instance (document AWS-StartPortForwardingSession), or with --host to REMOTE_HOST:REMOTE_PORT as \
the instance reaches it (AWS-StartPortForwardingSessionToRemoteHost). LOCAL 0 or omitted picks a \
free port.\n\n  \
ec2ssh forward web-1 8080:80\n  \
ec2ssh forward db-bastion 0:5432 --host db.internal\n\n\
The local address is printed on stdout (one line); Ctrl-C ends the session."
    )]
    Forward(ForwardArgs),
    /// Print shell completions
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Run the built-in AWS simulator on 127.0.0.1 until interrupted (for tests and benchmarks)
    #[command(hide = true)]
    Sim(SimArgs),
}

#[derive(Debug, Clone, Default, Args)]
pub struct PickArgs {
    /// Start with this filter query
    #[arg(long, short = 'f')]
    pub filter: Option<String>,

    /// Start showing only Online instances
    #[arg(long)]
    pub online: bool,

    /// Enter prints the instance id and exits, instead of connecting (for scripts: id=$(ec2ssh pick --print))
    #[arg(long)]
    pub print: bool,

    /// Exit after the ssh session, with ssh's exit code, instead of returning to the picker
    #[arg(long)]
    pub once: bool,

    /// Login user for the connection (default: config, tag ec2ssh:user, remembered, platform)
    #[arg(long, short = 'l')]
    pub user: Option<String>,

    /// Use this private key (its .pub is pushed) instead of a one-time key
    #[arg(long, value_name = "PATH")]
    pub key: Option<std::path::PathBuf>,

    /// Re-check the ping column with SSM this often, e.g. 10s, or `off` (default: config, else 30s)
    #[arg(long, value_name = "PERIOD")]
    pub ping_refresh: Option<crate::config::Interval>,

    /// Benchmark hook: exit right after the first frame that shows instances
    #[arg(long, hide = true)]
    pub exit_after_first_frame: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only instances whose SSM ping status is Online
    #[arg(long)]
    pub online: bool,

    /// Fuzzy filter, as typed in the picker (best matches first)
    #[arg(long, short = 'f')]
    pub filter: Option<String>,

    /// JSON output (schema: docs/json.md)
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,

    /// Instance ids only, one per line
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Colour: auto (tty and no NO_COLOR), always, never
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Instance ids, IPs or Names (default: every managed instance)
    pub targets: Vec<String>,

    /// Poll until all are Online (exit 0), or the timeout passes (exit 3)
    #[arg(long, conflicts_with = "watch")]
    pub wait: bool,

    /// How long --wait waits, e.g. 90s or 5m
    #[arg(long, default_value = "5m")]
    pub timeout: humantime::Duration,

    /// How often to ask SSM while waiting or watching
    #[arg(long, default_value = "2s")]
    pub interval: humantime::Duration,

    /// Keep refreshing in place and mark changes, until Ctrl-C
    #[arg(long)]
    pub watch: bool,

    /// JSON output: {version, all_online, instances: [{id, name, region, ping, agent_version, last_ping}]}
    #[arg(long, conflicts_with = "watch")]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SshArgs {
    /// [USER@]TARGET: an instance id, an IP address, or a Name (exact, or a unique fuzzy match)
    pub destination: String,

    /// Login user (default: config `[users]`, tag ec2ssh:user, the last that worked, the platform's)
    #[arg(long, short = 'l')]
    pub user: Option<String>,

    /// Use this private key (its .pub is pushed) instead of a one-time key
    #[arg(long, value_name = "PATH")]
    pub key: Option<std::path::PathBuf>,

    /// After `--`: ssh options (leading -x ...) and/or a remote command
    #[arg(last = true)]
    pub rest: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ShellArgs {
    /// An instance id, an IP address, or a Name (exact, or a unique fuzzy match)
    pub target: String,

    /// Session document (default: the account's shell, SSM-SessionManagerRunShell)
    #[arg(long, value_name = "NAME")]
    pub document: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ForwardArgs {
    /// An instance id, an IP address, or a Name (exact, or a unique fuzzy match)
    pub target: String,

    /// [LOCAL:]REMOTE_PORT, e.g. 8080:80 or 5432 (LOCAL 0 or omitted: a free port)
    #[arg(value_name = "[LOCAL:]REMOTE_PORT", value_parser = crate::forward::parse_ports)]
    pub ports: crate::forward::Ports,

    /// Forward to this host as the instance reaches it (e.g. a database endpoint)
    #[arg(long, value_name = "REMOTE_HOST")]
    pub host: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// Instance or managed node id (i-..., mi-...)
    pub target: String,

    /// Port on the instance (sshd)
    #[arg(default_value_t = 22)]
    pub port: u16,

    /// Session transport (default: the config file's `transport`, else native)
    #[arg(long, value_enum)]
    pub transport: Option<crate::config::Transport>,

    /// First push ec2ssh's managed key for this login user with EC2 Instance Connect (ssh's %r)
    #[arg(long, value_name = "USER")]
    pub push_key: Option<String>,

    /// Report the bytes carried to this Unix datagram socket (used by `ec2ssh scp`)
    #[arg(long, value_name = "SOCKET", hide = true)]
    pub progress: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  ec2ssh scp app.conf web-1:/tmp/                 push to one host (id, IP, Name or unique fuzzy match)
  ec2ssh scp -t tag:Role=web -r dist/ :www/       push to every instance tagged Role=web
  ec2ssh scp -t web-1 -t web-2 app.conf :         push to two hosts, into the login's home
  ec2ssh scp web-1:/var/log/app.log .             fetch from one host
  ec2ssh scp -t webprod :/var/log/app.log logs/   fetch from several: logs/<instance-id>/app.log")]
pub struct ScpArgs {
    /// SRC… DEST, like scp: `[USER@]HOST:PATH` is on an instance, `:PATH` on the --target hosts
    #[arg(required = true, num_args = 2.., value_name = "SRC… DEST")]
    pub operands: Vec<String>,

    /// Hosts for `:PATH` operands: an id, IP, Name, `tag:KEY=VALUE` or fuzzy query (all matches); repeatable
    #[arg(long = "target", short = 't', value_name = "QUERY")]
    pub targets: Vec<String>,

    /// Copy directories recursively
    #[arg(short = 'r', long)]
    pub recursive: bool,

    /// Preserve modification times and modes
    #[arg(short = 'p', long)]
    pub preserve: bool,

    /// Create the remote directory a push copies into (and its parents) when missing
    #[arg(long)]
    pub mkdir: bool,

    /// Hosts copied at once (default: the config file's `parallel`, else 8)
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: Option<u16>,

    /// Login user on every host (default: per host, as for `ec2ssh ssh`)
    #[arg(long, short = 'l')]
    pub user: Option<String>,

    /// Use this private key (its .pub is pushed) instead of a one-time key
    #[arg(long, short = 'i')]
    pub key: Option<PathBuf>,

    /// Results as JSON on stdout: {version, ok, results: [{id, name, ok, bytes, seconds, error, fix, missing_dir?}]}
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SshConfigArgs {
    /// Login user for the `Host i-*` block (default: ec2-user)
    #[arg(long, short = 'l', default_value = "ec2-user")]
    pub user: String,

    /// Also print a `Host NAME` alias for every instance with a simple Name tag
    #[arg(long)]
    pub aliases: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// An instance to examine (id, IP, Name or unique fuzzy match): state, agent, profile, network path
    pub target: Option<String>,

    /// JSON output: {version, ok, checks: [{group, name, status, detail, fix}]}
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct IamPolicyArgs {
    /// Also allow interactive shells (`aws ssm start-session`, document SSM-SessionManagerRunShell)
    #[arg(long, conflicts_with = "ssh_only")]
    pub shell: bool,

    /// Also allow port forwarding (AWS-StartPortForwardingSession[ToRemoteHost])
    #[arg(long)]
    pub forward: bool,

    /// Only instances with this tag, e.g. --tag Team=web (repeatable: all must match)
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tag: Vec<(String, String)>,

    /// Add a Deny that stops plain shell sessions, so SSH is the only way in
    #[arg(long)]
    pub ssh_only: bool,
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("write it as KEY=VALUE, e.g. Team=web".into()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Args)]
pub struct FleetSource {
    /// Fleet file to simulate (default: the bundled demo fleet)
    #[arg(long, conflicts_with = "generate")]
    pub fleet: Option<std::path::PathBuf>,

    /// Simulate a generated fleet of N instances instead
    #[arg(long, value_name = "N")]
    pub generate: Option<usize>,

    /// Seed for --generate
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Share the machines round robin among N accounts (111111111111, 222222222222, …),
    /// each with its own key pair, e.g. `--generate 15000 --accounts 3`
    #[arg(long, value_name = "N")]
    pub accounts: Option<usize>,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub source: FleetSource,

    #[command(flatten)]
    pub pick: PickArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    #[command(flatten)]
    pub source: FleetSource,

    /// Port to listen on (default: a free one)
    #[arg(long, default_value_t = 0)]
    pub port: u16,

    /// Deny these IAM actions with AccessDenied (e.g. ssm:DescribeInstanceInformation)
    #[arg(long, value_delimiter = ',')]
    pub deny: Vec<String>,

    /// Relay port sessions of instances without their own `target` to HOST:PORT
    #[arg(long, value_name = "HOST:PORT")]
    pub target: Option<std::net::SocketAddr>,

    /// Agent version every instance reports in the session handshake
    #[arg(long, value_name = "VERSION")]
    pub agent_version: Option<String>,

    /// Write keys pushed with SendSSHPublicKey to DIR/USER/*.pub (for an sshd AuthorizedKeysCommand)
    #[arg(long, value_name = "DIR")]
    pub keys_dir: Option<std::path::PathBuf>,

    /// Faults on every data channel, e.g. drop=0.02,duplicate=0.02,reorder=0.05,delay=0.05,delay-ms=30,cut-after=4000000,latency-ms=20,dial-delay-ms=300,seed=7
    #[arg(long, value_name = "SPEC")]
    pub faults: Option<crate::sim::FaultConfig>,

    /// Turn off the agent's pacing (1 ms after every 1024 bytes it sends), for speed
    #[arg(long)]
    pub unpaced: bool,

    /// How long a session whose client went away may be resumed (e.g. 500ms, 2m; default 20m)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub disconnect_timeout: Option<std::time::Duration>,
    /// Accept the key pair in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY instead of a fresh random one
    #[arg(long)]
    pub credentials_from_env: bool,

    /// Answer this share of API calls (0 to 1) with the service's throttling error
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub throttle: f64,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err("a share between 0 and 1, e.g. 0.2".into()),
    }
}
