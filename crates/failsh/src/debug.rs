//! The debug port (`-D`, faildebug's): after the community, a client lists
//! and changes the log levels of failsh's facilities at run time, follows
//! the log, and reads the state snapshot. A line protocol, in full in
//! `docs/faildebug.md`:
//!
//! ```text
//! > COMMUNITY                      < OK failsh 0.6.0 debug port, protocol 1 ...  (or ERR denied)
//! > levels                         < engine debug / hook info / ... / .
//! > level engine debug hook info   < OK engine debug (was info), hook info (was info)
//! > log                            < OK following ... / log lines ... (until the client sends a line: .)
//! > snapshot                       < the SIGINT dump's text / .
//! > quit                           < OK bye
//! ```
//!
//! Multi-line answers end with a line holding only `.`; a line of the
//! answer that starts with `.` gets another `.` in front (as in SMTP).
//!
//! Nothing a client does can crash or stall failsh: the community must come
//! within [`AUTH_TIMEOUT`], lines are at most [`MAX_LINE`] bytes, at most
//! [`LIMITS`] clients are served at once (in all and per address), an idle
//! client is dropped after [`IDLE_LIMIT`] and one that stops reading after
//! [`WRITE_LIMIT`]; the log it follows drops lines for it rather than wait.
//! A bad line is answered with `ERR` and changes nothing.
//!
//! Nor can anyone lock the port or guess the community fast. Until it sent
//! its community line a client may be pushed out for a newcomer; from then
//! on it is not (the tokens below bound the guessing), unless the community
//! was wrong. A community is only compared once one of [`GUESSES`] tokens
//! is free (first come, first served); the right one gives its token back
//! at once, a wrong one keeps it for [`PENALTY`] — even if the client
//! leaves or is pushed out — and is answered after that delay, then closed,
//! its slot held (and counted against its address, and open to newcomers)
//! all the while. So at most [`GUESSES`] wrong communities are tried per
//! [`PENALTY`], whatever the number of connections or addresses; the right
//! one waits its turn behind the guesses queued before it (an eighth of a
//! penalty each), and no newcomer can push it out meanwhile.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use failover::community::same_secret;
use failover::monitor::Reason;
use failover_daemon::logging::{LEVEL_NAMES, LogControl, LogItem, parse_level};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tracing::level_filters::LevelFilter;
use tracing::{debug, info, warn};

use crate::cli::Facility;
use crate::engine::Engine;
use crate::listen::{Slot, accept_loop};
use crate::slots::Limits;

/// The protocol's version, in the greeting.
pub const PROTOCOL: u32 = 1;
/// Longest line a client may send, community included (bytes, without the
/// newline); a longer one closes the connection.
pub const MAX_LINE: usize = 512;
/// Debug clients served at once, in all and per address (an IPv6 /48; the
/// loopback has no per-address limit, see [`crate::slots`]); a newcomer
/// that finds no room pushes out one that has not sent a community for
/// [`GRACE`] (or got a wrong one), or else is told `ERR busy` and closed.
///
/// Many more slots than guess tokens ([`GUESSES`]): slots only bound the
/// clients waiting, tokens bound guessing; guessers from few addresses
/// cannot fill the slots, so the right community finds one.
pub const LIMITS: Limits = Limits {
    max: 32,
    per_source: 4,
    grace: GRACE,
};
/// How long a client may take to give the community before a newcomer may
/// push it out.
const GRACE: Duration = Duration::from_millis(250);
/// Time a client has to send the community.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// A wrong community is answered (and the connection closed) this late,
/// and holds its guess token this long.
pub const PENALTY: Duration = Duration::from_secs(1);
/// Communities compared at once, a wrong one counting for [`PENALTY`]: the
/// bound on guesses per [`PENALTY`].
pub const GUESSES: usize = 8;
/// A client that sends no command for this long is closed (not while it
/// follows the log).
pub const IDLE_LIMIT: Duration = Duration::from_secs(600);
/// A client that takes longer than this to take one answer is closed.
pub const WRITE_LIMIT: Duration = Duration::from_secs(10);
/// At most one warning about wrong communities per this period, so that a
/// flood of bad logins cannot fill the log.
const DENIED_WARNING_EVERY: Duration = Duration::from_secs(10);

