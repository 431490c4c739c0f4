//! Command-line flags (clap) and their resolution into library settings.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use gplake::Month;
use gplake::discover::Source;
use gplake::fetch::FetchOptions;
use gplake::http::HttpConfig;

/// gplake: NHS England "Patients Registered at a GP Practice" into a data lake.
#[derive(Debug, Parser)]
#[command(
    name = "gplake",
    version,
    about = "NHS England \"Patients Registered at a GP Practice\" into a data lake you can trust",
    long_about = None
)]
pub(crate) struct Cli {
    /// The lake: a folder, file://, or s3://bucket/prefix (AWS_* environment).
    #[arg(long, global = true, env = "GPLAKE_LAKE", default_value = "./lake")]
    pub(crate) lake: String,
    /// S3 server-side encryption for every object gplake writes: aws:kms, aws:kms:dsse or
    /// AES256 (the AWS_SERVER_SIDE_ENCRYPTION environment variable does the same).
    #[arg(long, global = true, value_name = "MODE", value_parser = ["aws:kms", "aws:kms:dsse", "AES256"])]
    pub(crate) s3_sse: Option<String>,
    /// The KMS key for --s3-sse aws:kms (id, ARN or alias; AWS_SSE_KMS_KEY_ID does the same).
    #[arg(long, global = true, value_name = "KEY", requires = "s3_sse")]
    pub(crate) s3_kms_key_id: Option<String>,
    /// More logging: -v gplake's own events (months, files, decisions, timings), -vv its
    /// details, -vvv its dependencies' too; RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Only errors; nothing at all when nothing changed (for cron).
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// Machine-readable result on stdout (errors too), with a schema_version.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Log lines on stderr as text or as one JSON object per line.
    #[arg(long, global = true, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub(crate) log_format: String,
    /// Colour in logs: auto (only when stderr is a terminal and NO_COLOR is not set),
    /// always or never.
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub(crate) color: String,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// Whether logs carry ANSI colours: never in a file (cron, CI logs) unless asked.
    pub(crate) fn ansi(&self) -> bool {
        use std::io::IsTerminal;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        match self.color.as_str() {
            "always" => true,
            "never" => false,
            _ => !no_color && std::io::stderr().is_terminal(),
        }
    }

