//! Several AWS accounts in one run (issue 14): profiles from the AWS config files,
//! each listing with its own key pair against a simulator of two accounts (dev and
//! prod), and every action on a row taking that row's account. The simulator shows
//! each account only its own machines, so an action signed with the wrong account's
//! key fails: each success below proves the right credentials were used. The
//! hermetic environment's AWS_ACCESS_KEY_ID (which the simulator does not know) is
//! left set throughout: a named profile must not use it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::{ec2ssh, hermetic, Sim};
use crate::rig::{assert_no_active_sessions, user_dir, Sshd, USER};

const DEV: &str = "111111111111";
const PROD: &str = "222222222222";
const DEV_WEB: &str = "i-0dddd000000000001";
const PROD_WEB: &str = "i-0eeee000000000001";
/// The same id in both accounts.
const TWIN: &str = "i-0ffff000000000001";

struct Accounts {
    dir: tempfile::TempDir,
    sim: Sim,
    /// Each account's sshd home (where pushes land), dev then prod.
    homes: [PathBuf; 2],
    _sshd: [Sshd; 2],
}

fn instance(id: &str, name: &str, account: &str, sshd: &Sshd) -> String {
    format!(
        "\n[[instance]]\nid = \"{id}\"\nname = \"{name}\"\naccount = \"{account}\"\nstate = \"running\"\n\
         ping = \"Online\"\nplatform_type = \"Linux\"\nplatform_name = \"Amazon Linux\"\n\
         agent_version = \"3.3.1611.0\"\ntarget = \"{}\"\nkeys_dir = \"{}\"\n",
        sshd.addr(),
        sshd.keys_dir().display()
    )
}

/// Two accounts, an sshd each; `prod_deny`: IAM actions prod's identity is denied.
fn accounts(prod_deny: &[&str]) -> Accounts {
    let dir = tempfile::tempdir().unwrap();
    let homes = [
        user_dir(dir.path(), "home-dev"),
        user_dir(dir.path(), "home-prod"),
    ];
    let sshd = [
        Sshd::start_named(dir.path(), "sshd-dev", Some(&homes[0])),
        Sshd::start_named(dir.path(), "sshd-prod", Some(&homes[1])),
    ];
    let deny: Vec<String> = prod_deny.iter().map(|a| format!("{a:?}")).collect();
    let mut toml = format!(
        "default_region = \"us-east-1\"\n\n[[account]]\nid = \"{DEV}\"\nname = \"dev\"\n\n\
         [[account]]\nid = \"{PROD}\"\nname = \"prod\"\ndeny = [{}]\n",
        deny.join(", ")
    );
    toml.push_str(&instance(DEV_WEB, "dev-web", DEV, &sshd[0]));
    toml.push_str(&instance(PROD_WEB, "prod-web", PROD, &sshd[1]));
    toml.push_str(&instance(TWIN, "twin", DEV, &sshd[0]));
    toml.push_str(&instance(TWIN, "twin", PROD, &sshd[1]));
    let fleet = dir.path().join("fleet.toml");
    std::fs::write(&fleet, toml).unwrap();
    let sim = Sim::start_random(dir.path(), &["--fleet", fleet.to_str().unwrap()]);
    assert_eq!(sim.accounts.len(), 2, "the summary lists both accounts");
    assert_eq!(sim.accounts[0].id, DEV);
    assert_eq!(
        sim.accounts[0].access_key_id, sim.access_key_id,
        "the first account's key is also at the top"
    );
    let a = Accounts {
        dir,
        sim,
        homes,
        _sshd: sshd,
    };
    a.write_aws_files("");
    a
}

impl Accounts {
    fn home(&self) -> &Path {
        self.dir.path()
    }

    /// The AWS config and credentials files the hermetic environment names: profiles
    /// dev and prod with their account's key pair, a region-only profile and a
    /// token-only SSO profile (neither gives credentials), plus `extra` config.
    fn write_aws_files(&self, extra: &str) {
        let (dev, prod) = (&self.sim.accounts[0], &self.sim.accounts[1]);
        std::fs::write(
            self.home().join("aws-config"),
            format!(
                "[profile dev]\nregion = us-east-1\n\n[profile prod]\nregion = us-east-1\n\n\
                 [profile regiononly]\nregion = us-east-1\n\n[profile tokenonly]\nsso_session = corp\n\n\
                 [sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-1\n{extra}"
            ),
        )
        .unwrap();
        std::fs::write(
            self.home().join("aws-credentials"),
            format!(
                "[dev]\naws_access_key_id = {}\naws_secret_access_key = {}\n\n\
                 [prod]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                dev.access_key_id,
                dev.secret_access_key,
                prod.access_key_id,
                prod.secret_access_key
            ),
        )
        .unwrap();
    }

