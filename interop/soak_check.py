#!/usr/bin/env python3
"""Checks a soak run (interop/soak.sh) and prints its figures.

usage: soak_check.py WORKDIR EXIT_CODE ELAPSED

Fails (exit 1) on a lost or duplicated report line, a report line for a job not in
the list, an ok job whose file is missing or has another sha256 or size, a leftover
.part beside an ok file, a failure outside the restart window (restart-window.txt:
the report lines written from nginx's stop to a few seconds after its return) or of a
kind no restart explains, or memory that grows.
"""
import collections
import hashlib
import json
import os
import statistics
import sys

work, code, elapsed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
# What a restart can end a job with: its last attempt refused, broken, stalled, or a 503.
TRANSIENT = {"connect", "network", "timeout", "http"}
# restart-window.txt: first and last report line of the window, and the seconds from the
# start at which nginx stopped and at which the window closed.
try:
    with open(f"{work}/restart-window.txt") as f:
        fields = f.read().split()
    window = (int(fields[0]), int(fields[1]))
    t_stop, t_settled = float(fields[2]), float(fields[3])
except FileNotFoundError:
    window = None
problems = []


def expect(cond, what):
    print(f"   {'ok  ' if cond else 'FAIL'} {what}")
    if not cond:
        problems.append(what)


listed = {}
with open(f"{work}/list.tsv") as f:
    for line in f:
        url, path, sha, size = line.rstrip("\n").split("\t")
        listed[path] = (sha, int(size))

lines = collections.Counter()
status = collections.Counter()
failures = collections.Counter()
examples = collections.defaultdict(list)
attempts = collections.Counter()
resumed = 0
report = {}
outside = collections.Counter()
with open(f"{work}/report.jsonl") as f:
    for index, raw in enumerate(f):
        r = json.loads(raw)
        lines[r["path"]] += 1
        report[r["path"]] = r
        status[r["status"]] += 1
        attempts[r["attempts"]] += 1
        if r.get("resumed_from"):
            resumed += 1
        if r["status"] == "failed":
            e = r["error"]
            key = f"{e['kind']}/{e.get('phase') or '-'}"
            failures[key] += 1
            if not window or not window[0] <= index < window[1] or e["kind"] not in TRANSIENT:
                outside[key] += 1
            if len(examples[key]) < 3:
                examples[key].append(f"{r['path']}: {e['message']} (attempts {r['attempts']})")

lost = [p for p in listed if lines[p] == 0]
dup = [p for p, n in lines.items() if n > 1]
unknown = [p for p in lines if p not in listed]
print(f"== soak figures ({len(listed)} jobs, {elapsed:.1f} s, exit {code})")
print(f"   report lines {sum(lines.values())}; status {dict(status)}")
print(f"   attempts per job {dict(sorted(attempts.items()))}; resumed with Range: {resumed}")
if window:
    print(f"   restart window: report lines {window[0] + 1} to {window[1]}")
for key, n in failures.most_common():
    print(f"   failed {key}: {n} ({n - outside[key]} in the restart window)")
    for ex in examples[key]:
        print(f"      e.g. {ex}")

faults = collections.Counter()
codes = collections.Counter()
requests = 0
with open(f"{work}/nginx-access.log") as f:
    for line in f:
        parts = line.split()
        if len(parts) < 2:
            continue
        requests += 1
        faults[parts[0]] += 1
        codes[parts[1]] += 1
print(f"   nginx requests {requests}; faults drawn {dict(faults)}; statuses {dict(codes)}")

bad = 0
parts_left = 0
for path, (sha, size) in listed.items():
    r = report.get(path)
    full = f"{work}/out/{path}"
    if os.path.exists(full + ".part"):
        parts_left += 1
        if r and r["status"] == "ok":
            bad += 1
    if not r or r["status"] != "ok":
        continue
    try:
        with open(full, "rb") as f:
            data = f.read()
    except OSError:
        bad += 1
        continue
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha or r["sha256"] != sha:
        bad += 1

rss = []
with open(f"{work}/rss.txt") as f:
    # The first sample can be taken before the binary is loaded: it is left out.
    rss = [int(x) / 1024 for x in f.read().split()][1:]
if rss:
    # Memory may step up while nginx is down (jobs wait for their retries); flat means it
    # does not grow with the requests served: compared over the part of the run after the
    # restart has settled (sample i is taken about i + 1 s after the start), or, without
    # a restart, after the first third.
    print(
        f"   RSS MiB over {len(rss)} samples (1/s): first {rss[0]:.1f}, median "
        f"{statistics.median(rss):.1f}, max {max(rss):.1f}, last {rss[-1]:.1f}"
    )
    if window:
        before = rss[: max(1, int(t_stop) - 1)]
        settled = [x for i, x in enumerate(rss) if i + 1 >= t_settled] or rss[-1:]
        print(
            f"   RSS MiB before the restart: median {statistics.median(before):.1f}, max {max(before):.1f}; "
            f"after it settled ({len(settled)} samples): first {settled[0]:.1f}, last {settled[-1]:.1f}, max {max(settled):.1f}"
        )
    else:
        settled = rss[len(rss) // 3 :]

expect(requests >= 100_000 or len(listed) < 100_000, f"at least 100,000 requests reached nginx ({requests})")
expect(window is not None, "nginx was restarted mid-run")
expect(not lost, f"no job without a report line ({len(lost)} lost{': ' + ', '.join(lost[:3]) if lost else ''})")
expect(not dup, f"no job with two report lines ({len(dup)} duplicated{': ' + ', '.join(dup[:3]) if dup else ''})")
expect(not unknown, f"no report line for an unlisted job ({len(unknown)})")
expect(bad == 0, f"every ok job's file has its listed sha256 and size, no .part beside it ({bad} bad)")
expect(not outside, f"failures only in the restart window, of transient kinds ({dict(outside) or 'none other'})")
expect((code == 0) == (status["failed"] == 0), f"exit code {code} matches {status['failed']} failed jobs")
expect(parts_left <= status["failed"], f".part files left only by failed jobs ({parts_left})")
if rss:
    expect(
        max(settled) <= settled[0] * 1.2 + 2,
        f"memory flat once settled: {settled[0]:.1f} -> max {max(settled):.1f} MiB",
    )
sys.exit(1 if problems else 0)
