#!/usr/bin/env bash
# The figures the README's "Scale" section cites, measured on this machine: sha256 speed
# per core, CPU per GiB downloaded, peak memory against the number of workers, and one
# process's rate over loopback. Needs nginx, python3 and GNU time; a release build.
#
# usage: interop/scale_figures.sh [BIN]     (default target/release/fetchpool)
# Work files go to /dev/shm (a RAM disk, so the disk is not what is measured).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/target/release/fetchpool}
PORT=${FIGURES_PORT:-28186}
W=$(mktemp -d /dev/shm/fetchpool-figures.XXXXXX)
chmod 755 "$W"
NGINX=""
cleanup() { [ -z "$NGINX" ] || kill "$NGINX" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), fetchpool $("$BIN" --version | awk '{print $2}')"
mkdir -p "$W/www/big" "$W/www/mid" "$W/tmp"
# 16 files of 64 MiB (1 GiB) and 512 files of 2 MiB (1 GiB), with their sha256.
python3 - "$W" "$PORT" <<'PY'
import hashlib, os, sys
w, port = sys.argv[1], sys.argv[2]
for name, count, size in (("big", 16, 64 << 20), ("mid", 512, 2 << 20)):
    with open(f"{w}/{name}.tsv", "w") as out:
        for i in range(count):
            body = os.urandom(size)
            with open(f"{w}/www/{name}/{i}.bin", "wb") as f:
                f.write(body)
            out.write(f"http://127.0.0.1:{port}/{name}/{i}.bin\t{name}/{i}.bin\t{hashlib.sha256(body).hexdigest()}\n")
PY
chmod -R a+rX "$W/www"
cat > "$W/nginx.conf" <<CONF
worker_processes 2;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $W/tmp/body;
  proxy_temp_path $W/tmp/proxy;
  fastcgi_temp_path $W/tmp/fastcgi;
  uwsgi_temp_path $W/tmp/uwsgi;
  scgi_temp_path $W/tmp/scgi;
  default_type application/octet-stream;
  sendfile on;
  server { listen 127.0.0.1:$PORT; root $W/www; }
}
CONF
nginx -c "$W/nginx.conf" -g 'daemon off;' &
NGINX=$!
for _ in $(seq 100); do ss -ltn "sport = :$PORT" | grep -q LISTEN && break; sleep 0.1; done

# CPU seconds (user + sys), wall seconds and peak RSS of a command: "CPU WALL RSS_KIB".
measure() { /usr/bin/time -f "%U %S %e %M" "$@" 2> "$W/time" >/dev/null || true; awk 'END {printf "%.2f %.2f %d\n", $1 + $2, $3, $4}' "$W/time"; }

echo "== sha256 (fetchpool verify of 1 GiB in 16 files, from RAM)"
for threads in 1 "$(nproc)"; do
  read -r cpu wall _ < <(RAYON_NUM_THREADS=$threads measure "$BIN" verify -i "$W/big.tsv" -o "$W/www")
  echo "   $threads thread(s): $wall s wall, $cpu s CPU: $(python3 -c "print(round(1024 / $cpu))") MiB/s per core, $(python3 -c "print(round(1024 / $wall))") MiB/s in all"
done

echo "== download 1 GiB over loopback (16 x 64 MiB, -j 16), sha256 checked"
rm -rf "$W/out"
read -r cpu wall rss < <(measure "$BIN" -q -i "$W/big.tsv" -o "$W/out" -j 16)
echo "   $wall s wall ($(python3 -c "print(round(1024 / $wall))") MiB/s), $cpu s CPU ($(python3 -c "print(round($cpu, 2))") CPU-s per GiB), peak RSS $((rss / 1024)) MiB"

echo "== peak memory against workers (512 x 2 MiB, 1 GiB)"
for j in 1 16 64 256; do
  rm -rf "$W/out"
  read -r cpu wall rss < <(measure "$BIN" -q -i "$W/mid.tsv" -o "$W/out" -j "$j" --per-host "$j")
  echo "   -j $j: peak RSS $((rss / 1024)) MiB, $wall s wall ($(python3 -c "print(round(1024 / $wall))") MiB/s), $cpu s CPU"
done
