//! The picker's push: a dialog for what to copy where (local paths with Tab
//! completion and a remote destination, both remembered for the session; a toggle to
//! create the destination directory), then a live view of the copies, one row per
//! host with progress, and their results, with an offer to create a directory that
//! was missing and push again. Pure state: the event loop feeds it keys and transfer
//! updates, the view draws it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::fleet::Instance;
use crate::transfer::{HostResult, Update};

/// Which field of the dialog has the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Paths,
    Dest,
    /// The "create the destination directory" toggle.
    Mkdir,
}

/// The push dialog.
#[derive(Debug, Clone, PartialEq)]
pub struct Dialog {
    pub hosts: Vec<Instance>,
    /// Local paths, separated by spaces (`\ ` for a space in a name).
    pub paths: String,
    /// Remote destination; empty is the login's home.
    pub dest: String,
    /// Create the destination directory (and its parents) if it is missing.
    pub mkdir: bool,
    pub focus: Field,
    /// Why the last Enter was refused, or what Tab found.
    pub note: Option<String>,
}

/// What a push copies and how: the dialog's answer, kept to push again.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Local paths (`~` expanded).
    pub sources: Vec<String>,
    /// Remote destination; empty is the login's home.
    pub dest: String,
    pub recursive: bool,
    /// Create the destination directory first.
    pub mkdir: bool,
}

/// What a key did to the dialog.
#[derive(Debug, Clone, PartialEq)]
pub enum DialogOutcome {
    Stay,
    Cancel,
    /// Start this job on the dialog's hosts.
    Start(Job),
}

/// Keys the dialog understands (the picker maps terminal keys to these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogKey {
    Char(char),
    Backspace,
    /// Ctrl-u: clear the field.
    Clear,
    Tab,
    Up,
    Down,
    Enter,
    Esc,
}

impl Dialog {
    /// A dialog for `hosts`, filled in as the last one was left.
    pub fn new(hosts: Vec<Instance>, last_paths: &str, last_dest: &str) -> Dialog {
        Dialog {
            hosts,
            paths: last_paths.to_string(),
            dest: last_dest.to_string(),
            mkdir: false,
            focus: Field::Paths,
            note: None,
        }
    }

    /// The text field with the cursor (none on the toggle).
    fn field(&mut self) -> Option<&mut String> {
        match self.focus {
            Field::Paths => Some(&mut self.paths),
            Field::Dest => Some(&mut self.dest),
            Field::Mkdir => None,
        }
    }

    /// Applies `key`; `fs` answers what is on the local disk (for completion and for
    /// checking the paths before starting).
    pub fn key(&mut self, key: DialogKey, fs: &dyn LocalFs) -> DialogOutcome {
        match key {
            DialogKey::Char(' ' | 'x') if self.focus == Field::Mkdir => self.mkdir = !self.mkdir,
            DialogKey::Char(c) => {
                if let Some(f) = self.field() {
                    f.push(c);
                    self.note = None;
                }
            }
            DialogKey::Backspace => {
                if let Some(f) = self.field() {
                    f.pop();
                }
            }
            DialogKey::Clear => {
                if let Some(f) = self.field() {
                    f.clear();
                }
            }
            DialogKey::Esc => return DialogOutcome::Cancel,
            DialogKey::Up => {
                self.focus = match self.focus {
                    Field::Mkdir => Field::Dest,
                    _ => Field::Paths,
                }
            }
            DialogKey::Down => {
                self.focus = match self.focus {
                    Field::Paths => Field::Dest,
                    _ => Field::Mkdir,
                }
            }
            DialogKey::Tab => match self.focus {
                Field::Paths => {
                    let (done, note) = complete_last(&self.paths, fs);
                    self.paths = done;
                    self.note = note;
                }
                Field::Dest => self.focus = Field::Mkdir,
                Field::Mkdir => self.focus = Field::Paths,
            },
            DialogKey::Enter => match self.focus {
                Field::Paths => self.focus = Field::Dest,
                Field::Dest | Field::Mkdir => return self.start(fs),
            },
        }
        DialogOutcome::Stay
    }

    fn start(&mut self, fs: &dyn LocalFs) -> DialogOutcome {
        let sources = split_paths(&self.paths);
        if sources.is_empty() {
            self.focus = Field::Paths;
            self.note = Some("type a local path to push (Tab completes)".into());
            return DialogOutcome::Stay;
        }
        let mut recursive = false;
        for s in &sources {
            match fs.kind(Path::new(&expand_home(s, fs))) {
                Some(Kind::Dir) => recursive = true,
                Some(Kind::File) => {}
                None => {
                    self.focus = Field::Paths;
                    self.note = Some(format!("{s}: no such file or directory"));
                    return DialogOutcome::Stay;
                }
            }
        }
        DialogOutcome::Start(Job {
            sources: sources.iter().map(|s| expand_home(s, fs)).collect(),
            dest: self.dest.trim().to_string(),
            recursive,
            mkdir: self.mkdir,
        })
    }
}

