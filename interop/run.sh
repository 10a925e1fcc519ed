#!/usr/bin/env bash
# make interop: fetchpool through real tinyproxy and Squid, from a real nginx.
#
# nginx (our own config) serves plain http on two loopback ports (a cross-port
# redirect between them) and https on 127.0.0.1:443 with a CA generated here.
# tinyproxy and Squid run their packaged configurations (copied from /etc), with only
# the lines a loopback test needs changed, printed below as diffs. CONNECT
# restrictions stay as packaged: Squid allows CONNECT only to 443 (SSL_ports), which is
# why the https origin listens on 443; tinyproxy ships its ConnectPort lines commented
# out (CONNECT to any port).
#
# For each proxy: plain-http files and a redirect must arrive in absolute form (nginx
# logs the proxy's Via header on each of them), https files and a redirect through
# CONNECT (the proxy's log shows CONNECT 127.0.0.1:443), all verified by sha256.
# Two failures must be kind `proxy`: https to a port Squid does not allow CONNECT to
# (tinyproxy allows it: ok there), and a plain-http origin that is down (the proxy's
# own error page: Squid's X-Squid-Error, tinyproxy's Server header).
# Needs root (port 443), nginx, tinyproxy, squid, openssl, curl and python3.
set -euo pipefail

HTTP_A=${INTEROP_HTTP_A:-28080}
HTTP_B=${INTEROP_HTTP_B:-28081}
HTTPS_ALT=${INTEROP_HTTPS_ALT:-28443}
DEAD=${INTEROP_DEAD_PORT:-28099}
SQUID_PORT=${INTEROP_SQUID_PORT:-23128}
TINY_PORT=${INTEROP_TINYPROXY_PORT:-28888}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FETCHPOOL:-$ROOT/target/debug/fetchpool}

for tool in nginx tinyproxy squid openssl curl python3; do
  command -v "$tool" >/dev/null || { echo "interop: $tool is missing (apt-get install nginx tinyproxy squid openssl curl python3)"; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "interop: needs root (nginx listens on 127.0.0.1:443, as Squid's SSL_ports require)"; exit 1; }
for port in 443 "$HTTP_A" "$HTTP_B" "$HTTPS_ALT" "$DEAD" "$SQUID_PORT" "$TINY_PORT"; do
  if ss -ltn "sport = :$port" | grep -q LISTEN; then
    echo "interop: port $port is taken; set INTEROP_* ports (443 must be free)"; exit 1
  fi
done

W=$(mktemp -d /tmp/fetchpool-interop.XXXXXX)
chmod 755 "$W"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "interop: kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

