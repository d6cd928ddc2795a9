//! Which instances a user means: one (`ec2ssh ssh web-1`) or several (`ec2ssh scp -t
//! tag:Role=web`), by id, IP, Name, tag, or fuzzy query. Pure: no AWS calls.

use crate::error::AppError;
use crate::fleet::Instance;
use crate::text::sanitize;

/// The one instance `target` names: an id, an IP, an exact Name, or a unique fuzzy match.
pub fn find<'a>(instances: &'a [Instance], target: &str) -> Result<&'a Instance, AppError> {
    let by = |f: &dyn Fn(&Instance) -> bool| instances.iter().filter(|i| f(i)).collect::<Vec<_>>();
    let exact_id = by(&|i| i.id == target);
    let candidates = if !exact_id.is_empty() {
        exact_id
    } else {
        let ip = by(&|i| {
            i.private_ip.as_deref() == Some(target) || i.public_ip.as_deref() == Some(target)
        });
        if !ip.is_empty() {
            ip
        } else {
            let named = by(&|i| {
                i.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(target))
            });
            if !named.is_empty() {
                named
            } else {
                crate::filter::filter_instances(instances, target)
            }
        }
    };
    match candidates.as_slice() {
        [one] => Ok(one),
        [] => Err(AppError::other(
            format!("no instance matches {:?}", sanitize(target)),
            "`ec2ssh list` shows the fleet; pass an id, an IP or a Name",
        )),
        many => {
            let list: Vec<String> = many
                .iter()
                .take(10)
                .map(|i| {
                    // Ids repeat across accounts: say whose each one is.
                    let account = match i.profile.as_deref() {
                        Some(p) => format!(", profile {}", sanitize(p)),
                        None => String::new(),
                    };
                    format!(
                        "{} {} ({}{account})",
                        i.id,
                        sanitize(i.display_name()),
                        i.ping.label()
                    )
                })
                .collect();
            let more = many.len().saturating_sub(10);
            let tail = if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            };
            Err(AppError::other(
                format!(
                    "{:?} matches {} instances: {}{tail}",
                    sanitize(target),
                    many.len(),
                    list.join("; ")
                ),
                "use the instance id, or more of the name",
            ))
        }
    }
}

/// `find`, refusing an instance that Systems Manager cannot reach now: nothing (no
/// session, no key push) would work.
pub fn find_online<'a>(instances: &'a [Instance], target: &str) -> Result<&'a Instance, AppError> {
    let instance = find(instances, target)?;
    if instance.ping != crate::fleet::Ping::Online {
        return Err(not_online(instance));
    }
    Ok(instance)
}

/// The error for an instance that is not Online, with the way to find out why.
pub fn not_online(instance: &Instance) -> AppError {
    AppError::other(
        format!(
            "{} ({}) is not connected to Systems Manager (ping status: {})",
            instance.id,
            sanitize(instance.display_name()),
            instance.ping.label()
        ),
        format!(
            "it must be running with its SSM agent Online; `ec2ssh doctor {}` checks why",
            instance.id
        ),
    )
}

/// Every instance `query` selects, in fleet order: `tag:KEY=VALUE` (VALUE may use `*`
/// and `?`), an id, an IP, every instance with that exact Name, else every fuzzy match.
/// Nothing selected is an error naming the query.
pub fn select<'a>(instances: &'a [Instance], query: &str) -> Result<Vec<&'a Instance>, AppError> {
    let by = |f: &dyn Fn(&Instance) -> bool| instances.iter().filter(|i| f(i)).collect::<Vec<_>>();
    let found = if let Some(tag) = query.strip_prefix("tag:") {
        let Some((key, value)) = tag.split_once('=') else {
            return Err(AppError::other(
                format!("{:?} is not a tag selector", sanitize(query)),
                "write it as tag:KEY=VALUE, e.g. tag:Role=web (VALUE may use * and ?)",
            ));
        };
        by(&|i| {
            i.tags
                .get(key)
                .is_some_and(|v| crate::names::glob(value, v))
        })
    } else {
        let exact = by(&|i| {
            i.id == query
                || i.private_ip.as_deref() == Some(query)
                || i.public_ip.as_deref() == Some(query)
                || i.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(query))
        });
        if exact.is_empty() {
            let mut fuzzy = crate::filter::filter_instances(instances, query);
            // Fleet order, not match rank: the same query gives the same plan.
            fuzzy.sort_by_key(|i| instances.iter().position(|j| j.id == i.id));
            fuzzy
        } else {
            exact
        }
    };
    if found.is_empty() {
        return Err(AppError::other(
            format!("no instance matches {:?}", sanitize(query)),
            "`ec2ssh list` shows the fleet; select by id, IP, Name, tag:KEY=VALUE or a fuzzy query",
        ));
    }
    Ok(found)
}

