//! The picker's state and its pure `update`: keys and background results come in
//! as `Action`s, the state changes, and at most one `Effect` goes out for the
//! event loop to carry out. No terminal or network in here.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use crate::aws::AwsError;
use crate::doctor::evidence::Evidence;
use crate::filter::{Hit, SearchIndex};
use crate::fleet::ping::{self, PingReport, Targets};
use crate::fleet::{FetchError, Head, Instance, Inventory, Ping, Summary};
use crate::transfer::Update;

use super::columns::Widths;
use super::push::{Dialog, DialogKey, DialogOutcome, Job, LocalFs, Transfers};

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Char(char),
    Backspace,
    DeleteWord,
    ClearQuery,
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    Select,
    /// Esc: clears the marks if there are any, else quits.
    Back,
    Quit,
    /// Ctrl-r: a full refresh, or with marks a ping check of the marked rows.
    Refresh,
    /// Tab: marks or unmarks the selected row and moves down.
    ToggleMark,
    /// Shift-Tab: marks or unmarks the selected row and moves up.
    ToggleMarkUp,
    /// Marks every row shown, or unmarks them if all already are.
    ToggleMarkAll,
    ToggleOnline,
    ToggleDetails,
    ToggleHelp,
    /// Time passed (Unix seconds); moves the spinner and the ages.
    Tick(i64),
    /// A background refresh finished at the given Unix time.
    Loaded(Result<Inventory, FetchError>, i64),
    /// The list area now has this many rows.
    Viewport(usize),
    /// Time for the periodic ping check.
    CheckPings,
    /// Ctrl-t / F5: open the push dialog for the marked rows, else the selected one.
    OpenPush,
    /// F2 / Ctrl-g: run `ec2ssh doctor` for the selected row.
    Diagnose,
    /// The diagnosis of this instance (display name, checks) is ready.
    Diagnosed(String, Vec<crate::doctor::Check>),
    /// Ctrl-o: a Session Manager shell on the selected instance instead of ssh.
    OpenShell,
    /// Progress of the picker's push.
    Transfer(Update, Instant),
    /// A ping check finished; `rechecked` is how many marked rows it was asked about
    /// (`None` for the periodic whole-fleet check).
    Pings {
        report: PingReport,
        rechecked: Option<usize>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Quit,
    /// The user picked this instance id.
    Select(String),
    /// Open a Session Manager shell on this instance id.
    Shell(String),
    /// Push `job` to `hosts` (the event loop sizes it and calls
    /// [`App::start_transfers`]).
    StartPush {
        hosts: Vec<Instance>,
        job: Job,
    },
    /// Stop the push under way.
    CancelPush,
    /// Diagnose this instance (id) in the background.
    Diagnose(String),
    /// Start a background refresh.
    Refresh,
    /// Ask SSM for fresh ping status: of everything, or only of these.
    CheckPings(Option<Targets>),
}

/// Where the rows on screen came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Nothing,
    Cached { saved_at: i64 },
    Fresh { fetched_at: i64 },
}

pub struct App {
    pub instances: Vec<Instance>,
    index: SearchIndex,
    /// Rows shown, best first: indices into `instances`.
    pub hits: Vec<Hit>,
    pub query: String,
    pub selected: usize,
    pub offset: usize,
    pub viewport: usize,
    pub online_only: bool,
    pub details: bool,
    pub help: bool,
    pub loading: bool,
    pub spinner: usize,
    pub now: i64,
    pub source: Source,
    /// The last refresh failed entirely.
    pub errors: Vec<AwsError>,
    /// The last refresh worked only in part.
    pub warnings: Vec<AwsError>,
    pub online_count: usize,
    /// One line about the last connection ("web-1: ssh exited 0 after 3m12s").
    pub notice: Option<String>,
    /// How the login user is chosen, to show it before connecting; `None` when Enter
    /// only prints the id.
    pub login: Option<crate::connect::user::UserRules>,
    /// Which path reaches a row.
    pub via: crate::fleet::Via,
    /// Marked instance ids: by id, so marks survive filtering and refreshes.
    pub marked: HashSet<String>,
    /// Ping checks under way.
    pub pings_in_flight: usize,
    /// Failures of the last ping check not already among `warnings`.
    pub ping_warnings: Vec<AwsError>,
    /// The push dialog, or the copies it started.
    pub push: Option<Push>,
    /// The push dialog's fields as last left (local paths, destination), offered
    /// again (per session).
    pub last_paths: String,
    pub last_dest: String,
    /// A finished diagnosis on screen (the instance's name, the checks); any key closes.
    pub diagnosis: Option<(String, Vec<crate::doctor::Check>)>,
    /// The widest cell of each table column over every row (measured per data change).
    pub widths: Widths,
    /// What this run's connections, shells and pushes proved, for the diagnosis.
    pub evidence: Evidence,
    /// AWS is throttling the calls under way and the SDK is retrying them.
    pub throttled: bool,
    /// `instances` are only the head of a cached fleet (a first frame's worth), and
    /// this is the whole fleet's summary.
    pub preview: Option<Summary>,
}

/// The picker's push, from the dialog to the results.
#[derive(Debug, Clone, PartialEq)]
pub enum Push {
    Dialog(Dialog),
    Running(Transfers),
}

