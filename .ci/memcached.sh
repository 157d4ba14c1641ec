#!/usr/bin/env bash
# Memcached for the memcached store tests: install the Debian package when it is missing and
# start one daemon on 127.0.0.1:11211 (64 MB, no persistence: memcached keeps nothing anyway).
# Idempotent: a server already answering on the port is left alone. Run as root (CI is).
set -uo pipefail

HOST=127.0.0.1
PORT="${COATCHECK_MEMCACHED_PORT:-11211}"

up() { timeout 1 bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null; }

answers() {
  # A listening socket is not enough: ask for the version and expect the reply.
  timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$PORT; printf 'version\r\n' >&3; head -c 8 <&3" \
    2>/dev/null | grep -q '^VERSION'
}

if ! command -v memcached >/dev/null && [ ! -x /usr/bin/memcached ]; then
  echo "memcached: installing the Debian package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || echo "memcached: apt-get update failed" >&2
  apt-get install -y -qq memcached >/dev/null || {
    echo "memcached: apt-get install memcached failed" >&2
    exit 1
  }
fi
MEMCACHED="$(command -v memcached || echo /usr/bin/memcached)"

if ! up; then
  user=root
  id memcache >/dev/null 2>&1 && user=memcache
  "$MEMCACHED" -d -u "$user" -l "$HOST" -p "$PORT" -m 64 -U 0 || {
    echo "memcached: could not start the daemon" >&2
    exit 1
  }
fi

for _ in $(seq 1 50); do
  answers && exit 0
  sleep 0.1
done
echo "memcached: nothing answers on $HOST:$PORT" >&2
exit 1
