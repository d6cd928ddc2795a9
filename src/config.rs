//! The optional config file (`$XDG_CONFIG_HOME/ec2ssh/config.toml`) and the XDG
//! paths ec2ssh uses. Command-line flags override the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Everything the config file may say; every key is optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// AWS profile used when --profile is not given.
    pub profile: Option<String>,
    /// Several AWS profiles listed together when --profile is not given (with
    /// `profile`, both count).
    pub profiles: Vec<String>,
    /// `true`: every profile of the AWS config files, as `--all-profiles`.
    pub all_profiles: bool,
    /// Regions to list when --region is not given.
    pub regions: Vec<String>,
    /// Keep an on-disk copy of the last inventory (default true).
    pub cache: Option<bool>,
    /// How sessions are carried: ec2ssh's own client (default) or Amazon's plugin.
    pub transport: Option<Transport>,
    /// Login user per instance id or per Name/id pattern (`*` wildcards), e.g.
    /// `"web-*" = "ubuntu"`.
    pub users: std::collections::BTreeMap<String, String>,
    /// Exit after the ssh session instead of returning to the picker.
    pub once: bool,
    /// Hosts `ec2ssh scp` and picker pushes copy to at once (default 8).
    pub parallel: Option<u16>,
    pub picker: PickerConfig,
}

/// Who speaks the Session Manager data channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// ec2ssh's built-in client
    #[default]
    Native,
    /// Amazon's session-manager-plugin, run the way the AWS CLI runs it
    Plugin,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PickerConfig {
    /// Start with only Online instances shown.
    pub online_only: bool,
    /// Start with the detail pane open.
    pub details: bool,
    /// How often the ping column is re-checked with SSM (default 30s; "off" never).
    pub ping_refresh: Option<Interval>,
}

/// A period such as `30s` or `2m` (humantime), or `off` / `0s` for never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Interval(pub Option<Duration>);

impl Interval {
    /// The picker's ping check.
    pub const PING_DEFAULT: Interval = Interval(Some(Duration::from_secs(30)));
}

impl std::str::FromStr for Interval {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "off" {
            return Ok(Interval(None));
        }
        let d = humantime::parse_duration(s.trim())
            .map_err(|e| format!("{e} in {s:?} (expected e.g. 30s, 2m or off)"))?;
        Ok(Interval((!d.is_zero()).then_some(d)))
    }
}

impl TryFrom<String> for Interval {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
}

impl Config {
    /// Loads `explicit`, else the default path if it exists, else defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => match Paths::detect().map(|p| p.config_file()) {
                Some(p) if p.exists() => p,
                _ => return Ok(Config::default()),
            },
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Config::parse(&text).map_err(|message| ConfigError::Parse { path, message })
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }
}

/// XDG locations (`directories` resolves XDG_* variables and their defaults).
#[derive(Debug, Clone)]
pub struct Paths {
    pub config_dir: PathBuf,
    pub cache_dir: PathBuf,
    /// ec2ssh's own known_hosts and managed key.
    pub data_dir: PathBuf,
    /// What ec2ssh remembers between runs (the user that worked per instance).
    pub state_dir: PathBuf,
    /// Per-connection private directories (keys); XDG_RUNTIME_DIR when there is one.
    pub runtime_dir: Option<PathBuf>,
}

impl Paths {
    pub fn detect() -> Option<Paths> {
        let dirs = directories::ProjectDirs::from("", "", "ec2ssh")?;
        Some(Paths {
            config_dir: dirs.config_dir().to_path_buf(),
            cache_dir: dirs.cache_dir().to_path_buf(),
            data_dir: dirs.data_dir().to_path_buf(),
            state_dir: dirs
                .state_dir()
                .unwrap_or_else(|| dirs.data_dir())
                .to_path_buf(),
            runtime_dir: dirs.runtime_dir().map(|d| d.to_path_buf()),
        })
    }

    /// Host keys, pinned per instance id.
    pub fn known_hosts(&self) -> PathBuf {
        self.data_dir.join("known_hosts")
    }

    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file_parses() {
        let c = Config::parse(
            "profile = \"prod\"\nregions = [\"us-east-1\", \"eu-west-1\"]\ncache = false\n[picker]\nonline_only = true\ndetails = true\n",
        )
        .unwrap();
        assert_eq!(c.profile.as_deref(), Some("prod"));
        assert_eq!(c.regions, ["us-east-1", "eu-west-1"]);
        assert_eq!(c.cache, Some(false));
        assert!(c.picker.online_only && c.picker.details);
    }

    #[test]
    fn ping_refresh_is_a_period_or_off() {
        let every = |v: &str| {
            Config::parse(&format!("[picker]\nping_refresh = \"{v}\"\n"))
                .map(|c| c.picker.ping_refresh)
        };
        assert_eq!(every("30s"), Ok(Some(Interval::PING_DEFAULT)));
        assert_eq!(
            every("1m 30s"),
            Ok(Some(Interval(Some(Duration::from_secs(90)))))
        );
        assert_eq!(every("off"), Ok(Some(Interval(None))));
        assert_eq!(every("0s"), Ok(Some(Interval(None))));
        let err = every("soon").unwrap_err();
        assert!(err.contains("soon") && err.contains("30s"), "{err}");
        assert_eq!(Config::default().picker.ping_refresh, None);
    }

    #[test]
    fn empty_file_is_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_keys_are_reported_by_name() {
        let err = Config::parse("regoins = []").unwrap_err();
        assert!(err.contains("regoins"), "{err}");
    }
}
