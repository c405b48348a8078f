#!/bin/bash
# A two-node Ray cluster on this machine, on loopback, with token auth:
# a head node (port $RAY_PORT, default 6390) and one worker node, 1 CPU each.
# Use it with: export RAY_AUTH_MODE=token; python launch/sweep.py SPEC --backend ray --ray-address 127.0.0.1:6390
set -euo pipefail
RAY=${RAY:-$(dirname "$0")/../../.venv/bin/ray}
PORT=${RAY_PORT:-6390}
export RAY_AUTH_MODE=token   # every Ray process must agree, or nodes fail with InvalidAuthToken
"$RAY" get-auth-token --generate >/dev/null
common=(--node-ip-address=127.0.0.1 --num-cpus="${RAY_NODE_CPUS:-1}" --disable-usage-stats)
"$RAY" start --head --port="$PORT" --include-dashboard=false "${common[@]}" >/dev/null
"$RAY" start --address="127.0.0.1:$PORT" "${common[@]}" >/dev/null
for i in $(seq 60); do
  n=$("$RAY" status --address="127.0.0.1:$PORT" 2>/dev/null | grep -c '^ 1 node_' || true)
  [ "$n" -ge 2 ] && break; sleep 0.5
done
echo "ray cluster at 127.0.0.1:$PORT with $n alive nodes"