impl App {
    pub fn new(now: i64) -> Self {
        App {
            instances: Vec::new(),
            index: SearchIndex::new(&[]),
            hits: Vec::new(),
            query: String::new(),
            selected: 0,
            offset: 0,
            viewport: 10,
            online_only: false,
            details: false,
            help: false,
            loading: false,
            spinner: 0,
            now,
            source: Source::Nothing,
            errors: Vec::new(),
            warnings: Vec::new(),
            online_count: 0,
            notice: None,
            login: None,
            via: crate::fleet::Via::default(),
            marked: HashSet::new(),
            pings_in_flight: 0,
            ping_warnings: Vec::new(),
            push: None,
            last_paths: String::new(),
            last_dest: String::new(),
            diagnosis: None,
            widths: Widths::default(),
            evidence: Evidence::default(),
            throttled: false,
            preview: None,
        }
    }

    /// A key while the push dialog or the transfers view is open; `fs` is the local
    /// disk (for completion and checks).
    pub fn push_key(&mut self, key: DialogKey, fs: &dyn LocalFs) -> Option<Effect> {
        match self.push.as_mut()? {
            Push::Dialog(d) => {
                let outcome = d.key(key, fs);
                if outcome != DialogOutcome::Stay {
                    // Opened again, the dialog shows what it was left with.
                    self.last_paths = d.paths.clone();
                    self.last_dest = d.dest.trim().to_string();
                }
                match outcome {
                    DialogOutcome::Stay => None,
                    DialogOutcome::Cancel => {
                        self.push = None;
                        None
                    }
                    DialogOutcome::Start(job) => Some(Effect::StartPush {
                        hosts: d.hosts.clone(),
                        job,
                    }),
                }
            }
            Push::Running(t) if t.finished() => {
                if key == DialogKey::Char('m') {
                    // The offer: create the missing directory and push again to the
                    // hosts that lacked it.
                    let (ids, _) = t.missing_dir()?;
                    let hosts: Vec<Instance> = self
                        .instances
                        .iter()
                        .filter(|i| ids.contains(&i.id.as_str()))
                        .cloned()
                        .collect();
                    let job = Job {
                        mkdir: true,
                        ..t.job.clone()
                    };
                    return (!hosts.is_empty()).then_some(Effect::StartPush { hosts, job });
                }
                if matches!(key, DialogKey::Esc | DialogKey::Enter) {
                    self.notice = Some(format!(
                        "push to {}: {}",
                        dest_label(&t.job.dest),
                        t.summary()
                    ));
                    self.push = None;
                }
                None
            }
            Push::Running(t) => {
                if key == DialogKey::Esc && !t.cancelling {
                    t.cancelling = true;
                    return Some(Effect::CancelPush);
                }
                None
            }
        }
    }

    /// The copies of `job` to `hosts` have started: show their progress.
    pub fn start_transfers(&mut self, hosts: &[Instance], total: u64, job: Job) {
        if self.push.is_some() {
            self.push = Some(Push::Running(Transfers::new(hosts, total, job)));
        }
    }

    /// The push could not start (e.g. a path it cannot read): say so in the dialog, or
    /// on the status line for a push again.
    pub fn push_refused(&mut self, why: String) {
        match &mut self.push {
            Some(Push::Dialog(d)) => d.note = Some(why),
            _ => self.notice = Some(why),
        }
    }

    /// Replaces the fleet, keeping the query, the marks of instances still there and,
    /// when it is still there, the selection.
    /// Shows the head of a cached fleet, in fleet order, until the whole fleet is
    /// set: counts come from the fleet's summary, column widths from these rows (the
    /// whole fleet's replace them a moment later). No index: a query needs the fleet.
    pub fn preview(&mut self, head: Head) {
        self.online_count = head.summary.online;
        self.widths = Widths::measure_rows(&head.rows, head.summary.several_accounts);
        self.instances = head.rows;
        self.hits = (0..self.instances.len() as u32)
            .map(|index| Hit { index, score: 0 })
            .collect();
        self.source = Source::Cached {
            saved_at: head.saved_at,
        };
        self.preview = Some(head.summary);
        self.selected = 0;
        self.offset = 0;
    }

    /// Rows in the fleet, and rows the query and toggles let through.
    pub fn counts(&self) -> (usize, usize) {
        match self.preview {
            Some(s) => (s.total, if self.online_only { s.online } else { s.total }),
            None => (self.instances.len(), self.hits.len()),
        }
    }

    pub fn set_instances(&mut self, instances: Vec<Instance>, source: Source) {
        self.preview = None;
        let keep = self.selected_instance().map(|i| i.id.clone());
        if !self.marked.is_empty() {
            let ids: HashSet<&str> = instances.iter().map(|i| i.id.as_str()).collect();
            self.marked.retain(|id| ids.contains(id.as_str()));
        }
        self.online_count = instances.iter().filter(|i| i.ping == Ping::Online).count();
        // The old rows and their index go before the new index is built (a lower peak).
        self.hits = Vec::new();
        self.instances = Vec::new();
        self.index = SearchIndex::new(&[]);
        self.index = SearchIndex::new(&instances);
        self.widths = Widths::measure(&instances);
        self.instances = instances;
        self.source = source;
        self.refilter();
        if let Some(id) = keep {
            if let Some(pos) = self
                .hits
                .iter()
                .position(|h| self.instances[h.index as usize].id == id)
            {
                self.selected = pos;
                self.scroll_into_view();
            }
        }
    }

