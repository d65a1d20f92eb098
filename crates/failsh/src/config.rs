//! Loading a failsh config: a Lua script that declares services with
//! `failsvc` and peer parameters with `failhost`, as the original's Tcl
//! script did with the commands of the same names.
//!
//! The script runs once; what it declared becomes plain data ([`Config`])
//! that the driver can compare on SIGHUP, and the hook functions stay in the
//! Lua state inside [`Hooks`]. Both the worked example's line-by-line style
//! and a table style are accepted:
//!
//! ```lua
//! failsvc("vip", "create")
//! failsvc("vip", "interval", 5)
//! failsvc("vip", "start", startservice)  -- a function, or a global's name
//! failsvc("vip", "masters", "lukretia")  -- names, or a table of names
//! failhost("lukretia", "community", "public")
//!
//! failsvc{ name = "www", interval = 0.5, slaves = {"macbeth"},
//!          start = function() ... end, stop = function() ... end }
//! failhost{ name = "macbeth", address = "127.0.0.3", protocol = "udp" }
//! ```
//!
//! `failsvc` subcommands (table keys in brackets where they differ):
//! `create`, `interval`, `timeout`, `hooktimeout` (`hook_timeout`) take
//! seconds, fractions allowed, from 0.001 to 86400; `masters`, `slaves` take
//! names or tables of names and replace the list; `start`, `stop`, `reclaim`,
//! `check` take a function or a global function's name, looked up after the
//! script ran. A service must be created before it is set up, at most once,
//! and needs start and stop hooks; `localhost` cannot be a master or slave.
//! `failhost` keys: `address`, `port`, `protocol` (`tcp`/`udp`), `community`,
//! `key_file` (sign requests to that host with a key from this file;
//! relative to the config's directory) and `key_id` (which key of the file;
//! default: the last one for the community).
//!
//! The script (and every hook) also gets `exec(cmd)` (runs `/bin/sh -c cmd`,
//! returns its stdout less one trailing newline, raises `exec "cmd": exit
//! status N: stderr` on failure), `log(...)` and `hostname()`, and the
//! standard libraries `string`, `table`, `math`, `utf8` and the base
//! functions (`load` for text chunks only; no `loadfile` or `dofile`); not
//! `os`, `io` or `coroutine` (see [`crate::hooks`]). The script and its hooks
//! share one memory limit; a script that reaches it fails to load.
//!
//! Every error is one line, `file:line: message`. An error raised in a
//! function called as `return f()` (a tail call) lacks the line: Lua has
//! dropped the caller's frame.

mod api;
mod draft;
mod lookup;

pub use lookup::LOOKUP_LIMIT;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::hooks::{Engine, Hooks, RunError};

/// Heartbeat interval of a service that does not set one (the worked
/// example's value).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// Without an explicit timeout, a peer stays INDOUBT for this many intervals
/// before it counts as FAIL: long enough to ride out two lost polls.
pub const DEFAULT_TIMEOUT_INTERVALS: u32 = 3;
/// Time limit of each hook call unless the service sets one.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(60);
/// Community sent to a faild unless the host sets one.
pub const DEFAULT_COMMUNITY: &str = "public";
/// The pseudo-host naming the local faild; it always exists in a [`Config`].
pub const LOCALHOST: &str = "localhost";
/// Address of [`LOCALHOST`] unless the config sets one.
pub const LOCALHOST_ADDRESS: &str = "127.0.0.1";
/// How long the config script may run (it may call `exec`).
pub const LOAD_TIME_LIMIT: Duration = Duration::from_secs(60);

/// A loaded config as plain data. Two loads of the same file compare equal
/// (apart from hook code, which lives in [`Hooks`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Services by name.
    pub services: BTreeMap<String, ServiceConfig>,
    /// Every host named in a masters or slaves list or by `failhost`, and
    /// [`LOCALHOST`]; hosts not configured by `failhost` have the defaults.
    pub hosts: BTreeMap<String, HostConfig>,
    /// The config file, as given to [`load`].
    pub file: PathBuf,
    /// Every host's address as looked up when the config was loaded, used
    /// until the next reload (see `config/lookup.rs` for why).
    pub lookups: BTreeMap<String, Lookup>,
}

