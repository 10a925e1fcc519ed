#!/usr/bin/env python3
"""Writes a small deterministic corpus under DIR and prints its TSV manifest
(URL, PATH, SHA256, SIZE) for BASE_URL. Used by `make demo`."""
import hashlib
import os
import random
import sys

root, base = sys.argv[1], sys.argv[2].rstrip("/")
rng = random.Random(42)
for i in range(40):
    folder = ["", "images/", "docs/", "data/2026/"][i % 4]
    name = f"{folder}file{i:03d}.bin"
    size = int(rng.paretovariate(1.2) * 2000) % 400_000
    body = rng.randbytes(size)
    path = os.path.join(root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(body)
    print(f"{base}/{name}\t{name}\t{hashlib.sha256(body).hexdigest()}\t{size}")
