//! Test-only: a deterministic lossy network between two sans-IO endpoints. A seeded RNG
//! decides per frame whether it is dropped, duplicated, and how long each copy is
//! delayed; different delays reorder frames. Time is virtual.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Direction of travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dir {
    ToAgent,
    ToClient,
}

/// Fault rates.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub drop: f64,
    pub duplicate: f64,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Faults {
    /// Random but bounded fault rates, so a range of seeds covers mild to harsh networks.
    pub fn random(rng: &mut StdRng) -> Self {
        let min_ms = rng.random_range(0..=20u64);
        let spread = rng.random_range(0..=300u64);
        Self {
            drop: rng.random_range(0.0..0.3),
            duplicate: rng.random_range(0.0..0.2),
            min_delay: Duration::from_millis(min_ms),
            max_delay: Duration::from_millis(min_ms + spread),
        }
    }
}

type InFlight = Reverse<(Duration, u64, Dir, Vec<u8>)>;

pub struct Net {
    pub rng: StdRng,
    faults: Faults,
    in_flight: BinaryHeap<InFlight>,
    /// Tie-breaker so equal delivery times keep a deterministic order.
    counter: u64,
    pub sent: u64,
    pub dropped: u64,
    pub duplicated: u64,
}

impl Net {
    /// A network whose fault rates are themselves drawn from the seed.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let faults = Faults::random(&mut rng);
        Self::new(rng, faults)
    }

    pub fn new(rng: StdRng, faults: Faults) -> Self {
        Self {
            rng,
            faults,
            in_flight: BinaryHeap::new(),
            counter: 0,
            sent: 0,
            dropped: 0,
            duplicated: 0,
        }
    }

    pub fn faults(&self) -> Faults {
        self.faults
    }

    pub fn send(&mut self, now: Duration, dir: Dir, frame: Vec<u8>) {
        self.sent += 1;
        if self.rng.random_bool(self.faults.drop) {
            self.dropped += 1;
            return;
        }
        let copies = if self.rng.random_bool(self.faults.duplicate) {
            self.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let lo = self.faults.min_delay.as_micros() as u64;
            let hi = self.faults.max_delay.as_micros() as u64;
            let delay = Duration::from_micros(self.rng.random_range(lo..=hi));
            self.counter += 1;
            self.in_flight
                .push(Reverse((now + delay, self.counter, dir, frame.clone())));
        }
    }

    pub fn next_delivery(&self) -> Option<Duration> {
        self.in_flight.peek().map(|Reverse((t, ..))| *t)
    }

    pub fn pop_due(&mut self, now: Duration) -> Option<(Dir, Vec<u8>)> {
        if self.next_delivery()? > now {
            return None;
        }
        self.in_flight.pop().map(|Reverse((_, _, dir, f))| (dir, f))
    }
}

/// Earliest of several optional deadlines.
pub fn earliest(times: impl IntoIterator<Item = Option<Duration>>) -> Option<Duration> {
    times.into_iter().flatten().min()
}

/// Test data of a seed-chosen length.
pub fn random_bytes(rng: &mut StdRng, max_len: usize) -> Vec<u8> {
    let len = rng.random_range(0..=max_len);
    (0..len).map(|_| rng.random()).collect()
}

/// Seeds to run: `EC2SSH_SIM_SEED=n` replays one, otherwise `0..count`.
pub fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("EC2SSH_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("EC2SSH_SIM_SEED must be a u64")],
        Err(_) => (0..count).collect(),
    }
}
