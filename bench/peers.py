"""The peers' side of bench/run: the same core job as `gplake build`, in DuckDB or Polars.

Per month folder: read the quinary file, both single-age files and the map, every column as
text; keep quinary rows with ORG_TYPE = 'GP' and rows whose sex and age are not ALL;
left-join the map on the practice code for name, postcode, PCN, sub-ICB, ICB and region;
cast the count to a 64-bit integer; write one zstd Parquet file per month and family.
Prints {"family": {"YYYY-MM": [sum, rows]}} so bench/run can check the totals against
gplake's own.

usage: peers.py duckdb|polars OUT_DIR MONTH_DIR...
"""

import json
import os
import sys

FAMILIES = {
    "quinary": ("gp-reg-pat-prac-quin-age.csv", "AGE_GROUP_5"),
    "single_age_male": ("gp-reg-pat-prac-sing-age-male.csv", "AGE"),
    "single_age_female": ("gp-reg-pat-prac-sing-age-female.csv", "AGE"),
}
MAP = "gp-reg-pat-prac-map.csv"
# The map by position (its column names change with the era: CCG/STP, then sub-ICB/ICB).
MAP_COLUMNS = {2: "code", 3: "practice_name", 4: "practice_postcode", 5: "pcn_code",
               8: "sub_icb_code", 11: "icb_code", 14: "region_code"}


def duckdb_job(out, months):
    import duckdb
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    totals = {}
    for month_dir in months:
        month = os.path.basename(month_dir)
        map_cols = con.execute(
            f"SELECT * FROM read_csv('{month_dir}/{MAP}', all_varchar=true) LIMIT 0").description
        picks = ", ".join(f'"{map_cols[i][0]}" AS {name}' for i, name in MAP_COLUMNS.items())
        con.execute(f"CREATE OR REPLACE TEMP TABLE map AS SELECT {picks} "
                    f"FROM read_csv('{month_dir}/{MAP}', all_varchar=true)")
        for family, (name, age) in FAMILIES.items():
            gp = "AND ORG_TYPE = 'GP'" if family == "quinary" else ""
            target = f"{out}/{month}-{family}.parquet"
            con.execute(f"""
                COPY (
                  SELECT f.ORG_CODE AS practice_code, m.practice_name, m.practice_postcode,
                         m.pcn_code, m.sub_icb_code, m.icb_code, m.region_code,
                         f.SEX AS sex, f.{age} AS age,
                         CAST(f.NUMBER_OF_PATIENTS AS BIGINT) AS registered_population
                  FROM read_csv('{month_dir}/{name}', all_varchar=true) f
                  LEFT JOIN map m ON m.code = f.ORG_CODE
                  WHERE f.SEX <> 'ALL' AND f.{age} <> 'ALL' {gp}
                ) TO '{target}' (FORMAT parquet, COMPRESSION zstd)""")
            s, n = con.execute(
                f"SELECT SUM(registered_population), COUNT(*) FROM '{target}'").fetchone()
            totals.setdefault(family, {})[month] = [int(s), int(n)]
    return totals


def polars_job(out, months):
    import polars as pl
    totals = {}
    for month_dir in months:
        month = os.path.basename(month_dir)
        raw = pl.read_csv(f"{month_dir}/{MAP}", infer_schema=False)
        cols = raw.columns
        map_df = raw.select([pl.col(cols[i]).alias(name) for i, name in MAP_COLUMNS.items()])
        for family, (name, age) in FAMILIES.items():
            df = pl.scan_csv(f"{month_dir}/{name}", infer_schema=False)
            keep = (pl.col("SEX") != "ALL") & (pl.col(age) != "ALL")
            if family == "quinary":
                keep = keep & (pl.col("ORG_TYPE") == "GP")
            result = (
                df.filter(keep)
                .join(map_df.lazy(), left_on="ORG_CODE", right_on="code", how="left")
                .select(
                    pl.col("ORG_CODE").alias("practice_code"), "practice_name",
                    "practice_postcode", "pcn_code", "sub_icb_code", "icb_code",
                    "region_code", pl.col("SEX").alias("sex"), pl.col(age).alias("age"),
                    pl.col("NUMBER_OF_PATIENTS").cast(pl.Int64).alias("registered_population"),
                )
                .collect()
            )
            result.write_parquet(f"{out}/{month}-{family}.parquet", compression="zstd")
            totals.setdefault(family, {})[month] = [
                int(result["registered_population"].sum()), result.height]
    return totals


def main():
    engine, out, months = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(out, exist_ok=True)
    job = {"duckdb": duckdb_job, "polars": polars_job}[engine]
    print(json.dumps(job(out, sorted(months))))


if __name__ == "__main__":
    main()
