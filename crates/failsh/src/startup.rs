//! Start-up order: the config is loaded and the ports bound before failsh
//! detaches, so errors reach the terminal; then the pid file, the runtime,
//! the engine and the signal handlers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use failover_daemon::logging::LogControl;
use failover_daemon::{self as daemon, PidFile, Ready};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use failover::monitor::Reason;

use crate::cli::Cli;
use crate::config;
use crate::engine::Engine;
use crate::{debug, monitor};

/// failsh's entry point.
pub fn main() -> ExitCode {
    failover_daemon::ignore_sighup_during_startup();
    let mut cli = Cli::parse();
    if cli.test {
        return match config::load(&cli.file) {
            Ok((c, _)) => {
                println!(
                    "{}: OK ({} services, {} hosts)",
                    cli.file.display(),
                    c.services.len(),
                    c.hosts.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("failsh: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let targets: Vec<&str> = cli.debug.iter().map(|f| f.target()).collect();
    let log = failover_daemon::logging::init(
        c"failsh",
        cli.foreground,
        failover_daemon::logging::filter("FAILSH_LOG", &targets),
    );
    let foreground = cli.foreground;
    let code = daemon::start(
        "failsh",
        foreground,
        move || {
            let prepared = prepare(&mut cli)?;
            Ok((cli, prepared))
        },
        |(cli, prepared), ready| run(&cli, prepared, log, ready),
    );
    if code == ExitCode::SUCCESS {
        info!("failsh stopped; services left as they are");
    }
    code
}

struct Prepared {
    config: config::Config,
    hooks: crate::hooks::Hooks,
    monitor: std::net::TcpListener,
    debug: Option<std::net::TcpListener>,
    metrics: Option<std::net::TcpListener>,
}

fn bind(cli: &Cli, port: u16, what: &str) -> Result<std::net::TcpListener> {
    bind_at(SocketAddr::new(cli.address, port), what)
}

fn bind_at(addr: SocketAddr, what: &str) -> Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} ({what} port)"))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

fn prepare(cli: &mut Cli) -> Result<Prepared> {
    let absolute = |p: &mut PathBuf| -> Result<()> {
        *p = std::path::absolute(&*p).with_context(|| format!("path {}", p.display()))?;
        Ok(())
    };
    absolute(&mut cli.file)?;
    absolute(&mut cli.dump_file)?;
    cli.pid_file.iter_mut().try_for_each(absolute)?;
    let (config, hooks) = config::load(&cli.file)?;
    info!(target: "config", "{}: {} services, {} hosts", cli.file.display(), config.services.len(), config.hosts.len());
    let monitor = bind(cli, cli.monitor_port, "monitor")?;
    let debug = cli.debug_port.map(|p| bind(cli, p, "debug")).transpose()?;
    let metrics = cli.metrics.map(|a| bind_at(a, "metrics")).transpose()?;
    if debug.is_some() && cli.community == "public" {
        tracing::warn!(target: "monitor", "the debug port accepts the default community 'public' (set -c)");
    }
    Ok(Prepared {
        config,
        hooks,
        monitor,
        debug,
        metrics,
    })
}

fn run(cli: &Cli, prepared: Prepared, log: LogControl, ready: &mut Ready) -> Result<()> {
    let _pid = cli.pid_file.as_deref().map(PidFile::create).transpose()?;
    // The ports' clients, hooks and faild connections all need descriptors;
    // the ports' caps (see `monitor::LIMITS`, `debug::LIMITS`) stay well
    // below even the usual 1,024, and a full table only delays accepts.
    let fd_limit = daemon::raise_fd_limit();
    tracing::debug!("open-file limit {fd_limit}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let engine = Engine::start(prepared.config, prepared.hooks, shutdown.clone());
        let monitor = tokio::net::TcpListener::from_std(prepared.monitor)?;
        tokio::spawn(monitor::serve(monitor, engine.clone(), shutdown.clone()));
        if let Some(d) = prepared.debug {
            let d = tokio::net::TcpListener::from_std(d)?;
            tokio::spawn(debug::serve(
                d,
                engine.clone(),
                log,
                cli.community.clone(),
                shutdown.clone(),
            ));
        }
        if let Some(m) = prepared.metrics {
            let m = tokio::net::TcpListener::from_std(m)?;
            tokio::spawn(monitor::serve_metrics(m, engine.clone(), shutdown.clone()));
        }
        info!(
            "failsh {} running {}",
            env!("CARGO_PKG_VERSION"),
            cli.file.display()
        );
        ready.ok();
        let mut dump = Dump::new(cli.dump_file.clone());
        loop {
            tokio::select! {
                _ = hup.recv() => reload(&engine, &cli.file),
                _ = int.recv() => dump.write(&engine.snapshot(Reason::Connect).text()),
                _ = term.recv() => break,
            }
        }
        info!("SIGTERM: stopping; services are left as they are");
        shutdown.cancel();
        Ok(())
    })
}

fn reload(engine: &Arc<Engine>, file: &Path) {
    match config::load(file) {
        Ok((config, hooks)) => {
            let summary = engine.reload(config, hooks);
            info!(target: "config", "SIGHUP: {} reloaded: {summary}", file.display());
        }
        Err(e) => error!(target: "config", "SIGHUP: {e}; the previous config stays in force"),
    }
}

/// The SIGINT dump target. A FIFO is opened once a reader is there and kept
/// open, so `cat` on it follows dump after dump; it is opened and written
/// without blocking, so a missing or slow reader never stalls failsh.
struct Dump {
    path: PathBuf,
    fifo: Option<std::fs::File>,
}

impl Dump {
    fn new(path: PathBuf) -> Dump {
        Dump { path, fifo: None }
    }

    fn write(&mut self, text: &str) {
        use std::io::Write;
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let is_fifo = std::fs::metadata(&self.path).is_ok_and(|m| m.file_type().is_fifo());
        let result = if is_fifo {
            if self.fifo.is_none() {
                self.fifo = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&self.path)
                    .ok();
            }
            match &mut self.fifo {
                Some(f) => f.write_all(text.as_bytes()),
                None => Err(std::io::Error::other("no reader on the FIFO")),
            }
        } else {
            std::fs::write(&self.path, text)
        };
        match result {
            Ok(()) => info!("SIGINT: state dumped to {}", self.path.display()),
            Err(e) => {
                self.fifo = None;
                error!("SIGINT: cannot dump to {}: {e}", self.path.display());
            }
        }
    }
}
