//! The names the product accepts from users, configs and the network: instance,
//! managed-node and EC2 Instance Connect Endpoint ids, DNS names, OS login names, and
//! the `*` patterns that select them. One rule each, used wherever such a name is
//! checked (ssh sees these names, so anything else is refused before it reaches a
//! command line).

/// Instance ids (`i-` + 8 or 17 hex) and managed node ids (`mi-` + 17 hex).
pub fn is_instance_id(target: &str) -> bool {
    let ok = |hex: &str, lens: &[usize]| {
        lens.contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    };
    match (target.strip_prefix("i-"), target.strip_prefix("mi-")) {
        (Some(hex), _) => ok(hex, &[8, 17]),
        (_, Some(hex)) => ok(hex, &[17]),
        _ => false,
    }
}

/// An EC2 Instance Connect Endpoint id: `eice-` and lower-case letters or digits
/// (what the AWS CLI's `^eice-[0-9a-z]+$` allows).
pub fn is_eice_id(s: &str) -> bool {
    s.strip_prefix("eice-").is_some_and(|h| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    })
}

/// A DNS name safe to put on a command line: letters, digits, `.` and `-`.
pub fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !s.starts_with(['-', '.'])
}

/// A login name ssh and Instance Connect accept, and safe to show.
pub fn valid_login(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 32
        && user
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_for_a_command_line_are_checked() {
        assert!(is_eice_id("eice-0123456789abcdef0"));
        assert!(!is_eice_id("eice-"));
        assert!(!is_eice_id("eice-1;rm"));
        assert!(is_dns_name(
            "eice-1.abc.ec2-instance-connect-endpoint.us-east-1.amazonaws.com"
        ));
        assert!(!is_dns_name("-oProxyCommand=x"));
        assert!(!is_dns_name("a b"));
    }

    #[test]
    fn ids() {
        assert!(is_instance_id("i-0123456789abcdef0") && is_instance_id("i-01234567"));
        assert!(is_instance_id("mi-0123456789abcdef0"));
        assert!(!is_instance_id("i-$(touch x)") && !is_instance_id("mi-01234567"));
        assert!(!is_instance_id("i-0123456789abcdefg") && !is_instance_id("web-1"));
    }

    #[test]
    fn logins() {
        assert!(valid_login("ec2-user") && valid_login("_svc") && valid_login("a.b@corp"));
        assert!(!valid_login("") && !valid_login("-oProxyCommand=x") && !valid_login("a b"));
        assert!(!valid_login("root;id") && !valid_login(&"a".repeat(33)));
    }

    #[test]
    fn globs() {
        assert!(glob("*", "") && glob("web-*", "web-1") && glob("*-1", "web-1"));
        assert!(glob("w*b*1", "web-1") && !glob("web-*", "db-1") && !glob("web", "web-1"));
        assert!(glob("a**b", "ab") && !glob("a*b", "ba"));
    }
}
