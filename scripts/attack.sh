#!/usr/bin/env bash
# Throw hostile requests at a live `braid serve` and check every answer (docs/serve.md "Security").
#
#   bash scripts/attack.sh [BRAID] [RUN INDEX]
#
# BRAID: the braid executable (default build/apps/braid/braid). Without RUN and INDEX a tiny run is
# built first in a temporary folder (48 emoji via `braid data build emoji`, one epoch of
# recipes/emoji_clip.yaml, a flat index of its images; ~5 s). The server runs with --max-body-mb 1
# under a 4 GB address-space cap. Each attack prints "ok" or "FAIL" with the code it got; at the
# end /api/health must still answer, the server's peak RSS must stay under 600 MB and SIGTERM must
# stop it (exit 0) within 5 s while a slow client is still connected. Exit 0 when everything held,
# 1 when something did not, 77 when curl or python3 is missing (ctest counts that as skipped).
# ctest runs it as Serve.AttackScript (~16 s: 5 s for the tiny run, 10 s of waiting out the header
# deadline of slow clients that stay connected while the other attacks run).
set -uo pipefail
cd "$(dirname "$0")/.."
BRAID=${1:-build/apps/braid/braid}
RUN=${2:-}
INDEX=${3:-}
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "attack.sh: $tool is not installed; skipped"; exit 77; }
done
[ -x "$BRAID" ] || { echo "attack.sh: $BRAID is not an executable (build first, or pass its path)"; exit 1; }
BRAID=$(cd "$(dirname "$BRAID")" && pwd)/$(basename "$BRAID")