    pub fn selected_instance(&self) -> Option<&Instance> {
        self.hits
            .get(self.selected)
            .map(|h| &self.instances[h.index as usize])
    }

    /// The marked instances, in fleet order (shown or not).
    pub fn marked_instances(&self) -> Vec<&Instance> {
        self.instances
            .iter()
            .filter(|i| self.marked.contains(&i.id))
            .collect()
    }

    pub fn is_marked(&self, i: &Instance) -> bool {
        self.marked.contains(&i.id)
    }

    /// Ids of the rows shown, in order.
    fn shown_ids(&self) -> impl Iterator<Item = &String> {
        self.hits
            .iter()
            .map(|h| &self.instances[h.index as usize].id)
    }

    /// Takes fresh ping states in place: rows keep their order and the selection its
    /// instance (re-sorting under the cursor would be worse than a stale order), and
    /// instances SSM did not mention keep what they had.
    fn apply_pings(&mut self, report: PingReport) {
        // By profile and id: one id may be a machine in two accounts.
        let by_id: HashMap<(Option<&str>, &str), _> = report
            .updates
            .iter()
            .map(|u| ((u.profile.as_deref(), u.id.as_str()), u))
            .collect();
        for i in &mut self.instances {
            if let Some(u) = by_id.get(&(i.profile.as_deref(), i.id.as_str())) {
                u.apply(i);
            }
        }
        self.online_count = self
            .instances
            .iter()
            .filter(|i| i.ping == Ping::Online)
            .count();
        // An agent version may have changed.
        self.widths = Widths::measure(&self.instances);
        let known = |w: &AwsError| {
            self.warnings
                .iter()
                .any(|o| o.action == w.action && o.kind == w.kind && o.code == w.code)
        };
        self.ping_warnings = report.warnings.into_iter().filter(|w| !known(w)).collect();
    }

    /// Char positions of the query's match in row `index`'s haystack.
    pub fn match_positions(&self, index: u32) -> Vec<usize> {
        if self.query.trim().is_empty() {
            return Vec::new();
        }
        self.index.positions(index, &self.query)
    }

    pub fn haystack(&self, index: u32) -> &crate::filter::Haystack {
        self.index.haystack(index)
    }

    fn refilter(&mut self) {
        let hits = self.index.search(&self.query);
        self.hits = if self.online_only {
            hits.iter()
                .copied()
                .filter(|h| self.instances[h.index as usize].ping == Ping::Online)
                .collect()
        } else {
            hits.to_vec()
        };
        self.selected = 0;
        self.offset = 0;
    }

    /// Marks or unmarks the selected row, then moves `step` rows.
    fn toggle_mark(&mut self, step: isize) {
        if let Some(id) = self.selected_instance().map(|i| i.id.clone()) {
            if !self.marked.remove(&id) {
                self.marked.insert(id);
            }
            self.move_by(step);
        }
    }

    fn move_by(&mut self, delta: isize) {
        if self.hits.is_empty() {
            return;
        }
        let last = self.hits.len() - 1;
        self.selected = self.selected.saturating_add_signed(delta).min(last);
        self.scroll_into_view();
    }

    fn scroll_into_view(&mut self) {
        let rows = self.viewport.max(1);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + rows {
            self.offset = self.selected + 1 - rows;
        }
    }

    pub fn update(&mut self, action: Action) -> Option<Effect> {
        let background = matches!(
            action,
            Action::Tick(_)
                | Action::Loaded(..)
                | Action::Viewport(_)
                | Action::CheckPings
                | Action::Pings { .. }
                | Action::Transfer(..)
                | Action::Diagnosed(..)
        );
        if (self.help || self.diagnosis.is_some()) && !background {
            // Any key closes an overlay (help, a diagnosis) and does nothing else.
            self.help = false;
            self.diagnosis = None;
            return None;
        }
        match action {
            Action::Char(_) | Action::Backspace | Action::DeleteWord | Action::ClearQuery => {
                self.edit_query(&action)
            }
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.move_by(-(self.viewport.max(1) as isize)),
            Action::PageDown => self.move_by(self.viewport.max(1) as isize),
            Action::Home => self.move_by(isize::MIN / 2),
            Action::End => self.move_by(isize::MAX / 2),
            Action::Select => {
                return self
                    .selected_instance()
                    .map(|i| Effect::Select(i.id.clone()));
            }
            Action::OpenShell => return self.open_shell(),
            Action::OpenPush => self.open_push(),
            Action::Diagnose => {
                let target = self.selected_instance().map(|i| (i.id.clone(), label(i)));
                if let Some((id, name)) = target {
                    self.notice = Some(format!("diagnosing {name}…"));
                    return Some(Effect::Diagnose(id));
                }
            }
            Action::Diagnosed(name, checks) => self.diagnosed(name, checks),
            Action::Transfer(update, at) => {
                if let Some(Push::Running(t)) = &mut self.push {
                    t.apply(update, at);
                }
            }
            Action::Back if !self.marked.is_empty() => self.marked.clear(),
            Action::Back | Action::Quit => return Some(Effect::Quit),
            Action::Refresh => return self.refresh(),
            Action::ToggleMark => self.toggle_mark(1),
            Action::ToggleMarkUp => self.toggle_mark(-1),
            Action::ToggleMarkAll => self.toggle_mark_all(),
            Action::ToggleOnline => self.toggle_online(),
            Action::ToggleDetails => self.details = !self.details,
            Action::ToggleHelp => self.help = true,
            Action::Tick(now) => {
                self.now = now;
                self.spinner = self.spinner.wrapping_add(1);
            }
            Action::Loaded(result, now) => self.loaded(result, now),
            Action::Viewport(rows) => {
                self.viewport = rows;
                self.scroll_into_view();
            }
            Action::CheckPings => {
                // A full refresh brings pings too; and never two checks at once.
                if self.pings_in_flight == 0 && !self.loading && !self.instances.is_empty() {
                    self.pings_in_flight += 1;
                    return Some(Effect::CheckPings(None));
                }
            }
            Action::Pings { report, rechecked } => self.pings(report, rechecked),
        }
        None
    }

