//! Community rules: who may read or write which service.
//!
//! A community file holds one rule per line:
//!
//! ```text
//! # service|*   community   RO|RW   [source address or network]
//! *             public      RO
//! *             genesis     RW      127.0.0.0/8
//! vip           ops         RW
//! ```
//!
//! A request is allowed when *any* rule for that service (or `*`) with that
//! community, whose source network (if given) contains the client's address,
//! grants the needed right. Rules only ever grant; nothing matches → denied.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use subtle::ConstantTimeEq;

use crate::names::{check_community, check_name};

/// The right a rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// `RO`: read only.
    Read,
    /// `RW`: read and write.
    Write,
}

/// One line of a community file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `None` is `*`, all services.
    pub service: Option<String>,
    community: String,
    pub access: Access,
    pub source: Option<IpNet>,
    /// Where the rule came from, e.g. `/etc/failover/communities:3`; named in
    /// audit lines instead of the secret community string.
    pub origin: String,
}

impl Rule {
    fn covers(&self, service: &str) -> bool {
        self.service.as_deref().is_none_or(|s| s == service)
    }
}

/// A malformed community file; the message starts with `file:line:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RulesError(pub String);

/// The whole rule set of a faild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    /// What faild uses without `-c`: community `public` may read everything,
    /// nobody may write.
    pub fn public_read_only() -> Rules {
        Rules {
            rules: vec![Rule {
                service: None,
                community: "public".into(),
                access: Access::Read,
                source: None,
                origin: "built-in default (no community file)".into(),
            }],
        }
    }

    /// Parses a community file; `file` only labels error messages and rule
    /// origins.
    pub fn parse(text: &str, file: &str) -> Result<Rules, RulesError> {
        let mut rules = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let lineno = n + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |m: String| RulesError(format!("{file}:{lineno}: {m}"));
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let [service, community, access, rest @ ..] = fields.as_slice() else {
                return Err(err(
                    "expected SERVICE|* COMMUNITY RO|RW [SOURCE]".to_string()
                ));
            };
            if rest.len() > 1 {
                return Err(err(format!("unexpected {:?} after the source", rest[1])));
            }
            let service = match *service {
                "*" => None,
                s => {
                    check_name("service name", s).map_err(err)?;
                    Some(s.to_string())
                }
            };
            check_community(community).map_err(err)?;
            let access = match access.to_ascii_uppercase().as_str() {
                "RO" => Access::Read,
                "RW" => Access::Write,
                other => return Err(err(format!("access {other:?} is neither RO nor RW"))),
            };
            let source = rest
                .first()
                .map(|s| parse_source(s).map_err(err))
                .transpose()?;
            rules.push(Rule {
                service,
                community: community.to_string(),
                access,
                source,
                origin: format!("{file}:{lineno}"),
            });
        }
        Ok(Rules { rules })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules that apply to a client presenting `community` from `source`.
    ///
    /// Every rule's community is compared, in constant time, whatever matched
    /// before, so response timing does not reveal how much of a guess was right.
    pub fn grants(&self, community: &str, source: IpAddr) -> Grants<'_> {
        let source = source.to_canonical();
        let mut matching = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let same: bool = rule.community.as_bytes().ct_eq(community.as_bytes()).into();
            let from_ok = rule.source.is_none_or(|net| net.contains(&source));
            if same & from_ok {
                matching.push(i);
            }
        }
        Grants {
            rules: self,
            matching,
        }
    }
}

