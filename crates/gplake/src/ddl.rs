//! The statements that register every lake table in an engine: Athena/Glue external Delta
//! tables, Spark `USING DELTA`, DuckDB views over `delta_scan`. The tables are standard
//! Delta, so each engine reads them as they are, with no copy.

use crate::catalog::LAKE_TABLES;

/// A query engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Amazon Athena / AWS Glue.
    Athena,
    /// Apache Spark (EMR, Databricks) with Delta Lake.
    Spark,
    /// DuckDB with the delta extension.
    DuckDb,
}

impl std::str::FromStr for Engine {
    type Err = String;

    fn from_str(s: &str) -> Result<Engine, String> {
        match s.to_ascii_lowercase().as_str() {
            "athena" | "glue" => Ok(Engine::Athena),
            "spark" | "databricks" => Ok(Engine::Spark),
            "duckdb" => Ok(Engine::DuckDb),
            other => Err(format!(
                "unknown engine '{other}': use athena, spark or duckdb"
            )),
        }
    }
}

/// Why statements cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum DdlError {
    /// Athena reads only from S3.
    #[error(
        "Athena reads tables from S3 only; '{lake}' is not an s3:// lake (sync into --lake s3://bucket/prefix, or use --engine spark or duckdb)"
    )]
    NotS3 {
        /// The lake given.
        lake: String,
    },
}

/// True for an Azure location (`az://`, `abfss://`, …).
fn is_azure(root: &str) -> bool {
    crate::lake::AZURE_SCHEMES
        .iter()
        .any(|scheme| root.starts_with(&format!("{scheme}://")))
}

/// The statements for `engine`, for the lake whose root is `root` (an `s3://` or Azure URL,
/// or an absolute local path), in database `database` where the engine has databases.
pub fn statements(engine: Engine, root: &str, database: &str) -> Result<String, DdlError> {
    let root = root.trim_end_matches('/');
    let mut out = format!(
        "-- gplake: register the lake at {root} in {}.\n-- Data: NHS England, Patients Registered at a GP Practice. Open Government Licence v3.0.\n",
        match engine {
            Engine::Athena => "Amazon Athena / AWS Glue",
            Engine::Spark => "Apache Spark with Delta Lake",
            Engine::DuckDb => "DuckDB",
        }
    );
    match engine {
        Engine::Athena if !root.starts_with("s3://") => {
            return Err(DdlError::NotS3 {
                lake: root.to_string(),
            });
        }
        Engine::Athena | Engine::Spark => {
            out.push_str(&format!("CREATE DATABASE IF NOT EXISTS {database};\n"))
        }
        Engine::DuckDb => {
            out.push_str("-- Once per machine, with internet: INSTALL delta;\nLOAD delta;\n");
            if root.starts_with("s3://") {
                out.push_str("-- S3 credentials from the usual AWS chain:\nCREATE SECRET IF NOT EXISTS gplake_s3 (TYPE S3, PROVIDER credential_chain);\n");
            }
            if is_azure(root) {
                out.push_str("-- Azure credentials from the usual Azure chain (az login, managed identity),\n-- with ACCOUNT_NAME 'your_account' for az:// locations:\nLOAD azure;\nCREATE SECRET IF NOT EXISTS gplake_azure (TYPE AZURE, PROVIDER credential_chain);\n");
            }
        }
    }
    // Every table, in registration order: silver, gold, then metadata.
    for t in LAKE_TABLES {
        let location = format!("{root}/{}", t.path);
        out.push_str(&format!("\n-- {}\n", t.comment));
        out.push_str(&match engine {
            Engine::Athena => format!(
                "CREATE EXTERNAL TABLE IF NOT EXISTS {database}.{}\nLOCATION '{location}/'\nTBLPROPERTIES ('table_type' = 'DELTA');\n",
                t.name
            ),
            Engine::Spark => format!("CREATE TABLE IF NOT EXISTS {database}.{}\nUSING DELTA\nLOCATION '{location}';\n", t.name),
            Engine::DuckDb => format!("CREATE OR REPLACE VIEW {} AS SELECT * FROM delta_scan('{location}');\n", t.name),
        });
    }
    Ok(out)
}
