//! Text that comes from AWS, the instances or the command line (names, tags, ids,
//! agent versions, error messages) reaches the terminal inert: no ESC (CSI, OSC),
//! BEL, C1 control or bidirectional override gets through, on any command's stdout
//! or stderr, while `--json` still carries the data unchanged.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::{ec2ssh, Sim};

/// Every kind of terminal control: CSI clear, OSC title and clipboard, BEL, C1 CSI
/// and NEL, DEL, bidi overrides and isolates.
const EVIL: &str =
    "\u{1b}[2J\u{1b}]0;pwned\u{7}\u{1b}]52;c;ZXZpbA==\u{7}\u{9b}31m\u{85}\u{7f}\u{202e}\u{2067}";

/// What a terminal could act on (newline and tab aside, which output uses itself).
fn controls(s: &str) -> Vec<char> {
    s.chars()
        .filter(|c| {
            (c.is_control() && *c != '\n' && *c != '\t')
                || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
        })
        .collect()
}

/// Runs `c` with no input and checks that neither of its outputs carries a control.
fn run_inert(mut c: Command, what: &str) -> Output {
    let out = c.stdin(Stdio::null()).output().unwrap();
    assert_inert(what, &out);
    out
}

fn assert_inert(what: &str, out: &Output) {
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        let found = controls(&text);
        assert!(
            found.is_empty(),
            "{what}: {stream} carries {found:?}:\n{text}"
        );
    }
}

/// A fleet whose one instance has hostile text in every field the service reports.
fn hostile_fleet(home: &Path) -> std::path::PathBuf {
    // As TOML escapes: TOML strings cannot hold most controls literally.
    let e: String = EVIL
        .chars()
        .map(|c| format!("\\u{:04X}", c as u32))
        .collect();
    let path = home.join("hostile.toml");
    std::fs::write(
        &path,
        format!(
            r#"default_region = "us-east-1"

[[instance]]
id = "i-0123456789abcdef0"
name = "evil{e}name"
region = "us-east-1"
az = "us-east-1{e}a"
state = "running"
ping = "Online"
platform_type = "Linux"
platform_name = "Amazon{e}Linux"
platform_version = "2023{e}"
agent_version = "3.3{e}"
instance_type = "t3{e}"
private_ip = "10.0.0.1{e}"
image_id = "ami-{e}"
tags = {{ "Owner" = "mallory{e}", "K{e}" = "v" }}

# A managed node (SSM only) whose id itself is hostile.
[[instance]]
id = "mi-0bad{e}"
name = "bad-id"
ping = "Online"
agent_version = "3.3.1611.0"
"#
        ),
    )
    .unwrap();
    path
}

#[test]
fn fleet_text_is_inert_in_every_command() {
    let home = tempfile::tempdir().unwrap();
    let fleet = hostile_fleet(home.path());
    let sim = Sim::start(home.path(), &["--fleet", fleet.to_str().unwrap()]);
    let run = |args: &[&str]| {
        let mut c = sim.ec2ssh(home.path());
        c.args(args);
        run_inert(c, &args.join(" "))
    };
    let out = run(&["--no-cache", "list"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("evil␛[2J"), "shown, inert: {table}");
    run(&["list", "-q"]);
    run(&["status"]);
    run(&["doctor", "evilname"]);
    run(&["doctor", "bad-id"]);
    run(&["ssh-config", "--aliases"]);
    run(&["forget", &format!("mi-0bad{EVIL}")]);

    // JSON keeps the data: the same bytes come back once parsed.
    for args in [
        &["list", "--json"][..],
        &["status", "--json"],
        &["doctor", "evilname", "--json"],
    ] {
        let out = run(args);
        let doc: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert!(
            !controls(&doc_strings(&doc)).is_empty(),
            "{args:?} kept the data: {doc}"
        );
    }
    let out = run(&["list", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = doc["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert!(
        names.contains(&format!("evil{EVIL}name").as_str()),
        "{names:?}"
    );
}

/// All string values of a JSON document, concatenated.
fn doc_strings(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a.iter().map(doc_strings).collect(),
        serde_json::Value::Object(o) => o.values().map(doc_strings).collect(),
        _ => String::new(),
    }
}

/// An endpoint that answers every call with an error whose code and message are
/// hostile (a compromised proxy, a malicious AWS_ENDPOINT_URL).
fn hostile_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut json, mut length) = (false, 0usize);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let lower = line.to_ascii_lowercase();
                    json |= lower.starts_with("x-amz-target:");
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let (status, kind, answer) = if json {
                    let v = serde_json::json!({
                        "__type": format!("AccessDeniedException{EVIL}"),
                        "message": format!("denied{EVIL}because"),
                    });
                    (
                        "400 Bad Request",
                        "application/x-amz-json-1.1",
                        v.to_string(),
                    )
                } else {
                    let refs: String = EVIL
                        .chars()
                        .map(|c| {
                            if c.is_control() {
                                format!("&#x{:X};", c as u32)
                            } else {
                                c.to_string()
                            }
                        })
                        .collect();
                    (
                        "403 Forbidden",
                        "text/xml",
                        format!(
                            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>denied{refs}because</Message></Error></Errors><RequestID>r</RequestID></Response>"
                        ),
                    )
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            });
        }
    });
    format!("http://{addr}")
}

#[test]
fn service_error_text_is_inert() {
    let home = tempfile::tempdir().unwrap();
    let endpoint = hostile_endpoint();
    let run = |args: &[&str]| {
        let mut c = ec2ssh(home.path());
        c.env("AWS_ENDPOINT_URL", &endpoint)
            .args(["--no-cache", "--region", "us-east-1"])
            .args(args);
        run_inert(c, &args.join(" "))
    };
    let out = run(&["list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("denied␛[2J"),
        "the message is shown, inert: {err}"
    );
    run(&["list", "--json"]);
    run(&["status"]);
    run(&["doctor"]);
    run(&["ssh", "i-0123456789abcdef0", "--", "true"]);
    run(&["proxy", "i-0123456789abcdef0", "22"]);
    run(&[
        "proxy",
        "i-0123456789abcdef0",
        "22",
        "--push-key",
        "ec2-user",
    ]);
}
