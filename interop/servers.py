#!/usr/bin/env python3
"""Resume, revalidation and change checks against real servers (run by interop/run.sh).

usage: servers.py WORKDIR FETCHPOOL SERVER=PORT...

Each file server serves WORKDIR/srv/SERVER and logs one tab-separated line per request
(method, path, query, status, Range, If-Range, If-None-Match, If-Modified-Since,
Accept-Encoding, and the response's Content-Encoding, Content-Range and ETag) to
WORKDIR/SERVER-files.log; Caddy logs JSON, moto goes through interop/moto_server.py
(JSON as well). This script makes each check's files on the server (or objects in a
bucket), runs the real fetchpool binary on them, interrupting it with SIGINT mid-body
where a check needs a part (the run is rate-limited with --limit-rate so the interrupt
lands in the body), and judges the outcome from three sources: the report, the bytes on
disk (sha256 against what the server holds) and the server's access log. Log lines are
cut per step with a sentinel request, so a step's requests are exactly those logged
between two sentinels, whatever the server's log buffering.

Prints one line per server and check; exits 1 if any check fails.
"""
import base64
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request

WORK, BIN = sys.argv[1], sys.argv[2]
SERVERS = [a.split("=", 1) for a in sys.argv[3:]]
BIG = 4 << 20  # larger than fetchpool's 1 MiB sidecar threshold: a .part from the first byte
RATE = "1M"  # interrupted runs: ~1 MiB/s, so a 4 MiB body is mid-way for seconds
CUT = 1 << 20  # interrupt once the .part holds this much
rng = random.Random(13)
NOPROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def sha(data):
    return hashlib.sha256(data).hexdigest()


def blob(n):
    return rng.randbytes(n)


def text(n):
    words = [b"fetchpool", b"range", b"resume", b"etag", b"gzip", b"part", b"sidecar", b"\n"]
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words) + b" "
    return bytes(out[:n])


def wait_for(cond, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.02)
    raise Failure(f"timed out after {seconds} s waiting for {what}")


class Failure(Exception):
    pass


# ---- servers ------------------------------------------------------------------------------


class FileServer:
    """A static file server on 127.0.0.1:PORT serving WORKDIR/srv/NAME."""

    def __init__(self, name, port):
        self.name, self.port = name, int(port)
        self.root = f"{WORK}/srv/{name}"
        self.log = Log(f"{WORK}/{name}-files.log", self.parse)
        self.content = {}
        self.put("sentinel.txt", b"sentinel\n", mtime=time.time() - 3600)

    def url(self, key):
        return f"http://127.0.0.1:{self.port}/{key}"

    def log_path(self, key):
        return f"/{key}"

    def put(self, key, data, mtime=None):
        """Writes KEY in place (same inode: an edit, not a rename). mtime defaults to an
        hour ago, past Apache's one-second weak-ETag window."""
        path = f"{self.root}/{key}"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "r+b" if os.path.exists(path) else "wb") as f:
            f.write(data)
            f.truncate()
        os.chmod(path, 0o644)
        if mtime is not False:
            t = time.time() - 3600 if mtime is None else mtime
            os.utime(path, (t, t))
        self.content[key] = data

    def parse(self, line):
        if self.name == "caddy":
            return parse_caddy(line)
        f = line.rstrip("\n").split("\t")
        if len(f) < 12:
            return None
        val = [unescape(x) for x in f]
        query = val[2].lstrip("?")
        return {
            "method": val[0],
            "path": val[1],
            "query": query,
            "status": int(val[3]),
            "range": val[4],
            "if_range": val[5],
            "inm": val[6],
            "ims": val[7],
            "ae": val[8],
            "ce": val[9],
            "content_range": val[10],
            "etag": val[11],
        }


def unescape(v):
    # Apache and lighttpd write a quote as \", nginx (escape=none) as is; "-" is no header.
    v = v.replace('\\"', '"').replace("\\x22", '"')
    return "" if v == "-" else v


def parse_caddy(line):
    try:
        r = json.loads(line)
    except ValueError:
        return None
    if "request" not in r:
        return None
    req, resp = r["request"], r.get("resp_headers") or {}
    h = req.get("headers") or {}
    get = lambda d, k: ", ".join(d.get(k, []))  # noqa: E731
    path, _, query = req["uri"].partition("?")
    return {
        "method": req["method"],
        "path": path,
        "query": query,
        "status": int(r["status"]),
        "range": get(h, "Range"),
        "if_range": get(h, "If-Range"),
        "inm": get(h, "If-None-Match"),
        "ims": get(h, "If-Modified-Since"),
        "ae": get(h, "Accept-Encoding"),
        "ce": get(resp, "Content-Encoding"),
        "content_range": get(resp, "Content-Range"),
        "etag": get(resp, "Etag"),
    }


