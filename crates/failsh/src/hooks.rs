//! Calling the admin's hooks: the start, stop, reclaim and check functions a
//! config gives `failsvc`.
//!
//! All hooks live in the one Lua state the config was loaded into, so they
//! can share the config's locals and read its globals. A global a hook
//! assigns (also with `rawset(_G, ...)`) is its service's own: each
//! service's hooks see the config's globals through a table of their own,
//! and the libraries (`string`, `table`, `math`, `utf8`, and the string
//! metatable) through read-only views, so one service cannot replace a
//! helper or library function another uses (see `sandbox.lua`). What the
//! config shares on purpose stays shared: its `local` variables and the
//! tables they hold, and `collectgarbage`'s settings. The state may hold at most
//! [`MEMORY_LIMIT`](engine::MEMORY_LIMIT) bytes; past it an allocation is a
//! Lua error, so the hook fails. [`Hooks::call`] runs a hook
//! under a time limit; several services' hooks may be called at once from
//! different tasks:
//!
//! * A hook waiting in `exec` does not hold the Lua state: `exec` is async,
//!   so other hooks run meanwhile.
//! * A hook busy in pure Lua gives the state up every couple of milliseconds
//!   (see `engine`), so it slows other hooks down but does not stop them.
//!   While it holds the state, a task calling another hook blocks its runtime
//!   worker thread for up to that slice.
//! * At the time limit, or when the future of `call` is dropped, the call is
//!   abandoned, and every process group started by its `exec` calls is killed
//!   with SIGKILL.
//!
//! Limits of the time limit: Lua counts no instructions inside a C
//! function, so one long C call (a pathological `string.find` pattern, say)
//! runs until it returns; and Lua can only raise an error, not yield, inside
//! a C function that calls back into Lua (`string.gsub`, `table.sort`), so a
//! callback there that catches that error with `pcall` in an endless loop is
//! never stopped (nor is one in a `__close` handler run when an abandoned
//! hook's thread is closed). Either holds the Lua state, and so every other hook,
//! meanwhile. Loops in plain Lua code, even under `pcall`, are stopped.
//!
//! No Lua string is copied into Rust whole unless its length was checked:
//! `log` lines, `exec` commands, returned values and error messages are cut
//! first (see [`text`]), so references to one big string, which cost Lua
//! little, cannot make failsh allocate beyond the Lua memory limit.

mod engine;
mod helpers;
mod location;
mod sandbox;
#[cfg(test)]
pub(crate) mod tests;
pub(crate) mod text;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use failover::State;
use mlua::{Function, MultiValue, Table, Value};

pub(crate) use engine::{Engine, RunError};

pub use failover::machine::HookKind;

/// What a hook call produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookOutcome {
    /// The state returned by start, stop or reclaim, to be written to faild.
    State(State),
    /// The verdict of check: `true`, `nil` or no value is healthy, `false`
    /// is not.
    Healthy(bool),
}

/// Why a hook call did not produce an outcome. Every message is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The service has no such hook (reclaim and check are optional), or no
    /// such service is configured.
    #[error("hook not defined")]
    Missing,
    /// A Lua error, including a failed `exec`: `file:line: message`.
    #[error("{0}")]
    Failed(String),
    /// The hook ran longer than its time limit (the limit is given).
    #[error("time limit of {} s exceeded", .0.as_secs_f64())]
    TimedOut(Duration),
    /// start/stop/reclaim returned something other than "UP", "RECOVER" or
    /// "FAIL" (any case), or check returned something other than a boolean,
    /// `nil` or nothing. A check that returns e.g. "ok" is taken as an error
    /// rather than guessed healthy or not; the driver treats it as a failed
    /// check, and the message says what came back.
    #[error("{0}")]
    BadResult(String),
}

/// The hooks of all services of one loaded config, with the Lua state they
/// run in. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Hooks {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    /// Per service, its own globals and its hooks indexed by
    /// `HookKind as usize`.
    table: BTreeMap<String, (Table, [Option<Function>; 4])>,
}

impl Hooks {
    /// The hooks of a config that has run in `engine`; seals the config's
    /// globals (see [`Engine::seal`]).
    pub(crate) fn new(
        engine: Engine,
        table: BTreeMap<String, [Option<Function>; 4]>,
    ) -> mlua::Result<Self> {
        engine.seal()?;
        let table = table
            .into_iter()
            .map(|(service, hooks)| Ok((service, (engine.service_globals()?, hooks))))
            .collect::<mlua::Result<_>>()?;
        Ok(Self {
            inner: Arc::new(Inner { engine, table }),
        })
    }

    /// Calls the `kind` hook of `service`, giving up after `limit`
    /// (normally the service's `hook_timeout`).
    ///
    /// Must be called within a tokio runtime with I/O and time enabled
    /// (`exec` spawns processes and a reaper task on it); any flavour works.
    /// Dropping the future abandons the hook like the time limit does.
    pub async fn call(
        &self,
        service: &str,
        kind: HookKind,
        limit: Duration,
    ) -> Result<HookOutcome, HookError> {
        let (globals, func) = self
            .inner
            .table
            .get(service)
            .and_then(|(globals, hooks)| Some((globals, hooks[kind as usize].as_ref()?)))
            .ok_or(HookError::Missing)?;
        let values = self
            .inner
            .engine
            .run(func, Some(globals), &format!("{service} {kind}"), limit)
            .await
            .map_err(|e| match e {
                RunError::TimedOut => HookError::TimedOut(limit),
                RunError::Failed(message) => HookError::Failed(message),
            })?;
        outcome(kind, values)
    }
}

/// Interprets the values a hook returned (only the first counts).
fn outcome(kind: HookKind, values: MultiValue) -> Result<HookOutcome, HookError> {
    let first = values.into_iter().next().unwrap_or(Value::Nil);
    if kind == HookKind::Check {
        return match first {
            Value::Nil | Value::Boolean(true) => Ok(HookOutcome::Healthy(true)),
            Value::Boolean(false) => Ok(HookOutcome::Healthy(false)),
            other => Err(HookError::BadResult(format!(
                "check hook returned {}; expected true, false or nothing",
                describe(&other)
            ))),
        };
    }
    let state = match &first {
        // Longer than any state name: not copied out of Lua whole.
        Value::String(s) => State::from_str(&text::excerpt(s, MAX_STATE_NAME)).ok(),
        _ => None,
    };
    state.map(HookOutcome::State).ok_or_else(|| {
        HookError::BadResult(format!(
            "{kind} hook returned {}; expected \"UP\", \"RECOVER\" or \"FAIL\"",
            describe(&first)
        ))
    })
}

/// Longer than any text `State::from_str` accepts.
const MAX_STATE_NAME: usize = 16;
/// How much of a returned string an error message shows.
const SHOWN_RESULT: usize = 100;

/// A returned value for an error message.
fn describe(value: &Value) -> String {
    match value {
        Value::Nil => "nothing".to_string(),
        Value::String(s) => format!("{:?}", text::excerpt(s, SHOWN_RESULT)),
        Value::Boolean(_) | Value::Integer(_) | Value::Number(_) => {
            let text = value.to_string().unwrap_or_default();
            format!("{} {text}", value.type_name())
        }
        other => format!("a {}", other.type_name()),
    }
}
