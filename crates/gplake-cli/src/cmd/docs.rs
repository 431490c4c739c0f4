//! `gplake completions SHELL` and `gplake man`: generated from the flag definitions, so
//! they can never disagree with what the binary accepts.

use clap::CommandFactory;

use crate::args::Cli;

/// Prints the completion script for `shell` on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "gplake", &mut std::io::stdout());
    Ok(())
}

/// Prints the main manual page (roff) on stdout, or, with `dir`, writes it and one page per
/// subcommand (`gplake.1`, `gplake-sync.1`, …) there.
pub(crate) fn man(dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    let command = Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(command, dir)?;
        }
        None => clap_mangen::Man::new(command).render(&mut std::io::stdout().lock())?,
    }
    Ok(())
}
