//! The helpers the config and its hooks can call: `exec`, `log`, `hostname`.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Output, Stdio};
use std::sync::Arc;

use mlua::{Function, Lua, Table, Value};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::engine::{Run, Runs};
use super::text::{excerpt, shorten};

/// Longest stderr excerpt put into an `exec` error.
const MAX_STDERR: usize = 300;
/// Most of a command's standard output `exec` keeps (and returns); the rest
/// is read and thrown away, so `exec("yes")` costs no memory, only its time
/// limit.
pub(crate) const MAX_STDOUT: usize = 64 << 10;
/// Most of a command's standard error `exec` keeps, for its error message.
const KEPT_STDERR: usize = 4 << 10;
/// Longest command `exec` runs: Linux's limit on one argument of a program
/// (`MAX_ARG_STRLEN`, 128 KiB with the terminating NUL). Checked before the
/// command is copied out of Lua (see [`super::text`]).
const MAX_COMMAND: usize = (128 << 10) - 1;
/// How much of a command its messages show.
const SHOWN_COMMAND: usize = 200;
/// Longest message a failed `exec` raises.
const MAX_MESSAGE: usize = 1 << 10;
/// Longest line `log` writes; the rest is cut (marked `…`) before anything
/// is copied out of Lua.
pub(crate) const MAX_LOG_LINE: usize = 4 << 10;

/// Lua side of `exec` and `log`, given their Rust parts.
///
/// `exec`: the Rust part returns `true, stdout` or `false, message`, and
/// `error(message, 2)` raises the message at the line that called `exec`, as
/// a plain string a hook can catch with `pcall`.
///
/// `log`: `tostring` runs here, in the run's own thread under its time
/// limit, and hands Rust a table of strings, of which Rust copies only what
/// fits in one line.
const WRAPPERS: &str = r##"
local raw_exec, raw_log = ...
local error, select, tostring = error, select, tostring
local function exec(cmd)
    local ok, result = raw_exec(cmd)
    if not ok then error(result, 2) end
    return result
end
local function log(...)
    local words, n = { ... }, select("#", ...)
    for i = 1, n do
        words[i] = tostring(words[i])
    end
    raw_log(words, n)
end
return exec, log
"##;

/// Defines the globals `exec`, `log` and `hostname`. `exec` and `log` find
/// the run that called them in `runs`.
pub(crate) fn install(lua: &Lua, runs: &Arc<Runs>) -> mlua::Result<()> {
    let globals = lua.globals();
    let runs_for_exec = Arc::clone(runs);
    let raw_exec = lua.create_async_function(move |lua, cmd: Value| {
        let run = runs_for_exec.current(&lua);
        async move {
            let result = match (cmd, run) {
                (Value::String(cmd), Some(_)) if cmd.as_bytes().len() > MAX_COMMAND => {
                    Err(format!(
                        "exec: the command is {} bytes long; at most {MAX_COMMAND} fit in \
                         one argument of /bin/sh",
                        cmd.as_bytes().len()
                    ))
                }
                (Value::String(cmd), Some(run)) => exec(&cmd.to_string_lossy(), run).await,
                (_, None) => Err("exec: called outside a hook or the config".to_string()),
                (other, _) => Err(format!(
                    "exec: expected a command string, got {}",
                    other.type_name()
                )),
            };
            Ok(match result {
                Ok(stdout) => (true, lua.create_string(stdout)?),
                Err(message) => (false, lua.create_string(shorten(&message, MAX_MESSAGE))?),
            })
        }
    })?;

    let runs_for_log = Arc::clone(runs);
    let raw_log = lua.create_function(move |lua, (words, n): (Table, usize)| {
        let line = log_line(&words, n)?;
        let run = runs_for_log.current(lua);
        let context = run.as_ref().map_or("", |r| r.label.as_str());
        tracing::info!(target: "hook", context, "{line}");
        Ok(())
    })?;

    let (exec, log): (Function, Function) = lua
        .load(WRAPPERS)
        .set_name("=failsh helpers")
        .call((raw_exec, raw_log))?;
    globals.raw_set("exec", exec)?;
    globals.raw_set("log", log)?;

    let hostname = lua.create_function(|_, ()| {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .map_err(|e| mlua::Error::runtime(format!("hostname: {e}")))
    })?;
    globals.raw_set("hostname", hostname)
}

/// Items `1..=n` of `words` (strings, from `log`'s Lua side) joined by
/// spaces, cut to [`MAX_LOG_LINE`] bytes; copies no more than that.
fn log_line(words: &Table, n: usize) -> mlua::Result<String> {
    let mut line = String::new();
    for i in 1..=n {
        if line.len() > MAX_LOG_LINE {
            break;
        }
        if i > 1 {
            line.push(' ');
        }
        let room = MAX_LOG_LINE.saturating_sub(line.len());
        match words.raw_get(i)? {
            Value::String(word) => line.push_str(&excerpt(&word, room)),
            other => line.push_str(other.type_name()),
        }
    }
    Ok(shorten(&line, MAX_LOG_LINE))
}

