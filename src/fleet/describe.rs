//! One page of EC2 `DescribeInstances` (its XML) read straight into [`Instance`] rows:
//! only the elements the model keeps, at the places EC2 puts them, with no SDK shape
//! built in between. At 100,000 instances the SDK's own parse (a struct of some 100
//! fields per instance, each enum matched against every known value) was the biggest
//! cost of a listing. The SDK still signs, retries and reads every error response
//! (see [`crate::aws::page`]); this reads successful pages only.
//!
//! Where an element sits decides what it is: `privateIpAddress` is the instance's only
//! as a direct child of the instance's `item`, not inside `networkInterfaceSet`; the
//! same for `groupSet`, `tagSet` and the rest (as the SDK's scoped decoder reads them).

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use xmlparser::{ElementEnd, Token, Tokenizer};

use super::model::{Instance, Ping, Tags};

/// The rows of one page and the token of the next one.
#[derive(Debug, Default, PartialEq)]
pub struct Page {
    pub instances: Vec<Instance>,
    pub next_token: Option<String>,
}

/// Why a successful response's body is not a `DescribeInstances` page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("the body is not UTF-8")]
    Utf8,
    #[error("malformed XML: {0}")]
    Xml(#[from] xmlparser::Error),
    #[error("expected DescribeInstancesResponse, got <{0}>")]
    Root(String),
    #[error("malformed XML: </{0}> closes another element")]
    Unbalanced(String),
    #[error("malformed XML: the document ends inside an element")]
    Truncated,
    #[error("malformed XML: unknown entity &{0};")]
    Entity(String),
    #[error("expected a timestamp in launchTime, got {0:?}")]
    Time(String),
}

/// What a text-only element of the page is, by its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaf {
    NextToken,
    OwnerId,
    InstanceId,
    ImageId,
    State,
    InstanceType,
    LaunchTime,
    Platform,
    PlatformDetails,
    PrivateIp,
    PublicIp,
    VpcId,
    SubnetId,
    Zone,
    ProfileArn,
    GroupId,
    TagKey,
    TagValue,
}

/// Where the elements sit: `DescribeInstancesResponse / reservationSet / item /
/// instancesSet / item / …`.
const RESERVATION: usize = 3;
const INSTANCE: usize = 5;

fn leaf(path: &[&str]) -> Option<Leaf> {
    use Leaf::*;
    match path {
        [_, "nextToken"] => Some(NextToken),
        [_, "reservationSet", "item", rest @ ..] => match rest {
            ["ownerId"] => Some(OwnerId),
            ["instancesSet", "item", field @ ..] => Some(match field {
                ["instanceId"] => InstanceId,
                ["imageId"] => ImageId,
                ["instanceState", "name"] => State,
                ["instanceType"] => InstanceType,
                ["launchTime"] => LaunchTime,
                ["platform"] => Platform,
                ["platformDetails"] => PlatformDetails,
                ["privateIpAddress"] => PrivateIp,
                ["ipAddress"] => PublicIp,
                ["vpcId"] => VpcId,
                ["subnetId"] => SubnetId,
                ["placement", "availabilityZone"] => Zone,
                ["iamInstanceProfile", "arn"] => ProfileArn,
                ["groupSet", "item", "groupId"] => GroupId,
                ["tagSet", "item", "key"] => TagKey,
                ["tagSet", "item", "value"] => TagValue,
                _ => return None,
            }),
            _ => None,
        },
        _ => None,
    }
}

fn is_tag(path: &[&str]) -> bool {
    path.len() == INSTANCE + 2 && path[INSTANCE] == "tagSet" && path[INSTANCE + 1] == "item"
}

fn is_instance(path: &[&str]) -> bool {
    path.len() == INSTANCE && path[RESERVATION] == "instancesSet" && path[1] == "reservationSet"
}

fn is_reservation(path: &[&str]) -> bool {
    path.len() == RESERVATION && path[1] == "reservationSet" && path[2] == "item"
}

/// The instance being read: its fields, its tags in document order.
#[derive(Default)]
struct Draft {
    row: Instance,
    tags: Vec<(String, String)>,
    platform: Option<String>,
}