/// A host's address as looked up at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// Where the config names the host's address, `file:line`: the
    /// `failhost` call that set it, else the first masters or slaves list
    /// naming the host, else its first `failhost` call (the file alone for
    /// an implicit localhost).
    pub at: String,
    /// Its faild's socket addresses, or why there are none: one line,
    /// starting with `at`.
    pub addresses: Result<Vec<SocketAddr>, String>,
}

impl Config {
    /// How to reach the local faild.
    pub fn localhost(&self) -> &HostConfig {
        &self.hosts[LOCALHOST]
    }

    /// Configuration errors that do not stop a load, one line each: hosts
    /// the services use (masters, slaves, localhost) whose address did not
    /// resolve. failsh runs with them (such a peer blocks every start and
    /// never counts as FAIL); `failsh -t` refuses them.
    pub fn unresolved(&self) -> Vec<String> {
        let used = self.used_hosts();
        self.lookups
            .iter()
            .filter(|(name, _)| used.contains(&name.as_str()))
            .filter_map(|(_, l)| l.addresses.as_ref().err().cloned())
            .collect()
    }

    /// Warnings, one line each: hosts configured with `failhost` that no
    /// service uses (often the correct spelling of a misspelt masters or
    /// slaves entry).
    pub fn unused_hosts(&self) -> Vec<String> {
        let used = self.used_hosts();
        self.hosts
            .keys()
            .filter(|name| !used.contains(&name.as_str()))
            .map(|name| {
                let at = self
                    .lookups
                    .get(name)
                    .map_or_else(|| self.file.display().to_string(), |l| l.at.clone());
                format!(
                    "{at}: failhost {name:?}: no service has this host as a master or slave (misspelt there?)"
                )
            })
            .collect()
    }

    /// [`LOCALHOST`] and every master and slave of a service.
    fn used_hosts(&self) -> Vec<&str> {
        self.services
            .values()
            .flat_map(|s| s.masters.iter().chain(&s.slaves))
            .map(String::as_str)
            .chain([LOCALHOST])
            .collect()
    }
}

/// One service, as declared by `failsvc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub name: String,
    /// How often peers are polled and the local state is decided.
    pub interval: Duration,
    /// How long a peer may stay INDOUBT before it counts as FAIL; never
    /// shorter than `interval`.
    pub timeout: Duration,
    /// Time limit of each hook call.
    pub hook_timeout: Duration,
    /// Hosts superior to this one, in config order, without duplicates.
    pub masters: Vec<String>,
    /// Hosts inferior to this one, in config order, without duplicates.
    pub slaves: Vec<String>,
    /// Which hooks are defined (start and stop always are).
    pub hooks: HookSet,
}

/// Which hooks a service defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookSet {
    pub start: bool,
    pub stop: bool,
    pub reclaim: bool,
    pub check: bool,
}

/// How to reach one host's faild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    pub name: String,
    /// Host name or IP address to connect to; defaults to the name
    /// ([`LOCALHOST_ADDRESS`] for [`LOCALHOST`]).
    pub address: String,
    /// Defaults to [`failover::DEFAULT_PORT`].
    pub port: u16,
    pub protocol: Protocol,
    /// Defaults to [`DEFAULT_COMMUNITY`].
    pub community: String,
    /// `key_file` as given, and where (`file:line`, for errors).
    pub key_file: Option<(String, String)>,
    pub key_id: Option<String>,
    /// The key requests to this host are signed with, read from `key_file`
    /// once the script has run (so a changed key file makes a reloaded
    /// config differ).
    pub key: Option<std::sync::Arc<failover::auth::Key>>,
}

impl HostConfig {
    /// A host nobody configured.
    fn implicit(name: &str) -> Self {
        let address = if name == LOCALHOST {
            LOCALHOST_ADDRESS
        } else {
            name
        };
        Self {
            name: name.to_string(),
            address: address.to_string(),
            port: failover::DEFAULT_PORT,
            protocol: Protocol::Tcp,
            community: DEFAULT_COMMUNITY.to_string(),
            key_file: None,
            key_id: None,
            key: None,
        }
    }
}

