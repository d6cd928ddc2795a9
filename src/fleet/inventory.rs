//! Fetching the fleet: every page of EC2 `DescribeInstances` and, for the instances
//! on each page as it arrives, SSM `DescribeInstanceInformation`, for every profile ×
//! region of the run in parallel. Each row carries the profile and account it was
//! listed with.

use std::sync::Arc;

use aws_sdk_ssm::types::InstanceInformationStringFilter;
use futures::future::join_all;
use futures::{StreamExt, TryStreamExt};

use super::describe;
use super::merge::{merge_region, SsmRecord};
use super::model::{sort_fleet, EiceEndpoint, Instance, Ping, Tags};
use super::reach;
use crate::aws::{page, AwsContext, AwsError, AwsErrorKind};

/// The merged fleet plus the calls that failed without sinking the whole listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    pub instances: Vec<Instance>,
    pub warnings: Vec<AwsError>,
}

/// Every call in every region failed: there is nothing to show.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", .errors.first().map(|e| e.summary()).unwrap_or_default())]
pub struct FetchError {
    pub errors: Vec<AwsError>,
}

/// Every profile × region of `ctx`. A profile whose calls all fail gives warnings
/// (named after it) and the others still list; only when nothing at all answers is
/// the listing an error.
pub async fn fetch(ctx: &AwsContext) -> Result<Inventory, FetchError> {
    let views: Vec<AwsContext> = ctx.each_profile().collect();
    let asks = views
        .iter()
        .flat_map(|v| v.regions.iter().map(move |r| fetch_profile_region(v, r)));
    let mut per_region = join_all(asks).await;
    // The biggest region's vector grows to hold the rest (no second copy of it).
    let total = per_region.iter().map(|(i, ..)| i.len()).sum::<usize>();
    let mut inv = Inventory::default();
    if let Some((biggest, ..)) = per_region.iter_mut().max_by_key(|(i, ..)| i.len()) {
        inv.instances = std::mem::take(biggest);
        inv.instances.reserve_exact(total - inv.instances.len());
    }
    let mut any_ok = false;
    for (instances, errors, eice_errors) in per_region {
        // EC2 or SSM answered (the endpoints alone list no machine).
        any_ok |= errors.len() < 2;
        inv.instances.extend(instances);
        inv.warnings.extend(errors);
        inv.warnings.extend(eice_errors);
    }
    inv.warnings = merge_regions(inv.warnings);
    if !any_ok {
        return Err(FetchError {
            errors: inv.warnings,
        });
    }
    sort_fleet(&mut inv.instances);
    Ok(inv)
}

/// One error per distinct failure, naming every region (and call) it happened in
/// (see [`crate::aws::error::merge`]).
pub fn merge_regions(errors: Vec<AwsError>) -> Vec<AwsError> {
    crate::aws::error::merge(errors)
}

/// One region of one profile: its rows stamped with the profile's account, its
/// errors named after the profile.
async fn fetch_profile_region(
    ctx: &AwsContext,
    region: &str,
) -> (Vec<Instance>, Vec<AwsError>, Vec<AwsError>) {
    let (mut instances, errors, eice_errors) = fetch_region(ctx, region).await;
    let (profile, account_id, account_name) = ctx.row_account();
    if profile.is_some() || account_id.is_some() {
        for i in &mut instances {
            i.profile.clone_from(&profile);
            if i.account_id.is_none() {
                i.account_id.clone_from(&account_id);
            }
            i.account_name.clone_from(&account_name);
        }
    }
    let tag = |errors: Vec<AwsError>| errors.into_iter().map(|e| ctx.tag(e)).collect();
    (instances, tag(errors), tag(eice_errors))
}