/// What completion and checks need from the local disk.
pub trait LocalFs {
    fn kind(&self, path: &Path) -> Option<Kind>;
    /// Entries of `dir`: (name, is a directory).
    fn list(&self, dir: &Path) -> Vec<(String, bool)>;
    fn home(&self) -> Option<PathBuf>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// The real disk.
pub struct Disk;

impl LocalFs for Disk {
    fn kind(&self, path: &Path) -> Option<Kind> {
        let m = std::fs::metadata(path).ok()?;
        Some(if m.is_dir() { Kind::Dir } else { Kind::File })
    }
    fn list(&self, dir: &Path) -> Vec<(String, bool)> {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let dir = e.path().is_dir();
                Some((name, dir))
            })
            .collect()
    }
    fn home(&self) -> Option<PathBuf> {
        std::env::var_os("HOME").map(PathBuf::from)
    }
}

/// `~/x` → `$HOME/x`.
fn expand_home(p: &str, fs: &dyn LocalFs) -> String {
    match (p.strip_prefix("~/"), fs.home()) {
        (Some(rest), Some(home)) => home.join(rest).to_string_lossy().into_owned(),
        _ if p == "~" => fs
            .home()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.to_string()),
        _ => p.to_string(),
    }
}

/// Splits on unescaped spaces; `\ ` is a space inside a name.
pub fn split_paths(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ' ' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn escape(name: &str) -> String {
    name.replace('\\', "\\\\").replace(' ', "\\ ")
}

/// Completes the last path in `input` as far as it is unambiguous (a directory gets
/// its `/`); with several candidates, says how many and which (first few).
pub fn complete_last(input: &str, fs: &dyn LocalFs) -> (String, Option<String>) {
    // The last word starts after the last unescaped space.
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in input.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ' ' if !escaped => start = i + 1,
            _ => escaped = false,
        }
    }
    let (head, word) = input.split_at(start);
    let word = split_paths(word).pop().unwrap_or_default();
    let (dir_part, prefix) = match word.rfind('/') {
        Some(i) => (&word[..=i], &word[i + 1..]),
        None => ("", word.as_str()),
    };
    let dir = match dir_part {
        "" => PathBuf::from("."),
        d => PathBuf::from(expand_home(d, fs)),
    };
    let mut matches: Vec<(String, bool)> = fs
        .list(&dir)
        .into_iter()
        .filter(|(n, _)| n.starts_with(prefix) && (prefix.starts_with('.') || !n.starts_with('.')))
        .collect();
    matches.sort();
    let rebuilt = |completed: &str| format!("{head}{}", escape(&format!("{dir_part}{completed}")));
    match matches.as_slice() {
        [] => (input.to_string(), Some(format!("nothing matches {word}"))),
        [(name, is_dir)] => {
            let slash = if *is_dir { "/" } else { "" };
            (rebuilt(&format!("{name}{slash}")), None)
        }
        many => {
            let common = many.iter().skip(1).fold(many[0].0.clone(), |acc, (n, _)| {
                acc.chars()
                    .zip(n.chars())
                    .take_while(|(a, b)| a == b)
                    .map(|(a, _)| a)
                    .collect()
            });
            let names: Vec<&str> = many.iter().take(6).map(|(n, _)| n.as_str()).collect();
            let more = if many.len() > 6 { " …" } else { "" };
            (
                rebuilt(&common),
                Some(format!(
                    "{} matches: {}{more}",
                    many.len(),
                    names.join("  ")
                )),
            )
        }
    }
}

/// One host's copy, as the transfers view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub label: String,
    pub id: String,
    pub started: Option<Instant>,
    pub bytes: u64,
    pub result: Option<HostResult>,
}

impl Row {
    /// Bytes per second since the copy started.
    pub fn rate(&self, now: Instant) -> Option<f64> {
        let secs = now.duration_since(self.started?).as_secs_f64();
        (secs > 0.2 && self.bytes > 0).then(|| self.bytes as f64 / secs)
    }

    /// Time left at the current rate.
    pub fn eta(&self, total: u64, now: Instant) -> Option<Duration> {
        let rate = self.rate(now)?;
        Some(Duration::from_secs_f64(
            total.saturating_sub(self.bytes) as f64 / rate,
        ))
    }
}