/// One command line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `levels`: each facility's level.
    Levels,
    /// `level FACILITY LEVEL ...`: set them, all or none.
    Level(Vec<(Facility, LevelFilter)>),
    /// `log`: follow the log until the client sends a line.
    Log,
    /// `snapshot`: the state as text.
    Snapshot,
    /// `help`: the commands.
    Help,
    /// `quit`: close.
    Quit,
}

const COMMANDS: &str = "levels, level, log, snapshot, help, quit";

const HELP: &str = "\
levels                       one 'FACILITY LEVEL' line per facility
level FACILITY LEVEL ...     set levels, all or none
log                          follow the log; send any line to stop
snapshot                     the state, as failsh's SIGINT dump writes it
help                         this text
quit                         close the connection
";

/// Parses one command line (without its newline). The error is the text of
/// the `ERR` answer.
pub fn parse(line: &str) -> Result<Command, String> {
    let mut words = line.split_whitespace();
    let Some(word) = words.next() else {
        return Err("empty line (try 'help')".into());
    };
    let args: Vec<&str> = words.collect();
    let command = match word.to_ascii_lowercase().as_str() {
        "levels" => Command::Levels,
        "log" => Command::Log,
        "snapshot" => Command::Snapshot,
        "help" => Command::Help,
        "quit" => Command::Quit,
        "level" => return level_changes(&args).map(Command::Level),
        _ => {
            return Err(format!(
                "unknown command {} (known: {COMMANDS})",
                word.escape_debug()
            ));
        }
    };
    if !args.is_empty() {
        return Err(format!("{word} takes no arguments"));
    }
    Ok(command)
}

fn level_changes(args: &[&str]) -> Result<Vec<(Facility, LevelFilter)>, String> {
    if args.is_empty() || !args.len().is_multiple_of(2) {
        return Err("usage: level FACILITY LEVEL [FACILITY LEVEL ...]".into());
    }
    args.chunks(2)
        .map(|pair| {
            let facility = Facility::named(pair[0]).ok_or_else(|| {
                format!(
                    "unknown facility {} (known: {})",
                    pair[0].escape_debug(),
                    facility_names()
                )
            })?;
            let level = parse_level(pair[1]).ok_or_else(|| {
                format!(
                    "unknown level {} (known: {})",
                    pair[1].escape_debug(),
                    LEVEL_NAMES.join(", ")
                )
            })?;
            Ok((facility, level))
        })
        .collect()
}

fn facility_names() -> String {
    Facility::ALL.map(Facility::target).join(", ")
}

/// `text` as the lines of a multi-line answer: each line dot-stuffed, then
/// the closing `.` line.
pub fn block(text: &str) -> String {
    let mut out = stuffed(text);
    out.push_str(".\n");
    out
}

