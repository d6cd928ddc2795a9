//! Fault injection for the simulator's data channel: drop, duplicate, reorder and
//! delay binary frames at given rates, cut the websocket after a number of bytes, add
//! a constant one-way latency to every frame (a WAN), and make the agent slow to dial
//! its target. Pure decisions from a seeded RNG, so a failing run can be replayed.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Per-run fault settings. `Default` injects nothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultConfig {
    /// Probability that a frame is lost.
    pub drop: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that a frame is held back and delivered after the next one.
    pub reorder: f64,
    /// Probability that a frame is delayed by `delay_ms`.
    pub delay: f64,
    pub delay_ms: u64,
    /// Cut the websocket (no close frame) once this many bytes of binary frames have
    /// crossed it, counting both directions. The count restarts on every connection,
    /// so a long transfer is cut every `cut_after` bytes. After a resume both ends
    /// resend their whole unacknowledged window (up to ~520 KB each), so values under
    /// about 1.2 MB can cut every connection before it makes progress.
    pub cut_after: Option<u64>,
    /// Constant one-way delay of every websocket frame, both directions (order kept).
    pub latency_ms: u64,
    /// How long the agent takes, after HandshakeComplete, to dial the target (or set up
    /// its smux server); input arriving meanwhile is refused unacknowledged.
    pub dial_delay_ms: u64,
    pub seed: u64,
}

impl FaultConfig {
    pub fn is_active(&self) -> bool {
        self.drop > 0.0
            || self.duplicate > 0.0
            || self.reorder > 0.0
            || self.delay > 0.0
            || self.cut_after.is_some()
            || self.latency_ms > 0
            || self.dial_delay_ms > 0
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("bad fault spec {spec:?}: {why} (expected e.g. drop=0.02,duplicate=0.02,reorder=0.05,delay=0.05,delay-ms=30,cut-after=4000000,latency-ms=20,dial-delay-ms=300,seed=7)")]
pub struct FaultSpecError {
    spec: String,
    why: String,
}

impl FromStr for FaultConfig {
    type Err = FaultSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let err = |why: String| FaultSpecError {
            spec: spec.to_string(),
            why,
        };
        let mut c = FaultConfig::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| err(format!("{part:?} is not key=value")))?;
            let rate = || match value.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(err(format!("{key} must be a rate between 0 and 1"))),
            };
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| err(format!("{key} must be a whole number")))
            };
            match key {
                "drop" => c.drop = rate()?,
                "duplicate" => c.duplicate = rate()?,
                "reorder" => c.reorder = rate()?,
                "delay" => c.delay = rate()?,
                "delay-ms" => c.delay_ms = number()?,
                "cut-after" => c.cut_after = Some(number()?.max(1)),
                "latency-ms" => c.latency_ms = number()?,
                "dial-delay-ms" => c.dial_delay_ms = number()?,
                "seed" => c.seed = number()?,
                other => return Err(err(format!("unknown key {other:?}"))),
            }
        }
        Ok(c)
    }
}

impl fmt::Display for FaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "drop={},duplicate={},reorder={},delay={},delay-ms={},seed={}",
            self.drop, self.duplicate, self.reorder, self.delay, self.delay_ms, self.seed
        )?;
        if let Some(n) = self.cut_after {
            write!(f, ",cut-after={n}")?;
        }
        if self.latency_ms > 0 {
            write!(f, ",latency-ms={}", self.latency_ms)?;
        }
        if self.dial_delay_ms > 0 {
            write!(f, ",dial-delay-ms={}", self.dial_delay_ms)?;
        }
        Ok(())
    }
}

/// What to do with one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Deliver,
    Drop,
    Duplicate,
    /// Hold it back; deliver it right after the next frame.
    Reorder,
    Delay(Duration),
}

/// The decisions for one direction of one connection.
#[derive(Debug)]
pub struct Faults {
    config: FaultConfig,
    rng: StdRng,
}

impl Faults {
    /// `stream` tells apart directions and connections that share a config, so each
    /// gets its own reproducible sequence.
    pub fn new(config: &FaultConfig, stream: u64) -> Self {
        Faults {
            rng: StdRng::seed_from_u64(config.seed.wrapping_mul(0x9e37_79b9).wrapping_add(stream)),
            config: config.clone(),
        }
    }

    /// The fate of the next frame (of `len` bytes).
    pub fn decide(&mut self) -> Fate {
        let c = &self.config;
        let roll: f64 = self.rng.random();
        let mut edge = c.drop;
        if roll < edge {
            return Fate::Drop;
        }
        edge += c.duplicate;
        if roll < edge {
            return Fate::Duplicate;
        }
        edge += c.reorder;
        if roll < edge {
            return Fate::Reorder;
        }
        edge += c.delay;
        if roll < edge {
            return Fate::Delay(Duration::from_millis(c.delay_ms));
        }
        Fate::Deliver
    }
}

/// The `cut-after` budget of one websocket connection: binary-frame bytes in both
/// directions add up; a new connection starts from zero.
#[derive(Debug, Clone, Default)]
pub struct CutBudget {
    limit: Option<u64>,
    bytes: u64,
}

impl CutBudget {
    pub fn new(config: &FaultConfig) -> Self {
        CutBudget {
            limit: config.cut_after,
            bytes: 0,
        }
    }

