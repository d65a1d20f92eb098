//! The running failsh: one task per service driving its
//! [`Machine`](failover::machine::Machine) with real time, real polls of the
//! failds and real hooks; a config reload swaps definitions under the tasks.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use failover::State;
use failover::machine::{Command, HookResult, LocalAnswer, Machine, Note, Params, PeerAnswer};
use failover::proto::Origin;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::batcher::Poller;
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
}

/// One managed service: its machine, and the token that ends its task.
#[derive(Clone)]
struct Slot {
    machine: Arc<Mutex<Machine>>,
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

/// Per-call limit of a poll: below the interval, so a dead peer never makes
/// a service miss its next tick.
fn call_limit(interval: Duration) -> Duration {
    (interval / 2).clamp(Duration::from_millis(20), Duration::from_secs(2))
}

impl Current {
    fn new(config: Config, hooks: Hooks) -> Current {
        let pollers = config
            .hosts
            .iter()
            .map(|(name, host)| (name.clone(), Poller::spawn(host.clone())))
            .collect();
        let local = config.localhost().clone();
        Current {
            writer: Arc::new(tokio::sync::Mutex::new(Client::new(local))),
            config,
            hooks,
            pollers,
        }
    }
}

impl Engine {
    /// Starts a task for every service of `config`.
    pub fn start(config: Config, hooks: Hooks, shutdown: CancellationToken) -> Arc<Engine> {
        let engine = Arc::new(Engine {
            current: RwLock::new(Arc::new(Current::new(config, hooks))),
            services: Mutex::new(BTreeMap::new()),
            retired: Mutex::new(BTreeMap::new()),
            epoch: Instant::now(),
            shutdown,
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
        let machine = match &old {
            Some(o) => {
                o.machine
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .reconfigure(params(&cfg));
                o.machine.clone()
            }
            None => Arc::new(Mutex::new(Machine::new(params(&cfg)))),
        };
        let slot = Slot {
            machine,
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
            Arc::new(Current::new(config, hooks));
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
            // the same interval poll together and share one GET per peer.
            let now = self.epoch.elapsed();
            let i = cfg.interval.as_nanos().max(1);
            let next = Duration::from_nanos(((now.as_nanos() / i + 1) * i) as u64);
            tokio::select! {
                _ = slot.stop.cancelled() => return,
                _ = tokio::time::sleep(next - now) => {}
            }
            self.tick(&name, &cfg, &current, &slot.machine, next).await;
        }
    }

    async fn tick(
        &self,
        name: &str,
        cfg: &ServiceConfig,
        current: &Current,
        machine: &Mutex<Machine>,
        now: Duration,
    ) {
        // `now` is the tick's aligned time, not the clock after waking up:
        // INDOUBT durations then add up to exact multiples of the interval,
        // whatever the wake-up and poll latencies.
        let limit = call_limit(cfg.interval);
        let (local, peers) = poll(name, cfg, current, limit).await;
        let mut step = machine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .on_poll(now, local, &peers);
        loop {
            for note in &step.notes {
                match note {
                    Note::Info(m) => info!(target: "engine", "{name}: {m}"),
                    Note::Warn(m) => warn!(target: "engine", "{name}: {m}"),
                }
            }
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
                    info!(target: "hook", "{name}: {kind} hook took {:.3}s: {}", started.elapsed().as_secs_f64(), describe(&result));
                    machine
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .on_hook(hook_result(result))
                }
                Command::Poll => {
                    let (local, peers) = poll(name, cfg, current, limit).await;
                    let now = self.epoch.elapsed();
                    machine
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .on_poll(now, local, &peers)
                }
            };
        }
    }

    /// A text snapshot, one line per service (the monitor port and the
    /// SIGINT dump).
    pub fn snapshot(&self) -> String {
        let now = self.epoch.elapsed();
        let machines: Vec<(String, Arc<Mutex<Machine>>)> = self
            .services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(n, slot)| (n.clone(), slot.machine.clone()))
            .collect();
        let mut out = String::new();
        for (name, m) in machines {
            let s = m.lock().unwrap_or_else(|p| p.into_inner()).status(now);
            let local = match &s.local {
                Some(LocalAnswer::Record(r)) => r.state.to_string(),
                Some(LocalAnswer::NoSuch) => "NOSUCH".into(),
                Some(LocalAnswer::Unavailable(_)) => "UNAVAILABLE".into(),
                None => "-".into(),
            };
            let peers: Vec<String> = s.peers.iter().map(|(h, v)| format!("{h}={v}")).collect();
            let _ = writeln!(
                out,
                "{name} local={local} running={} reclaim={} busy={} peers=[{}] decision=\"{}\"",
                if s.running { "yes" } else { "no" },
                if s.reclaim { "yes" } else { "no" },
                s.busy.as_deref().unwrap_or("-"),
                peers.join(", "),
                s.last.as_ref().map_or("", |d| d.reason.as_str()),
            );
        }
        out
    }
}

/// Asks the local faild and every master and slave for `name`, at once.
async fn poll(
    name: &str,
    cfg: &ServiceConfig,
    current: &Current,
    limit: Duration,
) -> (LocalAnswer, Vec<(String, PeerAnswer)>) {
    let hosts: Vec<&str> = std::iter::once(LOCALHOST)
        .chain(cfg.masters.iter().chain(&cfg.slaves).map(String::as_str))
        .collect();
    let mut polls = JoinSet::new();
    for (i, host) in hosts.iter().enumerate() {
        let Some(poller) = current.pollers.get(*host).cloned() else {
            continue; // cannot happen: the config defines every host it names
        };
        let service = name.to_string();
        polls.spawn(async move { (i, poller.get(&service, limit).await) });
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
                Err(e @ (CallError::Refused(_) | CallError::Garbled(_))) => {
                    PeerAnswer::Error(e.to_string())
                }
                Err(CallError::NoAnswer(_)) => PeerAnswer::NoAnswer,
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
