#!/usr/bin/env python3
"""Reads a gplake lake with the Python `deltalake` package and pyarrow -- an independent
reader of the Delta log and Parquet files -- and prints, as JSON, the registered population
per table and month, plus row counts and the table properties.

usage: independent_totals.py LAKE_URL   (a folder, or s3://bucket/prefix with AWS_* set)
"""
import json
import os
import sys

import pyarrow.compute as pc
from deltalake import DeltaTable

TABLES = [
    "fact_gp_registered_patients",
    "fact_gp_registered_patients_single_age",
    "fact_gp_registered_patients_lsoa",
]


def storage_options(url):
    if not url.startswith("s3://"):
        return None
    keys = ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ALLOW_HTTP"]
    return {k: os.environ[k] for k in keys if k in os.environ}


def main():
    lake = sys.argv[1].rstrip("/")
    out = {}
    for name in TABLES:
        table = DeltaTable(f"{lake}/silver/{name}", storage_options=storage_options(lake))
        data = table.to_pyarrow_table(columns=["snapshot_date", "registered_population"])
        grouped = data.group_by("snapshot_date").aggregate([("registered_population", "sum"), ("registered_population", "count")])
        rows = {
            str(d): {"total": int(t), "rows": int(c)}
            for d, t, c in zip(
                grouped["snapshot_date"].to_pylist(),
                grouped["registered_population_sum"].to_pylist(),
                grouped["registered_population_count"].to_pylist(),
            )
        }
        out[name] = {
            "months": dict(sorted(rows.items())),
            "licence": table.metadata().configuration.get("gplake.licence"),
            "total": int(pc.sum(data["registered_population"]).as_py() or 0),
        }
    print(json.dumps(out, indent=1, sort_keys=True))
    sys.stdout.flush()
    # pyarrow's thread pools can abort at interpreter exit; the answer is already out.
    os._exit(0)


if __name__ == "__main__":
    main()
