//! What the script declared so far, and the checks once it has finished.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use failover::auth::{Key, KeyRing};
use failover_daemon::secret::read_secret_file;
use mlua::{Function, Lua, Value};

use super::{
    Config, DEFAULT_HOOK_TIMEOUT, DEFAULT_INTERVAL, DEFAULT_TIMEOUT_INTERVALS, HookSet, HostConfig,
    LOCALHOST, ServiceConfig,
};
use crate::hooks::HookKind;

/// Declarations collected while the script runs.
#[derive(Default)]
pub(super) struct Draft {
    pub(super) services: BTreeMap<String, ServiceDraft>,
    /// Hosts configured with `failhost`.
    pub(super) hosts: BTreeMap<String, HostConfig>,
    /// Where each host was first configured with `failhost`.
    pub(super) failhost_at: BTreeMap<String, String>,
    /// Where each host's address was last set.
    pub(super) address_at: BTreeMap<String, String>,
    /// Where each host's key_id was last set (named by a key_id without a
    /// key_file).
    pub(super) key_id_at: BTreeMap<String, String>,
}

/// A service as declared so far. `at` fields are `file:line` of the call.
pub(super) struct ServiceDraft {
    /// Where the service was created; post-script errors point here.
    pub(super) at: String,
    /// Creation order, so post-script errors come in file order.
    seq: usize,
    pub(super) interval: Option<Duration>,
    /// The timeout and where it was set (a timeout shorter than the interval
    /// is reported there).
    pub(super) timeout: Option<(Duration, String)>,
    pub(super) hook_timeout: Option<Duration>,
    pub(super) masters: Vec<String>,
    pub(super) slaves: Vec<String>,
    /// Where the masters and the slaves were set.
    pub(super) masters_at: String,
    pub(super) slaves_at: String,
    pub(super) hooks: [Option<HookRef>; 4],
}

/// A hook as given to `failsvc`.
pub(super) enum HookRef {
    Function(Function),
    /// The name of a global function, looked up once the script has run (so
    /// it may be defined after the `failsvc` call), and where it was given.
    Global {
        name: String,
        at: String,
    },
}

impl ServiceDraft {
    pub(super) fn new(at: String, seq: usize) -> Self {
        Self {
            at,
            seq,
            interval: None,
            timeout: None,
            hook_timeout: None,
            masters: Vec::new(),
            slaves: Vec::new(),
            masters_at: String::new(),
            slaves_at: String::new(),
            hooks: Default::default(),
        }
    }
}

/// Hook functions per service, indexed by `HookKind as usize`.
pub(super) type HookTable = BTreeMap<String, [Option<Function>; 4]>;

impl Draft {
    /// Checks what the script declared and resolves hook names; errors are
    /// `file:line: message`, reported in the order the services were
    /// created.
    /// Also returns where the config names each host's address (see
    /// [`super::Lookup::at`]).
    pub(super) fn finish(
        self,
        lua: &Lua,
        file: &Path,
    ) -> Result<(Config, HookTable, BTreeMap<String, String>), String> {
        let mut drafts: Vec<_> = self.services.into_iter().collect();
        drafts.sort_by_key(|(_, d)| d.seq);
        let mut named_at = self.address_at;
        for (_, d) in &drafts {
            let lists = [(&d.masters, &d.masters_at), (&d.slaves, &d.slaves_at)];
            for (list, at) in lists {
                for host in list {
                    named_at.entry(host.clone()).or_insert_with(|| at.clone());
                }
            }
        }
        for (host, at) in self.failhost_at {
            named_at.entry(host).or_insert(at);
        }
        let mut services = BTreeMap::new();
        let mut table = HookTable::new();
        for (name, draft) in drafts {
            let (service, hooks) = finish_service(lua, name, draft)?;
            table.insert(service.name.clone(), hooks);
            services.insert(service.name.clone(), service);
        }
        let mut hosts = self.hosts;
        let key_id_at = self.key_id_at;
        let named = services
            .values()
            .flat_map(|s: &ServiceConfig| s.masters.iter().chain(&s.slaves))
            .map(String::as_str)
            .chain([LOCALHOST]);
        for name in named {
            hosts
                .entry(name.to_string())
                .or_insert_with(|| HostConfig::implicit(name));
        }
        for host in hosts.values_mut() {
            host.key = load_key(host, file, key_id_at.get(&host.name))?;
        }
        let config = Config {
            services,
            hosts,
            file: file.to_path_buf(),
            lookups: BTreeMap::new(),
        };
        Ok((config, table, named_at))
    }
}

