-- gplake: register the lake at s3://nhs-lake/gp in Amazon Athena / AWS Glue.
-- Data: NHS England, Patients Registered at a GP Practice. Open Government Licence v3.0.
CREATE DATABASE IF NOT EXISTS gplake;

-- Patients registered at each GP practice by sex and 5-year age band, monthly (leaf rows only: totals are sums)
CREATE EXTERNAL TABLE IF NOT EXISTS gplake.fact_gp_registered_patients
LOCATION 's3://nhs-lake/gp/silver/fact_gp_registered_patients/'
TBLPROPERTIES ('table_type' = 'DELTA');

-- Patients registered at each GP practice by sex and single year of age, monthly (leaf rows only)
CREATE EXTERNAL TABLE IF NOT EXISTS gplake.fact_gp_registered_patients_single_age
LOCATION 's3://nhs-lake/gp/silver/fact_gp_registered_patients_single_age/'
TBLPROPERTIES ('table_type' = 'DELTA');

-- Patients registered at each GP practice by patients' LSOA of residence and sex, quarterly
CREATE EXTERNAL TABLE IF NOT EXISTS gplake.fact_gp_registered_patients_lsoa
LOCATION 's3://nhs-lake/gp/silver/fact_gp_registered_patients_lsoa/'
TBLPROPERTIES ('table_type' = 'DELTA');

-- Patients registered per organisation (region, ICB, sub-ICB, PCN) by sex and 5-year age band, as published in the quinary files' organisation rows (leaf rows only; levels nest: sum one org_type at a time)
CREATE EXTERNAL TABLE IF NOT EXISTS gplake.fact_org_registered_patients
LOCATION 's3://nhs-lake/gp/silver/fact_org_registered_patients/'
TBLPROPERTIES ('table_type' = 'DELTA');

-- Patients registered per organisation (region, ICB, sub-ICB, PCN) by sex and single year of age, as published in the organisation single-age file (leaf rows only; levels nest: sum one org_type at a time)
CREATE EXTERNAL TABLE IF NOT EXISTS gplake.fact_org_registered_patients_single_age
LOCATION 's3://nhs-lake/gp/silver/fact_org_registered_patients_single_age/'
TBLPROPERTIES ('table_type' = 'DELTA');

-- Each practice's name and organisations as published in each month (the input of dim_practice and dim_organisation)
CREATE EXTERNAL TABLE IF NOT EXISTS gplake.practice_snapshot
LOCATION 's3://nhs-lake/gp/silver/practice_snapshot/'
TBLPROPERTIES ('table_type' = 'DELTA');

-- GP practices, one row per version (SCD type 2): a new version whenever name, postcode, PCN, sub-ICB, ICB or region changes
CREATE EXTERNAL TABLE IF NOT EXISTS gplake.dim_practice
LOCATION 's3://nhs-lake/gp/silver/dim_practice/'
TBLPROPERTIES ('table_type' = 'DELTA');

-- PCNs, sub-ICB locations (CCGs), ICBs (STPs) and regions with names, ONS codes and parents, one row per version
CREATE EXTERNAL TABLE IF NOT EXISTS gplake.dim_organisation
LOCATION 's3://nhs-lake/gp/silver/dim_organisation/'
TBLPROPERTIES ('table_type' = 'DELTA');

-- Conformed ages: single year ↔ 5-year band ↔ 10-year band
CREATE EXTERNAL TABLE IF NOT EXISTS gplake.dim_age_band
LOCATION 's3://nhs-lake/gp/silver/dim_age_band/'
TBLPROPERTIES ('table_type' = 'DELTA');

-- Rows that could not be parsed, with file, line, raw text and reason
CREATE EXTERNAL TABLE IF NOT EXISTS gplake.quarantine
LOCATION 's3://nhs-lake/gp/silver/_quarantine/'
TBLPROPERTIES ('table_type' = 'DELTA');

-- Registered patients per practice and month: total, male, female, change from the previous month, quality flags
CREATE EXTERNAL TABLE IF NOT EXISTS gplake.practice_list_size_monthly
LOCATION 's3://nhs-lake/gp/gold/practice_list_size_monthly/'
TBLPROPERTIES ('table_type' = 'DELTA');

-- Registered patients per PCN, sub-ICB, ICB and region and month: the publisher's figure, the sum of the practices as published, and restated to the latest geography
CREATE EXTERNAL TABLE IF NOT EXISTS gplake.org_population_monthly
LOCATION 's3://nhs-lake/gp/gold/org_population_monthly/'
TBLPROPERTIES ('table_type' = 'DELTA');

-- Data-quality and reconciliation results per month and rule
CREATE EXTERNAL TABLE IF NOT EXISTS gplake.quality
LOCATION 's3://nhs-lake/gp/_meta/quality/'
TBLPROPERTIES ('table_type' = 'DELTA');

-- Row accounting per bronze file of each month's latest build: rows_read = rows_written + rows_zero + rows_subtotal + rows_quarantined
CREATE EXTERNAL TABLE IF NOT EXISTS gplake.files
LOCATION 's3://nhs-lake/gp/_meta/files/'
TBLPROPERTIES ('table_type' = 'DELTA');