/// Compares two secrets in constant time (for equal lengths), so timing
/// does not reveal how much of a guess was right.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Reads a source: an address, or an address and a prefix length.
///
/// The address is read by the standard library's strict parser, never by
/// `IpNet`'s own: that one takes `010.0.0.0/8` as 10.0.0.0/8, where other
/// tools read a leading zero as octal (8.0.0.0/8), so the rule would not
/// grant what its author meant; and it would disagree with how the same
/// address without a prefix is read (refused).
fn parse_source(s: &str) -> Result<IpNet, String> {
    let (addr, len) = match s.split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (s, None),
    };
    addr.parse::<IpAddr>()
        .ok()
        .and_then(|addr| match len {
            None => Some(IpNet::from(addr)),
            Some(len) if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) => {
                IpNet::new(addr, len.parse().ok()?).ok()
            }
            Some(_) => None,
        })
        .map(|n| match n {
            // An IPv4 client reaching an IPv6 socket is seen as ::ffff:a.b.c.d;
            // sources are compared canonically, so a rule is written plainly.
            IpNet::V6(v6) => v6
                .addr()
                .to_ipv4_mapped()
                .and_then(|v4| IpNet::new(v4.into(), v6.prefix_len().saturating_sub(96)).ok())
                .unwrap_or(IpNet::V6(v6)),
            v4 => v4,
        })
        .ok_or_else(|| format!("source {s:?} is not an address or network (e.g. 127.0.0.0/8)"))
}

/// The rules one client may use (see [`Rules::grants`]).
#[derive(Debug, Clone)]
pub struct Grants<'a> {
    rules: &'a Rules,
    matching: Vec<usize>,
}

impl<'a> Grants<'a> {
    /// No rule knows this community from this source: the whole request is denied.
    pub fn is_empty(&self) -> bool {
        self.matching.is_empty()
    }

    /// The first rule granting `need` on `service`, if any.
    pub fn allows(&self, service: &str, need: Access) -> Option<&'a Rule> {
        self.matching
            .iter()
            .map(|&i| &self.rules.rules[i])
            .find(|r| r.access >= need && r.covers(service))
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "RO",
            Access::Write => "RW",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LOCAL: &str = "127.0.0.1";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn allowed(rules: &Rules, community: &str, src: &str, svc: &str, need: Access) -> bool {
        rules.grants(community, ip(src)).allows(svc, need).is_some()
    }

    #[test]
    fn example_file() {
        let text = "# comment\n\n* public RO\n* genesis RW 127.0.0.0/8\nvip ops rw\n  # indented comment\n";
        let rules = Rules::parse(text, "communities").unwrap();
        assert_eq!(rules.len(), 3);
        assert!(allowed(&rules, "public", "10.1.1.1", "vip", Access::Read));
        assert!(!allowed(&rules, "public", LOCAL, "vip", Access::Write));
        assert!(allowed(
            &rules,
            "genesis",
            "127.0.0.2",
            "any",
            Access::Write
        ));
        assert!(allowed(
            &rules,
            "genesis",
            "::ffff:127.0.0.2",
            "any",
            Access::Write
        ));
        assert!(!allowed(&rules, "genesis", "10.0.0.1", "any", Access::Read));
        assert!(rules.grants("genesis", ip("10.0.0.1")).is_empty());
        assert!(allowed(&rules, "ops", "10.0.0.1", "vip", Access::Write));
        assert!(!allowed(&rules, "ops", "10.0.0.1", "www", Access::Read));
        assert!(!rules.grants("ops", ip("10.0.0.1")).is_empty());
        assert!(rules.grants("nobody", ip(LOCAL)).is_empty());
        assert!(rules.grants("Public", ip(LOCAL)).is_empty());
        let rule = rules
            .grants("genesis", ip(LOCAL))
            .allows("x", Access::Write)
            .unwrap();
        assert_eq!(rule.origin, "communities:4");
    }

    #[test]
    fn mapped_v6_rule_matches_plain_v4() {
        let rules = Rules::parse("* g RW ::ffff:127.0.0.0/104", "f").unwrap();
        assert!(allowed(&rules, "g", "127.9.9.9", "s", Access::Write));
        let rules = Rules::parse("* g RW ::1", "f").unwrap();
        assert!(allowed(&rules, "g", "::1", "s", Access::Write));
        assert!(!allowed(&rules, "g", LOCAL, "s", Access::Write));
    }

    #[test]
    fn errors_name_file_and_line() {
        for (text, want) in [
            ("* public", "f:1: expected"),
            ("\n* public RX", "f:2: access"),
            ("* public RO 300.0.0.1", "f:1: source"),
            ("* public RO 127.0.0.1 extra", "f:1: unexpected"),
            ("-x public RO", "f:1: service name"),
            ("* pub\u{e4}lic RO", "f:1: community"),
        ] {
            let e = Rules::parse(text, "f").unwrap_err().0;
            assert!(e.starts_with(want), "{text:?} gave {e:?}");
        }
    }