impl Draft {
    fn finish(self) -> Instance {
        let mut row = self.row;
        // As a map (the last of a repeated key wins), `Name` also the row's name.
        let tags: Tags = self.tags.into_iter().collect();
        row.name = tags.get("Name").filter(|n| !n.is_empty()).cloned();
        row.tags = tags;
        if self.platform.as_deref() == Some("windows") {
            row.platform_type = Some("Windows".into());
        }
        row
    }
}

/// Reads one page for `region`. Rows carry the reservation's owner as their account.
pub fn parse(region: &str, body: &[u8]) -> Result<Page, PageError> {
    let xml = std::str::from_utf8(body).map_err(|_| PageError::Utf8)?;
    let mut page = Page::default();
    let mut path: Vec<&str> = Vec::with_capacity(12);
    let mut reading: Option<Leaf> = None;
    let mut text = String::new();
    let mut draft: Option<Draft> = None;
    let mut tag: (Option<String>, Option<String>) = (None, None);
    // Rows of the current reservation start here (its ownerId may follow them).
    let mut reservation_start = 0;
    let mut owner: Option<String> = None;
    let mut root_seen = false;

    for token in Tokenizer::from(xml) {
        let closed = match token? {
            Token::ElementStart { local, .. } => {
                let local = local.as_str();
                if !root_seen {
                    if local != "DescribeInstancesResponse" {
                        return Err(PageError::Root(local.to_string()));
                    }
                    root_seen = true;
                } else if path.is_empty() {
                    // A second root: nothing of it is read (as the SDK's decoder).
                    return Err(PageError::Root(local.to_string()));
                }
                path.push(local);
                reading = leaf(&path);
                text.clear();
                if is_instance(&path) {
                    draft = Some(Draft {
                        row: Instance {
                            region: region.to_string(),
                            ping: Ping::NotManaged,
                            ..Instance::default()
                        },
                        ..Draft::default()
                    });
                } else if is_reservation(&path) {
                    reservation_start = page.instances.len();
                    owner = None;
                } else if is_tag(&path) {
                    tag = (None, None);
                }
                false
            }
            Token::Text { text: t } if reading.is_some() => {
                unescape_into(&mut text, t.as_str())?;
                false
            }
            Token::Cdata { text: t, .. } if reading.is_some() => {
                text.push_str(t.as_str());
                false
            }
            Token::ElementEnd {
                end: ElementEnd::Empty,
                ..
            } => true,
            Token::ElementEnd {
                end: ElementEnd::Close(_, local),
                ..
            } => {
                if path.last() != Some(&local.as_str()) {
                    return Err(PageError::Unbalanced(local.as_str().to_string()));
                }
                true
            }
            _ => false,
        };
        if !closed {
            continue;
        }
        if let Some(l) = reading.take() {
            let value = std::mem::take(&mut text);
            store(l, value, &mut page, draft.as_mut(), &mut tag, &mut owner)?;
        }
        if is_tag(&path) {
            if let (Some(d), (Some(k), v)) = (draft.as_mut(), std::mem::take(&mut tag)) {
                d.tags.push((k, v.unwrap_or_default()));
            }
        } else if is_instance(&path) {
            if let Some(d) = draft.take() {
                page.instances.push(d.finish());
            }
        } else if is_reservation(&path) {
            for row in &mut page.instances[reservation_start..] {
                row.account_id.clone_from(&owner);
            }
        }
        path.pop();
    }
    if !root_seen || !path.is_empty() {
        return Err(PageError::Truncated);
    }
    Ok(page)
}

