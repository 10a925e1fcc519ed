#!/usr/bin/env python3
"""Deterministic benchmark corpus and manifests for `make bench`.

Corpora (under WORK/corpus, served by nginx with that directory as root):
  files  1,700 files, ~290 MB, log-normal sizes 2 KiB .. 10 MiB in a few folders
  api    10,000 JSON-ish responses of ~1 KB
  big    one 1 GiB file
  bigcap one 256 MiB file (the per-connection-capped condition: a single stream at 25 MiB/s
         takes ~10 s, so a larger file would make the baseline alone take minutes)

Content comes from seeded random.Random, so every machine gets the same bytes
(and the same sha256). Content is generated once (stamp file WORK/corpus/.stamp-<name>);
the per-corpus index (PATH, SHA256, SIZE) is kept beside it, and the manifests -
which carry the port in their URLs - are rewritten from the index whenever the
port changes (WORK/manifests/.stamp-<name> holds the port).

Manifests written per corpus NAME into WORK/manifests/:
  NAME.tsv      fetchpool: URL<TAB>PATH<TAB>SHA256<TAB>SIZE
  NAME.sha256   `sha256sum -c` input: "SHA256  PATH" (run inside the output dir)
  NAME.curlrc   `curl --parallel -K`: url = / output = pairs (use with --output-dir OUT --create-dirs)
  NAME.xargs    `xargs -n 3 curl ...` input: "-o PATH URL" per line (run with cwd = OUT)
  NAME.aria2    `aria2c -i` input: URL, then "  out=PATH" (use with -d OUT)
  NAME.urls     plain URL list (wget2 -i with -x -nH reproduces PATH, since PATH == URL path)

PATH is always the URL path without its leading slash, so every tool produces the
same layout and one NAME.sha256 verifies them all.
"""

import argparse
import hashlib
import json
import math
import os
import random
import sys

SEED = 20240607
MiB = 1 << 20
GiB = 1 << 30

FILES_COUNT = 1700
FILES_TARGET = 290_000_000
FILES_MIN = 2 * 1024
FILES_MAX = 10 * MiB
FILES_FOLDERS = [
    "files/docs",
    "files/images",
    "files/images/thumbs",
    "files/data",
    "files/data/shards",
    "files/models",
]
FOLDER_WEIGHTS = [5, 4, 6, 3, 3, 1]

API_COUNT = 10_000
BIG_SIZE = GiB
BIGCAP_SIZE = 256 * MiB


def file_sizes(rng):
    """Log-normal sizes, clamped to [FILES_MIN, FILES_MAX], total scaled to ~FILES_TARGET."""
    z = [rng.gauss(0.0, 2.0) for _ in range(FILES_COUNT)]

    def sizes_for(mu):
        return [int(min(FILES_MAX, max(FILES_MIN, math.exp(mu + s)))) for s in z]

    lo, hi = 0.0, 20.0
    for _ in range(60):  # bisection on the median (exp(mu)) to hit the target total
        mid = (lo + hi) / 2
        if sum(sizes_for(mid)) < FILES_TARGET:
            lo = mid
        else:
            hi = mid
    return sizes_for((lo + hi) / 2)


def write_blob(path, rng, size, chunk=16 * MiB):
    h = hashlib.sha256()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(chunk, left)
            b = rng.randbytes(n)
            h.update(b)
            f.write(b)
            left -= n
    return h.hexdigest()


def gen_files(root):
    rng = random.Random(SEED)
    sizes = file_sizes(rng)
    entries = []
    for i, size in enumerate(sizes):
        folder = rng.choices(FILES_FOLDERS, FOLDER_WEIGHTS)[0]
        ext = {"files/docs": "pdf", "files/images": "jpg", "files/images/thumbs": "png",
               "files/models": "bin"}.get(folder, "dat")
        rel = f"{folder}/f{i:04d}.{ext}"
        entries.append((rel, write_blob(os.path.join(root, rel), rng, size), size))
    return entries


