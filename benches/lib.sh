# shellcheck shell=bash
# Shared start/stop steps of the benchmark scripts (benches/run-*.sh), sourced
# after `set -euo pipefail`:
#
#   source "$(dirname "$0")/lib.sh"
#
# Sourcing it changes to the repository root (ROOT), exports LRS_LOG (warn
# unless set) and installs an EXIT trap (bench_cleanup) that stops the server
# and removes the data directory made by bench_data_dir unless KEEP_DATA is
# set (bash runs it on a Ctrl-C or a SIGTERM too).
#
# The functions share these variables: OUT and RESULTS (bench_out), LRS and
# LOAD (bench_build), DATA (bench_data_dir, or set by the script), KEY and
# SECRET (the script, from bench_credential), and
# SERVER_PID, PORT, URL (bench_start_server, and STARTED_IN with
# bench_start_server_timed; SERVER_PID is empty while no server runs).
# bench_start_server serves whatever DATA names when it is
# called, so a script may stop the server, point DATA elsewhere and start it
# again.
#
# Environment read here (all optional):
#   SKIP_BUILD=1     bench_build does not build
#   LRS_BIN, LOAD_BIN  the binaries (default: target/release, or
#                    $CARGO_TARGET_DIR/release where cargo puts them)
#   KEEP_DATA=1      keep the data directory
#   LRS_RATE_PER_ADDRESS, LRS_RATE_PER_CREDENTIAL   the server's request-rate
#                    limits: 0 (off) unless set, or the server's own defaults
#                    when the script sets BENCH_RATE_LIMITS=server after
#                    sourcing this file
#   LRS_LOG          the server's log filter (default warn)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
export LRS_LOG=${LRS_LOG:-warn}

SERVER_PID=
PORT=
URL=
BENCH_REMOVE=
BENCH_STARTS=0
# off: the server runs with the request-rate limits at 0 unless they are set
# (the benches measure the most the server takes, not the limiter; see
# docs/security-limits.md); server: the server's own limits
BENCH_RATE_LIMITS=off

bench_die() {
    echo "error: $*" >&2
    exit 1
}

bench_out() {
    # bench_out PREFIX: OUT (default a new directory under $TMPDIR named
    # PREFIX.XXXXXX) and an empty RESULTS=$OUT/results.jsonl
    OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")}
    mkdir -p "$OUT"
    RESULTS=$OUT/results.jsonl
    : >"$RESULTS"
}

bench_build() {
    # bench_build: cargo build --release of lrs and lrs-load unless SKIP_BUILD;
    # sets LRS and LOAD (LRS_BIN and LOAD_BIN override them)
    if [ -z "${SKIP_BUILD:-}" ]; then
        cargo build --release -p lrs-cli -p lrs-benches
    fi
    local target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
    LRS=${LRS_BIN:-$target_dir/release/lrs}
    LOAD=${LOAD_BIN:-$target_dir/release/lrs-load}
    [ -x "$LRS" ] || bench_die "no lrs binary at $LRS (build it, or set LRS_BIN)"
    [ -x "$LOAD" ] || bench_die "no lrs-load binary at $LOAD (build it, or set LOAD_BIN)"
}

bench_master_key() {
    # bench_master_key: a new random master key in LRS_MASTER_KEY (exported);
    # with KEEP_DATA also in $OUT/master-key (mode 600), so the kept data
    # directory can be opened again (benches/run-analytics.sh DATA_DIR=...)
    if command -v openssl >/dev/null; then
        LRS_MASTER_KEY=$(openssl rand -hex 32)
    else
        LRS_MASTER_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
    fi
    export LRS_MASTER_KEY
    if [ -n "${KEEP_DATA:-}" ] && [ -n "${OUT:-}" ]; then
        (umask 077 && echo "$LRS_MASTER_KEY" >"$OUT/master-key")
    fi
}

