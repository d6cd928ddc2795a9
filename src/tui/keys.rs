//! The keymap: terminal key events to picker actions.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::app::Action;
use super::push::DialogKey;

pub fn action_for(key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    Some(match key.code {
        KeyCode::Char('c') if ctrl => Action::Quit,
        KeyCode::Char('n' | 'j') if ctrl => Action::Down,
        KeyCode::Char('p' | 'k') if ctrl => Action::Up,
        KeyCode::Char('r') if ctrl => Action::Refresh,
        KeyCode::Char('d') if ctrl => Action::ToggleDetails,
        KeyCode::Char('u') if ctrl => Action::ClearQuery,
        KeyCode::Char('w') if ctrl => Action::DeleteWord,
        KeyCode::Char('h') if ctrl => Action::Backspace,
        KeyCode::Char('a') if ctrl => Action::ToggleMarkAll,
        KeyCode::Char('t') if ctrl => Action::OpenPush,
        KeyCode::Char('o') if ctrl => Action::OpenShell,
        KeyCode::Char('g') if ctrl => Action::Diagnose,
        KeyCode::Char('o') if alt => Action::ToggleOnline,
        KeyCode::Backspace if ctrl || alt => Action::DeleteWord,
        KeyCode::Char(_) if ctrl || alt => return None,
        KeyCode::Char('?') => Action::ToggleHelp,
        // Space is query text (terms ANDed, as in fzf); Tab and Shift-Tab mark (fzf --multi).
        KeyCode::Tab => Action::ToggleMark,
        KeyCode::BackTab => Action::ToggleMarkUp,
        KeyCode::Char('*') => Action::ToggleMarkAll,
        KeyCode::Char(c) => Action::Char(c),
        KeyCode::Backspace => Action::Backspace,
        KeyCode::Esc => Action::Back,
        KeyCode::Enter => Action::Select,
        KeyCode::Up => Action::Up,
        KeyCode::Down => Action::Down,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Home => Action::Home,
        KeyCode::End => Action::End,
        KeyCode::F(4) => Action::ToggleOnline,
        KeyCode::F(1) => Action::ToggleHelp,
        KeyCode::F(5) => Action::OpenPush,
        KeyCode::F(2) => Action::Diagnose,
        KeyCode::F(3) => Action::ToggleDetails,
        _ => return None,
    })
}

/// The key list shown by the help overlay: (keys, what they do).
/// Keys in the push dialog and the transfers view.
pub fn dialog_key(key: KeyEvent) -> Option<DialogKey> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    Some(match key.code {
        KeyCode::Char('c') if ctrl => DialogKey::Esc,
        KeyCode::Char('u') if ctrl => DialogKey::Clear,
        KeyCode::Char('h') if ctrl => DialogKey::Backspace,
        KeyCode::Char(_) if ctrl => return None,
        KeyCode::Char(c) => DialogKey::Char(c),
        KeyCode::Backspace => DialogKey::Backspace,
        KeyCode::Tab => DialogKey::Tab,
        KeyCode::BackTab | KeyCode::Up => DialogKey::Up,
        KeyCode::Down => DialogKey::Down,
        KeyCode::Enter => DialogKey::Enter,
        KeyCode::Esc => DialogKey::Esc,
        _ => return None,
    })
}

pub const HELP: &[(&str, &str)] = &[
    ("type", "filter: fuzzy, words ANDed (\"web prod\")"),
    ("↑ ↓  Ctrl-p Ctrl-n  Ctrl-k Ctrl-j", "move"),
    ("PgUp PgDn  Home End", "move by page / to the ends"),
    ("Enter", "connect to the selected instance"),
    ("Ctrl-o", "open a Session Manager shell (no ssh)"),
    ("Tab  Shift-Tab", "mark / unmark the row, move down / up"),
    ("*  Ctrl-a", "mark all shown rows (again: unmark)"),
    ("Ctrl-t  F5", "push files to the marked rows (or this one)"),
    ("F2  Ctrl-g", "diagnose the selected row (ec2ssh doctor)"),
    ("F4  Alt-o", "show only Online instances / all"),
    ("Ctrl-d  F3", "detail pane"),
    ("Ctrl-r", "refresh from AWS; marked: re-check ping"),
    (
        "Backspace  Ctrl-w  Ctrl-u",
        "delete a char / a word / the query",
    ),
    ("?  F1", "this help (any key closes it)"),
    ("Esc", "clear the marks, else quit"),
    ("Ctrl-c", "quit"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, m: KeyModifiers) -> Option<Action> {
        action_for(KeyEvent::new(code, m))
    }

    #[test]
    fn keymap() {
        let none = KeyModifiers::NONE;
        let ctrl = KeyModifiers::CONTROL;
        assert_eq!(key(KeyCode::Char('a'), none), Some(Action::Char('a')));
        assert_eq!(
            key(KeyCode::Char('A'), KeyModifiers::SHIFT),
            Some(Action::Char('A'))
        );
        assert_eq!(key(KeyCode::Char('c'), ctrl), Some(Action::Quit));
        assert_eq!(key(KeyCode::Esc, none), Some(Action::Back));
        assert_eq!(key(KeyCode::Char(' '), none), Some(Action::Char(' ')));
        assert_eq!(key(KeyCode::Tab, none), Some(Action::ToggleMark));
        assert_eq!(
            key(KeyCode::BackTab, KeyModifiers::SHIFT),
            Some(Action::ToggleMarkUp)
        );
        assert_eq!(key(KeyCode::Char('*'), none), Some(Action::ToggleMarkAll));
        assert_eq!(key(KeyCode::Char('a'), ctrl), Some(Action::ToggleMarkAll));
        assert_eq!(key(KeyCode::Char(' '), ctrl), None);
        assert_eq!(key(KeyCode::Char('n'), ctrl), Some(Action::Down));
        assert_eq!(key(KeyCode::Char('j'), ctrl), Some(Action::Down));
        assert_eq!(key(KeyCode::Char('p'), ctrl), Some(Action::Up));
        assert_eq!(key(KeyCode::Char('k'), ctrl), Some(Action::Up));
        assert_eq!(key(KeyCode::Char('r'), ctrl), Some(Action::Refresh));
        assert_eq!(key(KeyCode::Char('o'), ctrl), Some(Action::OpenShell));
        assert_eq!(key(KeyCode::F(4), none), Some(Action::ToggleOnline));
        assert_eq!(
            key(KeyCode::Char('o'), KeyModifiers::ALT),
            Some(Action::ToggleOnline)
        );
        assert_eq!(key(KeyCode::Char('?'), none), Some(Action::ToggleHelp));
        assert_eq!(key(KeyCode::Enter, none), Some(Action::Select));
        assert_eq!(key(KeyCode::PageDown, none), Some(Action::PageDown));
        assert_eq!(key(KeyCode::Char('x'), ctrl), None);
    }
}
