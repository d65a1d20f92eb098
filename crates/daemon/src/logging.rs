//! Logging: stderr in the foreground, journald or syslog (facility `daemon`)
//! once detached; per-facility levels raised with `-d FACILITY` at start and
//! changed at run time through the [`LogControl`] that [`init`] returns,
//! which also copies the formatted log to subscribers (failsh's debug port
//! streams it to faildebug).
//!
//! A facility is a `tracing` target. The levels in force are kept as
//! [`Levels`], a small model of an `EnvFilter` spec, because an `EnvFilter`
//! cannot be asked which level a target has: the model answers `levels`
//! and is rendered into a fresh `EnvFilter` on every change.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::fmt;
use std::io::{self, IsTerminal};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;
use tracing_subscriber::filter::{Directive, LevelFilter, dynamic_filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Layered;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// Lines a subscriber may fall behind by before it loses the oldest: the
/// logger never waits for a slow subscriber.
const SUBSCRIBER_BACKLOG: usize = 1024;

/// The level names [`parse_level`] accepts, lowest first, for messages.
pub const LEVEL_NAMES: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Why a level could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{0:?} is not a log target (letters, digits, '_', '-', '.', ':')")]
    BadTarget(String),
    #[error("cannot change the log filter: {0}")]
    Reload(#[from] reload::Error),
}

/// Parses a level name (`off`, `error`, `warn`, `info`, `debug`, `trace`,
/// any case). Unlike `LevelFilter::from_str` it takes neither numbers nor
/// the empty string (which that reads as `error`), so a typo is an error.
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    if !LEVEL_NAMES.iter().any(|n| n.eq_ignore_ascii_case(s)) {
        return None;
    }
    s.parse().ok()
}

/// The log levels in force: a default for every target, a level for each
/// target that has its own, and whatever else an environment spec held
/// (span and field directives), kept verbatim for `EnvFilter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Levels {
    default: LevelFilter,
    targets: BTreeMap<String, LevelFilter>,
    verbatim: Vec<String>,
}

impl Levels {
    /// `default` for every target.
    pub fn new(default: LevelFilter) -> Levels {
        Levels {
            default,
            targets: BTreeMap::new(),
            verbatim: Vec::new(),
        }
    }

    /// Reads an `EnvFilter` spec (`info,engine=debug,...`). Directives
    /// `EnvFilter` would reject are dropped, as it drops them.
    pub fn parse(spec: &str) -> Levels {
        let mut levels = Levels::new(LevelFilter::ERROR);
        for piece in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some(level) = parse_level(piece) {
                levels.default = level;
                continue;
            }
            if let Some((target, level)) = piece.split_once('=')
                && let Some(level) = parse_level(level.trim())
                && is_target(target.trim())
            {
                levels.targets.insert(target.trim().to_string(), level);
                continue;
            }
            if piece.parse::<Directive>().is_ok() {
                levels.verbatim.push(piece.to_string());
            }
        }
        levels
    }

    /// The level events of `target` are logged at: that of the longest
    /// target given a level that `target` starts with (as `EnvFilter`
    /// matches), else the default. Verbatim directives are not consulted.
    pub fn level(&self, target: &str) -> LevelFilter {
        self.targets
            .iter()
            .filter(|(t, _)| target.starts_with(t.as_str()))
            .max_by_key(|(t, _)| t.len())
            .map_or(self.default, |(_, l)| *l)
    }

    /// Gives `target` its own level.
    pub fn set(&mut self, target: &str, level: LevelFilter) -> Result<(), LogError> {
        if !is_target(target) {
            return Err(LogError::BadTarget(target.to_string()));
        }
        self.targets.insert(target.to_string(), level);
        Ok(())
    }

    fn env_filter(&self) -> EnvFilter {
        EnvFilter::new(self.to_string())
    }
}

/// The `EnvFilter` spec: the default, then each target, then the verbatim
/// directives.
impl fmt::Display for Levels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.default)?;
        for (target, level) in &self.targets {
            write!(f, ",{target}={level}")?;
        }
        for directive in &self.verbatim {
            write!(f, ",{directive}")?;
        }
        Ok(())
    }
}

/// A plain target: what `Levels::set` accepts and what `Display` can write
/// back without changing the meaning of the spec.
fn is_target(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

/// The levels to start with: info for everything, each of `raised` (a
/// facility's tracing target, once per `-d`) at debug, or trace when raised
/// twice or more. The environment variable `env_var` (`EnvFilter` syntax)
/// replaces them.
pub fn filter(env_var: &str, raised: &[&str]) -> Levels {
    if let Ok(spec) = std::env::var(env_var) {
        return Levels::parse(&spec);
    }
    let mut levels = Levels::new(LevelFilter::INFO);
    for target in raised {
        let level = if raised.iter().filter(|r| *r == target).count() > 1 {
            LevelFilter::TRACE
        } else {
            LevelFilter::DEBUG
        };
        // A facility's target is a plain name; a bad one stays at info.
        let _ = levels.set(target, level);
    }
    levels
}

/// The subscriber's innermost part: the registry under the reloadable
/// filter. Output layers are built for it.
type Filtered = Layered<reload::Layer<EnvFilter, Registry>, Registry>;

/// An output layer (stderr, journald or syslog).
type Output = Box<dyn Layer<Filtered> + Send + Sync>;

/// Run-time control of the log: read and change the levels, follow the
/// formatted lines. Cheap to clone; every clone controls the same log.
#[derive(Clone)]
pub struct LogControl {
    shared: Arc<Shared>,
}

struct Shared {
    /// Held while the filter is replaced, so that it always matches.
    levels: Mutex<Levels>,
    filter: reload::Handle<EnvFilter, Registry>,
    lines: broadcast::Sender<Arc<str>>,
}

impl fmt::Debug for LogControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogControl")
            .field("levels", &self.levels().to_string())
            .finish_non_exhaustive()
    }
}