bench_data_dir() {
    # bench_data_dir PREFIX: DATA=a new directory under $TMPDIR named
    # PREFIX.XXXXXX, removed at exit unless KEEP_DATA (then its path is in
    # $OUT/data-dir; a script may put its data directory and others inside
    # it: DATA=$DATA/data)
    DATA=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    BENCH_REMOVE=$DATA
    if [ -n "${KEEP_DATA:-}" ] && [ -n "${OUT:-}" ]; then echo "$DATA" >"$OUT/data-dir"; fi
}

bench_credential() {
    # bench_credential NAME [ARGS...]: `lrs credentials add --name NAME ARGS`
    # on DATA, with the server stopped (it locks the data directory); prints
    # "KEY SECRET": read -r KEY SECRET < <(bench_credential bench)
    [ -z "$SERVER_PID" ] || bench_die "bench_credential: stop the server first"
    local name=$1 line
    shift
    # Captured first: a caller reading it through `< <(...)` goes on only
    # once `lrs` has exited and let go of the data directory's lock (on a
    # large store it takes seconds to close).
    line=$("$LRS" credentials add --name "$name" "$@" --data-dir "$DATA")
    echo "$line"
}

bench_load() {
    # bench_load ARGS...: lrs-load against the running server with the
    # credential KEY and SECRET, its JSON result appended to RESULTS. The
    # secret goes as --secret=…: a generated one may start with '-'.
    "$LOAD" --url "$URL" --key "$KEY" --secret="$SECRET" --server-pid "$SERVER_PID" --json "$@" >>"$RESULTS"
}

