//! The picker's table columns: which ones fit the terminal and how wide each is.
//! Widths follow the content (measured once per data change, over every row, so
//! columns do not jump while the query changes what is shown); when the content is
//! wider than the terminal, the columns that would be cut share what is left. Pure.

use std::borrow::Cow;

use crate::filter::Field;
use crate::fleet::Instance;
use crate::text::{sanitize, width};

/// Cells before the first column: mark, space, ping glyph, path glyph, space.
pub const GUTTER: usize = 5;
/// Cells after each column.
pub const SEP: usize = 2;

/// One column of the table, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// The searchable field it shows (`None`: the agent version).
    pub field: Option<Field>,
    pub title: &'static str,
    /// Fewest cells worth showing when cut; `None`: never cut (an id or an IP cut
    /// short is useless), so the column is dropped instead.
    pub min: Option<usize>,
    /// Its part of the room the cut columns share (0 for those never cut).
    pub weight: usize,
}

/// Every column, left to right; on a narrow terminal they are dropped from the right.
/// ACCOUNT, last, shows only when the rows belong to more than one account.
pub const SPECS: [Spec; 8] = [
    Spec {
        field: Some(Field::Name),
        title: "NAME",
        min: Some(8),
        weight: 2,
    },
    Spec {
        field: Some(Field::Id),
        title: "ID",
        min: None,
        weight: 0,
    },
    Spec {
        field: Some(Field::PrivateIp),
        title: "PRIVATE IP",
        min: None,
        weight: 0,
    },
    Spec {
        field: Some(Field::Platform),
        title: "PLATFORM",
        min: Some(10),
        weight: 1,
    },
    Spec {
        field: Some(Field::Type),
        title: "TYPE",
        min: None,
        weight: 0,
    },
    Spec {
        field: Some(Field::Zone),
        title: "AZ",
        min: None,
        weight: 0,
    },
    Spec {
        field: None,
        title: "AGENT",
        min: None,
        weight: 0,
    },
    Spec {
        field: Some(Field::Account),
        title: "ACCOUNT",
        min: Some(8),
        weight: 1,
    },
];

/// The position of ACCOUNT in `SPECS` (its width is 0 while it is hidden).
const ACCOUNT: usize = SPECS.len() - 1;

/// A column as drawn: what it shows and how many cells it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub field: Option<Field>,
    pub title: &'static str,
    pub width: usize,
}

/// The widest cell of each column (its title included), in `SPECS` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Widths(pub [usize; SPECS.len()]);

impl Default for Widths {
    /// No rows: the titles (ACCOUNT hidden).
    fn default() -> Self {
        let mut w = Widths(SPECS.map(|s| width(s.title)));
        w.0[ACCOUNT] = 0;
        w
    }
}

impl Widths {
    /// Measures every row (once per data change, not per frame). ACCOUNT gets a
    /// width only when rows come from two accounts (or profiles).
    pub fn measure(instances: &[Instance]) -> Widths {
        Widths::measure_rows(instances, crate::fleet::several_accounts(instances))
    }

    /// Measures `instances`, some rows of a fleet that has `several` accounts.
    pub fn measure_rows(instances: &[Instance], several: bool) -> Widths {
        let mut w = Widths::default();
        let measured = if several { SPECS.len() } else { ACCOUNT };
        w.0[ACCOUNT] = if several {
            width(SPECS[ACCOUNT].title)
        } else {
            0
        };
        for i in instances {
            for (n, spec) in SPECS.iter().enumerate().take(measured) {
                w.0[n] = w.0[n].max(cell_width(&raw(i, spec.field)));
            }
        }
        w
    }
}

/// The text of one cell, sanitized (what the screen shows before cutting).
pub fn cell_text(i: &Instance, field: Option<Field>) -> String {
    sanitize(&raw(i, field)).into_owned()
}

/// The cells `text` takes on screen, sanitized. This runs over every row: printable
/// ASCII, the common case, is one cell a byte and needs no sanitizing.
fn cell_width(text: &str) -> usize {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        text.len()
    } else {
        width(&sanitize(text))
    }
}

