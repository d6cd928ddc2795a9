//! Drawing the picker from its state: query line, table, detail pane, messages,
//! status line and help overlay. Pure function of `App` (plus the colour choice).

use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::app::{dest_label, App, Push, Source};
use super::columns::{cell_text, layout, Column, GUTTER, SEP};
use super::keys::HELP;
use super::push::{Dialog, Field as PushField, Transfers};
use crate::filter::Field;
use crate::fleet::{Instance, Ping};
use crate::text::{fit, human_bytes, human_duration, sanitize, truncate, width};
use crate::time::age;

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// Styles, or none at all when colour is off (NO_COLOR): then only bold/reverse mark things.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }

    fn ping(self, p: Ping) -> Style {
        self.fg(match p {
            Ping::Online => Color::Green,
            Ping::ConnectionLost => Color::Yellow,
            Ping::Inactive => Color::Red,
            Ping::NotManaged | Ping::Unknown => Color::DarkGray,
        })
    }

    fn matched(self) -> Style {
        self.fg(Color::Yellow)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }

    fn dim(self) -> Style {
        self.fg(Color::DarkGray)
    }

    fn mark(self) -> Style {
        self.fg(Color::Magenta).add_modifier(Modifier::BOLD)
    }
}

const MARK: &str = "*";

/// The cell text as spans, with matched characters highlighted, cut to `cells`.
fn cell<'a>(text: &str, cells: usize, matched: &[usize], base: Style, hl: Style) -> Vec<Span<'a>> {
    let shown = fit(text, cells);
    if matched.is_empty() {
        return vec![Span::styled(shown, base)];
    }
    let visible = truncate(text, cells).chars().count();
    let mut spans = Vec::new();
    let mut run = String::new();
    let mut run_hl = false;
    for (n, c) in shown.chars().enumerate() {
        let is_hl = n < visible && matched.binary_search(&n).is_ok();
        if is_hl != run_hl && !run.is_empty() {
            spans.push(Span::styled(
                std::mem::take(&mut run),
                if run_hl { base.patch(hl) } else { base },
            ));
        }
        run_hl = is_hl;
        run.push(c);
    }
    if !run.is_empty() {
        spans.push(Span::styled(
            run,
            if run_hl { base.patch(hl) } else { base },
        ));
    }
    spans
}

/// Human age of `secs`: "just now", "42 s", "4 min", "3 h", "2 d".
/// The areas of one frame; the event loop also uses it to learn the list height.
pub struct Areas {
    pub query: Rect,
    pub header: Rect,
    pub list: Rect,
    pub details: Option<Rect>,
    pub messages: Rect,
    pub status: Rect,
}

pub fn areas(app: &App, area: Rect) -> Areas {
    let messages =
        (app.errors.len() + app.warnings.len() + app.ping_warnings.len()).min(3) as u16 * 2;
    let [query, body, msgs, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(2),
        Constraint::Length(messages),
        Constraint::Length(1),
    ])
    .areas(area);
    let (table, details) = if app.details {
        if area.width >= 110 {
            let [t, d] =
                Layout::horizontal([Constraint::Min(60), Constraint::Length(44)]).areas(body);
            (t, Some(d))
        } else {
            let [t, d] = Layout::default()
                .direction(Direction::Vertical)
                .constraints([Constraint::Min(3), Constraint::Length(12)])
                .areas(body);
            (t, Some(d))
        }
    } else {
        (body, None)
    };
    let [header, list] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(table);
    Areas {
        query,
        header,
        list,
        details,
        messages: msgs,
        status,
    }
}

pub fn render(frame: &mut Frame, app: &App, theme: Theme) {
    let a = areas(app, frame.area());
    render_query(frame, app, theme, a.query);
    let cols = layout(a.header.width as usize, &app.widths);
    render_header(frame, &cols, theme, a.header);
    render_rows(frame, app, theme, &cols, a.list);
    if let Some(d) = a.details {
        render_details(frame, app, theme, d);
    }
    render_messages(frame, app, theme, a.messages);
    render_status(frame, app, theme, a.status);
    if app.help {
        render_help(frame, theme);
    }
    if let Some((name, checks)) = &app.diagnosis {
        render_diagnosis(frame, name, checks, theme);
    }
    match &app.push {
        Some(Push::Dialog(d)) => render_push_dialog(frame, d, theme),
        Some(Push::Running(t)) => render_transfers(frame, t, theme),
        None => {}
    }
}