    /// Counts a frame of `len` bytes; true once the connection must be cut.
    pub fn count(&mut self, len: usize) -> bool {
        self.bytes = self.bytes.saturating_add(len as u64);
        self.limit.is_some_and(|n| self.bytes >= n)
    }
}

/// A constant-latency line: items come out `latency` after they went in, in order.
/// Time is the caller's.
#[derive(Debug)]
pub struct DelayLine<T, I = tokio::time::Instant> {
    latency: Duration,
    queue: VecDeque<(I, T)>,
}

impl<T, I> DelayLine<T, I>
where
    I: Copy + Ord + std::ops::Add<Duration, Output = I>,
{
    pub fn new(latency: Duration) -> Self {
        DelayLine {
            latency,
            queue: VecDeque::new(),
        }
    }

    /// Whether items wait at all (a zero latency passes them straight through).
    pub fn is_active(&self) -> bool {
        !self.latency.is_zero()
    }

    pub fn push(&mut self, now: I, item: T) {
        self.queue.push_back((now + self.latency, item));
    }

    /// When the oldest item is due.
    pub fn next_due(&self) -> Option<I> {
        self.queue.front().map(|(at, _)| *at)
    }

    /// The oldest item, if it is due at `now`.
    pub fn pop_due(&mut self, now: I) -> Option<T> {
        match self.queue.front() {
            Some((at, _)) if *at <= now => self.queue.pop_front().map(|(_, item)| item),
            _ => None,
        }
    }

    /// Everything still in the line, oldest first, with when each is due.
    pub fn drain(&mut self) -> impl Iterator<Item = (I, T)> + '_ {
        self.queue.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let c: FaultConfig =
            "drop=0.02,duplicate=0.03,reorder=0.05,delay=0.1,delay-ms=30,cut-after=4000000,latency-ms=20,dial-delay-ms=300,seed=7"
                .parse()
                .unwrap();
        assert_eq!(c.drop, 0.02);
        assert_eq!(c.cut_after, Some(4_000_000));
        assert_eq!(c.latency(), Duration::from_millis(20));
        assert_eq!(c.dial_delay_ms, 300);
        assert_eq!(c.to_string().parse::<FaultConfig>().unwrap(), c);
        assert!(c.is_active());
        assert!(!FaultConfig::default().is_active());
        assert_eq!("".parse::<FaultConfig>().unwrap(), FaultConfig::default());
    }

    #[test]
    fn rejects_junk() {
        for bad in [
            "drop",
            "drop=2",
            "drop=-0.1",
            "loss=0.1",
            "delay-ms=x",
            "seed=1.5",
            "latency-ms=-1",
        ] {
            let e = bad.parse::<FaultConfig>().unwrap_err();
            assert!(e.to_string().contains("bad fault spec"), "{bad}: {e}");
        }
    }

    #[test]
    fn decisions_follow_the_rates_and_the_seed() {
        let c: FaultConfig = "drop=0.1,duplicate=0.1,reorder=0.1,delay=0.1,delay-ms=5,seed=3"
            .parse()
            .unwrap();
        let run = |stream| {
            let mut f = Faults::new(&c, stream);
            (0..10_000).map(|_| f.decide()).collect::<Vec<_>>()
        };
        let a = run(1);
        assert_eq!(a, run(1), "same seed, same decisions");
        assert_ne!(a, run(2), "streams differ");
        let share = |fate: Fate| a.iter().filter(|&&x| x == fate).count() as f64 / 1e4;
        for fate in [
            Fate::Drop,
            Fate::Duplicate,
            Fate::Reorder,
            Fate::Delay(Duration::from_millis(5)),
        ] {
            assert!(
                (share(fate) - 0.1).abs() < 0.02,
                "{fate:?}: {}",
                share(fate)
            );
        }
    }

    #[test]
    fn a_delay_line_keeps_order_and_delays_each_item_by_the_latency() {
        let ms = Duration::from_millis;
        let mut line: DelayLine<&str, Duration> = DelayLine::new(ms(20));
        assert!(line.is_active());
        line.push(ms(0), "a");
        line.push(ms(5), "b");
        assert_eq!(line.next_due(), Some(ms(20)));
        assert_eq!(line.pop_due(ms(19)), None);
        assert_eq!(line.pop_due(ms(20)), Some("a"));
        assert_eq!(line.pop_due(ms(24)), None);
        assert_eq!(line.next_due(), Some(ms(25)));
        assert_eq!(line.pop_due(ms(100)), Some("b"));
        assert_eq!(line.next_due(), None);
        assert!(!DelayLine::<(), Duration>::new(Duration::ZERO).is_active());
    }

    #[test]
    fn cuts_after_the_byte_budget() {
        let c = FaultConfig {
            cut_after: Some(100),
            ..Default::default()
        };
        let mut budget = CutBudget::new(&c);
        assert!(!budget.count(60)); // one direction
        assert!(budget.count(40)); // the other: together they reach the budget
        assert!(
            !CutBudget::new(&c).count(99),
            "a new connection starts over"
        );
        assert!(!CutBudget::new(&FaultConfig::default()).count(usize::MAX));
    }
}
