//! Untrusted text (tag values, names, ids, agent and service messages) made inert
//! for a terminal, and measured in display cells so wide (CJK, emoji) text stays
//! aligned.

use std::borrow::Cow;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Replaces anything a terminal could act on with a visible, inert stand-in:
/// C0 controls become their Unicode control pictures (ESC → `␛`, LF → `␊`), DEL → `␡`,
/// C1 controls and bidirectional overrides (which can disguise text) → `�`.
pub fn sanitize(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(replacement).collect())
}

fn is_unsafe(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

fn replacement(c: char) -> char {
    match c as u32 {
        0x00..=0x1F => char::from_u32(0x2400 + c as u32).unwrap_or('\u{FFFD}'),
        0x7F => '\u{2421}',
        _ if is_unsafe(c) => '\u{FFFD}',
        _ => c,
    }
}

/// A serialized JSON document made inert for a terminal without changing its data:
/// serde_json already escapes C0 controls inside strings, but writes DEL, C1 controls
/// and bidirectional overrides as they are; those can only occur inside strings, so
/// each becomes a `\uXXXX` escape (C0 characters left are the document's own layout).
pub fn json_inert(json: String) -> String {
    let escape = |c: char| is_unsafe(c) && c as u32 > 0x1F;
    if !json.chars().any(escape) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if escape(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Display width in terminal cells.
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// Cuts `s` to at most `max` cells, ending in `…` when something was cut.
pub fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    if width(s) <= max {
        return Cow::Borrowed(s);
    }
    if max == 0 {
        return Cow::Borrowed("");
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > max - 1 {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    Cow::Owned(out)
}

/// `s` cut or padded with spaces to exactly `cells` cells.
pub fn fit(s: &str, cells: usize) -> String {
    let t = truncate(s, cells);
    let pad = cells.saturating_sub(width(&t));
    format!("{t}{}", " ".repeat(pad))
}

/// `64.0 MiB`-style sizes for summaries.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `2.3s` or `1m05s`.
pub fn human_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_newlines_become_inert() {
        assert_eq!(sanitize("a\u{1b}[31mred\nx"), "a␛[31mred␊x");
        assert_eq!(sanitize("tab\there\r"), "tab␉here␍");
        assert_eq!(sanitize("del\u{7f}c1\u{9b}"), "del␡c1\u{FFFD}");
        assert_eq!(sanitize("evil\u{202E}txt.exe"), "evil\u{FFFD}txt.exe");
    }

    #[test]
    fn json_keeps_its_data_and_loses_its_controls() {
        let data = serde_json::json!({
            "name": "a\u{1b}]0;t\u{7}b\u{9b}31m\u{202e}c\u{7f}",
            "ok": "日本 🚀"
        });
        let text = json_inert(serde_json::to_string_pretty(&data).unwrap());
        assert!(!text
            .chars()
            .any(|c| (c.is_control() && c != '\n') || is_bidi_control(c)));
        assert!(text.contains("\\u009b") && text.contains("\\u202e") && text.contains("日本 🚀"));
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn clean_text_is_borrowed() {
        assert!(matches!(sanitize("web-1 ウェブ 🚀"), Cow::Borrowed(_)));
    }

    #[test]
    fn truncation_counts_cells_not_chars() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
        // Each CJK char is two cells wide.
        assert_eq!(truncate("日本語テキスト", 7), "日本語…");
        assert_eq!(width(&truncate("日本語テキスト", 6)), 5);
        assert_eq!(fit("日本", 6), "日本  ");
        assert_eq!(width(&fit("🚀🚀🚀🚀", 5)), 5);
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(64 * 1024 * 1024), "64.0 MiB");
        assert_eq!(
            human_duration(std::time::Duration::from_millis(2340)),
            "2.3s"
        );
        assert_eq!(human_duration(std::time::Duration::from_secs(65)), "1m05s");
    }
}