bench_free_port() {
    # bench_free_port: prints a TCP port of 127.0.0.1 that nothing listens on
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bench_wait_port() {
    # bench_wait_port PORT [SECONDS]: waits until 127.0.0.1:PORT accepts a
    # connection (default at most 300 s); fails early if the server exits
    local port=$1 tries=$((${2:-300} * 10))
    local i
    for ((i = 0; i < tries; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        if [ -n "$SERVER_PID" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    return 1
}

bench_wait_follower() {
    # bench_wait_follower [SECONDS]: waits (default at most 600 s) until the
    # running server's Parquet follower has folded the log up to its head
    # (`$DATA/analytics/checkpoint.json` against lrs_log_head_position in
    # /metrics), printing progress every 10 s; so that reads are measured on
    # a settled server, not beside a follower still writing a bulk load
    # (docs/performance.md, 7 Dec). Returns 1 on timeout.
    local limit=${1:-600} started head folded
    started=$(date +%s)
    while true; do
        head=$(curl -s "$URL/metrics" | awk '/^lrs_log_head_position /{printf "%d", $2}')
        folded=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['position'])" \
            "$DATA/analytics/checkpoint.json" 2>/dev/null || echo 0)
        if [ -n "$head" ] && [ "$folded" -ge "$head" ]; then
            echo "# the Parquet follower is at the head ($head) after $(($(date +%s) - started)) s" >&2
            return 0
        fi
        if [ $(($(date +%s) - started)) -ge "$limit" ]; then
            echo "# the Parquet follower is still at $folded of $head after $limit s; measuring anyway" >&2
            return 1
        fi
        if [ $((($(date +%s) - started) % 10)) -eq 0 ]; then
            echo "# waiting for the Parquet follower: $folded of $head" >&2
        fi
        sleep 1
    done
}

# shellcheck disable=SC2119,SC2120 # the serve arguments are optional
bench_start_server() {
    # bench_start_server [SERVE ARGS...]: `lrs serve --data-dir "$DATA"` on a
    # free port of 127.0.0.1, stderr to $OUT/server.log (appended to after the
    # first start of the run); sets SERVER_PID, PORT and URL and returns once
    # the port accepts connections
    [ -z "$SERVER_PID" ] || bench_die "bench_start_server: a server is already running (pid $SERVER_PID)"
    if [ "$BENCH_STARTS" -eq 0 ]; then : >"$OUT/server.log"; fi
    BENCH_STARTS=$((BENCH_STARTS + 1))
    PORT=$(bench_free_port)
    URL=http://127.0.0.1:$PORT
    if [ "$BENCH_RATE_LIMITS" = off ]; then
        LRS_RATE_PER_ADDRESS=${LRS_RATE_PER_ADDRESS:-0} LRS_RATE_PER_CREDENTIAL=${LRS_RATE_PER_CREDENTIAL:-0} \
            "$LRS" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" "$@" 2>>"$OUT/server.log" &
    else
        "$LRS" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" "$@" 2>>"$OUT/server.log" &
    fi
    SERVER_PID=$!
    if ! bench_wait_port "$PORT"; then
        tail -n 20 "$OUT/server.log" >&2 || true
        bench_die "the server did not start on $URL (log: $OUT/server.log)"
    fi
}

# shellcheck disable=SC2034,SC2119,SC2120 # STARTED_IN is for the scripts; the serve arguments are optional
bench_start_server_timed() {
    # bench_start_server_timed [SERVE ARGS...]: bench_start_server, and in
    # STARTED_IN the seconds (one decimal) until the port accepted
    # connections: how long opening the store took
    local t0
    t0=$(date +%s.%N)
    bench_start_server "$@"
    STARTED_IN=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
}

bench_next_unit() {
    # bench_next_unit: the `next_unit` of the last lrs-load run in RESULTS
    # (a fill), where the next fill goes on: NEXT=$(bench_next_unit)
    tail -n1 "$RESULTS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_unit"])'
}

bench_stop_server() {
    # bench_stop_server: SIGTERM to the server, waits for it to exit, prints
    # "# server stopped (SIGTERM) in S s, exit status N" to stderr; nothing
    # when no server runs
    if [ -n "$SERVER_PID" ]; then
        local pid=$SERVER_PID rc=0 t0
        SERVER_PID=
        if kill -0 "$pid" 2>/dev/null; then
            t0=$(date +%s.%N)
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || rc=$?
            echo "# server stopped (SIGTERM) in $(python3 -c "print(round($(date +%s.%N) - $t0, 2))") s, exit status $rc" >&2
        else
            wait "$pid" 2>/dev/null || rc=$?
            echo "# server had already exited, status $rc" >&2
        fi
    fi
}

bench_cleanup() {
    # the EXIT trap: stops the server, removes the bench_data_dir directory
    # unless KEEP_DATA
    bench_stop_server
    if [ -n "$BENCH_REMOVE" ]; then
        if [ -z "${KEEP_DATA:-}" ]; then rm -rf "$BENCH_REMOVE"; else echo "data kept in $BENCH_REMOVE"; fi
    fi
}
trap bench_cleanup EXIT

bench_header() {
    # bench_header: two comment lines on stdout: the machine (cores, memory,
    # load, the data directory's file system) and what runs (commit, the lrs
    # binary and its build time, the server's pid and URL if one runs)
    local fs='?'
    if [ -e "${DATA:-}" ]; then
        fs=$(df -h "$DATA" | awk 'NR==2{print $1" ("$2" total, "$4" free)"}')
    fi
    echo "# machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, load average $(cut -d' ' -f1-3 /proc/loadavg); data dir ${DATA:-?} on $fs"
    echo "# commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' + local changes'); $LRS ($(date -r "$LRS" -u +%FT%TZ))${SERVER_PID:+; server pid $SERVER_PID at $URL}"
}

bench_rss() {
    # bench_rss: prints the server's "VmRSS VmHWM" in KiB (from /proc):
    # read -r rss hwm < <(bench_rss)
    if [ -z "$SERVER_PID" ] || [ ! -r "/proc/$SERVER_PID/status" ]; then bench_die "bench_rss: no server running"; fi
    awk '/^VmRSS/{r=$2} /^VmHWM/{h=$2} END{print r, h}' "/proc/$SERVER_PID/status"
}