/// The union of what several queries select, each instance once, in query order.
pub fn select_all<'a>(
    instances: &'a [Instance],
    queries: &[String],
) -> Result<Vec<&'a Instance>, AppError> {
    let mut out: Vec<&Instance> = Vec::new();
    for q in queries {
        for i in select(instances, q)? {
            if !out.iter().any(|o| o.id == i.id) {
                out.push(i);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, name: &str, ip: &str) -> Instance {
        Instance {
            id: id.into(),
            name: Some(name.into()),
            private_ip: Some(ip.into()),
            ..Instance::default()
        }
    }

    #[test]
    fn finds_by_id_ip_name_and_unique_fuzzy_match() {
        let fleet = [
            inst("i-01", "web-prod-1", "10.0.0.1"),
            inst("i-02", "web-prod-2", "10.0.0.2"),
            inst("i-03", "db-primary", "10.0.0.3"),
        ];
        assert_eq!(find(&fleet, "i-02").unwrap().id, "i-02");
        assert_eq!(find(&fleet, "10.0.0.3").unwrap().id, "i-03");
        assert_eq!(find(&fleet, "WEB-PROD-1").unwrap().id, "i-01");
        assert_eq!(find(&fleet, "dbprim").unwrap().id, "i-03");
        let e = find(&fleet, "webprod").unwrap_err().to_string();
        assert!(
            e.contains("matches 2 instances") && e.contains("i-01") && e.contains("i-02"),
            "{e}"
        );
        assert!(find(&fleet, "nothing-like-it").is_err());
    }

    #[test]
    fn selects_many_by_tag_name_and_fuzzy_query() {
        let mut fleet = vec![
            inst("i-01", "web-prod-1", "10.0.0.1"),
            inst("i-02", "web-prod-2", "10.0.0.2"),
            inst("i-03", "db-primary", "10.0.0.3"),
            inst("i-04", "web-prod-1", "10.0.0.4"),
        ];
        fleet[1].tags.insert("Role".into(), "web".into());
        fleet[2].tags.insert("Role".into(), "db".into());
        fleet[3].tags.insert("Role".into(), "web-canary".into());
        let ids = |v: Vec<&Instance>| v.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(select(&fleet, "tag:Role=web").unwrap()), ["i-02"]);
        assert_eq!(
            ids(select(&fleet, "tag:Role=web*").unwrap()),
            ["i-02", "i-04"]
        );
        assert_eq!(
            ids(select(&fleet, "web-prod-1").unwrap()),
            ["i-01", "i-04"],
            "every instance with the Name"
        );
        assert_eq!(
            ids(select(&fleet, "webprod").unwrap()),
            ["i-01", "i-02", "i-04"]
        );
        assert_eq!(ids(select(&fleet, "10.0.0.3").unwrap()), ["i-03"]);
        assert!(select(&fleet, "tag:Role").is_err());
        assert!(select(&fleet, "tag:Role=cache").is_err());
        let all = select_all(&fleet, &["i-03".into(), "webprod".into(), "i-01".into()]).unwrap();
        assert_eq!(ids(all), ["i-03", "i-01", "i-02", "i-04"]);
    }
}
