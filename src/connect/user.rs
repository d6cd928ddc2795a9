//! Which OS user to log in as. The wrong user is the top reason for "Permission denied
//! (publickey)", so the choice is explicit and shown before connecting:
//! flag (or `user@`) > config (`[users]`, by id or pattern) > tag `ec2ssh:user` > the
//! user that last worked for this instance > the platform's default user.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::fleet::Instance;
use crate::names::{glob, valid_login as valid};

/// The tag that names an instance's login user.
pub const USER_TAG: &str = "ec2ssh:user";

/// Where a user came from, for the detail pane and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Config,
    Tag,
    Remembered,
    Platform,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Source::Flag => "command line",
            Source::Config => "config file",
            Source::Tag => "ec2ssh:user tag",
            Source::Remembered => "worked last time",
            Source::Platform => "platform default",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub user: String,
    pub source: Source,
}

/// Everything the choice depends on, as plain data (the picker shows it too).
#[derive(Debug, Clone, Default)]
pub struct UserRules {
    /// `--user` / `user@`.
    pub explicit: Option<String>,
    /// The config file's `[users]`.
    pub config: BTreeMap<String, String>,
    pub remembered: Remembered,
}

impl UserRules {
    pub fn resolve(&self, instance: &Instance) -> Resolved {
        resolve(
            instance,
            self.explicit.as_deref(),
            &self.config,
            &self.remembered,
        )
    }
}

/// Resolves the user for `instance`.
pub fn resolve(
    instance: &Instance,
    explicit: Option<&str>,
    config: &BTreeMap<String, String>,
    remembered: &Remembered,
) -> Resolved {
    let pick = |user: &str, source| Resolved {
        user: user.to_string(),
        source,
    };
    if let Some(u) = explicit.filter(|u| valid(u)) {
        return pick(u, Source::Flag);
    }
    if let Some(u) = from_config(instance, config) {
        return pick(u, Source::Config);
    }
    if let Some(u) = instance.tags.get(USER_TAG).filter(|u| valid(u)) {
        return pick(u, Source::Tag);
    }
    if let Some(u) = remembered.get(&instance.id) {
        return pick(u, Source::Remembered);
    }
    pick(platform_default(instance), Source::Platform)
}

/// The exact id wins; else the longest matching pattern (on the id or the Name tag).
fn from_config<'a>(instance: &Instance, config: &'a BTreeMap<String, String>) -> Option<&'a str> {
    if let Some(u) = config.get(&instance.id) {
        return Some(u.as_str()).filter(|u| valid(u));
    }
    let name = instance.name.as_deref().unwrap_or("");
    config
        .iter()
        .filter(|(pattern, user)| {
            valid(user)
                && (glob(pattern, &instance.id) || (!name.is_empty() && glob(pattern, name)))
        })
        .max_by_key(|(pattern, _)| pattern.len())
        .map(|(_, user)| user.as_str())
}

/// The default login of the usual AMIs, from the SSM platform name.
pub fn platform_default(instance: &Instance) -> &'static str {
    let name = instance
        .platform_name
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let table: [(&str, &str); 9] = [
        ("ubuntu", "ubuntu"),
        ("debian", "admin"),
        ("centos", "centos"),
        ("rocky", "rocky"),
        ("alma", "ec2-user"),
        ("bitnami", "bitnami"),
        ("fedora", "fedora"),
        ("freebsd", "ec2-user"),
        ("windows", "Administrator"),
    ];
    if let Some((_, user)) = table.iter().find(|(key, _)| name.contains(key)) {
        return user;
    }
    if instance.platform_type.as_deref() == Some("Windows") {
        return "Administrator";
    }
    // Amazon Linux, RHEL, SUSE and anything unknown.
    "ec2-user"
}

/// The user that last logged in successfully, per instance id, in the state dir.
#[derive(Debug, Default, Clone)]
pub struct Remembered {
    path: Option<PathBuf>,
    users: BTreeMap<String, String>,
}