/// `ec2ssh doctor`'s checklist for one instance, coloured by mark.
fn render_diagnosis(frame: &mut Frame, name: &str, checks: &[crate::doctor::Check], theme: Theme) {
    // What needs attention first: the checks that failed or could not run, with their
    // fixes; the ones that passed are counted (all of them show when none failed).
    use crate::doctor::Status;
    let attention: Vec<crate::doctor::Check> = checks
        .iter()
        .filter(|c| c.status != Status::Ok)
        .cloned()
        .collect();
    let passed = checks.len() - attention.len();
    let mut lines: Vec<String> = if attention.is_empty() {
        crate::doctor::render(checks, false)
    } else {
        // Failures first, then what could not be checked; each part without render's
        // own summary (it would count only what is shown).
        let part = |status: Status| -> Vec<String> {
            let these: Vec<_> = attention
                .iter()
                .filter(|c| c.status == status)
                .cloned()
                .collect();
            if these.is_empty() {
                return Vec::new();
            }
            let mut l = crate::doctor::render(&these, false);
            l.truncate(l.len().saturating_sub(2));
            l.push(String::new());
            l
        };
        let failed = attention
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count();
        let summary = format!(
            "{failed} failed, {} not checked, {passed} ok (`ec2ssh doctor` lists every check)",
            attention.len() - failed
        );
        [summary, String::new()]
            .into_iter()
            .chain(part(Status::Fail))
            .chain(part(Status::Unknown))
            .collect()
    };
    let area = frame.area();
    let w = area.width.saturating_sub(4).max(40).min(area.width);
    let inner = w.saturating_sub(2).max(1) as usize;
    // Long lines wrap; leave the status line visible.
    let rows = |l: &String| wrapped_rows(l, inner);
    let room = area.height.saturating_sub(2);
    while lines.iter().map(rows).sum::<u16>() + 2 > room && lines.len() > 1 {
        lines.truncate(lines.len() - 2);
        lines.push("… (`ec2ssh doctor ID` shows all)".into());
    }
    let h = lines.iter().map(rows).sum::<u16>() + 2;
    let rect = centered(frame, w, h.min(room));
    let styled: Vec<Line> = lines
        .iter()
        .map(|l| {
            let t = l.trim_start();
            let style = if t.starts_with('✗') {
                theme.fg(Color::Red).add_modifier(Modifier::BOLD)
            } else if t.starts_with('✓') {
                theme.fg(Color::Green)
            } else if t.starts_with('?') {
                theme.fg(Color::Yellow)
            } else if t.starts_with("fix:") || t.starts_with("check:") {
                theme.dim()
            } else {
                Style::default().add_modifier(Modifier::BOLD)
            };
            Line::from(Span::styled(l.clone(), style))
        })
        .collect();
    let title = format!(" ec2ssh doctor {} · any key closes ", sanitize(name));
    let block = Block::default().borders(Borders::ALL).title(title);
    frame.render_widget(
        Paragraph::new(styled)
            .block(block)
            .wrap(Wrap { trim: false }),
        rect,
    );
}

/// How many rows `text` takes when word-wrapped to `cols` cells (greedy, like
/// ratatui's word wrapper).
fn wrapped_rows(text: &str, cols: usize) -> u16 {
    let mut rows = 1u16;
    let mut used = 0usize;
    for word in text.split(' ') {
        let w = width(word);
        let need = if used == 0 { w } else { used + 1 + w };
        if need <= cols {
            used = need;
        } else {
            rows += 1;
            // A word longer than a row is broken across rows.
            rows += (w.saturating_sub(1) / cols.max(1)) as u16;
            used = w % cols.max(1);
        }
    }
    rows
}

/// A box of at most `w`×`h` cells in the middle of the screen, cleared.
fn centered(frame: &mut Frame, w: u16, h: u16) -> Rect {
    let area = frame.area();
    let (w, h) = (w.min(area.width), h.min(area.height));
    let rect = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    frame.render_widget(Clear, rect);
    rect
}

fn host_list(names: &[String], room: usize) -> String {
    let all = names.join(", ");
    if width(&all) <= room {
        return all;
    }
    let mut out = String::new();
    for (n, name) in names.iter().enumerate() {
        let more = format!(" (+{} more)", names.len() - n);
        if width(&out) + width(name) + 2 + width(&more) > room {
            return format!("{out}{more}");
        }
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(name);
    }
    out
}

