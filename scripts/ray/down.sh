#!/bin/bash
# Stop every Ray node started on this machine.
RAY=${RAY:-$(dirname "$0")/../../.venv/bin/ray}
RAY_AUTH_MODE=token "$RAY" stop --force >/dev/null 2>&1 || true