impl Remembered {
    /// Loads `dir/users.json`; a missing or unreadable file is an empty memory.
    pub fn load(dir: Option<&Path>) -> Self {
        let path = dir.map(|d| d.join("users.json"));
        let users = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Remembered { path, users }
    }

    pub fn get(&self, id: &str) -> Option<&str> {
        self.users.get(id).map(String::as_str).filter(|u| valid(u))
    }

    /// Records `user` for `id` (atomically; failures only cost the memory).
    pub fn remember(&mut self, id: &str, user: &str) {
        if self.get(id) == Some(user) {
            return;
        }
        self.users.insert(id.to_string(), user.to_string());
        let Some(path) = &self.path else { return };
        let write = || -> std::io::Result<()> {
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            let tmp = tempfile::NamedTempFile::new_in(dir)?;
            serde_json::to_writer_pretty(&tmp, &self.users)?;
            tmp.persist(path).map_err(|e| e.error)?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::debug!(error = %e, "could not remember the user");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(name: &str, platform: Option<&str>) -> Instance {
        Instance {
            id: "i-0123456789abcdef0".into(),
            name: Some(name.into()),
            platform_name: platform.map(str::to_string),
            ..Instance::default()
        }
    }

    #[test]
    fn the_order_is_flag_config_tag_remembered_platform() {
        let mut i = instance("web-1", Some("Ubuntu"));
        let mut config = BTreeMap::new();
        let mut memory = Remembered::default();
        let r = |i: &Instance, c: &BTreeMap<_, _>, m: &Remembered, f| resolve(i, f, c, m);
        assert_eq!(r(&i, &config, &memory, None).user, "ubuntu");
        assert_eq!(r(&i, &config, &memory, None).source, Source::Platform);
        memory.remember(&i.id, "deploy");
        assert_eq!(r(&i, &config, &memory, None).source, Source::Remembered);
        i.tags.insert(USER_TAG.into(), "ops".into());
        assert_eq!(r(&i, &config, &memory, None).user, "ops");
        config.insert("web-*".into(), "www".into());
        assert_eq!(r(&i, &config, &memory, None).user, "www");
        assert_eq!(r(&i, &config, &memory, Some("root")).user, "root");
        // A hostile tag value is ignored, not used.
        i.tags.insert(USER_TAG.into(), "x; rm -rf /".into());
        config.clear();
        assert_eq!(r(&i, &config, &memory, None).user, "deploy");
    }

    #[test]
    fn exact_ids_beat_patterns_and_longer_patterns_beat_shorter() {
        let i = instance("web-prod-1", None);
        let config: BTreeMap<String, String> = [
            ("*".to_string(), "a".to_string()),
            ("web-*".to_string(), "b".to_string()),
            ("web-prod-*".to_string(), "c".to_string()),
        ]
        .into();
        assert_eq!(from_config(&i, &config), Some("c"));
        let mut with_id = config.clone();
        with_id.insert(i.id.clone(), "d".into());
        assert_eq!(from_config(&i, &with_id), Some("d"));
    }

    #[test]
    fn platform_defaults() {
        for (platform, user) in [
            (Some("Amazon Linux"), "ec2-user"),
            (Some("Ubuntu"), "ubuntu"),
            (Some("Debian GNU/Linux"), "admin"),
            (Some("CentOS Linux"), "centos"),
            (Some("Rocky Linux"), "rocky"),
            (Some("Red Hat Enterprise Linux"), "ec2-user"),
            (Some("SLES"), "ec2-user"),
            (Some("Fedora Linux"), "fedora"),
            (None, "ec2-user"),
        ] {
            assert_eq!(
                platform_default(&instance("x", platform)),
                user,
                "{platform:?}"
            );
        }
    }

    #[test]
    fn memory_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Remembered::load(Some(dir.path()));
        m.remember("i-1", "ubuntu");
        assert_eq!(
            Remembered::load(Some(dir.path())).get("i-1"),
            Some("ubuntu")
        );
    }
}