fn render_push_dialog(frame: &mut Frame, d: &Dialog, theme: Theme) {
    let rect = centered(frame, 84, 11);
    let inner = rect.width.saturating_sub(2) as usize;
    let names: Vec<String> = d
        .hosts
        .iter()
        .map(|h| match h.display_name() {
            "" => h.id.clone(),
            n => sanitize(n).into_owned(),
        })
        .collect();
    let title = format!(
        " Push to {} host{} ",
        d.hosts.len(),
        if d.hosts.len() == 1 { "" } else { "s" }
    );
    let label = |f: PushField, text: &str| {
        let style = if d.focus == f {
            theme.fg(Color::Cyan).add_modifier(Modifier::BOLD)
        } else {
            theme.dim()
        };
        Span::styled(fit(text, 14), style)
    };
    let field = |f: PushField, value: &str, placeholder: &str| -> Vec<Span<'static>> {
        let room = inner.saturating_sub(15);
        let mut spans = Vec::new();
        if value.is_empty() {
            spans.push(Span::styled(
                truncate(placeholder, room).to_string(),
                theme.dim(),
            ));
        } else {
            // The end of a long value, where the typing happens.
            let shown: String = {
                let v = sanitize(value);
                let w = width(&v);
                if w > room {
                    let skip = w - room + 1;
                    format!("…{}", v.chars().skip(skip).collect::<String>())
                } else {
                    v.into_owned()
                }
            };
            spans.push(Span::raw(shown));
        }
        if d.focus == f {
            spans.push(Span::styled("▏", theme.fg(Color::Cyan)));
        }
        spans
    };
    let mut lines = vec![
        Line::from(Span::styled(
            format!("to: {}", host_list(&names, inner.saturating_sub(4))),
            theme.dim(),
        )),
        Line::default(),
    ];
    let mut paths = vec![label(PushField::Paths, "local path(s)")];
    paths.extend(field(
        PushField::Paths,
        &d.paths,
        "files or directories, Tab completes",
    ));
    lines.push(Line::from(paths));
    let mut dest = vec![label(PushField::Dest, "remote dest")];
    dest.extend(field(PushField::Dest, &d.dest, "~ (the login's home)"));
    lines.push(Line::from(dest));
    let mut mkdir = vec![label(PushField::Mkdir, "create dir")];
    let focused = d.focus == PushField::Mkdir;
    mkdir.push(Span::styled(
        if d.mkdir { "[x]" } else { "[ ]" },
        if focused {
            theme.fg(Color::Cyan).add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        },
    ));
    mkdir.push(Span::styled(
        truncate(
            " create the destination directory if it is missing (Space)",
            inner.saturating_sub(18),
        )
        .into_owned(),
        theme.dim(),
    ));
    lines.push(Line::from(mkdir));
    lines.push(Line::default());
    if let Some(note) = &d.note {
        lines.push(Line::from(Span::styled(
            truncate(&sanitize(note), inner).to_string(),
            theme.fg(Color::Yellow),
        )));
    } else {
        lines.push(Line::default());
    }
    lines.push(Line::from(Span::styled(
        truncate(
            "Tab complete · Enter next / start · ↑↓ field · Ctrl-u clear · Esc cancel",
            inner,
        )
        .to_string(),
        theme.dim(),
    )));
    let block = Block::default().borders(Borders::ALL).title(title);
    frame.render_widget(Paragraph::new(lines).block(block), rect);
}

