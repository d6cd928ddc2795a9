//! STS in the simulator: `GetCallerIdentity` (query protocol, its own XML namespace),
//! the one STS call ec2ssh makes (doctor's identity and clock check).

use super::SimState;

/// STS `GetCallerIdentity` (query protocol, its own XML namespace): the caller's account.
pub fn get_caller_identity(state: &SimState, account: &str) -> String {
    format!(
        r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::{account}:user/demo</Arn><UserId>AIDADEMO00000000000001</UserId><Account>{account}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></GetCallerIdentityResponse>"#,
        state.request_id()
    )
}