/// `text`'s lines, each ending in a newline, with a `.` in front of those
/// that start with one.
fn stuffed(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for line in text.lines() {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// What the sessions share.
struct Port {
    engine: Arc<Engine>,
    log: LogControl,
    community: String,
    shutdown: CancellationToken,
    denied: Mutex<Throttle>,
    /// See [`GUESSES`]; tokio's semaphore is fair, so a waiting client is
    /// served in turn.
    guesses: Arc<Semaphore>,
}

/// Rate limit of the wrong-community warning.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Port {
    fn denied(&self, peer: SocketAddr) {
        let mut t = self.denied.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if t.last.is_some_and(|l| now - l < DENIED_WARNING_EVERY) {
            t.suppressed += 1;
            debug!(target: "monitor", "debug port: {peer}: wrong community");
            return;
        }
        let more = std::mem::take(&mut t.suppressed);
        t.last = Some(now);
        if more > 0 {
            warn!(target: "monitor", "debug port: {peer}: wrong community ({more} more since the last warning)");
        } else {
            warn!(target: "monitor", "debug port: {peer}: wrong community");
        }
    }
}

/// Serves debug clients until shutdown.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    log: LogControl,
    community: String,
    shutdown: CancellationToken,
) {
    let port = Arc::new(Port {
        engine,
        log,
        community,
        shutdown: shutdown.clone(),
        denied: Mutex::new(Throttle::default()),
        guesses: Arc::new(Semaphore::new(GUESSES)),
    });
    let busy = format!(
        "ERR busy: {} debug clients already ({} per address)\n",
        LIMITS.max, LIMITS.per_source
    );
    let limits = crate::listen::Port {
        what: "debug",
        limits: LIMITS,
        busy: Some(busy),
    };
    accept_loop(listener, limits, shutdown, move |stream, peer, slot| {
        let port = port.clone();
        async move {
            match Session::new(stream, peer, slot, port).run().await {
                Ok(()) => debug!(target: "monitor", "debug port: {peer} closed"),
                Err(e) => debug!(target: "monitor", "debug port: {peer} dropped: {e}"),
            }
        }
    })
    .await;
}

/// One line from the client.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Text(String),
    NotUtf8,
    /// Over [`MAX_LINE`] bytes without a newline.
    TooLong,
    Eof,
}

/// Reads lines of at most [`MAX_LINE`] bytes. Cancel-safe: a partial line
/// stays buffered, so it can sit in a `select!` against the log.
struct LineReader {
    inner: BufReader<OwnedReadHalf>,
    buf: Vec<u8>,
}

impl LineReader {
    async fn next(&mut self) -> io::Result<Line> {
        loop {
            if self.buf.last() == Some(&b'\n') {
                self.buf.pop();
                if self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
                let bytes = std::mem::take(&mut self.buf);
                return Ok(String::from_utf8(bytes).map_or(Line::NotUtf8, Line::Text));
            }
            if self.buf.len() > MAX_LINE {
                return Ok(Line::TooLong);
            }
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                // A last line without a newline still counts.
                if self.buf.is_empty() {
                    return Ok(Line::Eof);
                }
                self.buf.push(b'\n');
                continue;
            }
            let room = MAX_LINE + 1 - self.buf.len();
            let n = chunk
                .iter()
                .position(|&b| b == b'\n')
                .map_or(chunk.len(), |i| i + 1)
                .min(room);
            self.buf.extend_from_slice(&chunk[..n]);
            self.inner.consume(n);
        }
    }
}

/// Writes `text` to the client, giving up after [`WRITE_LIMIT`].
async fn send(writer: &mut OwnedWriteHalf, text: &str) -> io::Result<()> {
    match timeout(WRITE_LIMIT, writer.write_all(text.as_bytes())).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client does not read",
        )),
    }
}

/// One client's connection.
struct Session {
    peer: SocketAddr,
    slot: Slot,
    reader: LineReader,
    writer: OwnedWriteHalf,
    port: Arc<Port>,
}

/// What happened first while following the log.
enum Event {
    Stop,
    Log(Option<LogItem>),
    Client(io::Result<Line>),
}

impl Session {
    fn new(stream: TcpStream, peer: SocketAddr, slot: Slot, port: Arc<Port>) -> Session {
        let (read, writer) = stream.into_split();
        Session {
            peer,
            slot,
            reader: LineReader {
                inner: BufReader::new(read),
                buf: Vec::new(),
            },
            writer,
            port,
        }
    }

