//! `ec2ssh doctor [TARGET]`: the checklist `doctor::diagnose` makes, printed (or as
//! JSON). Exit 0 only when nothing failed.

use std::io::IsTerminal;

use crate::aws::AwsContext;
use crate::cli::DoctorArgs;
use crate::doctor::evidence::Evidence;
use crate::doctor::{diagnose, render, to_json};
use crate::error::AppError;

pub async fn run(ctx: &AwsContext, args: &DoctorArgs) -> Result<u8, AppError> {
    let list = diagnose(ctx, args.target.as_deref(), &Evidence::default()).await;
    if args.json {
        println!("{}", crate::text::json_inert(to_json(&list)));
    } else {
        let color = crate::commands::list::use_color(crate::cli::ColorChoice::Auto, true)
            && std::io::stdout().is_terminal();
        for l in render(&list, color) {
            println!("{l}");
        }
    }
    Ok(if crate::doctor::all_ok(&list) { 0 } else { 1 })
}
