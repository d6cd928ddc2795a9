//! Values written into OpenSSH options, on the command line (`-o Key=Value`) and in
//! ssh_config alike, since ssh reads both with the same parser (OpenSSH 9.2 readconf.c,
//! `process_config_line_depth`). ssh re-reads what we write in three ways:
//! - it splits the arguments at whitespace with its own quoting (`argv_split`: `'…'`
//!   and `"…"` group, `\'`, `\"`, `\\` and (outside quotes) `\ ` escape);
//! - it expands `%` tokens in file names and in ProxyCommand (`%%` is a literal `%`,
//!   an unknown token is fatal), and `${VAR}` in file names (which cannot be escaped);
//! - it runs ProxyCommand with `$SHELL -c "exec …"`, after the `%` expansion.
//!
//! So a file name is double-quoted with `%` doubled, and a ProxyCommand is a line of
//! single-quoted shell words whose quotes ssh's splitter balances the same way the
//! shell does, with `%` doubled except in the tokens we mean.

use std::path::Path;

/// A value that cannot be written so that ssh reads it back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EscapeError {
    #[error("{0:?} contains a control character, which ssh options cannot carry")]
    Control(String),
    #[error("{0:?} contains \"${{\", which ssh would expand as an environment variable")]
    EnvReference(String),
    #[error("{0:?} is not valid UTF-8")]
    NotUtf8(String),
    #[error("{0:?} is not an absolute path")]
    Relative(String),
}

/// A file name for an option that takes one (`IdentityFile`, `UserKnownHostsFile`,
/// …): ssh reads it back as exactly `path`, one word, with nothing expanded.
pub fn path_value(path: &Path) -> Result<String, EscapeError> {
    let s = path
        .to_str()
        .ok_or_else(|| EscapeError::NotUtf8(path.to_string_lossy().into_owned()))?;
    check_chars(s)?;
    if s.contains("${") {
        return Err(EscapeError::EnvReference(s.to_string()));
    }
    // `~` would be expanded at the start; an absolute path never starts with it.
    if !path.is_absolute() {
        return Err(EscapeError::Relative(s.to_string()));
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// One part of a ProxyCommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg<'a> {
    /// A literal word, passed to the program as it is.
    Word(&'a str),
    /// One of ssh's tokens, expanded by ssh into one word.
    Token(Token),
}

/// The tokens ssh expands in ProxyCommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// `%h`: the host name.
    Host,
    /// `%p`: the port.
    Port,
    /// `%r`: the remote user name.
    User,
}

impl Token {
    fn as_str(self) -> &'static str {
        match self {
            Token::Host => "%h",
            Token::Port => "%p",
            Token::User => "%r",
        }
    }
}

/// The ProxyCommand line for `args`: every word single-quoted so the shell expands
/// nothing in it, tokens included (`'%h'`), and `%` doubled in literal words.
pub fn proxy_command(args: &[Arg]) -> Result<String, EscapeError> {
    let words = args
        .iter()
        .map(|a| match a {
            Arg::Word(w) => command_word(w),
            Arg::Token(t) => Ok(format!("'{}'", t.as_str())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(words.join(" "))
}

/// `s` as one shell word in single quotes. A `'` or `\` is written outside the quotes
/// as `\'` or `\\`: sh reads that the same, and so does ssh's splitter, which would
/// otherwise take a `\` before the closing quote for an escape and find the quotes
/// unbalanced. No `\` is ever left inside quotes (fish would read it as an escape).
fn command_word(s: &str) -> Result<String, EscapeError> {
    check_chars(s)?;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' | '\\' => {
                out.push('\'');
                out.push('\\');
                out.push(c);
                out.push('\'');
            }
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out.push('\'');
    Ok(out)
}

fn check_chars(s: &str) -> Result<(), EscapeError> {
    if s.chars().any(char::is_control) {
        Err(EscapeError::Control(crate::text::sanitize(s).into_owned()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
