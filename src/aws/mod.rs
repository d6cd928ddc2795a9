//! AWS access: one `AwsContext` per run, built from aws-config's standard chain
//! (profiles, SSO, env, IMDS, `AWS_ENDPOINT_URL*`) or pointed at the simulator,
//! handing out per-region service clients.

pub mod error;
pub mod page;
pub mod profiles;
pub mod retry;

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::{Credentials, SharedCredentialsProvider};

pub use error::{AwsError, AwsErrorKind};
pub use profiles::{ProfileInfo, Selection};
pub use retry::ThrottleWatch;

/// A fixed key pair (the simulator's). Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub id: String,
    secret: String,
}

impl AccessKey {
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> Self {
        AccessKey {
            id: id.into(),
            secret: secret.into(),
        }
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The region couldn't be decided: no flag, no config, nothing in the AWS chain.
#[derive(Debug, thiserror::Error)]
#[error("no AWS region is set")]
pub struct NoRegion;

/// How long a call may take to connect, then to get AWS's answer, before it counts as
/// unreachable: `EC2SSH_AWS_TIMEOUT` (e.g. `10s`), default 60 s as the AWS CLI's read
/// timeout. The SDK's own default has no read timeout, so an endpoint that accepts and
/// never answers hung for ever.
fn timeouts() -> TimeoutConfig {
    const DEFAULT: Duration = Duration::from_secs(60);
    let read = match std::env::var("EC2SSH_AWS_TIMEOUT") {
        Ok(v) => humantime::parse_duration(&v).unwrap_or_else(|e| {
            tracing::warn!(value = %v, error = %e, "EC2SSH_AWS_TIMEOUT is not a duration; using 60s");
            DEFAULT
        }),
        Err(_) => DEFAULT,
    };
    TimeoutConfig::builder()
        .connect_timeout(read.min(Duration::from_millis(3100)))
        .read_timeout(read)
        .build()
}

/// One profile's AWS configuration: what its clients are built from.
#[derive(Clone, Debug)]
struct Member {
    base: SdkConfig,
    regions: Vec<String>,
    /// `None`: no profile named (the standard chain).
    info: Option<ProfileInfo>,
}

/// The AWS accounts a run covers: one context per profile (each with its own
/// credentials and regions), one of which is active. Service clients come from the
/// active profile; [`AwsContext::for_instance`] and [`AwsContext::for_profile`] give
/// the context that acts on a row, and [`AwsContext::each_profile`] one per profile.
#[derive(Clone, Debug)]
pub struct AwsContext {
    members: std::sync::Arc<[Member]>,
    active: usize,
    /// The active profile's regions.
    pub regions: Vec<String>,
    /// The active profile's name (flag, config, else `AWS_PROFILE`).
    pub profile: Option<String>,
    /// Identifies the account view for the on-disk cache (profiles, regions, endpoint).
    pub cache_key: String,
    /// Sees every attempt of every client made here: is AWS throttling us?
    pub throttle: ThrottleWatch,
    /// The profiles the user asked for.
    pub selection: Selection,
}

/// Why the AWS configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    NoRegion(#[from] NoRegion),
    #[error(transparent)]
    Unknown(#[from] profiles::UnknownProfiles),
    #[error(transparent)]
    Files(#[from] profiles::ProfileFilesError),
    #[error("no profile in the AWS config files has credentials or SSO settings")]
    NoProfiles,
    #[error("profile {0} has no region")]
    ProfileRegion(String),
}

impl LoadError {
    pub fn fix(&self) -> String {
        match self {
            LoadError::NoRegion(_) => "pass --region (e.g. --region us-east-1), set `regions` in the config file, or AWS_REGION".into(),
            LoadError::Unknown(_) => "check the names with `aws configure list-profiles` (--profile takes a comma-separated list)".into(),
            LoadError::Files(_) => "fix the file (AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE name other ones)".into(),
            LoadError::NoProfiles => "add profiles with `aws configure sso` or `aws configure --profile NAME`, or name one with --profile".into(),
            LoadError::ProfileRegion(p) => format!("set `region` in [profile {p}] of the AWS config file, or pass --region"),
        }
    }
}

/// Something listed under a profile in a region: an instance row (`fleet::Instance`).
pub trait Row {
    /// The AWS profile it was listed with (`None`: the standard chain).
    fn profile(&self) -> Option<&str>;
    fn region(&self) -> &str;
}

/// A row's profile that this run did not load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile {0} is not among the profiles of this run")]
pub struct NotLoaded(pub String);

impl AwsContext {
    /// Loads the profiles `selection` names (none: the standard chain). `regions`
    /// from the command line or config win over each profile's own region.
    pub async fn load(selection: &Selection, regions: &[String]) -> Result<Self, LoadError> {
        let (members, endpoint) = match selection {
            Selection::Chain => {
                let m = load_chain(regions).await?;
                let endpoint = m.base.endpoint_url().unwrap_or("").to_string();
                (vec![m], endpoint)
            }
            _ => {
                let set = profiles::read().await?;
                let infos = profiles::select(&set, selection)?;
                if infos.is_empty() {
                    return Err(LoadError::NoProfiles);
                }
                let loads = infos.into_iter().map(|info| load_profile(info, regions));
                let members = futures::future::try_join_all(loads).await?;
                let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
                (members, endpoint)
            }
        };
        let cache_key = format!(
            "profile={}|regions={}|endpoint={endpoint}",
            selection.key(),
            members
                .iter()
                .map(|m| m.regions.join(","))
                .collect::<Vec<_>>()
                .join(";")
        );
        let mut ctx = Self::from_members(members, cache_key);
        ctx.selection = selection.clone();
        Ok(ctx)
    }

    fn from_members(members: Vec<Member>, cache_key: String) -> Self {
        let first = &members[0];
        AwsContext {
            selection: Selection::Chain,
            regions: first.regions.clone(),
            profile: first.label(),
            members: members.into(),
            active: 0,
            cache_key,
            throttle: ThrottleWatch::default(),
        }
    }

    /// A context that talks only to `endpoint` (the built-in simulator) with `key`,
    /// ignoring the user's AWS environment.
    pub fn for_endpoint(endpoint: &str, regions: Vec<String>, key: &AccessKey) -> Self {
        let member = Member {
            base: endpoint_config(endpoint, &regions, key),
            regions: regions.clone(),
            info: None,
        };
        Self::from_members(
            vec![member],
            format!("demo|{endpoint}|{}", regions.join(",")),
        )
    }

    /// Several named profiles, each with its own key, all on `endpoint` (the demo's
    /// accounts on the simulator).
    pub fn for_endpoint_profiles(
        endpoint: &str,
        regions: Vec<String>,
        profiles: &[(ProfileInfo, AccessKey)],
    ) -> Self {
        let members: Vec<Member> = profiles
            .iter()
            .map(|(info, key)| Member {
                base: endpoint_config(endpoint, &regions, key),
                regions: regions.clone(),
                info: Some(info.clone()),
            })
            .collect();
        let names: Vec<&str> = profiles.iter().map(|(p, _)| p.name.as_str()).collect();
        let key = format!("demo|{endpoint}|{}|{}", names.join(","), regions.join(","));
        let mut ctx = Self::from_members(members, key);
        ctx.selection = Selection::Named(names.iter().map(|n| n.to_string()).collect());
        ctx
    }

    /// The same run, acting with profile number `k`.
    fn with_active(&self, k: usize) -> AwsContext {
        let m = &self.members[k];
        AwsContext {
            selection: self.selection.clone(),
            members: self.members.clone(),
            active: k,
            regions: m.regions.clone(),
            profile: m.label(),
            cache_key: self.cache_key.clone(),
            throttle: self.throttle.clone(),
        }
    }

    /// One context per profile of the run, in the order they were named.
    pub fn each_profile(&self) -> impl Iterator<Item = AwsContext> + '_ {
        (0..self.members.len()).map(|k| self.with_active(k))
    }

    /// Every region of every profile, each once, in order.
    pub fn all_regions(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in self.members.iter().flat_map(|m| &m.regions) {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
        out
    }

    /// How many profiles the run covers.
    pub fn profile_count(&self) -> usize {
        self.members.len()
    }

    /// The context of profile `name` (`None`: the standard chain's, in a run
    /// without named profiles).
    pub fn for_profile(&self, name: Option<&str>) -> Result<AwsContext, NotLoaded> {
        self.members
            .iter()
            .position(|m| m.name() == name)
            .map(|k| self.with_active(k))
            .ok_or_else(|| NotLoaded(name.unwrap_or("(the default chain)").to_string()))
    }

    /// What acts on a row: its profile's credentials, in its region. Every action on
    /// an instance (connect, push, shell, forward, status, doctor, ping) asks here.
    pub fn for_instance(&self, i: &impl Row) -> Result<AwsContext, NotLoaded> {
        let mut ctx = self.for_profile(i.profile())?;
        ctx.regions = vec![i.region().to_string()];
        Ok(ctx)
    }

    /// The active profile as the SDK files describe it (`None`: the standard chain).
    pub fn profile_info(&self) -> Option<&ProfileInfo> {
        self.members[self.active].info.as_ref()
    }

    /// What rows listed with this profile carry: (profile, account id, account name).
    pub fn row_account(&self) -> (Option<String>, Option<String>, Option<String>) {
        let info = self.profile_info();
        (
            info.map(|i| i.name.clone()),
            info.and_then(|i| i.account_id.clone()),
            info.and_then(|i| i.account_name.clone()),
        )
    }

    /// The SSO login the active profile's credentials depend on.
    pub fn sso_login(&self) -> Option<String> {
        self.profile_info()
            .and_then(|i| i.sso.as_ref())
            .map(profiles::SsoLogin::command)
    }

    /// `e` as met by the active profile: named after it when the run names profiles.
    pub fn tag(&self, e: AwsError) -> AwsError {
        match self.profile_info() {
            Some(info) => e.in_profile(Some(&info.name), self.sso_login()),
            None => e,
        }
    }

    fn base(&self) -> &SdkConfig {
        &self.members[self.active].base
    }

    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        let conf = aws_sdk_ec2::config::Builder::from(self.base())
            .region(Region::new(region.to_string()))
            .interceptor(self.throttle.clone())
            .build();
        aws_sdk_ec2::Client::from_conf(conf)
    }

    pub fn ssm(&self, region: &str) -> aws_sdk_ssm::Client {
        let conf = aws_sdk_ssm::config::Builder::from(self.base())
            .region(Region::new(region.to_string()))
            .interceptor(self.throttle.clone())
            .build();
        aws_sdk_ssm::Client::from_conf(conf)
    }

    /// The SSM endpoint URL in use for `region` (what session-manager-plugin is told).
    pub fn ssm_endpoint(&self, region: &str) -> String {
        if let Some(url) = std::env::var("AWS_ENDPOINT_URL_SSM")
            .ok()
            .filter(|u| !u.is_empty())
        {
            return url;
        }
        if let Some(url) = self.base().endpoint_url() {
            return url.to_string();
        }
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("https://ssm.{region}.{suffix}")
    }

    /// Where EC2 Instance Connect Endpoint tunnels are dialled instead of the
    /// endpoint's own DNS name: `AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT`, else the
    /// context's endpoint (`AWS_ENDPOINT_URL`, the simulator's). `None`: the real one.
    pub fn eice_endpoint_override(&self) -> Option<String> {
        std::env::var("AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT")
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| self.base().endpoint_url().map(str::to_string))
    }

    /// The credentials of this context, fresh from its provider (for presigning).
    pub async fn credentials(&self) -> Result<Credentials, AwsError> {
        use aws_credential_types::provider::ProvideCredentials;
        let none = |message: String| {
            self.tag(AwsError {
                action: "ec2-instance-connect:OpenTunnel".into(),
                region: self.regions.join(", "),
                kind: AwsErrorKind::NoCredentials,
                code: None,
                message,
                profile: None,
            })
        };
        let provider = self
            .base()
            .credentials_provider()
            .ok_or_else(|| none("no credentials provider".into()))?;
        provider
            .provide_credentials()
            .await
            .map_err(|e| none(crate::text::sanitize(&e.to_string()).into_owned()))
    }

    /// STS, for `ec2ssh doctor`'s "whose credentials are these".
    pub fn sts(&self, region: &str) -> aws_sdk_sts::Client {
        let conf = aws_sdk_sts::config::Builder::from(self.base())
            .region(Region::new(region.to_string()))
            .interceptor(self.throttle.clone())
            .build();
        aws_sdk_sts::Client::from_conf(conf)
    }

    /// Builds an STS client with an extra interceptor (doctor reads the `Date` header).
    pub fn sts_with(
        &self,
        region: &str,
        interceptor: impl aws_sdk_sts::config::Intercept + 'static,
    ) -> aws_sdk_sts::Client {
        let conf = aws_sdk_sts::config::Builder::from(self.base())
            .region(Region::new(region.to_string()))
            .interceptor(self.throttle.clone())
            .interceptor(interceptor)
            .build();
        aws_sdk_sts::Client::from_conf(conf)
    }

    pub fn instance_connect(&self, region: &str) -> aws_sdk_ec2instanceconnect::Client {
        let conf = aws_sdk_ec2instanceconnect::config::Builder::from(self.base())
            .region(Region::new(region.to_string()))
            .interceptor(self.throttle.clone())
            .build();
        aws_sdk_ec2instanceconnect::Client::from_conf(conf)
    }
}

/// The HTTP client of every SDK call: the SDK's default one, through the proxy that
/// the environment names for each endpoint (curl's rules, as the data channel).
fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    crate::net::sdk::http_client(crate::net::ProxyEnv::current())
}

