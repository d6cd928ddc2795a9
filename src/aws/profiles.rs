//! Which AWS profiles a run covers (`--profile a,b`, the config's `profiles`,
//! `--all-profiles`), read from the AWS config and credentials files the way the SDK
//! reads them, and what each one needs to say about itself: its region, its account,
//! and the command that logs it in when its SSO token has expired. Pure but for
//! [`read`].

use std::collections::BTreeSet;

use aws_config::profile::{Profile, ProfileSet};

/// Which profiles the user asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Selection {
    /// None named: the SDK's standard chain (AWS_PROFILE, env keys, IMDS…).
    #[default]
    Chain,
    /// These profiles, in this order (duplicates dropped).
    Named(Vec<String>),
    /// Every profile of the AWS config files that can give credentials.
    All,
}

impl Selection {
    /// From `--profile a,b` / the config's `profile` and `profiles`, and `--all-profiles`.
    pub fn new(names: &[String], all: bool) -> Selection {
        if all {
            return Selection::All;
        }
        let mut seen = BTreeSet::new();
        let names: Vec<String> = names
            .iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty() && seen.insert(n.clone()))
            .collect();
        if names.is_empty() {
            Selection::Chain
        } else {
            Selection::Named(names)
        }
    }

    /// A stable text for cache keys: `default`, `a,b`, or `*`.
    pub fn key(&self) -> String {
        match self {
            Selection::Chain => std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into()),
            Selection::Named(n) => n.join(","),
            Selection::All => "*".into(),
        }
    }
}

/// What ec2ssh needs to know about one profile.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProfileInfo {
    pub name: String,
    /// Its `region` key.
    pub region: Option<String>,
    /// The account it acts in, when the file says (`sso_account_id`, `aws_account_id`).
    pub account_id: Option<String>,
    /// A name for that account (`sso_account_name` or `ec2ssh_account_name`).
    pub account_name: Option<String>,
    /// How to log in again when its SSO token is gone (following `source_profile`).
    pub sso: Option<SsoLogin>,
}

/// The SSO login a profile's credentials depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsoLogin {
    /// `sso_session = NAME`: `aws sso login --sso-session NAME` (one login serves
    /// every profile of the session).
    Session(String),
    /// A legacy profile with its own `sso_start_url`: `aws sso login --profile NAME`.
    Profile(String),
}

impl SsoLogin {
    pub fn command(&self) -> String {
        match self {
            SsoLogin::Session(s) => format!("aws sso login --sso-session {s}"),
            SsoLogin::Profile(p) => format!("aws sso login --profile {p}"),
        }
    }
}

/// Profiles that were asked for by name but are in neither AWS file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no AWS profile named {}", .0.join(", "))]
pub struct UnknownProfiles(pub Vec<String>);

/// The AWS config or credentials file could not be read or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the AWS config files: {0}")]
pub struct ProfileFilesError(pub String);

/// The AWS config and credentials files (AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE
/// honoured), parsed as the SDK parses them.
pub async fn read() -> Result<ProfileSet, ProfileFilesError> {
    #[allow(deprecated)] // the alias of aws_runtime's EnvConfigFiles, the SDK's own
    let files = aws_config::profile::profile_file::ProfileFiles::default();
    aws_config::profile::load(
        &aws_types::os_shim_internal::Fs::real(),
        &aws_types::os_shim_internal::Env::real(),
        &files,
        None,
    )
    .await
    .map_err(|e| ProfileFilesError(crate::text::sanitize(&e.to_string()).into_owned()))
}

/// The profiles `selection` names, in order (`All`: sorted by name, only those that
/// can give credentials). `Chain` names none.
pub fn select(
    set: &ProfileSet,
    selection: &Selection,
) -> Result<Vec<ProfileInfo>, UnknownProfiles> {
    match selection {
        Selection::Chain => Ok(Vec::new()),
        Selection::Named(names) => {
            let unknown: Vec<String> = names
                .iter()
                .filter(|n| set.get_profile(n).is_none())
                .cloned()
                .collect();
            if !unknown.is_empty() {
                return Err(UnknownProfiles(unknown));
            }
            Ok(names.iter().map(|n| describe(set, n)).collect())
        }
        Selection::All => {
            let mut names: Vec<&str> = set
                .profiles()
                .filter(|n| set.get_profile(n).is_some_and(gives_credentials))
                .collect();
            names.sort_unstable();
            Ok(names.into_iter().map(|n| describe(set, n)).collect())
        }
    }
}

/// Whether the SDK's profile provider can get credentials from this profile alone.
/// A profile with only `region` would fall through to the instance role (IMDS) and
/// one with SSO settings but no account and role resolves only a token: both are
/// left out of `--all-profiles`. A broken SSO profile is kept, so its warning shows.
pub fn gives_credentials(p: &Profile) -> bool {
    let has = |k: &str| p.get(k).is_some_and(|v| !v.trim().is_empty());
    let sso = (has("sso_session") || has("sso_start_url"))
        && has("sso_account_id")
        && has("sso_role_name");
    let role = has("role_arn")
        && (has("source_profile") || has("credential_source") || has("web_identity_token_file"));
    has("aws_access_key_id") || role || has("credential_process") || has("login_session") || sso
}

