//! Gold: the tables analysts ask for most, rebuilt whole from silver after every build that
//! changed it — practice list sizes with month-over-month change and quality flags, and
//! organisation populations both as published and restated to the latest geography.

use std::sync::Arc;

use deltalake::arrow::record_batch::RecordBatch;

use crate::lake::Lake;
use crate::query::{QueryError, session};
use crate::silver::delta;
use crate::silver::schema::{Kind, TableDef, col};

/// Practice × month list sizes.
pub const PRACTICE_LIST_SIZE: TableDef = TableDef {
    path: "gold/practice_list_size_monthly",
    name: "practice_list_size_monthly",
    comment: "Registered patients per practice and month: total, male, female, change from the previous month, quality flags",
    partition: None,
    columns: &[
        col("snapshot_date", Kind::Date, false, "The month"),
        col("practice_code", Kind::Text, false, "GP practice code"),
        col(
            "practice_name",
            Kind::Text,
            true,
            "Name as published that month",
        ),
        col("pcn_code", Kind::Text, true, "PCN as published that month"),
        col(
            "sub_icb_code",
            Kind::Text,
            true,
            "Sub-ICB (CCG) as published that month",
        ),
        col(
            "icb_code",
            Kind::Text,
            true,
            "ICB (STP) as published that month",
        ),
        col("region_code", Kind::Text, true, "Region (Y56…Y63)"),
        col("registered_population", Kind::Int, false, "All patients"),
        col("male", Kind::Int, false, "Male patients"),
        col("female", Kind::Int, false, "Female patients"),
        col(
            "change_from_last_month",
            Kind::Int,
            true,
            "registered_population minus the previous calendar month's (NULL when that month is not in silver)",
        ),
        col(
            "quality_flags",
            Kind::Text,
            true,
            "Rules the practice did not pass that month (warnings such as small_practice)",
        ),
    ],
};

/// Organisation × month populations, as published and restated.
pub const ORG_POPULATION: TableDef = TableDef {
    path: "gold/org_population_monthly",
    name: "org_population_monthly",
    comment: "Registered patients per sub-ICB, ICB and region and month, as published and restated to the latest geography",
    partition: None,
    columns: &[
        col("snapshot_date", Kind::Date, false, "The month"),
        col(
            "basis",
            Kind::Text,
            false,
            "as_published (organisations of that month) or latest_geography (each practice's latest organisations)",
        ),
        col("org_type", Kind::Text, false, "SUB_ICB, ICB or REGION"),
        col("org_code", Kind::Text, false, "Organisation code"),
        col("org_name", Kind::Text, true, "Latest published name"),
        col("registered_population", Kind::Int, false, "All patients"),
        col("male", Kind::Int, false, "Male patients"),
        col("female", Kind::Int, false, "Female patients"),
    ],
};

/// Every gold table.
pub const GOLD_TABLES: [TableDef; 2] = [PRACTICE_LIST_SIZE, ORG_POPULATION];

const PRACTICE_SQL: &str = "
WITH t AS (
  SELECT snapshot_date, practice_code,
         MAX(practice_name) AS practice_name, MAX(pcn_code) AS pcn_code, MAX(sub_icb_code) AS sub_icb_code,
         MAX(icb_code) AS icb_code, MAX(region_code) AS region_code,
         SUM(registered_population) AS registered_population,
         SUM(CASE WHEN sex = 'MALE' THEN registered_population ELSE 0 END) AS male,
         SUM(CASE WHEN sex = 'FEMALE' THEN registered_population ELSE 0 END) AS female
  FROM fact_gp_registered_patients GROUP BY snapshot_date, practice_code),
latest AS (SELECT snapshot_date, MAX(checked_at) AS at FROM quality WHERE snapshot_date IS NOT NULL GROUP BY snapshot_date),
flags AS (
  SELECT q.snapshot_date, q.subject, array_to_string(array_agg(DISTINCT q.rule), ',') AS flags
  FROM quality q JOIN latest l ON q.snapshot_date = l.snapshot_date AND q.checked_at = l.at
  WHERE NOT q.passed AND q.subject IS NOT NULL GROUP BY q.snapshot_date, q.subject)
