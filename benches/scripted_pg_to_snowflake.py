"""Baseline: Postgres `public.orders` to Snowflake the way a user would script it by hand.

  1. `psql \\copy (SELECT id, customer_id, total, placed, status FROM orders) TO <tmp>/orders.csv CSV`,
     with `placed` written as ISO 8601 with an explicit offset (`2026-01-01T00:00:01.000000+00:00`),
     which Snowflake's CSV loader (TIMESTAMP_INPUT_FORMAT=AUTO) reads as that exact UTC instant
     whatever the session time zone;
  2. snowflake.connector: CREATE SCHEMA IF NOT EXISTS <schema> (unquoted, so upper-cased),
     USE SCHEMA, CREATE OR REPLACE TABLE "ORDERS" ("ID" NUMBER(19,0), "CUSTOMER_ID" NUMBER(19,0),
     "TOTAL" NUMBER(10,2), "PLACED" TIMESTAMP_LTZ(6), "STATUS" VARCHAR, all NOT NULL,
     PRIMARY KEY ("ID")) -- a new table, so COPY's load history starts empty;
  3. `PUT 'file://<tmp>/orders.csv' @%ORDERS` with AUTO_COMPRESS left at its default (TRUE):
     the connector gzips the file itself and stages it as `orders.csv.gz`;
  4. `COPY INTO "ORDERS" FROM @%ORDERS FILE_FORMAT=(TYPE=CSV FIELD_OPTIONALLY_ENCLOSED_BY='"')`,
     then checks that every result row says LOADED with rows_loaded = rows_parsed and that the
     rows loaded add up to the `COPY n` psql reported. Exits 1 otherwise.
Prints nothing on stdout; one summary line on stderr.

Reaching the emulator (fakesnow 0.12.1, `fakesnow -s -p PORT`): snowflake.connector.connect
with account='test', any user/password, host/port from the arguments and protocol='http';
fakesnow creates the database on login. fakesnow answers PUT with a GCS-style presigned URL
pointing back at itself, so the connector's ordinary upload path works unchanged.
fakesnow quirks this stays clear of: the table stage must be written `@%ORDERS` (fakesnow
does not resolve `@%"ORDERS"`); COPY's FILES=(...) fails and PATTERN= crashes on internal
stages, so the whole table stage is loaded (it holds one file, `orders.csv.gz`, overwritten by
each run); the staged name must match the bytes (it does: the connector names its gzip
output `.csv.gz`).

Install: snowflake-connector-python (4.8.1 tested) and `psql` on PATH; the fakesnow venv has
both Python pieces:
    python3 -m venv /root/.cache/migrate-ci/venv/fakesnow
    /root/.cache/migrate-ci/venv/fakesnow/bin/pip install 'fakesnow[server]==0.12.1' \\
        snowflake-connector-python==4.8.1

Example:
    python benches/scripted_pg_to_snowflake.py --pg-url postgres://postgres@127.0.0.1:5432/bench_src \\
        --host 127.0.0.1 --port 18099 --database BENCH --schema SCRIPTED
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import snowflake.connector

EXPORT = (
    "SELECT id, customer_id, total,"
    " to_char(placed AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'), status"
    " FROM orders"
)
CREATE = """CREATE OR REPLACE TABLE "ORDERS" (
    "ID" NUMBER(19,0) NOT NULL,
    "CUSTOMER_ID" NUMBER(19,0) NOT NULL,
    "TOTAL" NUMBER(10,2) NOT NULL,
    "PLACED" TIMESTAMP_LTZ(6) NOT NULL,
    "STATUS" VARCHAR NOT NULL,
    PRIMARY KEY ("ID"))"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg-url", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", required=True, type=int)
    ap.add_argument("--database", required=True)
    ap.add_argument("--schema", required=True)
    args = ap.parse_args()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="scripted_sf_") as tmp:
        csv_path = Path(tmp) / "orders.csv"
        copy = subprocess.run(
            ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", args.pg_url,
             "-c", f"\\copy ({EXPORT}) TO '{csv_path}' CSV"],
            capture_output=True, text=True,
        )
        m = re.search(r"^COPY (\d+)$", copy.stdout, re.M)
        if copy.returncode != 0 or not m:
            print(f"psql \\copy failed: {copy.stderr.strip() or copy.stdout.strip()}", file=sys.stderr)
            return 1
        exported = int(m.group(1))

        conn = snowflake.connector.connect(
            user="bench", password="bench", account="test",
            host=args.host, port=args.port, protocol="http",
            database=args.database, schema=args.schema,
            session_parameters={"TIMEZONE": "UTC"},
        )
        with conn, conn.cursor() as cur:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {args.schema}")
            cur.execute(f"USE SCHEMA {args.schema}")
            cur.execute(CREATE)
            cur.execute(f"PUT 'file://{csv_path}' @%ORDERS")
            put = cur.fetchall()
            cur.execute(
                "COPY INTO \"ORDERS\" FROM @%ORDERS"
                " FILE_FORMAT=(TYPE=CSV FIELD_OPTIONALLY_ENCLOSED_BY='\"')"
            )
            cols = [d[0].lower() for d in cur.description]
            results = [dict(zip(cols, row)) for row in cur.fetchall()]

    loaded = sum(r.get("rows_loaded") or 0 for r in results)
    ok = (
        bool(results)
        and all(r.get("status") == "LOADED" and r["rows_loaded"] == r["rows_parsed"] for r in results)
        and loaded == exported
    )
    if not ok:
        print(f"COPY did not load all {exported} rows: PUT {put}, COPY {results}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    print(f"scripted: {loaded} rows, {len(results)} file(s), {seconds:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
