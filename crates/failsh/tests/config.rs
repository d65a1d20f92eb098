//! Loading configs through the public API: the worked example in both
//! styles, every setting, and every error path with its `file:line`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use failover::State;
use failsh::config::{self, Config, HookSet, HostConfig, Protocol, ServiceConfig};
use failsh::hooks::{HookError, HookKind, HookOutcome, Hooks};

const VIP: &str = "192.168.1.10";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load(path: &Path) -> (Config, Hooks) {
    config::load(path).unwrap_or_else(|e| panic!("{e}"))
}

fn host(name: &str, port: u16, community: &str) -> HostConfig {
    HostConfig {
        name: name.into(),
        address: if name == "localhost" {
            "127.0.0.1"
        } else {
            name
        }
        .into(),
        port,
        protocol: Protocol::Tcp,
        community: community.into(),
        key_file: None,
        key_id: None,
        key: None,
    }
}

/// The worked example's service as both hosts declare it.
fn vip(masters: &[&str], slaves: &[&str]) -> ServiceConfig {
    ServiceConfig {
        name: VIP.into(),
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(15),
        hook_timeout: Duration::from_secs(60),
        masters: masters.iter().map(|s| s.to_string()).collect(),
        slaves: slaves.iter().map(|s| s.to_string()).collect(),
        hooks: HookSet {
            start: true,
            stop: true,
            reclaim: true,
            check: false,
        },
    }
}

/// The worked example as loaded, with the lookups of `loaded` (what the
/// peer's name resolves to depends on the machine's resolver).
fn example(file: PathBuf, service: ServiceConfig, peer: &str, loaded: &Config) -> Config {
    Config {
        services: BTreeMap::from([(VIP.to_string(), service)]),
        hosts: BTreeMap::from([
            (peer.to_string(), host(peer, 1291, "public")),
            ("localhost".to_string(), host("localhost", 1291, "genesis")),
        ]),
        file,
        lookups: loaded.lookups.clone(),
    }
}

async fn call(hooks: &Hooks, kind: HookKind) -> Result<HookOutcome, HookError> {
    hooks.call(VIP, kind, Duration::from_secs(20)).await
}

#[tokio::test]
async fn worked_example_master() {
    for name in ["lukretia.lua", "lukretia_table.lua"] {
        let file = fixture(name);
        let (config, hooks) = load(&file);
        let expected = example(file, vip(&[], &["macbeth"]), "macbeth", &config);
        assert_eq!(config, expected, "{name}");
        assert_eq!(config.localhost().community, "genesis");
        assert_eq!(
            call(&hooks, HookKind::Start).await,
            Ok(HookOutcome::State(State::Up))
        );
        assert_eq!(
            call(&hooks, HookKind::Stop).await,
            Ok(HookOutcome::State(State::Fail))
        );
        assert_eq!(
            call(&hooks, HookKind::Reclaim).await,
            Ok(HookOutcome::State(State::Up))
        );
        assert_eq!(call(&hooks, HookKind::Check).await, Err(HookError::Missing));
    }
}

#[tokio::test]
async fn worked_example_slave() {
    for name in ["macbeth.lua", "macbeth_table.lua"] {
        let file = fixture(name);
        let (config, hooks) = load(&file);
        let expected = example(file, vip(&["lukretia"], &[]), "lukretia", &config);
        assert_eq!(config, expected, "{name}");
        assert_eq!(
            call(&hooks, HookKind::Start).await,
            Ok(HookOutcome::State(State::Up))
        );
        assert_eq!(
            call(&hooks, HookKind::Stop).await,
            Ok(HookOutcome::State(State::Recover))
        );
        assert_eq!(
            call(&hooks, HookKind::Reclaim).await,
            Ok(HookOutcome::State(State::Up))
        );
    }
}

