//! The catalog: every table of the lake (silver, gold, metadata): name, location, partitioning, columns with types and
//! comments, and the properties that carry source, licence and attribution.

use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::kernel::{DataType, MetadataValue, StructField};

/// Column types used by gplake tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 text.
    Text,
    /// 64-bit integer (BIGINT).
    Int,
    /// Calendar date.
    Date,
    /// Boolean.
    Bool,
    /// UTC timestamp, microseconds.
    Timestamp,
}

/// One column.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Name.
    pub name: &'static str,
    /// Type.
    pub kind: Kind,
    /// May be NULL.
    pub nullable: bool,
    /// The column comment.
    pub comment: &'static str,
}

/// One table.
#[derive(Debug, Clone, Copy)]
pub struct TableDef {
    /// Path in the lake (`silver/fact_gp_registered_patients`).
    pub path: &'static str,
    /// Table name, as registered in engines.
    pub name: &'static str,
    /// Table comment.
    pub comment: &'static str,
    /// The partition column, if any.
    pub partition: Option<&'static str>,
    /// Columns in order.
    pub columns: &'static [Column],
}

/// A column definition (a `const fn` so tables can be constants).
pub(crate) const fn col(
    name: &'static str,
    kind: Kind,
    nullable: bool,
    comment: &'static str,
) -> Column {
    Column {
        name,
        kind,
        nullable,
        comment,
    }
}

/// Source, licence and attribution, on every table.
pub const PROPERTIES: [(&str, &str); 4] = [
    (
        "gplake.source",
        "NHS England, Patients Registered at a GP Practice (https://digital.nhs.uk/data-and-information/publications/statistical/patients-registered-at-a-gp-practice)",
    ),
    (
        "gplake.licence",
        "Open Government Licence v3.0 (https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/)",
    ),
    (
        "gplake.attribution",
        "Contains public sector information licensed under the Open Government Licence v3.0. Source: NHS England, Patients Registered at a GP Practice",
    ),
    ("gplake.schema_version", "1"),
];

const SNAPSHOT: Column = col(
    "snapshot_date",
    Kind::Date,
    false,
    "First day of the month the counts describe (the release month)",
);
const PRACTICE: Column = col(
    "practice_code",
    Kind::Text,
    false,
    "GP practice ODS code, e.g. A81001",
);
const SEX: Column = col(
    "sex",
    Kind::Text,
    false,
    "MALE or FEMALE (no ALL subtotal rows are stored)",
);
const POPULATION: Column = col(
    "registered_population",
    Kind::Int,
    false,
    "Patients registered; zero cells are not stored, so a missing row means 0",
);
const MASKABLE_POPULATION: Column = col(
    "registered_population",
    Kind::Int,
    true,
    "Patients registered; zero cells are not stored, so a missing row means 0; NULL only for a cell the publisher masked (suppressed)",
);
const SUPPRESSED: Column = col(
    "suppressed",
    Kind::Bool,
    false,
    "True when the publisher masked the cell (`*` or blank in a pre-2017 wide file): the count is unknown, never 0",
);
const SOURCE_FILE: Column = col(
    "source_file",
    Kind::Text,
    false,
    "Bronze file (and ZIP member) the row was read from",
);
const SOURCE_SHA: Column = col(
    "source_sha256",
    Kind::Text,
    false,
    "SHA-256 of that bronze file",
);

/// Descriptive text columns: shown, rarely filtered on, and never worth a data-skipping
/// range (a data file holds thousands of practices in code order). The silver writers keep
/// no Parquet statistics for them.
pub const UNFILTERED: [&str; 6] = [
    "practice_name",
    "practice_postcode",
    "region_name",
    "sub_icb_name",
    "source_file",
    "source_sha256",
];