/// Transport to a faild.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

impl FromStr for Protocol {
    type Err = String;

    /// `tcp` or `udp`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("tcp") {
            Ok(Protocol::Tcp)
        } else if s.eq_ignore_ascii_case("udp") {
            Ok(Protocol::Udp)
        } else {
            Err(format!("protocol {s:?} is neither tcp nor udp"))
        }
    }
}

/// Why a config could not be loaded: one line, `file:line: message`
/// whenever a line is known, else `file: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Reads and runs the config at `path`.
///
/// Blocking: it reads the file and runs the script, which may call `exec`,
/// for up to [`LOAD_TIME_LIMIT`]. It runs the script on a thread of its own
/// with a private runtime, so it may be called from plain code or from
/// inside a tokio runtime (from async code, prefer `spawn_blocking`). The
/// returned [`Hooks`] are then called on the caller's runtime.
pub fn load(path: &Path) -> Result<(Config, Hooks), ConfigError> {
    load_within(path, LOAD_TIME_LIMIT, &CancellationToken::new())
}

/// [`load`], but given up as soon as `stop` is cancelled (failsh stopping
/// in the middle of a reload): the script is abandoned at its next Lua
/// instructions and its `exec` processes are killed, as at the time limit.
pub fn load_unless_stopped(
    path: &Path,
    stop: &CancellationToken,
) -> Result<(Config, Hooks), ConfigError> {
    load_within(path, LOAD_TIME_LIMIT, stop)
}

fn load_within(
    path: &Path,
    limit: Duration,
    stop: &CancellationToken,
) -> Result<(Config, Hooks), ConfigError> {
    std::thread::scope(|scope| {
        let loader = scope.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    ConfigError(format!("{}: cannot start a runtime: {e}", path.display()))
                })?;
            runtime.block_on(run_script(path, limit, stop))
        });
        loader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

