//! EC2 Instance Connect in the simulator: `SendSSHPublicKey` (JSON 1.1) with the
//! service's validations and error names. Accepted keys are written where the test
//! rig's sshd finds them (`KEYS_DIR/USER/*.pub`, served for 60 s by its
//! AuthorizedKeysCommand), the way the ec2-instance-connect package serves them on a
//! real instance.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::{ApiError, SimState};

/// Key types Instance Connect accepts.
const KEY_TYPES: [&str; 4] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
];

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "InvalidArgsException", message)
}

/// The service model's pattern for `InstanceOSUser` (botocore's service-2.json):
/// `^[A-Za-z_][A-Za-z0-9@._-]{0,30}[A-Za-z0-9$_-]?$`, or 2–32 characters of digits
/// then `[A-Za-z@._-]`, then `[A-Za-z0-9@._-]*`, then an optional `[A-Za-z0-9$_-]`.
fn valid_user(user: &str) -> bool {
    let middle = |c: char| c.is_ascii_alphanumeric() || "@._-".contains(c);
    let last = |c: char| c.is_ascii_alphanumeric() || "$_-".contains(c);
    // Everything but an optional last character is `middle`; `$` only at the end.
    let body_ok = |body: &str| {
        let mut chars: Vec<char> = body.chars().collect();
        if chars.last().is_some_and(|&c| !middle(c)) {
            if !chars.last().is_some_and(|&c| last(c)) {
                return false;
            }
            chars.pop();
        }
        chars.into_iter().all(middle)
    };
    let Some(first) = user.chars().next() else {
        return false;
    };
    if first.is_ascii_alphabetic() || first == '_' {
        user.len() <= 32 && body_ok(&user[1..])
    } else if first.is_ascii_digit() {
        let digits = user.chars().take_while(char::is_ascii_digit).count();
        let rest = &user[digits..];
        (2..=32).contains(&user.len())
            && rest
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || "@._-".contains(c))
            && body_ok(&rest[1..])
    } else {
        false
    }
}

/// The service model's `InstanceId`: `^i-[a-f0-9]+$`, 10 to 32 characters.
fn valid_instance_id(id: &str) -> bool {
    (10..=32).contains(&id.len())
        && id
            .strip_prefix("i-")
            .is_some_and(|hex| hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// One OpenSSH public key line, `type base64 [comment]`, with a known type and
/// base64 that decodes, 80 to 4096 characters as the model says. Trailing whitespace
/// is accepted: `--ssh-public-key file://key.pub`, the documented usage, sends the
/// file with its final newline. A second line (another key) is not. Whether the
/// service also takes leading whitespace is not documented; this refuses it.
fn valid_key(key: &str) -> bool {
    use base64::Engine;
    if !(80..=4096).contains(&key.len()) {
        return false;
    }
    let line = key.trim_end();
    if line.contains(['\n', '\r']) || line.starts_with(char::is_whitespace) {
        return false;
    }
    let mut parts = line.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return false;
    };
    KEY_TYPES.contains(&kind)
        && base64::engine::general_purpose::STANDARD
            .decode(blob)
            .is_ok_and(|b| b.len() > 16)
}

/// Only `account`'s own instances: another account's id is not found, as for an id
/// in another region.
pub fn send_ssh_public_key(
    state: &SimState,
    account: &str,
    region: &str,
    req: &Value,
) -> Result<Value, ApiError> {
    let field = |k: &str| req[k].as_str().unwrap_or_default();
    let (id, user, key) = (
        field("InstanceId"),
        field("InstanceOSUser"),
        field("SSHPublicKey"),
    );
    if !valid_instance_id(id) {
        return Err(invalid(format!("Invalid instance ID: {id}")));
    }
    if !valid_user(user) {
        return Err(invalid(format!("Invalid OS user: {user}")));
    }
    if !valid_key(key) {
        return Err(invalid(
            "Unable to parse SSH public key. Supported key types are RSA (2048 bits or more), ED25519 and ECDSA.",
        ));
    }
    let instance = state
        .instance(account, region, id)
        .filter(|i| i.state.is_some())
        .ok_or_else(|| {
            ApiError::new(
                400,
                "EC2InstanceNotFoundException",
                format!("Instance not found: {id}"),
            )
        })?;
    if instance.state.as_deref() != Some("running") {
        return Err(ApiError::new(
            400,
            "EC2InstanceStateInvalidException",
            "Unable to connect because the instance is not in the running state.",
        ));
    }
    if let Some(dir) = instance.keys_dir.as_ref().or(state.opts.keys_dir.as_ref()) {
        store(dir, user, id, key).map_err(|e| {
            ApiError::new(
                500,
                "ServiceException",
                format!("could not store the key: {e}"),
            )
        })?;
    }
    if let Some(file) = &state.opts.authorized_keys {
        static WRITER: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = WRITER.lock().unwrap_or_else(|e| e.into_inner());
        super::sshd::authorize_for_a_minute(file, key).map_err(|e| {
            ApiError::new(
                500,
                "ServiceException",
                format!("could not store the key: {e}"),
            )
        })?;
    }
    state
        .keys_pushed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(json!({ "RequestId": state.request_id(), "Success": true }))
}

/// Writes the key as `DIR/USER/INSTANCE-NANOS.pub`; its mtime is the push time.
fn store(dir: &Path, user: &str, id: &str, key: &str) -> std::io::Result<()> {
    let dir = dir.join(user);
    std::fs::create_dir_all(&dir)?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(".{id}-{nanos}.tmp"));
    std::fs::write(&tmp, format!("{}\n", key.trim()))?;
    std::fs::rename(&tmp, dir.join(format!("{id}-{nanos}.pub")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPQjlJmOafhCXDxgY9QOv2zaZ6O8y5aIxJSPocfb+/qF";

    #[test]
    fn users_follow_the_service_models_pattern() {
        for ok in [
            "ec2-user", "_svc", "a.b@c", "ubuntu", "9lives", "12.x", "user$", "a", "x_-$",
        ] {
            assert!(valid_user(ok), "{ok}");
        }
        for bad in [
            "",
            "9",
            "123",
            "-x",
            "a b",
            "x/../y",
            "us$er",
            "$x",
            &"a".repeat(33),
        ] {
            assert!(!valid_user(bad), "{bad}");
        }
        assert!(valid_user(&"a".repeat(32)));
    }

    #[test]
    fn instance_ids_follow_the_service_models_pattern() {
        assert!(valid_instance_id("i-0123456789abcdef0"));
        assert!(valid_instance_id("i-01234567"));
        for bad in [
            "i-0123456",
            "i-0123456789ABCDEF0",
            "mi-0123456789abcdef0",
            "i-",
        ] {
            assert!(!valid_instance_id(bad), "{bad}");
        }
    }

    #[test]
    fn keys_as_the_cli_sends_them_from_a_file_are_accepted() {
        assert!(valid_key(KEY));
        let with_comment = format!("{KEY} me@laptop");
        assert!(valid_key(&with_comment));
        // `--ssh-public-key file://key.pub`: the file's trailing newline comes along.
        assert!(valid_key(&format!("{with_comment}\n")));
        assert!(valid_key(&format!("{KEY}\r\n")));
        for bad in [
            String::new(),
            "ssh-dss AAAAB3NzaC1kc3MAAACBAP".into(),
            format!("ssh-ed25519 !!!{}", "A".repeat(80)),
            "ssh-ed25519".into(),
            format!("{KEY}\n{KEY}"),
            format!(" {KEY}"),
            format!("{KEY} {}", "c".repeat(4096)),
        ] {
            assert!(!valid_key(&bad), "{bad}");
        }
    }
}