/// The copies under way (or finished) from the picker.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfers {
    pub rows: Vec<Row>,
    /// Bytes to send to each host.
    pub total: u64,
    pub job: Job,
    pub cancelling: bool,
}

impl Transfers {
    pub fn new(hosts: &[Instance], total: u64, job: Job) -> Transfers {
        Transfers {
            rows: hosts
                .iter()
                .map(|h| Row {
                    label: match h.display_name() {
                        "" => h.id.clone(),
                        n => crate::text::sanitize(n).into_owned(),
                    },
                    id: h.id.clone(),
                    started: None,
                    bytes: 0,
                    result: None,
                })
                .collect(),
            total,
            job,
            cancelling: false,
        }
    }

    /// Hosts whose copy failed for want of the remote directory, and that directory
    /// (the first one named).
    pub fn missing_dir(&self) -> Option<(Vec<&str>, &str)> {
        let rows: Vec<(&str, &str)> = self
            .rows
            .iter()
            .filter_map(|r| {
                let dir = r.result.as_ref()?.missing_dir.as_deref()?;
                Some((r.id.as_str(), dir))
            })
            .collect();
        let dir = rows.first()?.1;
        Some((rows.iter().map(|(id, _)| *id).collect(), dir))
    }

    pub fn apply(&mut self, update: Update, now: Instant) {
        match update {
            Update::Started(n) => {
                if let Some(r) = self.rows.get_mut(n) {
                    r.started = Some(now);
                }
            }
            Update::Bytes(n, b) => {
                if let Some(r) = self.rows.get_mut(n) {
                    // ssh's framing: the tunnel carries a little more than the files.
                    r.bytes = b.min(self.total);
                }
            }
            Update::Done(n, result) => {
                if let Some(r) = self.rows.get_mut(n) {
                    if result.ok {
                        r.bytes = self.total;
                    }
                    r.result = Some(result);
                }
            }
        }
    }

    /// Every host has its result.
    pub fn finished(&self) -> bool {
        self.rows.iter().all(|r| r.result.is_some())
    }

