#!/usr/bin/env bash
# Channel benchmark: render and send through the adapters, no database.
#
#   benches/channels.sh [MESSAGES]        (default 50000)
#
# Email: `herald bench send --channel email` renders the shipped
# daily_bulletin for generated clients and sends it through the SMTP adapter
# (8 connections, reused) to Postfix's smtp-sink on loopback. The reference,
# in the same run and into the same sink, is Postfix's own load generator:
# `smtp-source -d -s 8 -l SIZE -m MESSAGES`, SIZE being the average size of
# herald's rendered messages. SMS: `herald bench send --channel sms` sends
# through the HTTP gateway adapter to a gateway herald starts on loopback.
# Needs Debian's postfix package (installed here if missing; not in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-50000}"
PORT=2525
if ! command -v smtp-sink >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
fi
cargo build --release --quiet
H="$PWD/target/release/herald"

smtp-sink -u nobody "127.0.0.1:$PORT" 1000 >/dev/null 2>&1 &
SINK=$!
trap 'kill $SINK 2>/dev/null || true' EXIT
sleep 1

json="$("$H" bench send --channel email --messages "$N" --concurrency 8 --json)"
rate=$(echo "$json" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["messages_per_second"]))')
size=$(echo "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["average_bytes"])')
start=$(date +%s.%N)
smtp-source -d -s 8 -l "$size" -m "$N" "127.0.0.1:$PORT"
end=$(date +%s.%N)
ref=$(python3 -c "print(round($N / ($end - $start)))")
echo "email: herald $rate msg/s, smtp-source $ref msg/s (-d -s 8 -l $size), ratio $(python3 -c "print(round($rate / $ref, 2))")"

"$H" bench send --channel sms --messages "$N" --concurrency 32
