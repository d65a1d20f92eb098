//! faild's log facilities, raised with `-d FACILITY`.

/// A named subsystem whose log level `-d` raises. Each is a `tracing` target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Facility {
    /// Listening, accepting, connection limits.
    Net,
    /// Every request and reply.
    Proto,
    /// The state file.
    Store,
    /// Community rules and access decisions.
    Auth,
}

impl Facility {
    pub fn target(self) -> &'static str {
        match self {
            Facility::Net => "net",
            Facility::Proto => "proto",
            Facility::Store => "store",
            Facility::Auth => "auth",
        }
    }
}

/// Installs logging for faild (see [`failover_daemon::logging`]).
pub fn init(foreground: bool, raised: &[Facility]) {
    let targets: Vec<&str> = raised.iter().map(|f| f.target()).collect();
    let filter = failover_daemon::logging::filter("FAILD_LOG", &targets);
    failover_daemon::logging::init(c"faild", foreground, filter);
}
