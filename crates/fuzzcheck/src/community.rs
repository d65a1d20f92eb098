//! Community files (`faild -c`, faild-community(5)): a config author's
//! text, and the rules faild grants access by.

use std::net::{IpAddr, Ipv4Addr};

use failover::community::{Access, Rules};

use crate::assert_one_line;

const FILE: &str = "communities";

/// The fields of a line the parser reads as a rule, by a plain reading of
/// faild-community(5): not blank, not a comment.
fn rule_lines(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines().enumerate().filter_map(|(n, line)| {
        let line = line.trim();
        (!line.is_empty() && !line.starts_with('#'))
            .then(|| (n + 1, line.split_ascii_whitespace().collect()))
    })
}

/// A parsed file has one rule per rule line, and each rule grants what its
/// line says (from the address its source names); a community the file
/// does not name is denied; rewriting each rule line with single spaces
/// and upper-case access gives the same rules. A refused file names the
/// first bad line, in one line, and everything before it parses.
pub fn rules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Rules::parse(text, FILE) {
        Ok(rules) => {
            assert_eq!(rules.len(), rule_lines(text).count());
            for (n, fields) in rule_lines(text) {
                let [service, community, access, rest @ ..] = fields.as_slice() else {
                    panic!("line {n} {fields:?} was accepted");
                };
                let need = match access.to_ascii_uppercase().as_str() {
                    "RO" => Access::Read,
                    "RW" => Access::Write,
                    other => panic!("line {n}: access {other:?} was accepted"),
                };
                let from = rest.first().map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |s| {
                    let addr = s.split('/').next().unwrap_or(s);
                    addr.parse()
                        .unwrap_or_else(|_| panic!("line {n}: source {s:?} was accepted"))
                });
                let service = if *service == "*" {
                    "any-service"
                } else {
                    service
                };
                assert!(
                    rules
                        .grants(community, from)
                        .allows(service, need)
                        .is_some(),
                    "line {n} {fields:?} does not grant {need:?} on {service} from {from}"
                );
            }
            let stranger = "x".repeat(failover::names::MAX_COMMUNITY + 1);
            assert!(
                rules
                    .grants(&stranger, Ipv4Addr::LOCALHOST.into())
                    .is_empty()
            );

            let normal: String = text
                .lines()
                .map(|line| {
                    let words: Vec<String> = line
                        .trim()
                        .split_ascii_whitespace()
                        .map(String::from)
                        .collect();
                    match words.as_slice() {
                        [first, ..] if first.starts_with('#') => String::new(),
                        [s, c, a, rest @ ..] => {
                            let mut w = vec![s.clone(), c.clone(), a.to_ascii_uppercase()];
                            w.extend(rest.iter().cloned());
                            w.join(" ")
                        }
                        _ => words.join(" "),
                    }
                })
                .map(|l| l + "\n")
                .collect();
            assert_eq!(
                Rules::parse(&normal, FILE).as_ref(),
                Ok(&rules),
                "{normal:?}"
            );
        }
        Err(e) => {
            assert_one_line("community file error", &e.0);
            let n: usize =
                e.0.strip_prefix(&format!("{FILE}:"))
                    .and_then(|rest| rest.split(':').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("error {:?} names no line", e.0));
            assert!(
                rule_lines(text).any(|(m, _)| m == n),
                "error {:?} names a line that is no rule",
                e.0
            );
            let before: String = text.lines().take(n - 1).map(|l| format!("{l}\n")).collect();
            assert!(
                Rules::parse(&before, FILE).is_ok(),
                "the lines before the one named in {:?} do not parse",
                e.0
            );
        }
    }
}