#[test]
fn every_setting() {
    let file = fixture("options.lua");
    let (config, _) = load(&file);
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let www = ServiceConfig {
        name: "www".into(),
        interval: Duration::from_millis(200),
        timeout: Duration::from_millis(1500),
        hook_timeout: Duration::from_secs(30),
        masters: names(&["gamma", "alpha"]),
        slaves: names(&["delta"]),
        hooks: HookSet {
            start: true,
            stop: true,
            reclaim: false,
            check: true,
        },
    };
    let db = ServiceConfig {
        name: "db".into(),
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(5),
        hook_timeout: Duration::from_millis(500),
        masters: vec![],
        slaves: vec![],
        hooks: HookSet {
            start: true,
            stop: true,
            reclaim: false,
            check: false,
        },
    };
    let gamma = HostConfig {
        address: "127.0.0.3".into(),
        protocol: Protocol::Udp,
        ..host("gamma", 1291, "public")
    };
    let localhost = HostConfig {
        address: "127.0.0.2".into(),
        ..host("localhost", 1291, "public")
    };
    let hosts = [
        host("alpha", 1291, "public"),
        host("delta", 1291, "public"),
        host("epsilon", 1300, "s3cret"),
        gamma,
        localhost,
    ];
    // Where each host's address comes from: its failhost address line, else
    // the masters or slaves list naming it, else its failhost call.
    let shown = file.display().to_string();
    let at = |host: &str| config.lookups[host].at.clone();
    for (host, line) in [
        ("alpha", 11),
        ("gamma", 19),
        ("delta", 12),
        ("epsilon", 21),
        ("localhost", 22),
    ] {
        assert_eq!(at(host), format!("{shown}:{line}"), "{host}");
    }
    assert_eq!(
        config.lookups["gamma"].addresses,
        Ok(vec!["127.0.0.3:1291".parse().unwrap()])
    );
    assert_eq!(
        config.lookups["localhost"].addresses,
        Ok(vec!["127.0.0.2:1291".parse().unwrap()])
    );
    assert_eq!(
        config.unused_hosts(),
        [format!(
            "{shown}:21: failhost \"epsilon\": no service has this host as a master or slave (misspelt there?)"
        )]
    );
    let expected = Config {
        services: BTreeMap::from([("www".into(), www), ("db".into(), db)]),
        hosts: hosts.into_iter().map(|h| (h.name.clone(), h)).collect(),
        file,
        lookups: config.lookups.clone(),
    };
    assert_eq!(config, expected);
}

/// The typo of the finding: a master misspelt in the masters list while
/// failhost spells it right. The load succeeds (failsh runs, the peer is
/// UNRESOLVED); `unresolved` names the list's line, `unused_hosts` the
/// failhost line of the right spelling.
#[test]
fn a_misspelt_master_is_unresolved_and_its_right_spelling_unused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.lua");
    std::fs::write(
        &file,
        "failhost(\"lukretia\", \"address\", \"127.0.0.1\")\n\
         failsvc{ name = \"vip\", masters = { \"lukertia.invalid\" },\n\
         \x20 start = function() return \"UP\" end, stop = function() return \"FAIL\" end }\n",
    )
    .unwrap();
    let (config, _) = load(&file);
    let shown = file.display();
    let unresolved = config.unresolved();
    assert_eq!(unresolved.len(), 1, "{unresolved:?}");
    assert!(
        unresolved[0].starts_with(&format!(
            "{shown}:2: host \"lukertia.invalid\" does not resolve ("
        )),
        "{unresolved:?}"
    );
    assert_eq!(
        config.unused_hosts(),
        [format!(
            "{shown}:1: failhost \"lukretia\": no service has this host as a master or slave (misspelt there?)"
        )]
    );
}

#[test]
fn empty_config_has_localhost_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("empty.lua");
    std::fs::write(&file, "-- nothing yet\n").unwrap();
    let (config, _) = load(&file);
    assert!(config.services.is_empty());
    assert_eq!(config.hosts.keys().collect::<Vec<_>>(), ["localhost"]);
}

#[test]
fn unreadable_file() {
    let file = fixture("no-such-file.lua");
    let err = config::load(&file).err().unwrap();
    assert!(err.0.starts_with(&format!("{}: ", file.display())), "{err}");
    assert!(!err.0.contains('\n'));
}

