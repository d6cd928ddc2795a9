//! Pushing the connection's public key with EC2 Instance Connect `SendSSHPublicKey`:
//! the instance's sshd accepts it for 60 seconds.

use crate::aws::{AwsContext, AwsError, AwsErrorKind};
use crate::error::AppError;
use crate::fleet::Instance;

pub const ACTION: &str = "ec2-instance-connect:SendSSHPublicKey";

/// Pushes `public_key` for `user` on `instance`; every failure says what to do.
pub async fn push(
    ctx: &AwsContext,
    instance: &Instance,
    user: &str,
    public_key: &str,
) -> Result<(), AppError> {
    if instance.is_hybrid() {
        return Err(AppError::other(
            format!(
                "EC2 Instance Connect cannot push a key to {}: it is a hybrid managed node, not an EC2 instance",
                instance.id
            ),
            "log in with a key the node already accepts: `ec2ssh ssh --key ~/.ssh/id_ed25519 USER@ID`",
        ));
    }
    // The row's own account and region push its key.
    let ctx = ctx.for_instance(instance)?;
    let result = ctx
        .instance_connect(&instance.region)
        .send_ssh_public_key()
        .instance_id(&instance.id)
        .instance_os_user(user)
        .ssh_public_key(public_key)
        .set_availability_zone(instance.availability_zone.clone())
        .send()
        .await;
    match result {
        Ok(out) if out.success() => Ok(()),
        Ok(_) => Err(AppError::other(
            format!(
                "EC2 Instance Connect did not accept the key for {}",
                instance.id
            ),
            "try again; run with -v for details",
        )),
        Err(e) => Err(explain(
            ctx.tag(AwsError::from_sdk(ACTION, &instance.region, &e)),
            instance,
        )),
    }
}

/// The service's own error names, turned into what to do.
fn explain(err: AwsError, instance: &Instance) -> AppError {
    let id = &instance.id;
    let fix = match err.code.as_deref() {
        Some("EC2InstanceStateInvalidException") => format!(
            "{id} is not running (state: {}); start it first",
            instance.state.as_deref().unwrap_or("unknown")
        ),
        Some("EC2InstanceNotFoundException") => format!(
            "{id} is not in {}: check --region and that the instance still exists",
            instance.region
        ),
        Some("InvalidArgsException") => {
            "check the login user (--user, or the ec2ssh:user tag) and the key type (ed25519 or RSA >= 2048 bits)".to_string()
        }
        Some("EC2InstanceUnavailableException") | Some("ServiceException") => {
            "EC2 Instance Connect is unavailable right now; try again in a moment".to_string()
        }
        _ if err.kind == AwsErrorKind::AccessDenied => format!(
            "allow {ACTION} on arn:aws:ec2:{}:*:instance/{id} for your IAM identity (see the README, \"IAM permissions\")",
            instance.region
        ),
        _ => return AppError::Aws(err),
    };
    AppError::other(err.summary(), fix)
}