SELECT t.snapshot_date, t.practice_code, t.practice_name, t.pcn_code, t.sub_icb_code, t.icb_code, t.region_code,
       t.registered_population, t.male, t.female,
       t.registered_population - p.registered_population AS change_from_last_month,
       f.flags AS quality_flags
FROM t
LEFT JOIN t p ON p.practice_code = t.practice_code AND p.snapshot_date = t.snapshot_date - INTERVAL '1 month'
LEFT JOIN flags f ON f.snapshot_date = t.snapshot_date AND f.subject = t.practice_code
ORDER BY t.snapshot_date, t.practice_code";

/// One level's populations on one basis; `{code}` is the fact's (or latest) code column.
fn org_sql(level: &str, code: &str) -> String {
    format!(
        "
SELECT f.snapshot_date, '{{basis}}' AS basis, '{level}' AS org_type, {{src}}.{code} AS org_code, MAX(n.org_name) AS org_name,
       SUM(f.registered_population) AS registered_population,
       SUM(CASE WHEN f.sex = 'MALE' THEN f.registered_population ELSE 0 END) AS male,
       SUM(CASE WHEN f.sex = 'FEMALE' THEN f.registered_population ELSE 0 END) AS female
FROM fact_gp_registered_patients f
LEFT JOIN cur ON cur.practice_code = f.practice_code
LEFT JOIN names n ON n.org_type = '{level}' AND n.org_code = {{src}}.{code}
WHERE {{src}}.{code} IS NOT NULL
GROUP BY f.snapshot_date, {{src}}.{code}"
    )
}

fn org_population_sql() -> String {
    let mut parts = Vec::new();
    for (basis, src) in [("as_published", "f"), ("latest_geography", "cur")] {
        for (level, code) in [
            ("SUB_ICB", "sub_icb_code"),
            ("ICB", "icb_code"),
            ("REGION", "region_code"),
        ] {
            parts.push(
                org_sql(level, code)
                    .replace("{basis}", basis)
                    .replace("{src}", src),
            );
        }
    }
    format!(
        "WITH last AS (SELECT practice_code, MAX(valid_from) AS vf FROM dim_practice GROUP BY practice_code),
cur AS (SELECT d.practice_code, d.sub_icb_code, d.icb_code, d.region_code FROM dim_practice d JOIN last ON last.practice_code = d.practice_code AND last.vf = d.valid_from),
lastorg AS (SELECT org_type, org_code, MAX(valid_from) AS vf FROM dim_organisation GROUP BY org_type, org_code),
names AS (SELECT o.org_type, o.org_code, o.org_name FROM dim_organisation o JOIN lastorg l ON l.org_type = o.org_type AND l.org_code = o.org_code AND l.vf = o.valid_from)
SELECT * FROM ({}) ORDER BY snapshot_date, basis, org_type, org_code",
        parts.join("\nUNION ALL\n")
    )
}

/// Rebuilds every gold table from silver.
pub async fn rebuild(lake: &Lake) -> Result<(), QueryError> {
    let ctx = session(lake, &[]).await?;
    for (def, sql) in [
        (PRACTICE_LIST_SIZE, PRACTICE_SQL.to_string()),
        (ORG_POPULATION, org_population_sql()),
    ] {
        let frame = ctx.sql(&sql).await.map_err(|e| internal(&def, e))?;
        let batches = frame.collect().await.map_err(|e| internal(&def, e))?;
        let batches = conform(&def, batches).map_err(|e| internal(&def, e.into()))?;
        delta::overwrite(lake, &def, batches).await?;
    }
    Ok(())
}

/// Casts query output to the table's exact schema (types and nullability).
fn conform(
    def: &TableDef,
    batches: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>, deltalake::arrow::error::ArrowError> {
    let schema = def.arrow_schema();
    batches
        .into_iter()
        .map(|b| {
            let columns = schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| deltalake::arrow::compute::cast(b.column(i), f.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            RecordBatch::try_new(Arc::clone(&schema), columns)
        })
        .collect()
}

fn internal(def: &TableDef, e: deltalake::datafusion::error::DataFusionError) -> QueryError {
    QueryError::Sql {
        message: format!("building {}: {e}", def.name),
        available: String::new(),
    }
}
