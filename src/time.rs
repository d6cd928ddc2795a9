//! Wall-clock time as the product shows it: Unix seconds, and ages in words.

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// How long ago something happened, `secs` seconds back, in a few words.
pub fn age(secs: i64) -> String {
    match secs.max(0) {
        0..=4 => "just now".into(),
        s @ 5..=59 => format!("{s} s ago"),
        s @ 60..=3599 => format!("{} min ago", s / 60),
        s @ 3600..=86_399 => format!("{} h ago", s / 3600),
        s => format!("{} d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(0), "just now");
        assert_eq!(age(42), "42 s ago");
        assert_eq!(age(4 * 60 + 5), "4 min ago");
        assert_eq!(age(3 * 3600), "3 h ago");
        assert_eq!(age(2 * 86400 + 1), "2 d ago");
        assert_eq!(age(-5), "just now");
    }

    #[test]
    fn now_is_after_2020() {
        assert!(unix_now() > 1_577_836_800);
    }
}
