//! The one-time ed25519 key of a connection: made fresh, written 0600 into a private
//! 0700 directory of its own (never a shared fixed path), and removed with that
//! directory when the value is dropped, which also happens on errors and panics.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ssh_key::{rand_core::OsRng, Algorithm, LineEnding, PrivateKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot create a private directory for the connection key in {dir}: {source}")]
    Dir {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// The directory for keys exists but is not safely ours.
    #[error("refusing to keep connection keys in {dir}: {why}")]
    Unsafe { dir: PathBuf, why: String },
    #[error("cannot write the connection key: {0}")]
    Write(#[from] std::io::Error),
    #[error("cannot generate the connection key: {0}")]
    Generate(#[from] ssh_key::Error),
    #[error("cannot read the public key {path}: {source}")]
    ReadPublic {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl KeyError {
    /// What the user can do about it.
    pub fn fix(&self) -> String {
        match self {
            KeyError::Unsafe { dir, .. } => format!(
                "if you did not make {} yourself, someone else may have: remove it, or set XDG_RUNTIME_DIR to a directory only you can enter",
                dir.display()
            ),
            _ => "check the permissions of the directory named above".to_string(),
        }
    }
}

/// A key for ssh's `-i` and its public half for `SendSSHPublicKey`.
#[derive(Debug)]
pub struct ConnectionKey {
    pub private: PathBuf,
    pub public: String,
    /// Removes the directory (and the key) on drop; `None` for a user's own key.
    _dir: Option<tempfile::TempDir>,
}

impl ConnectionKey {
    /// A fresh key pair in a new private directory under `base` (created 0700 if
    /// needed). `comment` ends up in the public key.
    pub fn ephemeral(base: &Path, comment: &str) -> Result<Self, KeyError> {
        let dir = private_dir(base, "conn-")?;
        let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)?;
        key.set_comment(comment);
        let private = dir.path().join("id_ed25519");
        let pem = key.to_openssh(LineEnding::LF)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&private)?;
        file.write_all(pem.as_bytes())?;
        let public = key.public_key().to_openssh()?;
        Ok(ConnectionKey {
            private,
            public,
            _dir: Some(dir),
        })
    }

    /// The user's own key (`--key PATH`); its `.pub` is what gets pushed.
    pub fn existing(private: &Path) -> Result<Self, KeyError> {
        let mut public_path = private.as_os_str().to_owned();
        public_path.push(".pub");
        let public_path = PathBuf::from(public_path);
        let public =
            std::fs::read_to_string(&public_path).map_err(|source| KeyError::ReadPublic {
                path: public_path,
                source,
            })?;
        Ok(ConnectionKey {
            private: private.to_path_buf(),
            public: public.trim().to_string(),
            _dir: None,
        })
    }

    /// Whether dropping this removes the key (it is ec2ssh's, not the user's).
    pub fn is_ephemeral(&self) -> bool {
        self._dir.is_some()
    }
}

/// A new directory only this user can enter, `base/PREFIX…` (an unpredictable
/// name), removed when the returned handle drops; `base` is made private first
/// ([`ensure_private_dir`]).
pub fn private_dir(base: &Path, prefix: &str) -> Result<tempfile::TempDir, KeyError> {
    let err = |source| KeyError::Dir {
        dir: base.to_path_buf(),
        source,
    };
    ensure_private_dir(base)?;
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir_in(base)
        .map_err(err)
}

/// ec2ssh's long-lived key for plain `ssh` via `ec2ssh ssh-config` (`DATA_DIR/id_ed25519`),
/// created on first use. Instance Connect still only trusts it for 60 s after each push.
pub fn managed(data_dir: &Path) -> Result<ConnectionKey, KeyError> {
    let private = data_dir.join("id_ed25519");
    if !private.exists() {
        create_dir_0700(data_dir).map_err(|source| KeyError::Dir {
            dir: data_dir.to_path_buf(),
            source,
        })?;
        let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)?;
        key.set_comment("ec2ssh managed key");
        let tmp = tempfile::NamedTempFile::new_in(data_dir)?;
        std::fs::write(tmp.path(), key.to_openssh(LineEnding::LF)?.as_bytes())?;
        let mut public = private.as_os_str().to_owned();
        public.push(".pub");
        std::fs::write(&public, key.public_key().to_openssh()? + "\n")?;
        // NamedTempFile is created 0600; persisting keeps the mode.
        tmp.persist_noclobber(&private)
            .map_err(|e| KeyError::Write(e.error))?;
    }
    ConnectionKey::existing(&private)
}

/// Where per-connection directories go: ec2ssh's runtime dir (`$XDG_RUNTIME_DIR/ec2ssh`),
/// else `ec2ssh-UID` in the system temp dir, which anyone can create first: every
/// use goes through [`ensure_private_dir`].
pub fn base_dir(runtime_dir: Option<&Path>) -> PathBuf {
    match runtime_dir {
        Some(dir) => dir.to_path_buf(),
        None => std::env::temp_dir().join(format!("ec2ssh-{}", current_uid())),
    }
}

fn current_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// Creates `dir` and any missing parents with mode 0700 (nothing if it exists).
pub fn create_dir_0700(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Makes `dir` a directory only we can enter: created 0700 when missing, and whether
/// just created or found, checked without following links (lstat): a directory, not a
/// symlink, owned by our uid, with no access for group or others. Anything else is
/// refused: someone may have made it to read or swap our keys.
pub fn ensure_private_dir(dir: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let err = |source| KeyError::Dir {
        dir: dir.to_path_buf(),
        source,
    };
    let unsafe_dir = |why: String| KeyError::Unsafe {
        dir: dir.to_path_buf(),
        why,
    };
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() && !parent.exists() {
            create_dir_0700(parent).map_err(err)?;
        }
    }
    let created = match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(err(e)),
    };
    let meta = std::fs::symlink_metadata(dir).map_err(err)?;
    if meta.file_type().is_symlink() {
        return Err(unsafe_dir("it is a symbolic link".into()));
    }
    if !meta.is_dir() {
        return Err(unsafe_dir("it is not a directory".into()));
    }
    let uid = current_uid();
    if meta.uid() != uid {
        return Err(unsafe_dir(format!(
            "it belongs to uid {}, not to you (uid {uid})",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if created && mode != 0o700 {
        // The umask may have taken bits away; make it exactly what we asked for.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    } else if mode & 0o077 != 0 {
        return Err(unsafe_dir(format!(
            "its mode is {mode:o}, so others can enter it (it must be 700)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn an_ephemeral_key_is_private_and_removed_on_drop() {
        let base = tempfile::tempdir().unwrap();
        let key = ConnectionKey::ephemeral(&base.path().join("ec2ssh"), "ec2ssh test").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key.private), 0o600);
        assert_eq!(mode(key.private.parent().unwrap()), 0o700);
        assert_eq!(mode(&base.path().join("ec2ssh")), 0o700);
        assert!(key.public.starts_with("ssh-ed25519 AAAA"), "{}", key.public);
        assert!(key.public.ends_with(" ec2ssh test"));
        let text = std::fs::read_to_string(&key.private).unwrap();
        assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        let dir = key.private.parent().unwrap().to_path_buf();
        let other = ConnectionKey::ephemeral(&base.path().join("ec2ssh"), "x").unwrap();
        assert_ne!(other.private, key.private, "never a shared path");
        drop(key);
        assert!(!dir.exists(), "the directory goes with the key");
    }

    #[test]
    fn the_key_directory_is_made_private_and_checked_when_found() {
        let tmp = tempfile::tempdir().unwrap();
        let fresh = tmp.path().join("run/ec2ssh");
        ensure_private_dir(&fresh).unwrap();
        let meta = std::fs::symlink_metadata(&fresh).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o700);
        // Found again as we left it: fine.
        ensure_private_dir(&fresh).unwrap();

        let refused = |dir: &Path, why: &str| {
            let e = ensure_private_dir(dir).unwrap_err();
            assert!(
                matches!(&e, KeyError::Unsafe { why: w, .. } if w.contains(why)),
                "{}: {e}",
                dir.display()
            );
            assert!(e.fix().contains(&dir.display().to_string()), "{}", e.fix());
            // Nothing was created in it.
            assert!(ConnectionKey::ephemeral(dir, "x").is_err());
        };
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        refused(&open, "mode is 755");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&fresh, &link).unwrap();
        refused(&link, "symbolic link");
        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        refused(&file, "not a directory");
    }

    #[test]
    fn a_key_directory_owned_by_someone_else_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let theirs = tmp.path().join("ec2ssh-theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
        let other = if current_uid() == 0 {
            // As root, give it away; otherwise make do with a directory root owns.
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
            theirs
        } else {
            PathBuf::from("/")
        };
        let e = ensure_private_dir(&other).unwrap_err();
        assert!(
            matches!(&e, KeyError::Unsafe { why, .. } if why.contains("belongs to uid")),
            "{e}"
        );
    }

    #[test]
    fn the_fallback_directory_is_named_by_the_real_uid() {
        let dir = base_dir(None);
        assert_eq!(
            dir.file_name().unwrap().to_str().unwrap(),
            format!("ec2ssh-{}", rustix::process::getuid().as_raw())
        );
    }

    #[test]
    fn the_managed_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let a = managed(&data).unwrap();
        let b = managed(&data).unwrap();
        assert_eq!(a.public, b.public);
        assert!(a.public.ends_with("ec2ssh managed key"));
        let mode = std::fs::metadata(&a.private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(a);
        assert!(b.private.exists());
    }

    #[test]
    fn an_existing_key_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("mine");
        std::fs::write(&private, "secret").unwrap();
        std::fs::write(dir.path().join("mine.pub"), "ssh-ed25519 AAAA me\n").unwrap();
        let key = ConnectionKey::existing(&private).unwrap();
        assert_eq!(key.public, "ssh-ed25519 AAAA me");
        assert!(!key.is_ephemeral());
        drop(key);
        assert!(private.exists());
        assert!(ConnectionKey::existing(&dir.path().join("none")).is_err());
    }
}
