"""Baseline: load Postgres `public.orders` into a BigQuery emulator with dlt, timed.

Runs one dlt pipeline (sql_table source, pyarrow backend, parquet files, write
disposition "replace") into a fresh dataset, checks through the emulator's REST
API that `<dataset>.orders` holds the source's row count, and prints one line
of JSON: {"rows": N, "seconds": S}, S being the wall time of `pipeline.run`.
Exits non-zero if the counts differ.

Install (Python 3.11):
    python3 -m venv /root/.cache/migrate-ci/venv/dlt
    /root/.cache/migrate-ci/venv/dlt/bin/pip install 'dlt[bigquery,sql-database,parquet]==1.31.0' \
        psycopg2-binary==2.9.13 pyarrow==26.0.1 SQLAlchemy==2.1.9 google-cloud-bigquery==3.47.0

Reaching the emulator (no GCS staging; dlt uploads each local file with
`Client.load_table_from_file`):
  * endpoint: google-cloud-bigquery reads BIGQUERY_EMULATOR_HOST when dlt builds
    its `bigquery.Client` (dlt passes no client_options), so we set that variable.
  * credentials: dlt accepts a native `google.oauth2.credentials.Credentials`;
    one holding a fixed dummy token never refreshes and the emulator accepts it.
    (AnonymousCredentials is rejected by dlt's credential parsing.)
  * the emulator cannot read gzip-compressed JSONL, which dlt uses for its
    `_dlt_pipeline_state` table, so compression is disabled.
  * dlt telemetry is turned off (no internet here).

Example:
    python benches/dlt_pg_to_bigquery.py --pg-url postgresql://postgres@127.0.0.1:5432/bench_bq_src \
        --endpoint http://127.0.0.1:57965 --project test-project --dataset dlt_bench_1
"""

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
import warnings


def bq_count(endpoint: str, project: str, dataset: str, table: str) -> int:
    body = json.dumps(
        {"query": f"SELECT COUNT(*) FROM `{dataset}.{table}`", "useLegacySql": False}
    ).encode()
    req = urllib.request.Request(
        f"{endpoint}/bigquery/v2/projects/{project}/queries",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        out = json.load(resp)
    return int(out["rows"][0]["f"][0]["v"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg-url", required=True)
    ap.add_argument("--endpoint", required=True, help="e.g. http://127.0.0.1:57965")
    ap.add_argument("--project", required=True)
    ap.add_argument("--dataset", required=True, help="fresh dataset, e.g. dlt_bench_1")
    ap.add_argument("--table", default="orders")
    args = ap.parse_args()
    endpoint = args.endpoint.rstrip("/")

    os.environ["BIGQUERY_EMULATOR_HOST"] = endpoint
    os.environ["NORMALIZE__DATA_WRITER__DISABLE_COMPRESSION"] = "true"
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    warnings.filterwarnings("ignore", message="Cannot create BigQuery Storage client")

    import dlt
    import sqlalchemy as sa
    from dlt.sources.sql_database import sql_table
    from google.oauth2.credentials import Credentials

    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; we ship psycopg2.
    pg_url = args.pg_url
    if pg_url.startswith(("postgresql://", "postgres://")):
        pg_url = "postgresql+psycopg2://" + pg_url.split("://", 1)[1]

    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        src_rows = conn.execute(sa.text(f"SELECT count(*) FROM public.{args.table}")).scalar_one()

    destination = dlt.destinations.bigquery(
        credentials=Credentials(token="emulator", quota_project_id=args.project),
        project_id=args.project,
        location="US",
    )
    with tempfile.TemporaryDirectory(prefix="dlt_bench_") as pipelines_dir:
        pipeline = dlt.pipeline(
            pipeline_name=f"pg_to_bq_{args.dataset}",
            pipelines_dir=pipelines_dir,
            destination=destination,
            dataset_name=args.dataset,
        )
        source = sql_table(
            credentials=engine, schema="public", table=args.table, backend="pyarrow"
        )
        started = time.perf_counter()
        info = pipeline.run(source, write_disposition="replace", loader_file_format="parquet")
        seconds = time.perf_counter() - started
        info.raise_on_failed_jobs()
        steps = {
            s.step: round((s.finished_at - s.started_at).total_seconds(), 3)
            for s in pipeline.last_trace.steps
        }
        print(f"dlt steps (s): {steps}", file=sys.stderr)

    dst_rows = bq_count(endpoint, args.project, args.dataset, args.table)
    if dst_rows != src_rows:
        print(f"row count mismatch: source {src_rows}, destination {dst_rows}", file=sys.stderr)
        return 1
    print(json.dumps({"rows": dst_rows, "seconds": round(seconds, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
