#!/usr/bin/env python3
"""Runs the statements of `gplake ddl --engine duckdb` in a real DuckDB (duckdb==1.5.5 with
the delta extension loaded from the duckdb-extension-delta package, which works offline),
then prints the registered population per month of the main fact table as JSON.

usage: duckdb_totals.py DDL_FILE
"""
import json
import os
import sys

import duckdb
import duckdb_extension_delta


def main():
    ddl = open(sys.argv[1]).read()
    ext = os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "v" + duckdb.__version__, "delta.duckdb_extension")
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{ext}'")
    con.execute(ddl)
    rows = con.execute(
        "SELECT CAST(snapshot_date AS VARCHAR), SUM(registered_population)::BIGINT, COUNT(*) "
        "FROM fact_gp_registered_patients GROUP BY 1 ORDER BY 1"
    ).fetchall()
    gold = con.execute("SELECT SUM(registered_population)::BIGINT FROM practice_list_size_monthly").fetchone()[0]
    print(json.dumps({"months": {d: {"total": t, "rows": n} for d, t, n in rows}, "gold_total": gold}, sort_keys=True))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