/// `cmd` quoted for a message, cut to [`SHOWN_COMMAND`] bytes.
fn shown(cmd: &str) -> String {
    format!("{:?}", shorten(cmd, SHOWN_COMMAND))
}

/// Runs `/bin/sh -c cmd` in its own process group and returns its stdout
/// without one trailing newline (as Tcl's `exec` does), cut to
/// [`MAX_STDOUT`] bytes (logged as a warning).
///
/// The group is registered with `run`, which kills it (background children
/// included) if the run ends first: at its time limit or when dropped. A
/// separate task owns the child and reaps it, so a killed shell does not
/// stay a zombie until Lua's garbage collector frees this future.
///
/// The output is read to its end: a background child that keeps stdout or
/// stderr open (`cmd &` without redirection) makes `exec` wait for it, as in
/// Tcl.
async fn exec(cmd: &str, run: Arc<Run>) -> Result<Vec<u8>, String> {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: restore_fd_limit is async-signal-safe: it reads a value set
    // at start and makes one system call.
    unsafe { command.pre_exec(failover_daemon::restore_fd_limit) };
    let child = command
        .spawn()
        .map_err(|e| format!("exec {cmd:?}: cannot run /bin/sh: {e}"))?;
    let group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    if let Some(group) = group {
        run.add_group(group);
    }
    let reaper = tokio::spawn(async move {
        let output = wait_with_bounded_output(child).await;
        // Between the reap above and this line the group number could in
        // theory be reused and killed by the run; that needs the kernel to
        // hand out the whole pid space within microseconds.
        if let Some(group) = group {
            run.remove_group(group);
        }
        output
    });
    let (output, dropped) = reaper
        .await
        .map_err(|e| format!("exec {}: {e}", shown(cmd)))?
        .map_err(|e| format!("exec {}: {e}", shown(cmd)))?;
    if dropped > 0 {
        tracing::warn!(
            target: "hook",
            "exec {}: output cut to its first {} KiB ({dropped} bytes thrown away)",
            shown(cmd),
            MAX_STDOUT >> 10
        );
    }
    check(cmd, output, dropped > 0)
}

/// Waits for `child` while reading its stdout and stderr to their ends,
/// keeping at most [`MAX_STDOUT`] and [`KEPT_STDERR`] bytes of them; also
/// returns how many stdout bytes were thrown away.
async fn wait_with_bounded_output(
    mut child: tokio::process::Child,
) -> std::io::Result<(Output, u64)> {
    let stdout = read_bounded(child.stdout.take(), MAX_STDOUT);
    let stderr = read_bounded(child.stderr.take(), KEPT_STDERR);
    let ((stdout, dropped), (stderr, _), status) = tokio::try_join!(stdout, stderr, child.wait())?;
    Ok((
        Output {
            status,
            stdout,
            stderr,
        },
        dropped,
    ))
}

/// Reads `pipe` to its end; returns its first `max` bytes and how many more
/// there were.
async fn read_bounded(
    pipe: Option<impl AsyncRead + Unpin>,
    max: usize,
) -> std::io::Result<(Vec<u8>, u64)> {
    let (mut kept, mut dropped) = (Vec::new(), 0u64);
    let Some(mut pipe) = pipe else {
        return Ok((kept, dropped));
    };
    let mut buffer = vec![0; 16 << 10];
    loop {
        let n = pipe.read(&mut buffer).await?;
        if n == 0 {
            return Ok((kept, dropped));
        }
        let keep = n.min(max - kept.len());
        kept.extend_from_slice(&buffer[..keep]);
        dropped += (n - keep) as u64;
    }
}

/// The result of `exec`: stdout less its trailing newline (unless it was
/// `cut`, where the last byte kept is not the end), or the failure message.
fn check(cmd: &str, output: Output, cut: bool) -> Result<Vec<u8>, String> {
    if output.status.success() {
        let mut stdout = output.stdout;
        if !cut && stdout.last() == Some(&b'\n') {
            stdout.pop();
        }
        return Ok(stdout);
    }
    let mut message = format!("exec {}: {}", shown(cmd), describe(output.status));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if !stderr.is_empty() {
        message.push_str(": ");
        message.push_str(&shorten(&stderr.join(" / "), MAX_STDERR));
    }
    Err(message)
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => {
            let name = Signal::try_from(sig).map_or_else(|_| sig.to_string(), |s| s.to_string());
            format!("killed by signal {name}")
        }
        (None, None) => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_message_is_one_line() {
        let output = Output {
            status: ExitStatus::from_raw(3 << 8),
            stdout: Vec::new(),
            stderr: b"first\n\n  second  \n".to_vec(),
        };
        assert_eq!(
            check("x", output, false),
            Err(r#"exec "x": exit status 3: first / second"#.to_string())
        );
        let output = Output {
            status: ExitStatus::from_raw(9),
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        assert_eq!(
            check("x", output, false),
            Err(r#"exec "x": killed by signal SIGKILL"#.to_string())
        );
    }
}
