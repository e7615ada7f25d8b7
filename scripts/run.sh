#!/usr/bin/env bash
# Installs everything and serves the app on http://127.0.0.1:8000 with the embedded defaults
# (SQLite under var/, in-memory channel layer) unless .env or the environment say otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh runtime
.venv/bin/python manage.py migrate --noinput
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
echo "Secured Messenger on http://$HOST:$PORT  (Ctrl+C to stop)"
exec .venv/bin/daphne -b "$HOST" -p "$PORT" messenger.asgi:application