    /// Found by fuzzing (target `community`): `IpNet`'s parser took
    /// `063.0.0.0/8` as 63.0.0.0/8, where a leading zero reads as octal
    /// elsewhere, and where `063.0.0.1` alone is refused.
    #[test]
    fn sources_are_read_strictly() {
        for bad in [
            "010.0.0.0/8",
            "063.0.0.0/8",
            "::ffff:010.0.0.1/104",
            "10.0.0.0/+8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "010.0.0.1",
        ] {
            let e = Rules::parse(&format!("* g RW {bad}"), "f").unwrap_err().0;
            assert!(e.starts_with("f:1: source"), "{bad}: {e}");
        }
        for (good, inside, outside) in [
            ("10.0.0.0/8", "10.9.9.9", "11.0.0.1"),
            ("10.1.2.3/08", "10.200.0.1", "9.0.0.1"),
            ("192.0.2.7", "192.0.2.7", "192.0.2.8"),
            ("fe80::/10", "fe80::1", "fec0::1"),
        ] {
            let rules = Rules::parse(&format!("* g RW {good}"), "f").unwrap();
            assert!(allowed(&rules, "g", inside, "s", Access::Write), "{good}");
            assert!(!allowed(&rules, "g", outside, "s", Access::Write), "{good}");
        }
    }

    #[test]
    fn default_is_public_read_only() {
        let rules = Rules::public_read_only();
        assert!(allowed(&rules, "public", LOCAL, "vip", Access::Read));
        assert!(!allowed(&rules, "public", LOCAL, "vip", Access::Write));
        assert!(rules.grants("genesis", ip(LOCAL)).is_empty());
    }

    fn arb_rule() -> impl Strategy<Value = (Option<String>, String, Access, Option<String>)> {
        (
            prop::option::of(prop::sample::select(vec!["a".to_string(), "b".into()])),
            prop::sample::select(vec!["c1".to_string(), "c2".into(), "c3".into()]),
            prop::sample::select(vec![Access::Read, Access::Write]),
            prop::option::of(prop::sample::select(vec![
                "127.0.0.0/8".to_string(),
                "10.0.0.0/8".into(),
                "::1".into(),
            ])),
        )
    }

    proptest! {
        /// The rule semantics, checked against a direct reading of the spec:
        /// allowed iff some line names the service or `*`, has the community,
        /// contains the source, and grants at least the needed access.
        #[test]
        fn matches_reference_model(
            rules in prop::collection::vec(arb_rule(), 0..6),
            community in prop::sample::select(vec!["c1", "c2", "c4"]),
            src in prop::sample::select(vec!["127.0.0.5", "10.1.2.3", "::1", "192.0.2.1"]),
            svc in prop::sample::select(vec!["a", "b", "z"]),
            write in any::<bool>(),
        ) {
            let text: String = rules.iter().map(|(s, c, a, src)| {
                format!("{} {c} {a} {}\n", s.as_deref().unwrap_or("*"), src.as_deref().unwrap_or(""))
            }).collect();
            let parsed = Rules::parse(&text, "f").unwrap();
            let need = if write { Access::Write } else { Access::Read };
            let want = rules.iter().any(|(s, c, a, net)| {
                s.as_deref().is_none_or(|s| s == svc)
                    && c == community
                    && *a >= need
                    && net.as_deref().is_none_or(|n| parse_source(n).unwrap().contains(&ip(src)))
            });
            prop_assert_eq!(allowed(&parsed, community, src, svc, need), want);
            // Write implies read; an unknown community is denied outright.
            if allowed(&parsed, community, src, svc, Access::Write) {
                prop_assert!(allowed(&parsed, community, src, svc, Access::Read));
            }
            if community == "c4" {
                prop_assert!(parsed.grants(community, ip(src)).is_empty());
            }
        }

        #[test]
        fn parser_never_panics(text in "[ -~\n]{0,200}") {
            let _ = Rules::parse(&text, "f");
        }
    }
}
