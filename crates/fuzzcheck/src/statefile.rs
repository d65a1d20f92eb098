//! The state file faild reloads at start: written by faild, but also
//! edited by hand while faild is stopped (its header says so).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use failover::community::Rules;
use failover::proto::Request;
use failover::registry::{Outcome, Registry};
use failover::statefile::{Loaded, parse, render};

/// The instant the checks render at: any fixed time will do.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// Renders a loaded file as faild would rewrite it.
fn rewrite(loaded: &Loaded) -> String {
    render(
        &loaded.registry,
        None,
        loaded.boot_id.as_deref().unwrap_or(""),
        now(),
    )
}

/// A file faild loads, rewritten, is a fixed point: it loads, and its
/// rendering renders again to the same text and the same registry. And
/// every state one request can reach from it — a SET of each state, a DEL,
/// each rendered with the change pending as faild writes it — still loads,
/// equal to the change applied: faild never writes a file it cannot read
/// back at its next start.
pub fn state_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(first) = parse(text) else {
        return;
    };
    let once = rewrite(&first);
    let normal =
        parse(&once).unwrap_or_else(|e| panic!("rewritten file does not load: {e}\n{once}"));
    assert_eq!(rewrite(&normal), once, "rewriting is not stable");
    assert_eq!(normal.registry.len(), first.registry.len());

    let rules = Rules::parse("* w RW", "check").expect("a valid rule");
    let grants = rules.grants("w", [127, 0, 0, 1].into());
    let names: Vec<String> = normal
        .registry
        .records()
        .map(|(n, _)| n.clone())
        .chain(normal.registry.retired().map(|(n, _)| n.clone()))
        .take(8)
        .collect();
    for name in &names {
        for op in [
            "SET {} UP",
            "SET {} FAIL b by=failsh",
            "SET {} RECOVER force=yes",
            "DEL {}",
        ] {
            let line = format!("FAIL/1 1 w {}", op.replace("{}", name));
            let req = Request::parse(line.as_bytes()).expect("a valid request");
            let Outcome::Change { mutation, .. } = normal.registry.execute(&req, &grants, now())
            else {
                continue;
            };
            let pending = render(&normal.registry, Some(&mutation), "boot", now());
            let loaded = parse(&pending).unwrap_or_else(|e| {
                panic!("after {line:?} faild writes a file it cannot load: {e}\n{pending}")
            });
            let mut applied: Registry = normal.registry.clone();
            applied.apply(&mutation);
            assert_eq!(loaded.registry, applied, "after {line:?}");
        }
    }
    let mut rebooted = normal.clone();
    rebooted.settle_boot("another boot", now());
    assert!(
        rebooted
            .registry
            .records()
            .all(|(_, r)| r.state != failover::State::Up),
        "a service stays UP across a reboot"
    );
    let after = render(&rebooted.registry, None, "another boot", now());
    parse(&after)
        .unwrap_or_else(|e| panic!("after a reboot faild writes a file it cannot load: {e}"));
}
