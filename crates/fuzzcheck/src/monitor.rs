//! failsh's monitor port: the JSON snapshot lines failmon reads from
//! whatever answers on the port it is pointed at.

use failover::monitor::Snapshot;

/// A line failmon accepts is a fixed point once serialised as failsh
/// serialises it (one line, read back equal), and the text and Prometheus
/// forms made from it keep their line structure: one line per host and
/// service, every sample line of a declared metric family.
pub fn snapshot(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(first) = failmon::net::parse(line) else {
        return;
    };
    let once = serialise(&first);
    let normal = failmon::net::parse(&once)
        .unwrap_or_else(|e| panic!("failsh's serialisation {once:?} is refused: {e}"));
    assert_eq!(serialise(&normal), once, "serialisation is not stable");
    assert_eq!(normal, first, "a snapshot changes through JSON");

    let _ = first.text();
    let metrics = first.prometheus();
    for sample in metrics.lines().filter(|l| !l.starts_with('#')) {
        let name = sample.split('{').next().unwrap_or(sample);
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "a Prometheus line outside any family: {sample:?}"
        );
    }
}

fn serialise(s: &Snapshot) -> String {
    let json = serde_json::to_string(s).expect("a snapshot serialises");
    assert!(!json.contains('\n'), "a snapshot spans lines");
    json
}