    async fn run(mut self) -> io::Result<()> {
        // Owes the community from its admission.
        let first = match timeout(AUTH_TIMEOUT, self.reader.next()).await {
            Ok(line) => line?,
            Err(_) => {
                debug!(target: "monitor", "debug port: {}: no community in time", self.peer);
                let text = format!("ERR denied: no community within {AUTH_TIMEOUT:?}\n");
                return send(&mut self.writer, &text).await;
            }
        };
        if first == Line::Eof {
            debug!(target: "monitor", "debug port: {} left without a community", self.peer);
            return Ok(());
        }
        // Waiting for a token owes nothing: the tokens bound guessing, and
        // the right community must not be pushed out while it waits.
        self.slot.progressing();
        let Ok(token) = self.port.guesses.clone().acquire_owned().await else {
            return Ok(()); // never closed
        };
        if !matches!(&first, Line::Text(c) if same_secret(c, &self.port.community)) {
            self.port.denied(self.peer);
            // Nothing more to serve: open to newcomers through the penalty.
            self.slot.stalled();
            // The token is held for the whole penalty even if this session
            // ends sooner (the client leaves, or is pushed out).
            tokio::spawn(async move {
                tokio::time::sleep(PENALTY).await;
                drop(token);
            });
            tokio::time::sleep(PENALTY).await;
            return send(&mut self.writer, "ERR denied\n").await;
        }
        drop(token);
        debug!(target: "monitor", "debug port: {} connected", self.peer);
        let greeting = format!(
            "OK failsh {} debug port, protocol {PROTOCOL} (try 'help')\n",
            env!("CARGO_PKG_VERSION")
        );
        send(&mut self.writer, &greeting).await?;
        loop {
            let line = tokio::select! {
                _ = self.port.shutdown.cancelled() => return Ok(()),
                r = timeout(IDLE_LIMIT, self.reader.next()) => match r {
                    Ok(line) => line?,
                    Err(_) => {
                        let text = format!("ERR idle for {IDLE_LIMIT:?}: closing\n");
                        return send(&mut self.writer, &text).await;
                    }
                },
            };
            let text = match line {
                Line::Eof => return Ok(()),
                Line::TooLong => return self.too_long().await,
                Line::NotUtf8 => {
                    send(&mut self.writer, "ERR not UTF-8\n").await?;
                    continue;
                }
                Line::Text(text) => text,
            };
            match parse(&text) {
                Err(e) => send(&mut self.writer, &format!("ERR {e}\n")).await?,
                Ok(command) => {
                    debug!(target: "monitor", "debug port: {}: {}", self.peer, text.trim());
                    if !self.execute(command).await? {
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn too_long(&mut self) -> io::Result<()> {
        let text = format!("ERR line too long (over {MAX_LINE} bytes): closing\n");
        send(&mut self.writer, &text).await
    }

    /// Carries out `command`; false when the connection is to close.
    async fn execute(&mut self, command: Command) -> io::Result<bool> {
        let answer = match command {
            Command::Levels => {
                let levels = self.port.log.levels();
                let text: String = Facility::ALL
                    .iter()
                    .map(|f| format!("{} {}\n", f.target(), levels.level(f.target())))
                    .collect();
                block(&text)
            }
            Command::Level(changes) => self.set_levels(&changes),
            Command::Snapshot => block(&self.port.engine.snapshot(Reason::Connect).text()),
            Command::Help => block(HELP),
            Command::Log => return self.follow().await,
            Command::Quit => {
                send(&mut self.writer, "OK bye\n").await?;
                return Ok(false);
            }
        };
        send(&mut self.writer, &answer).await?;
        Ok(true)
    }

    fn set_levels(&self, changes: &[(Facility, LevelFilter)]) -> String {
        let mut done = Vec::new();
        for &(facility, level) in changes {
            // Only fails when the logger is gone, which it never is
            // while failsh runs.
            match self.port.log.set_level(facility.target(), level) {
                Ok(before) => {
                    info!(target: "monitor", "debug port: {} set {} to {level} (was {before})", self.peer, facility.target());
                    done.push(format!("{} {level} (was {before})", facility.target()));
                }
                Err(e) => return format!("ERR {e}\n"),
            }
        }
        format!("OK {}\n", done.join(", "))
    }

    /// Streams the log until the client sends a line (answered with `.`,
    /// back to commands) or goes away; false when the connection is to
    /// close.
    async fn follow(&mut self) -> io::Result<bool> {
        // Subscribed before the OK, so no line after it is missed.
        let mut lines = self.port.log.subscribe();
        send(
            &mut self.writer,
            "OK following the log; send a line to stop\n",
        )
        .await?;
        loop {
            let event = tokio::select! {
                _ = self.port.shutdown.cancelled() => Event::Stop,
                item = lines.next() => Event::Log(item),
                line = self.reader.next() => Event::Client(line),
            };
            match event {
                Event::Stop | Event::Log(None) => return Ok(false),
                Event::Log(Some(LogItem::Line(line))) => {
                    send(&mut self.writer, &stuffed(&line)).await?;
                }
                Event::Log(Some(LogItem::Missed(n))) => {
                    let text = format!("-- {n} log lines missed: this client fell behind\n");
                    send(&mut self.writer, &text).await?;
                }
                Event::Client(line) => match line? {
                    Line::Eof => return Ok(false),
                    Line::TooLong => {
                        self.too_long().await?;
                        return Ok(false);
                    }
                    Line::Text(_) | Line::NotUtf8 => {
                        send(&mut self.writer, ".\n").await?;
                        return Ok(true);
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse("levels"), Ok(Command::Levels));
        assert_eq!(parse("  LOG \r"), Ok(Command::Log));
        assert_eq!(parse("snapshot"), Ok(Command::Snapshot));
        assert_eq!(parse("quit"), Ok(Command::Quit));
        assert_eq!(parse("help"), Ok(Command::Help));
        assert_eq!(
            parse("level engine debug Hook TRACE"),
            Ok(Command::Level(vec![
                (Facility::Engine, LevelFilter::DEBUG),
                (Facility::Hook, LevelFilter::TRACE),
            ]))
        );
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        assert_eq!(
            parse("level bogus debug"),
            Err("unknown facility bogus (known: engine, hook, config, monitor)".into())
        );
        assert_eq!(
            parse("level engine debug hook loud"),
            Err("unknown level loud (known: off, error, warn, info, debug, trace)".into())
        );
        for usage in ["level", "level engine", "level engine debug hook"] {
            assert!(
                parse(usage).unwrap_err().starts_with("usage: level"),
                "{usage}"
            );
        }
        assert_eq!(parse("levels now"), Err("levels takes no arguments".into()));
        assert!(parse("").unwrap_err().starts_with("empty line"));
        assert_eq!(
            parse("shutdown\u{7}"),
            Err(format!(
                "unknown command shutdown\\u{{7}} (known: {COMMANDS})"
            ))
        );
    }

    #[test]
    fn blocks_end_with_a_dot_and_stuff_dots() {
        assert_eq!(block("a\n.b\n..\nc"), "a\n..b\n...\nc\n.\n");
        assert_eq!(block(""), ".\n");
    }

    async fn reader_over(bytes: &[u8]) -> (LineReader, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bytes = bytes.to_vec();
        let writer = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&bytes).await.unwrap();
        });
        let (stream, _) = listener.accept().await.unwrap();
        let (read, _write) = stream.into_split();
        let reader = LineReader {
            inner: BufReader::new(read),
            buf: Vec::new(),
        };
        (reader, writer)
    }

    #[tokio::test]
    async fn lines_are_capped_and_checked() {
        let mut input = b"secret\r\nlevels\n\xff\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        let (mut r, w) = reader_over(&input).await;
        w.await.unwrap();
        assert_eq!(r.next().await.unwrap(), Line::Text("secret".into()));
        assert_eq!(r.next().await.unwrap(), Line::Text("levels".into()));
        assert_eq!(r.next().await.unwrap(), Line::NotUtf8);
        assert_eq!(r.next().await.unwrap(), Line::TooLong);

        let (mut r, w) = reader_over(&[b'y'; MAX_LINE]).await;
        w.await.unwrap();
        assert_eq!(r.next().await.unwrap(), Line::Text("y".repeat(MAX_LINE)));
        assert_eq!(r.next().await.unwrap(), Line::Eof);
    }
}