    /// Typing, deleting and clearing the query.
    fn edit_query(&mut self, action: &Action) {
        match action {
            Action::Char(c) => self.query.push(*c),
            Action::Backspace => {
                if self.query.pop().is_none() {
                    return;
                }
            }
            Action::DeleteWord => {
                let trimmed = self.query.trim_end().len();
                let cut = self.query[..trimmed].rfind(' ').map_or(0, |p| p + 1);
                self.query.truncate(cut);
            }
            Action::ClearQuery => self.query.clear(),
            _ => return,
        }
        self.refilter();
    }

    fn open_shell(&mut self) -> Option<Effect> {
        if self.login.is_none() {
            self.notice = Some("a shell needs the picker's connect mode (not --print)".into());
            return None;
        }
        self.selected_instance()
            .map(|i| Effect::Shell(i.id.clone()))
    }

    /// The push dialog, for the marked rows (else the selected one).
    fn open_push(&mut self) {
        if self.login.is_none() {
            self.notice = Some("pushing needs the picker's connect mode (not --print)".into());
            return;
        }
        let mut hosts: Vec<Instance> = self.marked_instances().into_iter().cloned().collect();
        if hosts.is_empty() {
            hosts.extend(self.selected_instance().cloned());
        }
        if !hosts.is_empty() {
            self.push = Some(Push::Dialog(Dialog::new(
                hosts,
                &self.last_paths,
                &self.last_dest,
            )));
        }
    }

    fn diagnosed(&mut self, name: String, checks: Vec<crate::doctor::Check>) {
        let failed = checks
            .iter()
            .filter(|c| c.status == crate::doctor::Status::Fail)
            .count();
        self.notice = Some(match failed {
            0 => format!("{name}: nothing wrong found"),
            n => format!("{name}: {n} problem{} found", if n == 1 { "" } else { "s" }),
        });
        self.diagnosis = Some((name, checks));
    }

    /// Ctrl-r: the marked rows' pings re-checked, else the whole fleet listed again.
    fn refresh(&mut self) -> Option<Effect> {
        if !self.marked.is_empty() {
            let marked = self.marked_instances();
            let n = marked.len();
            let targets = ping::targets(marked);
            self.pings_in_flight += 1;
            self.notice = Some(format!("re-checking {n} marked…"));
            return Some(Effect::CheckPings(Some(targets)));
        }
        if self.loading {
            return None;
        }
        self.loading = true;
        Some(Effect::Refresh)
    }

    /// `*`: every shown row marked, or unmarked when all already are.
    fn toggle_mark_all(&mut self) {
        let shown: Vec<String> = self.shown_ids().cloned().collect();
        if shown.iter().all(|id| self.marked.contains(id)) {
            for id in &shown {
                self.marked.remove(id);
            }
        } else {
            self.marked.extend(shown);
        }
    }

    /// F4 / Alt-o: Online rows only, or all; the selected row stays selected.
    fn toggle_online(&mut self) {
        self.online_only = !self.online_only;
        let keep = self.selected_instance().map(|i| i.id.clone());
        self.refilter();
        if let Some(pos) = keep.and_then(|id| {
            self.hits
                .iter()
                .position(|h| self.instances[h.index as usize].id == id)
        }) {
            self.selected = pos;
            self.scroll_into_view();
        }
    }

    fn loaded(&mut self, result: Result<Inventory, FetchError>, now: i64) {
        self.loading = false;
        self.now = now;
        match result {
            Ok(inv) => {
                self.errors.clear();
                self.ping_warnings.clear();
                self.warnings = inv.warnings;
                self.set_instances(inv.instances, Source::Fresh { fetched_at: now });
            }
            Err(e) => self.errors = e.errors,
        }
    }

    fn pings(&mut self, report: PingReport, rechecked: Option<usize>) {
        self.pings_in_flight = self.pings_in_flight.saturating_sub(1);
        let failed = !report.warnings.is_empty();
        self.apply_pings(report);
        if let Some(n) = rechecked {
            self.notice = Some(if failed {
                format!("could not re-check all {n} marked (see below)")
            } else {
                format!("re-checked {n} marked")
            });
        }
    }
}

