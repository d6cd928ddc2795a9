//! AWS access: one `AwsContext` per run, built from aws-config's standard chain
//! (profiles, SSO, env, IMDS, `AWS_ENDPOINT_URL*`) or pointed at the simulator,
//! handing out per-region service clients.

pub mod error;
pub mod retry;

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::{Credentials, SharedCredentialsProvider};

pub use error::{AwsError, AwsErrorKind};
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

/// Shared AWS configuration plus the regions this run covers.
#[derive(Clone, Debug)]
pub struct AwsContext {
    base: SdkConfig,
    pub regions: Vec<String>,
    pub profile: Option<String>,
    /// Identifies the account view for the on-disk cache (profile, regions, endpoint).
    pub cache_key: String,
    /// Sees every attempt of every client made here: is AWS throttling us?
    pub throttle: ThrottleWatch,
}

impl AwsContext {
    /// Loads the standard chain. `regions` from the command line or config win over
    /// the chain's own region (env, profile, IMDS).
    pub async fn load(profile: Option<&str>, regions: &[String]) -> Result<Self, NoRegion> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client());
        if let Some(p) = profile {
            loader = loader.profile_name(p);
        }
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
        let profile = profile
            .map(str::to_string)
            .or_else(|| std::env::var("AWS_PROFILE").ok());
        let endpoint = base.endpoint_url().unwrap_or("").to_string();
        let cache_key = format!(
            "profile={}|regions={}|endpoint={endpoint}",
            profile.as_deref().unwrap_or("default"),
            regions.join(",")
        );
        Ok(AwsContext {
            base,
            regions,
            profile,
            cache_key,
            throttle: ThrottleWatch::default(),
        })
    }

    /// A context that talks only to `endpoint` (the built-in simulator) with `key`,
    /// ignoring the user's AWS environment.
    pub fn for_endpoint(endpoint: &str, regions: Vec<String>, key: &AccessKey) -> Self {
        let creds = Credentials::new(&key.id, key.secret(), None, None, "ec2ssh-demo");
        let base = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(http_client())
            .credentials_provider(SharedCredentialsProvider::new(creds))
            .endpoint_url(endpoint)
            .region(Region::new(regions.first().cloned().unwrap_or_default()))
            .timeout_config(timeouts())
            .build();
        let base = retry::with_defaults(base);
        AwsContext {
            cache_key: format!("demo|{endpoint}|{}", regions.join(",")),
            base,
            regions,
            profile: None,
            throttle: ThrottleWatch::default(),
        }
    }

    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        let conf = aws_sdk_ec2::config::Builder::from(&self.base)
            .region(Region::new(region.to_string()))
            .interceptor(self.throttle.clone())
            .build();
        aws_sdk_ec2::Client::from_conf(conf)
    }

    pub fn ssm(&self, region: &str) -> aws_sdk_ssm::Client {
        let conf = aws_sdk_ssm::config::Builder::from(&self.base)
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
        if let Some(url) = self.base.endpoint_url() {
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
            .or_else(|| self.base.endpoint_url().map(str::to_string))
    }

    /// The credentials of this context, fresh from its provider (for presigning).
    pub async fn credentials(&self) -> Result<Credentials, AwsError> {
        use aws_credential_types::provider::ProvideCredentials;
        let none = |message: String| AwsError {
            action: "ec2-instance-connect:OpenTunnel".into(),
            region: self.regions.join(", "),
            kind: AwsErrorKind::NoCredentials,
            code: None,
            message,
        };
        let provider = self
            .base
            .credentials_provider()
            .ok_or_else(|| none("no credentials provider".into()))?;
        provider
            .provide_credentials()
            .await
            .map_err(|e| none(crate::text::sanitize(&e.to_string()).into_owned()))
    }

    /// STS, for `ec2ssh doctor`'s "whose credentials are these".
    pub fn sts(&self, region: &str) -> aws_sdk_sts::Client {
        let conf = aws_sdk_sts::config::Builder::from(&self.base)
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
        let conf = aws_sdk_sts::config::Builder::from(&self.base)
            .region(Region::new(region.to_string()))
            .interceptor(self.throttle.clone())
            .interceptor(interceptor)
            .build();
        aws_sdk_sts::Client::from_conf(conf)
    }

    pub fn instance_connect(&self, region: &str) -> aws_sdk_ec2instanceconnect::Client {
        let conf = aws_sdk_ec2instanceconnect::config::Builder::from(&self.base)
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
