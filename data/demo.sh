#!/usr/bin/env bash
# make demo: serve a small generated corpus from 127.0.0.1 and download it with
# checksums and a report. No internet needed.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/fetchpool-demo.XXXXXX")
port=${DEMO_PORT:-18765}
python3 data/demo_corpus.py "$work/srv" "http://127.0.0.1:$port" > "$work/manifest.tsv"
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/srv" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
echo "+ fetchpool -i manifest.tsv -o downloads -j 8 --report report.jsonl"
set +e
(cd "$work" && "$OLDPWD/target/release/fetchpool" -i manifest.tsv -o downloads -j 8 --report report.jsonl)
code=$?
set -e
echo "exit code $code; first report lines:"
head -n 3 "$work/report.jsonl"
echo "files: $(find "$work/downloads" -type f | wc -l) in $work/downloads (removed on exit)"
exit $code
