#!/bin/sh
# Start/stop the bench nginx: bench/serve.sh start|stop|status
# Env: BENCH_WORK (default bench/work), BENCH_PORT (18080), BENCH_NGINX_WORKERS (2), NGINX (nginx binary),
#      BENCH_CAP (25m: the capped server's per-connection rate, nginx limit_rate syntax)
# Ports: BENCH_PORT plain, BENCH_PORT+1 capped, BENCH_PORT+2 TLS (private CA in $work/nginx/tls/ca.pem)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=${BENCH_WORK:-$here/work}
mkdir -p "$work"
work=$(cd "$work" && pwd)
port=${BENCH_PORT:-18080}
workers=${BENCH_NGINX_WORKERS:-2}
cap=${BENCH_CAP:-25m}
capport=$((port + 1))
tlsport=$((port + 2))
nginx=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
prefix=$work/nginx
root=$work/corpus
conf=$prefix/nginx.conf
pidfile=$prefix/nginx.pid

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case "${1:-start}" in
start)
    [ -x "$nginx" ] || { echo "serve.sh: nginx not found (run 'make bench-deps')" >&2; exit 1; }
    [ -d "$root" ] || { echo "serve.sh: no corpus at $root (run 'make bench-corpus')" >&2; exit 1; }
    if running; then
        echo "nginx already running (pid $(cat "$pidfile")) on 127.0.0.1:$(cat "$prefix/port" 2>/dev/null || echo ?)"
        [ "$(cat "$prefix/port" 2>/dev/null)" = "$port" ] || { echo "serve.sh: running on another port; 'make bench-stop' first" >&2; exit 1; }
        exit 0
    fi
    mkdir -p "$prefix/tmp" "$prefix/logs" "$prefix/tls"
    tls=$prefix/tls
    if [ ! -s "$tls/server.pem" ]; then
        # A private CA and a server certificate for 127.0.0.1 and localhost, made once.
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=fetchpool bench CA" \
            -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
            -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tls/ext.cnf"
        openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
            -days 3650 -extfile "$tls/ext.cnf" -out "$tls/server.pem" 2>/dev/null
    fi
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@ROOT@|$root|g" -e "s|@PORT@|$port|g" -e "s|@WORKERS@|$workers|g" \
        -e "s|@CAPPORT@|$capport|g" -e "s|@CAP@|$cap|g" -e "s|@TLSPORT@|$tlsport|g" \
        "$here/nginx.conf.in" >"$conf"
    # -e: error log before the config is read (else nginx tries /var/log/nginx/error.log)
    "$nginx" -t -q -e "$prefix/error.log" -p "$prefix" -c "$conf"
    "$nginx" -e "$prefix/error.log" -p "$prefix" -c "$conf"
    echo "$port" >"$prefix/port"
    i=0
    until curl -fsS -o /dev/null "http://127.0.0.1:$port/nginx_status"; do
        i=$((i + 1)); [ $i -lt 50 ] || { echo "serve.sh: nginx did not come up; see $prefix/error.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "nginx up: pid $(cat "$pidfile"), http://127.0.0.1:$port/ (capped at $cap per connection on :$capport, TLS on :$tlsport) serving $root ($workers workers)"
    ;;
stop)
    if running; then
        pid=$(cat "$pidfile")
        kill -QUIT "$pid"
        i=0
        while kill -0 "$pid" 2>/dev/null; do
            i=$((i + 1)); [ $i -lt 100 ] || { kill -TERM "$pid" 2>/dev/null || true; break; }
            sleep 0.1
        done
        rm -f "$prefix/port"
        echo "nginx stopped (pid $pid)"
    else
        echo "nginx not running"
    fi
    ;;
status)
    if running; then
        echo "nginx running: pid $(cat "$pidfile"), port $(cat "$prefix/port" 2>/dev/null)"
        curl -fsS "http://127.0.0.1:$(cat "$prefix/port")/nginx_status"
    else
        echo "nginx not running"; exit 1
    fi
    ;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
