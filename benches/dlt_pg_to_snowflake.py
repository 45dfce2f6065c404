"""Baseline: load Postgres `public.orders` into a Snowflake emulator (fakesnow) with dlt, timed.

Runs one dlt pipeline (sql_table source, pyarrow backend, Parquet files, write disposition
"replace") into dataset `<schema lower-cased>`, which dlt creates as Snowflake schema
`<SCHEMA>` (dlt upper-cases identifiers). The data lands in table "ORDERS" with columns
"ID", "CUSTOMER_ID", "TOTAL", "PLACED", "STATUS" (no _dlt columns: the arrow path adds
none), next to dlt's own "_DLT_LOADS", "_DLT_VERSION" and "_DLT_PIPELINE_STATE". Each Parquet
file goes through the table stage: `PUT file://… @"<SCHEMA>"."%ORDERS"/"<load id>"`, then
`COPY INTO … FILE_FORMAT = (TYPE = 'PARQUET' …) MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE`.
Afterwards it counts "ORDERS" through dlt's Snowflake connection and exits 1 unless that
equals the Postgres row count. Prints nothing on stdout; one summary line on stderr.

Install (Python 3.11):
    python3 -m venv /root/.cache/migrate-ci/venv/dlt-snowflake
    /root/.cache/migrate-ci/venv/dlt-snowflake/bin/pip install \\
        'dlt[snowflake,sql-database,parquet]==1.31.0' snowflake-connector-python==4.8.1 \\
        psycopg2-binary==2.9.13 pyarrow==26.0.1 SQLAlchemy==2.1.9
(snowflake-connector-python 5.x logs in through a new native core that needs a master
token, which fakesnow does not send, hence the 4.8.1 pin.)

Reaching the emulator (fakesnow 0.12.1 in server mode, `fakesnow -s -p PORT`):
  * endpoint: dlt hands its credentials' `query` dict to snowflake.connector.connect
    (SnowflakeCredentials.to_connector_params), so `query` carries host, port and
    protocol='http'; credentials' `host` is the account name ('test'), user/password are
    arbitrary. fakesnow creates the database on login.
  * fakesnow runs one statement per request, so the destination is given the
    capability `supports_multiple_statements=False` (dlt then sends its DDL one by one).
  * `preferred_loader_file_format="parquet"`: dlt writes its `_dlt_pipeline_state` row
    in the preferred format, JSONL by default, which fakesnow's COPY cannot load into
    columns; as Parquet it loads like the data.
  * fakesnow's SQL parser rejects three spellings dlt uses for PUT/COPY, so every
    statement dlt sends is passed through `fakesnow_sql`, which rewrites them into
    equivalent Snowflake SQL: the PUT target stage as a bare `@…` instead of a quoted
    string, FILE_FORMAT options separated by spaces instead of commas, and
    MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE without quotes.
  * dlt telemetry is turned off (no internet here).

Example:
    python benches/dlt_pg_to_snowflake.py --pg-url postgresql://postgres@127.0.0.1:5432/bench_src \\
        --host 127.0.0.1 --port 18099 --database BENCH --schema DLT
"""

import argparse
import os
import re
import sys
import tempfile
import time


def fakesnow_sql(sql: str) -> str:
    """Respell dlt's PUT/COPY as equivalent Snowflake SQL that fakesnow 0.12.1 parses."""
    sql = re.sub(r"^(PUT\s+'[^']*'\s+)'(@[^']*)'", r"\1\2", sql)
    sql = re.sub(
        r"FILE_FORMAT = \(([^()]*)\)", lambda m: f"FILE_FORMAT = ({m[1].replace(',', '')})", sql
    )
    return re.sub(r"MATCH_BY_COLUMN_NAME='(\w+)'", r"MATCH_BY_COLUMN_NAME=\1", sql)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg-url", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", required=True, type=int)
    ap.add_argument("--database", required=True)
    ap.add_argument("--schema", required=True, help="dlt dataset name = this, lower-cased")
    args = ap.parse_args()

    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"

    import dlt
    import sqlalchemy as sa
    from dlt.destinations.impl.snowflake.sql_client import SnowflakeSqlClient
    from dlt.sources.sql_database import sql_table

    execute_query = SnowflakeSqlClient.execute_query
    SnowflakeSqlClient.execute_query = lambda self, query, *a, **kw: execute_query(
        self, fakesnow_sql(query), *a, **kw
    )

    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; we ship psycopg2.
    pg_url = args.pg_url
    if pg_url.startswith(("postgresql://", "postgres://")):
        pg_url = "postgresql+psycopg2://" + pg_url.split("://", 1)[1]
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        src_rows = conn.execute(sa.text("SELECT count(*) FROM public.orders")).scalar_one()

    destination = dlt.destinations.snowflake(
        credentials={
            "database": args.database,
            "username": "bench",
            "password": "bench",
            "host": "test",  # the account name
            "query": {"host": args.host, "port": args.port, "protocol": "http"},
        },
        supports_multiple_statements=False,
        preferred_loader_file_format="parquet",
    )
    with tempfile.TemporaryDirectory(prefix="dlt_sf_") as pipelines_dir:
        pipeline = dlt.pipeline(
            pipeline_name="pg_to_snowflake",
            pipelines_dir=pipelines_dir,
            destination=destination,
            dataset_name=args.schema.lower(),
        )
        source = sql_table(credentials=engine, schema="public", table="orders", backend="pyarrow")
        started = time.perf_counter()
        info = pipeline.run(source, write_disposition="replace", loader_file_format="parquet")
        seconds = time.perf_counter() - started
        info.raise_on_failed_jobs()
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name("orders")
            dst_rows = client.execute_sql(f"SELECT COUNT(*) FROM {table}")[0][0]

    if dst_rows != src_rows:
        print(f"row count mismatch: source {src_rows}, {table} {dst_rows}", file=sys.stderr)
        return 1
    print(f"dlt: {dst_rows} rows into {table}, pipeline.run {seconds:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
