//! The `gplake` binary: parse flags, set up logging, call the library, map errors to exit
//! codes (0 ok, 1 failure, 2 usage, 3 quality gate).

mod args;
mod cmd;
mod progress;

use std::process::ExitCode;

use clap::Parser;
use gplake::{Clock, SystemClock};

use args::{Cli, Command};

/// How results are printed.
pub(crate) struct Output {
    json: bool,
    quiet: bool,
}

/// The clock the commands pass to the library.
pub(crate) fn clock() -> &'static dyn Clock {
    static CLOCK: SystemClock = SystemClock;
    &CLOCK
}

fn main() -> ExitCode {
    // Like other Unix tools, stop quietly when the reader of our output goes away
    // (`gplake status | head`), instead of panicking on a broken pipe.
    // SAFETY: restoring the default SIGPIPE action before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    match runtime.block_on(run(&cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<u8> {
    let out = Output {
        json: cli.json,
        quiet: cli.quiet,
    };
    match &cli.command {
        Command::Sync(args) => cmd::fetch::run(&cli.lake, args, &out, true).await,
        Command::Fetch(args) => cmd::fetch::run(&cli.lake, args, &out, false).await,
        Command::Discover(args) => cmd::discover::run(args, &out).await.map(|()| 0),
        Command::Build(args) => cmd::silver::build(&cli.lake, args, &out).await,
        Command::Check(args) => cmd::silver::check(&cli.lake, args, &out).await,
        Command::Status => cmd::silver::status(&cli.lake, &out).await,
        Command::Query(args) => cmd::query::run(&cli.lake, args, &out).await,
        Command::Ddl(args) => cmd::query::ddl(&cli.lake, args),
        Command::Plot(plot) => cmd::plot::run(&cli.lake, plot, &out).await,
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        // delta-rs reports resolved commit races at warn level: not news for a user.
        (false, 0) => "warn,deltalake_core=error",
        (false, 1) => "info,gplake=debug",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