impl LogControl {
    /// The levels in force now.
    pub fn levels(&self) -> Levels {
        self.lock().clone()
    }

    /// Sets the level of `target` (a facility); returns the level it had.
    pub fn set_level(&self, target: &str, level: LevelFilter) -> Result<LevelFilter, LogError> {
        let mut levels = self.lock();
        let mut next = levels.clone();
        next.set(target, level)?;
        self.shared.filter.reload(next.env_filter())?;
        let before = levels.level(target);
        *levels = next;
        Ok(before)
    }

    /// Follows the log from now on: every line that passes the filter, as
    /// formatted for stderr (without colours).
    pub fn subscribe(&self) -> LogLines {
        LogLines {
            rx: self.shared.lines.subscribe(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Levels> {
        self.shared
            .levels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A subscription to the log (see [`LogControl::subscribe`]).
#[derive(Debug)]
pub struct LogLines {
    rx: broadcast::Receiver<Arc<str>>,
}

/// What a [`LogLines`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogItem {
    /// One event, formatted (a message with newlines spans several lines).
    Line(Arc<str>),
    /// This many lines were lost because the subscriber fell behind.
    Missed(u64),
}

impl LogLines {
    /// The next line, waiting for it; `None` once the logger is gone.
    pub async fn next(&mut self) -> Option<LogItem> {
        match self.rx.recv().await {
            Ok(line) => Some(LogItem::Line(line)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(LogItem::Missed(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// Builds the subscriber: the reloadable filter, `output`, and the layer
/// that copies lines to subscribers. Not installed, so tests can scope it.
fn build(
    levels: Levels,
    output: Output,
) -> (impl tracing::Subscriber + Send + Sync + 'static, LogControl) {
    let (filter, handle) = reload::Layer::new(levels.env_filter());
    let (lines, _) = broadcast::channel(SUBSCRIBER_BACKLOG);
    let listening = lines.clone();
    // Formatting is skipped unless someone listens, so the copy costs
    // nothing when nobody follows the log. The filter is asked per event
    // (a dynamic filter), since subscribers come and go.
    let copy = tracing_subscriber::fmt::layer()
        .with_writer(CopyWriter(lines.clone()))
        .with_ansi(false)
        .with_filter(dynamic_filter_fn(move |_, _| {
            listening.receiver_count() > 0
        }));
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .with(copy);
    let control = LogControl {
        shared: Arc::new(Shared {
            levels: Mutex::new(levels),
            filter: handle,
            lines,
        }),
    };
    (subscriber, control)
}

/// Installs the global subscriber for program `ident` with `levels`.
/// Detached: journald when its socket exists, otherwise syslog.
pub fn init(ident: &'static CStr, foreground: bool, levels: Levels) -> LogControl {
    let (subscriber, control) = build(levels, output(ident, foreground));
    subscriber.init();
    control
}

fn output(ident: &'static CStr, foreground: bool) -> Output {
    let stderr = || -> Output {
        Box::new(
            tracing_subscriber::fmt::layer()
                .with_writer(io::stderr)
                .with_ansi(io::stderr().is_terminal()),
        )
    };
    if foreground {
        return stderr();
    }
    if std::path::Path::new("/run/systemd/journal/socket").exists()
        && let Ok(journald) = tracing_journald::layer()
    {
        let name = ident.to_string_lossy().into_owned();
        return Box::new(journald.with_syslog_identifier(name));
    }
    match syslog_tracing::Syslog::new(
        ident,
        syslog_tracing::Options::LOG_PID,
        syslog_tracing::Facility::Daemon,
    ) {
        Some(syslog) => Box::new(
            tracing_subscriber::fmt::layer()
                .with_writer(syslog)
                .with_ansi(false)
                .without_time()
                .with_level(true),
        ),
        None => stderr(),
    }
}

/// Makes a [`LineSender`] per event for the copy layer.
struct CopyWriter(broadcast::Sender<Arc<str>>);

impl<'a> MakeWriter<'a> for CopyWriter {
    type Writer = LineSender;

    fn make_writer(&'a self) -> LineSender {
        LineSender {
            lines: self.0.clone(),
            text: Vec::new(),
        }
    }
}

/// Collects one formatted event and sends it, without its final newline,
/// when dropped. Sending never blocks: a subscriber that fell behind loses
/// its oldest lines instead.
struct LineSender {
    lines: broadcast::Sender<Arc<str>>,
    text: Vec<u8>,
}

impl io::Write for LineSender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineSender {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.text);
        let line = text.trim_end_matches(['\n', '\r']);
        if !line.is_empty() {
            // Fails only when nobody listens any more: nothing to keep.
            let _ = self.lines.send(Arc::from(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn raised_facilities_get_debug_then_trace() {
        let levels = filter("FAILOVER_DAEMON_TEST_UNSET", &["engine", "hook", "hook"]);
        assert_eq!(levels.level("engine"), LevelFilter::DEBUG);
        assert_eq!(levels.level("hook"), LevelFilter::TRACE);
        assert_eq!(levels.level("config"), LevelFilter::INFO);
        assert_eq!(levels.to_string(), "info,engine=debug,hook=trace");
    }

    #[test]
    fn an_environment_spec_is_read_and_written_back() {
        let levels =
            Levels::parse("warn, failsh=debug,failsh::client=trace,[poll]=info,bogus=loud,=x");
        assert_eq!(levels.level("engine"), LevelFilter::WARN);
        assert_eq!(levels.level("failsh::engine"), LevelFilter::DEBUG);
        assert_eq!(levels.level("failsh::client"), LevelFilter::TRACE);
        assert_eq!(
            levels.to_string(),
            "warn,failsh=debug,failsh::client=trace,[poll]=info"
        );
        assert_eq!(Levels::parse(&levels.to_string()), levels);
        // EnvFilter with no level at all logs errors only.
        assert_eq!(Levels::parse("").level("x"), LevelFilter::ERROR);
    }

    #[test]
    fn levels_are_names_only() {
        assert_eq!(parse_level("DEBUG"), Some(LevelFilter::DEBUG));
        assert_eq!(parse_level("off"), Some(LevelFilter::OFF));
        for bad in ["", "4", "verbose", "debug "] {
            assert_eq!(parse_level(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_bad_target_changes_nothing() {
        let mut levels = Levels::new(LevelFilter::INFO);
        for bad in ["", "a=b", "a,b", "a b", "[span]"] {
            assert!(levels.set(bad, LevelFilter::DEBUG).is_err(), "{bad:?}");
        }
        assert_eq!(levels, Levels::new(LevelFilter::INFO));
    }

    /// A writer into a shared buffer, standing in for stderr.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn scoped(levels: Levels) -> (tracing::Dispatch, LogControl, Buffer) {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let output: Output = Box::new(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false),
        );
        let (subscriber, control) = build(levels, output);
        (tracing::Dispatch::new(subscriber), control, buffer)
    }

    #[test]
    fn a_level_raised_at_run_time_lets_debug_lines_through() {
        let (dispatch, control, stderr) = scoped(Levels::new(LevelFilter::INFO));
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::debug!(target: "engine", "before");
            let before = control.set_level("engine", LevelFilter::DEBUG).unwrap();
            assert_eq!(before, LevelFilter::INFO);
            tracing::debug!(target: "engine", "after");
            tracing::debug!(target: "hook", "other facility");
        });
        let text = stderr.text();
        assert!(!text.contains("before"), "{text}");
        assert!(text.contains("after"), "{text}");
        assert!(!text.contains("other facility"), "{text}");
        assert_eq!(control.levels().level("engine"), LevelFilter::DEBUG);
        assert!(control.set_level("a b", LevelFilter::DEBUG).is_err());
        assert_eq!(control.levels().to_string(), "info,engine=debug");
    }

    #[tokio::test]
    async fn subscribers_get_the_lines_and_a_slow_one_loses_the_oldest() {
        let (dispatch, control, _stderr) = scoped(Levels::new(LevelFilter::INFO));
        let mut lines = control.subscribe();
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!(target: "engine", "first line");
            tracing::debug!(target: "engine", "filtered out");
        });
        let Some(LogItem::Line(line)) = lines.next().await else {
            panic!("no line");
        };
        assert!(line.contains("INFO engine: first line"), "{line}");
        assert!(!line.ends_with('\n'), "{line:?}");

        tracing::dispatcher::with_default(&dispatch, || {
            for i in 0..SUBSCRIBER_BACKLOG + 10 {
                tracing::info!(target: "engine", "line {i}");
            }
        });
        assert_eq!(lines.next().await, Some(LogItem::Missed(10)));
        let Some(LogItem::Line(line)) = lines.next().await else {
            panic!("no line");
        };
        assert!(line.ends_with("line 10"), "{line}");
    }

    #[test]
    fn a_subscriber_gets_nothing_logged_before_it_subscribed() {
        let (dispatch, control, _stderr) = scoped(Levels::new(LevelFilter::INFO));
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!("nobody hears this");
        });
        let mut lines = control.subscribe();
        assert!(matches!(
            lines.rx.try_recv(),
            Err(broadcast::error::TryRecvError::Empty)
        ));
    }
}
