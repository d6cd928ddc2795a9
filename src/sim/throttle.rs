//! Throttling in the simulator (`ec2ssh sim --throttle RATE`): that share of API calls
//! is answered the way AWS answers a caller over its request rate, so the SDK's retry
//! classifiers and backoff see what they see in production:
//! - EC2 (query protocol): HTTP 503, `RequestLimitExceeded`, "Request limit exceeded.
//!   Account … has been throttled on ec2:ACTION because it exceeded its request rate
//!   limit." (EC2 sends 503 here, not 400: the status the SDK and users report);
//! - Systems Manager (JSON 1.1): HTTP 400, `ThrottlingException`, "Rate exceeded";
//! - EC2 Instance Connect (JSON 1.1): HTTP 400, `ThrottlingException` with the text of
//!   the service model's documentation (its live message is not public).
//!
//! STS and the data channel are never throttled. Decisions come from a seeded RNG.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::ApiError;

/// Which share of calls to throttle, and how many were.
#[derive(Debug)]
pub struct Throttle {
    rate: f64,
    rng: Mutex<StdRng>,
    throttled: AtomicU64,
}

impl Throttle {
    pub fn new(rate: f64, seed: u64) -> Self {
        Throttle {
            rate: rate.clamp(0.0, 1.0),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            throttled: AtomicU64::new(0),
        }
    }

    /// True when this call is over the rate (and counts it).
    pub fn roll(&self) -> bool {
        if self.rate <= 0.0 {
            return false;
        }
        let hit = self.rate >= 1.0
            || self
                .rng
                .lock()
                .map(|mut r| r.random_bool(self.rate))
                .unwrap_or(true);
        if hit {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// Calls answered with a throttling error so far.
    pub fn count(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }
}

/// What the service says to a throttled call: `target` is the JSON protocol's
/// `X-Amz-Target` (`AmazonSSM.StartSession`), else `action` is the query protocol's
/// `Action`. `None` for calls AWS does not throttle this way (STS here).
pub fn answer(target: Option<&str>, action: &str) -> Option<ApiError> {
    match target {
        Some(t) if t.starts_with("AWSEC2InstanceConnectService.") => Some(ApiError::new(
            400,
            "ThrottlingException",
            "The requests were made too frequently and have been throttled. Wait a while and try again. To increase the limit on your request frequency, contact AWS Support.",
        )),
        Some(_) => Some(ApiError::new(400, "ThrottlingException", "Rate exceeded")),
        None if action == "GetCallerIdentity" => None,
        None => Some(ApiError::new(
            503,
            "RequestLimitExceeded",
            format!("Request limit exceeded. Account 123456789012 has been throttled on ec2:{action} because it exceeded its request rate limit."),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_throttles_in_its_own_words() {
        let ec2 = answer(None, "DescribeInstances").unwrap();
        assert_eq!(
            (ec2.status, ec2.code.as_str()),
            (503, "RequestLimitExceeded")
        );
        assert!(ec2.message.contains("ec2:DescribeInstances"));
        let ssm = answer(Some("AmazonSSM.DescribeInstanceInformation"), "").unwrap();
        assert_eq!(
            (ssm.status, ssm.code.as_str(), ssm.message.as_str()),
            (400, "ThrottlingException", "Rate exceeded")
        );
        let eic = answer(Some("AWSEC2InstanceConnectService.SendSSHPublicKey"), "").unwrap();
        assert_eq!(
            (eic.status, eic.code.as_str()),
            (400, "ThrottlingException")
        );
        assert_eq!(answer(None, "GetCallerIdentity"), None);
    }

    #[test]
    fn the_rate_is_the_share_throttled() {
        let never = Throttle::new(0.0, 1);
        assert!((0..100).all(|_| !never.roll()));
        let always = Throttle::new(1.0, 1);
        assert!((0..100).all(|_| always.roll()));
        assert_eq!(always.count(), 100);
        let fifth = Throttle::new(0.2, 7);
        let hits = (0..10_000).filter(|_| fifth.roll()).count();
        assert!((1_800..2_200).contains(&hits), "{hits}");
    }
}