fn render_transfers(frame: &mut Frame, t: &Transfers, theme: Theme) {
    let area = frame.area();
    let fixes = t
        .rows
        .iter()
        .filter(|r| r.result.as_ref().is_some_and(|x| x.fix.is_some()))
        .count();
    let h = ((t.rows.len() + fixes) as u16 + 4).min(area.height);
    let rect = centered(frame, area.width.saturating_sub(4).max(40), h);
    let inner = rect.width.saturating_sub(2) as usize;
    let now = std::time::Instant::now();
    let name_w = 20.min(inner / 4);
    let bar_w = 20usize;
    let mut lines = Vec::new();
    for r in &t.rows {
        let mut spans = vec![Span::raw(fit(&r.label, name_w)), Span::raw("  ")];
        match &r.result {
            Some(res) if res.ok => spans.push(Span::styled(
                format!(
                    "ok      {} in {}",
                    human_bytes(res.bytes),
                    human_duration(std::time::Duration::from_secs_f64(res.seconds))
                ),
                theme.fg(Color::Green),
            )),
            Some(res) => {
                let room = inner.saturating_sub(name_w + 2);
                let why = format!("FAILED  {}", res.error.as_deref().unwrap_or("failed"));
                spans.push(Span::styled(
                    truncate(&sanitize(&why), room).to_string(),
                    theme.fg(Color::Red).add_modifier(Modifier::BOLD),
                ));
                // A missing directory: the picker's own offer, not the command line's flag.
                let fix = match &res.missing_dir {
                    Some(dir) => Some(format!("press m to create {dir} and push again")),
                    None => res.fix.clone(),
                };
                if let Some(fix) = &fix {
                    lines.push(Line::from(spans));
                    spans = vec![
                        Span::raw(" ".repeat(name_w + 2)),
                        Span::styled(
                            truncate(&sanitize(&format!("   fix: {fix}")), room).to_string(),
                            theme.dim(),
                        ),
                    ];
                }
            }
            None if r.started.is_none() => spans.push(Span::styled("waiting", theme.dim())),
            None => {
                let filled = if t.total == 0 {
                    0
                } else {
                    (r.bytes as u128 * bar_w as u128 / t.total as u128) as usize
                };
                let bar = format!(
                    "[{}{}]",
                    "=".repeat(filled),
                    " ".repeat(bar_w - filled.min(bar_w))
                );
                let rate = r
                    .rate(now)
                    .map(|b| format!("{}/s", human_bytes(b as u64)))
                    .unwrap_or_default();
                let eta = r
                    .eta(t.total, now)
                    .map(|d| format!("ETA {}", human_duration(d)))
                    .unwrap_or_default();
                spans.push(Span::styled(bar, theme.fg(Color::Cyan)));
                spans.push(Span::raw(format!(
                    " {:>9} / {:<9} {:>11}  {eta}",
                    human_bytes(r.bytes),
                    human_bytes(t.total),
                    rate
                )));
            }
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::default());
    let offer;
    let keys = if let (true, Some((ids, dir))) = (t.finished(), t.missing_dir()) {
        offer = format!(
            "m create {dir} and push again to {} · Enter / Esc close",
            match ids.len() {
                1 => "that host".to_string(),
                n => format!("those {n}"),
            }
        );
        offer.as_str()
    } else if t.finished() {
        "Enter / Esc close"
    } else if t.cancelling {
        "ending the copies…"
    } else {
        "Esc cancel"
    };
    lines.push(Line::from(vec![
        Span::styled(
            t.summary(),
            theme.fg(Color::Cyan).add_modifier(Modifier::BOLD),
        ),
        Span::styled(sanitize(&format!(" · {keys}")).into_owned(), theme.dim()),
    ]));
    let title = format!(" Pushing to {} ", dest_label(&t.job.dest));
    let block = Block::default().borders(Borders::ALL).title(title);
    frame.render_widget(Paragraph::new(lines).block(block), rect);
}

fn render_query(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let prompt = Span::styled("> ", theme.fg(Color::Cyan).add_modifier(Modifier::BOLD));
    let q = sanitize(&app.query).into_owned();
    let line = Line::from(vec![prompt, Span::raw(q.clone())]);
    frame.render_widget(Paragraph::new(line), area);
    let x = area.x + 2 + width(&q).min(area.width.saturating_sub(3) as usize) as u16;
    frame.set_cursor_position((x, area.y));
}

fn render_header(frame: &mut Frame, cols: &[Column], theme: Theme, area: Rect) {
    let mut spans = vec![Span::raw(" ".repeat(GUTTER))];
    for c in cols {
        spans.push(Span::styled(
            fit(c.title, c.width),
            theme.dim().add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::raw(" ".repeat(SEP)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn render_rows(frame: &mut Frame, app: &App, theme: Theme, cols: &[Column], area: Rect) {
    if app.hits.is_empty() {
        let msg = if app.instances.is_empty() {
            if app.loading {
                "loading the fleet…"
            } else if app.errors.is_empty() {
                "no instances in these regions"
            } else {
                "could not list the fleet (see below)"
            }
        } else {
            "no instance matches the filter"
        };
        frame.render_widget(Paragraph::new(Span::styled(msg, theme.dim())), area);
        return;
    }
    let rows = area.height as usize;
    let end = (app.offset + rows).min(app.hits.len());
    let mut lines = Vec::with_capacity(rows);
    for (n, hit) in app.hits[app.offset..end].iter().enumerate() {
        let i = &app.instances[hit.index as usize];
        let selected = app.offset + n == app.selected;
        let base = if selected {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default()
        };
        let positions = app.match_positions(hit.index);
        // Only a query has positions (and needs the index, which a preview has not).
        let hay = (!positions.is_empty()).then(|| app.haystack(hit.index));
        let mark = if app.is_marked(i) { MARK } else { " " };
        let mut spans = vec![
            Span::styled(mark, theme.mark().patch(base)),
            Span::styled(" ", base),
            Span::styled(i.ping.glyph().to_string(), theme.ping(i.ping).patch(base)),
            Span::styled(path_glyph(i, app.via).to_string(), theme.dim().patch(base)),
            Span::styled(" ", base),
        ];
        for c in cols {
            let text = cell_text(i, c.field);
            let matched = match (hay, c.field) {
                (Some(hay), Some(f)) => hay.positions_in(f, &positions),
                _ => Vec::new(),
            };
            let style = if c.field == Some(Field::Name) && i.name.is_none() {
                base.patch(theme.dim())
            } else {
                base
            };
            spans.extend(cell(&text, c.width, &matched, style, theme.matched()));
            spans.push(Span::styled(" ".repeat(SEP), base));
        }
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines), area);
}

/// The path column: blank for Session Manager (the ping glyph says how it is), `E`
/// for an EC2 Instance Connect Endpoint, `-` for no path (the detail pane says why).
fn path_glyph(i: &Instance, via: crate::fleet::Via) -> char {
    match crate::fleet::reach::reach(i, via) {
        crate::fleet::Reach::Ssm => ' ',
        r => r.glyph(),
    }
}

fn detail_lines(i: &Instance, now: i64) -> Vec<(String, String)> {
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "–".into());
    let when = |t: Option<i64>| match t {
        Some(t) => format!(
            "{} ({})",
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64)
            ),
            age(now - t)
        ),
        None => "–".into(),
    };
    let mut v = vec![
        ("Name".into(), i.name.clone().unwrap_or_else(|| "–".into())),
        ("ID".into(), i.id.clone()),
        ("Region".into(), i.region.clone()),
        (
            "State".into(),
            i.state.clone().unwrap_or_else(|| "– (hybrid node)".into()),
        ),
        ("SSM".into(), i.ping.label().to_string()),
        ("Last ping".into(), when(i.last_ping)),
        ("Agent".into(), opt(&i.agent_version)),
        ("Platform".into(), i.platform_label()),
        ("Private IP".into(), opt(&i.private_ip)),
        ("Public IP".into(), opt(&i.public_ip)),
        ("Type".into(), opt(&i.instance_type)),
        ("AZ".into(), opt(&i.availability_zone)),
        ("Image".into(), opt(&i.image_id)),
        ("Launched".into(), when(i.launch_time)),
        ("Profile".into(), opt(&i.iam_instance_profile)),
        (
            "VPC".into(),
            format!("{} / {}", opt(&i.vpc_id), opt(&i.subnet_id)),
        ),
    ];
    // Whose it is, when a profile was named (several accounts may be listed).
    if let Some(p) = &i.profile {
        v.insert(3, ("Account".into(), i.account_label()));
        v.insert(4, ("AWS profile".into(), p.clone()));
    }
    for (k, val) in &i.tags {
        v.push((format!("tag {k}"), val.clone()));
    }
    v
}

fn render_details(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.dim())
        .title(" details ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(i) = app.selected_instance() else {
        return;
    };
    let key_w = 11usize;
    let val_w = (inner.width as usize).saturating_sub(key_w + 1);
    let mut rows = detail_lines(i, app.now);
    let path = crate::fleet::reach::reach(i, app.via);
    rows.insert(1, ("Path".into(), crate::fleet::reach::label(&path)));
    rows.insert(2, ("  why".into(), crate::fleet::reach::reason(i, app.via)));
    if let Some(rules) = &app.login {
        let login = rules.resolve(i);
        rows.insert(
            1,
            (
                "login".into(),
                format!("{} ({})", login.user, login.source.label()),
            ),
        );
    }
    let lines: Vec<Line> = rows
        .into_iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(fit(&sanitize(&k), key_w), theme.dim()),
                Span::raw(" "),
                Span::raw(truncate(&sanitize(&v), val_w).into_owned()),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

fn render_messages(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    if area.height == 0 {
        return;
    }
    let mut lines = Vec::new();
    let red = theme.fg(Color::Red).add_modifier(Modifier::BOLD);
    let yellow = theme.fg(Color::Yellow);
    for (e, style, label) in app.errors.iter().map(|e| (e, red, "error: ")).chain(
        app.warnings
            .iter()
            .chain(&app.ping_warnings)
            .map(|e| (e, yellow, "warning: ")),
    ) {
        lines.push(Line::from(vec![
            Span::styled(label, style),
            Span::raw(sanitize(&e.summary()).into_owned()),
        ]));
        lines.push(Line::from(vec![
            Span::styled("  fix: ", theme.dim()),
            Span::raw(sanitize(&e.fix()).into_owned()),
        ]));
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

fn render_status(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let (total, shown) = app.counts();
    let mut parts = vec![
        format!("{shown}/{total} shown"),
        format!("{} online", app.online_count),
    ];
    if !app.marked.is_empty() {
        parts.push(format!("{} marked", app.marked.len()));
    }
    if app.online_only {
        parts.push("online only".into());
    }
    match app.source {
        Source::Cached { saved_at } => parts.push(format!("cached {}", age(app.now - saved_at))),
        Source::Fresh { fetched_at } => {
            parts.push(format!("updated {}", age(app.now - fetched_at)))
        }
        Source::Nothing => {}
    }
    let spin = SPINNER[app.spinner % SPINNER.len()];
    if app.loading {
        parts.push(format!("refreshing {spin}"));
    }
    if app.throttled {
        parts.push("AWS is throttling, retrying".into());
    }
    if let Some(notice) = &app.notice {
        parts.insert(0, sanitize(notice).into_owned());
    }
    let left = parts.join(" · ");
    let right = "? help";
    let pad = (area.width as usize).saturating_sub(width(&left) + width(right));
    let line = Line::from(vec![
        Span::styled(left, theme.dim()),
        Span::raw(" ".repeat(pad)),
        Span::styled(right, theme.dim()),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

fn render_help(frame: &mut Frame, theme: Theme) {
    let area = frame.area();
    let w = 80.min(area.width);
    let h = (HELP.len() as u16 + 4).min(area.height);
    let rect = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" ec2ssh keys ");
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    fit(k, 34),
                    theme.fg(Color::Cyan).add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), rect);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::{AwsError, AwsErrorKind};
    use crate::fleet::{FetchError, Inventory};
    use crate::tui::app::Action;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    const NOW: i64 = 1_790_000_000;

    fn inst(id: &str, name: Option<&str>, ping: Ping, platform: &str) -> Instance {
        Instance {
            id: id.into(),
            region: "us-east-1".into(),
            name: name.map(Into::into),
            ping,
            state: Some("running".into()),
            platform_name: Some(platform.into()),
            private_ip: Some("10.0.1.23".into()),
            instance_type: Some("t3.micro".into()),
            availability_zone: Some("us-east-1a".into()),
            agent_version: Some("3.3.987.0".into()),
            last_ping: Some(NOW - 30),
            launch_time: Some(NOW - 3 * 86400),
            image_id: Some("ami-0abcdef1234567890".into()),
            ..Default::default()
        }
    }

    fn fleet() -> Vec<Instance> {
        let mut hostile = inst(
            "i-0000000000000000e",
            Some("evil\u{1b}[2J\u{1b}]0;pwned\u{7}\nname"),
            Ping::Online,
            "Ubuntu 22.04",
        );
        hostile
            .tags
            .insert("Owner".into(), "x\u{1b}[31mred\r\nnext".into());
        vec![
            inst(
                "i-0aaaaaaaaaaaaaaa1",
                Some("web-prod-1"),
                Ping::Online,
                "Amazon Linux 2023",
            ),
            inst(
                "i-0aaaaaaaaaaaaaaa2",
                Some("ウェブサーバー本番環境-二号機"),
                Ping::Online,
                "Ubuntu 22.04",
            ),
            hostile,
            inst(
                "i-0aaaaaaaaaaaaaaa3",
                Some("🚀 launchpad 🚀"),
                Ping::ConnectionLost,
                "Debian 12",
            ),
            inst("i-0aaaaaaaaaaaaaaa4", None, Ping::Inactive, "Windows"),
            inst(
                "mi-0123456789abcdef0",
                Some("rack-7-bastion-with-a-rather-long-name-that-will-not-fit"),
                Ping::NotManaged,
                "RHEL 9",
            ),
        ]
    }

    fn draw(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| render(f, app, Theme { color: true })).unwrap();
        t
    }

    fn app() -> App {
        let mut a = App::new(NOW);
        a.set_instances(
            fleet(),
            Source::Cached {
                saved_at: NOW - 125,
            },
        );
        a
    }

    #[test]
    fn full_screen_with_hostile_and_wide_names() {
        let mut a = app();
        a.loading = true;
        insta::assert_snapshot!(draw(&a, 120, 12).backend());
    }

    /// Names of ten cells leave the room to the platform, shown in full.
    #[test]
    fn columns_fit_short_names_and_long_platforms() {
        let mut a = App::new(NOW);
        a.set_instances(
            vec![
                inst(
                    "i-0aaaaaaaaaaaaaaa1",
                    Some("web-prod-1"),
                    Ping::Online,
                    "Debian GNU/Linux 12 (bookworm)",
                ),
                inst(
                    "i-0aaaaaaaaaaaaaaa2",
                    Some("db-prod-01"),
                    Ping::Online,
                    "Microsoft Windows Server 2022 Base",
                ),
            ],
            Source::Fresh { fetched_at: NOW },
        );
        let t = draw(&a, 120, 5);
        insta::assert_snapshot!(t.backend());
        let row = |y: u16| {
            (0..120)
                .map(|x| t.backend().buffer()[(x, y)].symbol().to_string())
                .collect::<String>()
        };
        assert!(
            row(3).contains("Microsoft Windows Server 2022 Base"),
            "{}",
            row(3)
        );
        assert!(row(2).starts_with("  ●  web-prod-1  i-0"), "{}", row(2));
    }

    #[test]
    fn the_status_line_says_when_aws_throttles() {
        let mut a = app();
        a.loading = true;
        let line = |a: &App| format!("{:?}", draw(a, 120, 12).backend());
        assert!(!line(&a).contains("throttling"));
        a.throttled = true;
        assert!(line(&a).contains("refreshing ⠋ · AWS is throttling, retrying"));
    }

    /// A first frame from the head of a cache draws like the whole fleet's (no index
    /// needed without a query), with the whole fleet's counts.
    #[test]
    fn a_preview_draws_its_rows_and_the_whole_fleets_counts() {
        let dir = tempfile::tempdir().unwrap();
        let cache = crate::fleet::Cache::new(dir.path().into(), None, &[]);
        cache.store("k", NOW - 125, &fleet()).unwrap();
        let mut a = App::new(NOW);
        a.preview(cache.read_head(2, false).unwrap());
        let screen = format!("{:?}", draw(&a, 120, 12).backend());
        assert!(screen.contains(&format!("{n}/{n} shown", n = fleet().len())));
        assert!(screen.contains("3 online · cached 2 min ago"));
        assert!(screen.contains("web-prod-1") && screen.contains("i-0aaaaaaaaaaaaaaa2"));
        assert!(!screen.contains("mi-0123456789abcdef0"), "only the head");
    }

    #[test]
    fn narrow_screen() {
        insta::assert_snapshot!(draw(&app(), 50, 10).backend());
    }

    #[test]
    fn filtered_with_details_and_highlight() {
        let mut a = app();
        for c in "evil".chars() {
            a.update(Action::Char(c));
        }
        a.update(Action::ToggleDetails);
        let t = draw(&a, 120, 24);
        insta::assert_snapshot!(t.backend());
        // The matched characters "evil" (row 2, name column from x=5) are highlighted.
        let buf = t.backend().buffer();
        for x in 5..9 {
            assert!(buf[(x, 2)].modifier.contains(Modifier::UNDERLINED), "x={x}");
        }
        assert!(!buf[(9, 2)].modifier.contains(Modifier::UNDERLINED));
    }

    #[test]
    fn no_control_characters_reach_the_buffer() {
        let mut a = app();
        a.update(Action::ToggleDetails);
        a.update(Action::Down);
        a.update(Action::Down);
        let t = draw(&a, 140, 40);
        for cell in t.backend().buffer().content() {
            assert!(
                !cell.symbol().chars().any(|c| c.is_control()),
                "{:?}",
                cell.symbol()
            );
        }
    }

    #[test]
    fn errors_are_shown_with_their_fix() {
        let mut a = App::new(NOW);
        a.loading = true;
        let err = AwsError {
            action: "ec2:DescribeInstances".into(),
            region: "eu-west-1".into(),
            kind: AwsErrorKind::AccessDenied,
            code: Some("UnauthorizedOperation".into()),
            message: "not authorized".into(),
            profile: None,
        };
        a.update(Action::Loaded(Err(FetchError { errors: vec![err] }), NOW));
        insta::assert_snapshot!(draw(&a, 120, 8).backend());
    }

    #[test]
    fn partial_failure_is_a_warning() {
        let mut a = App::new(NOW);
        let warn = AwsError {
            action: "ssm:DescribeInstanceInformation".into(),
            region: "us-east-1".into(),
            kind: AwsErrorKind::Unreachable,
            code: None,
            message: "Connection refused (os error 111)".into(),
            profile: None,
        };
        let inv = Inventory {
            instances: fleet(),
            warnings: vec![warn],
        };
        a.update(Action::Loaded(Ok(inv), NOW));
        insta::assert_snapshot!(draw(&a, 120, 12).backend());
    }

    #[test]
    fn help_overlay() {
        let mut a = app();
        a.update(Action::ToggleHelp);
        insta::assert_snapshot!(draw(&a, 100, 18).backend());
    }

    #[test]
    fn push_dialog_and_results() {
        use crate::transfer::{HostResult, Update};
        let mut a = app();
        a.login = Some(Default::default());
        a.update(Action::ToggleMarkAll);
        a.update(Action::OpenPush);
        let Some(Push::Dialog(d)) = &mut a.push else {
            panic!("no dialog")
        };
        d.paths = "dist/app.tar.gz".into();
        d.focus = PushField::Dest;
        d.dest = "/srv/app".into();
        d.mkdir = true;
        let hosts = d.hosts.clone();
        insta::assert_snapshot!("push_dialog", draw(&a, 100, 18).backend());
        let job = crate::tui::push::Job {
            sources: vec!["dist/app.tar.gz".into()],
            dest: "/srv/app".into(),
            recursive: false,
            mkdir: false,
        };
        a.start_transfers(&hosts, 64 << 20, job);
        let Some(Push::Running(t)) = &a.push else {
            panic!("not running")
        };
        let n = t.rows.len();
        let at = std::time::Instant::now();
        for i in 0..n {
            let ok = i != 1 && i != 2;
            let r = HostResult {
                id: format!("i-{i}"),
                name: None,
                ok,
                user: Some("ec2-user".into()),
                bytes: 64 << 20,
                seconds: 2.5,
                error: (!ok).then(|| {
                    "not connected to Systems Manager (ping status: ConnectionLost)".into()
                }),
                fix: (!ok).then(|| "start it".into()),
                missing_dir: None,
            };
            let r = if i == 2 {
                HostResult {
                    error: Some("the directory /srv/app does not exist on i-2".into()),
                    fix: Some(
                        "add --mkdir to create it (and its parents), or check the path".into(),
                    ),
                    missing_dir: Some("/srv/app".into()),
                    ..r
                }
            } else {
                r
            };
            a.update(Action::Transfer(Update::Done(i, r), at));
        }
        let t = draw(&a, 100, 18);
        insta::assert_snapshot!("push_results", t.backend());
        let screen: String = t
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        assert!(screen.contains("fix: press m to create /srv/app and push again"));
        assert!(
            !screen.contains("--mkdir"),
            "the command line's fix is not the picker's"
        );
    }

    #[test]
    fn marked_rows_and_their_count() {
        let mut a = app();
        a.update(Action::ToggleMark);
        a.update(Action::ToggleMark);
        let t = draw(&a, 120, 12);
        let buf = t.backend().buffer();
        let line = |y: u16| {
            (0..120)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
        };
        assert!(line(2).starts_with("* ●  web-prod-1"), "{}", line(2));
        assert!(line(3).starts_with("* ●  ウ"), "{}", line(3));
        assert!(line(4).starts_with("  ●  evil"), "{}", line(4));
        assert!(line(1).starts_with("     NAME"), "{}", line(1));
        assert!(line(11).contains("2 marked"), "{}", line(11));
        // Without colour the mark is still there, and bold.
        let mut plain = Terminal::new(TestBackend::new(120, 12)).unwrap();
        plain
            .draw(|f| render(f, &a, Theme { color: false }))
            .unwrap();
        let cell = &plain.backend().buffer()[(0, 2)];
        assert_eq!((cell.symbol(), cell.fg), ("*", Color::Reset));
        assert!(cell.modifier.contains(Modifier::BOLD));
    }
}
