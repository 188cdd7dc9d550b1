#!/usr/bin/env bash
# npm run setup: installs what the server's sandboxed runtime and the full test suite need on a Debian or
# Ubuntu host, as root, and starts the services. Safe to run again: every step checks before it acts.
set -euo pipefail

if [ "$(id -u)" != "0" ]; then
  echo "npm run setup must run as root (it installs Debian packages and starts PostgreSQL)." >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "npm run setup supports Debian/Ubuntu (apt-get); install PostgreSQL, git, bsdtar and python3 by hand elsewhere." >&2
  exit 1
fi

need=()
for pkg in postgresql libarchive-tools git python3 curl redis-server; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# PostgreSQL: start the packaged cluster (no systemd here) and make the test role.
cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $1" "$2}')
if [ -z "$cluster" ]; then
  echo "setup: no PostgreSQL cluster found after install" >&2
  exit 1
fi
# shellcheck disable=SC2086
if ! pg_ctlcluster $cluster status >/dev/null 2>&1; then
  echo "setup: starting PostgreSQL cluster $cluster"
  pg_ctlcluster $cluster start
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 && break
  sleep 0.5
done
pg_isready -h 127.0.0.1
runuser -u postgres -- psql -q -tAc "SELECT 1 FROM pg_roles WHERE rolname='computalot'" | grep -q 1 \
  || runuser -u postgres -- psql -q -c "CREATE ROLE computalot LOGIN PASSWORD 'computalot' CREATEDB"
echo "setup: PostgreSQL ready at postgres://computalot:computalot@127.0.0.1:5432/postgres"
echo "setup: done"