/// The practice attributes shared by the fact tables, as published in the month.
const ATTRS: [Column; 11] = [
    col(
        "practice_name",
        Kind::Text,
        true,
        "Practice name from the month's map file (NULL when the release has no map)",
    ),
    col(
        "practice_postcode",
        Kind::Text,
        true,
        "Practice postcode as published",
    ),
    col(
        "pcn_code",
        Kind::Text,
        true,
        "Primary care network code as published in the month (U = unallocated)",
    ),
    col(
        "sub_icb_code",
        Kind::Text,
        true,
        "Sub-ICB location code as published in the month (the CCG code before July 2022)",
    ),
    col(
        "sub_icb_ons_code",
        Kind::Text,
        true,
        "ONS code of the sub-ICB location (E38…)",
    ),
    col(
        "icb_code",
        Kind::Text,
        true,
        "ICB code as published in the month (the STP code before July 2022)",
    ),
    col(
        "icb_ons_code",
        Kind::Text,
        true,
        "ONS code of the ICB (E54…)",
    ),
    col(
        "region_code",
        Kind::Text,
        true,
        "NHS England commissioning region code (Y56…Y63), the stable region key",
    ),
    col("region_name", Kind::Text, true, "Region name as published"),
    col(
        "region_ons_code",
        Kind::Text,
        true,
        "ONS code of the region as published (changed in 2026)",
    ),
    col(
        "sub_icb_name",
        Kind::Text,
        true,
        "Sub-ICB location (CCG) name as published",
    ),
];

macro_rules! fact_columns {
    ($age:expr) => {
        &[
            SNAPSHOT,
            PRACTICE,
            ATTRS[0],
            ATTRS[1],
            ATTRS[2],
            ATTRS[3],
            ATTRS[4],
            ATTRS[5],
            ATTRS[6],
            ATTRS[7],
            ATTRS[8],
            SEX,
            $age,
            MASKABLE_POPULATION,
            SUPPRESSED,
            SOURCE_FILE,
            SOURCE_SHA,
        ]
    };
}

/// Practice × sex × 5-year band, monthly.
pub const FACT_QUINARY: TableDef = TableDef {
    path: "silver/fact_gp_registered_patients",
    name: "fact_gp_registered_patients",
    comment: "Patients registered at each GP practice by sex and 5-year age band, monthly (leaf rows only: totals are sums)",
    partition: Some("snapshot_date"),
    columns: fact_columns!(AGE_BAND),
};

/// Practice × sex × single year of age, monthly.
pub const FACT_SINGLE_AGE: TableDef = TableDef {
    path: "silver/fact_gp_registered_patients_single_age",
    name: "fact_gp_registered_patients_single_age",
    comment: "Patients registered at each GP practice by sex and single year of age, monthly (leaf rows only)",
    partition: Some("snapshot_date"),
    columns: fact_columns!(AGE_YEAR),
};

/// Practice × LSOA × sex, quarterly.
pub const FACT_LSOA: TableDef = TableDef {
    path: "silver/fact_gp_registered_patients_lsoa",
    name: "fact_gp_registered_patients_lsoa",
    comment: "Patients registered at each GP practice by patients' LSOA of residence and sex, quarterly",
    partition: Some("snapshot_date"),
    columns: &[
        SNAPSHOT,
        PRACTICE,
        col(
            "practice_name",
            Kind::Text,
            true,
            "Practice name as published in the LSOA file",
        ),
        col(
            "lsoa_code",
            Kind::Text,
            false,
            "LSOA code as published (E01…, W01…; NO2011 = no 2011 LSOA, CLOSED = invalid postcode under PDS)",
        ),
        col(
            "lsoa_vintage",
            Kind::Int,
            false,
            "LSOA boundaries the codes refer to: 2011 or 2021",
        ),
        SEX,
        POPULATION,
        SOURCE_FILE,
        SOURCE_SHA,
    ],
};

const AGE_BAND: Column = col(
    "age_band",
    Kind::Text,
    false,
    "5-year age band: 0-4 … 90-94, 95+",
);
const AGE_YEAR: Column = col("age", Kind::Text, false, "Single year of age: 0 … 94, 95+");
const ORG_TYPE: Column = col(
    "org_type",
    Kind::Text,
    false,
    "REGION, ICB (STP before July 2022), SUB_ICB (CCG before July 2022) or PCN, normalised across eras",
);
const ORG_CODE: Column = col(
    "org_code",
    Kind::Text,
    false,
    "Organisation code as published (region Y56…, ICB Q…, sub-ICB 00L…, PCN U…)",
);
const ORG_ONS: Column = col(
    "ons_code",
    Kind::Text,
    true,
    "ONS code of the organisation as published (NULL for PCNs and when not given)",
);

/// Published organisation × sex × 5-year band, monthly (the organisation rows of the quinary files).
pub const FACT_ORG_QUINARY: TableDef = TableDef {
    path: "silver/fact_org_registered_patients",
    name: "fact_org_registered_patients",
    comment: "Patients registered per organisation (region, ICB, sub-ICB, PCN) by sex and 5-year age band, as published in the quinary files' organisation rows (leaf rows only; levels nest: sum one org_type at a time)",
    partition: Some("snapshot_date"),
    columns: &[
        SNAPSHOT,
        ORG_TYPE,
        ORG_CODE,
        ORG_ONS,
        SEX,
        AGE_BAND,
        POPULATION,
        SOURCE_FILE,
        SOURCE_SHA,
    ],
};