fn store(
    leaf: Leaf,
    value: String,
    page: &mut Page,
    draft: Option<&mut Draft>,
    tag: &mut (Option<String>, Option<String>),
    owner: &mut Option<String>,
) -> Result<(), PageError> {
    match leaf {
        Leaf::NextToken => page.next_token = Some(value),
        Leaf::OwnerId => *owner = Some(value),
        Leaf::TagKey => tag.0 = Some(value),
        Leaf::TagValue => tag.1 = Some(value),
        _ => {
            let Some(d) = draft else { return Ok(()) };
            let row = &mut d.row;
            match leaf {
                Leaf::InstanceId => row.id = value,
                Leaf::ImageId => row.image_id = Some(value),
                Leaf::State => row.state = Some(value),
                Leaf::InstanceType => row.instance_type = Some(value),
                Leaf::LaunchTime => {
                    let t = DateTime::from_str(&value, Format::DateTimeWithOffset)
                        .map_err(|_| PageError::Time(value))?;
                    row.launch_time = Some(t.secs());
                }
                Leaf::Platform => d.platform = Some(value),
                Leaf::PlatformDetails => row.platform_name = Some(value),
                Leaf::PrivateIp => row.private_ip = Some(value),
                Leaf::PublicIp => row.public_ip = Some(value),
                Leaf::VpcId => row.vpc_id = Some(value),
                Leaf::SubnetId => row.subnet_id = Some(value),
                Leaf::Zone => row.availability_zone = Some(value),
                Leaf::ProfileArn => row.iam_instance_profile = Some(value),
                Leaf::GroupId => row.security_groups.push(value),
                Leaf::NextToken | Leaf::OwnerId | Leaf::TagKey | Leaf::TagValue => {}
            }
        }
    }
    Ok(())
}

