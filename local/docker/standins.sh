#!/usr/bin/env bash
# Base images for docker-compose.yaml where no image registry is reachable.
#
# A user with Docker Hub pulls the real ones (apache/airflow, postgres) and never runs this.
# Where `docker pull` fails, this builds local stand-ins from Debian's packages and the
# machine's own CPython 3.12, and prints the environment that selects them:
#
#   eval "$(local/docker/standins.sh)"    # sets AIRFLOW_IMAGE / POSTGRES_IMAGE when needed
#
# The stand-ins mimic what the compose file relies on in the real images: apache/airflow runs
# as user airflow (uid 50000) with AIRFLOW_HOME=/opt/airflow and pip on PATH; postgres takes
# POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB and has pg_isready.
set -euo pipefail
cd "$(dirname "$0")"

AIRFLOW_IMAGE="${AIRFLOW_IMAGE:-apache/airflow:3.3.1-python3.12}"
POSTGRES_IMAGE="${POSTGRES_IMAGE:-postgres:16}"
BASE=local/debian-standin:bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PYTHON_HOME="$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12* 2>/dev/null | tail -n 1)"

say() { echo "standins: $*" >&2; }
have() { docker image inspect "$1" >/dev/null 2>&1; }
pullable() { have "$1" || docker pull -q "$1" >/dev/null 2>&1; }

base() {
  have "$BASE" && return
  [ -n "$PYTHON_HOME" ] || { say "no CPython 3.12 under ~/.pyenv/versions to put in the stand-in"; exit 1; }
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >&2
  local rootfs
  rootfs="$(mktemp -d)"
  say "debootstrap bookworm into $rootfs (Debian packages; python $PYTHON_HOME)"
  debootstrap --variant=minbase \
    --include=ca-certificates,libssl3,libsqlite3-0,libffi8,libbz2-1.0,liblzma5,zlib1g,libreadline8,libncursesw6,libexpat1,libuuid1,libnsl2,postgresql-15 \
    bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 || { tail -n 20 "$rootfs.log" >&2; exit 1; }
  rm -f "$rootfs.log"
  # the machine's CA bundle, so pip inside the image reaches the package index as the host does
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  # pyenv's CPython is linked with an rpath to its own path: keep that path. Leave out its test
  # suite, IDLE, tkinter and static library (200 MB), and what the host adds to its site-packages.
  mkdir -p "$rootfs$PYTHON_HOME"
  tar -C "$PYTHON_HOME" -c --exclude=./lib/python3.12/test --exclude=./lib/python3.12/idlelib \
    --exclude=./lib/python3.12/tkinter --exclude='*.a' --exclude='./lib/python3.12/site-packages/*.pth' . |
    tar -C "$rootfs$PYTHON_HOME" -x
  chmod 755 "$rootfs/root" "$rootfs$(dirname "$(dirname "$PYTHON_HOME")")" "$rootfs$(dirname "$PYTHON_HOME")"
  ln -sf "$PYTHON_HOME/bin/python3.12" "$rootfs/usr/local/bin/python3.12"
  ln -sf python3.12 "$rootfs/usr/local/bin/python3"
  ln -sf python3.12 "$rootfs/usr/local/bin/python"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1' \
    --change 'CMD ["/bin/bash"]' - "$BASE" >&2
  rm -rf "$rootfs"
}

if pullable "$POSTGRES_IMAGE"; then
  say "$POSTGRES_IMAGE pulled"
else
  say "cannot pull $POSTGRES_IMAGE: building the stand-in local/postgres-standin:bookworm"
  base
  docker build -q -t local/postgres-standin:bookworm --build-arg BASE="$BASE" standins/postgres >&2
  echo "export POSTGRES_IMAGE=local/postgres-standin:bookworm"
fi

if pullable "$AIRFLOW_IMAGE"; then
  say "$AIRFLOW_IMAGE pulled"
else
  tag="local/airflow-standin:${AIRFLOW_IMAGE##*:}"
  say "cannot pull $AIRFLOW_IMAGE: building the stand-in $tag"
  base
  docker build -q -t "$tag" --build-arg BASE="$BASE" -f standins/airflow/Dockerfile ../.. >&2
  echo "export AIRFLOW_IMAGE=$tag"
fi
