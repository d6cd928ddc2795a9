use std::path::Path;
use std::process::Command;

use super::*;

/// Paths and words that each break a naive quoting somewhere: whitespace, both
/// quotes, backslashes (before a quote, at the end), `%` tokens, shell syntax, `#`.
const HOSTILE: [&str; 10] = [
    "/home/a b/ec2ssh",
    "/data/%h/%%/%p%",
    "/it's/here",
    r#"/say "hi"/x"#,
    r"/back\slash\",
    r"/trailing\'quote",
    "/x/$(touch pwned)/`id`/$HOME/;|&<>",
    "/two  spaces and a trailing one /",
    "/#hash/ not # a comment",
    "/ünï/日本/🚀",
];

#[test]
fn file_names_are_double_quoted_with_percent_doubled() {
    assert_eq!(path_value(Path::new("/a b/c")).unwrap(), r#""/a b/c""#);
    assert_eq!(path_value(Path::new("/x/%h")).unwrap(), r#""/x/%%h""#);
    assert_eq!(
        path_value(Path::new(r#"/q"uote\back"#)).unwrap(),
        r#""/q\"uote\\back""#
    );
    assert!(matches!(
        path_value(Path::new("/home/${USER}/kh")),
        Err(EscapeError::EnvReference(_))
    ));
    assert!(matches!(
        path_value(Path::new("relative/kh")),
        Err(EscapeError::Relative(_))
    ));
    assert!(matches!(
        path_value(Path::new("/new\nline")),
        Err(EscapeError::Control(_))
    ));
}

#[test]
fn proxy_commands_quote_every_word_and_every_token() {
    let cmd = proxy_command(&[
        Arg::Word("/usr/bin/ec2ssh"),
        Arg::Word("proxy"),
        Arg::Word("--push-key"),
        Arg::Token(Token::User),
        Arg::Token(Token::Host),
        Arg::Token(Token::Port),
    ])
    .unwrap();
    assert_eq!(cmd, "'/usr/bin/ec2ssh' 'proxy' '--push-key' '%r' '%h' '%p'");
    assert_eq!(
        proxy_command(&[Arg::Word(r"it's a\b 100%")]).unwrap(),
        r"'it'\''s a'\\'b 100%%'"
    );
    assert!(proxy_command(&[Arg::Word("a\u{1b}b")]).is_err());
}

/// ssh itself reads the file names back unchanged (`ssh -G` prints the known-hosts
/// files after its own splitting and `%` expansion).
#[test]
fn ssh_reads_file_names_back_unchanged() {
    for path in HOSTILE {
        let value = path_value(Path::new(path)).unwrap();
        let out = Command::new("ssh")
            .args(["-G", "-F", "/dev/null", "-o"])
            .arg(format!("UserKnownHostsFile={value}"))
            .arg("i-0123456789abcdef0")
            .output()
            .expect("ssh (OpenSSH client) runs: scripts/test-deps.sh installs it");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("userknownhostsfile "))
            .unwrap();
        assert_eq!(line, path, "{value}");
    }
}

/// ssh accepts the ProxyCommand line as written (its splitter finds the quotes
/// balanced), and after its `%` expansion the shell hands the program exactly the
/// words we meant, with the tokens expanded into single words.
#[test]
fn the_shell_reads_proxy_command_words_back_unchanged() {
    let mut args = vec![Arg::Word("printf"), Arg::Word(r"%s\0")];
    args.extend(HOSTILE.iter().map(|w| Arg::Word(w)));
    args.extend([Arg::Token(Token::Host), Arg::Token(Token::Port)]);
    let cmd = proxy_command(&args).unwrap();

    let out = Command::new("ssh")
        .args(["-G", "-F", "/dev/null", "-o"])
        .arg(format!("ProxyCommand={cmd}"))
        .arg("i-0123456789abcdef0")
        .output()
        .expect("ssh runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = text
        .lines()
        .find_map(|l| l.strip_prefix("proxycommand "))
        .unwrap();
    assert_eq!(raw, cmd, "ssh keeps the line as written");

    // ssh's `%` expansion (sshconnect.c): `%%` → `%`, `%h`/`%p` → host and port; then
    // `$SHELL -c "exec …"`. A host name that needs quoting stands in for %h.
    let host = "i-0123 $(touch pwned)";
    let mut expanded = String::new();
    let mut chars = cmd.chars();
    while let Some(c) = chars.next() {
        match (c, c == '%') {
            (_, true) => match chars.next() {
                Some('%') => expanded.push('%'),
                Some('h') => expanded.push_str(host),
                Some('p') => expanded.push_str("22"),
                other => panic!("unexpected token %{other:?} in {cmd}"),
            },
            (c, false) => expanded.push(c),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {expanded}"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_terminator('\0')
        .map(str::to_string)
        .collect();
    let mut want: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    want.extend([host.to_string(), "22".to_string()]);
    assert_eq!(got, want);
    assert!(!dir.path().join("pwned").exists(), "nothing ran");
}
