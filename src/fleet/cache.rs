//! The last inventory per account view, on disk in the XDG cache dir, so the picker
//! can paint at once. A missing, corrupt or old-format file is simply a miss.
//!
//! The file is named from what is known before the AWS configuration loads (profile,
//! regions asked for, `AWS_ENDPOINT_URL`), so the picker reads it while aws-config
//! loads; it records the full account key and is used only when that matches. Its
//! format is a small length-prefixed binary encoding of `Instance`: decoding 5,000
//! instances takes a tenth of what parsing the same fleet as JSON did, which decided
//! the picker's first frame.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::model::{Eice, EiceEndpoint, Instance, Ping};

/// Bump when the encoding changes; other files are then ignored.
const FORMAT: u32 = 5;

/// What a first frame needs to know of the whole fleet without decoding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub total: usize,
    pub online: usize,
    /// Rows of two accounts or profiles (`fleet::several_accounts`).
    pub several_accounts: bool,
}

impl Summary {
    pub fn of(instances: &[Instance]) -> Summary {
        Summary {
            total: instances.len(),
            online: instances.iter().filter(|i| i.ping == Ping::Online).count(),
            several_accounts: super::several_accounts(instances),
        }
    }
}

/// The first rows of a cache file and its fleet's summary: a first frame's worth,
/// read without decoding the rest.
#[derive(Debug, Clone)]
pub struct Head {
    key: String,
    pub saved_at: i64,
    pub summary: Summary,
    /// The first rows in fleet order (only Online ones when asked so).
    pub rows: Vec<Instance>,
}

impl Head {
    /// The account key the file was written for.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Bytes read for a head before falling back to the whole file (rows take a few
/// hundred bytes each).
const HEAD_BYTES: u64 = 256 * 1024;
const MAGIC: &[u8; 16] = b"ec2ssh-inventory";

/// A cached fleet and when it was fetched (Unix seconds).
#[derive(Debug, Clone)]
pub struct Cached {
    pub saved_at: i64,
    pub instances: Vec<Instance>,
}

/// A cache file as read: the account key it was written for, and its fleet.
#[derive(Debug, Clone)]
pub struct CacheFile {
    key: String,
    cached: Cached,
}

impl CacheFile {
    /// The fleet, if the file was written for exactly `key` (`AwsContext::cache_key`).
    pub fn for_key(self, key: &str) -> Option<Cached> {
        (self.key == key).then_some(self.cached)
    }

    /// The account key the file was written for.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The fleet, whichever account it belongs to (check `key` before trusting it).
    pub fn into_cached(self) -> Cached {
        self.cached
    }
}

/// The cache file of one account view.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    file: PathBuf,
}

impl Cache {
    /// The cache in `dir` for the view named by `profile` (the flag or config, else
    /// `AWS_PROFILE`) and `regions` (as asked for; none means the AWS chain decides).
    pub fn new(dir: PathBuf, profile: Option<&str>, regions: &[String]) -> Self {
        let env = |k: &str| std::env::var(k).unwrap_or_default();
        let profile = profile
            .map(str::to_string)
            .unwrap_or_else(|| env("AWS_PROFILE"));
        let regions = match regions {
            [] => format!("chain:{}:{}", env("AWS_REGION"), env("AWS_DEFAULT_REGION")),
            r => r.join(","),
        };
        let view = format!(
            "profile={profile}|regions={regions}|endpoint={}",
            env("AWS_ENDPOINT_URL")
        );
        let digest = Sha256::digest(view.as_bytes());
        let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let file = dir.join(format!("inventory-{name}.bin"));
        Cache { dir, file }
    }

    /// The fleet cached for exactly `key` (`AwsContext::cache_key`).
    pub fn load(&self, key: &str) -> Option<Cached> {
        self.read()?.for_key(key)
    }

