//! The EC2 query protocol's plumbing, shared by the simulator's EC2 operations: form
//! parameters, their numbered lists and filters, and XML text escaping.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::ApiError;

/// The form parameters of an EC2 query request (`Action`, `Filter.1.Name`, …).
pub type Params = BTreeMap<String, String>;

/// `Prefix.1`, `Prefix.2`, … values in order.
pub fn indexed<'a>(p: &'a Params, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    (1..).map_while(move |n| p.get(&format!("{prefix}.{n}")).map(String::as_str))
}

/// `Filter.N.Name` → its `Filter.N.Value.K` values; a name `known` refuses is the
/// service's `InvalidParameterValue`.
pub fn filters(
    p: &Params,
    known: impl Fn(&str) -> bool,
) -> Result<Vec<(String, Vec<String>)>, ApiError> {
    let mut out = Vec::new();
    for n in 1.. {
        let Some(name) = p.get(&format!("Filter.{n}.Name")) else {
            break;
        };
        if !known(name) {
            return Err(ApiError::new(
                400,
                "InvalidParameterValue",
                format!("The filter '{name}' is invalid"),
            ));
        }
        let prefix = format!("Filter.{n}.Value");
        let values = indexed(p, &prefix).map(str::to_string).collect();
        out.push((name.clone(), values));
    }
    Ok(out)
}

/// Escapes XML text. Characters XML 1.0 cannot carry at all (most C0 controls)
/// are sent as numeric references, which is what the SDK's parser accepts.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

/// [`escape`], appended to `out`.
pub fn escape_into(out: &mut String, s: &str) {
    if !s
        .bytes()
        .any(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'' | 0..=0x1f | 0x7f..))
    {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {
                let _ = write!(out, "&#x{:X};", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
        assert_eq!(escape("x\u{1b}[31m\n"), "x&#x1B;[31m&#xA;");
        assert_eq!(escape("日本"), "日本");
    }

    #[test]
    fn filters_and_lists() {
        let p: Params = [
            ("Filter.1.Name", "vpc-id"),
            ("Filter.1.Value.1", "vpc-1"),
            ("Filter.1.Value.2", "vpc-2"),
            ("GroupId.1", "sg-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let f = filters(&p, |n| n == "vpc-id").unwrap();
        assert_eq!(
            f,
            vec![("vpc-id".to_string(), vec!["vpc-1".into(), "vpc-2".into()])]
        );
        assert_eq!(indexed(&p, "GroupId").collect::<Vec<_>>(), ["sg-1"]);
        let e = filters(&p, |_| false).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
    }
}