/// One region: EC2's pages stream in, and as each arrives SSM is asked about its
/// instances by id (`SSM_CONCURRENCY` lookups at once) while EC2 pages on; SSM-only
/// hybrid nodes come in a query of their own. Only when EC2 cannot be asked does SSM
/// list the whole region (if it answers at all).
async fn fetch_region(
    ctx: &AwsContext,
    region: &str,
) -> (Vec<Instance>, Vec<AwsError>, Vec<AwsError>) {
    let mut eice_errors = Vec::new();
    let client = ctx.ssm(region);
    let (ids, chunks) = tokio::sync::mpsc::unbounded_channel::<Vec<String>>();
    let chunks = futures::stream::unfold(chunks, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let lookups = chunks
        .map(|chunk| ssm_query(&client, region, Some(ids_filter(chunk))))
        .buffer_unordered(SSM_CONCURRENCY)
        .try_concat();
    let hybrids = ssm_query(&client, region, Some(hybrid_filter()));
    let (ec2, by_id, hybrids, endpoints) = tokio::join!(
        ec2_instances(ctx, region, ids),
        lookups,
        hybrids,
        eice_endpoints(ctx, region)
    );
    let mut errors = Vec::new();
    let (ec2, ssm) = match ec2 {
        Ok(instances) => {
            let ssm = by_id.and_then(|mut records| {
                records.extend(hybrids?);
                Ok(records)
            });
            (Some(instances), ssm)
        }
        // Without EC2's ids SSM lists the whole region, unless it just failed too.
        Err(e) => {
            errors.push(e);
            let ssm = match hybrids {
                Ok(_) => ssm_query(&client, region, None).await,
                Err(e) => Err(e),
            };
            (None, ssm)
        }
    };
    let ssm = ssm.map_err(|e| errors.push(e)).ok();
    let mut instances = merge_region(region, ec2, ssm);
    let ec2_failed = errors.iter().any(|e| e.action == "ec2:DescribeInstances");
    let endpoints = endpoints.map_err(|e| {
        // Without the permission (or on a service that lacks the call) the rows say
        // "EICE unknown" and name the action; a user who never asked for EICE gets no
        // warning on every listing. Other failures (network, throttling) are warnings,
        // unless EC2 failed too: then that is what the user must hear about.
        let quiet = matches!(
            e.kind,
            AwsErrorKind::AccessDenied | AwsErrorKind::NotImplemented
        );
        if ec2_failed || quiet {
            tracing::debug!(error = %e.summary(), "EC2 Instance Connect Endpoints not listed");
        } else {
            eice_errors.push(e);
        }
    });
    reach::assign(&mut instances, endpoints.as_deref().ok());
    (instances, errors, eice_errors)
}

/// One EC2 instance by id, as the fleet would list it (SSM's view and its endpoint
/// included), from the first of the context's regions that knows it; `None` when
/// none does. For `ec2ssh proxy` without the fleet at hand.
pub async fn lookup(ctx: &AwsContext, id: &str) -> Result<Option<Instance>, AwsError> {
    let mut last = None;
    for region in &ctx.regions {
        let out = ctx
            .ec2(region)
            .describe_instances()
            .instance_ids(id)
            .send()
            .await;
        let found: Vec<Instance> = match out {
            Ok(out) => out
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .map(|i| from_ec2(region, i))
                .collect(),
            Err(e) => {
                let e = AwsError::from_sdk("ec2:DescribeInstances", region, &e);
                // An id another region does not know is not an error.
                if e.code.as_deref() != Some("InvalidInstanceID.NotFound") {
                    last = Some(e);
                }
                continue;
            }
        };
        if found.is_empty() {
            continue;
        }
        let ids = [id.to_string()];
        let (ssm, endpoints) = tokio::join!(
            ssm_records(ctx, region, Some(&ids)),
            eice_endpoints(ctx, region)
        );
        let mut merged = merge_region(region, Some(found), ssm.ok());
        reach::assign(&mut merged, endpoints.as_deref().ok());
        return Ok(merged.into_iter().find(|i| i.id == id));
    }
    match last {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// Every page of `DescribeInstanceConnectEndpoints` in `region` (all states: which
/// ones a tunnel may use is decided in `reach`).
pub async fn eice_endpoints(ctx: &AwsContext, region: &str) -> Result<Vec<EiceEndpoint>, AwsError> {
    let mut pages = ctx
        .ec2(region)
        .describe_instance_connect_endpoints()
        .max_results(50)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(|e| AwsError::from_sdk("ec2:DescribeInstanceConnectEndpoints", region, &e))?;
        out.extend(page.instance_connect_endpoints().iter().map(|e| {
            EiceEndpoint {
                id: e
                    .instance_connect_endpoint_id()
                    .unwrap_or_default()
                    .to_string(),
                vpc_id: e.vpc_id().unwrap_or_default().to_string(),
                subnet_id: e.subnet_id().unwrap_or_default().to_string(),
                dns_name: e.dns_name().unwrap_or_default().to_string(),
                fips_dns_name: e
                    .fips_dns_name()
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
                state: e
                    .state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                security_groups: e.security_group_ids().to_vec(),
                preserve_client_ip: e.preserve_client_ip().unwrap_or(false),
            }
        }));
    }
    Ok(out)
}

/// Every page of `DescribeInstances`, each read straight into `Instance`s as it
/// arrives (see [`describe`]: no SDK shape is built); the ids of the live ones go to
/// `ids` in chunks that fit one SSM filter while the next page is asked for.
async fn ec2_instances(
    ctx: &AwsContext,
    region: &str,
    ids: tokio::sync::mpsc::UnboundedSender<Vec<String>>,
) -> Result<Vec<Instance>, AwsError> {
    let client = ctx.ec2(region);
    let owned = region.to_string();
    let parse: page::Parse<Vec<Instance>> = Arc::new(move |body: &[u8]| {
        let page = describe::parse(&owned, body)?;
        Ok((page.instances, page.next_token))
    });
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = client
            .describe_instances()
            .max_results(EC2_PAGE)
            .set_next_token(token.clone());
        let (rows, next) = page::describe_instances(request, parse.clone())
            .await
            .map_err(|e| AwsError::from_sdk("ec2:DescribeInstances", region, &e))?;
        let live: Vec<String> = rows
            .iter()
            .filter(|i| i.state.as_deref() != Some("terminated"))
            .map(|i| i.id.clone())
            .collect();
        for chunk in live.chunks(MAX_FILTER_VALUES) {
            // A closed channel means the lookups already failed; the listing goes on.
            let _ = ids.send(chunk.to_vec());
        }
        out.extend(rows);
        // As the SDK's paginator: no token, an empty one or the same one again ends it.
        match next.filter(|n| !n.is_empty()) {
            Some(n) if token.as_ref() != Some(&n) => token = Some(n),
            _ => break,
        }
    }
    Ok(out)
}

/// Instances per `DescribeInstances` page (the API allows 5 to 1,000). Half the
/// maximum halves the body in memory per region (a real EC2 page of 1,000 is some
/// 5 MB of XML) for a few more calls.
const EC2_PAGE: i32 = 500;

pub(super) fn from_ec2(region: &str, i: &aws_sdk_ec2::types::Instance) -> Instance {
    let tags: Tags = i
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect();
    let windows = i.platform().map(|p| p.as_str()) == Some("windows");
    Instance {
        id: i.instance_id().unwrap_or_default().to_string(),
        region: region.to_string(),
        name: tags.get("Name").filter(|n| !n.is_empty()).cloned(),
        state: i
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_string()),
        ping: Ping::NotManaged,
        platform_type: windows.then(|| "Windows".to_string()),
        platform_name: i.platform_details().map(str::to_string),
        platform_version: None,
        private_ip: i.private_ip_address().map(str::to_string),
        public_ip: i.public_ip_address().map(str::to_string),
        instance_type: i.instance_type().map(|t| t.as_str().to_string()),
        availability_zone: i
            .placement()
            .and_then(|p| p.availability_zone())
            .map(str::to_string),
        image_id: i.image_id().map(str::to_string),
        agent_version: None,
        last_ping: None,
        launch_time: i.launch_time().map(|t| t.secs()),
        iam_instance_profile: i
            .iam_instance_profile()
            .and_then(|p| p.arn())
            .map(str::to_string),
        vpc_id: i.vpc_id().map(str::to_string),
        subnet_id: i.subnet_id().map(str::to_string),
        security_groups: i
            .security_groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect(),
        eice: Default::default(),
        tags,
        profile: None,
        account_id: None,
        account_name: None,
    }
}

