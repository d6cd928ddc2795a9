//! Which profile and region own an instance id, for the commands that get a bare id
//! (`ec2ssh proxy`, so the ssh config's ProxyCommand, and `--push-key`): the only
//! profile and region of the run, else the cached fleet, else each profile × region
//! asked. An id that two accounts answer for is refused, naming both.

use aws_sdk_ssm::types::InstanceInformationStringFilter;
use futures::future::join_all;

use super::{Cache, Instance};
use crate::aws::{AwsContext, AwsError};
use crate::error::AppError;
use crate::text::sanitize;

/// One place an id was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub profile: Option<String>,
    pub region: String,
    pub account_id: Option<String>,
}

impl Owner {
    fn label(&self) -> String {
        let profile = self.profile.as_deref().unwrap_or("default chain");
        match &self.account_id {
            Some(a) => format!("profile {profile} (account {a}) in {}", self.region),
            None => format!("profile {profile} in {}", self.region),
        }
    }
}

/// The one owner among `hits`: several rows of one account (two roles on it) are
/// one owner; rows of two accounts (or of profiles whose account is unknown) are an
/// error naming each.
pub fn decide(id: &str, mut hits: Vec<Owner>) -> Result<Option<Owner>, AppError> {
    // One order whatever the source (a sorted fleet, answers as they came).
    hits.sort_by(|a, b| (&a.profile, &a.region).cmp(&(&b.profile, &b.region)));
    hits.dedup();
    let Some(first) = hits.first().cloned() else {
        return Ok(None);
    };
    let one_account = hits.iter().all(|h| {
        h.region == first.region
            && (h.profile == first.profile
                || (h.account_id.is_some() && h.account_id == first.account_id))
    });
    if one_account {
        return Ok(Some(first));
    }
    let places: Vec<String> = hits.iter().map(Owner::label).collect();
    Err(AppError::other(
        format!(
            "{} is in more than one account: {}",
            sanitize(id),
            sanitize(&places.join("; "))
        ),
        "name the one you mean: --profile NAME --region REGION (in ~/.ssh/config, a Host block per account)",
    ))
}

/// The owners of `id` among listed rows.
pub fn in_rows(rows: &[Instance], id: &str) -> Vec<Owner> {
    rows.iter()
        .filter(|i| i.id == id)
        .map(|i| Owner {
            profile: i.profile.clone(),
            region: i.region.clone(),
            account_id: i.account_id.clone(),
        })
        .collect()
}

/// The context that acts on `id`: its profile's credentials and its region.
pub async fn locate(
    ctx: &AwsContext,
    cache: Option<&Cache>,
    id: &str,
) -> Result<AwsContext, AppError> {
    let in_context = |o: Owner| -> Result<AwsContext, AppError> {
        let mut view = ctx.for_profile(o.profile.as_deref())?;
        view.regions = vec![o.region];
        Ok(view)
    };
    if ctx.profile_count() == 1 && ctx.regions.len() == 1 {
        return Ok(ctx.clone());
    }
    if let Some(cached) = cache.and_then(|c| c.load(&ctx.cache_key)) {
        if let Some(owner) = decide(id, in_rows(&cached.instances, id))? {
            tracing::debug!(?owner, "owner of {id} from the cache");
            return in_context(owner);
        }
    }
    let (hits, errors) = ask_each(ctx, id).await;
    match decide(id, hits)? {
        Some(owner) => in_context(owner),
        None => Err(not_found(ctx, id, errors)),
    }
}

/// Asks SSM in every profile × region whether it manages `id`.
async fn ask_each(ctx: &AwsContext, id: &str) -> (Vec<Owner>, Vec<AwsError>) {
    let views: Vec<AwsContext> = ctx.each_profile().collect();
    let asks = views.iter().flat_map(|view| {
        view.regions.iter().map(move |region| async move {
            let filter = InstanceInformationStringFilter::builder()
                .key("InstanceIds")
                .values(id)
                .build()
                .expect("key and values are set");
            let found = view
                .ssm(region)
                .describe_instance_information()
                .filters(filter)
                .send()
                .await
                .map_err(|e| {
                    view.tag(AwsError::from_sdk(
                        "ssm:DescribeInstanceInformation",
                        region,
                        &e,
                    ))
                })?
                .instance_information_list()
                .iter()
                .any(|i| i.instance_id() == Some(id));
            let (profile, account_id, _) = view.row_account();
            Ok::<_, AwsError>(found.then(|| Owner {
                profile,
                region: region.clone(),
                account_id,
            }))
        })
    });
    let mut hits = Vec::new();
    let mut errors = Vec::new();
    for answer in join_all(asks).await {
        match answer {
            Ok(Some(owner)) => hits.push(owner),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    (hits, crate::aws::error::merge(errors))
}

fn not_found(ctx: &AwsContext, id: &str, errors: Vec<AwsError>) -> AppError {
    let mut places: Vec<String> = Vec::new();
    for view in ctx.each_profile() {
        let who = view
            .profile_info()
            .map_or("the default chain".to_string(), |p| {
                format!("profile {}", p.name)
            });
        places.push(format!("{who} ({})", view.regions.join(", ")));
    }
    let also = errors
        .first()
        .map(|e| format!("; and {}", e.summary()))
        .unwrap_or_default();
    let fix = errors.first().map_or(
        "pass its profile and region with --profile and --region (`ec2ssh list` shows where it is)"
            .to_string(),
        AwsError::fix,
    );
    AppError::other(
        format!(
            "{} is not managed by Systems Manager in {}{also}",
            sanitize(id),
            places.join("; ")
        ),
        fix,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(profile: &str, region: &str, account: Option<&str>) -> Owner {
        Owner {
            profile: Some(profile.into()),
            region: region.into(),
            account_id: account.map(Into::into),
        }
    }

    #[test]
    fn one_owner_or_none() {
        assert_eq!(decide("i-1", vec![]).unwrap(), None);
        let dev = owner("dev", "us-east-1", Some("111111111111"));
        assert_eq!(decide("i-1", vec![dev.clone()]).unwrap(), Some(dev.clone()));
        // Two roles on one account see the same machine: that is one owner.
        let admin = owner("dev-admin", "us-east-1", Some("111111111111"));
        assert_eq!(decide("i-1", vec![dev.clone(), admin]).unwrap(), Some(dev));
    }

    #[test]
    fn an_id_in_two_accounts_is_refused_naming_both() {
        let e = decide(
            "i-0123456789abcdef0",
            vec![
                owner("dev", "us-east-1", Some("111111111111")),
                owner("prod", "us-east-1", Some("222222222222")),
            ],
        )
        .unwrap_err();
        let (what, fix) = e.explain().remove(0);
        assert_eq!(
            what,
            "i-0123456789abcdef0 is in more than one account: profile dev (account 111111111111) in us-east-1; profile prod (account 222222222222) in us-east-1"
        );
        assert!(fix.unwrap().contains("--profile NAME --region REGION"));
        // Unknown accounts cannot be told apart: refused too.
        assert!(decide(
            "i-1",
            vec![owner("a", "us-east-1", None), owner("b", "us-east-1", None)]
        )
        .is_err());
    }

    #[test]
    fn rows_give_their_owner() {
        let rows = vec![
            Instance {
                id: "i-1".into(),
                region: "eu-west-1".into(),
                profile: Some("prod".into()),
                account_id: Some("222222222222".into()),
                ..Default::default()
            },
            Instance {
                id: "i-2".into(),
                ..Default::default()
            },
        ];
        assert_eq!(
            in_rows(&rows, "i-1"),
            vec![owner("prod", "eu-west-1", Some("222222222222"))]
        );
    }
}
