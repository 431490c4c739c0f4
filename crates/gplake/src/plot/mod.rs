//! Charts an analyst would rather look at than read: registered population over time (with
//! the sex split) and the age–sex pyramid of a month, for a practice, an ICB, a region or
//! England, as SVG or PNG (by the file's extension). No external programs: `plotters` draws,
//! with a font embedded in the binary (DejaVu Sans, see `assets/`).
//!
//! This module reads the figures from the lake; `draw` turns them into a file.

mod draw;

use chrono::NaiveDate;

use crate::delta::{int_column, text_column};
use crate::lake::Lake;
use crate::month::Month;
use crate::query::{QueryError, nearest, run};

/// Whose figures to plot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One practice, by code.
    Practice(String),
    /// One ICB (latest geography), by code.
    Icb(String),
    /// One region (Y56…), by code.
    Region(String),
    /// England.
    National,
}

/// A plotting failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// The practice, organisation or month is not in the lake.
    #[error("{what} is not in the lake{hint}")]
    NotFound {
        /// What was asked for.
        what: String,
        /// Nearest valid names, if any.
        hint: String,
    },
    /// Reading the lake failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// Drawing or writing the file failed.
    #[error("cannot draw {file}: {reason}")]
    Draw {
        /// The output file.
        file: String,
        /// Why.
        reason: String,
    },
}

/// One month of a trend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrendPoint {
    /// The month.
    pub date: NaiveDate,
    /// All patients.
    pub total: i64,
    /// Males.
    pub male: i64,
    /// Females.
    pub female: i64,
}

/// One band of a pyramid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyramidBar {
    /// `0-4` … `95+`.
    pub band: String,
    /// Males.
    pub male: i64,
    /// Females.
    pub female: i64,
}

impl Scope {
    fn label(&self) -> String {
        match self {
            Scope::Practice(c) => format!("practice {c}"),
            Scope::Icb(c) => format!("ICB {c}"),
            Scope::Region(c) => format!("region {c}"),
            Scope::National => "England".into(),
        }
    }

    /// SQL filter on a fact table, and the column whose values name this scope.
    fn fact_filter(&self) -> (String, Option<&'static str>) {
        let quoted = |c: &str| c.replace('\'', "''");
        match self {
            Scope::Practice(c) => (
                format!("practice_code = '{}'", quoted(c)),
                Some("practice_code"),
            ),
            Scope::Icb(c) => (format!("icb_code = '{}'", quoted(c)), Some("icb_code")),
            Scope::Region(c) => (
                format!("region_code = '{}'", quoted(c)),
                Some("region_code"),
            ),
            Scope::National => ("TRUE".into(), None),
        }
    }
}

/// The monthly trend of `scope` (ICBs and regions restated to the latest geography).
pub async fn trend(lake: &Lake, scope: &Scope) -> Result<Vec<TrendPoint>, PlotError> {
    let quoted = |c: &str| c.replace('\'', "''");
    let sql = match scope {
        Scope::Practice(c) => format!("SELECT snapshot_date, registered_population, male, female FROM practice_list_size_monthly WHERE practice_code = '{}' ORDER BY 1", quoted(c)),
        Scope::Icb(c) | Scope::Region(c) => {
            let level = if matches!(scope, Scope::Icb(_)) { "ICB" } else { "REGION" };
            format!("SELECT snapshot_date, registered_population, male, female FROM org_population_monthly WHERE basis = 'latest_geography' AND org_type = '{level}' AND org_code = '{}' ORDER BY 1", quoted(c))
        }
        Scope::National => "SELECT snapshot_date, SUM(registered_population), SUM(male), SUM(female) FROM practice_list_size_monthly GROUP BY 1 ORDER BY 1".into(),
    };
    let (_, batches) = run(lake, &sql, &crate::query::QueryOptions::default()).await?;
    let mut points = Vec::new();
    for b in &batches {
        let (d, t, m, f) = (
            text_column(b, 0),
            int_column(b, 1),
            int_column(b, 2),
            int_column(b, 3),
        );
        for i in 0..b.num_rows() {
            if let Ok(date) = NaiveDate::parse_from_str(d.value(i), "%Y-%m-%d") {
                points.push(TrendPoint {
                    date,
                    total: t.value(i),
                    male: m.value(i),
                    female: f.value(i),
                });
            }
        }
    }
    if points.is_empty() {
        return Err(not_found(lake, scope, None).await);
    }
    Ok(points)
}

