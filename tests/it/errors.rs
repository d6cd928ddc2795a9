//! What a user reads when AWS cannot be used: no credentials, and endpoints that
//! cannot be reached for each reason a network gives (a closed port, a name that does
//! not resolve, a TLS endpoint that speaks something else, a server that never
//! answers). One failure is one message, in words, never a fragment of a debug dump.

use std::io::Write;
use std::net::TcpListener;
use std::process::Output;

use crate::common::ec2ssh;

fn list(home: &std::path::Path, env: &[(&str, &str)], no_credentials: bool) -> Output {
    let mut c = ec2ssh(home);
    c.args(["list", "--region", "us-east-1"])
        .env("AWS_MAX_ATTEMPTS", "1")
        .envs(env.iter().copied());
    if no_credentials {
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
    }
    c.output().unwrap()
}

/// The `error:` lines of stderr, each checked for debug-dump fragments.
fn errors(out: &Output) -> Vec<String> {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for bad in ["}", "{", "Unknown", "Custom", "Os ", "kind:"] {
        assert!(!stderr.contains(bad), "{bad:?} in {stderr}");
    }
    let lines: Vec<String> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .map(str::to_string)
        .collect();
    let fixes = stderr.lines().filter(|l| l.starts_with("  fix: ")).count();
    assert_eq!(fixes, lines.len(), "one fix per error: {stderr}");
    lines
}

#[test]
fn without_credentials_list_says_so_once() {
    let home = tempfile::tempdir().unwrap();
    let out = list(home.path(), &[], true);
    let lines = errors(&out);
    assert_eq!(lines, ["error: no AWS credentials were found"], "{lines:?}");
}

/// A listener on a free loopback port and what it does with connections.
fn serve(behaviour: fn(std::net::TcpStream)) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || behaviour(s));
        }
    });
    port
}

#[test]
fn unreachable_endpoints_are_named_in_words() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Plain HTTP where TLS is expected.
    let plain = serve(|mut s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        std::thread::sleep(std::time::Duration::from_secs(5));
    });
    // Accepts, reads, never answers.
    let silent = serve(|s| {
        std::thread::sleep(std::time::Duration::from_secs(30));
        drop(s);
    });
    let cases = [
        (
            format!("http://127.0.0.1:{closed}"),
            format!("connection refused by 127.0.0.1:{closed}"),
        ),
        (
            "http://nonexistent.invalid".to_string(),
            "name resolution failed for nonexistent.invalid".to_string(),
        ),
        (
            format!("https://127.0.0.1:{plain}"),
            format!("TLS error with 127.0.0.1:{plain}: "),
        ),
        (
            format!("http://127.0.0.1:{silent}"),
            format!("timed out waiting for 127.0.0.1:{silent}"),
        ),
    ];
    let home = tempfile::tempdir().unwrap();
    for (url, reason) in cases {
        let env = [
            ("AWS_ENDPOINT_URL", url.as_str()),
            ("EC2SSH_AWS_TIMEOUT", "1s"),
        ];
        let lines = errors(&list(home.path(), &env, false));
        // Both services fail for the same reason: one line names both calls.
        assert_eq!(lines.len(), 1, "{url}: {lines:?}");
        let line = &lines[0];
        assert!(
            line.starts_with(
                "error: could not reach AWS for ec2:DescribeInstances, ssm:DescribeInstanceInformation in us-east-1: "
            ),
            "{url}: {line}"
        );
        assert!(line.contains(&reason), "{url}: {line}");
    }
}
