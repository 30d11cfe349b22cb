"""Healthcheck for the Airflow components without a health endpoint (dag-processor, triggerer).

``python -m local.docker.job_alive TriggererJob`` exits 0 when this container's job of that
type is running and heartbeated within the last 30 s (Airflow's default
``health_check_threshold`` for both): what ``airflow jobs check --job-type TriggererJob
--hostname $HOSTNAME`` answers, read from the metadata database directly, because loading
Airflow for the CLI takes more than 10 s of CPU per check on a 2-core machine.
"""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import unquote, urlsplit

import psycopg2

THRESHOLD_SECONDS = 30
QUERY = """
SELECT count(*) FROM job
WHERE job_type = %s AND hostname = %s AND state = 'running'
  AND latest_heartbeat > now() - make_interval(secs => %s)
"""


def alive(job_type: str, conn_uri: str, hostname: str) -> bool:
    url = urlsplit(conn_uri)
    with (
        psycopg2.connect(
            host=url.hostname,
            port=url.port or 5432,
            user=unquote(url.username or ""),
            password=unquote(url.password or ""),
            dbname=url.path.lstrip("/"),
            connect_timeout=5,
        ) as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute(QUERY, (job_type, hostname, THRESHOLD_SECONDS))
        return cursor.fetchone()[0] == 1


def main(job_type: str) -> int:
    # Airflow records socket.getfqdn() as the job's hostname (its default hostname_callable)
    ok = alive(job_type, os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], socket.getfqdn())
    print(f"{job_type}: {'alive' if ok else 'no alive job'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