/// The most values one `DescribeInstanceInformation` filter may carry.
const MAX_FILTER_VALUES: usize = 50;

/// `DescribeInstanceInformation` calls in flight per region. Pages of 50 make the
/// listing latency-bound, so a few at once pay; more would run into the API's rate.
const SSM_CONCURRENCY: usize = 4;

fn ids_filter(ids: Vec<String>) -> InstanceInformationStringFilter {
    InstanceInformationStringFilter::builder()
        .key("InstanceIds")
        .set_values(Some(ids))
        .build()
        .expect("key and values are set")
}

/// Managed nodes that are not EC2 instances (hybrid activations, `mi-…`).
fn hybrid_filter() -> InstanceInformationStringFilter {
    InstanceInformationStringFilter::builder()
        .key("ResourceType")
        .values("ManagedInstance")
        .build()
        .expect("key and values are set")
}

/// Every page of `DescribeInstanceInformation` in `region`; with `ids`, only those
/// instances (chunks of `MAX_FILTER_VALUES`, `SSM_CONCURRENCY` at once).
pub(super) async fn ssm_records(
    ctx: &AwsContext,
    region: &str,
    ids: Option<&[String]>,
) -> Result<Vec<SsmRecord>, AwsError> {
    let client = ctx.ssm(region);
    match ids {
        None => ssm_query(&client, region, None).await,
        Some(ids) => {
            let chunks: Vec<Vec<String>> =
                ids.chunks(MAX_FILTER_VALUES).map(<[_]>::to_vec).collect();
            futures::stream::iter(chunks)
                .map(|chunk| ssm_query(&client, region, Some(ids_filter(chunk))))
                .buffer_unordered(SSM_CONCURRENCY)
                .try_concat()
                .await
        }
    }
}

