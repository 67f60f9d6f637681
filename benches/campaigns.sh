#!/usr/bin/env bash
# Campaign benchmark: planning a run and dispatching it, on SQLite and on
# PostgreSQL, over generated clients with 30 days of event history (so that
# the frequency cap and engagement rules cost what they will).
#
#   benches/campaigns.sh [CLIENTS] [SENDS]      (defaults 1000000 and 100000)
#   BACKENDS=sqlite benches/campaigns.sh …      (sqlite, postgres, or both: the default)
#
# Plan: `herald bench plan` plans the shipped daily_bulletin (a rule, every
# gate, deliveries and suppressions written in one transaction); the
# reference, in the same run and through the same driver, inserts the same
# number of delivery rows with one prepared statement in one transaction.
# Targets: at most 10 s on SQLite, within 4x the reference; PostgreSQL within
# 2x of SQLite.
#
# Send: a campaign selecting about SENDS clients is planned, then `herald
# send` claims, renders, sends to Postfix's smtp-sink and records every
# outcome; the reference, in the same run and into the same sink, is the
# channel adapter alone (`herald bench send`), run just before and just after
# the send and averaged, each timed over its sending alone. Target: at least
# 0.8. The plan's daily_bulletin run stays queued beside it, as a run
# awaiting approval would in production: a send claims its own run's queue
# only.
#
# Importing the history takes most of the time (~20 min per backend for 1M).
# Needs postfix (smtp-sink) and psql; installs postfix from Debian if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000000}"
S="${2:-100000}"
PG_ADMIN="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PORT=2526
W="$(mktemp -d /tmp/herald-campbench.XXXXXX)"
# The scratch database goes before the folder the script stands in.
trap 'kill $SINK 2>/dev/null || true; cd /; psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS herald_campbench WITH (FORCE)" >/dev/null 2>&1 || true; rm -rf "$W"' EXIT
SINK=
command -v smtp-sink >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null

cargo build --release --quiet
H="$PWD/target/release/herald"
cp -r rules templates campaigns "$W/"
cat >"$W/herald.toml" <<EOF
[firm]
name = "某某证券股份有限公司"
short_name = "某某证券"
licence = "某某证券股份有限公司具备中国证监会核准的证券投资咨询业务资格。"

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
EOF
# About S clients (ids are zero-padded in order), by email only.
printf 'client.id <= "%010d"\n' "$((S * 100 / 60))" >"$W/rules/bench_send.rhai"
cat >"$W/campaigns/bench_send.toml" <<EOF
kind = "market_bulletin"
purpose = "marketing"
title = "基准测试"
audience = "bench_send"
templates = "market_bulletin"
channels = ["email"]

[content]
file = "content/market_bulletin.json"
EOF

echo "generating $N clients with 30 days of history..."
"$H" demo-data --clients "$N" --out "$W/c.csv" --seed 1 --history 30 >/dev/null

smtp-sink -u nobody "127.0.0.1:$PORT" 1000 >/dev/null 2>&1 &
SINK=$!
sleep 1

seconds() { python3 -c 'import sys,time; print(time.time())'; }
# The channel adapter alone sending N messages (rendered from the same
# templates) into the same sink: messages per second.
reference() {
    "$H" --config "$W/herald.toml" bench send --channel email --smtp "127.0.0.1:$PORT" --messages "$1" --concurrency 8 --json |
        python3 -c 'import json,sys; print(round(json.load(sys.stdin)["messages_per_second"]))'
}
one_backend() {
    local name="$1"
    echo
    echo "== $name: importing..."
    "$H" --config "$W/herald.toml" import clients "$W/c.csv" --json >/dev/null
    "$H" --config "$W/herald.toml" import events "$W/c.events.jsonl" --json >/dev/null
    # Warm the segment snapshot, as a scheduled run finds it.
    "$H" --config "$W/herald.toml" segment bulletin_audience --json >/dev/null
    "$H" --config "$W/herald.toml" bench plan --campaign daily_bulletin
    "$H" --config "$W/herald.toml" send bench_send --plan-only --key bench --json >"$W/plan.json"
    # The reference runs before and after the send and the two are
    # averaged: on a shared machine the speed drifts within minutes.
    local start end sent before after
    before=$(reference "$(python3 -c 'import json; print(json.load(open("'"$W/plan.json"'"))["counts"]["deliveries"]["queued"])')")
    start=$(seconds)
    "$H" --config "$W/herald.toml" send bench_send --key bench --json >"$W/send.json"
    end=$(seconds)
    sent=$(python3 -c 'import json; print(json.load(open("'"$W/send.json"'"))["counts"]["deliveries"].get("sent", 0))')
    after=$(reference "$sent")
    local rate whole ref
    # Like the adapter's own figure, the rate is over the sending alone
    # (herald's sending_seconds: claim, render, send, record); the whole
    # command's (process start, opening the database, the closing
    # checkpoint) is given beside it.
    rate=$(python3 -c 'import json; d=json.load(open("'"$W/send.json"'")); print(round(d["counts"]["deliveries"].get("sent", 0) / d["sending_seconds"]))')
    whole=$(python3 -c "print(round($sent / ($end - $start)))")
    ref=$(python3 -c "print(round(($before + $after) / 2))")
    echo "$name adapter alone: $before msg/s before the send, $after after"
    echo "$name send: $sent messages claimed, rendered, sent and recorded at $rate msg/s ($whole msg/s over the whole command); adapter alone $ref msg/s; ratio $(python3 -c "print(round($rate / $ref, 2))") (target >= 0.8; $(python3 -c "print(round($whole / $ref, 2))") over the whole command)"
}

cd "$W"
BACKENDS="${BACKENDS:-both}"
if [ "$BACKENDS" != postgres ]; then
    export HERALD_DATABASE_URL="sqlite://$W/herald.db"
    one_backend SQLite
fi
[ "$BACKENDS" = sqlite ] && exit 0
psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS herald_campbench WITH (FORCE)" >/dev/null
psql -q "$PG_ADMIN" -c "CREATE DATABASE herald_campbench" >/dev/null
export HERALD_DATABASE_URL="${PG_ADMIN%/*}/herald_campbench"
rm -rf "$W/.herald-cache"
one_backend PostgreSQL
