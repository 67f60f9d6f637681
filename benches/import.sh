#!/usr/bin/env bash
# Import benchmark: herald's validated client import against the databases'
# own bulk loaders, measured in the same run on the same file.
#
#   benches/import.sh [CLIENTS]        (default 1000000)
#
# Reports, with ratios:
#   - SQLite: `sqlite3 .import` of the CSV (no validation, all text) vs
#     `herald import clients` into a fresh database, then a re-import of the
#     same file over the stored clients (the nightly CRM sync);
#   - peak memory of herald's import (GNU time's maximum resident set size);
#   - PostgreSQL (if reachable at $BENCH_PG_URL, default
#     postgres://postgres@127.0.0.1:5432/postgres): `COPY` into an all-text
#     table vs `herald import clients`.
# Needs sqlite3, GNU time and psql; installs the first two from Debian if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000000}"
PG_URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
W="$(mktemp -d /tmp/herald-bench.XXXXXX)"
trap 'rm -rf "$W"' EXIT

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need sqlite3 sqlite3
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

cargo build --release --quiet
H="$PWD/target/release/herald"

echo "generating $N clients..."
"$H" demo-data --clients "$N" --out "$W/clients.csv" --seed 1 --as-of 2026-11-25 >/dev/null
ls -l "$W/clients.csv" | awk '{printf "file: %.0f MB\n", $5/1e6}'

# Seconds, with GNU time's peak RSS (KB) kept in $W/rss.
timed() {
    /usr/bin/time -f "%e %M" -o "$W/time" "$@" >"$W/out" 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
    read -r secs rss <"$W/time"
    echo "$rss" >"$W/rss"
    echo "$secs"
}

ref_sqlite=$(timed sqlite3 "$W/ref.db" ".mode csv" ".import $W/clients.csv clients")

export HERALD_DATABASE_URL="sqlite://$W/herald.db"
"$H" init >/dev/null
fresh=$(timed "$H" import clients "$W/clients.csv" --json)
fresh_rss=$(cat "$W/rss")
grep -q '"imported": '"$N" "$W/out" || { echo "fresh import did not import $N rows:"; head -20 "$W/out"; exit 1; }
again=$(timed "$H" import clients "$W/clients.csv" --json)
again_rss=$(cat "$W/rss")
grep -q '"unchanged": '"$N" "$W/out" || { echo "re-import did not find $N unchanged rows"; exit 1; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "SQLite, $N clients"
printf "  %-44s %8s s\n" "sqlite3 .import (reference)" "$ref_sqlite"
printf "  %-44s %8s s   %sx reference (target <= 3)\n" "herald import, fresh" "$fresh" "$(ratio "$fresh" "$ref_sqlite")"
printf "  %-44s %8s s   %sx fresh (target <= 1.5)\n" "herald import, again (all unchanged)" "$again" "$(ratio "$again" "$fresh")"
printf "  %-44s %8s MB (target < 300)\n" "peak memory, fresh / again" "$((fresh_rss / 1024)) / $((again_rss / 1024))"

if pg_isready -q -d "$PG_URL" 2>/dev/null; then
    DB="herald_bench_$$"
    psql -q "$PG_URL" -c "CREATE DATABASE $DB" >/dev/null
    BENCH_URL="${PG_URL%/*}/$DB"
    cols=$(head -1 "$W/clients.csv" | tr -d '\r' | sed 's/,/ text, /g; s/$/ text/')
    psql -q "$BENCH_URL" -c "CREATE TABLE ref_clients ($cols)" >/dev/null
    ref_pg=$(timed psql -q "$BENCH_URL" -c "\\copy ref_clients FROM '$W/clients.csv' WITH (FORMAT csv, HEADER true)")
    export HERALD_DATABASE_URL="$BENCH_URL"
    "$H" init >/dev/null
    pg_fresh=$(timed "$H" import clients "$W/clients.csv" --json)
    pg_again=$(timed "$H" import clients "$W/clients.csv" --json)
    psql -q "$PG_URL" -c "DROP DATABASE $DB WITH (FORCE)" >/dev/null
    echo
    echo "PostgreSQL, $N clients"
    printf "  %-44s %8s s\n" "COPY (reference)" "$ref_pg"
    printf "  %-44s %8s s   %sx reference (target <= 3)\n" "herald import, fresh" "$pg_fresh" "$(ratio "$pg_fresh" "$ref_pg")"
    printf "  %-44s %8s s   %sx fresh\n" "herald import, again (all unchanged)" "$pg_again" "$(ratio "$pg_again" "$pg_fresh")"
else
    echo
    echo "PostgreSQL not reachable at $PG_URL: skipped"
fi