    fn env(&self, c: &mut Command) {
        let d = self.home();
        c.env("AWS_ENDPOINT_URL", &self.sim.endpoint)
            .env("XDG_RUNTIME_DIR", d.join("run"))
            .env("XDG_DATA_HOME", d.join("data"))
            .env("XDG_STATE_HOME", d.join("state"))
            .stdin(Stdio::null());
    }

    /// `ec2ssh ARGS` with this simulator and the home's AWS files (no --region: each
    /// profile's own).
    fn ec2ssh(&self, args: &[&str]) -> Output {
        let mut c = ec2ssh(self.home());
        self.env(&mut c);
        c.args(args).output().unwrap()
    }

    fn list(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["list", "--json"]);
        let out = self.ec2ssh(&all);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// (id, profile, account id) of every listed row, sorted.
fn rows(doc: &serde_json::Value) -> Vec<(String, String, String)> {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("null").to_string();
    let mut out: Vec<_> = doc["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (s(&i["id"]), s(&i["profile"]), s(&i["account_id"])))
        .collect();
    out.sort();
    out
}

fn row(id: &str, profile: &str, account: &str) -> (String, String, String) {
    (id.into(), profile.into(), account.into())
}

#[test]
fn two_profiles_list_together_each_row_with_its_account() {
    let a = accounts(&[]);
    let both = vec![
        row(DEV_WEB, "dev", DEV),
        row(PROD_WEB, "prod", PROD),
        row(TWIN, "dev", DEV),
        row(TWIN, "prod", PROD),
    ];
    let doc = a.list(&["--profile", "dev,prod"]);
    assert_eq!(rows(&doc), both);
    assert_eq!(doc["warnings"], serde_json::json!([]));
    // The config file's `profiles`, and every profile that has credentials: the same.
    let config = a.home().join("ec2ssh.toml");
    std::fs::write(&config, "profiles = [\"dev\", \"prod\"]\n").unwrap();
    assert_eq!(rows(&a.list(&["--config", config.to_str().unwrap()])), both);
    assert_eq!(rows(&a.list(&["--all-profiles"])), both);
    // One profile: its own rows only.
    assert_eq!(
        rows(&a.list(&["--profile", "prod"])),
        vec![row(PROD_WEB, "prod", PROD), row(TWIN, "prod", PROD)]
    );
    // The table gains an ACCOUNT column.
    let out = a.ec2ssh(&["--profile", "dev,prod", "list", "--color", "never"]);
    let table = text(&out.stdout);
    assert!(
        table.lines().next().unwrap().ends_with("ACCOUNT"),
        "{table}"
    );
    assert!(table.contains(&format!("prod ({PROD})")), "{table}");
    // doctor checks each profile's credentials.
    let out = a.ec2ssh(&["--profile", "dev,prod", "doctor"]);
    let report = text(&out.stdout);
    for (profile, account) in [("dev", DEV), ("prod", PROD)] {
        let line = report
            .lines()
            .find(|l| l.contains(&format!("credentials [{profile}]")))
            .unwrap_or_else(|| panic!("{report}"));
        assert!(line.contains(&format!("(account {account})")), "{line}");
    }
    // A profile that is in neither file is named, before any call.
    let out = a.ec2ssh(&["--profile", "dev,nope", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no AWS profile named nope"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_expired_sso_profile_warns_once_and_the_others_still_list() {
    let a = accounts(&["ec2:DescribeInstances", "ssm:DescribeInstanceInformation"]);
    a.write_aws_files(
        "\n[profile stage]\nsso_session = corp\nsso_account_id = 333333333333\n\
         sso_role_name = Admin\nregion = us-east-1\n",
    );
    // The SDK's SSO cache, under HOME, named by the SHA-1 of the session's name.
    let cache = a.home().join(".aws/sso/cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(
        cache.join("ee0bfd2552fbd840c02cc48b6e823320543c450f.json"),
        r#"{"accessToken":"old","expiresAt":"2020-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let doc = a.list(&["--profile", "dev,stage,prod"]);
    assert_eq!(
        rows(&doc),
        vec![row(DEV_WEB, "dev", DEV), row(TWIN, "dev", DEV)]
    );
    let warnings = doc["warnings"].as_array().unwrap();
    let of = |p: &str| -> Vec<&serde_json::Value> {
        warnings.iter().filter(|w| w["profile"] == p).collect()
    };
    let stage = of("stage");
    assert_eq!(stage.len(), 1, "one warning for the profile: {warnings:#?}");
    assert_eq!(stage[0]["kind"], "expired_credentials");
    assert_eq!(
        stage[0]["fix"],
        "log in again: `aws sso login --sso-session corp`, then press Ctrl-r (or run again)"
    );
    // A denied action names the action and the profile.
    let prod = of("prod");
    assert_eq!(prod.len(), 2, "{warnings:#?}");
    for w in prod {
        let summary = w["summary"].as_str().unwrap();
        assert!(summary.starts_with("profile prod: "), "{summary}");
        assert!(summary.contains(" was denied in us-east-1"), "{summary}");
        assert!(w["fix"].as_str().unwrap().contains("profile prod"), "{w}");
    }
    assert!(of("dev").is_empty());
    // doctor says the same of the profile's credentials.
    let out = a.ec2ssh(&["--profile", "dev,stage", "doctor"]);
    let report = text(&out.stdout);
    assert!(
        report.contains("the credentials of profile stage have expired"),
        "{report}"
    );
    assert!(
        report.contains("aws sso login --sso-session corp"),
        "{report}"
    );
    // On stderr, the same: one line per failure with its fix.
    let out = a.ec2ssh(&["--profile", "dev,stage", "list", "-q"]);
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.matches("warning: profile stage:").count(), 1, "{err}");
    assert!(
        err.contains("fix: log in again: `aws sso login --sso-session corp`"),
        "{err}"
    );
}

#[test]
fn connecting_and_pushing_use_each_rows_account() {
    let a = accounts(&[]);
    // By name, the row's profile acts: prod's key pushes and prod's session carries
    // ssh (dev's key would find no such instance).
    for target in ["prod-web", "dev-web"] {
        let out = a.ec2ssh(&[
            "--profile",
            "dev,prod",
            "ssh",
            target,
            "--",
            "-o",
            "BatchMode=yes",
            "echo connected",
        ]);
        assert_eq!(
            (text(&out.stdout).trim(), out.status.code()),
            ("connected", Some(0)),
            "{target}: {}",
            text(&out.stderr)
        );
    }
    // Marked rows of both accounts in one push: each copy lands on its own host.
    let payload = a.home().join("payload.txt");
    std::fs::write(&payload, "both accounts\n").unwrap();
    let out = a.ec2ssh(&[
        "--profile",
        "dev,prod",
        "scp",
        payload.to_str().unwrap(),
        ":",
        "-t",
        "dev-web",
        "-t",
        "prod-web",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for home in &a.homes {
        assert_eq!(
            std::fs::read_to_string(home.join("payload.txt")).unwrap(),
            "both accounts\n"
        );
    }
    assert_no_active_sessions(&a.sim);
}

#[test]
fn plain_ssh_through_the_generated_config_finds_each_ids_account() {
    let a = accounts(&[]);
    let out = a.ec2ssh(&["--profile", "dev,prod", "ssh-config", "--user", USER]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = text(&out.stdout);
    assert!(
        config.contains("'--profile' 'dev,prod'") || config.contains("--profile dev,prod"),
        "the profiles the user named: {config}"
    );
    let path = a.home().join("ssh_config");
    std::fs::write(&path, &config).unwrap();
    // No cache yet: the proxy asks each profile which one manages the id, and pushes
    // the key with that account's credentials.
    for id in [PROD_WEB, DEV_WEB] {
        let mut ssh = Command::new("ssh");
        hermetic(&mut ssh, a.home());
        a.env(&mut ssh);
        let out = ssh
            .args(["-F", path.to_str().unwrap(), "-o", "BatchMode=yes", id])
            .arg("echo connected")
            .output()
            .unwrap();
        assert_eq!(
            (text(&out.stdout).trim(), out.status.code()),
            ("connected", Some(0)),
            "{id}: {}",
            text(&out.stderr)
        );
    }
    assert_no_active_sessions(&a.sim);
}

#[test]
fn an_id_in_two_accounts_is_refused_naming_both() {
    let a = accounts(&[]);
    let out = a.ec2ssh(&["--profile", "dev,prod", "proxy", TWIN, "22"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{TWIN} is in more than one account: profile dev in us-east-1; profile prod in us-east-1"
        )) || err.contains(&format!("profile dev (account {DEV}) in us-east-1; profile prod (account {PROD}) in us-east-1")),
        "{err}"
    );
    assert!(err.contains("fix: name the one you mean"), "{err}");
    // From the cache (written by a listing) the same, with the accounts named.
    a.list(&["--profile", "dev,prod"]);
    let err = text(
        &a.ec2ssh(&["--profile", "dev,prod", "proxy", TWIN, "22"])
            .stderr,
    );
    assert!(
        err.contains(&format!(
            "profile dev (account {DEV}) in us-east-1; profile prod (account {PROD}) in us-east-1"
        )),
        "{err}"
    );
    assert_no_active_sessions(&a.sim);
}

#[test]
fn the_simulator_refuses_a_request_signed_for_the_wrong_account() {
    let a = accounts(&[]);
    let key = |n: usize| {
        let k = &a.sim.accounts[n];
        (k.access_key_id.as_str(), k.secret_access_key.as_str())
    };
    let call = |n: usize, op: &str, body: serde_json::Value| {
        let (service, prefix) = match op {
            "SendSSHPublicKey" => ("ec2-instance-connect", "AWSEC2InstanceConnectService"),
            _ => ("ssm", "AmazonSSM"),
        };
        let (status, body) = a.sim.signed_call(
            key(n),
            std::time::SystemTime::now(),
            service,
            Some(&format!("{prefix}.{op}")),
            &body.to_string(),
        );
        (
            status,
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        )
    };
    // dev's key on prod's instance: Session Manager has no agent by that id for dev,
    // Instance Connect no such instance.
    let start = serde_json::json!({"Target": PROD_WEB, "DocumentName": "AWS-StartSSHSession",
        "Parameters": {"portNumber": ["22"]}});
    let (status, body) = call(0, "StartSession", start.clone());
    assert!(status.contains(" 400 "), "{status}");
    assert_eq!(body["__type"], "TargetNotConnected");
    let (_, pubkey) = crate::rig::client_key(a.home());
    let push = serde_json::json!({"InstanceId": PROD_WEB, "InstanceOSUser": USER,
        "SSHPublicKey": pubkey});
    let (status, body) = call(0, "SendSSHPublicKey", push.clone());
    assert!(status.contains(" 400 "), "{status}");
    assert_eq!(body["__type"], "EC2InstanceNotFoundException");
    // dev sees neither prod's machine nor its session.
    let (_, info) = call(
        0,
        "DescribeInstanceInformation",
        serde_json::json!({
        "Filters": [{"Key": "InstanceIds", "Values": [PROD_WEB]}]}),
    );
    assert_eq!(info["InstanceInformationList"], serde_json::json!([]));
    // prod's own key: accepted.
    let (status, started) = call(1, "StartSession", start);
    assert!(status.contains(" 200 "), "{status} {started}");
    let session = started["SessionId"].as_str().unwrap().to_string();
    let (_, listed) = call(
        0,
        "DescribeSessions",
        serde_json::json!({"State": "Active"}),
    );
    assert_eq!(
        listed["Sessions"],
        serde_json::json!([]),
        "dev sees no prod session"
    );
    let (status, _) = call(
        0,
        "ResumeSession",
        serde_json::json!({"SessionId": session}),
    );
    assert!(status.contains(" 400 "), "{status}");
    let (status, _) = call(1, "SendSSHPublicKey", push);
    assert!(status.contains(" 200 "), "{status}");
    call(
        1,
        "TerminateSession",
        serde_json::json!({"SessionId": session}),
    );
    assert_no_active_sessions(&a.sim);
}

#[test]
fn the_demo_shows_two_accounts_in_one_picker() {
    let fleet = ec2ssh::sim::FleetFile::demo().demo_accounts();
    let prod: Vec<&str> = fleet
        .instances
        .iter()
        .filter(|i| fleet.account_of(i) == PROD)
        .map(|i| i.id.as_str())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let t = crate::common::picker_in_tmux(dir.path(), &[], "demo --print");
    t.wait_screen("both accounts in the ACCOUNT column", |s| {
        s.contains("ACCOUNT") && s.contains("dev (1") && s.contains("prod (2")
    });
    // The account is filterable like any column.
    t.type_text(PROD);
    t.wait_screen("only prod's rows", |s| !s.contains("dev (1"));
    t.send(&["Enter"]);
    let (out, code) = t.finished(dir.path());
    assert_eq!(code, 0);
    assert!(
        prod.contains(&out.trim()),
        "{out:?} is one of prod's: {prod:?}"
    );
}
