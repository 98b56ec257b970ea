#!/usr/bin/env bash
# Dependencies point inward. Checks the intended crate graph of the
# workspace on normal (non-dev) dependencies, as `cargo tree -e normal`
# resolves them:
#
#   shared   insights-core   domain, config, traits: no HTTP, SQL, cloud SDK
#            insights-http   outbound HTTP plumbing: no SQL, no HTTP server
#            insights-stores the store backends: the only SQL crate
#   features bot-gateway insights-api ai-pipeline gdpr-tools web recorder:
#            depend on the shared crates, on each other only by the
#            allow-listed edges below (ARCHITECTURE.md gives the reasons)
#   test     insights-tests  contract suites, raw SQL checks
#   root     insights        the binary: composes everything
#
# Prints every violation and exits 1 if there is any (2 if the dependency
# tree cannot be read at all).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

shared=(insights-core insights-http insights-stores)
features=(bot-gateway insights-api ai-pipeline gdpr-tools web recorder)
tests=(insights-tests)
root=(insights)

# The only edges between feature crates, each with its reason.
declare -A allowed_edges=(
    [insights-api:gdpr-tools]="the API serves legal holds, retention, directory sync and data-subject requests"
    [web:insights-api]="the web UI is mounted on the API's server and uses its session authentication"
    [ai-pipeline:recorder]="transcription decodes recordings with the recorder's decoder"
    [bot-gateway:recorder]="the gateway encodes ingested audio; the simulator decodes its inputs with the recorder"
    [gdpr-tools:recorder]="an access bundle that masks the other parties keeps only the subject's channel of a call"
)

http_clients=(reqwest hyper)
http_servers=(actix-web actix-ws)
sql=(sqlx)
cloud=(object_store azure_core azure_storage_blob)

fail=0
violation() { echo "boundary violated: $*" >&2; fail=1; }

declare -A all_cache direct_cache
tree() { # package, depth args...
    local out
    out=$(cargo tree --locked -e normal -p "$@" --prefix none --format '{p}') || {
        echo "cannot read the dependency tree of $1" >&2
        exit 2
    }
    [ -n "$out" ] || { echo "empty dependency tree of $1" >&2; exit 2; }
    printf '%s\n' "$out"
}
load() { # package: fills the caches (the package itself excluded)
    [ -n "${all_cache[$1]+x}" ] && return
    all_cache[$1]=$(tree "$1" | awk '{print $1}' | grep -vx -- "$1" | sort -u || true)
    direct_cache[$1]=$(tree "$1" --depth 1 | awk 'NR > 1 {print $1}' | sort -u || true)
}
has() { grep -qx -- "$2" <<<"$1"; }

# crate must not depend on deps, directly or through another crate.
forbid() { # crate, reason, deps...
    local crate=$1 why=$2; shift 2
    load "$crate"
    for dep in "$@"; do
        if has "${all_cache[$crate]}" "$dep"; then
            violation "$crate depends on $dep ($why)"
        fi
    done
}
# crate must not list deps itself (it may reach them through others).
forbid_direct() { # crate, reason, deps...
    local crate=$1 why=$2; shift 2
    load "$crate"
    for dep in "$@"; do
        if has "${direct_cache[$crate]}" "$dep"; then
            violation "$crate depends directly on $dep ($why)"
        fi
    done
}
others() { # crate, list...: the list without crate
    local crate=$1; shift
    for c in "$@"; do [ "$c" = "$crate" ] || echo "$c"; done
}

# Every workspace crate is classified: a new one must be placed here.
members=$(cargo tree --locked --workspace --depth 0 -e normal --prefix none --format '{p}' |
    awk 'NF {print $1}' | sort -u)
[ -n "$members" ] || { echo "cannot list the workspace members" >&2; exit 2; }
known=" ${shared[*]} ${features[*]} ${tests[*]} ${root[*]} "
for m in $members; do
    [[ $known == *" $m "* ]] || violation "$m is not classified in scripts/check-boundaries.sh"
done
workspace=("${shared[@]}" "${features[@]}" "${tests[@]}" "${root[@]}")

# Shared crates.
# shellcheck disable=SC2046
forbid insights-core "the shared core knows no HTTP, SQL or cloud SDK" \
    "${http_clients[@]}" "${http_servers[@]}" "${sql[@]}" "${cloud[@]}" \
    $(others insights-core "${workspace[@]}")
# shellcheck disable=SC2046
forbid insights-http "outbound HTTP only: no SQL, no server, no cloud SDK, no feature crate" \
    "${http_servers[@]}" "${sql[@]}" "${cloud[@]}" \
    $(others insights-core "${workspace[@]}")
# shellcheck disable=SC2046
forbid insights-stores "store backends serve nothing and know no feature" \
    "${http_servers[@]}" $(others insights-core "${workspace[@]}")

# The recorder is a self-contained codec library.
forbid recorder "the recorder depends on no workspace crate and no HTTP/SQL/cloud crate" \
    "${workspace[@]}" "${http_clients[@]}" "${http_servers[@]}" "${sql[@]}" "${cloud[@]}"

# Feature crates depend on each other only by the allowed edges (shared
# crates may not depend on feature crates, so direct edges are the graph).
for f in "${features[@]}"; do
    load "$f"
    for g in "${features[@]}"; do
        [ "$f" != "$g" ] || continue
        if has "${direct_cache[$f]}" "$g" && [ -z "${allowed_edges[$f:$g]+x}" ]; then
            violation "$f depends on $g (not an allowed edge between feature crates)"
        fi
    done
done
# The media node stays lean: none of the API's weight, even indirectly.
forbid bot-gateway "the media node must not link the API or the GDPR tools" \
    insights-api gdpr-tools web ai-pipeline argon2 totp-rs utoipa rust_xlsxwriter

# SQL only in the store backends (and the test crate's raw SQL checks);
# the binary reaches it only through insights-stores.
for c in "${workspace[@]}"; do
    case $c in
    insights-stores | insights-tests) ;;
    insights) forbid_direct "$c" "SQL only through insights-stores" "${sql[@]}" ;;
    *) forbid "$c" "only insights-stores knows SQL" "${sql[@]}" ;;
    esac
done
forbid insights-api "the API reaches storage through the store traits" "${cloud[@]}"

# An HTTP server only in the crates that serve HTTP.
for c in "${workspace[@]}"; do
    case $c in
    insights-api | web | bot-gateway | insights) ;;
    *) forbid "$c" "only insights-api, web, bot-gateway and the binary serve HTTP" "${http_servers[@]}" ;;
    esac
done

[ "$fail" = 0 ] && echo "dependency boundaries hold"
exit $fail