/// Appends `raw` with XML's five entities and character references decoded.
fn unescape_into(out: &mut String, raw: &str) -> Result<(), PageError> {
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after
            .find(';')
            .ok_or_else(|| PageError::Entity(after.chars().take(8).collect()))?;
        let name = &after[..end];
        let c = match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = name.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = name.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| PageError::Entity(name.to_string()))?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::config::ConfigBag;
    use aws_sdk_ec2::operation::describe_instances::{DescribeInstances, DescribeInstancesOutput};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::client::runtime_plugin::RuntimePlugin;
    use aws_smithy_runtime_api::client::ser_de::{DeserializeResponse, SharedResponseDeserializer};
    use aws_smithy_types::body::SdkBody;

    use super::*;
    use crate::fleet::inventory::from_ec2;
    use crate::sim::{FleetFile, SimOptions, SimState};

    /// The SDK's own reading of `xml` (its DescribeInstances deserializer), as the fleet
    /// turned it into rows before: every instance of every reservation, with its owner.
    fn sdk_page(region: &str, xml: &str) -> Result<Page, String> {
        let layer = DescribeInstances::new().config().unwrap();
        let sdk = layer.load::<SharedResponseDeserializer>().unwrap();
        let response = HttpResponse::new(200u16.try_into().unwrap(), SdkBody::from(xml));
        let out = sdk
            .deserialize_nonstreaming_with_config(&response, &ConfigBag::base())
            .map_err(|e| format!("{e:?}"))?;
        let out = out.downcast::<DescribeInstancesOutput>().unwrap();
        let instances = out
            .reservations()
            .iter()
            .flat_map(|r| {
                r.instances().iter().map(move |i| Instance {
                    account_id: r.owner_id().map(str::to_string),
                    ..from_ec2(region, i)
                })
            })
            .collect();
        Ok(Page {
            instances,
            next_token: out.next_token().map(str::to_string),
        })
    }

    fn ours(region: &str, xml: &str) -> Page {
        parse(region, xml.as_bytes()).unwrap()
    }

    /// A real EC2 answer (botocore's test data): two reservations, a stopped Linux
    /// machine with an empty-valued tag and a running Windows one.
    const BOTOCORE: &str = include_str!("../../tests/data/ec2-describe-instances.xml");

    #[test]
    fn a_real_ec2_page_reads_as_the_sdk_reads_it() {
        let page = ours("us-west-2", BOTOCORE);
        assert_eq!(page, sdk_page("us-west-2", BOTOCORE).unwrap());
        let [stopped, windows] = &page.instances[..] else {
            panic!("two instances: {page:?}")
        };
        assert_eq!(stopped.id, "i-fde9cece");
        assert_eq!(stopped.state.as_deref(), Some("stopped"));
        assert_eq!(stopped.tags.get("notebook").map(String::as_str), Some(""));
        assert_eq!(stopped.security_groups, ["sg-4e970e7e"]);
        assert_eq!(stopped.launch_time, Some(1_350_417_613));
        assert_eq!(stopped.account_id.as_deref(), Some("123456789012"));
        assert_eq!(windows.platform_type.as_deref(), Some("Windows"));
        assert_eq!(windows.public_ip.as_deref(), Some("54.245.16.142"));
        assert_eq!(windows.private_ip.as_deref(), Some("10.253.17.74"));
        assert_eq!(windows.availability_zone.as_deref(), Some("us-west-2b"));
        assert_eq!(page.next_token, None);
    }

    /// What a current EC2 answer carries besides: network interfaces with their own
    /// addresses, groups and tags, an instance profile, escaped text, several instances
    /// in one reservation, a next token. Only the instance's own elements count.
    const NESTED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
  <reservationSet>
    <item>
      <reservationId>r-1234567890abcdef0</reservationId>
      <ownerId>210987654321</ownerId>
      <groupSet><item><groupId>sg-reservation</groupId></item></groupSet>
      <instancesSet>
        <item>
          <instanceId>i-0598c7d356eba48d7</instanceId>
          <imageId>ami-0abcdef1234567890</imageId>
          <instanceState><code>16</code><name>running</name></instanceState>
          <privateDnsName>ip-10-0-0-157.ec2.internal</privateDnsName>
          <instanceType>t3.micro</instanceType>
          <launchTime>2024-05-01T10:11:12.000Z</launchTime>
          <placement><availabilityZone>us-east-1a</availabilityZone><tenancy>default</tenancy></placement>
          <monitoring><state>disabled</state></monitoring>
          <subnetId>subnet-04a636d18e83cfacb</subnetId>
          <vpcId>vpc-1234567890abcdef0</vpcId>
          <privateIpAddress>10.0.0.157</privateIpAddress>
          <ipAddress>34.253.223.13</ipAddress>
          <groupSet>
            <item><groupId>sg-0b0384b66d7d692f9</groupId><groupName>web</groupName></item>
            <item><groupId>sg-0c1111111111111111</groupId><groupName>ssh</groupName></item>
          </groupSet>
          <iamInstanceProfile>
            <arn>arn:aws:iam::210987654321:instance-profile/ssm-core</arn>
            <id>AIPAJ7EXAMPLE</id>
          </iamInstanceProfile>
          <networkInterfaceSet>
            <item>
              <networkInterfaceId>eni-0e3e0b4a1ca8a1ebb</networkInterfaceId>
              <subnetId>subnet-decoy</subnetId>
              <vpcId>vpc-decoy</vpcId>
              <privateIpAddress>10.9.9.9</privateIpAddress>
              <groupSet><item><groupId>sg-decoy</groupId><groupName>decoy</groupName></item></groupSet>
              <association><publicIp>34.253.223.13</publicIp><ipOwnerId>amazon</ipOwnerId></association>
              <privateIpAddressesSet>
                <item><privateIpAddress>10.9.9.8</privateIpAddress><primary>true</primary></item>
              </privateIpAddressesSet>
              <tagSet><item><key>Name</key><value>decoy-eni</value></item></tagSet>
            </item>
          </networkInterfaceSet>
          <platformDetails>Linux/UNIX</platformDetails>
          <tagSet>
            <item><key>Name</key><value>web &amp; api &lt;prod&gt; caf&#233; &#x2603;</value></item>
            <item><key>team</key><value>a&lt;b</value></item>
            <item><key>no-value</key></item>
            <item><value>no key</value></item>
          </tagSet>
          <metadataOptions><state>applied</state></metadataOptions>
        </item>
        <item>
          <instanceId>i-0000000000000000b</instanceId>
          <instanceState><code>48</code><name>terminated</name></instanceState>
          <platform>windows</platform>
          <platformDetails>Windows</platformDetails>
          <tagSet><item><key>Name</key><value/></item></tagSet>
        </item>
      </instancesSet>
    </item>
  </reservationSet>
  <nextToken>eyJ2IjoiMiIsImMiOiJxIn0=</nextToken>