def gen_api(root):
    rng = random.Random(SEED + 1)
    entries = []
    os.makedirs(os.path.join(root, "api"), exist_ok=True)
    for i in range(API_COUNT):
        # ~1 KB JSON object with a deterministic, varied payload (800..1250 bytes).
        pad = rng.randbytes(rng.randint(300, 520)).hex()
        body = json.dumps({"id": i, "name": f"item-{i:05d}", "score": rng.random(),
                           "tags": [f"t{rng.randint(0, 99)}" for _ in range(4)], "blob": pad},
                          separators=(",", ":")).encode() + b"\n"
        rel = f"api/r{i:05d}.json"
        with open(os.path.join(root, rel), "wb") as f:
            f.write(body)
        entries.append((rel, hashlib.sha256(body).hexdigest(), len(body)))
    return entries


def gen_big(root):
    rng = random.Random(SEED + 2)
    rel = "big/big-1GiB.bin"
    return [(rel, write_blob(os.path.join(root, rel), rng, BIG_SIZE), BIG_SIZE)]


def gen_bigcap(root):
    rng = random.Random(SEED + 3)
    rel = "big/big-256MiB.bin"
    return [(rel, write_blob(os.path.join(root, rel), rng, BIGCAP_SIZE), BIGCAP_SIZE)]


GENERATORS = {"files": gen_files, "api": gen_api, "big": gen_big, "bigcap": gen_bigcap}


def read_index(path):
    out = []
    with open(path) as f:
        for line in f:
            rel, sha, size = line.rstrip("\n").split("\t")
            out.append((rel, sha, int(size)))
    return out


def write_manifests(mdir, name, entries, base):
    os.makedirs(mdir, exist_ok=True)
    files = {ext: open(os.path.join(mdir, f"{name}.{ext}.tmp"), "w")
             for ext in ("tsv", "sha256", "curlrc", "xargs", "aria2", "urls")}
    files["tsv"].write(f"# fetchpool bench corpus '{name}': URL\tPATH\tSHA256\tSIZE\n")
    for rel, sha, size in entries:
        url = f"{base}/{rel}"
        files["tsv"].write(f"{url}\t{rel}\t{sha}\t{size}\n")
        files["sha256"].write(f"{sha}  {rel}\n")
        files["curlrc"].write(f'url = "{url}"\noutput = "{rel}"\n')
        files["xargs"].write(f"-o {rel} {url}\n")
        files["aria2"].write(f"{url}\n  out={rel}\n")
        files["urls"].write(f"{url}\n")
    for ext, f in files.items():
        f.close()
        os.replace(os.path.join(mdir, f"{name}.{ext}.tmp"), os.path.join(mdir, f"{name}.{ext}"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="bench/work")
    ap.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", "18080")))
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("corpora", nargs="*", default=["files", "api", "big"])
    a = ap.parse_args()

    root = os.path.join(a.work, "corpus")
    mdir = os.path.join(a.work, "manifests")
    base = f"http://{a.host}:{a.port}"
    os.makedirs(root, exist_ok=True)
    for name in a.corpora:
        if name not in GENERATORS:
            sys.exit(f"unknown corpus {name!r}; known: {', '.join(GENERATORS)}")
        stamp = os.path.join(root, f".stamp-{name}")
        index = os.path.join(root, f"{name}.index")
        if os.path.exists(stamp) and os.path.exists(index):
            entries = read_index(index)
            print(f"corpus {name}: present ({len(entries)} files), skipping generation")
        else:
            print(f"corpus {name}: generating ...", flush=True)
            entries = GENERATORS[name](root)
            with open(index, "w") as f:
                for rel, sha, size in entries:
                    f.write(f"{rel}\t{sha}\t{size}\n")
            with open(stamp, "w") as f:
                f.write(f"seed={SEED}\n")
        total = sum(e[2] for e in entries)
        sizes = sorted(e[2] for e in entries)
        print(f"corpus {name}: {len(entries)} files, {total / 1e6:.1f} MB, "
              f"min {sizes[0]} B, median {sizes[len(sizes) // 2]} B, max {sizes[-1]} B")
        mstamp = os.path.join(mdir, f".stamp-{name}")
        want = base + "\n"
        if not (os.path.exists(mstamp) and open(mstamp).read() == want):
            write_manifests(mdir, name, entries, base)
            with open(mstamp, "w") as f:
                f.write(want)
            print(f"manifests {name}: written for {base}")


if __name__ == "__main__":
    main()
