#!/usr/bin/env bash
# make interop: fetchpool through real tinyproxy and Squid, from a real nginx; then
# resume, revalidation and change checks against real nginx, Apache, lighttpd, Caddy
# and moto's S3 server.
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
#
# Then real file servers, each with its own config, pid file and access log under the
# run's temp dir, on its own loopback port: nginx (a server block in the config above),
# Apache and lighttpd (their packaged configurations, with the changed lines printed as
# diffs), Caddy (the packaged Caddyfile, likewise) and moto's S3 server (moto[server]
# from PyPI in a venv kept under ~/.cache, started through interop/moto_server.py for
# an access log with request headers). interop/servers.py runs the same checks on each
# (a verified mixed list, an interrupted download resumed with 206, a re-run answered
# 304, files changed between runs, a complete .part, Apache's weak-ETag window, a
# user-supplied Accept-Encoding; for moto also re-generated presigned URLs) and prints
# one line per server and check, judged from the report, the bytes on disk and the
# server's access log, which logs the request headers the checks judge (Range,
# If-Range, If-None-Match, ...). INTEROP_SERVERS="apache2 moto" runs some of them.
# Last, interop/scale.sh runs the README's sharding recipes under GNU parallel and a
# one-node Slurm cluster it starts (see its header).
# Needs root (port 443), nginx, tinyproxy, squid, apache2, lighttpd (with
# lighttpd-mod-deflate), caddy, openssl, curl, python3 and python3-venv (pip reaches
# PyPI the first time, or when the pinned moto changes), parallel, slurm-wlm and munge.
set -euo pipefail

HTTP_A=${INTEROP_HTTP_A:-28080}
HTTP_B=${INTEROP_HTTP_B:-28081}
HTTPS_ALT=${INTEROP_HTTPS_ALT:-28443}
DEAD=${INTEROP_DEAD_PORT:-28099}
SQUID_PORT=${INTEROP_SQUID_PORT:-23128}
TINY_PORT=${INTEROP_TINYPROXY_PORT:-28888}
NGINX_PORT=${INTEROP_NGINX_PORT:-28180}
APACHE_PORT=${INTEROP_APACHE_PORT:-28181}
LIGHTTPD_PORT=${INTEROP_LIGHTTPD_PORT:-28182}
CADDY_PORT=${INTEROP_CADDY_PORT:-28183}
MOTO_PORT=${INTEROP_MOTO_PORT:-28184}
# The servers interop/servers.py checks (all by default).
SERVERS=${INTEROP_SERVERS:-nginx apache2 lighttpd caddy moto}
# moto pinned, so a new release cannot change what the checks see unnoticed.
MOTO_PIP=${INTEROP_MOTO:-moto[server]==5.2.5}
VENV=${INTEROP_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/fetchpool-interop/venv}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FETCHPOOL:-$ROOT/target/debug/fetchpool}

for tool in nginx tinyproxy squid apache2 lighttpd caddy openssl curl python3; do
  command -v "$tool" >/dev/null || { echo "interop: $tool is missing (apt-get install nginx tinyproxy squid apache2 lighttpd lighttpd-mod-deflate caddy openssl curl python3 python3-venv)"; exit 1; }
