//! Shared fixtures: the built binary, free ports, waiting with deadlines, a moto
//! server, the simulator as a child process, tmux sessions and an HTTP proxy
//! (tinyproxy). Every fixture binds 127.0.0.1 only and cleans up on drop.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ec2ssh"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A command for the ec2ssh binary with a hermetic environment: no user AWS
/// config, no IMDS, private XDG dirs, fixed demo credentials.
pub fn ec2ssh(home: &Path) -> Command {
    let mut c = Command::new(bin());
    hermetic(&mut c, home);
    c
}

pub fn hermetic(c: &mut Command, home: &Path) {
    for (k, _) in std::env::vars() {
        let proxy = k.to_ascii_lowercase().ends_with("_proxy");
        if k.starts_with("AWS_")
            || k.starts_with("EC2SSH_")
            || proxy
            || k == "NO_COLOR"
            || k == "RUST_LOG"
        {
            c.env_remove(k);
        }
    }
    c.env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("AWS_CONFIG_FILE", home.join("aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("aws-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_MAX_ATTEMPTS", "2");
}

/// A child process killed (and reaped) on drop.
pub struct Guarded(pub Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Fails with the install hint when a tool the suite needs is missing.
pub fn require(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{what} not found at {}: run scripts/test-deps.sh first",
        path.display()
    );
}

/// A moto server on a free loopback port.
pub struct Moto {
    pub endpoint: String,
    _child: Guarded,
}

impl Moto {
    pub fn start() -> Moto {
        let server = repo().join(".venv/bin/moto_server");
        require(&server, "moto_server");
        let port = free_port();
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let child = Guarded(child);
        wait_for("moto to listen", Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            _child: child,
        }
    }

    /// Runs a Python snippet against this moto with boto3 (`ENDPOINT` is set).
    pub fn python(&self, code: &str) -> String {
        let out = Command::new(repo().join(".venv/bin/python"))
            .arg("-c")
            .arg(code)
            .env("ENDPOINT", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "x")
            .env("AWS_SECRET_ACCESS_KEY", "x")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// `ec2ssh sim` as a child process, with the summary it printed.
pub struct Sim {
    pub endpoint: String,
    pub regions: Vec<String>,
    pub instances: usize,
    /// The key pair the simulator accepts (the hermetic one, AKIDTEST, unless started
    /// with `start_random`).
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Every account of the simulator with its key pair, the first one first.
    pub accounts: Vec<SimAccount>,
    _child: Guarded,
}

/// One simulated account, as `ec2ssh sim` prints it.
#[derive(Debug, Clone)]
pub struct SimAccount {
    pub id: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Sim {
    /// A simulator that accepts the hermetic environment's key pair.
    pub fn start(home: &Path, args: &[&str]) -> Sim {
        let mut all = vec!["--credentials-from-env"];
        all.extend_from_slice(args);
        Sim::start_random(home, &all)
    }

    /// A simulator as `ec2ssh sim` runs by default: with a fresh random key pair.
    pub fn start_random(home: &Path, args: &[&str]) -> Sim {
        let mut child = ec2ssh(home)
            .arg("sim")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ec2ssh sim");
        let stdout = child.stdout.take().unwrap();
        let child = Guarded(child);
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("sim summary line");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("sim printed {line:?}: {e}"));
        Sim {
            endpoint: v["endpoint"].as_str().unwrap().to_string(),
            regions: v["regions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
                .collect(),
            instances: v["instances"].as_u64().unwrap() as usize,
            access_key_id: v["access_key_id"].as_str().unwrap().to_string(),
            secret_access_key: v["secret_access_key"].as_str().unwrap().to_string(),
            accounts: v["accounts"]
                .as_array()
                .expect("the summary lists the accounts")
                .iter()
                .map(|a| SimAccount {
                    id: a["id"].as_str().unwrap().to_string(),
                    access_key_id: a["access_key_id"].as_str().unwrap().to_string(),
                    secret_access_key: a["secret_access_key"].as_str().unwrap().to_string(),
                })
                .collect(),
            _child: child,
        }
    }

    /// The data channels' counters (`GET /sim/stats`): websockets opened and cut,
    /// faults applied, the agent's modes, …
    pub fn stats(&self) -> serde_json::Value {
        use std::io::{Read, Write};
        let host = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(host).expect("the simulator listens");
        write!(
            stream,
            "GET /sim/stats HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, json) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{response}");
        serde_json::from_str(json).unwrap_or_else(|e| panic!("stats: {e}: {json}"))
    }

    /// One raw HTTP request to the simulator, signed with `key` (id, secret) at `time`
    /// the way the SDKs sign: `(status line, body)`.
    pub fn signed_call(
        &self,
        key: (&str, &str),
        time: std::time::SystemTime,
        service: &str,
        target: Option<&str>,
        body: &str,
    ) -> (String, String) {
        use std::io::{Read, Write};
        let host = self.endpoint.trim_start_matches("http://");
        let mut signed_headers = vec![("host", host)];
        if let Some(t) = target {
            signed_headers.push(("x-amz-target", t));
        }
        let signed = ec2ssh::sim::auth::sign_headers(
            &ec2ssh::aws::AccessKey::new(key.0, key.1),
            "us-east-1",
            service,
            "POST",
            &format!("{}/", self.endpoint),
            &signed_headers,
            body.as_bytes(),
            time,
        )
        .unwrap();
        let mut request = format!("POST / HTTP/1.1\r\nHost: {host}\r\n");
        match target {
            Some(t) => request.push_str(&format!(
                "X-Amz-Target: {t}\r\nContent-Type: application/x-amz-json-1.1\r\n"
            )),
            None => request
                .push_str("Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"),
        }
        for (k, v) in signed {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ));
        let mut stream = TcpStream::connect(host).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.lines().next().unwrap_or_default().to_string();
        (status, body.to_string())
    }

    /// A Session Manager call signed with the simulator's own key: `(status line, JSON)`.
    pub fn ssm(&self, op: &str, body: &serde_json::Value) -> (String, serde_json::Value) {
        let (status, text) = self.signed_call(
            (&self.access_key_id, &self.secret_access_key),
            std::time::SystemTime::now(),
            "ssm",
            Some(&format!("AmazonSSM.{op}")),
            &body.to_string(),
        );
        let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{op}: {e}: {text}"));
        (status, json)
    }

    /// `ec2ssh` pointed at this simulator for all regions.
    pub fn ec2ssh(&self, home: &Path) -> Command {
        let mut c = ec2ssh(home);
        c.env("AWS_ENDPOINT_URL", &self.endpoint)
            .arg("--region")
            .arg(self.regions.join(","));
        c
    }
}

/// A detached tmux session on a private server socket, killed on drop.
pub struct Tmux {
    socket: PathBuf,
    pub name: String,
}

impl Tmux {
    /// Starts a fresh tmux server whose environment (inherited by `command`) is the
    /// hermetic one for `home` plus `env`.
    pub fn start(home: &Path, env: &[(&str, &str)], cols: u16, rows: u16, command: &str) -> Tmux {
        let tmux = which("tmux").expect("tmux not found: run scripts/test-deps.sh first");
        let t = Tmux {
            socket: home.join("tmux.sock"),
            name: "t".into(),
        };
        let mut c = Command::new(tmux);
        hermetic(&mut c, home);
        c.envs(env.iter().copied()).env("TERM", "xterm-256color");
        let status = c
            .args(["-S"])
            .arg(&t.socket)
            .args(["-f", "/dev/null", "new-session", "-d", "-s", &t.name])
            .args(["-x", &cols.to_string(), "-y", &rows.to_string()])
            .arg(command)
            .status()
            .expect("run tmux");
        assert!(status.success(), "tmux new-session failed");
        t
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket);
        c
    }

    pub fn send(&self, keys: &[&str]) {
        let ok = self
            .cmd()
            .args(["send-keys", "-t", &self.name])
            .args(keys)
            .status()
            .expect("tmux send-keys")
            .success();
        assert!(ok, "send-keys {keys:?}");
    }

    /// Types literal text.
    pub fn type_text(&self, text: &str) {
        let ok = self
            .cmd()
            .args(["send-keys", "-l", "-t", &self.name, text])
            .status()
            .expect("tmux send-keys")
            .success();
        assert!(ok);
    }

    pub fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Resizes the window (and so its only pane) to `cols` × `rows`.
    pub fn resize(&self, cols: u16, rows: u16) {
        let ok = self
            .cmd()
            .args(["resize-window", "-t", &self.name])
            .args(["-x", &cols.to_string(), "-y", &rows.to_string()])
            .status()
            .expect("tmux resize-window")
            .success();
        assert!(ok, "resize-window {cols}x{rows}");
    }

    /// The process id of the pane's command.
    pub fn pane_pid(&self) -> u32 {
        let out = self
            .cmd()
            .args(["display-message", "-p", "-t", &self.name, "#{pane_pid}"])
            .output()
            .expect("tmux display-message");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a pane pid")
    }

    /// The pane's size as `stty size` prints it: "ROWS COLS".
    pub fn pane_size(&self) -> String {
        let out = self
            .cmd()
            .args(["display-message", "-p", "-t", &self.name])
            .arg("#{pane_height} #{pane_width}")
            .output()
            .expect("tmux display-message");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn wait_screen(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let found = (|| {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                last = self.screen();
                if f(&last) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        })();
        assert!(found, "timed out waiting for {what}; screen was:\n{last}");
        last
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Runs `ec2ssh ARGS` in tmux inside a wrapper that records the tty mode before and
/// after, the exit code, and (with `capture_stdout`) what it printed on stdout.
pub fn picker_in_tmux(dir: &Path, env: &[(&str, &str)], args: &str) -> Tmux {
    in_tmux(dir, env, args, true)
}

/// Like `picker_in_tmux`, with stdout left on the terminal (for ssh sessions).
pub fn in_tmux(dir: &Path, env: &[(&str, &str)], args: &str, capture_stdout: bool) -> Tmux {
    let script = dir.join("run.sh");
    let redirect = if capture_stdout {
        format!(" > {}/out", dir.display())
    } else {
        String::new()
    };
    std::fs::write(
        &script,
        format!(
            "stty -g > {d}/before\n{bin} {args}{redirect}\necho $? > {d}/code\nstty -g > {d}/after\nsleep 60\n",
            d = dir.display(),
            bin = bin().display(),
        ),
    )
    .unwrap();
    Tmux::start(dir, env, 120, 30, &format!("sh {}", script.display()))
}

impl Tmux {
    /// Waits for the command started by `in_tmux` to exit; checks the terminal modes
    /// are as before it ran; returns its stdout (if captured) and exit code. On a
    /// timeout the panic shows the screen and what is still running.
    pub fn finished(&self, dir: &Path) -> (String, i32) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let code = loop {
            let code = std::fs::read_to_string(dir.join("code")).ok();
            if let Some(code) = code.filter(|s| s.ends_with('\n')) {
                break code;
            }
            if Instant::now() > deadline {
                let ps = Command::new("ps")
                    .args(["-eLo", "pid,tid,stat,wchan:24,args"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                let ours: Vec<&str> = ps.lines().filter(|l| l.contains("ec2ssh")).collect();
                panic!(
                    "timed out after 30s waiting for the command to exit; screen:\n{}\nprocesses:\n{}",
                    self.screen(),
                    ours.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        wait_for("stty after", Duration::from_secs(10), || {
            std::fs::read_to_string(dir.join("after"))
                .ok()
                .filter(|s| s.ends_with('\n'))
        });
        let stty = |f| std::fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(stty("before"), stty("after"), "terminal modes restored");
        (
            std::fs::read_to_string(dir.join("out")).unwrap_or_default(),
            code.trim().parse().unwrap(),
        )
    }
}

/// tinyproxy (Debian's tinyproxy-bin) on a free loopback port with its own config and
/// log under `dir`, killed on drop. `extra` lines go into its config, e.g.
/// `BasicAuth USER PASSWORD` or `ConnectPort 443` (without one, CONNECT may reach any port).
pub struct Tinyproxy {
    pub port: u16,
    log: PathBuf,
    _child: Guarded,
}

impl Tinyproxy {
    pub fn start(dir: &Path, extra: &[&str]) -> Tinyproxy {
        let program = which("tinyproxy")
            .unwrap_or_else(|| panic!("tinyproxy not found: run scripts/test-deps.sh first"));
        let port = free_port();
        let dir = dir.join(format!("tinyproxy-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("tinyproxy.log");
        let config = dir.join("tinyproxy.conf");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 600\nMaxClients 100\n\
                 LogFile \"{}\"\nLogLevel Info\nAllow 127.0.0.1\n{}\n",
                log.display(),
                extra.join("\n")
            ),
        )
        .unwrap();
        let child = Command::new(program)
            .arg("-d")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tinyproxy");
        let child = Guarded(child);
        wait_for("tinyproxy to listen", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Tinyproxy {
            port,
            log,
            _child: child,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `METHOD TARGET` of every request it was asked to proxy, in order, from its log
    /// (`Request (file descriptor N): CONNECT 127.0.0.1:40000 HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| l.split_once("): ").filter(|_| l.contains(" Request (")))
            .map(|(_, r)| {
                r.trim_end_matches(" HTTP/1.1")
                    .trim_end_matches(" HTTP/1.0")
                    .to_string()
            })
            .collect()
    }
}

/// The processes descended from `root` (not `root` itself), read from /proc.
pub fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // pid (comm) state ppid …; comm may hold spaces and parentheses.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (child, _) in parents.iter().filter(|(_, pp)| *pp == p) {
            out.push(*child);
            frontier.push(*child);
        }
    }
    out
}

/// A process's argv (empty once it is gone).
pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// One variable of a process's environment.
pub fn environ(pid: u32, name: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|c| *c == 0).find_map(|kv| {
        let kv = String::from_utf8_lossy(kv);
        kv.strip_prefix(&format!("{name}=")).map(str::to_string)
    })
}