/// The key `host` signs with: `key_file` read through the secret-file
/// checks (relative to the config's directory), the key picked by `key_id`
/// or the community. Errors name the `failhost` line (`key_id_at`: where
/// the key id was set).
fn load_key(
    host: &HostConfig,
    config: &Path,
    key_id_at: Option<&String>,
) -> Result<Option<Arc<Key>>, String> {
    let Some((file, at)) = &host.key_file else {
        return match &host.key_id {
            // `key_id_at` is set with every key_id.
            Some(_) => Err(format!(
                "{}: host {:?}: key_id without key_file",
                key_id_at.map_or("?", String::as_str),
                host.name
            )),
            None => Ok(None),
        };
    };
    let path = config.parent().unwrap_or(Path::new(".")).join(file);
    let fail = |m: String| format!("{at}: host {:?}: {m}", host.name);
    let secret = read_secret_file(&path).map_err(|e| fail(format!("key file {e}")))?;
    for warning in &secret.warnings {
        tracing::warn!("{at}: host {:?}: key file {warning}", host.name);
    }
    let ring = KeyRing::parse(&secret.text, &path.display().to_string())
        .map_err(|e| fail(e.to_string()))?;
    let key = ring
        .signing_key(&host.community, host.key_id.as_deref())
        .map_err(|e| fail(format!("key file {}: {e}", path.display())))?;
    Ok(Some(key.clone()))
}

fn finish_service(
    lua: &Lua,
    name: String,
    draft: ServiceDraft,
) -> Result<(ServiceConfig, [Option<Function>; 4]), String> {
    let at = &draft.at;
    let fail = |message: String| Err(format!("{at}: service {name:?}: {message}"));
    for kind in [HookKind::Start, HookKind::Stop] {
        if draft.hooks[kind as usize].is_none() {
            return fail(format!("no {kind} hook"));
        }
    }
    if let Some(host) = draft.masters.iter().find(|h| draft.slaves.contains(h)) {
        return fail(format!("host {host:?} is both master and slave"));
    }
    let interval = draft.interval.unwrap_or(DEFAULT_INTERVAL);
    let timeout = match draft.timeout {
        Some((timeout, at)) if timeout < interval => {
            return Err(format!(
                "{at}: service {name:?}: timeout {} s is shorter than the interval {} s",
                timeout.as_secs_f64(),
                interval.as_secs_f64()
            ));
        }
        Some((timeout, _)) => timeout,
        None => interval * DEFAULT_TIMEOUT_INTERVALS,
    };
    let mut hooks: [Option<Function>; 4] = Default::default();
    for ((slot, given), kind) in hooks.iter_mut().zip(draft.hooks).zip(HookKind::ALL) {
        *slot = given.map(|h| resolve(lua, &name, kind, h)).transpose()?;
    }
    let defined = |kind: HookKind| hooks[kind as usize].is_some();
    let set = HookSet {
        start: defined(HookKind::Start),
        stop: defined(HookKind::Stop),
        reclaim: defined(HookKind::Reclaim),
        check: defined(HookKind::Check),
    };
    let service = ServiceConfig {
        name,
        interval,
        timeout,
        hook_timeout: draft.hook_timeout.unwrap_or(DEFAULT_HOOK_TIMEOUT),
        masters: draft.masters,
        slaves: draft.slaves,
        hooks: set,
    };
    Ok((service, hooks))
}

fn resolve(lua: &Lua, service: &str, kind: HookKind, hook: HookRef) -> Result<Function, String> {
    match hook {
        HookRef::Function(f) => Ok(f),
        HookRef::Global { name, at } => match lua.globals().raw_get::<Value>(name.as_str()) {
            Ok(Value::Function(f)) => Ok(f),
            Ok(other) => Err(format!(
                "{at}: service {service:?}: {kind} hook {name:?} is not a global function (it is {})",
                other.type_name()
            )),
            Err(e) => Err(format!(
                "{at}: service {service:?}: {kind} hook {name:?}: {e}"
            )),
        },
    }
}
