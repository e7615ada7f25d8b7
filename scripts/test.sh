#!/usr/bin/env bash
# Installs everything and runs the whole test suite:
#   1. ruff (lint), 2. the JavaScript unit tests (node --test),
#   3. pytest on the embedded defaults (SQLite, in-memory channel layer),
#   4. pytest again against MariaDB and Redis (the production stack).
# Step 4 needs MariaDB on 127.0.0.1:3306 (root, no password) and Redis on 127.0.0.1:6379,
# or TEST_DATABASE_URL / TEST_REDIS_URL. When they are not reachable the step is skipped with
# a warning, unless REQUIRE_SERVICES=1 (CI), which makes it a failure.
# Extra arguments go to both pytest runs (e.g. scripts/test.sh -k refresh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
PY=.venv/bin/python
log() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

log "ruff"
.venv/bin/ruff check .

if [ -d tests/js ]; then
  log "JavaScript unit tests (node --test)"
  node --test tests/js/
fi

# The test settings never depend on a developer's .env: it is not read, and the secrets
# are set here.
export ENV_FILE=""
export SECRET_KEY=test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz
export JWT_SIGNING_KEY=test-jwt-signing-key-0123456789abcdefghijklmnopqrstuvwxyz
export PASSWORD_PEPPER=test-pepper-0123456789abcdefghijklmnopqrstuvwxyz
export DEBUG=false
export RATE_LIMITS_ENABLED=true

log "pytest on the embedded defaults (SQLite + in-memory channel layer)"
DATABASE_URL="sqlite:///$PWD/var/test.sqlite3" REDIS_URL="" $PY -m pytest -p no:cacheprovider "$@"

DB_URL="${TEST_DATABASE_URL:-mysql://root@127.0.0.1:3306/messenger}"
REDIS="${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
if DATABASE_URL="$DB_URL" REDIS_URL="$REDIS" $PY scripts/check_services.py; then
  log "pytest on MariaDB + Redis"
  DATABASE_URL="$DB_URL" REDIS_URL="$REDIS" $PY -m pytest -p no:cacheprovider "$@"
elif [ "${REQUIRE_SERVICES:-0}" = 1 ]; then
  echo "MariaDB and Redis are required (REQUIRE_SERVICES=1) but not reachable." >&2
  exit 1
else
  printf '\n\033[1;33mWARNING: MariaDB/Redis not reachable: the production-stack pass was SKIPPED.\033[0m\n'
fi