/// Published organisation × sex × single year of age, monthly (the organisation single-age file).
pub const FACT_ORG_SINGLE_AGE: TableDef = TableDef {
    path: "silver/fact_org_registered_patients_single_age",
    name: "fact_org_registered_patients_single_age",
    comment: "Patients registered per organisation (region, ICB, sub-ICB, PCN) by sex and single year of age, as published in the organisation single-age file (leaf rows only; levels nest: sum one org_type at a time)",
    partition: Some("snapshot_date"),
    columns: &[
        SNAPSHOT,
        ORG_TYPE,
        ORG_CODE,
        ORG_ONS,
        SEX,
        AGE_YEAR,
        POPULATION,
        SOURCE_FILE,
        SOURCE_SHA,
    ],
};

/// Practice attributes as published each month (from the map, else the practice files).
pub const PRACTICE_SNAPSHOT: TableDef = TableDef {
    path: "silver/practice_snapshot",
    name: "practice_snapshot",
    comment: "Each practice's name and organisations as published in each month (the input of dim_practice and dim_organisation)",
    partition: Some("snapshot_date"),
    columns: &[
        SNAPSHOT,
        PRACTICE,
        ATTRS[0],
        ATTRS[1],
        ATTRS[2],
        col("pcn_name", Kind::Text, true, "PCN name"),
        ATTRS[3],
        ATTRS[4],
        ATTRS[10],
        ATTRS[5],
        ATTRS[6],
        col("icb_name", Kind::Text, true, "ICB (STP) name"),
        ATTRS[7],
        ATTRS[9],
        ATTRS[8],
        col(
            "supplier_name",
            Kind::Text,
            true,
            "GP system supplier (maps from 2026)",
        ),
        col(
            "attributes_from",
            Kind::Text,
            false,
            "Which file the attributes came from: map, practice_totals or the age file",
        ),
        col(
            "registered_population",
            Kind::Int,
            true,
            "The practice's patients in the month, as published: from the practice totals file when the month has one, else the wide files' total (before 2017), else the sum of its age rows (see total_from)",
        ),
        col(
            "male",
            Kind::Int,
            true,
            "Male patients (sum of the age rows); NULL when the month's files give no split by sex",
        ),
        col(
            "female",
            Kind::Int,
            true,
            "Female patients (sum of the age rows); NULL when the month's files give no split by sex",
        ),
        col(
            "total_from",
            Kind::Text,
            true,
            "Which file gave registered_population: practice_totals, wide_total, quinary or single_age",
        ),
    ],
};

/// Practices, SCD type 2.
pub const DIM_PRACTICE: TableDef = TableDef {
    path: "silver/dim_practice",
    name: "dim_practice",
    comment: "GP practices, one row per version (SCD type 2): a new version whenever name, postcode, PCN, sub-ICB, ICB or region changes",
    partition: None,
    columns: &[
        PRACTICE,
        ATTRS[0],
        ATTRS[1],
        ATTRS[2],
        col("pcn_name", Kind::Text, true, "PCN name"),
        ATTRS[3],
        ATTRS[4],
        ATTRS[10],
        ATTRS[5],
        ATTRS[6],
        col("icb_name", Kind::Text, true, "ICB (STP) name"),
        ATTRS[7],
        ATTRS[9],
        ATTRS[8],
        col(
            "valid_from",
            Kind::Date,
            false,
            "First snapshot month of this version",
        ),
        col(
            "valid_to",
            Kind::Date,
            true,
            "First snapshot month no longer described by this version (exclusive); NULL while current",
        ),
        col(
            "is_current",
            Kind::Bool,
            false,
            "True for the version in the latest month the practice appears in",
        ),
    ],
};