    /// The view's file, whatever account key it holds (check it with `for_key`).
    pub fn read(&self) -> Option<CacheFile> {
        let bytes = std::fs::read(&self.file).ok()?;
        let file = decode(&bytes);
        if file.is_none() {
            tracing::debug!(path = %self.file.display(), "ignoring a cache of another format, or damaged");
        }
        file
    }

    /// The summary and the first `rows` rows (with `online_only`, the first `rows`
    /// Online ones), reading only the start of the file when that holds them. A head
    /// says nothing of the rest of the file: `read` it before trusting the fleet.
    pub fn read_head(&self, rows: usize, online_only: bool) -> Option<Head> {
        use std::io::Read;
        let mut file = std::fs::File::open(&self.file).ok()?;
        let mut bytes = Vec::new();
        (&mut file).take(HEAD_BYTES).read_to_end(&mut bytes).ok()?;
        if let Some(head) = decode_head(&bytes, rows, online_only) {
            return Some(head);
        }
        // Rows longer than the prefix: the whole file, once.
        if bytes.len() as u64 == HEAD_BYTES {
            file.read_to_end(&mut bytes).ok()?;
            return decode_head(&bytes, rows, online_only);
        }
        None
    }

    /// Writes atomically (temp file + rename) so a crash never leaves half a file.
    pub fn store(&self, key: &str, saved_at: i64, instances: &[Instance]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 16, tmp);
        encode(key, saved_at, instances, &mut out)?;
        let tmp = out.into_inner().map_err(|e| e.into_error())?;
        tmp.persist(&self.file).map_err(|e| e.error)?;
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Writes the file one instance at a time (a big fleet is not held twice).
fn encode(
    key: &str,
    saved_at: i64,
    instances: &[Instance],
    out: &mut impl Write,
) -> std::io::Result<()> {
    let mut w = Writer(Vec::with_capacity(4096));
    w.0.extend_from_slice(MAGIC);
    w.u32(FORMAT);
    w.str(key);
    w.i64(saved_at);
    let summary = Summary::of(instances);
    w.u32(summary.total as u32);
    w.u32(summary.online as u32);
    w.0.push(u8::from(summary.several_accounts));
    for i in instances {
        w.instance(i);
        out.write_all(&w.0)?;
        w.0.clear();
    }
    out.write_all(&w.0)
}

/// The header: account key, time saved, summary.
fn header(r: &mut Reader<'_>) -> Option<(String, i64, Summary)> {
    r.0 = r.0.strip_prefix(MAGIC)?;
    if r.u32()? != FORMAT {
        return None;
    }
    let key = r.string()?;
    let saved_at = r.i64()?;
    let total = r.u32()? as usize;
    let online = r.u32()? as usize;
    let several_accounts = match r.u8()? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let summary = Summary {
        total,
        online,
        several_accounts,
    };
    (online <= total).then_some((key, saved_at, summary))
}

fn decode(bytes: &[u8]) -> Option<CacheFile> {
    let mut r = Reader(bytes);
    let (key, saved_at, summary) = header(&mut r)?;
    let n = summary.total;
    // Each instance takes well over 16 bytes: a count beyond that is damage.
    let mut instances = Vec::with_capacity(n.min(r.0.len() / 16));
    for _ in 0..n {
        instances.push(r.instance()?);
    }
    // A summary that does not match its rows is damage too.
    (r.0.is_empty() && Summary::of(&instances) == summary).then_some(CacheFile {
        key,
        cached: Cached {
            saved_at,
            instances,
        },
    })
}

/// The header and the first `want` rows (Online ones only with `online_only`) of a
/// file's first bytes; `None` when they end first.
fn decode_head(bytes: &[u8], want: usize, online_only: bool) -> Option<Head> {
    let mut r = Reader(bytes);
    let (key, saved_at, summary) = header(&mut r)?;
    let mut rows = Vec::with_capacity(want.min(summary.total));
    for _ in 0..summary.total {
        if rows.len() == want {
            break;
        }
        let i = r.instance()?;
        if !online_only || i.ping == Ping::Online {
            rows.push(i);
        }
    }
    Some(Head {
        key,
        saved_at,
        summary,
        rows,
    })
}

struct Writer(Vec<u8>);

impl Writer {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt_str(&mut self, s: &Option<String>) {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
        }
    }

    fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                self.i64(v);
            }
        }
    }

    fn instance(&mut self, i: &Instance) {
        // Every field by name: a field added to `Instance` does not compile until it
        // is written here (and read in `Reader::instance`, and FORMAT bumped).
        let Instance {
            id,
            region,
            name,
            tags,
            state,
            ping,
            platform_type,
            platform_name,
            platform_version,
            private_ip,
            public_ip,
            instance_type,
            availability_zone,
            image_id,
            agent_version,
            last_ping,
            launch_time,
            iam_instance_profile,
            vpc_id,
            subnet_id,
            security_groups,
            profile,
            account_id,
            account_name,
            eice,
        } = i;
        self.str(id);
        self.str(region);
        self.opt_str(name);
        self.u32(tags.len() as u32);
        for (k, v) in tags {
            self.str(k);
            self.str(v);
        }
        self.opt_str(state);
        self.0.push(match ping {
            Ping::Online => 0,
            Ping::ConnectionLost => 1,
            Ping::Inactive => 2,
            Ping::NotManaged => 3,
            Ping::Unknown => 4,
        });
        for s in [
            platform_type,
            platform_name,
            platform_version,
            private_ip,
            public_ip,
            instance_type,
            availability_zone,
            image_id,
            agent_version,
        ] {
            self.opt_str(s);
        }
        self.opt_i64(*last_ping);
        self.opt_i64(*launch_time);
        for s in [iam_instance_profile, vpc_id, subnet_id] {
            self.opt_str(s);
        }
        self.strs(security_groups);
        match eice {
            Eice::Unknown => self.0.push(0),
            Eice::None => self.0.push(1),
            Eice::Endpoint(e) => {
                self.0.push(2);
                self.endpoint(e);
            }
        }
        for s in [profile, account_id, account_name] {
            self.opt_str(s);
        }
    }

    fn strs(&mut self, v: &[String]) {
        self.u32(v.len() as u32);
        for s in v {
            self.str(s);
        }
    }

    fn endpoint(&mut self, e: &EiceEndpoint) {
        let EiceEndpoint {
            id,
            vpc_id,
            subnet_id,
            dns_name,
            fips_dns_name,
            state,
            security_groups,
            preserve_client_ip,
        } = e;
        for s in [id, vpc_id, subnet_id, dns_name] {
            self.str(s);
        }
        self.opt_str(fips_dns_name);
        self.str(state);
        self.strs(security_groups);
        self.0.push(u8::from(*preserve_client_ip));
    }
}

