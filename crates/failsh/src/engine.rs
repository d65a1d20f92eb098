//! The running failsh: one task per service driving its
//! [`Machine`](failover::machine::Machine) with real time, real polls of the
//! failds and real hooks; a config reload swaps definitions under the tasks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use failover::State;
use failover::decide::PeerView;
use failover::look::{PollKind, Wait};
use failover::machine::{
    Command, HookKind, HookResult, LocalAnswer, Machine, Note, Params, PeerAnswer, Step,
};
use failover::monitor::{
    self, HookRun, HookStats, HostStatus, PeerStatus, Reason, ServiceStatus, Snapshot,
};
use failover::proto::Origin;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::batcher::{HostStats, Poller};
use crate::client::{CallError, Client, is_no_such};
use crate::config::{Config, LOCALHOST, ServiceConfig};
use crate::hooks::{HookError, HookOutcome, Hooks};

/// The definitions in force: replaced whole by a reload.
struct Current {
    config: Config,
    hooks: Hooks,
    pollers: BTreeMap<String, Poller>,
    /// Writes to the local faild, one at a time.
    writer: Arc<tokio::sync::Mutex<Client>>,
}

/// All services of this host.
pub struct Engine {
    current: RwLock<Arc<Current>>,
    services: Mutex<BTreeMap<String, Slot>>,
    /// Services a reload removed, kept so that one added back continues with
    /// the same machine once the old task has finished.
    retired: Mutex<BTreeMap<String, Slot>>,
    epoch: Instant,
    shutdown: CancellationToken,
    /// Call statistics per host, kept across reloads.
    host_stats: Mutex<BTreeMap<String, Arc<Mutex<HostStats>>>>,
    /// Bumped whenever a service did or decided something (monitor pushes).
    changes: watch::Sender<u64>,
    /// This host's node name, for the monitors.
    node: String,
}

/// What the monitors are told about one service beyond its machine's status.
#[derive(Debug, Default)]
struct ServiceStats {
    last_hook: Option<HookRun>,
    hooks: BTreeMap<&'static str, HookStats>,
    transitions: u64,
    last_transition: Option<SystemTime>,
    /// The local state and whether it runs, as last seen.
    seen: Option<(String, bool)>,
}

/// One managed service: its machine, and the token that ends its task.
#[derive(Clone)]
struct Slot {
    machine: Arc<Mutex<Machine>>,
    stats: Arc<Mutex<ServiceStats>>,
    /// Ends the task at its next tick.
    stop: CancellationToken,
    /// Cancelled when the task has ended (a tick in progress included).
    done: CancellationToken,
}

fn params(s: &ServiceConfig) -> Params {
    Params {
        masters: s.masters.clone(),
        slaves: s.slaves.clone(),
        timeout: s.timeout,
        has_check: s.hooks.check,
        has_reclaim: s.hooks.reclaim,
    }
}

/// The addresses `host` was found at when `config` was loaded.
fn addresses(config: &Config, host: &str) -> Result<Vec<SocketAddr>, String> {
    config.lookups.get(host).map_or_else(
        || {
            Err(format!(
                "{}: host {host:?} was not looked up",
                config.file.display()
            ))
        },
        |l| l.addresses.clone(),
    )
}

