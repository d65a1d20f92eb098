//! Start-up order: the config is loaded and the ports bound before failsh
//! detaches, so errors reach the terminal; then the pid file, the runtime,
//! the engine and the signal handlers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use failover_daemon::logging::LogControl;
use failover_daemon::{self as daemon, PidFile, Ready};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::info;

use failover::monitor::Reason;

use crate::cli::Cli;
use crate::config;
use crate::dump::Dump;
use crate::engine::Engine;
use crate::reload::Reloader;
use crate::{debug, monitor};

/// failsh's entry point.
pub fn main() -> ExitCode {
    failover_daemon::ignore_sighup_during_startup();
    let mut cli = Cli::parse();
    // The debug port's secret is failsh's alone, and the clients' communities
    // an admin's shell may hold are not for hooks either: no hook, not even
    // the config that `-t` runs, inherits them.
    for name in crate::cli::SECRET_ENV {
        // SAFETY: still single-threaded: nothing has started a thread yet.
        unsafe { std::env::remove_var(name) };
    }
    if cli.test {
        return match config::load(&cli.file) {
            Ok((c, _)) => {
                for w in c.unused_hosts() {
                    eprintln!("failsh: warning: {w}");
                }
                // A master or slave that does not resolve: refused here (a
                // typo must not reach a running failsh); failsh runs with it.
                let unresolved = c.unresolved();
                for e in &unresolved {
                    eprintln!("failsh: {e}: fix the name or give the host an address");
                }
                if !unresolved.is_empty() {
                    return ExitCode::FAILURE;
                }
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
        let mut reloader = Reloader::new(engine.clone(), cli.file.clone());
        loop {
            tokio::select! {
                _ = hup.recv() => reloader.request(),
                () = reloader.finish() => {}
                _ = int.recv() => dump.write(&engine.snapshot(Reason::Connect).text()),
                _ = term.recv() => break,
            }
        }
        info!("SIGTERM: stopping; services are left as they are");
        reloader.stop().await;
        shutdown.cancel();
        Ok(())
    })
}