/// Reads what `Writer` wrote; `None` on anything short or malformed.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }

    fn string(&mut self) -> Option<String> {
        self.str().map(str::to_string)
    }

    fn opt_string(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => self.string().map(Some),
            _ => None,
        }
    }

    fn opt_i64(&mut self) -> Option<Option<i64>> {
        match self.u8()? {
            0 => Some(None),
            1 => self.i64().map(Some),
            _ => None,
        }
    }

    fn instance(&mut self) -> Option<Instance> {
        let id = self.string()?;
        let region = self.string()?;
        let name = self.opt_string()?;
        let mut tags = super::Tags::new();
        for _ in 0..self.u32()? {
            tags.insert(self.string()?, self.string()?);
        }
        let state = self.opt_string()?;
        let ping = match self.u8()? {
            0 => Ping::Online,
            1 => Ping::ConnectionLost,
            2 => Ping::Inactive,
            3 => Ping::NotManaged,
            4 => Ping::Unknown,
            _ => return None,
        };
        Some(Instance {
            id,
            region,
            name,
            tags,
            state,
            ping,
            platform_type: self.opt_string()?,
            platform_name: self.opt_string()?,
            platform_version: self.opt_string()?,
            private_ip: self.opt_string()?,
            public_ip: self.opt_string()?,
            instance_type: self.opt_string()?,
            availability_zone: self.opt_string()?,
            image_id: self.opt_string()?,
            agent_version: self.opt_string()?,
            last_ping: self.opt_i64()?,
            launch_time: self.opt_i64()?,
            iam_instance_profile: self.opt_string()?,
            vpc_id: self.opt_string()?,
            subnet_id: self.opt_string()?,
            security_groups: self.strings()?,
            eice: match self.u8()? {
                0 => Eice::Unknown,
                1 => Eice::None,
                2 => Eice::Endpoint(Box::new(self.endpoint()?)),
                _ => return None,
            },
            profile: self.opt_string()?,
            account_id: self.opt_string()?,
            account_name: self.opt_string()?,
        })
    }

    fn strings(&mut self) -> Option<Vec<String>> {
        let n = self.u32()?;
        let mut v = Vec::with_capacity((n as usize).min(self.0.len() / 4));
        for _ in 0..n {
            v.push(self.string()?);
        }
        Some(v)
    }

    fn endpoint(&mut self) -> Option<EiceEndpoint> {
        Some(EiceEndpoint {
            id: self.string()?,
            vpc_id: self.string()?,
            subnet_id: self.string()?,
            dns_name: self.string()?,
            fips_dns_name: self.opt_string()?,
            state: self.string()?,
            security_groups: self.strings()?,
            preserve_client_ip: match self.u8()? {
                0 => false,
                1 => true,
                _ => return None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<Instance> {
        vec![
            Instance {
                id: "i-0123456789abcdef0".into(),
                region: "us-east-1".into(),
                name: Some("web-1".into()),
                ping: Ping::ConnectionLost,
                tags: [("Team".to_string(), "ウェブ\u{1b}".to_string())].into(),
                last_ping: Some(-5),
                security_groups: vec!["sg-1".into(), "sg-2".into()],
                profile: Some("prod".into()),
                account_id: Some("111111111111".into()),
                account_name: Some("Production".into()),
                eice: Eice::Endpoint(Box::new(EiceEndpoint {
                    id: "eice-1".into(),
                    vpc_id: "vpc-1".into(),
                    subnet_id: "subnet-1".into(),
                    dns_name: "eice-1.x.ec2-instance-connect-endpoint.us-east-1.amazonaws.com"
                        .into(),
                    fips_dns_name: None,
                    state: "create-complete".into(),
                    security_groups: vec!["sg-e".into()],
                    preserve_client_ip: true,
                })),
                ..Default::default()
            },
            Instance {
                id: "mi-0abc".into(),
                ping: Ping::Unknown,
                eice: Eice::None,
                ..Default::default()
            },
        ]
    }

    fn cache(dir: &Path) -> Cache {
        Cache::new(dir.join("sub"), Some("work"), &["eu-west-1".to_string()])
    }

    #[test]
    fn round_trip_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        assert!(cache.load("a").is_none());
        cache.store("a", 42, &sample()).unwrap();
        let got = cache.load("a").unwrap();
        assert_eq!(got.saved_at, 42);
        assert_eq!(got.instances, sample());
        assert!(cache.load("b").is_none(), "another account view is a miss");
        let other = Cache::new(dir.path().join("sub"), Some("home"), &[]);
        assert!(other.load("a").is_none(), "another profile, another file");
    }

    #[test]
    fn damaged_and_other_format_files_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        cache.store("a", 1, &sample()).unwrap();
        let good = std::fs::read(&cache.file).unwrap();
        for cut in [0, 10, 20, good.len() / 2, good.len() - 1] {
            std::fs::write(&cache.file, &good[..cut]).unwrap();
            assert!(cache.load("a").is_none(), "cut at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        std::fs::write(&cache.file, longer).unwrap();
        assert!(cache.load("a").is_none(), "trailing bytes");
        let mut old = good.clone();
        old[MAGIC.len()] = 1; // format 1 was JSON
        std::fs::write(&cache.file, old).unwrap();
        assert!(cache.load("a").is_none());
        std::fs::write(&cache.file, b"{\"format\":1}").unwrap();
        assert!(cache.load("a").is_none());
    }

    /// A fleet of `n` rows, every third ConnectionLost, rows of a few hundred bytes.
    fn big(n: usize) -> Vec<Instance> {
        (0..n)
            .map(|k| Instance {
                id: format!("i-{k:017x}"),
                name: Some(format!("web-{k:05}-{}", "x".repeat(200))),
                ping: if k % 3 == 0 {
                    Ping::ConnectionLost
                } else {
                    Ping::Online
                },
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn a_head_is_the_first_rows_and_the_whole_fleets_summary() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        assert!(cache.read_head(10, false).is_none(), "no file, no head");
        // Big enough that the head comes from the file's first bytes only.
        let fleet = big(3000);
        cache.store("a", 9, &fleet).unwrap();
        assert!(std::fs::metadata(&cache.file).unwrap().len() > 2 * HEAD_BYTES);
        let head = cache.read_head(50, false).unwrap();
        assert_eq!((head.key(), head.saved_at), ("a", 9));
        assert_eq!(head.rows, fleet[..50]);
        let expected = Summary {
            total: 3000,
            online: 2000,
            several_accounts: false,
        };
        assert_eq!(head.summary, expected);
        let online = cache.read_head(50, true).unwrap();
        let first_online: Vec<&Instance> = fleet
            .iter()
            .filter(|i| i.ping == Ping::Online)
            .take(50)
            .collect();
        assert_eq!(online.rows.iter().collect::<Vec<_>>(), first_online);
        // More rows than the first bytes hold: the whole file is read.
        assert_eq!(cache.read_head(2500, false).unwrap().rows, fleet[..2500]);
        assert_eq!(cache.read_head(5000, false).unwrap().rows, fleet);
    }

    #[test]
    fn a_summary_that_does_not_match_its_rows_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        cache.store("a", 1, &sample()).unwrap();
        let mut bytes = std::fs::read(&cache.file).unwrap();
        // The online count follows magic, format, key, time and total.
        let at = MAGIC.len() + 4 + 4 + 1 + 8 + 4;
        assert_eq!(bytes[at], 0, "no sample row is Online");
        bytes[at] = 1;
        std::fs::write(&cache.file, &bytes).unwrap();
        assert!(cache.load("a").is_none());
        bytes[at] = 9; // more online rows than rows
        std::fs::write(&cache.file, &bytes).unwrap();
        assert!(cache.read_head(10, false).is_none());
    }

    proptest! {
        #[test]
        fn any_fleet_round_trips_and_any_bytes_are_safe(
            names in proptest::collection::vec(proptest::option::of(".{0,12}"), 0..20),
            noise in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let fleet: Vec<Instance> = names
                .iter()
                .enumerate()
                .map(|(k, n)| Instance {
                    id: format!("i-{k}"),
                    name: n.clone(),
                    launch_time: n.as_ref().map(|n| n.len() as i64),
                    ..Default::default()
                })
                .collect();
            let mut bytes = Vec::new();
            encode("k", 7, &fleet, &mut bytes).unwrap();
            let back = decode(&bytes).and_then(|f| f.for_key("k")).map(|c| c.instances);
            prop_assert_eq!(back, Some(fleet));
            let _ = decode(&noise);
            let mut spliced = bytes.clone();
            spliced.truncate(bytes.len().min(40));
            spliced.extend(&noise);
            let _ = decode(&spliced);
        }
    }
}
