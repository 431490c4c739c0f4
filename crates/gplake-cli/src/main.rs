//! The `gplake` binary: parse flags, set up logging, open the lake once, call the library,
//! map errors to exit codes (0 ok, 1 internal failure, 2 usage error or refused request,
//! 3 quality gate failed or derived tables behind, 4 source unreachable, 5 lake/storage).

mod args;
mod cmd;
mod progress;

use std::process::ExitCode;

use clap::Parser;
use gplake::{Clock, SystemClock};

use args::{Cli, Command};

// A build allocates and frees millions of small strings and buffers across two threads:
// mimalloc does that faster than glibc's malloc and hands memory back between months
// instead of letting each thread's arenas grow with the history.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How results are printed.
pub(crate) struct Output {
    json: bool,
    quiet: bool,
}

/// The run's cancellation token, tripped by the first Ctrl-C (a second one stops at once).
pub(crate) fn cancel() -> gplake::Cancel {
    static CANCEL: std::sync::OnceLock<gplake::Cancel> = std::sync::OnceLock::new();
    CANCEL.get_or_init(gplake::Cancel::new).clone()
}

/// Trips [`cancel`] on Ctrl-C so a build stops at its next safe point.
fn watch_interrupt(runtime: &tokio::runtime::Runtime) {
    runtime.spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopping at the next safe point (Ctrl-C again to stop now)");
            cancel().cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
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
    init_logging(cli.verbose, cli.quiet, cli.ansi());
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    watch_interrupt(&runtime);
    match runtime.block_on(run(&cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(exit_code(&err))
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<u8> {
    let out = Output {
        json: cli.json,
        quiet: cli.quiet,
    };
    if let Command::Discover(args) = &cli.command {
        return cmd::discover::run(args, &out).await.map(|()| 0);
    }
    let options = cli.store_options();
    if !options.is_empty() && !cli.lake.starts_with("s3") {
        anyhow::bail!(gplake::Error::from(gplake::lake::LakeError::Config {
            url: cli.lake.clone(),
            reason: "--s3-sse and --s3-kms-key-id apply only to an s3:// lake".into(),
        }));
    }
    let lake = if cli.command.only_reads() {
        gplake::Lake::open_existing_with(&cli.lake, options)
    } else {
        gplake::Lake::open_with(&cli.lake, options)
    }
    .map_err(gplake::Error::from)?;
    match &cli.command {
        Command::Sync(args) => cmd::sync::run(&lake, args, &out, true).await,
        Command::Fetch(args) => cmd::sync::run(&lake, args, &out, false).await,
        Command::Discover(_) => unreachable!("handled above"),
        Command::Build(args) => cmd::build::run(&lake, args, &out).await,
        Command::Check(args) => cmd::check::run(&lake, args, &out).await,
        Command::Status => cmd::status::run(&lake, &out).await,
        Command::Query(args) => cmd::query::run(&lake, args, &out).await,
        Command::Ddl(args) => cmd::ddl::run(&lake, args),
        Command::Plot(plot) => cmd::plot::run(&lake, plot, &out).await,
        Command::Unlock(args) => cmd::unlock::run(&lake, args, &out).await,
        Command::Vacuum(args) => cmd::vacuum::run(&lake, args, &out).await,
    }
}

/// Exit code: the source (or part of it) could not be reached.
pub(crate) const SOURCE_UNREACHABLE: u8 = 4;

/// The exit code for a failure, by its kind.
fn exit_code(err: &anyhow::Error) -> u8 {
    use gplake::ErrorKind;
    let Some(kind) = err.downcast_ref::<gplake::Error>().map(gplake::Error::kind) else {
        return 1;
    };
    match kind {
        ErrorKind::Refused | ErrorKind::BadInput => 2,
        ErrorKind::SourceUnreachable | ErrorKind::Http => SOURCE_UNREACHABLE,
        ErrorKind::Storage | ErrorKind::Busy => 5,
        ErrorKind::Cancelled => 130,
        _ => 1,
    }
}

fn init_logging(verbose: u8, quiet: bool, ansi: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        // delta-rs logs commit races that gplake resolves (it retries them): not news for a
        // user; failures it does not resolve come back as errors and are printed.
        (false, 0) => "warn,deltalake_core=off",
        (false, 1) => "info,gplake=debug",
        // delta-rs prints whole store configurations at debug, access key ids included.
        (false, _) => "debug,deltalake_core=info,deltalake=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
}
