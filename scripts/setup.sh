#!/usr/bin/env bash
# Prepares a fresh clone: finds Python >= 3.12, installs the system libraries mysqlclient
# builds against, creates .venv with the pinned dependencies, and writes a development .env
# with random secrets on first run. Idempotent and quick when nothing changed.
#
# Usage: scripts/setup.sh [runtime|dev]
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-runtime}"
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[setup] %s\033[0m\n' "$*" >&2; exit 1; }

python_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }

find_python() {
  local candidates=()
  [ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
  candidates+=(python3.13 python3.12 python3)
  for dir in "$HOME"/.pyenv/versions/3.1[2-9]* /usr/local/bin /usr/bin; do
    for exe in "$dir"/bin/python3 "$dir"/python3.13 "$dir"/python3.12; do
      [ -x "$exe" ] && candidates+=("$exe")
    done
  done
  for candidate in "${candidates[@]}"; do
    if python_ok "$candidate"; then command -v "$candidate" || echo "$candidate"; return 0; fi
  done
  return 1
}

ensure_system_packages() {
  # mysqlclient compiles against MariaDB's client library, found through pkg-config.
  if command -v pkg-config >/dev/null && pkg-config --exists libmariadb 2>/dev/null; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing libmariadb-dev and pkg-config (needed to build mysqlclient)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libmariadb-dev pkg-config >/dev/null
  else
    die "mysqlclient needs MariaDB's client headers: run 'sudo apt-get install libmariadb-dev pkg-config' (Debian/Ubuntu) and retry."
  fi
}

pip_install() {
  # Quiet, minus the warnings some machines' pip configuration prints for every package.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" 2>&1 | { grep -v "is ignored: it is neither" || true; }
}

ensure_venv() {
  if [ ! -x .venv/bin/python ] || ! python_ok .venv/bin/python; then
    local python
    python="$(find_python)" || die "Python >= 3.12 not found; install it or set PYTHON=/path/to/python3.12"
    log "creating .venv with $python ($("$python" --version))"
    rm -rf .venv
    "$python" -m venv .venv
  fi
  local reqs=requirements.txt
  [ "$MODE" = dev ] && reqs=requirements-dev.txt
  local hash
  hash="$(cat requirements.txt requirements-dev.txt requirements-client.txt | sha256sum | cut -c1-16)"
  # A dev install includes the runtime dependencies, so it satisfies both modes.
  if [ -f ".venv/.installed-$hash-dev" ] || [ -f ".venv/.installed-$hash-$MODE" ]; then return 0; fi
  log "installing Python dependencies ($reqs)"
  pip_install --upgrade pip
  pip_install -r "$reqs"
  rm -f .venv/.installed-*
  touch ".venv/.installed-$hash-$MODE"
}

ensure_env_file() {
  [ -f .env ] && return 0
  log "writing a development .env with random secrets (git-ignored)"
  local gen='import secrets; print(secrets.token_urlsafe(48))'
  cat > .env <<ENV
# Development settings written by scripts/setup.sh on first run. Never commit this file.
DEBUG=true
AUTH_COOKIE_SECURE=false
SECRET_KEY=$(.venv/bin/python -c "$gen")
JWT_SIGNING_KEY=$(.venv/bin/python -c "$gen")
PASSWORD_PEPPER=$(.venv/bin/python -c "$gen")
ENV
}

ensure_node_packages() {
  [ -f package-lock.json ] || return 0
  command -v npm >/dev/null || die "npm not found: install Node.js >= 20.19 (Debian: apt-get install nodejs npm)"
  local stamp="node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    log "installing JavaScript test dependencies (npm ci)"
    npm ci --silent --no-audit --no-fund
    touch "$stamp"
  fi
}

ensure_chromium() {
  # The browser tests drive Debian's chromium through Playwright (no browser download).
  [ -x /usr/bin/chromium ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing chromium (for the browser tests)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    log "WARNING: /usr/bin/chromium not found: browser tests will be skipped (Debian: apt-get install chromium)"
  fi
}

ensure_nginx() {
  # The deployment test (tests/deploy) runs Debian's nginx as an instance of its own (own
  # configuration, ports and pid file); it never uses the system's nginx service.
  [ -x /usr/sbin/nginx ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing nginx (for the deployment test; the nginx service is not started)"
    # The package's install script would start nginx on port 80, and fail the install, leaving
    # the package half-configured, where that port is taken. A policy-rc.d answering 101
    # ("not allowed") is Debian's way to install a service without starting it.
    local policy=/usr/sbin/policy-rc.d status=0
    if [ -e "$policy" ]; then policy=""; else printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy"; fi
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null || status=$?
    if [ -n "$policy" ]; then rm -f "$policy"; fi
    return "$status"
  else
    log "WARNING: /usr/sbin/nginx not found: the deployment test will be skipped (Debian: apt-get install nginx)"
  fi
}

ensure_system_packages
ensure_venv
ensure_env_file
mkdir -p var/staticfiles
if [ "$MODE" = dev ]; then
  ensure_node_packages
  ensure_chromium
  ensure_nginx
fi
