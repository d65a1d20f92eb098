//! The Lua state and how one function runs in it under a time limit.
//!
//! Every run (the config chunk, each hook call) gets its own Lua thread
//! (coroutine) with its own instruction-count hook and deadline, so runs of
//! different services can interleave on the one state without sharing a
//! limit. The count hook does two jobs:
//!
//! * every [`SLICE`] of pure-Lua work it yields, so the run's future returns
//!   `Pending` and other hooks get the state (mlua holds a lock on the state
//!   while a future is being polled). A busy loop thus delays other hooks by
//!   at most about one slice at a time, instead of until its limit.
//! * past the deadline it yields (the surrounding `timeout_at` then fires and
//!   drops the run), or, where Lua cannot yield (inside a C function such as
//!   `string.gsub` calling back into Lua), raises a Lua error; it alternates
//!   the two so a `pcall` cannot keep the run alive by catching the error.
//!
//! Every run's thread starts in the sandbox's `run`, which catches what the
//! function raises, so no error value leaves the thread: mlua would convert
//! one with its `__tostring` on the main thread, where no hook counts.
//! [`Locator::raised`] turns it into text without running Lua code.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::helpers;
use super::location::Locator;
use super::sandbox::Sandbox;

/// How many VM instructions run between two looks at the clock.
const INSTRUCTIONS: u32 = 1000;
/// How long a run may keep the Lua state before it yields to other runs.
const SLICE: Duration = Duration::from_millis(2);
/// Longest time limit honoured; longer limits are cut to this (it keeps
/// `Instant` arithmetic far from overflow).
const MAX_LIMIT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most memory one Lua state (a config and all its hooks) may hold. Past it
/// an allocation fails as a Lua error ("not enough memory") instead of
/// aborting failsh: a hook building a huge table fails, a reload building
/// one is refused. Generous: a config and its hooks normally use well under
/// 1 MiB.
pub(crate) const MEMORY_LIMIT: usize = 64 << 20;

/// Why a run did not return values.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RunError {
    /// A Lua error, as one line (see [`Locator`]).
    Failed(String),
    TimedOut,
}

/// The Lua state with failsh's helpers, and the runs in progress.
pub(crate) struct Engine {
    pub(crate) lua: Lua,
    pub(crate) locator: Locator,
    runs: Arc<Runs>,
    sandbox: Sandbox,
}

impl Engine {
    /// A state with the safe standard libraries `string`, `table`, `math` and
    /// `utf8` (plus the base functions) and the helpers `exec`, `log` and
    /// `hostname`. `os` and `io` are left out: `os.execute` and `io.popen`
    /// would block the async runtime. `coroutine` is removed as well (mlua
    /// loads it for its async functions): a coroutine created in Lua would run
    /// without the time-limit hook. The sandbox takes out `loadfile` and
    /// `dofile`, makes `load` refuse binary chunks, and `setmetatable`
    /// finalizers. The state may hold [`MEMORY_LIMIT`] bytes.
    pub(crate) fn new(path: &Path) -> mlua::Result<Self> {
        let libs = StdLib::STRING | StdLib::TABLE | StdLib::MATH | StdLib::UTF8;
        let lua = Lua::new_with(libs, LuaOptions::new())?;
        lua.set_memory_limit(MEMORY_LIMIT)?;
        let runs = Arc::new(Runs::default());
        helpers::install(&lua, &runs)?;
        let sandbox = Sandbox::install(&lua)?;
        lua.globals().raw_set("coroutine", Value::Nil)?;
        let locator = Locator::new(&lua, path)?;
        Ok(Self {
            lua,
            locator,
            runs,
            sandbox,
        })
    }

    /// Once the config has run: its globals and libraries become read-only
    /// to the hooks, and each service's hooks get a global table of their
    /// own on top of them (from [`Engine::service_globals`]), so that one
    /// service assigning `log = nil`, `exec = ...` or `string.format = nil`
    /// changes nothing for another.
    pub(crate) fn seal(&self) -> mlua::Result<()> {
        self.sandbox.seal(&self.lua)
    }

    /// A new, empty global table for one service's hooks.
    pub(crate) fn service_globals(&self) -> mlua::Result<Table> {
        self.lua.create_table()
    }