/// An instance's name as the status line shows it (sanitized), else its id.
fn label(i: &Instance) -> String {
    match i.display_name() {
        "" => i.id.clone(),
        n => crate::text::sanitize(n).into_owned(),
    }
}

/// `~ (home)` for the empty destination.
pub fn dest_label(dest: &str) -> &str {
    if dest.is_empty() {
        "~ (home)"
    } else {
        dest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, name: &str, ping: Ping) -> Instance {
        Instance {
            id: id.into(),
            name: Some(name.into()),
            ping,
            ..Default::default()
        }
    }

    fn app() -> App {
        let mut a = App::new(1000);
        a.set_instances(
            vec![
                inst("i-1", "web-1", Ping::Online),
                inst("i-2", "web-2", Ping::Online),
                inst("i-3", "db-1", Ping::ConnectionLost),
                inst("i-4", "cache-1", Ping::Online),
            ],
            Source::Cached { saved_at: 900 },
        );
        a.viewport = 2;
        a
    }

    fn typed(a: &mut App, s: &str) {
        for c in s.chars() {
            a.update(Action::Char(c));
        }
    }

    #[test]
    fn a_preview_counts_the_whole_fleet_until_the_fleet_is_set() {
        let fleet = app().instances;
        let dir = tempfile::tempdir().unwrap();
        let cache = crate::fleet::Cache::new(dir.path().into(), None, &[]);
        cache.store("k", 900, &fleet).unwrap();
        let mut a = App::new(1000);
        a.preview(cache.read_head(2, false).unwrap());
        assert_eq!(a.counts(), (4, 4), "the whole fleet's counts");
        assert_eq!((a.hits.len(), a.online_count), (2, 3));
        assert_eq!(a.selected_instance().unwrap().id, "i-1");
        a.online_only = true;
        assert_eq!(a.counts(), (4, 3));
        a.online_only = false;
        a.update(Action::Down);
        a.set_instances(fleet, Source::Cached { saved_at: 900 });
        assert!(a.preview.is_none());
        assert_eq!(a.counts(), (4, 4));
        assert_eq!(
            a.selected_instance().unwrap().id,
            "i-2",
            "the selection stays"
        );
    }

    #[test]
    fn typing_filters_and_enter_selects_the_best_match() {
        let mut a = app();
        typed(&mut a, "db");
        assert_eq!(a.hits.len(), 1);
        assert_eq!(a.update(Action::Select), Some(Effect::Select("i-3".into())));
        a.update(Action::Backspace);
        a.update(Action::Backspace);
        assert_eq!(a.hits.len(), 4);
    }

    #[test]
    fn ctrl_o_opens_a_shell_only_in_connect_mode() {
        let mut a = app();
        typed(&mut a, "db");
        assert_eq!(a.update(Action::OpenShell), None);
        assert!(a.notice.as_deref().unwrap().contains("not --print"));
        a.login = Some(Default::default());
        assert_eq!(
            a.update(Action::OpenShell),
            Some(Effect::Shell("i-3".into()))
        );
        typed(&mut a, "zzzz");
        assert_eq!(a.update(Action::OpenShell), None);
    }

    #[test]
    fn enter_on_no_match_does_nothing() {
        let mut a = app();
        typed(&mut a, "zzzz");
        assert_eq!(a.update(Action::Select), None);
    }

    #[test]
    fn movement_is_clamped_and_scrolls() {
        let mut a = app();
        a.update(Action::Up);
        assert_eq!(a.selected, 0);
        a.update(Action::Down);
        a.update(Action::Down);
        assert_eq!((a.selected, a.offset), (2, 1));
        a.update(Action::End);
        assert_eq!((a.selected, a.offset), (3, 2));
        a.update(Action::PageUp);
        assert_eq!(a.selected, 1);
        a.update(Action::Home);
        assert_eq!((a.selected, a.offset), (0, 0));
        a.update(Action::PageDown);
        assert_eq!(a.selected, 2);
    }

    #[test]
    fn online_toggle_hides_others_and_keeps_selection() {
        let mut a = app();
        a.update(Action::Down); // i-2
        a.update(Action::ToggleOnline);
        assert_eq!(a.hits.len(), 3);
        assert_eq!(a.selected_instance().unwrap().id, "i-2");
    }

    #[test]
    fn refresh_keeps_query_and_selection() {
        let mut a = app();
        typed(&mut a, "web");
        a.update(Action::Down);
        assert_eq!(a.selected_instance().unwrap().id, "i-2");
        assert_eq!(a.update(Action::Refresh), Some(Effect::Refresh));
        assert_eq!(a.update(Action::Refresh), None, "one refresh at a time");
        let inv = Inventory {
            instances: vec![
                inst("i-2", "web-2", Ping::Online),
                inst("i-9", "web-9", Ping::Online),
            ],
            warnings: vec![],
        };
        a.update(Action::Loaded(Ok(inv), 2000));
        assert!(!a.loading);
        assert_eq!(a.query, "web");
        assert_eq!(a.selected_instance().unwrap().id, "i-2");
        assert_eq!(a.source, Source::Fresh { fetched_at: 2000 });
    }

    #[test]
    fn failed_refresh_keeps_rows_and_shows_errors() {
        let mut a = app();
        a.update(Action::Refresh);
        let err = AwsError {
            action: "ec2:DescribeInstances".into(),
            region: "us-east-1".into(),
            kind: crate::aws::AwsErrorKind::AccessDenied,
            code: Some("UnauthorizedOperation".into()),
            message: String::new(),
            profile: None,
        };
        a.update(Action::Loaded(Err(FetchError { errors: vec![err] }), 2000));
        assert_eq!(a.instances.len(), 4);
        assert_eq!(a.errors.len(), 1);
    }

    #[test]
    fn help_swallows_the_next_key() {
        let mut a = app();
        a.update(Action::ToggleHelp);
        assert!(a.help);
        assert_eq!(a.update(Action::Quit), None);
        assert!(!a.help);
        assert_eq!(a.update(Action::Quit), Some(Effect::Quit));
    }

    fn ids(v: Vec<&Instance>) -> Vec<&str> {
        v.into_iter().map(|i| i.id.as_str()).collect()
    }

    fn update(id: &str, ping: Ping) -> ping::PingUpdate {
        ping::PingUpdate {
            profile: None,
            id: id.into(),
            ping,
            last_ping: Some(1990),
            agent_version: Some("3.3.2".into()),
        }
    }

    fn pings(updates: Vec<ping::PingUpdate>, rechecked: Option<usize>) -> Action {
        Action::Pings {
            report: PingReport {
                updates,
                warnings: vec![],
            },
            rechecked,
        }
    }

    fn denied(action: &str) -> AwsError {
        AwsError {
            action: action.into(),
            region: "us-east-1".into(),
            kind: crate::aws::AwsErrorKind::AccessDenied,
            code: Some("AccessDeniedException".into()),
            message: String::new(),
            profile: None,
        }
    }

    #[test]
    fn tab_marks_the_row_and_moves_down_shift_tab_up() {
        let mut a = app();
        a.update(Action::ToggleMark);
        assert_eq!(a.selected_instance().unwrap().id, "i-2");
        a.update(Action::ToggleMark);
        a.update(Action::Up);
        a.update(Action::ToggleMark); // unmarks i-2
        assert_eq!(ids(a.marked_instances()), ["i-1"]);
        // On the last row it stays there.
        a.update(Action::End);
        a.update(Action::ToggleMark);
        assert_eq!(a.selected_instance().unwrap().id, "i-4");
        assert_eq!(ids(a.marked_instances()), ["i-1", "i-4"]);
        // Shift-Tab marks and moves up.
        a.update(Action::ToggleMarkUp); // unmarks i-4
        a.update(Action::ToggleMarkUp); // marks i-3
        assert_eq!(a.selected_instance().unwrap().id, "i-2");
        assert_eq!(ids(a.marked_instances()), ["i-1", "i-3"]);
        assert_eq!(a.query, "", "marking is not typing");
    }

    #[test]
    fn space_is_query_text_and_every_word_must_match() {
        let mut a = app();
        typed(&mut a, "web 2");
        assert_eq!(a.query, "web 2");
        assert!(a.marked.is_empty(), "space does not mark");
        let shown: Vec<&str> = a
            .hits
            .iter()
            .map(|h| a.instances[h.index as usize].id.as_str())
            .collect();
        assert_eq!(shown, ["i-2"], "web AND 2");
        typed(&mut a, " x");
        assert!(a.hits.is_empty(), "a third word that matches nothing");
    }

    #[test]
    fn marks_survive_filtering_and_refreshes_drop_gone_instances() {
        let mut a = app();
        a.update(Action::ToggleMark); // i-1
        a.update(Action::ToggleMark); // i-2
        typed(&mut a, "db");
        assert_eq!(a.hits.len(), 1);
        assert_eq!(
            ids(a.marked_instances()),
            ["i-1", "i-2"],
            "hidden, still marked"
        );
        a.update(Action::ClearQuery);
        a.update(Action::ToggleOnline);
        assert_eq!(ids(a.marked_instances()), ["i-1", "i-2"]);
        let inv = Inventory {
            instances: vec![
                inst("i-4", "cache-1", Ping::Online),
                inst("i-2", "web-2", Ping::Online),
                inst("i-9", "web-9", Ping::Online),
            ],
            warnings: vec![],
        };
        a.update(Action::Loaded(Ok(inv), 2000));
        assert_eq!(ids(a.marked_instances()), ["i-2"]);
        assert_eq!(a.marked.len(), 1);
    }

    #[test]
    fn star_marks_every_shown_row_then_unmarks_them() {
        let mut a = app();
        a.update(Action::End);
        a.update(Action::ToggleMark); // i-4, not shown below
        typed(&mut a, "web");
        a.update(Action::ToggleMarkAll);
        assert_eq!(ids(a.marked_instances()), ["i-1", "i-2", "i-4"]);
        a.update(Action::ToggleMark); // unmarks i-1: not all shown are marked now
        a.update(Action::ToggleMarkAll);
        assert_eq!(ids(a.marked_instances()), ["i-1", "i-2", "i-4"]);
        a.update(Action::ToggleMarkAll);
        assert_eq!(ids(a.marked_instances()), ["i-4"], "only the shown rows");
        typed(&mut a, "zzz");
        a.update(Action::ToggleMarkAll);
        assert_eq!(
            ids(a.marked_instances()),
            ["i-4"],
            "nothing shown, nothing done"
        );
    }

    #[test]
    fn esc_clears_the_marks_first_and_ctrl_c_always_quits() {
        let mut a = app();
        a.update(Action::ToggleMark);
        assert_eq!(a.update(Action::Back), None);
        assert!(a.marked.is_empty());
        assert_eq!(a.update(Action::Back), Some(Effect::Quit));
        a.update(Action::ToggleMark);
        assert_eq!(a.update(Action::Quit), Some(Effect::Quit));
        // Enter still picks the selected row only.
        assert_eq!(a.update(Action::Select), Some(Effect::Select("i-3".into())));
    }

    #[test]
    fn ping_updates_apply_in_place_keeping_order_and_selection() {
        let mut a = app();
        a.update(Action::ToggleMark); // i-1
        a.update(Action::Down);
        assert_eq!(a.selected_instance().unwrap().id, "i-3");
        let order: Vec<u32> = a.hits.iter().map(|h| h.index).collect();
        a.update(pings(
            vec![
                update("i-3", Ping::Online),
                update("i-1", Ping::ConnectionLost),
                update("i-77", Ping::Online),
            ],
            None,
        ));
        assert_eq!(a.hits.iter().map(|h| h.index).collect::<Vec<_>>(), order);
        let i3 = a.selected_instance().unwrap();
        assert_eq!(i3.id, "i-3");
        assert_eq!(
            (i3.ping, i3.last_ping, i3.agent_version.as_deref()),
            (Ping::Online, Some(1990), Some("3.3.2"))
        );
        assert_eq!(a.instances[0].ping, Ping::ConnectionLost);
        // Not in the answer: as it was; unknown ids are not added.
        assert_eq!(a.instances[1].ping, Ping::Online);
        assert_eq!(a.instances.len(), 4);
        assert_eq!(a.online_count, 3);
        assert_eq!(ids(a.marked_instances()), ["i-1"]);
        assert_eq!(a.notice, None, "the periodic check is quiet");
    }

    #[test]
    fn one_periodic_ping_check_at_a_time() {
        let mut a = App::new(1000);
        assert_eq!(a.update(Action::CheckPings), None, "nothing to check yet");
        let mut a = app();
        assert_eq!(a.update(Action::CheckPings), Some(Effect::CheckPings(None)));
        assert_eq!(a.update(Action::CheckPings), None, "one is in flight");
        a.update(pings(vec![], None));
        assert_eq!(a.update(Action::CheckPings), Some(Effect::CheckPings(None)));
        a.update(pings(vec![], None));
        a.update(Action::Refresh);
        assert_eq!(
            a.update(Action::CheckPings),
            None,
            "a full refresh is running"
        );
    }

    #[test]
    fn ctrl_r_with_marks_rechecks_only_them() {
        let mut a = app();
        a.update(Action::ToggleMark); // i-1
        a.update(Action::End);
        a.update(Action::ToggleMark); // i-4
        a.instances[3].region = "eu-west-1".into();
        let Some(Effect::CheckPings(Some(targets))) = a.update(Action::Refresh) else {
            panic!("a targeted ping check");
        };
        assert_eq!(
            targets,
            Targets::from([
                ((None, "".to_string()), vec!["i-1".to_string()]),
                ((None, "eu-west-1".to_string()), vec!["i-4".to_string()]),
            ])
        );
        assert!(!a.loading, "not a full refresh");
        a.update(pings(vec![update("i-4", Ping::ConnectionLost)], Some(2)));
        assert_eq!(a.notice.as_deref(), Some("re-checked 2 marked"));
        assert_eq!(a.instances[3].ping, Ping::ConnectionLost);
        // Without marks Ctrl-r is the full refresh it always was.
        a.update(Action::Back);
        assert_eq!(a.update(Action::Refresh), Some(Effect::Refresh));
    }

    #[test]
    fn a_failed_ping_check_keeps_old_states_and_says_so_once() {
        let mut a = app();
        a.warnings = vec![denied("ec2:DescribeInstances")];
        a.update(Action::ToggleMark);
        a.update(Action::Refresh);
        a.update(Action::Pings {
            report: PingReport {
                updates: vec![],
                warnings: vec![denied("ssm:DescribeInstanceInformation")],
            },
            rechecked: Some(1),
        });
        assert_eq!(a.instances[0].ping, Ping::Online);
        assert_eq!(a.ping_warnings.len(), 1);
        assert_eq!(
            a.notice.as_deref(),
            Some("could not re-check all 1 marked (see below)")
        );
        // Already said by the last full refresh: not repeated.
        a.warnings.push(denied("ssm:DescribeInstanceInformation"));
        a.update(Action::CheckPings);
        a.update(Action::Pings {
            report: PingReport {
                updates: vec![],
                warnings: vec![denied("ssm:DescribeInstanceInformation")],
            },
            rechecked: None,
        });
        assert_eq!(a.ping_warnings, []);
    }

    #[test]
    fn delete_word_and_clear() {
        let mut a = app();
        typed(&mut a, "web 2");
        a.update(Action::DeleteWord);
        assert_eq!(a.query, "web ");
        a.update(Action::ClearQuery);
        assert_eq!(a.query, "");
    }

    fn job(dest: &str) -> Job {
        Job {
            sources: vec!["f".into()],
            dest: dest.into(),
            recursive: false,
            mkdir: false,
        }
    }

    fn done(n: usize, ok: bool, missing_dir: Option<&str>) -> Action {
        let r = crate::transfer::HostResult {
            missing_dir: missing_dir.map(Into::into),
            ..crate::transfer::HostResult::bare(ok)
        };
        Action::Transfer(Update::Done(n, r), Instant::now())
    }

    #[test]
    fn the_push_goes_from_dialog_to_transfers_to_a_notice() {
        use crate::tui::push::Disk;
        let mut a = app();
        a.update(Action::OpenPush);
        assert!(a.push.is_none(), "print mode cannot push");
        assert!(a.notice.as_deref().unwrap().contains("not --print"));
        a.login = Some(Default::default());
        a.update(Action::OpenPush);
        let Some(Push::Dialog(d)) = &a.push else {
            panic!()
        };
        assert_eq!(d.hosts.len(), 1, "no marks: the selected row");
        assert_eq!(a.push_key(DialogKey::Esc, &Disk), None);
        assert!(a.push.is_none());
        a.update(Action::ToggleMark);
        a.update(Action::ToggleMark);
        a.update(Action::OpenPush);
        let Some(Push::Dialog(d)) = &a.push else {
            panic!()
        };
        let hosts = d.hosts.clone();
        let ids: Vec<&str> = hosts.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["i-1", "i-2"], "the marked rows");
        a.start_transfers(&hosts, 10, job("/srv"));
        assert_eq!(a.push_key(DialogKey::Esc, &Disk), Some(Effect::CancelPush));
        assert_eq!(a.push_key(DialogKey::Esc, &Disk), None, "once");
        a.update(done(0, true, None));
        a.update(done(1, false, None));
        assert_eq!(
            a.push_key(DialogKey::Char('m'), &Disk),
            None,
            "nothing to create"
        );
        a.push_key(DialogKey::Enter, &Disk);
        assert!(a.push.is_none());
        assert_eq!(a.notice.as_deref(), Some("push to /srv: 1 ok, 1 failed"));
    }

    #[test]
    fn the_dialog_reopens_with_the_last_paths_and_destination() {
        use crate::tui::push::Disk;
        let mut a = app();
        a.login = Some(Default::default());
        a.update(Action::OpenPush);
        for c in "dist/app.tar.gz".chars() {
            a.push_key(DialogKey::Char(c), &Disk);
        }
        a.push_key(DialogKey::Down, &Disk);
        for c in "/srv/app".chars() {
            a.push_key(DialogKey::Char(c), &Disk);
        }
        a.push_key(DialogKey::Esc, &Disk);
        a.update(Action::OpenPush);
        let Some(Push::Dialog(d)) = &a.push else {
            panic!()
        };
        assert_eq!(
            (d.paths.as_str(), d.dest.as_str()),
            ("dist/app.tar.gz", "/srv/app")
        );
    }

    #[test]
    fn a_missing_directory_is_offered_to_be_created() {
        use crate::tui::push::Disk;
        let mut a = app();
        a.login = Some(Default::default());
        a.update(Action::OpenPush);
        let hosts = vec![a.instances[0].clone(), a.instances[1].clone()];
        a.start_transfers(&hosts, 10, job("/srv/new/"));
        a.update(done(0, true, None));
        assert_eq!(
            a.push_key(DialogKey::Char('m'), &Disk),
            None,
            "not finished"
        );
        a.update(done(1, false, Some("/srv/new")));
        let Some(Effect::StartPush { hosts, job }) = a.push_key(DialogKey::Char('m'), &Disk) else {
            panic!("a push again");
        };
        let ids: Vec<&str> = hosts.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["i-2"], "only the host that lacked it");
        assert!(job.mkdir);
        assert_eq!(job.dest, "/srv/new/");
        a.start_transfers(&hosts, 10, job);
        let Some(Push::Running(t)) = &a.push else {
            panic!()
        };
        assert_eq!(t.rows.len(), 1);
    }

    #[test]
    fn diagnose_asks_for_the_selected_row_and_any_key_closes_the_result() {
        use crate::doctor::Check;
        let mut a = app();
        assert_eq!(
            a.update(Action::Diagnose),
            Some(Effect::Diagnose("i-1".into()))
        );
        assert_eq!(a.notice.as_deref(), Some("diagnosing web-1…"));
        let checks = vec![
            Check::ok("local", "credentials", "me"),
            Check::fail("target", "agent ping", "ConnectionLost", "start it"),
        ];
        a.update(Action::Diagnosed("web-1".into(), checks));
        assert!(a.diagnosis.is_some());
        assert_eq!(a.notice.as_deref(), Some("web-1: 1 problem found"));
        a.update(Action::Tick(1001));
        assert!(a.diagnosis.is_some(), "background actions leave it open");
        assert_eq!(a.update(Action::Quit), None, "the key only closes it");
        assert!(a.diagnosis.is_none());
    }
}
