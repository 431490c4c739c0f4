-- gplake: register the lake at s3://nhs-lake/gp in DuckDB.
-- Data: NHS England, Patients Registered at a GP Practice. Open Government Licence v3.0.
-- Once per machine, with internet: INSTALL delta;
LOAD delta;
-- S3 credentials from the usual AWS chain:
CREATE SECRET IF NOT EXISTS gplake_s3 (TYPE S3, PROVIDER credential_chain);

-- Patients registered at each GP practice by sex and 5-year age band, monthly (leaf rows only: totals are sums)
CREATE OR REPLACE VIEW fact_gp_registered_patients AS SELECT * FROM delta_scan('s3://nhs-lake/gp/silver/fact_gp_registered_patients');

-- Patients registered at each GP practice by sex and single year of age, monthly (leaf rows only)
CREATE OR REPLACE VIEW fact_gp_registered_patients_single_age AS SELECT * FROM delta_scan('s3://nhs-lake/gp/silver/fact_gp_registered_patients_single_age');

-- Patients registered at each GP practice by patients' LSOA of residence and sex, quarterly
CREATE OR REPLACE VIEW fact_gp_registered_patients_lsoa AS SELECT * FROM delta_scan('s3://nhs-lake/gp/silver/fact_gp_registered_patients_lsoa');

-- Patients registered per organisation (region, ICB, sub-ICB, PCN) by sex and 5-year age band, as published in the quinary files' organisation rows (leaf rows only; levels nest: sum one org_type at a time)
CREATE OR REPLACE VIEW fact_org_registered_patients AS SELECT * FROM delta_scan('s3://nhs-lake/gp/silver/fact_org_registered_patients');

-- Patients registered per organisation (region, ICB, sub-ICB, PCN) by sex and single year of age, as published in the organisation single-age file (leaf rows only; levels nest: sum one org_type at a time)
CREATE OR REPLACE VIEW fact_org_registered_patients_single_age AS SELECT * FROM delta_scan('s3://nhs-lake/gp/silver/fact_org_registered_patients_single_age');

-- Each practice's name and organisations as published in each month (the input of dim_practice and dim_organisation)
CREATE OR REPLACE VIEW practice_snapshot AS SELECT * FROM delta_scan('s3://nhs-lake/gp/silver/practice_snapshot');

-- GP practices, one row per version (SCD type 2): a new version whenever name, postcode, PCN, sub-ICB, ICB or region changes
CREATE OR REPLACE VIEW dim_practice AS SELECT * FROM delta_scan('s3://nhs-lake/gp/silver/dim_practice');

-- PCNs, sub-ICB locations (CCGs), ICBs (STPs) and regions with names, ONS codes and parents, one row per version
CREATE OR REPLACE VIEW dim_organisation AS SELECT * FROM delta_scan('s3://nhs-lake/gp/silver/dim_organisation');

-- Conformed ages: single year ↔ 5-year band ↔ 10-year band
CREATE OR REPLACE VIEW dim_age_band AS SELECT * FROM delta_scan('s3://nhs-lake/gp/silver/dim_age_band');

-- Rows that could not be parsed, with file, line, raw text and reason
CREATE OR REPLACE VIEW quarantine AS SELECT * FROM delta_scan('s3://nhs-lake/gp/silver/_quarantine');

-- Registered patients per practice and month: total, male, female, change from the previous month, quality flags
CREATE OR REPLACE VIEW practice_list_size_monthly AS SELECT * FROM delta_scan('s3://nhs-lake/gp/gold/practice_list_size_monthly');

-- Registered patients per PCN, sub-ICB, ICB and region and month: the publisher's figure, the sum of the practices as published, and restated to the latest geography
CREATE OR REPLACE VIEW org_population_monthly AS SELECT * FROM delta_scan('s3://nhs-lake/gp/gold/org_population_monthly');

-- Data-quality and reconciliation results per month and rule
CREATE OR REPLACE VIEW quality AS SELECT * FROM delta_scan('s3://nhs-lake/gp/_meta/quality');

-- Row accounting per bronze file of each month's latest build: rows_read = rows_written + rows_zero + rows_subtotal + rows_quarantined
CREATE OR REPLACE VIEW files AS SELECT * FROM delta_scan('s3://nhs-lake/gp/_meta/files');
