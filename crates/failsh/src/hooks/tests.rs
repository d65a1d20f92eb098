//! Hook calls against real configs, processes and clocks. Every wait is
//! bounded by a deadline; none sleeps for a fixed time to "let things
//! happen".

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use failover::State;

use super::{HookError, HookKind, HookOutcome, Hooks};
use crate::config;

/// A config written to a temporary directory and loaded.
struct Fixture {
    dir: tempfile::TempDir,
    hooks: Hooks,
}

impl Fixture {
    /// Loads `body`, with `@DIR@` replaced by a fresh directory that the
    /// fixture removes when dropped.
    fn new(body: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hooks.lua");
        let body = body.replace("@DIR@", &dir.path().display().to_string());
        std::fs::write(&path, body).unwrap();
        let (_, hooks) = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        Fixture { dir, hooks }
    }

    /// A service `name` whose start hook is `start` (a Lua expression).
    fn service(name: &str, start: &str) -> String {
        format!(
            "failsvc{{ name = {name:?}, start = {start}, stop = function() return 'FAIL' end }}\n"
        )
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("hooks.lua")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn start(&self, service: &str, limit: Duration) -> Result<HookOutcome, HookError> {
        self.hooks.call(service, HookKind::Start, limit).await
    }
}

pub(crate) const LONG: Duration = Duration::from_secs(20);

/// Polls `ok` every 10 ms until it holds or `within` passes.
pub(crate) async fn eventually(within: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads a pid a shell command wrote, waiting for the file to be complete.
pub(crate) async fn pid_in(file: &Path) -> i32 {
    let mut pid = None;
    eventually(LONG, "the pid file is written", || {
        pid = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.strip_suffix('\n').and_then(|s| s.parse().ok()));
        pid.is_some()
    })
    .await;
    pid.unwrap()
}

/// Whether a child of ours has ended and been reaped.
fn reaped(pid: i32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether a process has ended (a zombie waiting for a reaper that is not
/// ours, e.g. a container's init, counts as ended).
pub(crate) fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_stop_reclaim_return_states() {
    let f = Fixture::new(
        r#"
        failsvc{ name = "a", start = function() return "UP" end,
                 stop = function() return "recover" end,
                 reclaim = function() return "Fail", "ignored" end }
        "#,
    );
    let call = |kind| f.hooks.call("a", kind, LONG);
    assert_eq!(
        call(HookKind::Start).await,
        Ok(HookOutcome::State(State::Up))
    );
    assert_eq!(
        call(HookKind::Stop).await,
        Ok(HookOutcome::State(State::Recover))
    );
    assert_eq!(
        call(HookKind::Reclaim).await,
        Ok(HookOutcome::State(State::Fail))
    );
    assert_eq!(call(HookKind::Check).await, Err(HookError::Missing));
    assert_eq!(
        f.hooks.call("nope", HookKind::Start, LONG).await,
        Err(HookError::Missing)
    );
}

#[tokio::test]
async fn bad_results_are_named() {
    let mut body = String::new();
    for (name, value) in [
        ("down", "'DOWN'"),
        ("none", "nil"),
        ("num", "3"),
        ("tab", "{}"),
    ] {
        body += &Fixture::service(name, &format!("function() return {value} end"));
    }
    let f = Fixture::new(&body);
    let bad = |s: &str| Err(HookError::BadResult(s.to_string()));
    let expect = "; expected \"UP\", \"RECOVER\" or \"FAIL\"";
    assert_eq!(
        f.start("down", LONG).await,
        bad(&format!("start hook returned \"DOWN\"{expect}"))
    );
    assert_eq!(
        f.start("none", LONG).await,
        bad(&format!("start hook returned nothing{expect}"))
    );
    assert_eq!(
        f.start("num", LONG).await,
        bad(&format!("start hook returned integer 3{expect}"))
    );
    assert_eq!(
        f.start("tab", LONG).await,
        bad(&format!("start hook returned a table{expect}"))
    );
}

#[tokio::test]
async fn lua_error_is_failed_with_position() {
    let f = Fixture::new(&Fixture::service("svc", "function()\n error('boom')\n end"));
    let line = 2;
    assert_eq!(
        f.start("svc", LONG).await,
        Err(HookError::Failed(format!(
            "{}:{line}: boom",
            f.path().display()
        )))
    );
}

#[tokio::test]
async fn check_results() {
    let mut body = String::new();
    for (name, value) in [
        ("yes", "return true"),
        ("nil", "return nil"),
        ("empty", ""),
        ("no", "return false"),
        ("str", "return 'ok'"),
        ("err", "error('sick', 0)"),
    ] {
        body += &format!(
            "failsvc{{ name = {name:?}, start = 'up', stop = 'up', check = function() {value} end }}\n"
        );
    }
    body += "function up() return 'UP' end\n";
    let f = Fixture::new(&body);
    let check = |s| f.hooks.call(s, HookKind::Check, LONG);
    assert_eq!(check("yes").await, Ok(HookOutcome::Healthy(true)));
    assert_eq!(check("nil").await, Ok(HookOutcome::Healthy(true)));
    assert_eq!(check("empty").await, Ok(HookOutcome::Healthy(true)));
    assert_eq!(check("no").await, Ok(HookOutcome::Healthy(false)));
    assert_eq!(
        check("str").await,
        Err(HookError::BadResult(
            "check hook returned \"ok\"; expected true, false or nothing".into()
        ))
    );
    assert_eq!(check("err").await, Err(HookError::Failed("sick".into())));
}

#[tokio::test]
async fn exec_returns_stdout_and_reports_failure() {
    let f = Fixture::new(
        &[
            Fixture::service("ok", "function() return exec('printf \"UP\\\\n\"') end"),
            Fixture::service(
                "fail",
                "function()\n exec('echo oops >&2; echo more >&2; exit 3')\n end",
            ),
            Fixture::service(
                "caught",
                "function() local ok, e = pcall(exec, 'false'); assert(not ok); error(e, 0) end",
            ),
        ]
        .concat(),
    );
    assert_eq!(f.start("ok", LONG).await, Ok(HookOutcome::State(State::Up)));
    let file = f.path().display().to_string();
    assert_eq!(
        f.start("fail", LONG).await,
        Err(HookError::Failed(format!(
            r#"{file}:3: exec "echo oops >&2; echo more >&2; exit 3": exit status 3: oops / more"#
        )))
    );
    // Caught with pcall, the error is a plain string.
    assert_eq!(
        f.start("caught", LONG).await,
        Err(HookError::Failed(r#"exec "false": exit status 1"#.into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_limit_kills_exec() {
    let f = Fixture::new(&Fixture::service(
        "svc",
        "function() exec('echo $$ > @DIR@/sh.pid; sleep 30') return 'UP' end",
    ));
    let started = Instant::now();
    let limit = Duration::from_millis(300);
    assert_eq!(f.start("svc", limit).await, Err(HookError::TimedOut(limit)));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let pid = pid_in(&f.file("sh.pid")).await;
    eventually(LONG, "the shell is killed and reaped", || reaped(pid)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_limit_kills_the_process_group() {
    let f = Fixture::new(&Fixture::service(
        "svc",
        "function() exec('sleep 100 & echo $! > @DIR@/sleep.pid; wait') return 'UP' end",
    ));
    let pid_file = f.file("sleep.pid");
    let limit = Duration::from_millis(500);
    assert_eq!(f.start("svc", limit).await, Err(HookError::TimedOut(limit)));
    let pid = pid_in(&pid_file).await;
    eventually(LONG, "the background sleep is killed", || gone(pid)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_call_kills_exec() {
    let f = Fixture::new(&Fixture::service(
        "svc",
        "function() exec('sleep 100 & echo $! > @DIR@/sleep.pid; wait') return 'UP' end",
    ));
    let pid_file = f.file("sleep.pid");
    let mut call = Box::pin(f.start("svc", LONG));
    let pid = tokio::select! {
        result = &mut call => panic!("the hook returned {result:?}"),
        pid = pid_in(&pid_file) => pid,
    };
    assert!(!gone(pid));
    drop(call);
    eventually(LONG, "the background sleep is killed", || gone(pid)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pure_lua_spin_is_stopped() {
    let f = Fixture::new(
        &[
            Fixture::service("spin", "function() while true do end end"),
            Fixture::service(
                "pcall",
                "function() while true do pcall(function() while true do end end) end end",
            ),
            // Lua cannot yield inside gsub's callback: the clock raises an
            // error there instead.
            Fixture::service(
                "gsub",
                "function() string.gsub('x', '.', function() while true do end end) end",
            ),
        ]
        .concat(),
    );
    for service in ["spin", "pcall", "gsub"] {
        let started = Instant::now();
        let limit = Duration::from_millis(200);
        assert_eq!(
            f.start(service, limit).await,
            Err(HookError::TimedOut(limit))
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{service}: {:?}",
            started.elapsed()
        );
    }
}

/// Runs a slow hook of `slow` and, once it has started, the start hook of
/// the service "fast", which must finish while the slow one is still busy.
async fn fast_hook_finishes_beside(f: &Fixture, slow: &str) {
    let hooks = f.hooks.clone();
    let slow = slow.to_string();
    let slow_call = tokio::spawn(async move {
        let started = Instant::now();
        let result = hooks
            .call(&slow, HookKind::Start, Duration::from_secs(2))
            .await;
        (result, started.elapsed())
    });
    let marker = f.file("slow.started");
    eventually(LONG, "the slow hook has started", || marker.exists()).await;
    let started = Instant::now();
    assert_eq!(
        f.start("fast", LONG).await,
        Ok(HookOutcome::State(State::Up))
    );
    let fast = started.elapsed();
    let (slow_result, slow_time) = slow_call.await.unwrap();
    assert!(fast < Duration::from_millis(700), "fast hook took {fast:?}");
    assert!(
        slow_time >= Duration::from_millis(900),
        "slow hook took {slow_time:?}"
    );
    assert!(slow_result.is_ok() || slow_result == Err(HookError::TimedOut(Duration::from_secs(2))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_does_not_block_other_hooks() {
    let f = Fixture::new(
        &[
            Fixture::service(
                "slow",
                "function() exec('touch @DIR@/slow.started && sleep 1') return 'UP' end",
            ),
            Fixture::service("fast", "function() return 'UP' end"),
        ]
        .concat(),
    );
    fast_hook_finishes_beside(&f, "slow").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_hook_does_not_block_other_hooks() {
    let f = Fixture::new(
        &[
            Fixture::service(
                "slow",
                "function() exec('touch @DIR@/slow.started') while true do end end",
            ),
            Fixture::service("fast", "function() return 'UP' end"),
        ]
        .concat(),
    );
    fast_hook_finishes_beside(&f, "slow").await;
}

#[tokio::test]
async fn helpers_and_sandbox() {
    let f = Fixture::new(
        &(Fixture::service(
            "svc",
            "function()
                assert(hostname() == HOST, hostname())
                assert(os == nil and io == nil and coroutine == nil)
                assert(failsvc == nil and failhost == nil)
                assert(string and table and math and utf8)
                return 'UP'
            end",
        ) + "HOST = exec('echo; hostname'):sub(2)\n"),
    );
    assert_eq!(
        f.start("svc", LONG).await,
        Ok(HookOutcome::State(State::Up))
    );
}

/// What `tracing` writes while a [`Logged`] is alive on this thread.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures the log lines of this thread (single-threaded tests only).
struct Logged {
    buffer: LogBuffer,
    _default: tracing::subscriber::DefaultGuard,
}

impl Logged {
    fn new() -> Self {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        Logged { buffer, _default }
    }

    fn text(&self) -> String {
        String::from_utf8(self.buffer.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test]
async fn log_joins_its_arguments() {
    let logged = Logged::new();
    let f = Fixture::new(&Fixture::service(
        "svc",
        "function() log('starting', 1, 2.5, true, nil, setmetatable({}, { __tostring = function() return 'T' end })) return 'UP' end",
    ));
    assert_eq!(
        f.start("svc", LONG).await,
        Ok(HookOutcome::State(State::Up))
    );
    let text = logged.text();
    assert!(
        text.contains(r#"INFO hook: starting 1 2.5 true nil T context="svc start""#),
        "{text}"
    );
}

/// `log` copies at most one line of 4 KiB out of Lua, however many
/// references to big strings it is given: 2,000 references to one 3 KiB
/// string (6 MB if copied whole) make a line cut at 4 KiB.
#[tokio::test]
async fn log_lines_are_cut_before_copying() {
    let logged = Logged::new();
    let f = Fixture::new(&Fixture::service(
        "svc",
        "function()
            local s, t = string.rep('x', 3000), {}
            for i = 1, 2000 do t[i] = s end
            log('a\\xffb', table.unpack(t))
            return 'UP'
        end",
    ));
    assert_eq!(
        f.start("svc", LONG).await,
        Ok(HookOutcome::State(State::Up))
    );
    let text = logged.text();
    let line = text.lines().find(|l| l.contains("hook: a")).expect(&text);
    let words = line
        .split_once("hook: ")
        .and_then(|(_, rest)| rest.split_once(" context="))
        .map(|(words, _)| words)
        .expect(line);
    assert_eq!(words.len(), super::helpers::MAX_LOG_LINE + "…".len());
    assert!(words.starts_with("a\u{fffd}b xxx"), "{line}");
    assert!(words.ends_with("x…"), "{line}");
}

/// Also loads a config outside any runtime (the other tests load inside
/// one).
#[test]
fn call_future_is_send_and_hooks_are_sync() {
    fn send<T: Send>(_: &T) {}
    fn sync<T: Send + Sync + Clone>() {}
    sync::<Hooks>();
    let f = Fixture::new(&Fixture::service("svc", "function() return 'UP' end"));
    let call = f.start("svc", LONG);
    send(&call);
}

/// Calls `service`'s start hook on a task of its own, so that a hook that
/// wedges its worker thread fails the test instead of hanging it.
async fn start_within(
    f: &Fixture,
    service: &str,
    limit: Duration,
) -> Result<HookOutcome, HookError> {
    let hooks = f.hooks.clone();
    let service = service.to_string();
    let call = tokio::spawn(async move { hooks.call(&service, HookKind::Start, limit).await });
    tokio::time::timeout(limit + LONG, call)
        .await
        .expect("the hook call never ended")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_objects_are_never_converted_by_lua() {
    let f = Fixture::new(
        &[
            Fixture::service(
                "tostring",
                "function() error(setmetatable({}, { __tostring = function() while true do end end })) end",
            ),
            Fixture::service("nil", "function() error() end"),
            Fixture::service("number", "function() error(42) end"),
            Fixture::service("fast", "function() return 'UP' end"),
        ]
        .concat(),
    );
    let limit = Duration::from_secs(2);
    let failed = |s: &str| Err(HookError::Failed(s.to_string()));
    let started = Instant::now();
    assert_eq!(
        start_within(&f, "tostring", limit).await,
        failed("(error object is a table value)")
    );
    println!(
        "tostring-looping error object: failed after {:?}",
        started.elapsed()
    );
    assert_eq!(
        start_within(&f, "nil", limit).await,
        failed("(error object is a nil value)")
    );
    assert_eq!(start_within(&f, "number", limit).await, failed("42"));
    assert_eq!(
        f.start("fast", LONG).await,
        Ok(HookOutcome::State(State::Up))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_limit_fails_the_hook_not_failsh() {
    let f = Fixture::new(
        &[
            // One allocation of 1 GiB: without a limit, where the allocator
            // fails (under `ulimit -v`, say), the process aborts.
            Fixture::service("rep", "function() return string.rep('x', 2^30) end"),
            Fixture::service(
                "table",
                "function() local t = {} for i = 1, 1e9 do t[i] = i end end",
            ),
            Fixture::service("fast", "function() return 'UP' end"),
        ]
        .concat(),
    );
    let no_memory = Err(HookError::Failed(
        "not enough memory (the Lua memory limit is 64 MiB)".into(),
    ));
    assert_eq!(start_within(&f, "rep", LONG).await, no_memory);
    let started = Instant::now();
    assert_eq!(start_within(&f, "table", LONG).await, no_memory);
    println!(
        "table growing to the limit: failed after {:?}",
        started.elapsed()
    );
    // The garbage is collected: the other hooks go on.
    assert_eq!(
        f.start("fast", LONG).await,
        Ok(HookOutcome::State(State::Up))
    );
}

#[tokio::test]
async fn binary_chunks_and_file_loading_are_refused() {
    let f = Fixture::new(
        &[
            Fixture::service(
                "dump",
                "function() local f, e = load(string.dump(function() return 'UP' end)) assert(f == nil) error(e, 0) end",
            ),
            Fixture::service(
                "mode",
                "function() local f, e = load(string.dump(function() return 'UP' end), 'x', 'b', {}) assert(f == nil) error(e, 0) end",
            ),
            Fixture::service(
                "text",
                "function() assert(loadfile == nil and dofile == nil) return load('return up', 'x', 't', { up = 'UP' })() end",
            ),
        ]
        .concat(),
    );
    let refused = Err(HookError::Failed(
        "attempt to load a binary chunk (mode is 't')".into(),
    ));
    assert_eq!(f.start("dump", LONG).await, refused);
    assert_eq!(f.start("mode", LONG).await, refused);
    assert_eq!(
        f.start("text", LONG).await,
        Ok(HookOutcome::State(State::Up))
    );
}

#[tokio::test]
async fn finalizers_are_refused() {
    let f = Fixture::new(&Fixture::service(
        "gc",
        "function()\n setmetatable({}, { __gc = function() while true do end end })\n end",
    ));
    assert_eq!(
        f.start("gc", LONG).await,
        Err(HookError::Failed(format!(
            "{}:2: setmetatable: __gc metamethods are not allowed in failsh",
            f.path().display()
        )))
    );
}

#[tokio::test]
async fn one_service_cannot_break_anothers_helpers() {
    let f = Fixture::new(
        r#"
        local function up() return "UP" end
        SHARED = "config"
        function counter() N = (N or 0) + 1; return N == 1 and "UP" or "FAIL" end
        failsvc{ name = "vandal", stop = up, start = function()
            log, exec, hostname, SHARED = nil, nil, nil, "vandal"
            MINE = "vandal"
            return "UP"
        end, check = function() return MINE == "vandal" and SHARED == "vandal" end }
        failsvc{ name = "victim", stop = up, start = function()
            log("still here")
            assert(exec("echo UP") == "UP" and hostname())
            assert(MINE == nil, MINE)
            assert(SHARED == "config", SHARED)
            _G.THROUGH_G = true
            return "UP"
        end, check = function() return THROUGH_G == true end }
        failsvc{ name = "one", start = counter, stop = up }
        failsvc{ name = "two", start = counter, stop = up }
        "#,
    );
    let up = Ok(HookOutcome::State(State::Up));
    let check = |s| f.hooks.call(s, HookKind::Check, LONG);
    assert_eq!(f.start("vandal", LONG).await, up);
    assert_eq!(f.start("victim", LONG).await, up);
    // A service keeps its own globals from call to call.
    assert_eq!(check("vandal").await, Ok(HookOutcome::Healthy(true)));
    assert_eq!(check("victim").await, Ok(HookOutcome::Healthy(true)));
    // One function, the hook of two services: a global counter each.
    assert_eq!(f.start("one", LONG).await, up);
    assert_eq!(f.start("two", LONG).await, up);
    assert_eq!(
        f.start("one", LONG).await,
        Ok(HookOutcome::State(State::Fail))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_output_is_bounded() {
    let f = Fixture::new(
        &[
            Fixture::service(
                "big",
                "function() local out = exec('yes | head -c 1000000') return #out == 65536 and 'UP' or tostring(#out) end",
            ),
            Fixture::service("endless", "function() exec('yes') end"),
        ]
        .concat(),
    );
    assert_eq!(
        f.start("big", LONG).await,
        Ok(HookOutcome::State(State::Up))
    );
    let limit = Duration::from_millis(500);
    assert_eq!(
        f.start("endless", limit).await,
        Err(HookError::TimedOut(limit))
    );
}

/// No message carries a Lua string whole: an `exec` command beyond Linux's
/// limit on one argument is refused before it is copied, a long command is
/// shown cut, and a long result or error string is cut.
#[tokio::test]
async fn long_strings_are_cut_in_messages() {
    let f = Fixture::new(
        &[
            Fixture::service(
                "huge_command",
                "function() exec(string.rep(' ', 200000) .. 'true') end",
            ),
            Fixture::service(
                "long_command",
                "function() exec('exit 3 ' .. string.rep('x', 1000)) end",
            ),
            Fixture::service(
                "long_result",
                "function() return 'UP' .. string.rep('x', 100000) end",
            ),
            Fixture::service(
                "long_error",
                "function() error(string.rep('x', 100000) .. '\\nsecond line', 0) end",
            ),
        ]
        .concat(),
    );
    let failed = |s: String| Err(HookError::Failed(s));
    let file = f.path().display().to_string();
    assert_eq!(
        f.start("huge_command", LONG).await,
        failed(format!(
            "{file}:1: exec: the command is 200004 bytes long; at most 131071 fit in one argument of /bin/sh"
        ))
    );
    let shown = format!("exit 3 {}…", "x".repeat(193));
    assert_eq!(
        f.start("long_command", LONG).await,
        failed(format!("{file}:2: exec {shown:?}: exit status 3"))
    );
    assert_eq!(
        f.start("long_result", LONG).await,
        Err(HookError::BadResult(format!(
            "start hook returned {:?}; expected \"UP\", \"RECOVER\" or \"FAIL\"",
            format!("UP{}…", "x".repeat(98))
        )))
    );
    assert_eq!(
        f.start("long_error", LONG).await,
        failed(format!("{}…", "x".repeat(300)))
    );
}

/// The ways around per-service globals: `rawset` on the globals, writes to
/// the library tables (directly, with `rawset`, or through the string
/// metatable), and the table `pairs(_G)` hands out. One service trying them
/// all changes nothing another service's hook sees.
#[tokio::test]
async fn one_service_cannot_reach_anothers_globals_or_libraries() {
    let f = Fixture::new(
        r#"
        local function up() return "UP" end
        failsvc{ name = "vandal", stop = up, start = function()
            rawset(_ENV, "log", false)
            rawset(_G, "exec", false)
            assert(rawget(_G, "log") == false and exec == false)
            for _, attempt in ipairs{
                function() string.format = nil end,
                function() table.concat = nil end,
                function() math.max = nil end,
                function() utf8.char = nil end,
                function() rawset(string, "rep", nil) end,
                function() setmetatable(string, nil) end,
                function() getmetatable("").__index.upper = nil end,
                function() setmetatable(getmetatable(""), nil) end,
                function() local _, base = pairs(_G); rawset(base, "hostname", nil) end,
                function() local _, lib = pairs(string); rawset(lib, "sub", nil) end,
            } do
                pcall(attempt)
            end
            return "UP"
        end }
        failsvc{ name = "victim", stop = up, start = function()
            log("still here")
            assert(exec("echo UP") == "UP" and hostname())
            assert(rawget(_G, "log") == log and rawget(string, "rep") == string.rep)
            assert(string.format("%d", 1) == "1" and table.concat({ "a" }) == "a")
            assert(math.max(1, 2) == 2 and utf8.char(65) == "A")
            assert(("x"):upper() == "X" and ("abc"):sub(2) == "bc" and string.rep("a", 2) == "aa")
            assert(getmetatable("") == false)
            local names = {}
            for k in pairs(_G) do names[k] = true end
            assert(names.log and names.string and names.hostname)
            for k in pairs(string) do names[k] = true end
            assert(names.rep and names.format)
            return "UP"
        end }
        failsvc{ name = "told", stop = up, start = function()
            string.format = nil
        end }
        "#,
    );
    let up = Ok(HookOutcome::State(State::Up));
    assert_eq!(f.start("vandal", LONG).await, up);
    assert_eq!(f.start("victim", LONG).await, up);
    assert_eq!(
        f.start("told", LONG).await,
        Err(HookError::Failed(format!(
            "{}:39: string is read-only in failsh's hooks",
            f.path().display()
        )))
    );
}