impl Member {
    fn name(&self) -> Option<&str> {
        self.info.as_ref().map(|i| i.name.as_str())
    }

    /// The profile to show: the named one, else the chain's AWS_PROFILE.
    fn label(&self) -> Option<String> {
        self.name()
            .map(str::to_string)
            .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()))
    }
}

/// No profile named: aws-config's standard chain (env keys, AWS_PROFILE, SSO, IMDS).
async fn load_chain(regions: &[String]) -> Result<Member, NoRegion> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client());
    if let Some(first) = regions.first() {
        loader = loader.region(Region::new(first.clone()));
    }
    let base = retry::with_defaults(loader.timeout_config(timeouts()).load().await);
    let regions = if regions.is_empty() {
        match base.region() {
            Some(r) => vec![r.to_string()],
            None => return Err(NoRegion),
        }
    } else {
        regions.to_vec()
    };
    Ok(Member {
        base,
        regions,
        info: None,
    })
}

/// A named profile: its credentials come from the profile only, as the AWS CLI does
/// when a profile is named (AWS_ACCESS_KEY_ID in the environment would otherwise act
/// for every profile), and a region is always given so nothing asks IMDS for one.
async fn load_profile(info: ProfileInfo, regions: &[String]) -> Result<Member, LoadError> {
    let regions = if regions.is_empty() {
        match info.region.clone().or_else(env_region) {
            Some(r) => vec![r],
            None => return Err(LoadError::ProfileRegion(info.name.clone())),
        }
    } else {
        regions.to_vec()
    };
    let region = Region::new(regions[0].clone());
    let provider_config = aws_config::provider_config::ProviderConfig::without_region()
        .with_http_client(http_client())
        .with_region(Some(region.clone()));
    let creds = aws_config::profile::ProfileFileCredentialsProvider::builder()
        .configure(&provider_config)
        .profile_name(&info.name)
        .build();
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .profile_name(&info.name)
        .region(region)
        .credentials_provider(creds)
        .timeout_config(timeouts());
    let base = retry::with_defaults(loader.load().await);
    Ok(Member {
        base,
        regions,
        info: Some(info),
    })
}

