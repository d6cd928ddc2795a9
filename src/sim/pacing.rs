//! The agent's pacing of what it sends the client: its port and shell plugins read at
//! most 1024 bytes (`StreamDataPayloadSize`) from their source, send them as one
//! message, then sleep 1 ms (`port_basic.go` and `port_mux.go` WritePump /
//! transferDataToMgs, `shell.go` writePump). Agent-to-client traffic is therefore
//! capped near 1 MB/s on the real service. Pure: time is passed in.

use std::collections::VecDeque;
use std::ops::Add;
use std::time::Duration;

use crate::session::codec::MAX_STREAM_PAYLOAD;

/// The agent's sleep after each message.
pub const PERIOD: Duration = Duration::from_millis(1);

/// When the next read from the source may start.
#[derive(Debug, Clone)]
pub struct Pacer<I> {
    period: Duration,
    next: Option<I>,
}

impl<I> Pacer<I>
where
    I: Copy + Ord + Add<Duration, Output = I>,
{
    /// `paced: false` never waits (a simulator option for tests that need speed).
    pub fn new(paced: bool) -> Self {
        Pacer {
            period: if paced { PERIOD } else { Duration::ZERO },
            next: None,
        }
    }

    pub fn is_paced(&self) -> bool {
        !self.period.is_zero()
    }

    /// The earliest time of the next read; `None`: now.
    pub fn ready_at(&self) -> Option<I> {
        self.next
    }

    /// A message went out at `now`. The next one waits a period. While the sender
    /// keeps up, periods follow one another from the previous deadline, so a timer
    /// that wakes a little late does not slow the average; after an idle spell (or a
    /// slow step) the count starts again from `now`.
    pub fn sent(&mut self, now: I) {
        if self.period.is_zero() {
            return;
        }
        let next = match self.next {
            Some(prev) if prev + self.period >= now => prev + self.period,
            _ => now + self.period,
        };
        self.next = Some(next);
    }
}

/// Bytes from a source that hands over chunks of any size (the smux server, the shell)
/// waiting to be sent in messages of at most 1024 bytes.
#[derive(Debug, Default)]
pub struct Outbox {
    bytes: VecDeque<u8>,
}

impl Outbox {
    pub fn push(&mut self, data: &[u8]) {
        self.bytes.extend(data);
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The next message's payload: up to 1024 bytes.
    pub fn take(&mut self) -> Vec<u8> {
        let n = self.bytes.len().min(MAX_STREAM_PAYLOAD);
        self.bytes.drain(..n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn one_message_per_millisecond_on_average_however_late_the_timer() {
        let mut p: Pacer<Duration> = Pacer::new(true);
        assert_eq!(p.ready_at(), None, "the first read is at once");
        let mut now = ms(0);
        let mut sent = 0;
        // A timer that wakes up to 0.9 ms late, as tokio's millisecond wheel does.
        while now < ms(1000) {
            p.sent(now);
            sent += 1;
            let due = p.ready_at().unwrap();
            now = due + us(900 * (sent % 2));
        }
        assert!((990..=1000).contains(&sent), "{sent} messages in a second");
    }

    #[test]
    fn after_an_idle_spell_the_count_starts_again() {
        let mut p: Pacer<Duration> = Pacer::new(true);
        p.sent(ms(0));
        assert_eq!(p.ready_at(), Some(ms(1)));
        // Nothing to read for a while: no burst to make up for it.
        p.sent(ms(50));
        assert_eq!(p.ready_at(), Some(ms(51)));
        p.sent(ms(51));
        assert_eq!(p.ready_at(), Some(ms(52)));
    }

    #[test]
    fn unpaced_never_waits() {
        let mut p: Pacer<Duration> = Pacer::new(false);
        assert!(!p.is_paced());
        p.sent(ms(3));
        assert_eq!(p.ready_at(), None);
    }

    #[test]
    fn the_outbox_hands_out_at_most_1024_bytes_in_order() {
        let mut o = Outbox::default();
        o.push(&[1; 1000]);
        o.push(&[2; 1500]);
        assert_eq!(o.take(), [vec![1; 1000], vec![2; 24]].concat());
        assert_eq!(o.take(), vec![2; 1024]);
        assert_eq!(o.take(), vec![2; 452]);
        assert!(o.is_empty());
    }
}
