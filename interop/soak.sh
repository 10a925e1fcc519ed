#!/usr/bin/env bash
# make soak: 200,000 jobs (as many requests and more) through a real nginx with faults injected
# between them.
#
# nginx (our own config, pid file and logs under a temp dir) serves a corpus of small
# files and a few over 1 MiB. Each request draws a fault from split_clients keyed on
# nginx's random $request_id: a reset (return 444: the connection closes without an
# answer), a 503, a stall (proxied to a local upstream that accepts and never answers,
# so fetchpool's idle timeout fires) or a slow drip ($limit_rate per request: 1 KiB/s
# for small files, 256 KiB/s for large ones); the rest are served normally. Once SOAK_RESTART_AT report lines are written, nginx is
# stopped (TERM, by pid) and started again SOAK_DOWN seconds later, breaking every
# transfer in flight and refusing connections meanwhile.
#
# fetchpool runs with its default retry policy; the list carries every file's sha256
# and size. Its RSS is sampled from /proc every second. interop/soak_check.py then
# checks: exactly one report line per listed job, every ok file on disk with the listed
# sha256, failures only of transient kinds and only in the restart window (a job whose
# retries all fall while nginx is down, or whose last attempt meets a fault just after),
# memory flat. Figures are printed.
# Needs nginx and python3; runs in about 2 minutes (release build).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FETCHPOOL:-$ROOT/target/release/fetchpool}
JOBS=${SOAK_JOBS:-200000}
PORT=${SOAK_PORT:-29380}
STALL_PORT=${SOAK_STALL_PORT:-29381}
RESTART_AT=${SOAK_RESTART_AT:-$((JOBS / 4))}
DOWN=${SOAK_DOWN:-1}
WORKERS=${SOAK_WORKERS:-16}
# Per mille of requests: resets, 503s, stalls, drips (the rest are served).
RESET=${SOAK_RESET:-10} E503=${SOAK_503:-10} STALL=${SOAK_STALL:-1} DRIP=${SOAK_DRIP:-2}

for tool in nginx python3; do
  command -v "$tool" >/dev/null || { echo "soak: $tool is missing (apt-get install nginx python3)"; exit 1; }
done
[ -x "$BIN" ] || { echo "soak: $BIN is missing (make release)"; exit 1; }
for port in "$PORT" "$STALL_PORT"; do
  if ss -ltn "sport = :$port" | grep -q LISTEN; then
    echo "soak: port $port is taken; set SOAK_PORT / SOAK_STALL_PORT"; exit 1
  fi
done

W=$(mktemp -d /tmp/fetchpool-soak.XXXXXX)
chmod 755 "$W"
NGINX_PID=
STALL_PID=
FP_PID=
SAMPLER_PID=
cleanup() {
  for pid in $FP_PID $SAMPLER_PID $NGINX_PID $STALL_PID; do kill "$pid" 2>/dev/null || true; done
  for pid in $FP_PID $SAMPLER_PID $NGINX_PID $STALL_PID; do wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "soak: kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 200); do
    if ss -ltn "sport = :$1" | grep -q LISTEN; then return 0; fi
    sleep 0.1
  done
  echo "soak: nothing listens on port $1 after 20 s ($2)"; tail -20 "$W/nginx-error.log" 2>/dev/null; exit 1
}

echo "== corpus and list: $JOBS jobs"
mkdir -p "$W/www/f" "$W/www/big" "$W/tmp"
python3 - "$W" "$JOBS" "$PORT" <<'PY'
import hashlib, os, random, sys
work, jobs, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(12)
files = []
for k in range(1000):
    # Every 100th file is over 1 MiB: it gets its sidecar early and resumes with Range.
    size = rng.randint(1_100_000, 1_600_000) if k % 100 == 0 else rng.randint(200, 4000)
    data = rng.randbytes(size)
    with open(f"{work}/www/{'big' if size > 1 << 20 else 'f'}/{k}.bin", "wb") as f:
        f.write(data)
    files.append((hashlib.sha256(data).hexdigest(), size, "big" if size > 1 << 20 else "f"))
with open(f"{work}/list.tsv", "w") as out:
    for i in range(jobs):
        k = i % 1000
        # A large file for one job in 500 (files 0 and 500), a small one for the others.
        if k % 100 == 0 and i % 500 != 0:
            k += 1
        sha, size, folder = files[k]
        out.write(f"http://127.0.0.1:{port}/{folder}/{k}.bin?job={i}\td{i % 100}/j{i}.bin\t{sha}\t{size}\n")
PY
chmod -R a+rX "$W/www"

# The stall: accepts, reads nothing, answers nothing, closes after a minute.
python3 - "$STALL_PORT" <<'PY' &
import socket, sys, threading, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1024)
held = []
def reaper():
    while True:
        time.sleep(5)
        now = time.time()
        for c, t in list(held):
            if now - t > 60:
                c.close()
                held.remove((c, t))
threading.Thread(target=reaper, daemon=True).start()
while True:
    c, _ = s.accept()
    held.append((c, time.time()))