/// The line marked `-- ERROR: message` in a fixture, and that message
/// (`@FILE@` standing for the file).
fn expected_error(path: &Path, shown: &str) -> (usize, String) {
    let text = std::fs::read_to_string(path).unwrap();
    let (index, message) = text
        .lines()
        .enumerate()
        .find_map(|(i, line)| Some((i, line.split_once("-- ERROR: ")?.1)))
        .unwrap_or_else(|| panic!("{}: no -- ERROR: marker", path.display()));
    (index + 1, message.replace("@FILE@", shown))
}

#[test]
fn every_error_names_file_and_line() {
    let dir = fixture("errors");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    assert!(paths.len() >= 25, "{paths:?}");
    for absolute in paths {
        // Absolute paths here are longer than Lua's 60-byte chunk names;
        // relative ones (tests run in the crate directory) are not.
        let relative = absolute
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap()
            .to_path_buf();
        for path in [&absolute, &relative] {
            let shown = path.display().to_string();
            let (line, message) = expected_error(path, &shown);
            let err = match config::load(path) {
                Ok(_) => panic!("{shown}: loaded without error"),
                Err(err) => err.0,
            };
            assert_eq!(err, format!("{shown}:{line}: {message}"));
        }
    }
}

/// Lua abbreviates chunk names over 60 bytes to `...TAIL` in its own
/// messages; the path must come out whole.
#[test]
fn long_paths_are_not_abbreviated() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir
        .path()
        .join("a-directory-name-long-enough-to-be-abbreviated-by-lua");
    std::fs::create_dir(&deep).unwrap();
    for (name, body, message) in [
        ("syntax.lua", "\nx = = 1\n", "unexpected symbol near '='"),
        (
            "runtime.lua",
            "\nlocal t = nil\nt.x = 1\n",
            "attempt to index a nil value (local 't')",
        ),
        (
            "hook.lua",
            "\nfailsvc('vip', 'create')\nfailsvc('vip', 'stop', 1)\n",
            "",
        ),
    ] {
        let file = deep.join(name);
        std::fs::write(&file, body).unwrap();
        let err = config::load(&file).err().unwrap().0;
        let line = body.lines().count();
        let prefix = format!("{}:{line}: ", file.display());
        assert!(err.starts_with(&prefix), "{err}");
        assert!(err.ends_with(message), "{err}");
    }
}

/// `key_file` and `key_id`: the key is read once the script has run, through
/// the secret-file checks; every mistake names the failhost line.
#[test]
fn host_keys() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        "old genesis hex:000102030405060708090a0b0c0d0e0f\nnew genesis hex:101112131415161718191a1b1c1d1e1f\n",
    )
    .unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = dir.path().join("h.lua");
    let try_load = |body: &str| {
        std::fs::write(&cfg, body).unwrap();
        config::load(&cfg).map(|(c, _)| c).map_err(|e| e.0)
    };
    let c = try_load(
        "failhost{ name = 'localhost', community = 'genesis', key_file = 'keys' }\n\
         failhost('peer', 'community', 'genesis')\nfailhost('peer', 'key_file', 'keys')\nfailhost('peer', 'key_id', 'old')\n",
    )
    .unwrap();
    assert_eq!(
        c.hosts["localhost"].key.as_ref().unwrap().id,
        "new",
        "the last one"
    );
    assert_eq!(c.hosts["peer"].key.as_ref().unwrap().id, "old");
    for (body, want) in [
        (
            "failhost{ name = 'p', key_file = 'nope' }",
            "h.lua:1: host \"p\": key file",
        ),
        (
            "failhost{ name = 'p', key_file = 'keys' }",
            "h.lua:1: host \"p\": key file",
        ),
        (
            "failhost{ name = 'p', community = 'genesis', key_file = 'keys', key_id = 'x' }",
            "no key \"x\"",
        ),
        (
            "failhost{ name = 'p', key_id = 'old' }",
            "h.lua:1: host \"p\": key_id without key_file",
        ),
        ("failhost{ name = 'p', key_id = 'a b' }", "not allowed"),
    ] {
        let e = try_load(body).unwrap_err();
        assert!(e.contains(want), "{body}: {e}");
    }
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e =
        try_load("failhost{ name = 'p', community = 'genesis', key_file = 'keys' }").unwrap_err();
    assert!(e.contains("chmod go-w"), "{e}");
}