    /// `3 ok, 1 failed` once finished; `2 of 4 done` while running.
    pub fn summary(&self) -> String {
        let done = self.rows.iter().filter(|r| r.result.is_some()).count();
        let ok = self
            .rows
            .iter()
            .filter(|r| r.result.as_ref().is_some_and(|x| x.ok))
            .count();
        if self.finished() {
            format!("{ok} ok, {} failed", done - ok)
        } else if self.cancelling {
            format!("cancelling… {done} of {} done", self.rows.len())
        } else {
            format!("{done} of {} done", self.rows.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A fake disk: paths to (is a directory).
    struct Fake(BTreeMap<&'static str, bool>);

    impl LocalFs for Fake {
        fn kind(&self, path: &Path) -> Option<Kind> {
            let p = path.to_str()?;
            let p = p.strip_prefix("./").unwrap_or(p);
            self.0
                .get(p.trim_end_matches('/'))
                .map(|d| if *d { Kind::Dir } else { Kind::File })
        }
        fn list(&self, dir: &Path) -> Vec<(String, bool)> {
            let d = dir.to_string_lossy();
            let d = if d == "." {
                String::new()
            } else {
                d.to_string()
            };
            self.0
                .iter()
                .filter_map(|(p, is_dir)| {
                    let rest = p.strip_prefix(d.as_str())?;
                    (!rest.is_empty() && !rest.contains('/')).then(|| (rest.to_string(), *is_dir))
                })
                .collect()
        }
        fn home(&self) -> Option<PathBuf> {
            Some(PathBuf::from("/home/me"))
        }
    }

    fn disk() -> Fake {
        Fake(BTreeMap::from([
            ("build", true),
            ("build/app", false),
            ("build/app.conf", false),
            ("my file.txt", false),
            ("notes.md", false),
            (".hidden", false),
            ("/home/me/deploy.sh", false),
        ]))
    }

    #[test]
    fn tab_completes_unique_names_dirs_and_common_prefixes() {
        let fs = disk();
        assert_eq!(complete_last("bu", &fs), ("build/".into(), None));
        let (s, note) = complete_last("build/a", &fs);
        assert_eq!(s, "build/app");
        assert_eq!(note.unwrap(), "2 matches: app  app.conf");
        assert_eq!(
            complete_last("notes.md my", &fs).0,
            "notes.md my\\ file.txt"
        );
        assert_eq!(complete_last("~/dep", &fs).0, "~/deploy.sh");
        let (s, note) = complete_last("zz", &fs);
        assert_eq!(
            (s.as_str(), note.unwrap().as_str()),
            ("zz", "nothing matches zz")
        );
        assert_eq!(
            complete_last(".h", &fs).0,
            ".hidden",
            "dot files when asked for"
        );
    }

    #[test]
    fn paths_split_on_unescaped_spaces() {
        assert_eq!(
            split_paths(" a  my\\ file.txt b/ "),
            ["a", "my file.txt", "b/"]
        );
        assert!(split_paths("   ").is_empty());
    }

    #[test]
    fn the_dialog_checks_paths_and_goes_recursive_for_directories() {
        let fs = disk();
        let mut d = Dialog::new(vec![Instance::default()], "", "/tmp");
        assert_eq!(d.dest, "/tmp", "the last destination is remembered");
        d.focus = Field::Dest;
        assert_eq!(d.key(DialogKey::Enter, &fs), DialogOutcome::Stay);
        assert_eq!(d.focus, Field::Paths, "nothing to push yet");
        for c in "nope".chars() {
            d.key(DialogKey::Char(c), &fs);
        }
        d.key(DialogKey::Enter, &fs);
        assert_eq!(d.focus, Field::Dest);
        d.key(DialogKey::Enter, &fs);
        assert_eq!(d.note.as_deref(), Some("nope: no such file or directory"));
        d.key(DialogKey::Clear, &fs);
        for c in "notes.md build".chars() {
            d.key(DialogKey::Char(c), &fs);
        }
        d.key(DialogKey::Down, &fs);
        d.key(DialogKey::Clear, &fs);
        assert_eq!(
            d.key(DialogKey::Enter, &fs),
            DialogOutcome::Start(Job {
                sources: vec!["notes.md".into(), "build".into()],
                dest: String::new(),
                recursive: true,
                mkdir: false,
            })
        );
        assert_eq!(d.key(DialogKey::Esc, &fs), DialogOutcome::Cancel);
    }

    #[test]
    fn the_mkdir_toggle_is_a_field_of_its_own() {
        let fs = disk();
        let mut d = Dialog::new(vec![Instance::default()], "notes.md", "/srv/new/");
        assert_eq!(d.paths, "notes.md", "the last paths are offered again");
        d.key(DialogKey::Down, &fs);
        d.key(DialogKey::Down, &fs);
        assert_eq!(d.focus, Field::Mkdir);
        d.key(DialogKey::Char('q'), &fs);
        d.key(DialogKey::Backspace, &fs);
        assert_eq!(
            (d.paths.as_str(), d.dest.as_str()),
            ("notes.md", "/srv/new/")
        );
        d.key(DialogKey::Char(' '), &fs);
        assert!(d.mkdir);
        let DialogOutcome::Start(job) = d.key(DialogKey::Enter, &fs) else {
            panic!("Enter on the toggle starts");
        };
        assert!(job.mkdir);
        d.key(DialogKey::Char('x'), &fs);
        assert!(!d.mkdir);
        d.key(DialogKey::Tab, &fs);
        assert_eq!(d.focus, Field::Paths, "Tab goes round");
        d.key(DialogKey::Up, &fs);
        assert_eq!(d.focus, Field::Paths);
    }

    #[test]
    fn transfers_follow_updates_to_a_summary() {
        let hosts = vec![
            Instance {
                id: "i-1".into(),
                name: Some("web-1".into()),
                ..Instance::default()
            },
            Instance {
                id: "i-2".into(),
                ..Instance::default()
            },
        ];
        let t0 = Instant::now();
        let job = Job {
            sources: vec!["f".into()],
            dest: String::new(),
            recursive: false,
            mkdir: false,
        };
        let mut t = Transfers::new(&hosts, 1000, job);
        assert_eq!(t.rows[1].label, "i-2");
        t.apply(Update::Started(0), t0);
        t.apply(Update::Bytes(0, 400), t0);
        let later = t0 + Duration::from_secs(2);
        assert_eq!(t.rows[0].rate(later), Some(200.0));
        assert_eq!(t.rows[0].eta(1000, later), Some(Duration::from_secs(3)));
        t.apply(Update::Bytes(0, 5000), later);
        assert_eq!(t.rows[0].bytes, 1000, "capped at the payload size");
        assert_eq!(t.summary(), "0 of 2 done");
        let result = HostResult::bare;
        t.apply(Update::Done(0, result(true)), later);
        assert_eq!(t.missing_dir(), None);
        t.apply(
            Update::Done(
                1,
                HostResult {
                    missing_dir: Some("/srv".into()),
                    ..result(false)
                },
            ),
            later,
        );
        assert!(t.finished());
        assert_eq!(t.summary(), "1 ok, 1 failed");
        assert_eq!(t.missing_dir(), Some((vec!["i-2"], "/srv")));
    }
}
