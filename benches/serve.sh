#!/usr/bin/env bash
# Fleet benchmark: one, two and three `herald serve` processes on one
# PostgreSQL sending one run of CLIENTS emails to Postfix's smtp-sink.
#
#   benches/serve.sh [CLIENTS]        (default 100000)
#
# Each round writes a campaign that fires a few seconds later, starts the
# processes, and times the run from its first sent message to its last;
# the rate is messages per second. Target: three processes at least as
# fast as one. On a 2-core machine the sink, PostgreSQL and the senders
# share the cores, so the figure says how much contention costs, not how
# far a fleet scales.
# Needs postfix (smtp-sink) and psql; installs postfix from Debian if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-100000}"
PG_ADMIN="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PORT=2527
W="$(mktemp -d /tmp/herald-servebench.XXXXXX)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}" ${SINK:-}; do kill "$p" 2>/dev/null || true; done
    rm -rf "$W"
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS herald_servebench WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
command -v smtp-sink >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null

cargo build --release --quiet
H="$PWD/target/release/herald"
cp -r rules templates "$W/"
mkdir -p "$W/campaigns"
cp -r campaigns/content "$W/campaigns/"
cat >"$W/herald.toml" <<TOML
[firm]
name = "某某证券股份有限公司"
short_name = "某某证券"

[email]
from = "某某证券 <research@example.com>"

[tracking]
base_url = "https://t.example.com"
secret = "herald-bench-key-not-for-sending"

[providers.sink]
kind = "smtp"
host = "127.0.0.1"
port = $PORT
tls = "none"
pool_size = 8

[providers.sink.limits]
concurrency = 8
rate_per_second = 100000

[providers.outbox]
kind = "outbox"
dir = "outbox"

[channels]
email = "sink"
sms = "outbox"

[sending]
lease_secs = 30
TOML
psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS herald_servebench WITH (FORCE)" >/dev/null
psql -q "$PG_ADMIN" -c "CREATE DATABASE herald_servebench" >/dev/null
export HERALD_DATABASE_URL="${PG_ADMIN%/*}/herald_servebench"
cd "$W"
echo "importing $N clients..."
"$H" demo-data --clients "$N" --out c.csv --seed 1 >/dev/null
# Every generated client with an email, consent or not, is one delivery
# or one suppression; the run's size is what the gates leave.
"$H" import clients c.csv --json >/dev/null

smtp-sink -u nobody "127.0.0.1:$PORT" 1000 >/dev/null 2>&1 &
SINK=$!
sleep 1

run_state() { # prints "sent pending" of the run of campaign $1
    "$H" runs --json | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    if r["run"]["campaign"] == sys.argv[1]:
        d = r["counts"]["deliveries"]
        print(d.get("sent", 0), sum(d.get(s, 0) for s in ("queued", "claimed", "sending")))
        break
else:
    print("0 -1")' "$1"
}

for procs in 1 2 3; do
    name="fleet$procs"
    at=$(TZ=Asia/Shanghai date -d "+6 seconds" +"%Y-%m-%d %H:%M:%S")
    cat >"campaigns/$name.toml" <<TOML
kind = "market_bulletin"
purpose = "marketing"
title = "基准测试"
audience = "broadcast"
templates = "market_bulletin"
channels = ["email"]
frequency_cap = 1000

[content]
file = "content/market_bulletin.json"

[trigger]
at = "$at"
TOML
    PIDS=()
    for i in $(seq 1 "$procs"); do
        "$H" serve --admin-listen "127.0.0.1:$((9480 + i))" 2>"serve-$procs-$i.log" &
        PIDS+=($!)
    done
    # Wait for the first message, then time to the last.
    while :; do read -r sent pending < <(run_state "$name"); [ "$sent" -gt 0 ] && break; sleep 0.2; done
    start=$(date +%s.%N); first=$sent
    while :; do read -r sent pending < <(run_state "$name"); [ "$pending" -eq 0 ] && break; sleep 0.5; done
    end=$(date +%s.%N)
    for p in "${PIDS[@]}"; do kill -TERM "$p"; done
    wait "${PIDS[@]}" 2>/dev/null || true
    rm "campaigns/$name.toml"
    rate=$(python3 -c "print(round(($sent - $first) / ($end - $start)))")
    echo "$procs process(es): $sent messages, $rate msg/s"
    eval "RATE$procs=$rate"
done
echo "ratio three/one: $(python3 -c "print(round($RATE3 / $RATE1, 2))") (target >= 1.0); two/one: $(python3 -c "print(round($RATE2 / $RATE1, 2))")"