class MotoServer:
    """moto's S3 server: objects in one bucket, path-style URLs."""

    BUCKET = "interop"

    def __init__(self, name, port):
        import boto3
        from botocore.config import Config

        self.name, self.port = name, int(port)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="interop",
            aws_secret_access_key="interop-secret",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        self.s3.create_bucket(Bucket=self.BUCKET)
        self.log = Log(f"{WORK}/moto-files.log", parse_json)
        self.content = {}
        self.put("sentinel.txt", b"sentinel\n")

    def url(self, key):
        return f"{self.endpoint}/{self.BUCKET}/{key}"

    def log_path(self, key):
        return f"/{self.BUCKET}/{key}"

    def presigned(self, key, expires):
        return self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.BUCKET, "Key": key}, ExpiresIn=expires
        )

    def put(self, key, data, mtime=None):
        # public-read: the plain-URL checks fetch without signing, as from a public
        # bucket; the presigned checks sign their own URLs.
        self.s3.put_object(Bucket=self.BUCKET, Key=key, Body=data, ACL="public-read")
        self.content[key] = data


def parse_json(line):
    try:
        return json.loads(line)
    except ValueError:
        return None


class Log:
    """An access log read as it grows; `step()` returns the requests since the last step."""

    def __init__(self, path, parse):
        self.path, self.parse = path, parse
        self.offset, self.buf, self.records, self.cut, self.syncs = 0, "", [], 0, 0

    def read(self):
        try:
            with open(self.path) as f:
                f.seek(self.offset)
                chunk = f.read()
                self.offset = f.tell()
        except FileNotFoundError:
            return
        self.buf += chunk
        *lines, self.buf = self.buf.split("\n")
        for line in lines:
            rec = self.parse(line)
            if rec:
                self.records.append(rec)

    def step(self, server, also=()):
        """Sends a sentinel request and waits until it (and a request for each path in
        `also`, such as an interrupted transfer the server logs late) is in the log."""
        self.syncs += 1
        tag = f"sync={self.syncs}"
        sentinel = server.log_path("sentinel.txt")

        def get(query):
            with NOPROXY.open(f"{server.url('sentinel.txt')}?{query}", timeout=10) as r:
                r.read()

        get(tag)
        last = time.monotonic()

        def seen():
            nonlocal last
            self.read()
            new = self.records[self.cut :]
            paths = {r["path"] for r in new}
            if any(r["path"] == sentinel and r["query"] == tag for r in new) and all(p in paths for p in also):
                return True
            # lighttpd buffers its access log and writes it once 8 KiB are pending (or
            # every few seconds): 3 KiB requests fill the buffer instead of waiting.
            if time.monotonic() - last > 0.2:
                get("pad=" + "x" * 3000)
                last = time.monotonic()
            return False

        wait_for(seen, 10, f"{server.name}'s access log to show request {tag}")
        # fetchpool only GETs; moto's log also holds the checks' own PUTs.
        new = [r for r in self.records[self.cut :] if r["path"] != sentinel and r["method"] == "GET"]
        self.cut = len(self.records)
        return new


def show(rec):
    parts = [f"{rec['method']} {rec['path']}"]
    for k, name in [("range", "Range"), ("if_range", "If-Range"), ("inm", "If-None-Match"),
                    ("ims", "If-Modified-Since")]:
        if rec.get(k):
            parts.append(f"{name}: {rec[k]}")
    out = f"{' '.join(parts[:1])}{' [' + '; '.join(parts[1:]) + ']' if parts[1:] else ''} -> {rec['status']}"
    if rec.get("content_range"):
        out += f" Content-Range: {rec['content_range']}"
    elif rec["status"] == 416:
        out += " (no Content-Range)"
    if rec.get("ce"):
        out += f" Content-Encoding: {rec['ce']}"
    return out


# ---- running fetchpool --------------------------------------------------------------------


class Run:
    def __init__(self, code, report, stderr):
        self.code, self.report, self.stderr = code, report, stderr


