#!/usr/bin/env bash
# The production set-up of Secured Messenger on one Debian machine, one step at a time.
# docs/DEPLOY.md walks through the steps in order; tests/deploy/test_topology.py runs these
# same steps (with its own paths and ports) and then drives a conversation through the result.
#
# Usage: deploy/deploy.sh STEP [ARG]
#   user             create the system user the services run as ($SERVICE_USER)
#   env-file         write $ENV_FILE from deploy/messenger.env with fresh secrets (never overwrites one)
#   database         create the MariaDB database and account named in $ENV_FILE
#   prepare          migrate, collectstatic and `check --deploy`, configured by $ENV_FILE
#   units DIR        write the systemd units into DIR (production: /etc/systemd/system)
#   nginx-site FILE  write the nginx site (production: /etc/nginx/sites-available/messenger)
#
# Settings, from the environment (defaults in brackets):
#   SERVER_NAME   the public host name, e.g. chat.example.org (required by env-file, nginx-site)
#   APP_DIR       the checkout with its .venv [the folder above this script]
#   ENV_FILE      the configuration file the services read [/etc/messenger/messenger.env]
#   SERVICE_USER  the account daphne and the periodic jobs run as [messenger]
#   STATIC_ROOT   where collectstatic writes and nginx serves /static/ [/var/www/messenger/static]
#   DAPHNE_PORTS  one daphne process per port, on 127.0.0.1 ["8001 8002"]
#   TLS_CERT, TLS_KEY  certificate chain and key [/etc/letsencrypt/live/$SERVER_NAME/{fullchain,privkey}.pem]
#   LISTEN        addresses nginx listens on ["0.0.0.0 [::]"]; HTTP_PORT [80], HTTPS_PORT [443]
#   DB_NAME, DB_USER [messenger], DB_HOST [127.0.0.1], DB_PORT [3306]: the database env-file
#                 names (with a fresh password), unless DATABASE_URL is given
#   REDIS_URL     [redis://127.0.0.1:6379/0]
#   MARIADB       the client command `database` runs as MariaDB's administrator [mariadb]
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true  # "&" in a value is a plain character

DEPLOY_DIR="$(cd "$(dirname "$0")" && pwd)"
APP_DIR="${APP_DIR:-$(dirname "$DEPLOY_DIR")}"
ENV_FILE="${ENV_FILE:-/etc/messenger/messenger.env}"
SERVICE_USER="${SERVICE_USER:-messenger}"
STATIC_ROOT="${STATIC_ROOT:-/var/www/messenger/static}"
DAPHNE_PORTS="${DAPHNE_PORTS:-8001 8002}"
LISTEN="${LISTEN:-0.0.0.0 [::]}"
HTTP_PORT="${HTTP_PORT:-80}"
HTTPS_PORT="${HTTPS_PORT:-443}"
PYTHON="$APP_DIR/.venv/bin/python"

