#!/usr/bin/env bash
# Prepare a fresh machine: a virtualenv with inferwatch installed, and (with --test) the system
# packages the test suite starts for real: Java and Maven for the Kafka broker, PostgreSQL,
# Alertmanager, Debian prometheus (promtool for the rule files, the server for the dashboard
# test), and docker-compose to validate
# docker-compose.yml. Safe to run again: it only installs what is
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

if (( want_test )); then
  missing=()
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  [[ -x /usr/bin/prometheus-alertmanager ]] || missing+=(prometheus-alertmanager)
  { command -v promtool >/dev/null && [[ -x /usr/bin/prometheus ]]; } || missing+=(prometheus)
  command -v chromium >/dev/null || missing+=(chromium)  # headless, renders the HTML reports in tests
  if (( ${#missing[@]} )); then
    echo "installing system packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  fi
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >&2
if (( want_test )); then
  .venv/bin/python -m pip install -q -e '.[dev]' >&2
else
  .venv/bin/python -m pip install -q -e . >&2
fi
