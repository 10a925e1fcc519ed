#!/usr/bin/env python3
"""Makes and judges make interop's sharded runs (interop/scale.sh).

usage:
  scale_check.py corpus WWW URL N MANIFEST           N files under WWW/f, their list
  scale_check.py slow WWW URL MANIFEST SHARD COUNT   one large file in shard SHARD (0-based)
  scale_check.py cover NAME MANIFEST DIR REPORT...   every job in exactly one report, ok,
                                                     and on disk with its sha256
  scale_check.py cover-again NAME MANIFEST DIR REPORT...
                                                     the same, a job done before may be skipped
  scale_check.py cancelled MANIFEST DIR REPORT PATH  a stopped task: a line per job of
                                                     its shard, PATH cancelled, its .part kept
  scale_check.py resumed MANIFEST DIR REPORT PATH BYTES LOG
                                                     PATH continued with Range from BYTES
  scale_check.py same-counts NAME WHOLE COMBINED     two summaries (--json) count alike
  scale_check.py recipe README NEEDLE                prints the README's code block that
                                                     holds NEEDLE (what the run executes)

A job's shard is (first 8 bytes of sha256(path), big-endian) mod N, as the README says.
Each check prints one line, "ok" or "FAIL", and the script exits 1 on any FAIL.
"""
import hashlib
import json
import os
import random
import sys

problems = []


def expect(cond, what):
    print(f"   {'ok  ' if cond else 'FAIL'} {what}")
    if not cond:
        problems.append(what)


def shard_of(path, count):
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big") % count


def read_list(manifest):
    jobs = {}
    with open(manifest) as f:
        for line in f:
            url, path, sha = line.rstrip("\n").split("\t")[:3]
            jobs[path] = (url, sha)
    return jobs