/// A cell's text as stored (only the platform label is built).
fn raw(i: &Instance, field: Option<Field>) -> Cow<'_, str> {
    let s: &str = match field {
        Some(Field::Name) if i.name.is_none() => "–",
        Some(Field::Name) => i.display_name(),
        Some(Field::Id) => &i.id,
        Some(Field::PrivateIp) => i.private_ip.as_deref().unwrap_or_default(),
        Some(Field::PublicIp) => i.public_ip.as_deref().unwrap_or_default(),
        Some(Field::Platform) => return Cow::Owned(i.platform_label()),
        Some(Field::Type) => i.instance_type.as_deref().unwrap_or_default(),
        Some(Field::Zone) => i.availability_zone.as_deref().unwrap_or_default(),
        Some(Field::Account) => return Cow::Owned(i.account_label()),
        None => i.agent_version.as_deref().unwrap_or_default(),
    };
    Cow::Borrowed(s)
}

/// The columns for a table `total` cells wide. Each column is followed by `SEP` cells.
/// Columns are kept from the left while their least widths fit; then every column
/// gets its content's width if all fit, else the columns that can be cut share the
/// room the others leave (the name twice as much as the platform), a content that
/// needs less than its share getting just what it needs.
pub fn layout(total: usize, content: &Widths) -> Vec<Column> {
    let budget = total.saturating_sub(GUTTER);
    let least = |n: usize| SPECS[n].min.map_or(content.0[n], |m| m.min(content.0[n]));
    let mut kept = 0;
    let mut used = 0;
    let count = if content.0[ACCOUNT] == 0 {
        ACCOUNT
    } else {
        SPECS.len()
    };
    for n in 0..count {
        let need = least(n) + SEP;
        // NAME always shows, however narrow the terminal.
        if n > 0 && used + need > budget {
            break;
        }
        used += need;
        kept = n + 1;
    }
    let cells = budget.saturating_sub(kept * SEP);
    let mut widths: Vec<usize> = content.0[..kept].to_vec();
    if widths.iter().sum::<usize>() > cells {
        let elastic: Vec<usize> = (0..kept).filter(|&n| SPECS[n].weight > 0).collect();
        let fixed: usize = (0..kept)
            .filter(|n| !elastic.contains(n))
            .map(|n| widths[n])
            .sum();
        let mut room = cells.saturating_sub(fixed);
        // Weighted water-filling: in order of need per weight, a column whose content
        // fits its share of what is left takes just that; the others take their share.
        let mut order = elastic.clone();
        order.sort_by_key(|&n| (content.0[n] * 1000) / SPECS[n].weight);
        let mut weight: usize = order.iter().map(|&n| SPECS[n].weight).sum();
        for &n in &order {
            let share = room * SPECS[n].weight / weight.max(1);
            widths[n] = content.0[n].min(share);
            room -= widths[n];
            weight -= SPECS[n].weight;
        }
        // What rounding could not hand out goes to the leftmost cut column.
        if let Some(&n) = elastic.iter().find(|&&n| widths[n] < content.0[n]) {
            widths[n] += room;
        }
    }
    (0..kept)
        .map(|n| Column {
            field: SPECS[n].field,
            title: SPECS[n].title,
            width: widths[n],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn titles(cols: &[Column]) -> Vec<&str> {
        cols.iter().map(|c| c.title).collect()
    }

    fn sized(cols: &[Column]) -> Vec<(&str, usize)> {
        cols.iter().map(|c| (c.title, c.width)).collect()
    }

    fn total(cols: &[Column]) -> usize {
        GUTTER + cols.iter().map(|c| c.width + SEP).sum::<usize>()
    }

    /// A typical fleet: short names, long platform names.
    const TYPICAL: Widths = Widths([10, 19, 12, 30, 9, 10, 11, 0]);

    #[test]
    fn columns_take_their_contents_width_when_everything_fits() {
        let cols = layout(140, &TYPICAL);
        assert_eq!(
            sized(&cols),
            [
                ("NAME", 10),
                ("ID", 19),
                ("PRIVATE IP", 12),
                ("PLATFORM", 30),
                ("TYPE", 9),
                ("AZ", 10),
                ("AGENT", 11)
            ]
        );
        assert!(total(&cols) <= 140);
    }

    #[test]
    fn short_names_leave_room_for_the_platform() {
        // 120 cells: 5 + 10+19+12+30+9+10+11 + 7×2 = 120 fits; nothing is cut.
        let cols = layout(120, &TYPICAL);
        assert_eq!(
            cols.iter().find(|c| c.title == "PLATFORM").unwrap().width,
            30
        );
        assert_eq!(cols[0].width, 10, "NAME is as wide as the longest name");
    }

    #[test]
    fn cut_columns_share_what_is_left() {
        // Long names and long platforms at 120 cells: the fixed columns take 19+12+9+10+11,
        // the two cut ones share the rest (120 - 5 - 7×2 - 61 = 40), the name two parts.
        let wide = Widths([56, 19, 12, 30, 9, 10, 11, 0]);
        let cols = layout(120, &wide);
        assert_eq!(
            sized(&cols),
            [
                ("NAME", 26),
                ("ID", 19),
                ("PRIVATE IP", 12),
                ("PLATFORM", 14),
                ("TYPE", 9),
                ("AZ", 10),
                ("AGENT", 11)
            ]
        );
        assert_eq!(total(&cols), 120, "no cell wasted while something is cut");
        // A name shorter than its share shows in full; the platform takes the rest.
        let cols = layout(120, &Widths([20, 19, 12, 51, 9, 10, 11, 0]));
        assert_eq!((cols[0].width, cols[3].width), (20, 20));
        assert_eq!(total(&cols), 120);
        let cols = layout(120, &Widths([56, 19, 12, 17, 9, 10, 11, 0]));
        assert_eq!((cols[0].width, cols[3].width), (27, 13));
    }

    #[test]
    fn narrow_terminals_drop_columns_from_the_right() {
        assert_eq!(titles(&layout(42, &TYPICAL)), ["NAME", "ID"]);
        assert_eq!(titles(&layout(10, &TYPICAL)), ["NAME"]);
        assert_eq!(layout(10, &TYPICAL)[0].width, 3);
        for w in [20, 42, 60, 80, 100, 119, 120, 200] {
            for c in [
                TYPICAL,
                Widths([56, 20, 15, 40, 11, 15, 12, 0]),
                Widths::default(),
            ] {
                let cols = layout(w, &c);
                assert!(total(&cols) <= w, "{w} {c:?}");
                assert_eq!(cols[0].title, "NAME");
            }
        }
    }

    #[test]
    fn widths_come_from_every_row_and_the_titles() {
        let i = Instance {
            id: "i-0123456789abcdef0".into(),
            name: Some("web-1".into()),
            platform_name: Some("Debian GNU/Linux".into()),
            platform_version: Some("12".into()),
            ..Default::default()
        };
        let unnamed = Instance {
            id: "mi-0123456789abcdef0".into(),
            ..Default::default()
        };
        let w = Widths::measure(&[i, unnamed]);
        assert_eq!(w.0, [5, 20, 10, 19, 4, 2, 5, 0]);
        assert_eq!(Widths::measure(&[]), Widths::default());
    }

    #[test]
    fn account_shows_only_for_several_accounts() {
        let row = |id: &str, profile: &str, account: &str| Instance {
            id: id.into(),
            profile: Some(profile.into()),
            account_id: Some(account.into()),
            ..Default::default()
        };
        let one = [
            row("i-1", "dev", "111111111111"),
            row("i-2", "dev", "111111111111"),
        ];
        let w = Widths::measure(&one);
        assert_eq!(w.0[ACCOUNT], 0);
        assert!(!titles(&layout(300, &w)).contains(&"ACCOUNT"));
        // A hybrid node's account is unknown, not another account.
        let hybrid = Instance {
            id: "mi-1".into(),
            profile: Some("dev".into()),
            ..Default::default()
        };
        let w = Widths::measure(&[one[0].clone(), hybrid]);
        assert_eq!(w.0[ACCOUNT], 0);
        let two = [
            row("i-1", "dev", "111111111111"),
            row("i-2", "prod", "222222222222"),
        ];
        let w = Widths::measure(&two);
        assert_eq!(w.0[ACCOUNT], "prod (222222222222)".len());
        assert_eq!(titles(&layout(300, &w)).last(), Some(&"ACCOUNT"));
        assert_eq!(
            cell_text(&two[1], Some(Field::Account)),
            "prod (222222222222)"
        );
    }
}