async fn run_script(
    path: &Path,
    limit: Duration,
    stop: &CancellationToken,
) -> Result<(Config, Hooks), ConfigError> {
    let file = path.display();
    let source = std::fs::read(path).map_err(|e| ConfigError(format!("{file}: {e}")))?;
    let engine = Engine::new(path).map_err(|e| ConfigError(format!("{file}: {e}")))?;
    // Lua gives no position for some errors (an allocation failure, a
    // binary chunk): those still name the file.
    let located = |message: String| {
        if message.starts_with(&file.to_string()) {
            ConfigError(message)
        } else {
            ConfigError(format!("{file}: {message}"))
        }
    };
    let lua_error = |e: mlua::Error| located(engine.locator.one_line(&e));
    let draft = Arc::new(Mutex::new(draft::Draft::default()));
    api::install(&engine, &draft).map_err(lua_error)?;
    let chunk = engine
        .lua
        .load(&source[..])
        .set_name(engine.locator.chunk_name())
        .set_mode(mlua::chunk::ChunkMode::Text)
        .into_function()
        .map_err(lua_error)?;
    let ran = tokio::select! {
        ran = engine.run(&chunk, None, "config", limit) => ran,
        () = stop.cancelled() => return Err(ConfigError(format!("{file}: loading stopped"))),
    };
    ran.map_err(|e| match e {
        RunError::Failed(message) => located(message),
        RunError::TimedOut => ConfigError(format!(
            "{file}: the config did not finish within {} s",
            limit.as_secs_f64()
        )),
    })?;
    api::uninstall(&engine).map_err(lua_error)?;
    let draft = std::mem::take(&mut *draft.lock().unwrap_or_else(PoisonError::into_inner));
    let (mut config, table, named_at) = draft.finish(&engine.lua, path).map_err(ConfigError)?;
    config.lookups = lookup::resolve(&config.hosts, named_at, &file.to_string(), LOOKUP_LIMIT);
    let hooks = Hooks::new(engine, table).map_err(|e| ConfigError(format!("{file}: {e}")))?;
    Ok((config, hooks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_that_never_finishes_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("spin.lua");
        std::fs::write(&file, "failsvc('vip', 'create')\nwhile true do end\n").unwrap();
        let err = load_within(&file, Duration::from_millis(200), &CancellationToken::new())
            .err()
            .unwrap();
        let expected = format!("{}: the config did not finish within 0.2 s", file.display());
        assert_eq!(err, ConfigError(expected));
    }

    #[tokio::test]
    async fn a_config_stopped_at_its_limit_leaves_no_process_behind() {
        use crate::hooks::tests::{LONG, eventually, gone, pid_in};
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("slow.lua");
        let pid_file = dir.path().join("sleep.pid");
        let body = format!(
            "exec('sleep 100 & echo $! > {}; wait')\n",
            pid_file.display()
        );
        std::fs::write(&file, body).unwrap();
        assert!(load_within(&file, Duration::from_millis(300), &CancellationToken::new()).is_err());
        let pid = pid_in(&pid_file).await;
        eventually(LONG, "the background sleep is killed", || gone(pid)).await;
    }

    #[test]
    fn a_config_that_exhausts_memory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("huge.lua");
        std::fs::write(&file, "local t = {}\nfor i = 1, 1e9 do t[i] = i end\n").unwrap();
        let err = load(&file).err().unwrap();
        let expected = format!(
            "{}: not enough memory (the Lua memory limit is 64 MiB)",
            file.display()
        );
        assert_eq!(err, ConfigError(expected));
    }

    /// A string setting is measured before it is copied out of Lua: many
    /// hosts sharing one huge Lua string as `key_file` would otherwise cost
    /// one Rust copy each.
    #[test]
    fn an_overlong_string_setting_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("long.lua");
        for setting in [
            "failhost('h', 'key_file', string.rep('k', 5000))",
            "failsvc{ name = 'vip', start = string.rep('k', 5000) }",
        ] {
            std::fs::write(&file, format!("{setting}\n")).unwrap();
            let err = load(&file).err().unwrap();
            assert!(
                err.0.ends_with(" is 5000 bytes long; at most 4096 allowed"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_binary_config_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("binary.lua");
        let chunk = mlua::Lua::new()
            .load("failsvc('vip', 'create')")
            .into_function()
            .unwrap()
            .dump(false);
        std::fs::write(&file, chunk).unwrap();
        let err = load(&file).err().unwrap();
        let expected = format!(
            "{}: attempt to load a binary chunk (mode is 't')",
            file.display()
        );
        assert_eq!(err, ConfigError(expected));
    }

    #[tokio::test]
    async fn a_stopped_load_gives_up_at_once() {
        use crate::hooks::tests::{LONG, eventually, gone, pid_in};
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("slow.lua");
        let pid_file = dir.path().join("sleep.pid");
        let body = format!(
            "exec('sleep 100 & echo $! > {}')\nwhile true do end\n",
            pid_file.display()
        );
        std::fs::write(&file, body).unwrap();
        let stop = CancellationToken::new();
        let loader = {
            let (file, stop) = (file.clone(), stop.clone());
            std::thread::spawn(move || load_unless_stopped(&file, &stop))
        };
        let pid = pid_in(&pid_file).await;
        let started = std::time::Instant::now();
        stop.cancel();
        eventually(LONG, "the load gives up", || loader.is_finished()).await;
        println!("the load gave up {:?} after the stop", started.elapsed());
        let err = loader.join().unwrap().err().unwrap();
        assert_eq!(
            err,
            ConfigError(format!("{}: loading stopped", file.display()))
        );
        eventually(LONG, "the background sleep is killed", || gone(pid)).await;
    }

    #[test]
    fn protocol_names() {
        assert_eq!("Udp".parse(), Ok(Protocol::Udp));
        assert_eq!(Protocol::Tcp.to_string(), "tcp");
        assert!("sctp".parse::<Protocol>().is_err());
    }
}