done
[ -e /usr/lib/lighttpd/mod_deflate.so ] || { echo "interop: lighttpd's mod_deflate is missing (apt-get install lighttpd-mod-deflate)"; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "interop: needs root (nginx listens on 127.0.0.1:443, as Squid's SSL_ports require)"; exit 1; }
for port in 443 "$HTTP_A" "$HTTP_B" "$HTTPS_ALT" "$DEAD" "$SQUID_PORT" "$TINY_PORT" \
  "$NGINX_PORT" "$APACHE_PORT" "$LIGHTTPD_PORT" "$CADDY_PORT" "$MOTO_PORT"; do
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
mkdir -p www tmp srv/nginx srv/apache2 srv/lighttpd srv/caddy
chmod 755 srv srv/*
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
  # The file server interop/servers.py checks: one tab-separated line per request with
  # the request headers it judges; gzip on for text, as sites commonly have it.
  log_format files escape=none '\$request_method\t\$uri\t\$args\t\$status\t\$http_range\t\$http_if_range\t\$http_if_none_match\t\$http_if_modified_since\t\$http_accept_encoding\t\$sent_http_content_encoding\t\$sent_http_content_range\t\$sent_http_etag';
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $W/srv/nginx;
    access_log $W/nginx-files.log files;
    types { text/plain txt; }
    gzip on;
    gzip_types text/plain;
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
proxies=$([ "$status" -eq 0 ] && echo "2 proxies passed" || echo "proxies FAILED")

# The same log line from Apache and lighttpd as from nginx's "files" format above:
# method, path, query, status, then the request headers the checks judge and the
# response's Content-Encoding, Content-Range and ETag.
FIELDS='Range If-Range If-None-Match If-Modified-Since Accept-Encoding'

echo "== apache2 $(apache2 -v | sed -n 's|.*Apache/\([^ ]*\).*|\1|p'), packaged config with these changes:"
# The packaged apache2.conf takes its run, pid, lock and log paths from envvars: set
# here instead, so none of those lines change. Only the listener and the site do.
mkdir -p apache2-run apache2-lock apache2-logs
sed -e "s|^Include ports.conf$|Listen 127.0.0.1:$APACHE_PORT|" \
    -e "s|^IncludeOptional sites-enabled/\*.conf$|Include $W/apache2-site.conf|" \
    /etc/apache2/apache2.conf > apache2.conf
diff /etc/apache2/apache2.conf apache2.conf || true
{
  printf 'LogFormat "%%m\\t%%U\\t%%q\\t%%>s'
  for h in $FIELDS; do printf '\\t%%{%s}i' "$h"; done
  printf '\\t%%{Content-Encoding}o\\t%%{Content-Range}o\\t%%{ETag}o" files\n'
  cat <<CONF
<VirtualHost 127.0.0.1:$APACHE_PORT>
  DocumentRoot $W/srv/apache2
  CustomLog $W/apache2-files.log files
</VirtualHost>
<Directory $W/srv/apache2>
  Require all granted
</Directory>
CONF
} > apache2-site.conf
echo "   site ($W/apache2-site.conf):"; sed 's/^/   /' apache2-site.conf
env APACHE_RUN_USER=www-data APACHE_RUN_GROUP=www-data APACHE_PID_FILE="$W/apache2.pid" \
  APACHE_RUN_DIR="$W/apache2-run" APACHE_LOCK_DIR="$W/apache2-lock" APACHE_LOG_DIR="$W/apache2-logs" \
  apache2 -d /etc/apache2 -f "$W/apache2.conf" -DFOREGROUND &
PIDS+=($!)

echo "== lighttpd $(lighttpd -v | sed -n 's|lighttpd/\([^ ]*\).*|\1|p'), packaged config with these changes:"
# use-ipv6.pl would add a listener on [::]:port; the test stays on 127.0.0.1.
{
  sed -e "s|^server.document-root .*|server.document-root        = \"$W/srv/lighttpd\"|" \
      -e "s|^server.errorlog .*|server.errorlog             = \"$W/lighttpd-error.log\"|" \
      -e "s|^server.pid-file .*|server.pid-file             = \"$W/lighttpd.pid\"|" \
      -e "s|^server.port .*|server.port                 = $LIGHTTPD_PORT\nserver.bind                 = \"127.0.0.1\"|" \
      -e "s|^include_shell \"/usr/share/lighttpd/use-ipv6.pl \" + server.port$|# &|" \
      /etc/lighttpd/lighttpd.conf
  echo '# interop: an access log with the request headers the checks judge; gzip for text'
  echo 'server.modules += ("mod_accesslog", "mod_deflate")'
  echo "accesslog.filename = \"$W/lighttpd-files.log\""
  printf 'accesslog.format = "%%m\t%%U\t%%q\t%%>s'
  for h in $FIELDS; do printf '\t%%{%s}i' "$h"; done
  printf '\t%%{Content-Encoding}o\t%%{Content-Range}o\t%%{ETag}o"\n'
  echo 'deflate.mimetypes = ("text/plain")'
  echo 'deflate.allowed-encodings = ("gzip", "deflate")'
} > lighttpd.conf
diff /etc/lighttpd/lighttpd.conf lighttpd.conf || true
# lighttpd opens its logs after dropping to www-data (Debian's unit leaves them to
# /var/log/lighttpd, owned by www-data).
: > lighttpd-error.log; : > lighttpd-files.log; chown www-data lighttpd-error.log lighttpd-files.log
lighttpd -D -f "$W/lighttpd.conf" &
PIDS+=($!)

echo "== caddy $(caddy version | awk '{print $1}'), packaged Caddyfile with these changes:"
# admin off: no admin endpoint on :2019 to collide with; Caddy's own state goes to $W.
{
  printf '{\n\tadmin off\n}\n\n'
  sed -e "s|^:80 {$|http://127.0.0.1:$CADDY_PORT {|" \
      -e "s|^\troot \* /usr/share/caddy$|\troot * $W/srv/caddy|" \
      -e "s|^\tfile_server$|&\n\tencode gzip\n\tlog {\n\t\toutput file $W/caddy-files.log\n\t\tformat json\n\t}|" \
      /etc/caddy/Caddyfile
} > Caddyfile
diff /etc/caddy/Caddyfile Caddyfile || true
mkdir -p caddy-home
XDG_CONFIG_HOME="$W/caddy-home" XDG_DATA_HOME="$W/caddy-home" \
  caddy run --config "$W/Caddyfile" --adapter caddyfile --pidfile "$W/caddy.pid" > caddy.log 2>&1 &
PIDS+=($!)

echo "== moto $MOTO_PIP (venv $VENV)"
if ! "$VENV/bin/python" -c 'import moto, boto3' 2>/dev/null \
    || [ "$(cat "$VENV/interop-pip" 2>/dev/null)" != "$MOTO_PIP" ]; then
  # Only a venv is replaced: INTEROP_VENV might name any directory.
  if [ -e "$VENV" ] && [ ! -e "$VENV/pyvenv.cfg" ]; then
    echo "interop: $VENV exists and is not a venv; set INTEROP_VENV to another path"; exit 1
  fi
  rm -rf "$VENV"
  python3 -m venv "$VENV" || { echo "interop: python3 -m venv failed (apt-get install python3-venv)"; exit 1; }
  "$VENV/bin/pip" install -q "$MOTO_PIP" || { echo "interop: pip could not install $MOTO_PIP into $VENV"; exit 1; }
  echo "$MOTO_PIP" > "$VENV/interop-pip"
fi
"$VENV/bin/python" "$ROOT/interop/moto_server.py" "$MOTO_PORT" "$W/moto-files.log" "$W/moto.pid" > moto.log 2>&1 &
PIDS+=($!)

wait_port "$NGINX_PORT" nginx
wait_port "$APACHE_PORT" apache2
wait_port "$LIGHTTPD_PORT" lighttpd
wait_port "$CADDY_PORT" caddy
wait_port "$MOTO_PORT" moto

echo "== servers: one line per server and check (interop/servers.py)"
args=()
for s in $SERVERS; do
  case $s in
    nginx) args+=("nginx=$NGINX_PORT") ;; apache2) args+=("apache2=$APACHE_PORT") ;;
    lighttpd) args+=("lighttpd=$LIGHTTPD_PORT") ;; caddy) args+=("caddy=$CADDY_PORT") ;;
    moto) args+=("moto=$MOTO_PORT") ;; *) echo "interop: unknown server $s"; exit 1 ;;
  esac
done
"$VENV/bin/python" "$ROOT/interop/servers.py" "$W" "$BIN" "${args[@]}" || status=1

# Sharded runs on real engines: GNU parallel and a one-node Slurm cluster (interop/scale.sh).
scale="sharded runs FAILED"
if bash "$ROOT/interop/scale.sh" "$BIN" "$W/scale" | tee "$W/scale.out"; then
  scale=$(tail -1 "$W/scale.out" | sed 's/^scale: //')
else
  status=1
fi
if [ "$status" -ne 0 ]; then echo "interop: FAILED ($proxies; $scale)"; KEEP=1; exit 1; fi
echo "interop: $proxies, every server check passed; $scale"
