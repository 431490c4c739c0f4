//! One DataFusion session over the lake's Delta tables, shared by everything that reads with
//! SQL (gold, dims, the series checks and `gplake query`), so none of them imports another.
//!
//! A session reads each table at one version, pinned when it opens: the latest, the version
//! a derived table is recorded against, or the version current at a moment (time travel).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use deltalake::DeltaTableError;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};

use crate::catalog::TableDef;
use crate::delta::{self, DeltaError};
use crate::lake::Lake;

/// Which version of each table a session reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Pin {
    /// The latest version of every table.
    #[default]
    Latest,
    /// Every table as it was at this moment (tables created later are absent).
    At(DateTime<Utc>),
    /// These versions, by table name; other tables at their latest.
    Versions(BTreeMap<String, u64>),
}

/// How a session is set up.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionSpec {
    pub(crate) pin: Pin,
    /// Register a missing table as empty (for internal readers) instead of leaving it out.
    pub(crate) empty_if_missing: bool,
    /// Bytes the session's operators may hold before they spill or fail.
    pub(crate) memory_limit: Option<usize>,
    /// Rows per batch its operators pass on (DataFusion's default when `None`).
    pub(crate) batch_rows: Option<usize>,
}

/// An open session. Clones share it: what one pins, the others read.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) ctx: SessionContext,
}

impl Session {
    /// Registers `def` as it is at `version` (its latest when `None`, empty when missing),
    /// in place of what was registered under its name: for a table written since the session
    /// opened.
    pub(crate) async fn pin(
        &self,
        lake: &Lake,
        def: &TableDef,
        version: Option<u64>,
    ) -> Result<(), DeltaError> {
        self.pin_as(lake, def, version, def.name).await
    }

    /// Registers `def` as it is at `version` under `name`: a version of a table read beside
    /// the one registered under its own name.
    pub(crate) async fn pin_as(
        &self,
        lake: &Lake,
        def: &TableDef,
        version: Option<u64>,
        name: &str,
    ) -> Result<(), DeltaError> {
        let e = df_err(Some(def));
        self.ctx.deregister_table(name).map_err(e)?;
        match delta::open_version(lake, def, version).await? {
            Some(table) => register(&self.ctx, def, name, &table).await,
            None => register_empty(&self.ctx, def, name),
        }
    }
}

/// Opens a session with `tables` registered by name.
pub(crate) async fn open(
    lake: &Lake,
    tables: &[TableDef],
    spec: &SessionSpec,
) -> Result<Session, DeltaError> {
    let ctx = context(spec).map_err(|e| delta_err(tables.first(), e))?;
    for def in tables {
        let table = match &spec.pin {
            Pin::Latest => delta::open(lake, def).await?,
            Pin::At(at) => delta::open_at(lake, def, *at).await?,
            Pin::Versions(v) => delta::open_version(lake, def, v.get(def.name).copied()).await?,
        };
        match table {
            Some(table) => register(&ctx, def, def.name, &table).await?,
            None if spec.empty_if_missing => register_empty(&ctx, def, def.name)?,
            None => {}
        }
    }
    Ok(Session { ctx })
}

fn context(spec: &SessionSpec) -> Result<SessionContext, DeltaTableError> {
    let mut config = SessionConfig::new();
    if let Some(rows) = spec.batch_rows {
        config = config.with_batch_size(rows);
    }
    let Some(limit) = spec.memory_limit else {
        return Ok(SessionContext::new_with_config(config));
    };
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(limit, 1.0)
        .build_arc()?;
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

async fn register(
    ctx: &SessionContext,
    def: &TableDef,
    name: &str,
    table: &deltalake::DeltaTable,
) -> Result<(), DeltaError> {
    let e = |e: DeltaTableError| delta_err(Some(def), e);
    table.update_datafusion_session(&ctx.state()).map_err(e)?;
    let provider = table.table_provider().await.map_err(|x| e(x.into()))?;
    ctx.register_table(name, provider)
        .map_err(|x| e(x.into()))?;
    Ok(())
}

fn register_empty(ctx: &SessionContext, def: &TableDef, name: &str) -> Result<(), DeltaError> {
    let e = df_err(Some(def));
    let empty = MemTable::try_new(def.arrow_schema(), vec![vec![]]).map_err(e)?;
    ctx.register_table(name, Arc::new(empty)).map_err(e)?;
    Ok(())
}

/// A DataFusion failure over `def`, as a Delta error naming the table.
pub(crate) fn df_err(def: Option<&TableDef>) -> impl Fn(DataFusionError) -> DeltaError + Copy + '_ {
    move |x| delta_err(def, x.into())
}

pub(crate) fn delta_err(def: Option<&TableDef>, source: DeltaTableError) -> DeltaError {
    DeltaError {
        table: def.map(|d| d.name).unwrap_or("session"),
        source: Box::new(source),
    }
}

/// Rows per batch in gplake's own sessions. Their queries hold a span of practice-months
/// (dims, list sizes) in batches that joins, sorts and the Parquet reader and writer each
/// buffer: half DataFusion's 8,192 rows took a 36-month derivation's peak from 63-67 to
/// 52-59 MiB of anonymous memory in the same time (0.89-0.98 s against 0.91-0.98 s).
const INTERNAL_BATCH_ROWS: usize = 4096;

/// A session for gplake's own readers (series checks, dims, gold): `tables` as pinned,
/// missing ones empty, no memory limit, [`INTERNAL_BATCH_ROWS`] to a batch.
pub(crate) async fn internal(
    lake: &Lake,
    tables: &[TableDef],
    pin: Pin,
) -> Result<Session, DeltaError> {
    let spec = SessionSpec {
        pin,
        empty_if_missing: true,
        memory_limit: None,
        batch_rows: Some(INTERNAL_BATCH_ROWS),
    };
    open(lake, tables, &spec).await
}

/// Runs `sql` in an open session and collects the result.
pub(crate) async fn collect(
    session: &Session,
    def: Option<&TableDef>,
    sql: &str,
) -> Result<Vec<RecordBatch>, DeltaError> {
    let frame = session.ctx.sql(sql).await.map_err(df_err(def))?;
    frame.collect().await.map_err(df_err(def))
}

/// `DATE '…'` literals, comma-separated, for `snapshot_date IN (…)`.
pub(crate) fn date_list(months: &BTreeSet<NaiveDate>) -> String {
    let list: Vec<String> = months.iter().map(|m| format!("DATE '{m}'")).collect();
    list.join(", ")
}
