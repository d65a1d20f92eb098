//! Start-up order: everything that can fail on bad input (arguments,
//! community file, state file, ports) fails before faild detaches, with a
//! one-line message on the terminal; then daemon chores; then the runtime.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use failover::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::access::Access;
use crate::cli::Cli;
use crate::persist::{StateFile, check_state_dir, current_boot_id, hand_over_state_dir};
use crate::server::{self, Listeners};
use crate::store::Store;
use crate::tcp::Limits;
use crate::{logging, signals};
use failover_daemon::{self as daemon, PidFile, Ready};

/// What is loaded and bound before detaching.
struct Prepared {
    access: Access,
    file: StateFile,
    registry: Registry,
    listeners: Listeners,
}

/// faild's entry point.
pub fn main() -> ExitCode {
    failover_daemon::ignore_sighup_during_startup();
    let mut cli = Cli::parse();
    logging::init(cli.foreground, &cli.debug);
    let foreground = cli.foreground;
    let code = daemon::start(
        "faild",
        foreground,
        move || {
            absolute_paths(&mut cli)?;
            let prepared = prepare(&cli)?;
            Ok((cli, prepared))
        },
        |(cli, prepared), ready| serve(&cli, prepared, ready),
    );
    if code == ExitCode::SUCCESS {
        info!("faild stopped");
    }
    code
}

/// Paths are made absolute before faild changes to `/` when it detaches, so
/// that the pid file lands where the init script looks and SIGHUP re-reads
/// the community file the command line named.
fn absolute_paths(cli: &mut Cli) -> Result<()> {
    let absolute = |p: &mut PathBuf| -> Result<()> {
        *p = std::path::absolute(&*p).with_context(|| format!("path {}", p.display()))?;
        Ok(())
    };
    absolute(&mut cli.state_file)?;
    cli.community_file.iter_mut().try_for_each(absolute)?;
    cli.key_file.iter_mut().try_for_each(absolute)?;
    cli.pid_file.iter_mut().try_for_each(absolute)
}

fn prepare(cli: &Cli) -> Result<Prepared> {
    if cli.tcp_flag || cli.udp_flag {
        info!(
            "-T/-U accepted for compatibility: faild always serves TCP and UDP on port {}",
            cli.port
        );
    }
    let access = Access::load(cli.community_file.clone(), cli.key_file.clone())?;
    if let Some(f) = access.key_file() {
        info!(target: "auth", "{} request keys from {}", access.keys().len(), f.display());
    }
    match access.file() {
        Some(f) => {
            info!(target: "auth", "{} community rules from {}", access.current().len(), f.display())
        }
        None => {
            warn!(target: "auth", "no community file (-c): community 'public' may read every service and nobody may write")
        }
    }
    let state_path = cli.state_file.clone();
    if let Some(dir) = state_path.parent().filter(|d| !d.exists()) {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "state file {}: cannot create its directory",
                state_path.display()
            )
        })?;
        // A directory faild made belongs to the user faild runs as, so that
        // it can still replace the state file after -u.
        if let Some(spec) = &cli.user {
            let user = daemon::lookup_user(spec)?;
            hand_over_state_dir(dir, user.uid.as_raw(), user.gid.as_raw())?;
        }
    }
    // Only root, faild's own user and the -u user may change the directory
    // where root's faild writes and renames files.
    let mut trusted = vec![nix::unistd::geteuid().as_raw()];
    if let Some(spec) = &cli.user {
        trusted.push(daemon::lookup_user(spec)?.uid.as_raw());
    }
    let dir = state_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    check_state_dir(dir, &trusted)?;
    let file = StateFile::open(state_path, current_boot_id())?;
    let registry = file.load()?;
    access.wait_out_start_second();
    let listeners = Listeners::bind(&cli.addresses, cli.port)?;
    Ok(Prepared {
        access,
        file,
        registry,
        listeners,
    })
}

fn serve(cli: &Cli, prepared: Prepared, ready: &mut Ready) -> Result<()> {
    let _pid = match &cli.pid_file {
        Some(p) => Some(PidFile::create(p)?),
        None => None,
    };
    let fd_limit = daemon::raise_fd_limit();
    let limits = Limits {
        max_connections: cli
            .max_connections
            .min(fd_limit.saturating_sub(64).max(16) as usize),
        idle_timeout: cli.idle_timeout,
        write_timeout: Duration::from_secs(10),
    };
    if cli.lock_memory {
        daemon::lock_memory(cli.user.is_none());
    }
    if let Some(n) = cli.nice {
        daemon::raise_priority(n);
    }
    if let Some(user) = &cli.user {
        daemon::drop_privileges(user)?;
    }
    let Prepared {
        access,
        file,
        registry,
        listeners,
    } = prepared;
    let store = Arc::new(Store::new(registry, file, access));
    store
        .save_all()
        .with_context(|| format!("state file {}: cannot write", cli.state_file.display()))?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        signals::install(store.clone(), shutdown.clone())?;
        let addrs: Vec<String> = listeners
            .addresses()
            .iter()
            .map(|a| a.to_string())
            .collect();
        info!(
            target: "net",
            "faild {} serving TCP and UDP on {} (at most {} connections)",
            env!("CARGO_PKG_VERSION"),
            addrs.join(", "),
            limits.max_connections
        );
        ready.ok();
        let run = server::run(listeners, store, limits, shutdown.clone());
        tokio::pin!(run);
        // Tell systemd at once that faild is stopping, not only after the
        // requests in flight are done.
        tokio::select! {
            result = &mut run => return result,
            _ = shutdown.cancelled() => ready.stopping(),
        }
        run.await
    })
}
