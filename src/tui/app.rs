//! The picker's state and its pure `update`: keys and background results come in
//! as `Action`s, the state changes, and at most one `Effect` goes out for the
//! event loop to carry out. No terminal or network in here.

use crate::aws::AwsError;
use crate::filter::{Hit, SearchIndex};
use crate::fleet::{FetchError, Instance, Inventory, Ping};

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
    Quit,
    Refresh,
    ToggleOnline,
    ToggleDetails,
    ToggleHelp,
    /// Time passed (Unix seconds); moves the spinner and the ages.
    Tick(i64),
    /// A background refresh finished at the given Unix time.
    Loaded(Result<Inventory, FetchError>, i64),
    /// The list area now has this many rows.
    Viewport(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Quit,
    /// The user picked this instance id.
    Select(String),
    /// Start a background refresh.
    Refresh,
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
        }
    }

    /// Replaces the fleet, keeping the query and, when it is still there, the selection.
    pub fn set_instances(&mut self, instances: Vec<Instance>, source: Source) {
        let keep = self.selected_instance().map(|i| i.id.clone());
        self.online_count = instances.iter().filter(|i| i.ping == Ping::Online).count();
        self.index = SearchIndex::new(&instances);
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
        if self.help
            && !matches!(
                action,
                Action::Tick(_) | Action::Loaded(..) | Action::Viewport(_)
            )
        {
            // Any key closes the help overlay and does nothing else.
            self.help = false;
            return None;
        }
        match action {
            Action::Char(c) => {
                self.query.push(c);
                self.refilter();
            }
            Action::Backspace => {
                if self.query.pop().is_some() {
                    self.refilter();
                }
            }
            Action::DeleteWord => {
                let trimmed = self.query.trim_end().len();
                let cut = self.query[..trimmed].rfind(' ').map_or(0, |p| p + 1);
                self.query.truncate(cut);
                self.refilter();
            }
            Action::ClearQuery => {
                self.query.clear();
                self.refilter();
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
            Action::Quit => return Some(Effect::Quit),
            Action::Refresh => {
                if !self.loading {
                    self.loading = true;
                    return Some(Effect::Refresh);
                }
            }
            Action::ToggleOnline => {
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
            Action::ToggleDetails => self.details = !self.details,
            Action::ToggleHelp => self.help = true,
            Action::Tick(now) => {
                self.now = now;
                self.spinner = self.spinner.wrapping_add(1);
            }
            Action::Loaded(result, now) => {
                self.loading = false;
                self.now = now;
                match result {
                    Ok(inv) => {
                        self.errors.clear();
                        self.warnings = inv.warnings;
                        self.set_instances(inv.instances, Source::Fresh { fetched_at: now });
                    }
                    Err(e) => self.errors = e.errors,
                }
            }
            Action::Viewport(rows) => {
                self.viewport = rows;
                self.scroll_into_view();
            }
        }
        None
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

    #[test]
    fn delete_word_and_clear() {
        let mut a = app();
        typed(&mut a, "web 2");
        a.update(Action::DeleteWord);
        assert_eq!(a.query, "web ");
        a.update(Action::ClearQuery);
        assert_eq!(a.query, "");
    }
}