/// Organisations above practices, effective-dated.
pub const DIM_ORGANISATION: TableDef = TableDef {
    path: "silver/dim_organisation",
    name: "dim_organisation",
    comment: "PCNs, sub-ICB locations (CCGs), ICBs (STPs) and regions with names, ONS codes and parents, one row per version",
    partition: None,
    columns: &[
        col("org_type", Kind::Text, false, "PCN, SUB_ICB, ICB or REGION"),
        col(
            "org_code",
            Kind::Text,
            false,
            "ODS code (Y-code for regions)",
        ),
        col("org_name", Kind::Text, true, "Name as published"),
        col(
            "ons_code",
            Kind::Text,
            true,
            "ONS code (E38 sub-ICB, E54 ICB, E40 region)",
        ),
        col(
            "parent_code",
            Kind::Text,
            true,
            "The organisation above: PCN → sub-ICB → ICB → region",
        ),
        col(
            "valid_from",
            Kind::Date,
            false,
            "First snapshot month of this version",
        ),
        col(
            "valid_to",
            Kind::Date,
            true,
            "First snapshot month no longer described (exclusive); NULL while current",
        ),
        col(
            "is_current",
            Kind::Bool,
            false,
            "True for versions seen in the latest month",
        ),
    ],
};

/// Conformed age bands.
pub const DIM_AGE_BAND: TableDef = TableDef {
    path: "silver/dim_age_band",
    name: "dim_age_band",
    comment: "Conformed ages: single year ↔ 5-year band ↔ 10-year band",
    partition: None,
    columns: &[
        col(
            "age",
            Kind::Text,
            false,
            "Single year as in the single-age fact: 0 … 94, 95+",
        ),
        col(
            "age_years",
            Kind::Int,
            false,
            "The age as a number (95 for 95+)",
        ),
        col(
            "age_band",
            Kind::Text,
            false,
            "5-year band as in fact_gp_registered_patients",
        ),
        col(
            "age_band_10",
            Kind::Text,
            false,
            "10-year band: 0-9 … 80-89, 90+",
        ),
        col(
            "band_order",
            Kind::Int,
            false,
            "Sort key of the 5-year band",
        ),
    ],
};

/// Rows that could not be read.
pub const QUARANTINE: TableDef = TableDef {
    path: "silver/_quarantine",
    name: "quarantine",
    comment: "Rows that could not be parsed, with file, line, raw text and reason",
    partition: Some("snapshot_date"),
    columns: &[
        SNAPSHOT,
        col(
            "source_file",
            Kind::Text,
            false,
            "Bronze file (and ZIP member)",
        ),
        col("line", Kind::Int, false, "1-based line number"),
        col("raw", Kind::Text, false, "The row's text"),
        col("reason", Kind::Text, false, "Why it could not be read"),
        col(
            "recorded_at",
            Kind::Timestamp,
            false,
            "When the build recorded it",
        ),
    ],
};

/// Quality and reconciliation results, appended by every build and check.
pub const QUALITY: TableDef = TableDef {
    path: "_meta/quality",
    name: "quality",
    comment: "Data-quality and reconciliation results per month and rule",
    partition: None,
    columns: &[
        col("checked_at", Kind::Timestamp, false, "When the rule ran"),
        col(
            "snapshot_date",
            Kind::Date,
            true,
            "The month checked (NULL for series-wide rules)",
        ),
        col("rule", Kind::Text, false, "Rule name"),
        col(
            "severity",
            Kind::Text,
            false,
            "error (keeps the month out of silver) or warning",
        ),
        col(
            "passed",
            Kind::Bool,
            false,
            "True when the rule held (also true when it was skipped: nothing was kept out)",
        ),
        col(
            "skipped",
            Kind::Bool,
            false,
            "True when the rule could not be made because a file family it needs is absent from the release",
        ),
        col(
            "table_name",
            Kind::Text,
            true,
            "The one table a failed error keeps out for the month (NULL: the whole month)",
        ),
        col(
            "subject",
            Kind::Text,
            true,
            "Practice, organisation or file concerned",
        ),
        col("expected", Kind::Int, true, "Expected figure"),
        col("actual", Kind::Int, true, "Figure found"),
        col("message", Kind::Text, false, "What was checked or found"),
    ],
};

