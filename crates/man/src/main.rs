//! `failover-man [DIR]`: writes the generated man pages into DIR, by default
//! this source tree's `docs/man/`.

use std::path::PathBuf;

use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let dir = match (args.next(), args.next()) {
        (None, _) => failover_man::docs_dir(),
        (Some(arg), None) if arg == "-h" || arg == "--help" => {
            println!(
                "usage: failover-man [DIR]\n\
                 Renders faild.1, failc.1, failsh.1 (every binary in the list) into DIR\n\
                 (default: the source tree's docs/man)."
            );
            return Ok(());
        }
        (Some(dir), None) => PathBuf::from(dir),
        (Some(_), Some(_)) => bail!("usage: failover-man [DIR]"),
    };
    let written = failover_man::write_pages(&dir).context("cannot write the man pages")?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}
