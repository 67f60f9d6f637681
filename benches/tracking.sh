#!/usr/bin/env bash
# Tracking benchmark: open-pixel hits on loopback against `herald serve
# --role tracking` on SQLite, from wrk spreading its requests over the
# tokens of 10,000 sent deliveries; every answer comes after its event is
# committed (the first open of a delivery is stored, later ones are
# recognised as repeats). Reference: `herald bench pixel-reference`, the
# same pixel from a bare axum handler that verifies and stores nothing,
# under the same load in the same run.
# Targets: at least 10,000 hits/s, and at least a third of the reference.
#
#   benches/tracking.sh [SECONDS]     (default 15)
# Needs wrk (installed from Debian if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-15}"
PORT=8093
REF=8094
W="$(mktemp -d /tmp/herald-trackbench.XXXXXX)"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; cp "$W"/serve.log /tmp/trackbench-serve.log 2>/dev/null || true; rm -rf "$W"' EXIT
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null

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
base_url = "http://127.0.0.1:$PORT"
secret = "herald-bench-key-not-for-sending"
listen = "127.0.0.1:$PORT"

[providers.outbox]
kind = "outbox"
dir = "outbox"

[channels]
email = "outbox"
sms = "outbox"
TOML
cat >"$W/campaigns/pixel.toml" <<TOML
kind = "market_bulletin"
purpose = "marketing"
title = "基准测试"
audience = "broadcast"
templates = "market_bulletin"
channels = ["email"]

[content]
file = "content/market_bulletin.json"
TOML
cat >"$W/paths.lua" <<'LUA'
local paths = {}
for line in io.lines(os.getenv("PATHS")) do paths[#paths + 1] = line end
local i = math.random(#paths)
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], { ["User-Agent"] = "Mozilla/5.0 (bench)" })
end
LUA
cd "$W"
export HERALD_DATABASE_URL="sqlite://$W/herald.db"
"$H" demo-data --clients 16000 --out c.csv --seed 3 >/dev/null
"$H" import clients c.csv --json >/dev/null
"$H" send pixel --key bench --json >/dev/null
run=$("$H" runs --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["run"]["id"])')
"$H" bench links --run "$run" | head -10000 >paths.txt
echo "$(wc -l <paths.txt) sent deliveries' open links"

rate() { sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p'; }
"$H" serve --role tracking --admin-listen 127.0.0.1:9495 2>serve.log &
PIDS+=($!)
sleep 2
herald_rate=$(PATHS=paths.txt wrk -t2 -c64 -d"${SECS}s" -s paths.lua "http://127.0.0.1:$PORT" | tee wrk-herald.txt | rate)
grep -E "Non-2xx|Socket errors" wrk-herald.txt || true
kill -TERM "${PIDS[0]}"; wait "${PIDS[0]}" || true
opens=$(sqlite3 herald.db "SELECT COUNT(*) FROM events WHERE kind = 'opened'" 2>/dev/null || echo "?")

"$H" bench pixel-reference --listen "127.0.0.1:$REF" &
PIDS+=($!)
sleep 1
ref_rate=$(PATHS=paths.txt wrk -t2 -c64 -d"${SECS}s" -s paths.lua "http://127.0.0.1:$REF" | rate)

echo "herald tracking: $herald_rate hits/s (opens stored: $opens: the first per delivery, and scanner-flagged fetches apart)"
echo "bare axum reference: $ref_rate hits/s"
echo "ratio: $(python3 -c "print(round($herald_rate / $ref_rate, 2))") (target >= 0.33; and >= 10000 hits/s)"