def part_file(out, path):
    """The working file of PATH's unfinished body: PATH.part today; should the part move
    into the state directory (.fetchpool/, outside validators/), the largest file there,
    as each interrupted run here has one large body in flight."""
    beside = f"{out}/{path}.part"
    if os.path.exists(beside):
        return beside
    found = []
    for root, dirs, files in os.walk(f"{out}/.fetchpool"):
        dirs[:] = [d for d in dirs if d != "validators"]
        found += [os.path.join(root, f) for f in files]
    return max(found, key=os.path.getsize, default=None)


def part_size(out, path):
    part = part_file(out, path)
    need(part is not None, f"{path}: no part after the interrupt")
    if part.endswith(".part"):
        need(os.path.exists(part + ".meta"), f"{path}: no sidecar beside its part after the interrupt")
    return os.path.getsize(part)


def fetch(out, jobs, tag, extra=(), interrupt=None, may_end=False):
    """Runs fetchpool on JOBS [(url, path, sha256 or None)] into OUT. With INTERRUPT = a
    path, the run is rate-limited and gets SIGINT once PATH's part holds CUT bytes; with
    MAY_END the run may end by itself first (a body refused or failed before then)."""
    os.makedirs(out, exist_ok=True)
    listing = f"{out}.{tag}.tsv"
    with open(listing, "w") as f:
        for url, path, digest in jobs:
            f.write("\t".join([url, path] + ([digest] if digest else [])) + "\n")
    report = f"{out}.{tag}.jsonl"
    cmd = [BIN, "-i", listing, "-o", out, "--report", report, "--no-proxy-env",
           "--retries", "0", "-j", "4", *extra]
    if interrupt:
        cmd += ["--limit-rate", RATE]
    with open(f"{out}.{tag}.stderr", "w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        if interrupt:
            def mid_body():
                if proc.poll() is not None:
                    if may_end:
                        return True
                    raise Failure(f"fetchpool ended (exit {proc.returncode}) before {interrupt} was interrupted")
                part = part_file(out, interrupt)
                return part is not None and os.path.getsize(part) >= CUT

            try:
                wait_for(mid_body, 30, f"{interrupt}.part to reach {CUT} bytes")
            except Failure:
                proc.kill()
                proc.wait()
                raise
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise Failure(f"fetchpool did not end within 60 s ({tag})")
        err.seek(0)
        stderr = err.read()
    lines = {}
    if os.path.exists(report):
        with open(report) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    lines[r["path"]] = r
    return Run(code, lines, stderr)


def disk(out, path):
    try:
        with open(f"{out}/{path}", "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def leftovers(out):
    found = []
    for root, dirs, files in os.walk(out):
        dirs[:] = [d for d in dirs if d != ".fetchpool"]
        found += [os.path.relpath(os.path.join(root, f), out) for f in files
                  if f.endswith(".part") or f.endswith(".part.meta")]
    return found


def need(cond, why):
    if not cond:
        raise Failure(why)


def expect_exit(run, code, what):
    if run.code != code:
        tail = run.stderr.strip().splitlines()[-3:]
        raise Failure(f"{what}: exit {run.code}, expected {code} ({' | '.join(tail)})")


def expect_exact(srv, out, run, keys, prefix, statuses=("ok",), tidy=True):
    """Every key is at its path with the server's bytes, reported with a status in STATUSES."""
    for key in keys:
        path = key[len(prefix):] if prefix else key
        line = run.report.get(path)
        tail = " | ".join(run.stderr.strip().splitlines()[-2:])
        need(line is not None, f"{path}: no report line (exit {run.code}: {tail})")
        err = (line.get("error") or {}).get("message", "")
        need(line["status"] in statuses, f"{path}: status {line['status']} {err}".rstrip())
        got = disk(out, path)
        want = srv.content[key]
        need(got is not None, f"{path}: missing on disk although reported {line['status']}")
        if got != want:
            raise Failure(f"{path}: reported {line['status']} but the file is WRONG "
                          f"({len(got)} bytes, sha256 {sha(got)[:12]}…, server has {len(want)} bytes, "
                          f"sha256 {sha(want)[:12]}…{'; ' + describe(got, srv.content.get('#old:' + key), want) if srv.content.get('#old:' + key) else ''})")
    left = leftovers(out)
    need(not tidy or not left, f"working files left behind: {left}")


def describe(got, old, new):
    """Names a splice of two versions: where the file stops matching each."""
    def common(a, b):
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n
    head = common(got, old)
    if head and got[head:] == new[head:]:
        return f"spliced: the old version's first {head} bytes, then the new version's tail"
    return f"matches the old version's first {head} bytes"


def requests_for(records, srv, key):
    return [r for r in records if r["path"] == srv.log_path(key)]


# ---- the checks ---------------------------------------------------------------------------


def check_mixed(srv, out):
    """A verified download of small and large files, some in folders, sha256 in the list."""
    sizes = [0, 1, 1000, 4096, 65536, 100_000, 250_000, 1 << 20, (1 << 20) + 1, 3 << 20]
    keys = []
    for i, n in enumerate(sizes):
        key = ["mixed/", "mixed/a/", "mixed/a/b/"][i % 3] + f"f{i}.bin"
        srv.put(key, blob(n))
        keys.append(key)
    srv.log.step(srv)
    run = fetch(out, [(srv.url(k), k[6:], sha(srv.content[k])) for k in keys], "1")
    expect_exit(run, 0, "run")
    expect_exact(srv, out, run, keys, "mixed/")
    log = srv.log.step(srv)
    for k in keys:
        got = [r["status"] for r in requests_for(log, srv, k)]
        need(got == [200], f"{k}: server logged {got}, expected one 200")
    return f"{len(keys)} files, {sum(sizes)} bytes, one 200 each"


def check_resume(srv, out):
    """An interrupted large file, resumed with a 206 (Range and 206 in the server's log)."""
    key = "resume/big.bin"
    srv.put(key, blob(BIG))
    jobs = [(srv.url(key), "big.bin", sha(srv.content[key]))]
    srv.log.step(srv)
    first = fetch(out, jobs, "1", interrupt="big.bin")
    expect_exit(first, 130, "interrupted run")
    srv.log.step(srv, also=[srv.log_path(key)])
    part = part_size(out, "big.bin")
    run = fetch(out, jobs, "2")
    log = requests_for(srv.log.step(srv), srv, key)
    expect_exit(run, 0, "resume")
    expect_exact(srv, out, run, [key], "resume/")
    need(run.report["big.bin"]["resumed_from"] == part,
         f"resumed_from {run.report['big.bin']['resumed_from']}, the part held {part}")
    need(len(log) == 1, f"{len(log)} requests for the resume: {[show(r) for r in log]}")
    r = log[0]
    need(r["range"] == f"bytes={part}-" and r["if_range"] and r["status"] == 206,
         f"expected Range: bytes={part}- with If-Range answered 206, server logged {show(r)}")
    return f"Range: bytes={part}- If-Range: {r['if_range']} -> 206"


def check_revalidate(srv, out):
    """A re-run without checksums: every file answered 304, nothing rewritten."""
    keys = ["reval/small.bin", "reval/a/big.bin"]
    srv.put(keys[0], blob(10_000))
    srv.put(keys[1], blob(2 << 20))
    jobs = [(srv.url(k), k[6:], None) for k in keys]
    srv.log.step(srv)
    first = fetch(out, jobs, "1")
    expect_exit(first, 0, "first run")
    expect_exact(srv, out, first, keys, "reval/")
    srv.log.step(srv)
    run = fetch(out, jobs, "2")
    log = srv.log.step(srv)
    try:
        expect_exit(run, 0, "re-run")
        expect_exact(srv, out, run, keys, "reval/", statuses=("skipped",))
    except Failure as e:
        raise Failure(f"{e}; server logged: {'; '.join(show(r) for r in log)}")
    for k in keys:
        got = requests_for(log, srv, k)
        need([r["status"] for r in got] == [304],
             f"{k}: expected one conditional request answered 304, server logged {[show(r) for r in got]}")
    return "; ".join(show(r) for r in log)


def check_changed(srv, out):
    """Files changed on the server between runs (same size, new content), no checksums in
    the list: a complete file must not be answered 304, and an interrupted one must not be
    continued with the old version's head."""
    small, big = "changed/small.bin", "changed/big.bin"
    srv.put(small, blob(20_000))
    srv.put(big, blob(BIG))
    jobs = [(srv.url(small), "small.bin", None), (srv.url(big), "big.bin", None)]
    srv.log.step(srv)
    first = fetch(out, jobs, "1", interrupt="big.bin")
    expect_exit(first, 130, "interrupted run")
    need(first.report.get("small.bin", {}).get("status") == "ok", "small.bin not ok in the first run")
    srv.log.step(srv, also=[srv.log_path(big)])
    part = part_size(out, "big.bin")
    for key in (small, big):
        old = srv.content[key]
        srv.content["#old:" + key] = old
        srv.put(key, bytes(b ^ 0x5A for b in old), mtime=time.time() - 1800)
    run = fetch(out, jobs, "2")
    log = srv.log.step(srv)
    try:
        expect_exit(run, 0, "re-run")
        expect_exact(srv, out, run, [small, big], "changed/")
    except Failure as e:
        raise Failure(f"{e}; server logged: {'; '.join(show(r) for r in log)}")
    conditional = [r for r in requests_for(log, srv, small) if r["inm"] or r["ims"]]
    need(conditional, f"small.bin was not asked conditionally, so the change went untested: {[show(r) for r in log]}")
    return f"part of {part}: " + "; ".join(show(r) for r in log)


def check_complete_part(srv, out):
    """A .part of the full length with the sidecar fetchpool wrote (what a kill -9 just
    before the rename leaves): finished with the right bytes, without downloading it again."""
    keys = ["cpart/a.bin", "cpart/b.bin"]
    for k in keys:
        srv.put(k, blob(3 << 20))
    # a.bin listed with its sha256, b.bin without: both must end exact.
    jobs = [(srv.url(keys[0]), "a.bin", sha(srv.content[keys[0]])), (srv.url(keys[1]), "b.bin", None)]
    srv.log.step(srv)
    for n, (k, job) in enumerate(zip(keys, jobs)):
        # One at a time, each part completed at once: one part in flight per run.
        first = fetch(out, [job], str(n + 1), interrupt=job[1])
        expect_exit(first, 130, f"interrupted run ({job[1]})")
        part_size(out, job[1])
        part = part_file(out, job[1])
        with open(part, "ab") as f:
            f.write(srv.content[k][os.path.getsize(part):])
    srv.log.step(srv, also=[srv.log_path(k) for k in keys])
    run = fetch(out, jobs, "3")
    log = srv.log.step(srv)
    try:
        expect_exit(run, 0, "run on the complete parts")
        expect_exact(srv, out, run, keys, "cpart/", statuses=("ok", "skipped"))
    except Failure as e:
        raise Failure(f"{e}; server logged: {'; '.join(show(r) for r in log) or 'no request'}")
    full = [r for r in log if r["status"] == 200]
    need(not full, f"downloaded again in full: {'; '.join(show(r) for r in log)}")
    return "; ".join(show(r) for r in log) or "no request"


def check_weak_etag(srv, out):
    """A file modified just before the download (Apache's weak-ETag window: W/"…" for a
    file changed under a second before the request), interrupted and resumed. The bytes
    must end exact, and no If-Range may carry a date while the server sends ETags (RFC 9110
    §13.1.5); where the server's ETag was strong the resume is an ordinary 206."""
    key = "weak/big.bin"
    srv.put(key, blob(BIG), mtime=False)  # mtime now
    jobs = [(srv.url(key), "big.bin", None)]
    srv.log.step(srv)
    first = fetch(out, jobs, "1", interrupt="big.bin")
    expect_exit(first, 130, "interrupted run")
    tag = [r["etag"] for r in requests_for(srv.log.step(srv, also=[srv.log_path(key)]), srv, key)]
    run = fetch(out, jobs, "2")
    log = requests_for(srv.log.step(srv), srv, key)
    expect_exit(run, 0, "resume")
    expect_exact(srv, out, run, [key], "weak/")
    dated = [r for r in log if r["if_range"] and not r["if_range"].startswith('"')]
    need(not dated, f"first response's ETag {tag[0] if tag else '?'}, then If-Range with a date "
         f"although the server sends ETags: {[show(r) for r in dated]}")
    return f"first ETag {tag[0] if tag else '?'}; " + "; ".join(show(r) for r in log)


def check_gzip(srv, out):
    """-H 'Accept-Encoding: gzip' on text files (one large, interrupted and resumed), no
    checksums: refused before any request (exit 2, naming the header), or every file exact
    -- except jobs that fail where the server encoded a body (a Content-Encoding the job
    did not plan for), with nothing wrong at their paths and no sidecar for them."""
    keys = [f"gzip/t{i}.txt" for i in range(8)] + ["gzip/big.txt"]
    for k in keys[:-1]:
        srv.put(k, text(30_000))
    # base64 of random bytes: text that gzip shrinks by only a quarter, so the large
    # file's compressed body still lasts seconds at the interrupted run's rate.
    srv.put(keys[-1], base64.encodebytes(blob(3 << 20)))
    jobs = [(srv.url(k), k[5:], None) for k in keys]
    hdr = ["-H", "Accept-Encoding: gzip"]
    srv.log.step(srv)
    probe = fetch(out + "-probe", jobs[:1], "1", extra=hdr)
    log = srv.log.step(srv)
    if probe.code == 2:
        need(not log, f"exit 2 but the server saw requests: {[show(r) for r in log]}")
        need("accept-encoding" in probe.stderr.lower(), f"exit 2 without naming the header: {probe.stderr.strip()}")
        return "refused before any request (exit 2, names Accept-Encoding)"
    # The interrupted run may end by itself: a fetchpool that fails encoded bodies does.
    first = fetch(out, jobs, "1", extra=hdr, interrupt="big.txt", may_end=True)
    need(first.code in (0, 1, 130), f"interrupted run: exit {first.code}")
    log1 = srv.log.step(srv, also=[srv.log_path(keys[-1])])
    run = fetch(out, jobs, "2", extra=hdr)
    log = srv.log.step(srv)
    n_encoded = sum(1 for r in log1 + log if r.get("ce"))
    encoded = f"{n_encoded} of {len(log1 + log)}"
    failed, wrong = [], []
    try:
        need(run.code in (0, 1), f"second run: exit {run.code}")
        for k in keys:
            line = run.report.get(k[5:]) or {}
            if line.get("status") == "failed":
                err = line.get("error") or {}
                need(n_encoded, f"{k[5:]} failed although the server encoded nothing: {err}")
                got = disk(out, k[5:])
                need(got is None or got == srv.content[k], f"{k[5:]}: failed, and a WRONG file is at its path")
                failed.append(f"{k[5:]} ({err.get('kind')})")
            else:
                # The small files finished in the first run: a 304 now, and still exact.
                try:
                    expect_exact(srv, out, run, [k], "gzip/", statuses=("ok", "skipped"), tidy=False)
                except Failure as e:
                    wrong.append(str(e))
        if wrong:
            others = "".join(f"; {w.split(' (')[0]}" for w in wrong[1:])
            raise Failure(f"{len(wrong)} of {len(keys)} files: {wrong[0]}{others}")
        need(run.code == (1 if failed else 0), f"second run: exit {run.code} with {len(failed)} failed")
        sidecars = [f for f in leftovers(out) if f.endswith(".meta")]
        need(not sidecars, f"sidecars left for encoded bodies: {sidecars}")
    except Failure as e:
        big = [show(r) for r in requests_for(log, srv, keys[-1])]
        raise Failure(f"{e}; {encoded} responses encoded; big.txt's second request: {big}")
    if failed:
        return f"{encoded} responses encoded; failed, nothing wrong on disk: {', '.join(failed)}"
    return f"{encoded} responses encoded by the server, all files exact"


def check_presigned_resume(srv, out):
    """sigv4 query-signed URLs re-generated between an interrupted run and its resume: the
    resume continues the part (Range answered 206) and ends exact."""
    key, small = "presigned/big.bin", "presigned/small.bin"
    srv.put(key, blob(BIG))
    srv.put(small, blob(5000))
    listing = lambda exp: [(srv.presigned(k, exp), k[10:], sha(srv.content[k])) for k in (key, small)]  # noqa: E731
    srv.log.step(srv)
    first = fetch(out, listing(3600), "1", interrupt="big.bin")
    expect_exit(first, 130, "interrupted run")
    before = {r["query"] for r in requests_for(srv.log.step(srv, also=[srv.log_path(key)]), srv, key)}
    part = part_size(out, "big.bin")
    again = listing(3000)  # another expiry: another query string, whatever the clock
    run = fetch(out, again, "2")
    log = requests_for(srv.log.step(srv), srv, key)
    need(all(r["query"] not in before for r in log), "the re-generated URL's query is the same as before")
    expect_exit(run, 0, "resume")
    expect_exact(srv, out, run, [key], "presigned/")
    expect_exact(srv, out, run, [small], "presigned/", statuses=("ok", "skipped"))  # done in run 1
    need(len(log) == 1 and log[0]["range"] == f"bytes={part}-" and log[0]["status"] == 206,
         f"expected one Range: bytes={part}- answered 206 (the part held {part}), server logged "
         f"{[show(r) for r in log]}, resumed_from {run.report['big.bin']['resumed_from']}")
    return f"new signature, Range: bytes={part}- -> 206"


def check_presigned_304(srv, out):
    """A re-run without checksums from re-generated signed URLs: answered 304."""
    keys = ["signed304/a.bin", "signed304/b.bin"]
    srv.put(keys[0], blob(2 << 20))
    srv.put(keys[1], blob(7000))
    listing = lambda exp: [(srv.presigned(k, exp), k[10:], None) for k in keys]  # noqa: E731
    srv.log.step(srv)
    first = fetch(out, listing(3600), "1")
    expect_exit(first, 0, "first run")
    srv.log.step(srv)
    run = fetch(out, listing(3000), "2")
    log = srv.log.step(srv)
    try:
        expect_exit(run, 0, "re-run")
        expect_exact(srv, out, run, keys, "signed304/", statuses=("skipped",))
        need(sorted(r["status"] for r in log) == [304, 304], "not answered 304")
    except Failure as e:
        raise Failure(f"{e}; server logged: {'; '.join(show(r) for r in log)}")
    return "; ".join(show(r) for r in log)


def check_presigned_retry(srv, out):
    """--retry-failed REPORT with re-generated signed URLs: the job the interrupted run
    left unfinished is matched by its path and finished (its part continued with 206),
    not passed over as "nothing to do"."""
    key, small = "signedretry/big.bin", "signedretry/small.bin"
    srv.put(key, blob(BIG))
    srv.put(small, blob(5000))
    listing = lambda exp: [(srv.presigned(k, exp), k[12:], sha(srv.content[k])) for k in (key, small)]  # noqa: E731
    srv.log.step(srv)
    first = fetch(out, listing(3600), "1", interrupt="big.bin")
    expect_exit(first, 130, "interrupted run")
    need(first.report.get("big.bin", {}).get("status") == "cancelled", "big.bin not reported cancelled")
    srv.log.step(srv, also=[srv.log_path(key)])
    part = part_size(out, "big.bin")
    run = fetch(out, listing(3000), "2", extra=["--retry-failed", f"{out}.1.jsonl"])
    log = requests_for(srv.log.step(srv), srv, key)
    try:
        expect_exit(run, 0, "--retry-failed run")
        expect_exact(srv, out, run, [key], "signedretry/")
        need(disk(out, "small.bin") == srv.content[small], "small.bin (done in run 1) is not exact")
    except Failure as e:
        raise Failure(f"{e}; server logged: {'; '.join(show(r) for r in log) or 'no request'}")
    need(len(log) == 1 and log[0]["range"] == f"bytes={part}-" and log[0]["status"] == 206,
         f"expected one Range: bytes={part}- answered 206, server logged {[show(r) for r in log]}")
    return f"cancelled job matched by path, Range: bytes={part}- -> 206"


CHECKS = [
    ("mixed", check_mixed),
    ("resume-206", check_resume),
    ("revalidate-304", check_revalidate),
    ("changed", check_changed),
    ("complete-part", check_complete_part),
    ("weak-etag", check_weak_etag),
    ("gzip", check_gzip),
]
MOTO_CHECKS = [
    ("presigned-resume", check_presigned_resume),
    ("presigned-304", check_presigned_304),
    ("presigned-retry", check_presigned_retry),
]


def main():
    failed = total = 0
    for name, port in SERVERS:
        srv = MotoServer(name, port) if name == "moto" else FileServer(name, port)
        for check, fn in CHECKS + (MOTO_CHECKS if name == "moto" else []):
            total += 1
            started = time.monotonic()
            try:
                detail, ok = fn(srv, f"{WORK}/out/{name}/{check}"), True
            except Failure as e:
                detail, ok = str(e), False
                failed += 1
            except Exception as e:  # a bug here, or a server answering what no check expects
                detail, ok = f"check crashed: {type(e).__name__}: {e}", False
                failed += 1
            took = time.monotonic() - started
            print(f"{name:<9} {check:<16} {'ok  ' if ok else 'FAIL'} {took:4.1f}s  {detail}", flush=True)
    print(f"servers: {total - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


main()
