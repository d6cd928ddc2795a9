//! The last inventory per account view, on disk in the XDG cache dir, so the picker
//! can paint at once. A missing, corrupt or old-format file is simply a miss.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::model::Instance;

/// Bump when `Instance` changes incompatibly; older files are then ignored.
const FORMAT: u32 = 1;

#[derive(Deserialize)]
struct CacheFile {
    format: u32,
    key: String,
    saved_at: i64,
    instances: Vec<Instance>,
}

/// What `store` writes: the same document, borrowing the fleet instead of copying it.
#[derive(Serialize)]
struct CacheFileRef<'a> {
    format: u32,
    key: &'a str,
    saved_at: i64,
    instances: &'a [Instance],
}

/// A cached fleet and when it was fetched (Unix seconds).
#[derive(Debug, Clone)]
pub struct Cached {
    pub saved_at: i64,
    pub instances: Vec<Instance>,
}

#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(dir: PathBuf) -> Self {
        Cache { dir }
    }

    fn path(&self, key: &str) -> PathBuf {
        let digest = Sha256::digest(key.as_bytes());
        let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("inventory-{name}.json"))
    }

    pub fn load(&self, key: &str) -> Option<Cached> {
        let path = self.path(key);
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice::<CacheFile>(&bytes) {
            Ok(f) if f.format == FORMAT && f.key == key => Some(Cached {
                saved_at: f.saved_at,
                instances: f.instances,
            }),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "ignoring unreadable cache");
                None
            }
        }
    }

    /// Writes atomically (temp file + rename) so a crash never leaves half a file.
    pub fn store(&self, key: &str, saved_at: i64, instances: &[Instance]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let file = CacheFileRef {
            format: FORMAT,
            key,
            saved_at,
            instances,
        };
        let tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 16, tmp);
        serde_json::to_writer(&mut out, &file)?;
        let tmp = out.into_inner().map_err(|e| e.into_error())?;
        tmp.persist(self.path(key)).map_err(|e| e.error)?;
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Instance> {
        vec![Instance {
            id: "i-0123456789abcdef0".into(),
            region: "us-east-1".into(),
            name: Some("web-1".into()),
            ..Default::default()
        }]
    }

    #[test]
    fn round_trip_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("sub"));
        assert!(cache.load("a").is_none());
        cache.store("a", 42, &sample()).unwrap();
        let got = cache.load("a").unwrap();
        assert_eq!(got.saved_at, 42);
        assert_eq!(got.instances, sample());
        assert!(cache.load("b").is_none(), "another account view is a miss");
    }

    #[test]
    fn corrupt_and_old_format_files_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        std::fs::write(cache.path("a"), b"{not json").unwrap();
        assert!(cache.load("a").is_none());
        let old = serde_json::json!({"format": 0, "key": "a", "saved_at": 1, "instances": []});
        std::fs::write(cache.path("a"), old.to_string()).unwrap();
        assert!(cache.load("a").is_none());
        std::fs::write(
            cache.path("a"),
            br#"{"format":1,"key":"a","saved_at":1,"instances":[{"id":5}]}"#,
        )
        .unwrap();
        assert!(cache.load("a").is_none());
    }
}