    /// Store options from the flags (they override the environment).
    pub(crate) fn store_options(&self) -> Vec<(&'static str, String)> {
        let mut options = Vec::new();
        if let Some(mode) = &self.s3_sse {
            options.push(("aws_server_side_encryption", mode.clone()));
        }
        if let Some(key) = &self.s3_kms_key_id {
            options.push(("aws_sse_kms_key_id", key.clone()));
        }
        options
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The main job: discover → fetch into bronze → build silver → check.
    Sync(FetchArgs),
    /// List the releases upstream: month, page, published date, each file with its kind.
    Discover(SourceArgs),
    /// Bronze only: fetch every new or changed file.
    Fetch(FetchArgs),
    /// Silver from bronze, for months whose bronze changed (exit 3 if a month is kept out).
    Build(BuildArgs),
    /// The quality standing of every month and the series (exit 3 if a month is kept out).
    Check(CheckArgs),
    /// What the lake holds: months in bronze and silver, revisions, quality, gaps.
    Status,
    /// SQL over every silver and gold table (DataFusion).
    Query(QueryArgs),
    /// Statements that register every table in Athena/Glue, Spark or DuckDB.
    Ddl(DdlArgs),
    /// Charts: registered population over time, or an age–sex pyramid (SVG or PNG).
    #[command(subcommand)]
    Plot(PlotCommand),
    /// Remove a month's lease by hand (rare: only when no other gplake runs).
    Unlock(UnlockArgs),
    /// Delta maintenance: remove data files older than the retention that no version
    /// within it reads, and write checkpoints.
    Vacuum(VacuumArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print the manual page (roff), e.g. `gplake man > /usr/local/share/man/man1/gplake.1`,
    /// or write it and one page per subcommand with `--dir`.
    Man(ManArgs),
}

/// `gplake man` flags.
#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Write gplake.1 and gplake-<command>.1 into this folder instead.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<std::path::PathBuf>,
}

/// `gplake completions` flags.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

impl Command {
    /// Commands that need a lake already there: they never create one (a typo in `--lake`
    /// is an error naming the command that creates a lake, not a new empty folder).
    pub(crate) fn only_reads(&self) -> bool {
        matches!(
            self,
            Command::Check(_)
                | Command::Status
                | Command::Query(_)
                | Command::Plot(_)
                | Command::Unlock(_)
                | Command::Vacuum(_)
        )
    }
}

/// `gplake vacuum` flags.
#[derive(Debug, Args)]
pub(crate) struct VacuumArgs {
    /// Keep every file a version from the last DAYS days reads (time travel within them
    /// keeps working); at least 7.
    #[arg(long, value_name = "DAYS", default_value_t = gplake::vacuum::DEFAULT_RETENTION_DAYS)]
    pub(crate) retention_days: u32,
    /// List what would be removed; remove and write nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `gplake unlock` flags.
#[derive(Debug, Args)]
pub(crate) struct UnlockArgs {
    /// The month whose lease to remove, YYYY-MM.
    #[arg(long, required = true)]
    pub(crate) month: Month,
}

/// The charts.
#[derive(Debug, Subcommand)]
pub(crate) enum PlotCommand {
    /// Registered population over time, with the sex split.
    Trend(TrendArgs),
    /// Age–sex pyramid of one month, in 5-year bands.
    Pyramid(PyramidArgs),
}

/// Whose figures to plot (one of).
#[derive(Debug, Args)]
#[group(multiple = false)]
pub(crate) struct ScopeArgs {
    /// A practice code.
    #[arg(long)]
    pub(crate) practice: Option<String>,
    /// An ICB code (latest geography for trends).
    #[arg(long)]
    pub(crate) icb: Option<String>,
    /// A region code (Y56…Y63).
    #[arg(long)]
    pub(crate) region: Option<String>,
    /// England (the default).
    #[arg(long)]
    pub(crate) national: bool,
}

/// `gplake plot trend` flags.
#[derive(Debug, Args)]
pub(crate) struct TrendArgs {
    /// Whose trend.
    #[command(flatten)]
    pub(crate) scope: ScopeArgs,
    /// The chart file: .svg or .png.
    #[arg(short, long)]
    pub(crate) output: std::path::PathBuf,
}

/// `gplake plot pyramid` flags.
#[derive(Debug, Args)]
pub(crate) struct PyramidArgs {
    /// The month, YYYY-MM.
    #[arg(long)]
    pub(crate) month: Month,
    /// Whose pyramid.
    #[command(flatten)]
    pub(crate) scope: ScopeArgs,
    /// The chart file: .svg or .png.
    #[arg(short, long)]
    pub(crate) output: std::path::PathBuf,
}

impl ScopeArgs {
    /// The library's scope.
    pub(crate) fn scope(&self) -> gplake::plot::Scope {
        use gplake::plot::Scope;
        match (&self.practice, &self.icb, &self.region) {
            (Some(p), _, _) => Scope::Practice(p.to_ascii_uppercase()),
            (_, Some(i), _) => Scope::Icb(i.to_ascii_uppercase()),
            (_, _, Some(r)) => Scope::Region(r.to_ascii_uppercase()),
            _ => Scope::National,
        }
    }
}

/// `gplake ddl` flags.
#[derive(Debug, Args)]
pub(crate) struct DdlArgs {
    /// athena, spark or duckdb.
    #[arg(long)]
    pub(crate) engine: gplake::ddl::Engine,
    /// Database (schema) to create the tables in (Athena, Spark).
    #[arg(long, default_value = "gplake")]
    pub(crate) database: String,
}

/// `gplake query` flags.
#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    /// The SQL, e.g. "SELECT snapshot_date, SUM(registered_population) FROM fact_gp_registered_patients GROUP BY 1"
    /// (or from --file, or standard input). Read-only: INSERT, COPY, CREATE… are refused.
    pub(crate) sql: Option<String>,
    /// Read the SQL from this file.
    #[arg(long, conflicts_with = "sql")]
    pub(crate) file: Option<std::path::PathBuf>,
    /// Read the tables as they were: at a moment (2026-05-01 or 2026-05-01T12:00:00Z), or a
    /// table at a version (TABLE=VERSION, repeatable).
    #[arg(long = "as-of")]
    pub(crate) as_of: Vec<String>,
    /// Memory the query may use, in bytes or with a unit (512M, 4G).
    #[arg(long, default_value = "4G", value_parser = parse_size)]
    pub(crate) memory_limit: usize,
    /// Seconds after which the query is stopped.
    #[arg(long, default_value_t = 1800)]
    pub(crate) time_limit: u64,
    /// table, csv or json (default: table on a terminal, csv otherwise).
    #[arg(long, value_parser = ["table", "csv", "json"])]
    pub(crate) format: Option<String>,
    /// Write the result to FILE (.csv, .json or .parquet) instead of stdout.
    #[arg(long, short = 'o')]
    pub(crate) output: Option<std::path::PathBuf>,
    /// Register a CSV or Parquet file as a table (repeatable): NAME=PATH.
    #[arg(long = "with")]
    pub(crate) with: Vec<gplake::query::Extra>,
}

/// `gplake build` flags.
#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// Only this month (repeatable), YYYY-MM.
    #[arg(long)]
    pub(crate) month: Vec<Month>,
    /// Rebuild even if bronze has not changed.
    #[arg(long)]
    pub(crate) force: bool,
    /// Months built at once (default: the number of cores).
    #[arg(long, short = 'j', default_value_t = 0)]
    pub(crate) jobs: usize,
    /// An aliases file (TOML: [columns], [org_types], [ages]) to check and keep in the lake
    /// as `_meta/aliases.toml` before building; the months it can affect are rebuilt.
    #[arg(long, value_name = "FILE")]
    pub(crate) aliases: Option<std::path::PathBuf>,
    /// Input limits.
    #[command(flatten)]
    pub(crate) limits: InputLimitArgs,
}

