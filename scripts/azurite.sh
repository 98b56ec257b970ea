#!/usr/bin/env bash
# Starts and stops the pinned Azurite blob emulator for the blob contract
# tests (tests/tests/it/blob_azure.rs).
#
#   scripts/azurite.sh start DATA_DIR   # prints the blob endpoint on stdout
#   scripts/azurite.sh stop DATA_DIR
#
# Azurite is pinned in tests/azurite/package.json + package-lock.json and
# installed with `npm ci` into tests/azurite/node_modules (gitignored) when
# that is missing or older than the lock file. Its blobs, its log and its
# pid file (azurite.pid) live in DATA_DIR.
#
# Environment:
#   AZURITE_PORT           blob port (default 10000)
#   AZURITE_START_TIMEOUT  seconds to wait for it to answer (default 60)
#   AZURITE_CERT, AZURITE_KEY  PEM certificate and key: serve HTTPS
#                          (--cert/--key); the endpoint is then https://
#
# Only the endpoint goes to stdout, so a caller can do
#   export INSIGHTS_TEST_AZURITE="$(scripts/azurite.sh start "$RUN_DIR/azurite")"
# Progress and errors go to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PKG_DIR="$ROOT/tests/azurite"
BIN="$PKG_DIR/node_modules/.bin/azurite-blob"
PINNED_VERSION="3.37.0"
HOST="127.0.0.1"
PORT="${AZURITE_PORT:-10000}"
TIMEOUT="${AZURITE_START_TIMEOUT:-60}"
ACCOUNT="devstoreaccount1"

log() { echo "azurite.sh: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

usage() {
    echo "usage: $0 start|stop DATA_DIR" >&2
    exit 2
}

# True when something accepts TCP connections on HOST:PORT.
port_in_use() {
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

# The pid recorded in DATA_DIR, if that process is still alive.
running_pid() {
    local pidfile="$1/azurite.pid" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(cat "$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

installed_version() {
    local manifest="$PKG_DIR/node_modules/azurite/package.json"
    [[ -f "$manifest" ]] || return 0
    node -p "require(process.argv[1]).version" "$manifest" 2>/dev/null || true
}

# `npm ci` when node_modules is missing, holds another Azurite version, or
# is older than the lock file (npm records what it installed in
# node_modules/.package-lock.json).
ensure_installed() {
    local hidden_lock="$PKG_DIR/node_modules/.package-lock.json"
    local reason=""
    # One installer at a time: tests start private Azurites concurrently,
    # and `npm ci` empties node_modules before it fills it again, so a
    # second caller must wait for the first instead of seeing a half
    # install (or starting a second `npm ci` over it).
    exec 9>"$PKG_DIR/.install.lock"
    flock 9
    if [[ ! -x "$BIN" || ! -f "$hidden_lock" ]]; then
        reason="not installed"
    elif [[ "$(installed_version)" != "$PINNED_VERSION" ]]; then
        reason="installed version is not $PINNED_VERSION"
    elif [[ "$PKG_DIR/package-lock.json" -nt "$hidden_lock" ]]; then
        reason="package-lock.json changed"
    fi
    if [[ -n "$reason" ]]; then
        command -v npm >/dev/null || die "npm is not installed (needed to install Azurite $PINNED_VERSION)"
        log "installing Azurite $PINNED_VERSION ($reason): npm ci --prefix tests/azurite"
        npm ci --prefix "$PKG_DIR" --no-audit --no-fund --loglevel=error >&2 \
            || die "npm ci in $PKG_DIR failed"
    fi
    [[ -x "$BIN" ]] || die "$BIN is missing after npm ci"
    flock -u 9
    exec 9>&-
}

start() {
    local data_dir="$1"
    mkdir -p "$data_dir"
    data_dir="$(cd "$data_dir" && pwd)"
    local scheme="http" tls_args=()
    if [[ -n "${AZURITE_CERT:-}" ]]; then
        [[ -n "${AZURITE_KEY:-}" ]] || die "AZURITE_CERT needs AZURITE_KEY"
        scheme="https"
        tls_args=(--cert "$AZURITE_CERT" --key "$AZURITE_KEY")
    fi
    local endpoint="$scheme://$HOST:$PORT/$ACCOUNT"
    local pid

    if pid="$(running_pid "$data_dir")"; then
        log "already running (pid $pid) for $data_dir"
        echo "$endpoint"
        return 0
    fi
    if port_in_use; then
        die "port $HOST:$PORT is already in use by another process; stop it or set AZURITE_PORT to a free port"
    fi
    command -v curl >/dev/null || die "curl is not installed (needed to check that Azurite is up)"
    ensure_installed

    local logfile="$data_dir/azurite.log"
    # --disableTelemetry: otherwise it tries to reach a telemetry host.
    # --skipApiVersionCheck: object_store may send a newer x-ms-version
    # than this Azurite release knows.
    nohup "$BIN" \
        --blobHost "$HOST" --blobPort "$PORT" \
        --location "$data_dir" \
        --disableTelemetry --skipApiVersionCheck --silent \
        "${tls_args[@]}" \
        >"$logfile" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$data_dir/azurite.pid"

    # Any HTTP status (an unauthenticated request gets 403) means it is up;
    # curl prints 000 while nothing answers.
    local deadline=$((SECONDS + TIMEOUT)) code
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$data_dir/azurite.pid"
            log "Azurite exited during start-up; its log ($logfile):"
            tail -n 50 "$logfile" >&2 || true
            die "Azurite did not start"
        fi
        # -k: whether the certificate is trusted is the tests' question,
        # not this start-up probe's.
        code="$(curl -k -s -o /dev/null -m 2 -w '%{http_code}' "$endpoint?comp=list" || true)"
        if [[ "$code" != "000" && -n "$code" ]]; then
            break
        fi
        if ((SECONDS >= deadline)); then
            kill "$pid" 2>/dev/null || true
            rm -f "$data_dir/azurite.pid"
            log "Azurite's log ($logfile):"
            tail -n 50 "$logfile" >&2 || true
            die "Azurite did not answer on $HOST:$PORT within ${TIMEOUT}s"
        fi
        sleep 0.2
    done
    log "Azurite $PINNED_VERSION up (pid $pid), data in $data_dir"
    echo "$endpoint"
}

stop() {
    local data_dir="$1" pid
    if ! pid="$(running_pid "$data_dir")"; then
        log "not running for $data_dir"
        rm -f "$data_dir/azurite.pid"
        return 0
    fi
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid ignored SIGTERM for 5 s; sending SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$data_dir/azurite.pid"
    log "stopped (pid $pid)"
}

[[ $# -eq 2 ]] || usage
case "$1" in
    start) start "$2" ;;
    stop) stop "$2" ;;
    *) usage ;;
esac