</DescribeInstancesResponse>"#;

    #[test]
    fn only_the_instances_own_elements_count() {
        let page = ours("us-east-1", NESTED);
        assert_eq!(page, sdk_page("us-east-1", NESTED).unwrap());
        let web = &page.instances[0];
        assert_eq!(web.private_ip.as_deref(), Some("10.0.0.157"));
        assert_eq!(web.vpc_id.as_deref(), Some("vpc-1234567890abcdef0"));
        assert_eq!(
            web.security_groups,
            ["sg-0b0384b66d7d692f9", "sg-0c1111111111111111"]
        );
        assert_eq!(web.name.as_deref(), Some("web & api <prod> café ☃"));
        assert_eq!(web.tags.get("team").map(String::as_str), Some("a<b"));
        assert_eq!(web.tags.get("no-value").map(String::as_str), Some(""));
        assert_eq!(web.tags.len(), 3);
        assert_eq!(
            web.iam_instance_profile.as_deref(),
            Some("arn:aws:iam::210987654321:instance-profile/ssm-core")
        );
        assert_eq!(web.platform_type, None);
        let old = &page.instances[1];
        assert_eq!(old.name, None);
        assert_eq!(old.platform_type.as_deref(), Some("Windows"));
        assert_eq!(old.account_id.as_deref(), Some("210987654321"));
        assert_eq!(page.next_token.as_deref(), Some("eyJ2IjoiMiIsImMiOiJxIn0="));
    }

    /// Every page the simulator serves for a generated fleet and for the demo's, in
    /// every region, reads as the SDK reads it (and pages on with the same token).
    #[test]
    fn the_simulators_pages_read_as_the_sdk_reads_them() {
        for fleet in [FleetFile::generate(2500, 7), FleetFile::demo()] {
            let state = SimState::new(fleet, SimOptions::default(), "127.0.0.1:1".parse().unwrap());
            let account = state.fleet.account_ids()[0].clone();
            let mut regions: Vec<String> = state
                .fleet
                .instances
                .iter()
                .map(|i| i.region(&state.fleet.default_region).to_string())
                .collect();
            regions.sort();
            regions.dedup();
            let mut rows = 0;
            for region in &regions {
                let mut token: Option<String> = None;
                loop {
                    let mut p = crate::sim::query::Params::new();
                    p.insert("Action".into(), "DescribeInstances".into());
                    p.insert("MaxResults".into(), "500".into());
                    if let Some(t) = &token {
                        p.insert("NextToken".into(), t.clone());
                    }
                    let xml =
                        crate::sim::ec2::describe_instances(&state, &account, region, &p).unwrap();
                    let page = ours(region, &xml);
                    assert_eq!(page, sdk_page(region, &xml).unwrap(), "{region} {token:?}");
                    rows += page.instances.len();
                    token = page.next_token;
                    if token.is_none() {
                        break;
                    }
                }
            }
            assert!(rows > 0);
        }
    }

    /// EC2 sends no CDATA, but should text come so it is text (the SDK reads none).
    #[test]
    fn cdata_is_text() {
        let xml = NESTED.replace("a&lt;b", "<![CDATA[a<b]]>");
        let page = ours("us-east-1", &xml);
        assert_eq!(
            page.instances[0].tags.get("team").map(String::as_str),
            Some("a<b")
        );
    }

    #[test]
    fn a_body_that_is_not_a_page_is_an_error_as_for_the_sdk() {
        let cut = &NESTED[..NESTED.len() / 2];
        let wrong_root = "<DescribeImagesResponse><imagesSet/></DescribeImagesResponse>";
        let bad_time = NESTED.replace("2024-05-01T10:11:12.000Z", "yesterday");
        let crossed = NESTED.replace("<name>running</name>", "<name>running</code>");
        for body in [wrong_root, &bad_time, "", "not xml"] {
            assert!(parse("us-east-1", body.as_bytes()).is_err(), "{body}");
            assert!(sdk_page("us-east-1", body).is_err(), "the SDK reads {body}");
        }
        // Stricter than the SDK's lenient decoder: a page cut short, or with crossed
        // tags, would drop or mix up instances without a word.
        assert!(matches!(
            parse("us-east-1", cut.as_bytes()),
            Err(PageError::Truncated | PageError::Xml(_))
        ));
        assert!(matches!(
            parse("us-east-1", crossed.as_bytes()),
            Err(PageError::Unbalanced(t)) if t == "code"
        ));
        let bad_entity = NESTED.replace("&amp;", "&nope;");
        assert!(matches!(
            parse("us-east-1", bad_entity.as_bytes()),
            Err(PageError::Entity(e)) if e == "nope"
        ));
        assert!(matches!(
            parse("us-east-1", b"\xff\xfe"),
            Err(PageError::Utf8)
        ));
    }
}