    /// Calls `func` without arguments in a fresh Lua thread, abandoning it
    /// after `limit`. Whenever the returned future ends (values, error, time
    /// limit, or dropped), the process groups of `exec` calls still running
    /// in it are killed. `label` names the run in `log` output; `globals`
    /// are the service's own (none for the config).
    pub(crate) async fn run(
        &self,
        func: &Function,
        globals: Option<&Table>,
        label: &str,
        limit: Duration,
    ) -> Result<MultiValue, RunError> {
        let start = Instant::now();
        let deadline = start + limit.min(MAX_LIMIT);
        let lua_error = |e: mlua::Error| RunError::Failed(self.locator.one_line(&e));
        let thread = self
            .lua
            .create_thread(self.sandbox.run.clone())
            .map_err(lua_error)?;
        thread
            .set_hook(
                HookTriggers::new().every_nth_instruction(INSTRUCTIONS),
                clock(start, deadline),
            )
            .map_err(lua_error)?;
        let _run = self.runs.enter(thread.to_pointer() as usize, label);
        let future = thread
            .into_async::<MultiValue>((globals.cloned(), func.clone()))
            .map_err(lua_error)?;
        let result = match tokio::time::timeout_at(deadline.into(), future).await {
            Err(_) => return Err(RunError::TimedOut),
            // Only the sandbox's own code can raise here: the clock, or an
            // allocation failure.
            Ok(Err(e)) => Err(lua_error(e)),
            Ok(Ok(values)) => {
                let mut values = values.into_iter();
                match values.next() {
                    Some(Value::Boolean(true)) => Ok(values.collect()),
                    _ => Err(RunError::Failed(
                        self.locator.raised(&values.next().unwrap_or(Value::Nil)),
                    )),
                }
            }
        };
        // An error at or after the deadline is the clock's own error, or
        // one the limit would have preempted anyway.
        match result {
            Err(_) if Instant::now() >= deadline => Err(RunError::TimedOut),
            result => result,
        }
    }
}

/// The instruction-count hook of one run (see the module docs).
fn clock(
    start: Instant,
    deadline: Instant,
) -> impl Fn(&Lua, &mlua::debug::Debug) -> mlua::Result<VmState> + Send + 'static {
    let last_yield = AtomicU64::new(0);
    // Past the deadline: whether the last attempt was a yield.
    let yielded = AtomicBool::new(false);
    move |_, _| {
        let now = Instant::now();
        if now >= deadline {
            return if !yielded.fetch_xor(true, Ordering::Relaxed) {
                Ok(VmState::Yield)
            } else {
                Err(mlua::Error::runtime("hook time limit exceeded"))
            };
        }
        let elapsed = u64::try_from(now.duration_since(start).as_nanos()).unwrap_or(u64::MAX);
        let slice = u64::try_from(SLICE.as_nanos()).unwrap_or(u64::MAX);
        if elapsed.saturating_sub(last_yield.load(Ordering::Relaxed)) >= slice {
            last_yield.store(elapsed, Ordering::Relaxed);
            Ok(VmState::Yield)
        } else {
            Ok(VmState::Continue)
        }
    }
}

/// Runs in progress, keyed by their Lua thread, so `exec` can tell which run
/// called it.
#[derive(Default)]
pub(crate) struct Runs(Mutex<HashMap<usize, Arc<Run>>>);

/// One run in progress.
pub(crate) struct Run {
    /// Names the run in log lines: `config`, or `SERVICE HOOK`.
    pub(crate) label: String,
    /// Process groups of this run's `exec` calls whose shell has not been
    /// reaped yet.
    groups: Mutex<Vec<Pid>>,
}

impl Run {
    /// Notes an `exec` child's process group, to be killed if the run ends
    /// first.
    pub(crate) fn add_group(&self, group: Pid) {
        lock(&self.groups).push(group);
    }

    /// Forgets a process group once its shell has been reaped (the group
    /// may then cease to exist and its number be reused).
    pub(crate) fn remove_group(&self, group: Pid) {
        lock(&self.groups).retain(|g| *g != group);
    }

    /// Kills, right away, what the run's `exec` calls left running: the
    /// shell and all it started, even if it put them in the background.
    fn kill_groups(&self) {
        for group in lock(&self.groups).drain(..) {
            // ESRCH: the group has just ended by itself.
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

impl Runs {
    fn enter(self: &Arc<Self>, key: usize, label: &str) -> RunGuard {
        let run = Arc::new(Run {
            label: label.to_string(),
            groups: Mutex::new(Vec::new()),
        });
        lock(&self.0).insert(key, run);
        RunGuard {
            runs: Arc::clone(self),
            key,
        }
    }

    /// The run whose Lua thread is executing on `lua` right now.
    pub(crate) fn current(&self, lua: &Lua) -> Option<Arc<Run>> {
        let key = lua.current_thread().to_pointer() as usize;
        lock(&self.0).get(&key).cloned()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Ends a run when the run's future finishes or is dropped. The kill is
/// done here, synchronously, so it happens at the limit even if the runtime
/// is about to shut down (as after a config load).
struct RunGuard {
    runs: Arc<Runs>,
    key: usize,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let run = lock(&self.runs.0).remove(&self.key);
        if let Some(run) = run {
            run.kill_groups();
        }
    }
}