/// `gplake check` flags.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Only this month (repeatable), YYYY-MM.
    #[arg(long)]
    pub(crate) month: Vec<Month>,
    /// Exit 3 when the newest month in silver is more than DAYS days old (its snapshot date,
    /// the 1st of the month, against today): a freshness alert for scheduled runs.
    #[arg(long, value_name = "DAYS")]
    pub(crate) max_age: Option<u32>,
}

/// Where releases come from and which months.
#[derive(Debug, Args)]
pub(crate) struct SourceArgs {
    /// The series page URL (or a mirror of it), or a folder of hand-downloaded files.
    #[arg(long, env = "GPLAKE_SOURCE")]
    pub(crate) source: Option<String>,
    /// First month, YYYY-MM.
    #[arg(long)]
    pub(crate) from: Option<Month>,
    /// Last month, YYYY-MM.
    #[arg(long)]
    pub(crate) to: Option<Month>,
    /// Only this month, YYYY-MM (the same as `--from M --to M`).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub(crate) month: Option<Month>,
    /// Concurrent requests.
    #[arg(long, short = 'j', default_value_t = 4)]
    pub(crate) jobs: usize,
    /// Another host links may lead to (repeatable); the source's host and
    /// files.digital.nhs.uk are always allowed.
    #[arg(long = "allow-host")]
    pub(crate) allow_hosts: Vec<String>,
    /// Attempts per request, the first included.
    #[arg(long, default_value_t = 5)]
    pub(crate) attempts: u32,
    /// First retry delay in milliseconds (doubles each retry, with jitter).
    #[arg(long, default_value_t = 500)]
    pub(crate) backoff_ms: u64,
    /// Longest silence allowed while reading a response, in seconds.
    #[arg(long, default_value_t = 60)]
    pub(crate) timeout: u64,
    /// Longest one request may take, first byte to last, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    pub(crate) request_deadline: u64,
    /// Largest page read (e.g. 20M).
    #[arg(long, value_name = "SIZE", default_value = "20M", value_parser = parse_size)]
    pub(crate) max_page_size: usize,
    /// Largest file downloaded (e.g. 2G).
    #[arg(long, value_name = "SIZE", default_value = "2G", value_parser = parse_size)]
    pub(crate) max_file_size: usize,
    /// Follow plain http:// links (an internal mirror); https only otherwise, loopback excepted.
    #[arg(long)]
    pub(crate) allow_http: bool,
    /// A certificate authority (PEM) to trust besides the system's, for networks that
    /// inspect TLS (repeatable; SSL_CERT_FILE is honoured too).
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_cert: Vec<std::path::PathBuf>,
}

/// What a bronze file may hold before it is refused (far above any real release).
#[derive(Debug, Args)]
pub(crate) struct InputLimitArgs {
    /// Largest decompressed ZIP member (e.g. 2G).
    #[arg(long, value_name = "SIZE", default_value = "2G", value_parser = parse_size)]
    pub(crate) max_zip_member_size: usize,
    /// Largest ratio of a ZIP member's decompressed to compressed size.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub(crate) max_zip_ratio: u64,
    /// Most members in one ZIP.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub(crate) max_zip_members: usize,
    /// Longest line in a CSV (e.g. 1M).
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = parse_size)]
    pub(crate) max_line_length: usize,
}

