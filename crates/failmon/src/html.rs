//! The state as one self-contained HTML page (`failmon -h`, the CGI mode):
//! inline style, no scripts, nothing fetched from elsewhere.
//!
//! Everything that comes from failsh — names, addresses, error messages,
//! decision reasons, hook results — is escaped: a hook's output or a peer's
//! error text must not be able to inject markup into an admin's browser.

use std::fmt::Write as _;

use failover::monitor::{ServiceStatus, Snapshot};

use crate::net::Target;
use crate::when::{ago, health, last_call, rtt, seconds};

/// Text made safe for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:1em}\
table{border-collapse:collapse;margin-bottom:1em}\
th,td{border:1px solid #bbb;padding:2px 6px;text-align:left}\
th{background:#eee}.UP{color:#070}.RECOVER{color:#a60}.FAIL,.failing{color:#b00}\
.INDOUBT{color:#a0a}.UNRESOLVED{color:#b00;font-weight:bold}.note{color:#555}";

/// A CSS class for a state word, only for the words failsh uses (so a
/// class attribute never carries text from the wire).
fn class(state: &str) -> &'static str {
    match state {
        "UP" => "UP",
        "RECOVER" => "RECOVER",
        "FAIL" => "FAIL",
        "INDOUBT" => "INDOUBT",
        "UNRESOLVED" => "UNRESOLVED",
        "failing" => "failing",
        _ => "",
    }
}

fn head(out: &mut String, title: &str, refresh: Option<u32>) {
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    if let Some(secs) = refresh {
        let _ = writeln!(out, "<meta http-equiv=\"refresh\" content=\"{secs}\">");
    }
    let _ = writeln!(
        out,
        "<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>",
        escape(title)
    );
}

fn row(out: &mut String, cells: &[String]) {
    out.push_str("<tr>");
    for c in cells {
        let _ = write!(out, "<td>{c}</td>");
    }
    out.push_str("</tr>\n");
}

fn header_row(out: &mut String, names: &[&str]) {
    out.push_str("<tr>");
    for n in names {
        let _ = write!(out, "<th>{n}</th>");
    }
    out.push_str("</tr>\n");
}

/// A state word, escaped, in its colour.
fn state(s: &str) -> String {
    format!("<span class=\"{}\">{}</span>", class(s), escape(s))
}

fn or_dash(s: Option<&str>) -> String {
    escape(s.unwrap_or("-"))
}

/// The page for one snapshot read from `target`; `refresh` makes the
/// browser reload it every so many seconds (the CGI mode).
pub fn page(snapshot: &Snapshot, target: &Target, refresh: Option<u32>) -> String {
    let mut out = String::new();
    let title = format!("failmon: failsh on {}", snapshot.host);
    head(&mut out, &title, refresh);
    let _ = writeln!(
        out,
        "<h1>{}</h1>\n<p class=\"note\">monitor port {}, snapshot of {:.3} (Unix time), {} host(s), {} service(s)</p>",
        escape(&title),
        escape(&target.to_string()),
        snapshot.at,
        snapshot.hosts.len(),
        snapshot.services.len(),
    );
    hosts(&mut out, snapshot);
    services(&mut out, snapshot);
    for s in &snapshot.services {
        detail(&mut out, snapshot, s);
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn hosts(out: &mut String, snapshot: &Snapshot) {
    out.push_str("<h2>Hosts</h2>\n<table>\n");
    header_row(
        out,
        &[
            "host",
            "faild address",
            "status",
            "last call",
            "last ok",
            "last failure",
            "rtt",
            "calls",
            "failures",
            "signed",
            "last error",
        ],
    );
    for h in &snapshot.hosts {
        let status = health(h);
        row(
            out,
            &[
                escape(&h.name),
                escape(&h.address),
                format!("<span class=\"{}\">{status}</span>", class(status)),
                escape(&ago(snapshot, last_call(h).map(|(t, _)| t))),
                escape(&ago(snapshot, h.last_ok)),
                escape(&ago(snapshot, h.last_failure)),
                escape(&rtt(h)),
                h.calls.to_string(),
                h.failures.to_string(),
                escape(&h.signing()),
                or_dash(h.last_error.as_deref()),
            ],
        );
    }
    out.push_str("</table>\n");
}

fn services(out: &mut String, snapshot: &Snapshot) {
    out.push_str("<h2>Services</h2>\n<table>\n");
    header_row(
        out,
        &[
            "service", "local", "running", "internal", "busy", "peers", "decision", "reason",
        ],
    );
    for s in &snapshot.services {
        let peers: Vec<String> = s
            .peers
            .iter()
            .map(|p| format!("{}={}", escape(&p.host), state(&p.state)))
            .collect();
        row(
            out,
            &[
                format!("<a href=\"#svc-{0}\">{0}</a>", escape(&s.name)),
                state(&s.local),
                if s.running { "yes" } else { "no" }.into(),
                or_dash(s.internal.as_deref()),
                or_dash(s.busy.as_deref()),
                peers.join(", "),
                or_dash(s.decision.as_deref()),
                or_dash(s.reason.as_deref()),
            ],
        );
    }
    out.push_str("</table>\n");
}

fn detail(out: &mut String, snapshot: &Snapshot, s: &ServiceStatus) {
    let _ = writeln!(
        out,
        "<h3 id=\"svc-{0}\">Service {0}</h3>\n<p>local {1}, running {2}, internal {3}, busy {4}; interval {5}, peer timeout {6}</p>",
        escape(&s.name),
        state(&s.local),
        if s.running { "yes" } else { "no" },
        or_dash(s.internal.as_deref()),
        or_dash(s.busy.as_deref()),
        seconds(s.interval_s),
        seconds(s.timeout_s),
    );
    let _ = writeln!(
        out,
        "<p>last decision: {} ({})<br>\nlast transition: {} ({} since failsh started)<br>",
        or_dash(s.decision.as_deref()),
        or_dash(s.reason.as_deref()),
        escape(&ago(snapshot, s.last_transition)),
        s.transitions,
    );
    match &s.last_hook {
        Some(h) => {
            let _ = writeln!(
                out,
                "last hook: {} {}, took {}, {}: {}</p>",
                escape(&h.kind),
                escape(&ago(snapshot, Some(h.at))),
                seconds(h.duration_s),
                if h.ok {
                    "ok"
                } else {
                    "<span class=\"FAIL\">failed</span>"
                },
                escape(&h.result),
            );
        }
        None => out.push_str("last hook: none yet</p>\n"),
    }
    if !s.peers.is_empty() {
        out.push_str("<table>\n");
        header_row(out, &["peer", "role", "state", "last answer"]);
        for p in &s.peers {
            row(
                out,
                &[
                    escape(&p.host),
                    escape(&p.role),
                    state(&p.state),
                    p.age_s.map_or("never".into(), |a| {
                        escape(&failover::monitor::age(a)) + " ago"
                    }),
                ],
            );
        }
        out.push_str("</table>\n");
    }
    if !s.hooks.is_empty() {
        out.push_str("<table>\n");
        header_row(out, &["hook", "runs", "failures", "time spent"]);
        for h in &s.hooks {
            row(
                out,
                &[
                    escape(&h.kind),
                    h.runs.to_string(),
                    h.failures.to_string(),
                    seconds(h.seconds),
                ],
            );
        }
        out.push_str("</table>\n");
    }
}

/// The page shown when failsh cannot be read (the CGI mode has to answer
/// the browser with something).
pub fn error_page(target: &Target, message: &str) -> String {
    let mut out = String::new();
    head(&mut out, &format!("failmon: {target} unreachable"), None);
    let _ = writeln!(
        out,
        "<h1>failmon: no state from {}</h1>\n<p>{}</p>\n</body>\n</html>",
        escape(&target.to_string()),
        escape(message)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::sample;

    #[test]
    fn an_unresolved_peer_is_marked() {
        let mut s = sample();
        s.services[0].peers[0].state = "UNRESOLVED".into();
        let p = page(&s, &Target::new("127.0.0.2", 1848), None);
        assert!(
            p.contains("<span class=\"UNRESOLVED\">UNRESOLVED</span>"),
            "{p}"
        );
    }

    #[test]
    fn escapes_the_five_characters() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain é"), "plain é");
    }

    #[test]
    fn the_page_is_complete_and_names_everything() {
        let p = page(&sample(), &Target::new("127.0.0.2", 1848), None);
        assert!(p.starts_with("<!DOCTYPE html>"));
        assert!(p.trim_end().ends_with("</html>"));
        assert!(p.contains("<title>failmon: failsh on lukretia</title>"));
        assert!(p.contains("monitor port 127.0.0.2:1848"));
        assert!(!p.contains("http-equiv"));
        for name in ["vip", "www", "localhost", "macbeth", "ophelia"] {
            assert!(
                p.contains(&format!("<td>{name}</td>")) || p.contains(&format!(">{name}</a>")),
                "{name}"
            );
        }
        assert!(p.contains("<span class=\"UP\">UP</span>"));
        assert!(p.contains("last hook: start 10s ago, took 0.20s, ok: returned UP"));
        assert!(p.contains("<td>macbeth</td><td>slave</td><td><span class=\"RECOVER\">RECOVER</span></td><td>0.5s ago</td>"));
        assert!(
            p.contains("<td>signed, 3 auth failures</td>"),
            "macbeth's calls are signed"
        );
        assert!(p.contains("<td>unsigned</td>"));
    }

    #[test]
    fn text_from_failsh_cannot_inject_markup() {
        let mut s = sample();
        s.host = "<script>alert(1)</script>".into();
        s.services[0].name = "x\"><img src=y>".into();
        let p = page(&s, &Target::new("127.0.0.2", 1848), Some(5));
        assert!(!p.contains("<script>") && !p.contains("<img"), "{p}");
        assert!(p.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(p.contains("href=\"#svc-x&quot;&gt;&lt;img src=y&gt;\""));
        assert!(p.contains("slave macbeth is &lt;UP&gt; &amp; &quot;busy&quot;"));
        assert!(p.contains("connection refused &lt;&amp;&gt;"));
        assert!(p.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
        // Unknown state words get no class from the wire.
        s.services[0].local = "\" onmouseover=\"x".into();
        let p = page(&s, &Target::new("127.0.0.2", 1848), None);
        assert!(p.contains("<span class=\"\">&quot; onmouseover=&quot;x</span>"));
    }

    #[test]
    fn the_error_page_is_escaped() {
        let p = error_page(&Target::new("::1", 1848), "refused <b>");
        assert!(p.contains("no state from [::1]:1848"));
        assert!(p.contains("refused &lt;b&gt;"));
    }
}