/// Per-call limit of a poll: below the interval, so a dead peer never makes
/// a service miss its next tick.
fn call_limit(interval: Duration) -> Duration {
    (interval / 2).clamp(Duration::from_millis(20), Duration::from_secs(2))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The local record as the monitors show it.
fn local_state(local: Option<&LocalAnswer>) -> String {
    match local {
        Some(LocalAnswer::Record(r)) => r.state.to_string(),
        Some(LocalAnswer::NoSuch) => "NOSUCH".into(),
        Some(LocalAnswer::Unavailable(_)) => "UNAVAILABLE".into(),
        None => "-".into(),
    }
}

impl Current {
    fn new(
        config: Config,
        hooks: Hooks,
        stats: &Mutex<BTreeMap<String, Arc<Mutex<HostStats>>>>,
    ) -> Current {
        let mut stats = lock(stats);
        let pollers = config
            .hosts
            .iter()
            .map(|(name, host)| {
                let s = stats.entry(name.clone()).or_default().clone();
                (
                    name.clone(),
                    Poller::spawn(host.clone(), addresses(&config, name), s),
                )
            })
            .collect();
        let local = config.localhost().clone();
        let local_addresses = addresses(&config, LOCALHOST);
        for problem in config.unresolved() {
            error!(target: "config", "CONFIG ERROR: {problem}: a service with this host never starts here until a reload fixes it");
        }
        for warning in config.unused_hosts() {
            warn!(target: "config", "{warning}");
        }
        Current {
            writer: Arc::new(tokio::sync::Mutex::new(Client::new(local, local_addresses))),
            config,
            hooks,
            pollers,
        }
    }
}

impl Engine {
    /// Starts a task for every service of `config`.
    pub fn start(config: Config, hooks: Hooks, shutdown: CancellationToken) -> Arc<Engine> {
        let host_stats = Mutex::new(BTreeMap::new());
        let current = Current::new(config, hooks, &host_stats);
        let node = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into());
        let engine = Arc::new(Engine {
            current: RwLock::new(Arc::new(current)),
            services: Mutex::new(BTreeMap::new()),
            retired: Mutex::new(BTreeMap::new()),
            epoch: Instant::now(),
            shutdown,
            host_stats,
            changes: watch::Sender::new(0),
            node,
        });
        let names: Vec<String> = engine.current().config.services.keys().cloned().collect();
        for name in names {
            engine.spawn_service(name);
        }
        engine
    }

    fn current(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn spawn_service(self: &Arc<Self>, name: String) {
        let Some(cfg) = self.current().config.services.get(&name).cloned() else {
            return;
        };
        // A service removed and added back continues with its machine (its
        // pending publish, stop retry, RECLAIM), after its old task is done.
        let old = self
            .retired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name);
        let (machine, stats) = match &old {
            Some(o) => {
                lock(&o.machine).reconfigure(params(&cfg));
                (o.machine.clone(), o.stats.clone())
            }
            None => (
                Arc::new(Mutex::new(Machine::new(params(&cfg)))),
                Arc::default(),
            ),
        };
        let slot = Slot {
            machine,
            stats,
            stop: self.shutdown.child_token(),
            done: CancellationToken::new(),
        };
        self.services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.clone(), slot.clone());
        let previous = old.map(|o| o.done);
        tokio::spawn(self.clone().run_service(name, slot, previous));
    }

    /// Replaces the definitions. Unchanged services go on untouched, changed
    /// ones get their new hooks and timings without a stop, removed ones are
    /// no longer managed (left as they are), new ones start being managed.
    pub fn reload(self: &Arc<Self>, config: Config, hooks: Hooks) -> String {
        let old = self.current();
        let (mut added, mut changed, mut removed) = (vec![], vec![], vec![]);
        for (name, svc) in &config.services {
            match old.config.services.get(name) {
                None => added.push(name.clone()),
                Some(o) if o != svc => changed.push(name.clone()),
                Some(_) => {}
            }
        }
        for name in old.config.services.keys() {
            if !config.services.contains_key(name) {
                removed.push(name.clone());
            }
        }
        {
            let mut services = self.services.lock().unwrap_or_else(|p| p.into_inner());
            for name in &changed {
                if let (Some(slot), Some(svc)) = (services.get(name), config.services.get(name)) {
                    slot.machine
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .reconfigure(params(svc));
                }
            }
            for name in &removed {
                if let Some(slot) = services.remove(name) {
                    slot.stop.cancel();
                    self.retired
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(name.clone(), slot);
                    info!(target: "engine", "{name}: no longer in the config: no longer managed, left as it is");
                }
            }
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Current::new(config, hooks, &self.host_stats));
        self.changed();
        for name in &added {
            self.spawn_service(name.clone());
        }
        format!(
            "{} added, {} changed, {} no longer managed (left as they are){}",
            added.len(),
            changed.len(),
            removed.len(),
            if removed.is_empty() {
                String::new()
            } else {
                format!(": {}", removed.join(", "))
            }
        )
    }

    async fn run_service(
        self: Arc<Self>,
        name: String,
        slot: Slot,
        previous: Option<CancellationToken>,
    ) {
        let _done = slot.done.clone().drop_guard();
        if let Some(previous) = previous {
            previous.cancelled().await; // never two tasks driving one service
        }
        loop {
            let current = self.current();
            let cfg = match current.config.services.get(&name) {
                Some(cfg) if !slot.stop.is_cancelled() => cfg.clone(),
                _ => return, // removed by a reload
            };
            // Ticks are aligned to multiples of the interval, so services on
            // the same interval poll together and share one GET per peer. A
            // silent peer's expiry between two ticks is a poll of its own:
            // the one that decides at the detection limit.
            let now = self.epoch.elapsed();
            let i = cfg.interval.as_nanos().max(1);
            let tick = Duration::from_nanos(((now.as_nanos() / i + 1) * i) as u64);
            let (next, kind) = match lock(&slot.machine).next_expiry(now) {
                Some(expiry) if expiry < tick => (expiry, PollKind::Expiry),
                _ => (tick, PollKind::Tick),
            };
            tokio::select! {
                _ = slot.stop.cancelled() => return,
                _ = tokio::time::sleep(next - now) => {}
            }
            self.tick(&name, &cfg, &current, &slot, kind).await;
        }
    }

    /// Polls the local faild and the peers, and feeds the answers to the
    /// machine as of the moment the last of them came in (or its wait
    /// ended): an answer is never taken for newer than it is, so silences
    /// are never counted short.
    async fn look(
        &self,
        name: &str,
        cfg: &ServiceConfig,
        current: &Current,
        machine: &Mutex<Machine>,
        kind: PollKind,
    ) -> Step {
        let limit = call_limit(cfg.interval);
        let start = self.epoch.elapsed();
        let waits = lock(machine).waits(start, limit, kind);
        let (local, peers) = poll(name, cfg, current, limit, &waits).await;
        let now = self.epoch.elapsed();
        lock(machine).on_poll(now, local, &peers)
    }

    async fn tick(
        &self,
        name: &str,
        cfg: &ServiceConfig,
        current: &Current,
        slot: &Slot,
        kind: PollKind,
    ) {
        let machine = &*slot.machine;
        let limit = call_limit(cfg.interval);
        let mut step = self.look(name, cfg, current, machine, kind).await;
        loop {
            for note in &step.notes {
                match note {
                    Note::Info(m) => info!(target: "engine", "{name}: {m}"),
                    Note::Warn(m) => warn!(target: "engine", "{name}: {m}"),
                }
            }
            // A routine health check is not news for the monitors.
            let routine = step.command == Some(Command::Run(HookKind::Check));
            self.observe(
                slot,
                !step.notes.is_empty() || (step.command.is_some() && !routine),
            );
            let Some(command) = step.command else {
                return;
            };
            step = match command {
                Command::Write(state) => {
                    let result = write(current, name, state, Origin::Failsh, limit).await;
                    machine
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .on_written(result)
                }
                Command::Claim | Command::Adopt => {
                    let origin = if command == Command::Claim {
                        Origin::Claim
                    } else {
                        Origin::Adopt
                    };
                    let result = write(current, name, State::Up, origin, limit).await;
                    machine
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .on_written(result)
                }
                Command::Run(kind) => {
                    let started = Instant::now();
                    let result = current.hooks.call(name, kind, cfg.hook_timeout).await;
                    let took = started.elapsed();
                    info!(target: "hook", "{name}: {kind} hook took {:.3}s: {}", took.as_secs_f64(), describe(&result));
                    record_hook(&mut lock(&slot.stats), kind, took, &result);
                    machine
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .on_hook(hook_result(result))
                }
                Command::Poll => {
                    self.look(name, cfg, current, machine, PollKind::SecondLook)
                        .await
                }
            };
        }
    }

    /// A receiver that sees every change worth a monitor push.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Counts a transition when the local state or `running` moved, and
    /// tells the monitors when anything happened.
    fn observe(&self, slot: &Slot, activity: bool) {
        let (now, known) = {
            let machine = lock(&slot.machine);
            let (local, running) = machine.local_and_running();
            // The local faild out of reach (or not asked yet) is no
            // transition of the service.
            let known = matches!(local, Some(LocalAnswer::Record(_) | LocalAnswer::NoSuch));
            ((local_state(local), running), known)
        };
        let moved = known && {
            let mut stats = lock(&slot.stats);
            let moved = stats.seen.as_ref() != Some(&now);
            if moved {
                if stats.seen.is_some() {
                    stats.transitions += 1;
                    stats.last_transition = Some(SystemTime::now());
                }
                stats.seen = Some(now);
            }
            moved
        };
        if moved || activity {
            self.changed();
        }
    }

    /// Everything the monitors show (and the SIGINT dump).
    pub fn snapshot(&self, reason: Reason) -> Snapshot {
        let now = self.epoch.elapsed();
        let wall = SystemTime::now();
        let current = self.current();
        let hosts = current
            .config
            .hosts
            .values()
            .map(|h| {
                let stats = lock(&self.host_stats)
                    .get(&h.name)
                    .map(|s| lock(s).clone())
                    .unwrap_or_default();
                HostStatus {
                    name: h.name.clone(),
                    address: format!("{}:{}", h.address, h.port),
                    last_ok: stats.last_ok.map(unix),
                    last_failure: stats.last_failure.map(unix),
                    last_error: stats.last_error,
                    rtt_ms: stats.rtt.map(|d| d.as_secs_f64() * 1000.0),
                    calls: stats.calls,
                    failures: stats.failures,
                    signed: h.key.is_some(),
                    auth_failures: stats.auth_failures,
                }
            })
            .collect();
        let slots: Vec<(String, Slot)> = lock(&self.services)
            .iter()
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        let services = slots
            .into_iter()
            .filter_map(|(name, slot)| {
                let cfg = current.config.services.get(&name)?;
                let status = lock(&slot.machine).status(now);
                let stats = lock(&slot.stats);
                let indoubt = status
                    .peers
                    .iter()
                    .any(|(_, v)| matches!(v.settled(cfg.timeout), PeerView::InDoubt(_)));
                let internal = if status.reclaim {
                    Some("RECLAIM".to_string())
                } else {
                    indoubt.then(|| "INDOUBT".to_string())
                };
                let peers = status
                    .peers
                    .iter()
                    .zip(&status.ages)
                    .map(|((host, view), age)| PeerStatus {
                        host: host.clone(),
                        role: if cfg.masters.contains(host) {
                            "master".into()
                        } else {
                            "slave".into()
                        },
                        state: view.settled(cfg.timeout).to_string(),
                        age_s: age.map(|a| a.as_secs_f64()),
                    })
                    .collect();
                Some(ServiceStatus {
                    name,
                    interval_s: cfg.interval.as_secs_f64(),
                    timeout_s: cfg.timeout.as_secs_f64(),
                    local: local_state(status.local.as_ref()),
                    running: status.running,
                    internal,
                    busy: status.busy.clone(),
                    peers,
                    decision: status
                        .last
                        .as_ref()
                        .map(|d| format!("{:?}", d.action).to_lowercase()),
                    reason: status.last.as_ref().map(|d| d.reason.clone()),
                    last_hook: stats.last_hook.clone(),
                    hooks: stats.hooks.values().cloned().collect(),
                    last_transition: stats.last_transition.map(unix),
                    transitions: stats.transitions,
                })
            })
            .collect();
        Snapshot {
            version: monitor::VERSION,
            host: self.node.clone(),
            at: unix(wall),
            reason,
            hosts,
            services,
        }
    }
}