impl InputLimitArgs {
    /// The library's limits from the flags.
    pub(crate) fn limits(&self) -> gplake::formats::InputLimits {
        gplake::formats::InputLimits {
            max_member_bytes: self.max_zip_member_size as u64,
            max_member_ratio: self.max_zip_ratio.max(1),
            max_members: self.max_zip_members.max(1),
            max_line_bytes: self.max_line_length as u64,
        }
    }
}

/// Fetch (and sync) flags.
#[derive(Debug, Args)]
pub(crate) struct FetchArgs {
    /// Source and months.
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    /// Print the plan; download and write nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// (sync) An aliases file to check and keep in the lake before building (see `build`).
    #[arg(long, value_name = "FILE")]
    pub(crate) aliases: Option<std::path::PathBuf>,
    /// Seconds a month lease lives unrenewed before another run may take it over (renewed
    /// every third of this while writing).
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub(crate) lock_ttl: u64,
    /// Download every file whole and compare bronze with its manifest, putting back any
    /// file whose bytes are not the ones recorded (the repair a build's "bronze holds
    /// other bytes" error asks for).
    #[arg(long)]
    pub(crate) verify: bool,
    /// (sync) Input limits for the build.
    #[command(flatten)]
    pub(crate) limits: InputLimitArgs,
}

impl SourceArgs {
    /// The first month asked for.
    pub(crate) fn first(&self) -> Option<Month> {
        self.month.or(self.from)
    }

    /// The last month asked for.
    pub(crate) fn last(&self) -> Option<Month> {
        self.month.or(self.to)
    }

    /// The source, the live site by default.
    pub(crate) fn source(&self) -> Source {
        self.source
            .as_deref()
            .map(Source::parse)
            .unwrap_or_else(Source::live)
    }

    /// HTTP settings from the flags.
    pub(crate) fn http_config(&self) -> HttpConfig {
        let mut config = HttpConfig {
            attempts: self.attempts.max(1),
            base_backoff: Duration::from_millis(self.backoff_ms),
            read_timeout: Duration::from_secs(self.timeout.max(1)),
            request_deadline: Duration::from_secs(self.request_deadline.max(1)),
            max_page_bytes: self.max_page_size as u64,
            max_file_bytes: self.max_file_size as u64,
            allow_http: self.allow_http,
            ca_cert_files: self.ca_cert.clone(),
            ..HttpConfig::default()
        };
        config
            .allowed_hosts
            .extend(self.allow_hosts.iter().cloned());
        config
    }
}

impl FetchArgs {
    /// Fetch settings from the flags.
    pub(crate) fn fetch_options(&self) -> FetchOptions {
        FetchOptions {
            jobs: self.source.jobs.max(1),
            dry_run: self.dry_run,
            lock_ttl: Duration::from_secs(self.lock_ttl.max(1)),
            verify: self.verify,
            cancel: crate::cancel(),
        }
    }
}

/// `512M`, `4G`, `1048576`.
fn parse_size(text: &str) -> Result<usize, String> {
    let upper = text.trim().to_ascii_uppercase();
    let (digits, unit) = match upper.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => upper.split_at(i),
        None => (upper.as_str(), ""),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size (e.g. 512M, 4G)"))?;
    let shift = match unit.trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(format!("'{text}' is not a size (e.g. 512M, 4G)")),
    };
    Ok(n << shift)
}

impl QueryArgs {
    /// The table versions `--as-of` asks for.
    pub(crate) fn pin(&self) -> anyhow::Result<gplake::query::Pin> {
        use gplake::query::Pin;
        let mut versions = std::collections::BTreeMap::new();
        for value in &self.as_of {
            if let Some((table, version)) = value.split_once('=') {
                let version = version
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--as-of {value}: the version is not a number"))?;
                versions.insert(table.to_string(), version);
                continue;
            }
            if !versions.is_empty() || self.as_of.len() > 1 {
                anyhow::bail!("--as-of takes one moment, or TABLE=VERSION pairs, not both");
            }
            return Ok(Pin::At(moment(value)?));
        }
        Ok(if versions.is_empty() {
            Pin::Latest
        } else {
            Pin::Versions(versions)
        })
    }
}

/// `2026-05-01T12:00:00Z` or `2026-05-01` (the end of that day, UTC).
fn moment(text: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        anyhow::anyhow!("--as-of {text}: use 2026-05-01, 2026-05-01T12:00:00Z or TABLE=VERSION")
    })?;
    Ok(day.and_hms_opt(23, 59, 59).expect("valid time").and_utc())
}