def read_report(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def corpus(www, url, n, manifest):
    rng = random.Random(19)
    os.makedirs(f"{www}/f", exist_ok=True)
    with open(manifest, "w") as out:
        for i in range(int(n)):
            body = rng.randbytes(rng.randint(1_000, 64_000))
            with open(f"{www}/f/{i:03}.bin", "wb") as f:
                f.write(body)
            sha = hashlib.sha256(body).hexdigest()
            out.write(f"{url}/f/{i:03}.bin\tf/{i:03}.bin\t{sha}\n")


def slow(www, url, manifest, shard, count):
    """Appends one 8 MB file, served slowly, whose path lands in `shard` of `count`."""
    shard, count = int(shard), int(count)
    name = next(f"big/slow-{i}.bin" for i in range(1000) if shard_of(f"big/slow-{i}.bin", count) == shard)
    os.makedirs(f"{www}/slow/big", exist_ok=True)
    body = random.Random(20).randbytes(8 << 20)
    with open(f"{www}/slow/{name}", "wb") as f:
        f.write(body)
    with open(manifest, "a") as out:
        out.write(f"{url}/slow/{name}\t{name}\t{hashlib.sha256(body).hexdigest()}\n")
    print(name)


def cover(name, manifest, out_dir, reports, done=("ok",)):
    jobs = read_list(manifest)
    seen = {}
    for r in reports:
        for line in read_report(r):
            seen.setdefault(line["path"], []).append((r, line))
    twice = [p for p, lines in seen.items() if len(lines) > 1]
    expect(not twice, f"{name}: every job ran in exactly one of {len(reports)} tasks ({len(twice)} twice{': ' + ', '.join(twice[:3]) if twice else ''})")
    missing = sorted(set(jobs) - set(seen))
    extra = sorted(set(seen) - set(jobs))
    expect(not missing and not extra, f"{name}: the union of the reports is the list ({len(seen)} of {len(jobs)} jobs; missing {missing[:3]}, extra {extra[:3]})")
    not_ok = [p for p, lines in seen.items() if lines[-1][1]["status"] not in done]
    expect(not not_ok, f"{name}: every job {' or '.join(done)} ({len(not_ok)} not: {not_ok[:3]})")
    bad = [p for p, (_, sha) in jobs.items() if not os.path.isfile(f"{out_dir}/{p}") or sha_file(f"{out_dir}/{p}") != sha]
    expect(not bad, f"{name}: every file on disk with its sha256 ({len(jobs) - len(bad)} of {len(jobs)}; wrong {bad[:3]})")
    leftovers = [os.path.join(d, f) for d, _, fs in os.walk(out_dir) for f in fs if f.endswith((".part", ".part.meta"))]
    expect(not leftovers, f"{name}: no .part left ({leftovers[:3]})")
    sizes = sorted(sum(1 for _ in read_report(r)) for r in reports)
    print(f"   jobs per task: {sizes}")


def cancelled(manifest, out_dir, report, big):
    jobs = read_list(manifest)
    lines = {l["path"]: l for l in read_report(report)}
    line = lines.get(big)
    expect(line is not None and line["status"] == "cancelled", f"stopped task: {big} reported cancelled ({line and line['status']})")
    kept = os.path.getsize(f"{out_dir}/{big}.part") if os.path.exists(f"{out_dir}/{big}.part") else -1
    expect(line is not None and 0 < kept == line["bytes"] < 8 << 20, f"stopped task: {big}.part kept with the bytes its line says ({kept} on disk, {line and line['bytes']} in the report)")
    expect(os.path.exists(f"{out_dir}/{big}.part.meta"), f"stopped task: {big}.part.meta (validator) kept")
    expect(not os.path.exists(f"{out_dir}/{big}"), f"stopped task: nothing at {big}")
    shard = shard_of(big, 4)
    mine = {p for p in jobs if shard_of(p, 4) == shard}
    expect(set(lines) == mine, f"stopped task: a report line for each of its shard's {len(mine)} jobs ({len(lines)} lines)")


def resumed(manifest, out_dir, report, big, start, log):
    start = int(start)
    lines = {l["path"]: l for l in read_report(report)}
    line = lines.get(big, {})
    expect(line.get("status") == "ok" and line.get("resumed_from") == start, f"resubmitted task: {big} ok, resumed_from {line.get('resumed_from')} (the .part had {start})")
    ranges = []
    with open(log) as f:
        for entry in f:
            method, uri, status, rng = entry.rstrip("\n").split("\t")[:4]
            if uri.endswith(big):
                ranges.append((status, rng))
    expect(("206", f"bytes={start}-") in ranges, f"resubmitted task: nginx logged Range: bytes={start}- answered 206 ({ranges})")


def same_counts(name, whole, combined):
    keys = ["jobs", "ok", "skipped", "failed", "cancelled", "bytes"]
    with open(whole) as f:
        w = json.loads(f.read())
    with open(combined) as f:
        c = json.loads(f.read())
    a = {k: w[k] for k in keys}
    b = {k: c[k] for k in keys}
    expect(a == b and c.get("duplicated", {}).get("count") == 0 and c.get("missing", {}).get("count") == 0,
           f"{name}: fetchpool report over the shards counts what one unsharded run counts ({b} vs {a})")


def recipe(readme, needle):
    blocks, block = [], None
    with open(readme) as f:
        for line in f:
            stripped = line.strip()
            if stripped.startswith("```"):
                if block is None:
                    block = []
                else:
                    blocks.append("".join(block))
                    block = None
            elif block is not None:
                block.append(line)
    found = [b for b in blocks if needle in b]
    if not found:
        sys.exit(f"no code block in {readme} holds {needle!r}")
    # The README indents blocks inside list items; the run takes them unindented.
    lines = found[0].splitlines()
    indent = min(len(l) - len(l.lstrip()) for l in lines if l.strip())
    print("\n".join(l[indent:] for l in lines))


cmd, args = sys.argv[1], sys.argv[2:]
{"corpus": corpus, "slow": slow, "cover": lambda n, m, d, *r: cover(n, m, d, r),
 "cover-again": lambda n, m, d, *r: cover(n, m, d, r, ("ok", "skipped")),
 "cancelled": cancelled, "resumed": resumed, "same-counts": same_counts, "recipe": recipe}[cmd](*args)
sys.exit(1 if problems else 0)