/// The age–sex pyramid of `scope` in `month`, in 5-year bands (organisations as published).
pub async fn pyramid(
    lake: &Lake,
    scope: &Scope,
    month: Month,
) -> Result<Vec<PyramidBar>, PlotError> {
    let (filter, _) = scope.fact_filter();
    let sql = format!(
        "SELECT f.age_band, SUM(CASE WHEN f.sex = 'MALE' THEN f.registered_population ELSE 0 END), SUM(CASE WHEN f.sex = 'FEMALE' THEN f.registered_population ELSE 0 END), MAX(b.band_order) AS o
         FROM fact_gp_registered_patients f LEFT JOIN (SELECT DISTINCT age_band, band_order FROM dim_age_band) b ON b.age_band = f.age_band
         WHERE f.snapshot_date = DATE '{}' AND {filter} GROUP BY f.age_band ORDER BY o",
        month.first_day()
    );
    let (_, batches) = run(lake, &sql, &crate::query::QueryOptions::default()).await?;
    let mut bars = Vec::new();
    for b in &batches {
        let (band, m, f) = (text_column(b, 0), int_column(b, 1), int_column(b, 2));
        for i in 0..b.num_rows() {
            bars.push(PyramidBar {
                band: band.value(i).to_string(),
                male: m.value(i),
                female: f.value(i),
            });
        }
    }
    if bars.is_empty() {
        return Err(not_found(lake, scope, Some(month)).await);
    }
    Ok(bars)
}

/// A not-found error with the nearest valid codes or the months the lake holds.
async fn not_found(lake: &Lake, scope: &Scope, month: Option<Month>) -> PlotError {
    let months = distinct(lake, "CAST(snapshot_date AS VARCHAR)", "TRUE").await;
    if let Some(m) = month {
        let wanted = m.first_day().to_string();
        if !months.contains(&wanted) {
            let held: Vec<String> = months.iter().map(|d| d[..7].to_string()).collect();
            return PlotError::NotFound {
                what: format!("month {m}"),
                hint: format!("; months held: {}", held.join(", ")),
            };
        }
    }
    let (_, column) = scope.fact_filter();
    let hint = match (column, scope) {
        (Some(col), Scope::Practice(c) | Scope::Icb(c) | Scope::Region(c)) => {
            let codes = distinct(lake, col, &format!("{col} IS NOT NULL")).await;
            match nearest(c, &codes) {
                Some(n) => format!("; did you mean {n}?"),
                None => format!(
                    "; e.g. {}",
                    codes.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                ),
            }
        }
        _ => "; run gplake sync first".into(),
    };
    let what = match month {
        Some(m) => format!("{} in {m}", scope.label()),
        None => scope.label(),
    };
    PlotError::NotFound { what, hint }
}

async fn distinct(lake: &Lake, expr: &str, filter: &str) -> Vec<String> {
    let sql = format!(
        "SELECT DISTINCT {expr} FROM fact_gp_registered_patients WHERE {filter} ORDER BY 1"
    );
    let Ok((_, batches)) = run(lake, &sql, &crate::query::QueryOptions::default()).await else {
        return Vec::new();
    };
    batches
        .iter()
        .flat_map(|b| {
            let c = text_column(b, 0);
            (0..b.num_rows())
                .map(move |i| c.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

pub use draw::{draw_pyramid, draw_trend};