fn env_region() -> Option<String> {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|r| !r.is_empty()))
}

/// The simulator's configuration: `key`, `endpoint`, nothing from the environment.
fn endpoint_config(endpoint: &str, regions: &[String], key: &AccessKey) -> SdkConfig {
    let creds = Credentials::new(&key.id, key.secret(), None, None, "ec2ssh-demo");
    let base = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http_client())
        .credentials_provider(SharedCredentialsProvider::new(creds))
        .endpoint_url(endpoint)
        .region(Region::new(regions.first().cloned().unwrap_or_default()))
        .timeout_config(timeouts())
        .build();
    retry::with_defaults(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_profiles() -> AwsContext {
        let info = |name: &str, account: &str| ProfileInfo {
            name: name.into(),
            account_id: Some(account.into()),
            ..ProfileInfo::default()
        };
        AwsContext::for_endpoint_profiles(
            "http://127.0.0.1:9",
            vec!["us-east-1".into(), "eu-west-1".into()],
            &[
                (info("dev", "111111111111"), AccessKey::new("AKIADEV", "s1")),
                (
                    info("prod", "222222222222"),
                    AccessKey::new("AKIAPROD", "s2"),
                ),
            ],
        )
    }

    #[test]
    fn each_row_gets_its_profiles_context_in_its_region() {
        let ctx = two_profiles();
        assert_eq!(ctx.profile_count(), 2);
        let names: Vec<Option<String>> = ctx.each_profile().map(|c| c.profile).collect();
        assert_eq!(names, [Some("dev".into()), Some("prod".into())]);
        let row = crate::fleet::Instance {
            id: "i-1".into(),
            region: "eu-west-1".into(),
            profile: Some("prod".into()),
            ..Default::default()
        };
        let acting = ctx.for_instance(&row).unwrap();
        assert_eq!(acting.profile.as_deref(), Some("prod"));
        assert_eq!(acting.regions, ["eu-west-1"]);
        assert_eq!(
            acting.row_account(),
            (Some("prod".into()), Some("222222222222".into()), None)
        );
        // A row of a profile this run did not load is an error, not another account.
        let stray = crate::fleet::Instance {
            profile: Some("staging".into()),
            ..row
        };
        assert_eq!(
            ctx.for_instance(&stray).unwrap_err().to_string(),
            "profile staging is not among the profiles of this run"
        );
        assert!(ctx.for_profile(None).is_err());
        assert_eq!(ctx.all_regions(), ["us-east-1", "eu-west-1"]);
    }

    #[test]
    fn errors_are_tagged_with_the_acting_profile() {
        let ctx = two_profiles().for_profile(Some("dev")).unwrap();
        let e = AwsError {
            action: "ec2:DescribeInstances".into(),
            region: "us-east-1".into(),
            kind: AwsErrorKind::AccessDenied,
            code: None,
            message: String::new(),
            profile: None,
        };
        assert_eq!(ctx.tag(e).profile(), Some("dev"));
    }
}
