//! Throttling: the SDK's own retry strategy, set for listing big fleets, and a watch
//! that notices throttled attempts so the picker can say why it is slow.
//!
//! The SDK's default (standard mode, 3 attempts) loses a page now and then when AWS
//! throttles a large listing; ec2ssh asks the same strategy for more attempts with a
//! shorter backoff ceiling, so a listing survives a throttled account and an account
//! that is always throttled still fails within seconds. A retry mode or attempt count
//! the user chose (`AWS_RETRY_MODE`, `AWS_MAX_ATTEMPTS`, `retry_mode`/`max_attempts`
//! in the profile) is left alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::SdkConfig;
use aws_sdk_ec2::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_ec2::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_ec2::error::BoxError;
use aws_types::service_config::ServiceConfigKey;

/// Attempts per call, the first included.
pub const MAX_ATTEMPTS: u32 = 10;
/// The longest wait between two attempts (the SDK's default is 20 s).
pub const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// ec2ssh's retry configuration unless the user chose one.
pub fn with_defaults(base: SdkConfig) -> SdkConfig {
    if user_chose(&base) {
        return base;
    }
    base.into_builder().retry_config(default_config()).build()
}

/// Standard mode with more attempts. Adaptive mode was measured too (`scripts/bench.sh`):
/// its client-side rate limiter slows every later page after a throttle.
pub fn default_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_max_backoff(MAX_BACKOFF)
}

fn user_chose(base: &SdkConfig) -> bool {
    let Some(config) = base.service_config() else {
        return false;
    };
    [
        ("max_attempts", "AWS_MAX_ATTEMPTS"),
        ("retry_mode", "AWS_RETRY_MODE"),
    ]
    .into_iter()
    .any(|(profile, env)| {
        ServiceConfigKey::builder()
            .service_id("EC2")
            .profile(profile)
            .env(env)
            .build()
            .is_ok_and(|key| config.load_config(key).is_some())
    })
}

/// Counts attempts AWS answered with a throttling error, and remembers the last one.
#[derive(Debug, Clone, Default)]
pub struct ThrottleWatch(Arc<Watched>);

#[derive(Debug, Default)]
struct Watched {
    count: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl ThrottleWatch {
    /// Throttled attempts so far.
    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }

    /// True when an attempt was throttled within `window`.
    pub fn recently(&self, window: Duration) -> bool {
        self.0
            .last
            .lock()
            .ok()
            .and_then(|l| *l)
            .is_some_and(|t| t.elapsed() < window)
    }

    fn note(&self) {
        self.0.count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut l) = self.0.last.lock() {
            *l = Some(Instant::now());
        }
    }
}

impl Intercept for ThrottleWatch {
    fn name(&self) -> &'static str {
        "ec2ssh-throttle-watch"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(response) = context.response() {
            let header = response
                .headers()
                .get("x-amzn-errortype")
                .unwrap_or_default();
            let body = response.body().bytes().unwrap_or_default();
            if is_throttling(response.status().as_u16(), header, body) {
                self.note();
            }
        }
        Ok(())
    }
}

/// The error codes the SDK's retry classifier treats as throttling.
const THROTTLING_CODES: [&str; 12] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "EC2ThrottledException",
];

/// Whether a response is a throttling error: its code from the JSON protocols'
/// `X-Amzn-ErrorType` header or `__type`, or the query protocol's `<Code>`.
pub fn is_throttling(status: u16, error_type: &str, body: &[u8]) -> bool {
    if status == 429 {
        return true;
    }
    if status < 400 {
        return false;
    }
    error_code(error_type, body).is_some_and(|c| THROTTLING_CODES.contains(&c))
}

fn error_code<'a>(error_type: &'a str, body: &'a [u8]) -> Option<&'a str> {
    // `aws.protocoltests#ThrottlingException:http://…` → `ThrottlingException`
    let bare = |s: &'a str| {
        let s = s.split(':').next().unwrap_or(s);
        s.rsplit('#').next().unwrap_or(s)
    };
    if !error_type.is_empty() {
        return Some(bare(error_type));
    }
    let body = std::str::from_utf8(body).ok()?;
    let between = |open: &str, close: &str| {
        let rest = &body[body.find(open)? + open.len()..];
        Some(&rest[..rest.find(close)?])
    };
    between("<Code>", "</Code>")
        .or_else(|| between("\"__type\":\"", "\""))
        .map(bare)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_told_from_the_answer_in_every_protocol() {
        let ec2 = br#"<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>x</RequestID></Response>"#;
        assert!(is_throttling(503, "", ec2));
        let ssm = br#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
        assert!(is_throttling(400, "", ssm));
        assert!(is_throttling(
            400,
            "ThrottlingException:http://internal",
            b""
        ));
        assert!(is_throttling(
            400,
            "",
            br#"{"__type":"com.amazon.coral.availability#ThrottlingException"}"#
        ));
        assert!(is_throttling(429, "", b""));
        let denied = br#"{"__type":"AccessDeniedException","message":"no Throttling here"}"#;
        assert!(!is_throttling(400, "", denied));
        assert!(!is_throttling(200, "", ssm));
    }

    /// Answers like the loaded environment and profile would.
    #[derive(Debug)]
    struct Set(&'static [&'static str]);

    impl aws_types::service_config::LoadServiceConfig for Set {
        fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
            self.0.contains(&key.env()).then(|| "2".to_string())
        }
    }

    #[test]
    fn the_users_retry_choice_wins() {
        let attempts = |set: &'static [&'static str]| {
            let base = SdkConfig::builder().service_config(Set(set)).build();
            with_defaults(base).retry_config().map(|r| r.max_attempts())
        };
        assert_eq!(attempts(&[]), Some(MAX_ATTEMPTS));
        assert_eq!(
            attempts(&["AWS_MAX_ATTEMPTS"]),
            None,
            "the chain's own stays"
        );
        assert_eq!(attempts(&["AWS_RETRY_MODE"]), None);
        let bare = with_defaults(SdkConfig::builder().build());
        assert_eq!(
            bare.retry_config().map(|r| r.max_attempts()),
            Some(MAX_ATTEMPTS)
        );
    }
}
