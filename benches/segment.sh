#!/usr/bin/env bash
# Segment benchmark: `herald segment` over generated clients with 30 days of
# event history, against the same predicate as a SQL count run by SQLite's
# own shell on the same database, in the same run.
#
#   benches/segment.sh [CLIENTS]        (default 1000000)
#
# Reports per rule: herald's whole run (reading clients and evaluating),
# its pure evaluation rate (`herald bench eval`, the median of five rounds),
# the SQL count's time, and the ratio; and the first run, which builds the
# snapshot from the database. Importing the ~17 million history events takes
# most of the script's time (~20 min).
# With SEGMENT_BENCH_DIR=DIR the database is kept in DIR and reused by the
# next run with the same DIR, which then skips the import.
# Needs sqlite3 (installed from Debian if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000000}"
AS_OF=2026-11-25
if [ -n "${SEGMENT_BENCH_DIR:-}" ]; then
    W="$SEGMENT_BENCH_DIR"
    mkdir -p "$W"
else
    W="$(mktemp -d /tmp/herald-segbench.XXXXXX)"
    trap 'rm -rf "$W"' EXIT
fi
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3 >/dev/null; }

cargo build --release --quiet
H="$PWD/target/release/herald"
export HERALD_DATABASE_URL="sqlite://$W/herald.db"

if [ -f "$W/herald.db" ]; then
    echo "reusing the database in $W ($(sqlite3 "$W/herald.db" "SELECT COUNT(*) FROM clients") clients)"
else
    echo "generating and importing $N clients with 30 days of history..."
    "$H" demo-data --clients "$N" --out "$W/c.csv" --seed 1 --history 30 --as-of "$AS_OF" >/dev/null
    "$H" import clients "$W/c.csv" --json >/dev/null
    "$H" import events "$W/c.events.jsonl" --json >/dev/null
    rm "$W/c.csv" "$W/c.events.jsonl"
    # Statistics, so that SQLite's planner picks its best plan for the
    # reference counts (without them it scans every click per client).
    sqlite3 "$W/herald.db" ANALYZE
fi
mkdir -p "$W/rules"

# name | rule | SQL count of the same predicate
# "Within 30 days" of 2026-11-25 in Shanghai starts 2026-10-27 00:00 +08:00.
cat >"$W/rules/three_clause.rhai" <<'R'
client.risk_level >= "C3" && client.assets >= 1_000_000 && client.consent_sms
R
cat >"$W/rules/holds_or_watches.rhai" <<'R'
client.holds("600519") || client.watches("600519")
R
cat >"$W/rules/engaged.rhai" <<'R'
client.clicked_within(30) && !client.did("unsubscribed", 365)
R
declare -A SQL=(
    [three_clause]="SELECT COUNT(*) FROM clients WHERE risk_level >= 3 AND assets_fen >= 100000000 AND consent_sms = 1"
    [holds_or_watches]="SELECT COUNT(*) FROM clients WHERE instr(';'||holdings||';', ';600519;') > 0 OR instr(';'||watchlist||';', ';600519;') > 0"
    [engaged]="SELECT COUNT(*) FROM clients c WHERE EXISTS (SELECT 1 FROM events e WHERE e.client_id = c.id AND e.kind = 'clicked' AND e.occurred_at >= '2026-10-26T16:00:00') AND NOT EXISTS (SELECT 1 FROM events e WHERE e.client_id = c.id AND e.kind = 'unsubscribed' AND e.occurred_at >= '2025-11-25T16:00:00')"
)

now() { date +%s.%N; }
# The first run reads the clients from the database and writes the snapshot;
# the runs measured below read the snapshot, as every run does until the
# data changes.
cold=$(cd "$W" && "$H" segment three_clause --as-of "$AS_OF" --json --sample 0 | grep '"elapsed_ms"' | grep -o '[0-9]*')
echo "first run, reading $N clients from the database: $((cold / 1000)).$(( (cold % 1000) / 10 )) s"
printf "\n%-18s %10s %10s %12s %10s %8s %14s\n" rule matched sql_count herald_s sql_s ratio eval_clients/s
for rule in three_clause holds_or_watches engaged; do
    out=$(cd "$W" && "$H" segment "$rule" --as-of "$AS_OF" --json --sample 0)
    t0=$(now); sql_count=$(sqlite3 "$W/herald.db" "${SQL[$rule]}"); t1=$(now)
    matched=$(echo "$out" | grep '"matched"' | grep -o '[0-9]*')
    elapsed=$(echo "$out" | grep '"elapsed_ms"' | grep -o '[0-9]*')
    # Pure evaluation: five rounds over the population in memory, the median.
    rate=$(cd "$W" && "$H" bench eval "$rule" --as-of "$AS_OF" --rounds 5 --json |
        grep '"median_clients_per_second"' | grep -o '[0-9.]*' | head -1)
    awk -v r="$rule" -v m="$matched" -v c="$sql_count" -v e="$elapsed" -v s0="$t0" -v s1="$t1" -v rate="$rate" 'BEGIN {
        sql = s1 - s0; h = e / 1000;
        printf "%-18s %10d %10d %12.2f %10.2f %7.1fx %14.0f\n", r, m, c, h, sql, h / sql, rate }'
    [ "$matched" = "$sql_count" ] || echo "  MISMATCH: herald $matched, SQL $sql_count"
done
echo "targets: herald <= 3x the SQL count and <= 2 s; three_clause evaluation >= 3,000,000 clients/s"