fn record_hook(
    stats: &mut ServiceStats,
    kind: HookKind,
    took: Duration,
    result: &Result<HookOutcome, HookError>,
) {
    // As the step machine reads each hook: a start or reclaim must answer
    // UP, a stop anything but UP, a check healthy.
    let ok = match (kind, result) {
        (HookKind::Check, Ok(HookOutcome::Healthy(h))) => *h,
        (HookKind::Start | HookKind::Reclaim, Ok(HookOutcome::State(s))) => *s == State::Up,
        (HookKind::Stop, Ok(HookOutcome::State(s))) => *s != State::Up,
        _ => false,
    };
    let name = kind.as_str();
    let totals = stats.hooks.entry(name).or_insert_with(|| HookStats {
        kind: name.into(),
        runs: 0,
        failures: 0,
        seconds: 0.0,
    });
    totals.runs += 1;
    totals.failures += u64::from(!ok);
    totals.seconds += took.as_secs_f64();
    stats.last_hook = Some(HookRun {
        kind: name.into(),
        at: unix(SystemTime::now()),
        duration_s: took.as_secs_f64(),
        ok,
        result: describe(result),
    });
}

/// Asks the local faild (with `limit`) and every master and slave (as
/// `waits` says, in that order; with `limit` where it says nothing, as for
/// a peer a reload has just added) for `name`, at once.
async fn poll(
    name: &str,
    cfg: &ServiceConfig,
    current: &Current,
    limit: Duration,
    waits: &[Wait],
) -> (LocalAnswer, Vec<(String, PeerAnswer)>) {
    let hosts: Vec<&str> = std::iter::once(LOCALHOST)
        .chain(cfg.masters.iter().chain(&cfg.slaves).map(String::as_str))
        .collect();
    let full = Wait { limit, hold: false };
    let mut polls = JoinSet::new();
    for (i, host) in hosts.iter().enumerate() {
        let Some(poller) = current.pollers.get(*host).cloned() else {
            continue; // cannot happen: the config defines every host it names
        };
        let service = name.to_string();
        let wait = i
            .checked_sub(1)
            .and_then(|peer| waits.get(peer).copied())
            .unwrap_or(full);
        polls.spawn(async move {
            let until = tokio::time::Instant::now() + wait.limit;
            let answer = poller.get(&service, wait.limit).await;
            // A wait that ends at the peer's expiry ends there even when
            // nothing (or a refusal) came back sooner.
            if wait.hold && matches!(answer, Err(CallError::NoAnswer(_))) {
                tokio::time::sleep_until(until).await;
            }
            (i, answer)
        });
    }
    let mut answers: Vec<Option<Result<failover::Record, CallError>>> = vec![None; hosts.len()];
    for (i, answer) in polls.join_all().await {
        answers[i] = Some(answer);
    }
    let unknown_host = || Err(CallError::NoAnswer("host not in the config".into()));
    let mut answers = answers.into_iter().map(|a| a.unwrap_or_else(unknown_host));
    let local = match answers.next() {
        Some(Ok(r)) => LocalAnswer::Record(r),
        Some(Err(e)) if is_no_such(&e) => LocalAnswer::NoSuch,
        Some(Err(e)) => LocalAnswer::Unavailable(e.to_string()),
        None => LocalAnswer::Unavailable("no localhost in the config".into()),
    };
    let peers = hosts[1..]
        .iter()
        .map(|h| h.to_string())
        .zip(answers)
        .map(|(host, a)| {
            let answer = match a {
                Ok(r) => PeerAnswer::Record(r),
                Err(e) if is_no_such(&e) => PeerAnswer::NoSuch,
                Err(
                    e @ (CallError::Refused(_)
                    | CallError::Garbled(_)
                    | CallError::Unauthenticated(_)),
                ) => PeerAnswer::Error(e.to_string()),
                Err(CallError::NoAnswer(_)) => PeerAnswer::NoAnswer,
                Err(CallError::Unresolved(why)) => PeerAnswer::Unresolved(why),
            };
            (host, answer)
        })
        .collect();
    (local, peers)
}

async fn write(
    current: &Current,
    name: &str,
    state: State,
    origin: Origin,
    limit: Duration,
) -> Result<(), String> {
    let mut writer = current.writer.lock().await;
    writer
        .set(name, state, origin, limit.max(Duration::from_secs(1)))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn hook_result(result: Result<HookOutcome, HookError>) -> HookResult {
    match result {
        Ok(HookOutcome::State(s)) => HookResult::State(s),
        Ok(HookOutcome::Healthy(h)) => HookResult::Healthy(h),
        Err(e) => HookResult::Failed(e.to_string()),
    }
}

fn describe(result: &Result<HookOutcome, HookError>) -> String {
    match result {
        Ok(HookOutcome::State(s)) => format!("returned {s}"),
        Ok(HookOutcome::Healthy(h)) => format!("healthy: {h}"),
        Err(e) => format!("FAILED: {e}"),
    }
}
