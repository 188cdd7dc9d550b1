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
for pkg in postgresql libarchive-tools git python3 curl redis-server podman runc runsc debootstrap gcc libc6-dev; do
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

# podman for hosts like this one (DESIGN §6): crun fails on cgroups v1 hybrid hosts, so runc; runc fails on
# podman's default rlimits, so explicit ulimits; runsc registered for gVisor sandboxes.
conf=/etc/containers/containers.conf.d/50-computalot.conf
mkdir -p "$(dirname "$conf")"
cat > "$conf.tmp" <<'CONF'
# Written by computalot's npm run setup.
[containers]
default_ulimits = ["nofile=1024:20000", "nproc=1024:1024"]
[engine]
runtime = "runc"
[engine.runtimes]
runsc = ["/usr/bin/runsc"]
CONF
mv "$conf.tmp" "$conf"

# Base images without a registry: debootstrap a minimal Debian and import it. Reused when present.
build_base() { # name, extra packages (comma separated)
  local image="localhost/computalot/$1:bookworm"
  if podman image exists "$image"; then
    echo "setup: $image already built"
    return
  fi
  local root
  root=$(mktemp -d /var/tmp/computalot-base.XXXXXX)
  echo "setup: building $image with debootstrap (about 30 s)"
  # The Debian mirror apt already uses (a host may only reach its own mirror), else debootstrap's default.
  local mirror
  mirror=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  debootstrap --variant=minbase ${2:+--include=$2} bookworm "$root" ${mirror:-} >/var/tmp/computalot-debootstrap.log 2>&1 \
    || { echo "setup: debootstrap failed; see /var/tmp/computalot-debootstrap.log" >&2; rm -rf "$root"; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | podman import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$image" >/dev/null
  rm -rf "$root"
  echo "setup: $image ready"
}
build_base python python3
podman run --rm --network=none localhost/computalot/python:bookworm python3 -c 'print("setup: runc sandbox works")'
podman --runtime /usr/bin/runsc --runtime-flag platform=ptrace --runtime-flag network=none run --rm --network=none \
  localhost/computalot/python:bookworm sh -c 'echo "setup: gVisor sandbox works ($(cat /proc/version | cut -c1-30))"'
echo "setup: done"
