//! `ec2ssh shell TARGET [--document NAME]`: a Session Manager shell on an instance
//! found by id, IP or Name, with ec2ssh's own data-channel client. No ssh and no key
//! push: for accounts that require (audited) Session Manager shells, and for Windows.

use crate::aws::AwsContext;
use crate::cli::ShellArgs;
use crate::error::AppError;
use crate::fleet;
use crate::select;
use crate::signals::Signals;

pub async fn run(ctx: &AwsContext, args: &ShellArgs) -> Result<u8, AppError> {
    // First, so that no signal can skip terminating the session.
    let mut signals = Signals::install();
    let inventory = fleet::fetch(ctx).await?;
    let instance = select::find_online(&inventory.instances, &args.target)?;
    let done = crate::shell::run(ctx, instance, args.document.as_deref(), &mut signals).await?;
    Ok(done.code.clamp(0, 255) as u8)
}