die() { printf 'deploy.sh: %s\n' "$*" >&2; exit 1; }
need_server_name() { [ -n "${SERVER_NAME:-}" ] || die "set SERVER_NAME (the public host name, e.g. chat.example.org)"; }
secret() { "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(48))'; }

# Replace every @NAME@ in a template by the value of the shell variable NAME.
render() {
  local text name
  text="$(cat "$1")"
  for name in APP_DIR ENV_FILE SERVICE_USER STATIC_ROOT SERVER_NAME TLS_CERT TLS_KEY HTTP_PORT HTTPS_PORT \
              HTTPS_SUFFIX UPSTREAM_SERVERS HTTP_LISTEN HTTPS_LISTEN \
              DATABASE_URL REDIS_URL SECRET_KEY JWT_SIGNING_KEY PASSWORD_PEPPER; do
    text="${text//@$name@/${!name:-}}"
  done
  printf '%s\n' "$text"
}

# manage.py exactly as the systemd units run it: only ENV_FILE configures it, so nothing in
# the caller's environment can change what it does.
manage() {
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 ENV_FILE="$ENV_FILE" "$PYTHON" "$APP_DIR/manage.py" "$@"
}

step_user() {
  id -u "$SERVICE_USER" >/dev/null 2>&1 && return 0
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SERVICE_USER"
}

step_env_file() {
  need_server_name
  [ -e "$ENV_FILE" ] && die "$ENV_FILE exists; not overwritten (delete it first to start over)"
  DATABASE_URL="${DATABASE_URL:-mysql://${DB_USER:-messenger}:$(secret)@${DB_HOST:-127.0.0.1}:${DB_PORT:-3306}/${DB_NAME:-messenger}}"
  REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
  SECRET_KEY="$(secret)" JWT_SIGNING_KEY="$(secret)" PASSWORD_PEPPER="$(secret)"
  mkdir -p "$(dirname "$ENV_FILE")"
  (umask 027 && render "$DEPLOY_DIR/messenger.env" > "$ENV_FILE")
  # Readable by the services' group, writable by root only.
  if getent group "$SERVICE_USER" >/dev/null; then chgrp "$SERVICE_USER" "$ENV_FILE"; fi
  chmod 0640 "$ENV_FILE"
}

step_database() {
  local url
  url="$(sed -n 's/^DATABASE_URL=//p' "$ENV_FILE")"
  [[ "$url" =~ ^mysql://([A-Za-z0-9_]+):([A-Za-z0-9_-]+)@([^:/]+)(:[0-9]+)?/([A-Za-z0-9_]+)$ ]] \
    || die "DATABASE_URL in $ENV_FILE is not mysql://user:password@host[:port]/name (create the database yourself)"
  local user="${BASH_REMATCH[1]}" password="${BASH_REMATCH[2]}" host="${BASH_REMATCH[3]}" name="${BASH_REMATCH[5]}"
  case "$host" in
    127.0.0.1 | localhost) ;;
    *) die "the database is on $host: create database $name and account $user there" ;;
  esac
  ${MARIADB:-mariadb} <<SQL
CREATE DATABASE IF NOT EXISTS \`$name\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS '$user'@'$host' IDENTIFIED BY '$password';
GRANT ALL PRIVILEGES ON \`$name\`.* TO '$user'@'$host';
SQL
}

step_prepare() {
  manage migrate --noinput
  # World-readable: nginx's workers (www-data) serve these files.
  (umask 022 && manage collectstatic --noinput --clear --verbosity 0)
  manage check --deploy --fail-level WARNING
}

step_units() {
  local dir="${1:?usage: deploy.sh units DIR}" unit
  mkdir -p "$dir"
  for unit in "$DEPLOY_DIR"/systemd/*; do
    render "$unit" > "$dir/$(basename "$unit")"
  done
}

step_nginx_site() {
  local file="${1:?usage: deploy.sh nginx-site FILE}" port address
  need_server_name
  TLS_CERT="${TLS_CERT:-/etc/letsencrypt/live/$SERVER_NAME/fullchain.pem}"
  TLS_KEY="${TLS_KEY:-/etc/letsencrypt/live/$SERVER_NAME/privkey.pem}"
  HTTPS_SUFFIX=""
  [ "$HTTPS_PORT" = 443 ] || HTTPS_SUFFIX=":$HTTPS_PORT"
  UPSTREAM_SERVERS="" HTTP_LISTEN="" HTTPS_LISTEN=""
  for port in $DAPHNE_PORTS; do UPSTREAM_SERVERS+="    server 127.0.0.1:$port;"$'\n'; done
  for address in $LISTEN; do
    HTTP_LISTEN+="    listen $address:$HTTP_PORT;"$'\n'
    HTTPS_LISTEN+="    listen $address:$HTTPS_PORT ssl http2;"$'\n'
  done
  UPSTREAM_SERVERS="${UPSTREAM_SERVERS%$'\n'}" HTTP_LISTEN="${HTTP_LISTEN%$'\n'}" HTTPS_LISTEN="${HTTPS_LISTEN%$'\n'}"
  mkdir -p "$(dirname "$file")"
  render "$DEPLOY_DIR/nginx/messenger.conf" > "$file"
}

case "${1:-}" in
  user) step_user ;;
  env-file) step_env_file ;;
  database) step_database ;;
  prepare) step_prepare ;;
  units) step_units "${2:-}" ;;
  nginx-site) step_nginx_site "${2:-}" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
