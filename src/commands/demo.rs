//! `ec2ssh demo` and the hidden `ec2ssh sim`: the built-in simulator, in process.

use crate::cli::{DemoArgs, SimArgs};
use crate::error::AppError;

pub async fn run(_args: &DemoArgs) -> Result<u8, AppError> {
    Err(AppError::other("the demo is not built yet", "wait for the simulator"))
}

pub async fn serve(_args: &SimArgs) -> Result<u8, AppError> {
    Err(AppError::other("the simulator is not built yet", "wait for the simulator"))
}