/// What ec2ssh keeps of profile `name` (which must exist in `set`).
pub fn describe(set: &ProfileSet, name: &str) -> ProfileInfo {
    let p = set.get_profile(name);
    let get = |k: &str| {
        p.and_then(|p| p.get(k))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    ProfileInfo {
        name: name.to_string(),
        region: get("region"),
        account_id: get("sso_account_id").or_else(|| get("aws_account_id")),
        account_name: get("ec2ssh_account_name").or_else(|| get("sso_account_name")),
        sso: sso_login(set, name),
    }
}

/// The SSO login behind `name`: its own SSO settings, else those at the end of its
/// `source_profile` chain (a role assumed from an SSO profile).
fn sso_login(set: &ProfileSet, name: &str) -> Option<SsoLogin> {
    let mut seen = BTreeSet::new();
    let mut at = name;
    while seen.insert(at.to_string()) {
        let p = set.get_profile(at)?;
        if let Some(s) = p.get("sso_session").filter(|s| !s.is_empty()) {
            return Some(SsoLogin::Session(s.to_string()));
        }
        if p.get("sso_start_url").is_some_and(|u| !u.is_empty()) {
            return Some(SsoLogin::Profile(at.to_string()));
        }
        at = p.get("source_profile")?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_types::os_shim_internal::{Env, Fs};

    async fn parse(config: &str) -> ProfileSet {
        #[allow(deprecated)]
        let files = aws_config::profile::profile_file::ProfileFiles::builder()
            .with_contents(
                aws_config::profile::profile_file::ProfileFileKind::Config,
                config.to_string(),
            )
            .include_default_credentials_file(false)
            .build();
        aws_config::profile::load(&Fs::from_slice(&[]), &Env::from_slice(&[]), &files, None)
            .await
            .unwrap()
    }

    const CONFIG: &str = "\
[default]
region = eu-west-1
[profile keys]
aws_access_key_id = AKID
aws_secret_access_key = s
aws_account_id = 111111111111
[profile regiononly]
region = us-east-2
[profile dev]
sso_session = corp
sso_account_id = 222222222222
sso_role_name = Admin
sso_account_name = Development
region = us-west-2
[profile tokenonly]
sso_session = corp
[profile legacy]
sso_start_url = https://legacy.awsapps.com/start
sso_region = us-east-1
sso_account_id = 333333333333
sso_role_name = Admin
[profile role]
role_arn = arn:aws:iam::444444444444:role/x
source_profile = legacy
[profile proc]
credential_process = /bin/true
[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = us-east-1
";

    #[tokio::test]
    async fn all_profiles_keeps_only_those_that_give_credentials() {
        let set = parse(CONFIG).await;
        let names: Vec<String> = select(&set, &Selection::All)
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["dev", "keys", "legacy", "proc", "role"]);
    }

    #[tokio::test]
    async fn named_profiles_keep_their_order_and_unknown_names_are_refused() {
        let set = parse(CONFIG).await;
        let sel = Selection::new(&["keys".into(), "dev".into(), "keys".into()], false);
        let got: Vec<String> = select(&set, &sel)
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(got, ["keys", "dev"]);
        let sel = Selection::new(&["dev".into(), "nope".into(), "typo".into()], false);
        assert_eq!(
            select(&set, &sel).unwrap_err().to_string(),
            "no AWS profile named nope, typo"
        );
        assert_eq!(select(&set, &Selection::new(&[], false)).unwrap(), vec![]);
    }

    #[tokio::test]
    async fn profiles_say_their_region_account_and_sso_login() {
        let set = parse(CONFIG).await;
        let dev = describe(&set, "dev");
        assert_eq!(dev.region.as_deref(), Some("us-west-2"));
        assert_eq!(dev.account_id.as_deref(), Some("222222222222"));
        assert_eq!(dev.account_name.as_deref(), Some("Development"));
        assert_eq!(dev.sso, Some(SsoLogin::Session("corp".into())));
        assert_eq!(
            dev.sso.unwrap().command(),
            "aws sso login --sso-session corp"
        );
        let keys = describe(&set, "keys");
        assert_eq!(keys.account_id.as_deref(), Some("111111111111"));
        assert_eq!(keys.sso, None);
        // A role assumed from a legacy SSO profile logs in through that profile.
        let role = describe(&set, "role");
        assert_eq!(role.sso, Some(SsoLogin::Profile("legacy".into())));
        assert_eq!(
            role.sso.unwrap().command(),
            "aws sso login --profile legacy"
        );
    }
}