/// Per-file row accounting.
pub const FILES: TableDef = TableDef {
    path: "_meta/files",
    name: "files",
    comment: "Row accounting per bronze file of each month's latest build: rows_read = rows_written + rows_zero + rows_subtotal + rows_quarantined",
    partition: Some("snapshot_date"),
    columns: &[
        col(
            "built_at",
            Kind::Timestamp,
            false,
            "When the build read the file",
        ),
        SNAPSHOT,
        col(
            "source_file",
            Kind::Text,
            false,
            "Bronze file (and ZIP member)",
        ),
        col(
            "source_sha256",
            Kind::Text,
            false,
            "SHA-256 of the bronze file",
        ),
        col("family", Kind::Text, false, "File family"),
        col(
            "used",
            Kind::Bool,
            false,
            "False when another set of the family was chosen (dual-source months)",
        ),
        col("rows_read", Kind::Int, false, "Count cells read"),
        col(
            "rows_written",
            Kind::Int,
            false,
            "Leaf rows written to a fact table",
        ),
        col(
            "rows_zero",
            Kind::Int,
            false,
            "Zero-count leaf rows (not stored)",
        ),
        col(
            "rows_subtotal",
            Kind::Int,
            false,
            "ALL rows and organisation aggregates (checked, not stored)",
        ),
        col(
            "rows_quarantined",
            Kind::Int,
            false,
            "Rows that could not be read",
        ),
    ],
};

/// Every table of the lake, in the order engines register them: silver, gold, metadata.
pub const LAKE_TABLES: [TableDef; 14] = [
    FACT_QUINARY,
    FACT_SINGLE_AGE,
    FACT_LSOA,
    FACT_ORG_QUINARY,
    FACT_ORG_SINGLE_AGE,
    PRACTICE_SNAPSHOT,
    DIM_PRACTICE,
    DIM_ORGANISATION,
    DIM_AGE_BAND,
    QUARANTINE,
    PRACTICE_LIST_SIZE,
    ORG_POPULATION,
    QUALITY,
    FILES,
];

/// The tables derived from silver after each build: dimensions and gold.
pub const DERIVED_TABLES: [TableDef; 5] = [
    DIM_PRACTICE,
    DIM_ORGANISATION,
    DIM_AGE_BAND,
    PRACTICE_LIST_SIZE,
    ORG_POPULATION,
];

impl TableDef {
    /// The Arrow schema of the table's batches.
    pub fn arrow_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| {
                let t = match c.kind {
                    Kind::Text => ArrowType::Utf8,
                    Kind::Int => ArrowType::Int64,
                    Kind::Date => ArrowType::Date32,
                    Kind::Bool => ArrowType::Boolean,
                    Kind::Timestamp => {
                        ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
                    }
                };
                Field::new(c.name, t, c.nullable)
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// The Delta columns, each with its comment.
    pub fn delta_fields(&self) -> Vec<StructField> {
        self.columns
            .iter()
            .map(|c| {
                let t = match c.kind {
                    Kind::Text => DataType::STRING,
                    Kind::Int => DataType::LONG,
                    Kind::Date => DataType::DATE,
                    Kind::Bool => DataType::BOOLEAN,
                    Kind::Timestamp => DataType::TIMESTAMP,
                };
                StructField::new(c.name, t, c.nullable)
                    .with_metadata([("comment", MetadataValue::String(c.comment.to_string()))])
            })
            .collect()
    }
}

// Gold: analyst tables derived from silver.

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
        col(
            "registered_population",
            Kind::Int,
            false,
            "All patients, as published (see total_from)",
        ),
        col(
            "male",
            Kind::Int,
            true,
            "Male patients (NULL when the month's files give no split by sex)",
        ),
        col(
            "female",
            Kind::Int,
            true,
            "Female patients (NULL when the month's files give no split by sex)",
        ),
        col(
            "total_from",
            Kind::Text,
            false,
            "Which file gave the total: practice_totals, wide_total, quinary or single_age",
        ),
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
    comment: "Registered patients per PCN, sub-ICB, ICB and region and month: the publisher's figure, the sum of the practices as published, and restated to the latest geography",
    partition: None,
    columns: &[
        col("snapshot_date", Kind::Date, false, "The month"),
        col(
            "basis",
            Kind::Text,
            false,
            "published (the publisher's organisation rows), as_published (Σ practices with that month's organisations) or latest_geography (Σ practices with each practice's latest organisations)",
        ),
        col("org_type", Kind::Text, false, "PCN, SUB_ICB, ICB or REGION"),
        col("org_code", Kind::Text, false, "Organisation code"),
        col("org_name", Kind::Text, true, "Latest published name"),
        col("registered_population", Kind::Int, false, "All patients"),
        col(
            "male",
            Kind::Int,
            true,
            "Male patients (NULL when some practice's month gives no split by sex)",
        ),
        col(
            "female",
            Kind::Int,
            true,
            "Female patients (NULL when some practice's month gives no split by sex)",
        ),
        col(
            "difference_from_published",
            Kind::Int,
            true,
            "On as_published rows: registered_population minus the published figure (NULL when the month publishes none for the organisation)",
        ),
    ],
};