# Waits until something listens on 127.0.0.1:$1 (at most 20 s).
wait_port() {
  for _ in $(seq 200); do
    if ss -ltn "sport = :$1" | grep -q LISTEN; then return 0; fi
    sleep 0.1
  done
  echo "interop: nothing listens on port $1 after 20 s ($2)"; cat "$W"/*.log 2>/dev/null | tail -20; exit 1
}

echo "== certificates (a CA made for this run, and 127.0.0.1's certificate)"
cd "$W"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout ca.key -out ca.pem -subj "/CN=fetchpool interop CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout leaf.key -out leaf.csr -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > leaf.ext
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -extfile leaf.ext -out leaf.pem 2>/dev/null

echo "== nginx origin: http on $HTTP_A and $HTTP_B, https on 443"
mkdir -p www tmp
head -c 3000000 /dev/urandom > www/a.bin
head -c 12345 /dev/urandom > www/b.bin
chmod -R a+rX www
cat > nginx.conf <<CONF
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
events { worker_connections 256; }
http {
  log_format origin '\$server_port "\$request" via="\$http_via" \$status';
  access_log $W/nginx-access.log origin;
  client_body_temp_path $W/tmp/body;
  proxy_temp_path $W/tmp/proxy;
  fastcgi_temp_path $W/tmp/fastcgi;
  uwsgi_temp_path $W/tmp/uwsgi;
  scgi_temp_path $W/tmp/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$HTTP_A;
    root $W/www;
    location = /redirect { return 302 http://127.0.0.1:$HTTP_B/b.bin\$is_args\$args; }
  }
  server {
    listen 127.0.0.1:$HTTP_B;
    root $W/www;
  }
  server {
    listen 127.0.0.1:$HTTPS_ALT ssl;
    ssl_certificate $W/leaf.pem;
    ssl_certificate_key $W/leaf.key;
    root $W/www;
  }
  server {
    listen 127.0.0.1:443 ssl;
    ssl_certificate $W/leaf.pem;
    ssl_certificate_key $W/leaf.key;
    root $W/www;
    location = /redirect { return 301 https://127.0.0.1/b.bin\$is_args\$args; }
  }
}
CONF
nginx -c "$W/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
wait_port 443 nginx
wait_port "$HTTP_A" nginx
wait_port "$HTTP_B" nginx

echo "== tinyproxy $(tinyproxy -v | awk '{print $2}'), packaged config with these changes:"
mkdir -p /run/tinyproxy && chown tinyproxy:tinyproxy /run/tinyproxy   # what its unit's RuntimeDirectory does
: > "$W/tinyproxy.log"; chown tinyproxy "$W/tinyproxy.log"
sed -e "s/^Port 8888$/Port $TINY_PORT/" \
    -e "s|^#Listen 192.168.0.1$|Listen 127.0.0.1|" \
    -e "s|^LogFile \"/var/log/tinyproxy/tinyproxy.log\"$|LogFile \"$W/tinyproxy.log\"|" \
    -e "s|^PidFile \"/run/tinyproxy/tinyproxy.pid\"$|PidFile \"/run/tinyproxy/interop.pid\"|" \
    /etc/tinyproxy/tinyproxy.conf > tinyproxy.conf
diff /etc/tinyproxy/tinyproxy.conf tinyproxy.conf || true
tinyproxy -d -c "$W/tinyproxy.conf" &
PIDS+=($!)
wait_port "$TINY_PORT" tinyproxy

echo "== squid $(squid -v | sed -n 's/.*Version \([^ ]*\).*/\1/p'), packaged config with these changes:"
sed -e "s/^http_port 3128$/http_port 127.0.0.1:$SQUID_PORT/" /etc/squid/squid.conf > squid.conf
cat >> squid.conf <<CONF
# interop: own pid and logs, so a system squid and its logs are left alone
pid_filename $W/squid.pid
access_log stdio:$W/squid-access.log
cache_log $W/squid-cache.log
CONF
: > squid-access.log; : > squid-cache.log; chown proxy squid-access.log squid-cache.log
diff /etc/squid/squid.conf squid.conf || true
squid -N -f "$W/squid.conf" &
PIDS+=($!)
wait_port "$SQUID_PORT" squid

echo "== control: the proxies' CONNECT rules for a plain-http port (curl --proxytunnel)"
for p in "tinyproxy $TINY_PORT" "squid $SQUID_PORT"; do
  set -- $p
  code=$(curl -s -o /dev/null -w '%{http_connect}' -p -x "http://127.0.0.1:$2" "http://127.0.0.1:$HTTP_B/b.bin" || true)
  echo "   $1: CONNECT 127.0.0.1:$HTTP_B answered $code"
  echo "$1 $code" >> connect-control.txt
done

A=$(sha256sum www/a.bin | cut -d' ' -f1)
B=$(sha256sum www/b.bin | cut -d' ' -f1)
status=0
for p in "tinyproxy $TINY_PORT" "squid $SQUID_PORT"; do
  set -- $p
  name=$1; port=$2
  printf '%s\t%s\t%s\n' \
    "http://127.0.0.1:$HTTP_A/a.bin?via=$name" a.bin "$A" \
    "http://127.0.0.1:$HTTP_A/redirect?via=$name" b-redirect.bin "$B" \
    "https://127.0.0.1/a.bin?via=$name" a-tls.bin "$A" \
    "https://127.0.0.1/redirect?via=$name" b-tls-redirect.bin "$B" \
    "https://127.0.0.1:$HTTPS_ALT/a.bin?via=$name" a-tls-alt.bin "$A" \
    "http://127.0.0.1:$DEAD/nothing?via=$name" dead.bin "$A" > "list-$name.tsv"
  echo "== fetchpool through $name (http://127.0.0.1:$port)"
  set +e
  "$BIN" -i "list-$name.tsv" -o "out-$name" --proxy "http://127.0.0.1:$port" --no-proxy-env \
    --cacert ca.pem --retries 0 -j 4 --report "report-$name.jsonl"
  code=$?
  set -e
  echo "   exit $code"
  python3 "$ROOT/interop/check.py" "$name" "$W" "$HTTP_A" "$HTTP_B" "$HTTPS_ALT" "$DEAD" || status=1
done
if [ "$status" -ne 0 ]; then echo "interop: FAILED"; KEEP=1; exit 1; fi
echo "interop: 2 passed, 0 failed"
