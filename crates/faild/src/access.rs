//! The community rules in force, and their reload on SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use failover::community::Rules;

/// The current rule set. Requests take a cheap `Arc` snapshot, so a reload
/// never blocks or tears a request in progress.
#[derive(Debug)]
pub struct Access {
    file: Option<PathBuf>,
    rules: RwLock<Arc<Rules>>,
}

impl Access {
    /// Loads the community file, or the built-in `public` read-only default.
    pub fn load(file: Option<PathBuf>) -> Result<Access> {
        let rules = match &file {
            Some(path) => read(path)?,
            None => Rules::public_read_only(),
        };
        Ok(Access {
            file,
            rules: RwLock::new(Arc::new(rules)),
        })
    }

    pub fn file(&self) -> Option<&PathBuf> {
        self.file.as_ref()
    }

    pub fn current(&self) -> Arc<Rules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the community file. On error the old rules stay in force.
    /// Returns the number of rules now in force.
    pub fn reload(&self) -> Result<usize> {
        let Some(path) = &self.file else {
            return Ok(self.current().len());
        };
        let rules = read(path)?;
        let n = rules.len();
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
        Ok(n)
    }
}

/// Reads the community file through the secret-file checks (owner, mode):
/// a file others may write is refused, one others may read is warned about.
fn read(path: &Path) -> Result<Rules> {
    let secret = failover_daemon::secret::read_secret_file(path).context("community file")?;
    for warning in &secret.warnings {
        tracing::warn!(target: "auth", "community file {warning}");
    }
    Ok(Rules::parse(&secret.text, &path.display().to_string())?)
}
