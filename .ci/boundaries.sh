#!/usr/bin/env bash
# Each heavy dependency lives in one crate (docs/ARCHITECTURE.md, "Invariants").
# `cargo tree -i DEP --depth 1` lists the crates that depend on DEP directly.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
only() {
    local dep=$1 allowed=$2
    local users
    users=$(cargo tree --workspace -e normal -i "$dep" --depth 1 --prefix none 2>/dev/null \
        | awk 'NR>1 {print $1}' | sort -u | grep -E '^(xapi|lrs-[a-z-]+)$' || true)
    for user in $users; do
        if ! grep -qx "$user" <<<"$(tr ' ' '\n' <<<"$allowed")"; then
            echo "boundary broken: $user depends on $dep directly (only: $allowed)"
            fail=1
        fi
    done
    echo "ok: $dep used directly by: $(echo ${users:-nobody})"
}
only sled "lrs-store"
only axum "lrs-server"
only tower-http "lrs-server"
only jsonschema "xapi"
only chacha20poly1305 "lrs-core lrs-store"
only metrics "lrs-server"
only governor "lrs-server"
only opentelemetry "lrs-cli"
only clap "lrs-cli lrs-benches"
only tracing-subscriber "lrs-cli"
only rust_xlsxwriter "lrs-app"
only zip@8 "lrs-app"
only argon2 "lrs-app"
only totp-rs "lrs-app"
only fs2 "lrs-store"
only arrow "lrs-analytics"
only parquet "lrs-analytics"
only datafusion "lrs-analytics"
only object_store "lrs-analytics"
# xapi knows nothing about storage, HTTP or async.
if cargo tree -p xapi -e normal --prefix none | grep -qE '^(tokio|sled|axum|hyper) '; then
    echo "boundary broken: xapi pulls in tokio, sled, axum or hyper"
    fail=1
fi
# projections are pure: no storage, no async.
if cargo tree -p lrs-projections -e normal --prefix none | grep -qE '^(tokio|sled|axum|hyper) '; then
    echo "boundary broken: lrs-projections pulls in tokio, sled, axum or hyper"
    fail=1
fi
# lrs-app knows no HTTP and no command line: what the LRS does, callable
# from both.
if cargo tree -p lrs-app -e normal --prefix none | grep -qE '^(axum|tower|tower-http|hyper|clap|lrs-server|lrs-cli) '; then
    echo "boundary broken: lrs-app pulls in axum, tower, hyper, clap, lrs-server or lrs-cli"
    fail=1
fi
# lrs-server knows no command line.
if cargo tree -p lrs-server -e normal --prefix none | grep -qE '^(clap|lrs-cli) '; then
    echo "boundary broken: lrs-server pulls in clap or lrs-cli"
    fail=1
fi
# Inside every crate: no import loop between files; lrs-server's rooms keep
# their arrows (docs/ARCHITECTURE.md, "Rooms of lrs-server").
python3 .ci/modules.py || fail=1
# One feature set: `cargo build --workspace`, `cargo test --workspace` and
# clippy share one build of every dependency (docs/development.md).
python3 .ci/one-feature-set.py || fail=1
exit $fail