PY
STALL_PID=$!

# Shares as split_clients percentages (per mille / 10).
pct() { python3 -c "print(f'{float($1)/10:.2f}%')"; }
cat > "$W/nginx.conf" <<CONF
worker_processes 2;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
events { worker_connections 1024; }
http {
  log_format soak '\$fault \$status \$body_bytes_sent \$request_time';
  access_log $W/nginx-access.log soak;
  client_body_temp_path $W/tmp/body;
  proxy_temp_path $W/tmp/proxy;
  fastcgi_temp_path $W/tmp/fastcgi;
  uwsgi_temp_path $W/tmp/uwsgi;
  scgi_temp_path $W/tmp/scgi;
  default_type application/octet-stream;
  keepalive_requests 1000;
  split_clients "\${request_id}\${connection}" \$fault {
    $(pct "$RESET") reset;
    $(pct "$E503") e503;
    $(pct "$STALL") stall;
    $(pct "$DRIP") drip;
    * ok;
  }
  map \$fault \$drip_rate { drip 1k; default 0; }
  map \$fault \$big_drip_rate { drip 256k; default 0; }
  server {
    listen 127.0.0.1:$PORT;
    root $W/www;
    location /f/ {
      if (\$fault = reset) { return 444; }
      if (\$fault = e503) { return 503; }
      if (\$fault = stall) { rewrite ^ /stall last; }
      set \$limit_rate \$drip_rate;
    }
    location /big/ {
      if (\$fault = reset) { return 444; }
      if (\$fault = e503) { return 503; }
      if (\$fault = stall) { rewrite ^ /stall last; }
      set \$limit_rate \$big_drip_rate;
    }
    location = /stall {
      internal;
      proxy_pass http://127.0.0.1:$STALL_PORT;
      proxy_read_timeout 120s;
    }
  }
}
CONF
start_nginx() {
  nginx -c "$W/nginx.conf" -g 'daemon off;' &
  NGINX_PID=$!
  wait_port "$PORT" nginx
}
start_nginx
wait_port "$STALL_PORT" stall-upstream

echo "== fetchpool: -j $WORKERS, default retries, --idle-timeout 2; nginx restart after $RESTART_AT report lines (${DOWN}s down)"
start=$(date +%s.%N)
set +e
"$BIN" -i "$W/list.tsv" -o "$W/out" -j "$WORKERS" --per-host "$WORKERS" --idle-timeout 2 \
  --report "$W/report.jsonl" --json -q > "$W/summary.json" 2> "$W/stderr.log" &
FP_PID=$!
set -e
( while [ -r "/proc/$FP_PID/status" ]; do
    awk '/^VmRSS:/ {print $2}' "/proc/$FP_PID/status" 2>/dev/null
    sleep 1
  done > "$W/rss.txt" ) &
SAMPLER_PID=$!

# The restart window, in report lines: from the last line written before nginx stopped
# to the last written SOAK_SETTLE (20) seconds after it is back. Jobs started while nginx
# is down fail their first attempts at once and wait for their retries (up to 7 s of
# backoff, plus 2 s for each stall drawn), so every job the outage touched has ended by
# then. Failures are expected only inside it.
restarted=0
lines() { if [ -f "$W/report.jsonl" ]; then wc -l < "$W/report.jsonl"; else echo 0; fi; }
while kill -0 "$FP_PID" 2>/dev/null; do
  if [ "$restarted" = 0 ] && [ "$(lines)" -ge "$RESTART_AT" ]; then
    window_start=$(lines)
    t_stop=$(date +%s.%N)
    kill "$NGINX_PID"; wait "$NGINX_PID" 2>/dev/null || true
    t=$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")
    echo "   restart at ${t}s, after $window_start report lines: nginx stopped (pid $NGINX_PID), started again ${DOWN}s later"
    sleep "$DOWN"
    start_nginx
    back=$(date +%s)
    restarted=1
  fi
  if [ "$restarted" = 1 ] && [ "$(date +%s)" -ge $((back + ${SOAK_SETTLE:-20})) ]; then
    echo "$window_start $(lines) $(python3 -c "print($t_stop - $start, $(date +%s.%N) - $start)")" > "$W/restart-window.txt"
    restarted=2
  fi
  sleep 0.2
done
[ "$restarted" != 1 ] || echo "$window_start $(lines) $(python3 -c "print($t_stop - $start, $(date +%s.%N) - $start)")" > "$W/restart-window.txt"
set +e
wait "$FP_PID"
code=$?
set -e
FP_PID=
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=
elapsed=$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")
kill "$NGINX_PID"; wait "$NGINX_PID" 2>/dev/null || true
NGINX_PID=
echo "   fetchpool exit $code after ${elapsed}s"

if python3 "$ROOT/interop/soak_check.py" "$W" "$code" "$elapsed"; then
  echo "soak: passed"
else
  echo "soak: FAILED (work dir kept: $W)"; KEEP=1; exit 1
fi
