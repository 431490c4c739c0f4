//! The `gplake` command line as a library: [`run`] parses flags, sets up logging, opens the
//! lake once, calls the gplake library, prints, and maps errors to exit codes (0 ok,
//! 1 internal failure, 2 usage error or refused request, 3 quality gate failed or derived
//! tables behind, 4 source unreachable, 5 lake/storage). The `gplake` binary and the Python
//! package's console script both call it, so they take the same flags and exit the same way.

mod args;
mod cmd;
mod memory;
mod progress;

use clap::Parser;
use gplake::{Clock, SystemClock};

use args::{Cli, Command};

/// The version of every JSON document gplake prints (reports and errors): raised when a
/// field is removed or changes meaning, never when one is added.
pub(crate) const JSON_SCHEMA_VERSION: u32 = 1;

/// How results are printed.
pub(crate) struct Output {
    json: bool,
    quiet: bool,
}

impl Output {
    /// Prints a report as one JSON document on stdout, carrying `schema_version`.
    pub(crate) fn print_json(&self, report: &impl serde::Serialize) -> anyhow::Result<()> {
        let document = with_schema_version(serde_json::to_value(report)?);
        println!("{}", serde_json::to_string_pretty(&document)?);
        Ok(())
    }
}

/// `{"schema_version": N, …the report's fields}` (a report that is not an object goes
/// under `result`).
fn with_schema_version(report: serde_json::Value) -> serde_json::Value {
    let mut document = serde_json::Map::new();
    document.insert("schema_version".into(), JSON_SCHEMA_VERSION.into());
    match report {
        serde_json::Value::Object(fields) => document.extend(fields),
        other => {
            document.insert("result".into(), other);
        }
    }
    document.into()
}

/// The run's cancellation token, tripped by the first Ctrl-C (a second one stops at once).
pub(crate) fn cancel() -> gplake::Cancel {
    run_cancel().lock().expect("cancel lock").clone()
}

/// Each run gets a fresh token: [`run`] may be called again in one process (the Python
/// package's `gplake` command), and an earlier run's Ctrl-C must not stop a later one.
fn run_cancel() -> &'static std::sync::Mutex<gplake::Cancel> {
    static CANCEL: std::sync::OnceLock<std::sync::Mutex<gplake::Cancel>> =
        std::sync::OnceLock::new();
    CANCEL.get_or_init(Default::default)
}

/// Trips the run's [`cancel`] token on Ctrl-C, so a fetch or build stops at its next safe
/// point.
fn watch_interrupt(runtime: &tokio::runtime::Runtime) {
    let token = gplake::Cancel::new();
    *run_cancel().lock().expect("cancel lock") = token.clone();
    runtime.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopping at the next safe point (Ctrl-C again to stop now)");
            token.cancel();
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

/// Runs the command line `args` (the program name first, as in `std::env::args_os()`) and
/// returns the exit code.
pub fn run<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e, args.iter().any(|a| a == "--json")),
    };
    init_logging(&cli);
    let runtime = gplake::runtime_with(crate::memory::hooks()).expect("a tokio runtime starts");
    watch_interrupt(&runtime);
    match runtime.block_on(run_command(&cli)) {
        Ok(code) => code,
        Err(err) => {
            let code = exit_code(&err);
            eprintln!("error: {err}");
            if cli.json {
                print_error_json(&err, code);
            }
            code
        }
    }
}

/// Exit code: a usage error or a refused request.
pub(crate) const USAGE: u8 = 2;

/// Help and version go out as clap prints them; a usage error too, and as JSON on stdout
/// when `--json` was among the arguments.
fn usage_error(e: clap::Error, json: bool) -> u8 {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) || !json {
        let _ = e.print();
        return if e.use_stderr() { USAGE } else { 0 };
    }
    let _ = e.print();
    let message = e.kind().as_str().map_or_else(
        || e.to_string().lines().next().unwrap_or_default().to_string(),
        str::to_string,
    );
    let error = serde_json::json!({
        "kind": "usage", "exit_code": USAGE, "message": message,
        "detail": e.to_string().trim_end(),
        "month": null, "file": null, "url": null,
    });
    let document = with_schema_version(serde_json::json!({ "error": error }));
    println!("{document}");
    USAGE
}

/// `{"schema_version": 1, "error": {"kind", "exit_code", "message", "month", "file", "url"}}`
/// on stdout, for pipelines that read only stdout.
fn print_error_json(err: &anyhow::Error, code: u8) {
    let lib = err.downcast_ref::<gplake::Error>();
    let kind = lib.map_or("internal", |e| e.kind().name());
    let context = lib.map(gplake::Error::context).unwrap_or_default();
    let mut error = serde_json::json!({
        "kind": kind, "exit_code": code, "message": err.to_string(),
    });
    if let (Some(fields), Ok(serde_json::Value::Object(context))) =
        (error.as_object_mut(), serde_json::to_value(context))
    {
        fields.extend(context);
    }
    let document = with_schema_version(serde_json::json!({ "error": error }));
    println!("{document}");
}

async fn run_command(cli: &Cli) -> anyhow::Result<u8> {
    let out = Output {
        json: cli.json,
        quiet: cli.quiet,
    };
    match &cli.command {
        Command::Discover(args) => return cmd::discover::run(args, &out).await.map(|()| 0),
        Command::Completions(args) => return cmd::docs::completions(args.shell).map(|()| 0),
        Command::Man(args) => return cmd::docs::man(args.dir.as_deref()).map(|()| 0),
        _ => {}
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
        Command::Discover(_) | Command::Completions(_) | Command::Man(_) => {
            unreachable!("handled above")
        }
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
        ErrorKind::Refused | ErrorKind::BadInput => USAGE,
        ErrorKind::SourceUnreachable | ErrorKind::Http => SOURCE_UNREACHABLE,
        ErrorKind::Storage | ErrorKind::Busy => 5,
        ErrorKind::Cancelled => 130,
        _ => 1,
    }
}

fn init_logging(cli: &Cli) {
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        // delta-rs logs commit races that gplake resolves (it retries them): not news for a
        // user; failures it does not resolve come back as errors and are printed.
        (false, 0) => "warn,deltalake_core=off",
        (false, 1) => "warn,deltalake_core=off,gplake=info",
        (false, 2) => "warn,deltalake_core=off,gplake=trace",
        // delta-rs prints whole store configurations at debug, access key ids included.
        (false, _) => "debug,gplake=trace,deltalake_core=info,deltalake=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second run in one process (the Python package) keeps the first run's logging.
    let _ = if cli.log_format == "json" {
        logs.json().with_current_span(false).try_init()
    } else {
        logs.with_ansi(cli.ansi()).with_target(false).try_init()
    };
}
