//! AWS access: one `AwsContext` per run, built from aws-config's standard chain
//! (profiles, SSO, env, IMDS, `AWS_ENDPOINT_URL*`) or pointed at the simulator,
//! handing out per-region service clients.

pub mod error;
pub mod retry;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::{Credentials, SharedCredentialsProvider};

pub use error::{AwsError, AwsErrorKind};
pub use retry::ThrottleWatch;

/// The region couldn't be decided: no flag, no config, nothing in the AWS chain.
#[derive(Debug, thiserror::Error)]
#[error("no AWS region is set")]
pub struct NoRegion;

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
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(p) = profile {
            loader = loader.profile_name(p);
        }
        if let Some(first) = regions.first() {
            loader = loader.region(Region::new(first.clone()));
        }
        let base = retry::with_defaults(loader.load().await);
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

    /// A context that talks only to `endpoint` (the built-in simulator) with fixed
    /// demo credentials, ignoring the user's AWS environment.
    pub fn for_endpoint(endpoint: &str, regions: Vec<String>) -> Self {
        let creds = Credentials::new("AKIDEC2SSHDEMO", "demo-secret", None, None, "ec2ssh-demo");
        let base = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(SharedCredentialsProvider::new(creds))
            .endpoint_url(endpoint)
            .region(Region::new(regions.first().cloned().unwrap_or_default()))
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
