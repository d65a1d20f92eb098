//! Logging to stderr: warnings only, unless `-d FACILITY` raises a
//! facility (`net`, `ui`) to debug (twice: trace). `FAILMON_LOG` (EnvFilter
//! syntax) replaces the filter. Not installed while the terminal UI owns the
//! screen: log lines would tear it.

use tracing_subscriber::EnvFilter;

use crate::cli::Facility;

/// Environment variable that replaces the filter.
pub const ENV: &str = "FAILMON_LOG";

/// The filter for `raised` (once per `-d`).
pub fn filter(raised: &[Facility]) -> EnvFilter {
    if let Ok(spec) = std::env::var(ENV) {
        return EnvFilter::new(spec);
    }
    let mut filter = EnvFilter::new("warn");
    for f in [Facility::Net, Facility::Ui] {
        let level = match raised.iter().filter(|r| **r == f).count() {
            0 => continue,
            1 => "debug",
            _ => "trace",
        };
        if let Ok(d) = format!("{}={level}", f.target()).parse() {
            filter = filter.add_directive(d);
        }
    }
    filter
}

/// Installs the stderr subscriber.
pub fn init(raised: &[Facility]) {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter(raised))
        .with_ansi(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facilities_are_raised_once_each() {
        if std::env::var(ENV).is_ok() {
            return; // the environment decides
        }
        assert_eq!(filter(&[]).to_string(), "warn");
        let f = filter(&[Facility::Net, Facility::Ui, Facility::Ui]).to_string();
        assert!(f.contains("net=debug") && f.contains("ui=trace"), "{f}");
    }
}
