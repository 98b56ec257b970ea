#!/usr/bin/env bash
# Dependencies point inward: the shared core knows no HTTP, SQL or cloud
# SDK; only insights-api knows HTTP; only insights-stores knows SQL or a
# storage SDK. Fails if a crate depends on what it must not (or if the
# dependency tree cannot be read at all).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail=0
deps_of() { cargo tree --locked -e normal -p "$1" --prefix none --format '{p}' | awk '{print $1}' | sort -u; }
forbid() { # crate, dependencies...
    local crate=$1; shift
    local tree; tree=$(deps_of "$crate")
    [ -n "$tree" ] || { echo "cannot read the dependency tree of $crate" >&2; exit 1; }
    for dep in "$@"; do
        if grep -qx "$dep" <<<"$tree"; then
            echo "boundary violated: $crate depends on $dep" >&2
            fail=1
        fi
    done
}
forbid insights-core sqlx actix-web object_store reqwest hyper
forbid insights-api sqlx object_store
exit $fail
