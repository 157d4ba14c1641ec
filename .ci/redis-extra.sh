#!/usr/bin/env bash
# Extra Redis topologies for the Redis store tests, on loopback only, without persistence:
#   - a 3-master Redis Cluster on 127.0.0.1:7000-7002 (no replicas);
#   - a Sentinel on 127.0.0.1:26379 watching the master 127.0.0.1:6379 as "mymaster".
# Idempotent: whatever is already up and healthy is left alone. Needs redis-server and
# redis-cli; when they are missing it says so and exits 0 (the tests then skip or, under CI,
# fail through tests/services.py).
set -uo pipefail

BASE="${COATCHECK_REDIS_EXTRA_DIR:-${TMPDIR:-/tmp}/coatcheck-redis-extra}"
CLUSTER_PORTS=(7000 7001 7002)
SENTINEL_PORT=26379

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "redis-extra: redis-server/redis-cli not installed; skipping cluster and sentinel" >&2
  exit 0
fi

cli() { timeout 5 redis-cli -h 127.0.0.1 -p "$1" "${@:2}" 2>/dev/null; }
alive() { [ "$(cli "$1" ping)" = "PONG" ]; }
wait_alive() {
  for _ in $(seq 1 50); do alive "$1" && return 0; sleep 0.1; done
  echo "redis-extra: nothing answers on 127.0.0.1:$1" >&2
  return 1
}
cluster_ok() { cli "$1" cluster info | grep -q '^cluster_state:ok'; }
all_cluster_ok() {
  local port
  for port in "${CLUSTER_PORTS[@]}"; do cluster_ok "$port" || return 1; done
}

start_cluster_node() {
  local port=$1 dir="$BASE/cluster-$1"
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --protected-mode yes \
    --cluster-enabled yes --cluster-config-file "nodes-$port.conf" --cluster-node-timeout 5000 \
    --save "" --appendonly no --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
}

ensure_cluster() {
  local port
  all_cluster_ok && return 0
  for port in "${CLUSTER_PORTS[@]}"; do
    alive "$port" || start_cluster_node "$port"
  done
  for port in "${CLUSTER_PORTS[@]}"; do
    wait_alive "$port" || return 1
    if ! cli "$port" info cluster | grep -q '^cluster_enabled:1'; then
      echo "redis-extra: 127.0.0.1:$port runs a Redis without cluster mode; leaving it alone" >&2
      return 1
    fi
  done
  # Nodes restarted from their nodes.conf rejoin by themselves; give them a moment.
  if cli "${CLUSTER_PORTS[0]}" cluster info | grep -q "^cluster_known_nodes:${#CLUSTER_PORTS[@]}"; then
    for _ in $(seq 1 50); do all_cluster_ok && return 0; sleep 0.2; done
  fi
  # Still not ok: a fresh or half-made cluster. These cluster-mode nodes on 7000-7002 are
  # this script's, holding test data only (no persistence), so a hard reset loses nothing.
  for port in "${CLUSTER_PORTS[@]}"; do
    cli "$port" flushall >/dev/null
    cli "$port" cluster reset hard >/dev/null
  done
  local nodes=()
  for port in "${CLUSTER_PORTS[@]}"; do nodes+=("127.0.0.1:$port"); done
  timeout 30 redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
    >"$BASE/cluster-create.log" 2>&1 || {
    echo "redis-extra: cluster create failed, see $BASE/cluster-create.log" >&2
    return 1
  }
  for _ in $(seq 1 100); do all_cluster_ok && return 0; sleep 0.2; done
  echo "redis-extra: cluster did not reach cluster_state:ok" >&2
  return 1
}

ensure_sentinel() {
  if alive "$SENTINEL_PORT" && [ -n "$(cli "$SENTINEL_PORT" sentinel get-master-addr-by-name mymaster)" ]; then
    return 0
  fi
  local dir="$BASE/sentinel"
  mkdir -p "$dir"
  wait_alive 6379 || return 1  # the machine's Redis (.ci/services.sh) is the master
  # Sentinel rewrites its config file, so it gets a fresh one in a directory of its own.
  cat >"$dir/sentinel.conf" <<EOF
port $SENTINEL_PORT
bind 127.0.0.1
protected-mode yes
daemonize yes
pidfile $dir/sentinel.pid
logfile $dir/sentinel.log
dir $dir
sentinel monitor mymaster 127.0.0.1 6379 1
sentinel down-after-milliseconds mymaster 5000
sentinel failover-timeout mymaster 60000
EOF
  if alive "$SENTINEL_PORT"; then  # a running sentinel that lost the master: tell it again
    cli "$SENTINEL_PORT" sentinel monitor mymaster 127.0.0.1 6379 1 >/dev/null
  else
    redis-server "$dir/sentinel.conf" --sentinel
  fi
  wait_alive "$SENTINEL_PORT" || return 1
  for _ in $(seq 1 50); do
    [ -n "$(cli "$SENTINEL_PORT" sentinel get-master-addr-by-name mymaster)" ] && return 0
    sleep 0.1
  done
  echo "redis-extra: sentinel on $SENTINEL_PORT does not know mymaster" >&2
  return 1
}

mkdir -p "$BASE"
status=0
ensure_cluster || status=1
ensure_sentinel || status=1
exit $status