WORK=$(mktemp -d /tmp/braid_attack.XXXXXX)
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "$RUN" ]; then
  echo "building a tiny run in $WORK ..."
  "$BRAID" data build emoji --out "$WORK/data" --limit 48 >"$WORK/build.log" 2>&1 &&
    "$BRAID" train recipes/emoji_clip.yaml --data "$WORK/data/manifest.jsonl" --out "$WORK/run" \
      --set train.epochs=1 --set data.text.vocab=200 --threads 1 >"$WORK/train.log" 2>&1 &&
    "$BRAID" embed "$WORK/run" --data "$WORK/data/manifest.jsonl" --modality image \
      --out "$WORK/img.safetensors" >"$WORK/embed.log" 2>&1 &&
    "$BRAID" index build --embeddings "$WORK/img.safetensors" --type flat --out "$WORK/index" >"$WORK/index.log" 2>&1 ||
    { echo "attack.sh: could not build the tiny run:"; tail -3 "$WORK"/*.log; exit 1; }
  RUN=$WORK/run
  INDEX=$WORK/index
fi

# the server, under an address-space cap, on a free port
(ulimit -v $((4 * 1024 * 1024)); exec "$BRAID" serve "$RUN" --index "$INDEX" --port 0 --max-body-mb 1 \
   --http-threads 2 >"$WORK/serve.log" 2>&1) &
SERVER_PID=$!
PORT=
for _ in $(seq 200); do
  PORT=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$WORK/serve.log")
  [ -n "$PORT" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$PORT" ] || { echo "attack.sh: the server did not start:"; cat "$WORK/serve.log"; exit 1; }
URL=http://127.0.0.1:$PORT
echo "braid serve on $URL (pid $SERVER_PID)"

FAILS=0
# expect CODE WHAT CURL-ARGS...: one request, its status must be CODE (within 10 s)
expect() {
  local want=$1 what=$2
  shift 2
  local got
  got=$(curl -s -o "$WORK/body" -w '%{http_code}' --max-time 10 "$@")
  if [ "$got" = "$want" ]; then
    printf '  ok    %s  %s\n' "$got" "$what"
  else
    printf '  FAIL  %s  %s (expected %s) %s\n' "$got" "$what" "$want" "$(head -c 200 "$WORK/body")"
    FAILS=$((FAILS + 1))
  fi
}
check() {  # check WHAT CONDITION-COMMAND...
  local what=$1
  shift
  if "$@"; then printf '  ok    %s\n' "$what"; else printf '  FAIL  %s\n' "$what"; FAILS=$((FAILS + 1)); fi
}
JSON=(-H 'Content-Type: application/json')

# slowloris: N connections that send one header line and then nothing. Prints how long opening them
# took and the status each got (WAIT seconds at most; "none" = no answer yet).
cat >"$WORK/slow.py" <<'EOF'
import socket, sys, time
port, n, wait = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []; t0 = time.time()
for _ in range(n):
    s = socket.create_connection(('127.0.0.1', port)); s.sendall(b'GET /api/health HTTP/1.1\r\nHost: localhost\r\n'); socks.append(s)
print('connected in %.2f s,' % (time.time() - t0), end=' ', flush=True)
t0 = time.time(); codes = {}
for s in socks:
    s.settimeout(max(0.01, wait - (time.time() - t0)))
    try: head = s.recv(64).decode('latin-1')
    except Exception: head = ''
    code = head[9:12] if head.startswith('HTTP/1.1 ') else 'none'
    codes[code] = codes.get(code, 0) + 1
print('codes', sorted(codes.items()), 'after %.1f s' % (time.time() - t0), flush=True)
for s in socks: s.close()
EOF

# 10 slow clients for the whole run: every other attack below is answered while they hang, and they
# get 408 at the 10 s header deadline.
python3 "$WORK/slow.py" "$PORT" 10 20 >"$WORK/slow10.out" 2>&1 &
SLOW=$!
sleep 0.3

T_START=$(date +%s.%N)
section() { printf '%s (at %.1f s)\n' "$1" "$(python3 -c "print($(date +%s.%N) - $T_START)")"; }
section "sizes and encodings"
python3 -c "print('{\"text\": \"' + 'a' * 3000000 + '\"}')" >"$WORK/big.json"
expect 413 "3 MB JSON body (limit 1 MB)" "${JSON[@]}" --data-binary @"$WORK/big.json" "$URL/api/search"
expect 413 "3 MB chunked body" "${JSON[@]}" -H 'Transfer-Encoding: chunked' --data-binary @"$WORK/big.json" "$URL/api/search"
python3 -c "import gzip,sys; sys.stdout.buffer.write(gzip.compress(b'{\"text\": \"' + b'a' * 50000000 + b'\"}'))" >"$WORK/bomb.gz"
expect 415 "gzip body ($(stat -c %s "$WORK/bomb.gz") bytes inflating to 50 MB)" "${JSON[@]}" \
  -H 'Content-Encoding: gzip' --data-binary @"$WORK/bomb.gz" "$URL/api/search"
expect 501 "Transfer-Encoding: gzip, chunked" "${JSON[@]}" -H 'Transfer-Encoding: gzip, chunked' -d '{"text":"x"}' "$URL/api/search"
HEADERS=()
for i in $(seq 200); do HEADERS+=(-H "X-Filler-$i: y"); done
expect 431 "200 header lines" "${HEADERS[@]}" "$URL/api/health"
expect 431 "one 100 KB header" -H "X-Big: $(head -c 100000 /dev/zero | tr '\0' a)" "$URL/api/health"
expect 431 "a 100 KB request line" "$URL/api/health?$(head -c 100000 /dev/zero | tr '\0' a)"

section "content types, JSON and k"
expect 415 "text/plain POST (cross-site form)" -H 'Content-Type: text/plain' -d '{"text":"x"}' "$URL/api/search"
expect 415 "no Content-Type" -H 'Content-Type:' -d '{"text":"x"}' "$URL/api/search"
expect 400 "body that is not JSON" "${JSON[@]}" -d '{"text": "x"' "$URL/api/search"
expect 400 "JSON without text" "${JSON[@]}" -d '[1, 2, 3]' "$URL/api/search"
expect 400 "invalid UTF-8 text is replaced, k=0 refused" "${JSON[@]}" --data-binary $'{"text": "\xff\xfe", "k": 0}' "$URL/api/search"
expect 400 "?k=1e9" "${JSON[@]}" -d '{"text":"x"}' "$URL/api/search?k=1e9"
expect 400 "?k=5abc" "${JSON[@]}" -d '{"text":"x"}' "$URL/api/search?k=5abc"
expect 400 "?k=999999999" "${JSON[@]}" -d '{"text":"x"}' "$URL/api/search?k=999999999"
expect 400 '{"k": 1e12}' "${JSON[@]}" -d '{"text":"x", "k": 1000000000000}' "$URL/api/search"
expect 200 "a plain search still works" "${JSON[@]}" -d '{"text":"red heart", "k": 3}' "$URL/api/search"

section "cross-site"
expect 403 "foreign Host (DNS rebinding)" -H 'Host: evil.example' "$URL/api/health"
printf 'junk' >"$WORK/x.png"
expect 403 "multipart upload from another Origin" -H 'Origin: http://evil.example' -F image=@"$WORK/x.png" "$URL/api/search"

section "paths"
for p in /media/../../../../etc/passwd /static/../../../../etc/passwd '/static/..%2f..%2f..%2fetc%2fpasswd' \
  /media/99999999 /media/-1 '/media/0%00.png' /etc/passwd; do
  expect 404 "GET $p" --path-as-is "$URL$p"
done
SIZE0=$(curl -s "$URL/media/0" | wc -c)
RANGES=$(python3 -c "print(','.join(['0-'] * 2500))")
GOT=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -H "Range: bytes=$RANGES" "$URL/media/0")
check "2500 ranges of /media/0 -> the file once ($GOT, file $SIZE0 bytes)" test "$GOT" = "200 $SIZE0"

section "decode bombs"
python3 - "$WORK" <<'EOF'
import struct, sys, zlib
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
ihdr = struct.pack('>IIBBBBB', 16384, 16384, 1, 0, 0, 0, 0)  # 16384 x 16384, 1-bit gray
rows = zlib.compress(b'\0' * (1 + 16384 // 8) * 64)  # a few rows; the header is what matters
open(sys.argv[1] + '/bomb.png', 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', rows) + chunk(b'IEND', b''))
pcm = b'\0\0' * 500000
hdr = b'RIFF' + struct.pack('<I', 36 + len(pcm)) + b'WAVEfmt ' + struct.pack('<IHHIIHH', 16, 1, 1, 8, 16, 2, 16)
open(sys.argv[1] + '/bomb.wav', 'wb').write(hdr + b'data' + struct.pack('<I', len(pcm)) + pcm)
EOF
expect 400 "PNG declaring 16384x16384 (268 M pixels)" -F image=@"$WORK/bomb.png" "$URL/api/embed"
expect 400 "WAV declaring 8 Hz" -F audio=@"$WORK/bomb.wav" "$URL/api/embed"

section "slow clients"
# 60 more: with the 10 above that is 70 > 64 connection slots; those over are answered 503 at once,
# never queued; /api/health too gets 503 at once while all slots are held, and 200 once they close.
python3 "$WORK/slow.py" "$PORT" 60 1.5 >"$WORK/slow60.out" 2>&1 &
BURST=$!
sleep 0.7
HEALTH=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 5 "$URL/api/health")
check "/api/health while every slot is held answers at once ($HEALTH)" bash -c "[[ '$HEALTH' =~ ^503\ 0\.[0-9]+ ]]"
wait "$BURST"
BURSTOUT=$(cat "$WORK/slow60.out")
check "60 more slow connections: those over the 64 slots get 503 at once ($BURSTOUT)" \
  bash -c "grep -q \"('503', 6)\" <<<\"$BURSTOUT\""
# the library listens with a backlog of 5: 60 connections at once then waited 1 s per SYN retry (~10 s)
check "60 connections opened at once (accept backlog)" grep -q "connected in 0\." "$WORK/slow60.out"
sleep 0.3
expect 200 "/api/health once the burst closed" "$URL/api/health"
wait "$SLOW"
SLOWOUT=$(cat "$WORK/slow10.out")
check "10 slow clients held through all attacks get 408 at the 10 s header deadline ($SLOWOUT)" \
  bash -c "grep -q \"codes \[('408', 10)\]\" <<<\"$SLOWOUT\""

section "after the attacks"
expect 200 "/api/health" "$URL/api/health"
PEAK_KB=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$SERVER_PID/status" 2>/dev/null)
check "peak RSS ${PEAK_KB:-?} kB < 600 MB" test "${PEAK_KB:-999999999}" -lt 614400
exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'GET /api/health HTTP/1.1\r\nHost: localhost\r\n' >&3
T0=$(date +%s.%N)
kill -TERM "$SERVER_PID"
RC=0
wait "$SERVER_PID" || RC=$?
T1=$(date +%s.%N)
SERVER_PID=
exec 3>&-
TOOK=$(python3 -c "print(round($T1 - $T0, 1))")
check "SIGTERM with a slow client connected: exit $RC after $TOOK s (expected 0 within 5 s)" \
  python3 -c "import sys; sys.exit(0 if $RC == 0 and $TOOK < 5 else 1)"

if [ "$FAILS" -ne 0 ]; then
  echo "attack.sh: $FAILS check(s) failed; server log:"
  tail -20 "$WORK/serve.log"
  exit 1
fi
echo "attack.sh: every attack was refused and the server stayed up"
