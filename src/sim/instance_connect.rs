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

/// The service's pattern for OS user names.
fn valid_user(user: &str) -> bool {
    let mut chars = user.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && user.len() <= 32
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@._-$".contains(c))
}

/// `type base64 [comment]` with a known type and base64 that decodes.
fn valid_key(key: &str) -> bool {
    use base64::Engine;
    let mut parts = key.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return false;
    };
    KEY_TYPES.contains(&kind)
        && base64::engine::general_purpose::STANDARD
            .decode(blob)
            .is_ok_and(|b| b.len() > 16)
        && !key.contains(['\n', '\r'])
}

pub fn send_ssh_public_key(state: &SimState, region: &str, req: &Value) -> Result<Value, ApiError> {
    let field = |k: &str| req[k].as_str().unwrap_or_default();
    let (id, user, key) = (
        field("InstanceId"),
        field("InstanceOSUser"),
        field("SSHPublicKey"),
    );
    let id_ok = id
        .strip_prefix("i-")
        .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if !id_ok {
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
    let default_region = &state.fleet.default_region;
    let instance = state
        .fleet
        .instances
        .iter()
        .find(|i| i.id == id && i.region(default_region) == region && i.state.is_some())
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

    #[test]
    fn users_and_keys_are_validated_like_the_service() {
        assert!(valid_user("ec2-user") && valid_user("_svc") && valid_user("a.b@c"));
        for bad in ["", "9lives", "-x", "a b", "x/../y", &"a".repeat(33)] {
            assert!(!valid_user(bad), "{bad}");
        }
        let ok =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPQjlJmOafhCXDxgY9QOv2zaZ6O8y5aIxJSPocfb+/qF c";
        assert!(valid_key(ok));
        for bad in [
            "",
            "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
            "ssh-ed25519 !!!",
            "ssh-ed25519",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPQjlJmOafhCXDxgY9QOv2zaZ6O8y5aIxJSPocfb+/qF\nssh-rsa x",
        ] {
            assert!(!valid_key(bad), "{bad}");
        }
    }
}