/// Every page of one `DescribeInstanceInformation` query.
async fn ssm_query(
    client: &aws_sdk_ssm::Client,
    region: &str,
    filter: Option<InstanceInformationStringFilter>,
) -> Result<Vec<SsmRecord>, AwsError> {
    let mut pages = client
        .describe_instance_information()
        .max_results(50)
        .set_filters(filter.map(|f| vec![f]))
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| AwsError::from_sdk("ssm:DescribeInstanceInformation", region, &e))?;
        out.extend(page.instance_information_list().iter().map(from_ssm));
    }
    Ok(out)
}

fn from_ssm(i: &aws_sdk_ssm::types::InstanceInformation) -> SsmRecord {
    SsmRecord {
        id: i.instance_id().unwrap_or_default().to_string(),
        ping: i
            .ping_status()
            .map(|p| Ping::from_ssm(p.as_str()))
            .unwrap_or(Ping::Unknown),
        agent_version: i.agent_version().map(str::to_string),
        last_ping: i.last_ping_date_time().map(|t| t.secs()),
        platform_type: i.platform_type().map(|p| p.as_str().to_string()),
        platform_name: i.platform_name().map(str::to_string),
        platform_version: i.platform_version().map(str::to_string),
        ip_address: i.ip_address().map(str::to_string),
        computer_name: i.computer_name().map(str::to_string),
        name: i.name().filter(|n| !n.is_empty()).map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(action: &str, region: &str) -> AwsError {
        AwsError {
            action: action.into(),
            region: region.into(),
            kind: AwsErrorKind::AccessDenied,
            code: Some("AccessDeniedException".into()),
            message: String::new(),
            profile: None,
        }
    }

    #[test]
    fn the_same_failure_in_several_regions_is_one_error() {
        let merged = merge_regions(vec![
            err("ssm:DescribeInstanceInformation", "us-east-1"),
            err("ec2:DescribeInstances", "us-east-1"),
            err("ssm:DescribeInstanceInformation", "eu-west-1"),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].region, "us-east-1, eu-west-1");
        assert_eq!(
            merged[0].summary(),
            "ssm:DescribeInstanceInformation was denied in us-east-1, eu-west-1 (AccessDeniedException)"
        );
    }
}
