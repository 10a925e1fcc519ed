#!/usr/bin/env python3
"""fetchpool benchmark runner: fetchpool against curl, aria2c and wget2 on the bench nginx.

  run.py bench   every selected tool on every selected corpus, BENCH_RUNS times each
                 (round-robin: run 1 of every tool, then run 2, ...), one table, raw JSON
  run.py scale   one tool (fetchpool by default) on 1k, 10k, 100k (, 1M) tiny jobs
  run.py chart   gnuplot bar chart of bench/results/latest.json -> bench/results/bench.png
  run.py corpora the corpora the chosen conditions need

Settings come from the environment (the Makefile passes them through):
  BENCH_WORK   work dir with corpus/ and manifests/           (bench/work)
  BENCH_OUT    where tools write their output                 (BENCH_WORK/out; /dev/shm/... for tmpfs)
  BENCH_RUNS   runs per tool and corpus, median reported      (3)
  BENCH_J      concurrency for every tool                     (20)
  BENCH_PORT   nginx port                                     (18080)
  BENCH_TOOLS  tools, space separated                         (fetchpool curl-xargs curl-parallel aria2c wget2 curl-single)
  BENCH_CORPORA conditions (corpus + server), see CONDITIONS    (files api big big-capped files-capped https-files https-api)
  BENCH_CAP    the capped server's per-connection rate (nginx) (25m; set for serve.sh, shown in the table)
  FETCHPOOL    the fetchpool binary                           (target/release/fetchpool)
  FETCHPOOL_BASE another fetchpool build, tool fetchpool-base  (target/base/fetchpool): before/after A/B
  SCALE_MAX    largest bench-scale list                       (100000; 1000000 adds the 1M list)
  SCALE_OUT    bench-scale output dir                         (/dev/shm/fetchpool-scale)
  SCALE_TOOLS  tools for bench-scale                          (fetchpool)
  BENCH_TIMEOUT seconds before a single run is killed         (900)

Each run: rm -rf the tool's output dir and sync (not timed); read nginx's stub_status;
start the clock (time.monotonic); run the tool under /usr/bin/time -f %M (peak RSS);
stop the clock; read stub_status again (accepts/requests deltas minus the probe's own);
verify with `sha256sum -c` against the manifest (not timed).
"""

import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import gen_corpus  # noqa: E402


def env(name, default):
    v = os.environ.get(name, "")
    return v if v.strip() else default


WORK = os.path.abspath(env("BENCH_WORK", os.path.join(HERE, "work")))
OUT = os.path.abspath(env("BENCH_OUT", os.path.join(WORK, "out")))
RUNS = int(env("BENCH_RUNS", "3"))
J = int(env("BENCH_J", "20"))
PORT = int(env("BENCH_PORT", "18080"))
ALL_TOOLS = ["fetchpool", "fetchpool-base", "fetchpool-split1", "curl-xargs", "curl-parallel", "aria2c", "wget2",
             "curl-single"]
TOOLS = env("BENCH_TOOLS", " ".join(ALL_TOOLS)).split()
CORPORA = env("BENCH_CORPORA", "files api big big-capped files-capped https-files https-api").split()
FETCHPOOL = os.path.abspath(env("FETCHPOOL", os.path.join(ROOT, "target/release/fetchpool")))
# A second fetchpool binary (an older commit's build) for a before/after A/B in one run:
# BENCH_TOOLS="fetchpool fetchpool-base ..." FETCHPOOL_BASE=path/to/old/fetchpool.
FETCHPOOL_BASE = os.path.abspath(env("FETCHPOOL_BASE", os.path.join(ROOT, "target/base/fetchpool")))
SCALE_MAX = int(float(env("SCALE_MAX", "100000")))
SCALE_OUT = os.path.abspath(env("SCALE_OUT", "/dev/shm/fetchpool-scale" if os.path.isdir("/dev/shm")
                                else os.path.join(WORK, "scale-out")))
SCALE_TOOLS = env("SCALE_TOOLS", "fetchpool").split()
TIMEOUT = float(env("BENCH_TIMEOUT", "900"))
RESULTS = os.path.join(HERE, "results")
MDIR = os.path.join(WORK, "manifests")
BASE = f"http://127.0.0.1:{PORT}"
CAP = env("BENCH_CAP", "25m")
# The servers bench/serve.sh starts: plain, capped per connection, TLS with a private CA.
BASES = {"plain": BASE, "capped": f"http://127.0.0.1:{PORT + 1}", "tls": f"https://127.0.0.1:{PORT + 2}"}
CA = os.path.join(WORK, "nginx", "tls", "ca.pem")
# Whether finished runs keep their emptied files until the bench ends (outputs on a disk:
# see `spent_dir`); decided by `cmd_bench` from the output's filesystem.
KEEP_INODES = False

# A condition is a corpus on one of the servers, with the tools that make sense there and
# what they need (the connection count, splitting, the CA). Every tool of a condition runs
# at the same connection count.
CONDITIONS = {
    "files": {"corpus": "files", "server": "plain"},
    "api": {"corpus": "api", "server": "plain"},
    "big": {"corpus": "big", "server": "plain"},
    # One large file, each connection capped: fetchpool --split 16 against aria2c -x16 -s16
    # -k1M and one curl stream (the line rate of a single connection). wget2 is left out:
    # wget2 2.0's --chunk-size fetched this file over one connection and failed (exit 3)
    # after a minute.
    "big-capped": {"corpus": "bigcap", "server": "capped", "j": 16, "split": 16, "one_file": True,
                   "tools": ["fetchpool", "fetchpool-base", "aria2c", "curl-single"]},
    # The mixed list, each connection capped: splitting its large members (fetchpool) against
    # not splitting (fetchpool-split1) and the peers as on `files`. The default 8 MiB segment
    # splits none of this corpus (its largest file is 10 MiB), so fetchpool runs with 1 MiB
    # segments here: files over 2 MiB are split.
    "files-capped": {"corpus": "files", "server": "capped", "split": 4, "segment": "1M",
                     "tools": ["fetchpool", "fetchpool-split1", "fetchpool-base", "curl-parallel",
                               "aria2c", "wget2"]},
    "https-files": {"corpus": "files", "server": "tls",
                    "tools": ["fetchpool", "fetchpool-base", "curl-parallel", "aria2c", "wget2"]},
    "https-api": {"corpus": "api", "server": "tls",
                  "tools": ["fetchpool", "fetchpool-base", "curl-parallel", "aria2c", "wget2"]},
}

# Tools' environment: no proxy may sit between them and the local nginx.
CHILD_ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
CHILD_ENV["LC_ALL"] = "C"


def die(msg):
    print(f"\n*** bench: {msg}", file=sys.stderr)
    sys.exit(1)


# --------------------------------------------------------------------------- tools

def tool_cmd(tool, m, out, cond=None):
    """(argv, cwd, stdin path or None, verifies output?) for one run; m = manifest path prefix."""
    cond = cond or {}
    j = cond.get("j", J)
    tls = cond.get("server") == "tls"
    if tool in ("fetchpool", "fetchpool-base", "fetchpool-split1"):
        exe = FETCHPOOL_BASE if tool == "fetchpool-base" else FETCHPOOL
        argv = [exe, "-j", str(j), "--per-host", str(j), "-q", "-i", m + ".tsv", "-o", out]
        if tool == "fetchpool-split1":
            argv += ["--split", "1"]
        elif tool == "fetchpool" and "split" in cond:
            argv += ["--split", str(cond["split"])]
            if "segment" in cond:
                argv += ["--segment-size", cond["segment"]]
        if tls:
            argv += ["--cacert", CA]
        return (argv, out, None, True)
    if tool == "curl-xargs":  # the seed's "20 threads": one curl process per URL
        return (["xargs", "-P", str(j), "-n", "3", "curl", "-sS", "-f", "--create-dirs"]
                + (["--cacert", CA] if tls else []), out, m + ".xargs", True)
    if tool == "curl-parallel":
        return (["curl", "--parallel", "--parallel-max", str(j), "-sS", "-f", "--create-dirs",
                 "--output-dir", out, "-K", m + ".curlrc"] + (["--cacert", CA] if tls else []),
                out, None, True)
    if tool == "aria2c":
        if cond.get("one_file"):  # one file over j connections, 1 MiB pieces
            conns = ["-j", "1", "-x", str(j), "-s", str(j), "-k", "1M"]
        else:
            conns = ["-j", str(j), "-x", "1", "-s", "1"]
        tls_args = ["--ca-certificate=" + CA, "--check-certificate=true"] if tls else ["--check-certificate=false"]
        return (["aria2c", "--no-conf", "-i", m + ".aria2", "-d", out] + conns +
                ["--file-allocation=none", "--allow-overwrite=true", "--auto-file-renaming=false",
                 "--console-log-level=error", "--summary-interval=0", "--show-console-readout=false",
                 "--download-result=hide", "--auto-save-interval=0", "--max-tries=1"] + tls_args,
                out, None, True)
    if tool == "wget2":
        chunks = ["--chunk-size=16M"] if cond.get("one_file") else []
        return (["wget2", "--no-config", "-q", "--max-threads", str(j), "-x", "-nH", "-P", out,
                 "--no-robots", "--no-hsts", "--no-hpkp", "--no-cookies", "--no-netrc", "--no-ocsp",
                 "--progress=none", "--tries=1", "-i", m + ".urls"] + chunks
                + (["--ca-certificate=" + CA] if tls else []), out, None, True)
    if tool == "curl-single":  # single-stream baseline: one curl, body to /dev/null, nothing verified
        urls = [line.split("\t")[0] for line in open(m + ".tsv") if not line.startswith("#")]
        return (["curl", "-sS", "-f", "-o", "/dev/null", urls[0]], out, None, False)
    die(f"unknown tool {tool!r}; known: {' '.join(ALL_TOOLS)}")


def applies(tool, corpus):
    # curl-single is the single-stream baseline for the one-file corpora only
    return tool != "curl-single" or corpus in ("big", "big-capped")


def condition_tools(name):
    """The selected tools that run in condition `name`, in BENCH_TOOLS order (fetchpool-split1
    runs wherever a condition names it and fetchpool is selected)."""
    cond = CONDITIONS[name]
    allowed = cond.get("tools")
    chosen = list(TOOLS)
    if "fetchpool" in chosen and allowed and "fetchpool-split1" in allowed and "fetchpool-split1" not in chosen:
        chosen.insert(chosen.index("fetchpool") + 1, "fetchpool-split1")
    return [t for t in chosen if (allowed is None or t in allowed) and applies(t, name)]


def check_tools(tools):
    need = {"fetchpool": FETCHPOOL, "fetchpool-base": FETCHPOOL_BASE, "fetchpool-split1": FETCHPOOL,
            "curl-xargs": "curl", "curl-parallel": "curl", "aria2c": "aria2c",
            "wget2": "wget2", "curl-single": "curl"}
    missing = []
    for t in tools:
        if t not in need:
            die(f"unknown tool {t!r}; known: {' '.join(ALL_TOOLS)}")
        exe = need[t]
        if not (os.access(exe, os.X_OK) if os.sep in exe else shutil.which(exe)):
            missing.append(f"{t} ({exe})")
    for exe in ("/usr/bin/time", "sha256sum", "xargs"):
        if not os.access(exe, os.X_OK) and not shutil.which(exe):
            missing.append(exe)
    if missing:
        die("missing tools: " + ", ".join(missing) +
            "\n    run `make bench-deps` (peers), `cargo build --release` (fetchpool),"
            " or choose tools with BENCH_TOOLS=\"curl-xargs curl-parallel aria2c wget2\"")


def versions(tools):
    cmds = {"fetchpool": [FETCHPOOL, "--version"], "curl": ["curl", "--version"],
            "aria2c": ["aria2c", "--version"], "wget2": ["wget2", "--version"], "nginx": ["nginx", "-v"]}
    v = {}
    for name, cmd in cmds.items():
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            v[name] = ((p.stdout or p.stderr).strip().splitlines() or ["?"])[0]
        except (OSError, subprocess.SubprocessError):
            v[name] = None
    return v


# --------------------------------------------------------------------------- measuring

def nginx_status():
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                f"{BASE}/nginx_status", timeout=5) as r:
            text = r.read().decode()
    except OSError as e:
        die(f"nginx not answering on {BASE} ({e}); run `make bench-serve`")
    nums = re.search(r"accepts handled requests\s+(\d+)\s+(\d+)\s+(\d+)", text)
    active = re.search(r"Active connections:\s*(\d+)", text)
    return {"accepts": int(nums.group(1)), "requests": int(nums.group(3)), "active": int(active.group(1))}


def nginx_rate(text):
    """nginx's limit_rate value in bytes per second (`25m`, `512k`, `1000`)."""
    t = text.strip().lower()
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(t[-1:], 1)
    return int(float(t.rstrip("kmg")) * scale)


def fresh_dir(path):
    if os.path.lexists(path):
        subprocess.run(["rm", "-rf", "--one-file-system", path], check=True)
    os.makedirs(path)
    os.sync()


def fs_type(path):
    # findmnt names the mount's own type (ext4); stat -f only knows the magic number,
    # which ext2, ext3 and ext4 share.
    try:
        p = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "--target", path],
                           capture_output=True, text=True)
        if p.returncode == 0 and p.stdout.strip():
            return p.stdout.split()[-1]  # stacked mounts: the last is the one on top
    except FileNotFoundError:
        pass
    p = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return p.stdout.strip() or "?"


def verify(m, out):
    """(mismatched or missing, total) from `sha256sum -c` in the output dir."""
    total = sum(1 for _ in open(m + ".sha256"))
    p = subprocess.run(["sha256sum", "-c", "--quiet", m + ".sha256"], cwd=out,
                       capture_output=True, text=True, env=CHILD_ENV)
    bad = sum(1 for line in p.stdout.splitlines() if ": FAILED" in line)
    if p.returncode != 0 and bad == 0:
        bad = total  # sha256sum itself failed
    return bad, total


def run_once(tool, m, out, do_verify=True, cond=None, small=None):
    """One timed run. `small`: output paths whose last one's finish time (the latest mtime,
    from the start) is recorded as small_done_s."""
    argv, cwd, stdin, verifies = tool_cmd(tool, m, out, cond)
    fresh_dir(out)
    with tempfile.NamedTemporaryFile("r", prefix="bench-time-", delete=False) as tf:
        tpath = tf.name
    st0 = nginx_status()
    fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
    epoch0 = time.time()
    t0 = time.monotonic()
    proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", tpath] + argv, cwd=cwd, stdin=fin,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=CHILD_ENV,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group of the process we started
        _, err = proc.communicate()
        timed_out = True
    wall = time.monotonic() - t0
    if stdin:
        fin.close()
    st1 = nginx_status()
    try:
        rss_kib = int(open(tpath).read().strip().splitlines()[-1])
    except (ValueError, IndexError):
        rss_kib = None
    os.unlink(tpath)
    # The probes' own connections/requests: the "before" probe is counted in st0,
    # the "after" probe in st1, so subtract one of each.
    res = {"wall_s": wall, "exit": proc.returncode, "timed_out": timed_out, "rss_kib": rss_kib,
           "conns": st1["accepts"] - st0["accepts"] - 1, "requests": st1["requests"] - st0["requests"] - 1,
           "stderr_tail": err.decode(errors="replace")[-2000:]}
    if verifies and do_verify:
        res["bad"], res["checked"] = verify(m, out)
    else:
        res["bad"], res["checked"] = 0, 0
    if small:
        try:
            res["small_done_s"] = max(os.stat(os.path.join(out, rel)).st_mtime for rel in small) - epoch0
        except OSError:
            res["small_done_s"] = None
    # Free the output now (not timed): leftovers would make the next tool's run allocate
    # never-touched memory (tmpfs / page cache), which on a VM is much slower than reusing
    # freed pages and made the first tool of a round look 2-4x slower on `big`.
    spend(out)
    os.sync()
    return res


def spend(out):
    """Frees a finished run's output. On tmpfs: removed. On a disk: every file is emptied
    and the tree set aside under OUT/.spent until the bench ends (see `spent_dir`)."""
    if not KEEP_INODES:
        subprocess.run(["rm", "-rf", "--one-file-system", out])
        return
    for root, _dirs, files in os.walk(out):
        for f in files:
            os.truncate(os.path.join(root, f), 0)
    os.makedirs(spent_dir(), exist_ok=True)
    os.rename(out, os.path.join(spent_dir(), f"{os.path.basename(out)}-{time.monotonic_ns()}"))


def spent_dir():
    # Why runs on a disk keep their (emptied) files until the end: ext4 without a journal
    # (this VM's root, common on VM images) does not reuse an inode freed in the last 60 s
    # (360 s while its table block is dirty), and finds that out by reading every free
    # inode of the group: right after the previous run deleted its 10,000 files, each new
    # file cost a scan of the whole group. A profile of fetchpool on `api` after such a
    # delete: 62 % of all samples in find_inode_bit, recently_deleted and
    # find_get_block_common, wall times swinging 0.6-2.6 s for the same run. Emptied files
    # keep their inodes, so nothing is freed until the bench ends.
    return os.path.join(OUT, ".spent")


def drop_spent():
    if os.path.lexists(spent_dir()):
        subprocess.run(["rm", "-rf", "--one-file-system", spent_dir()], check=True)


def warm(corpus):
    """Read the corpus once so nginx serves every tool from the page cache."""
    t0 = time.monotonic()
    total = 0
    for rel, _sha, _size in gen_corpus.read_index(os.path.join(WORK, "corpus", f"{corpus}.index")):
        with open(os.path.join(WORK, "corpus", rel), "rb") as f:
            while b := f.read(1 << 22):
                total += len(b)
    return time.monotonic() - t0


def machine():
    cpu = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem = int(line.split()[1]) // 1024
    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "mem_mib": mem,
            "kernel": platform.release(), "os": platform.freedesktop_os_release().get("PRETTY_NAME", "?")
            if hasattr(platform, "freedesktop_os_release") else "?"}


# --------------------------------------------------------------------------- reporting

def summarize(runs):
    walls = [r["wall_s"] for r in runs]
    rss = [r["rss_kib"] for r in runs if r["rss_kib"] is not None]
    small = [r["small_done_s"] for r in runs if r.get("small_done_s") is not None]
    return {"median_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls),
            "small_done_s": statistics.median(small) if small else None,
            "rss_kib": max(rss) if rss else None,
            "conns": int(statistics.median(r["conns"] for r in runs)),
            "requests": int(statistics.median(r["requests"] for r in runs)),
            "bad": max(r["bad"] for r in runs), "checked": max(r["checked"] for r in runs),
            "failed_runs": sum(1 for r in runs if r["exit"] != 0 or r["timed_out"] or r["bad"])}


def fmt_rss(kib):
    return "?" if kib is None else f"{kib / 1024:.1f} MiB"


def print_table(result):
    lines = []
    m = result["machine"]
    lines.append(f"fetchpool bench  {result['timestamp']}  on {m['cpu']}, {m['cores']} cores, "
                 f"{m['mem_mib']} MiB, {m['os']}, kernel {m['kernel']}")
    lines.append(f"concurrency j={result['j']} (big-capped: 16), runs={result['runs']}, output {result['out']} "
                 f"({result['out_fs']}), nginx {result['nginx_workers']} workers on 127.0.0.1:{PORT} "
                 f"(capped: {result.get('cap', CAP)} per connection on :{PORT + 1}, TLS on :{PORT + 2})")
    any_bad = False
    for corpus, c in result["corpora"].items():
        lines.append("")
        load = c.get("load")
        load = f"  (load {load[0]:.2f} before, {load[1]:.2f} after)" if load else ""
        lines.append(f"[{corpus}]  {c['files']} files, {c['bytes'] / 1e6:.1f} MB{load}")
        hdr = (f"  {'tool':<16}{'median s':>9}  {'(min-max)':<15}{'MB/s':>8}{'files/s':>9}"
               f"{'peak RSS':>11}{'conns':>7}{'reqs':>7}  {'verify':<14}{'vs fetchpool':>12}")
        lines.append(hdr)
        lines.append("  " + "-" * (len(hdr) - 2))
        fp = c["tools"].get("fetchpool", {}).get("summary")
        for tool, t in c["tools"].items():
            s = t["summary"]
            med = s["median_s"]
            if not t["verifies"]:
                ver = "n/a"
            elif s["bad"] or s["failed_runs"]:
                ver = f"FAIL {s['bad']}/{s['checked']}" if s["bad"] else f"FAIL exit {t['runs'][-1]['exit']}"
                any_bad = True
            else:
                ver = f"ok {s['checked']}"
            ratio = f"{med / fp['median_s']:.2f}x" if fp else "-"
            rss = fmt_rss(s["rss_kib"]) + ("*" if tool == "curl-xargs" else "")
            lines.append(f"  {tool:<16}{med:>9.3f}  {'(' + format(s['min_s'], '.3f') + '-' + format(s['max_s'], '.3f') + ')':<15}"
                         f"{c['bytes'] / 1e6 / med:>8.1f}{c['files'] / med:>9.0f}{rss:>11}"
                         f"{s['conns']:>7}{s['requests']:>7}  {ver:<14}{ratio:>12}")
        peers = {k: v["summary"]["median_s"] for k, v in c["tools"].items()
                 if not k.startswith("fetchpool") and k != "curl-single"}
        if peers:
            best = min(peers, key=peers.get)
            msg = f"  fastest peer: {best} {peers[best]:.3f} s"
            if fp:
                msg += f"; fetchpool / fastest peer = {fp['median_s'] / peers[best]:.2f}x"
                if fp["bad"] or fp["failed_runs"]:
                    msg += "  (INVALID: fetchpool FAILED)"
            lines.append(msg)
        if fp and "curl-single" in c["tools"]:
            cs = c["tools"]["curl-single"]["summary"]["median_s"]
            lines.append(f"  fetchpool throughput = {cs / fp['median_s'] * 100:.0f}% of one curl -o /dev/null stream")
        if fp and c.get("line_rate"):
            ideal = c["bytes"] / c["line_rate"]
            lines.append(f"  line rate (cap x {c['conns_allowed']} connections) {c['line_rate'] / 2**20:.0f} MiB/s:"
                         f" ideal {ideal:.3f} s; fetchpool at {ideal / fp['median_s'] * 100:.0f}% of it")
        smalls = {k: v["summary"]["small_done_s"] for k, v in c["tools"].items()
                  if v["summary"].get("small_done_s") is not None}
        if smalls:
            lines.append("  small members (<= 2 MiB, not split) all done after: " +
                         ", ".join(f"{k} {v:.3f} s" for k, v in smalls.items()) + " (median, from the files' mtimes)")
    lines.append("")
    lines.append("  vs fetchpool: tool's median / fetchpool's median (>1 = slower than fetchpool).")
    lines.append("  conns/reqs: nginx stub_status accepts/requests deltas per run (median).")
    lines.append("  * curl-xargs peak RSS is /usr/bin/time's %M for the process tree: the largest single")
    lines.append("    process (one curl or xargs), not the sum of the up-to-j curls alive at once.")
    text = "\n".join(lines)
    print(text)
    if any_bad:
        print("\n*** VERIFY FAILED for at least one tool (see FAIL above and stderr_tail in the JSON) ***",
              file=sys.stderr)
    return text, any_bad


def save(result, stem):
    """bench: results/<timestamp>.json + results/latest.json; scale: results/scale-<timestamp>.json + scale-latest.json"""
    os.makedirs(RESULTS, exist_ok=True)
    prefix = "" if stem == "bench" else stem + "-"
    path = os.path.join(RESULTS, f"{prefix}{result['timestamp']}.json")
    latest = os.path.join(RESULTS, f"{prefix}latest.json")
    for p in (path, latest):
        with open(p, "w") as f:
            json.dump(result, f, indent=1)
    print(f"\nraw results: {os.path.relpath(path, ROOT)} and {os.path.relpath(latest, ROOT)}")


# --------------------------------------------------------------------------- commands

def cmd_bench():
    global KEEP_INODES
    check_tools(TOOLS)
    nginx_status()
    os.makedirs(OUT, exist_ok=True)
    KEEP_INODES = fs_type(OUT) != "tmpfs"
    drop_spent()  # an interrupted bench's
    ts = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    result = {"timestamp": ts, "machine": machine(), "versions": versions(TOOLS), "j": J, "runs": RUNS, "cap": CAP,
              "out": OUT, "out_fs": fs_type(OUT), "nginx_workers": env("BENCH_NGINX_WORKERS", "2"),
              "corpora": {}}
    for name in CORPORA:
        if name not in CONDITIONS:
            die(f"unknown condition {name!r}; known: {' '.join(CONDITIONS)}")
        cond = CONDITIONS[name]
        corpus = cond["corpus"]
        index = os.path.join(WORK, "corpus", f"{corpus}.index")
        if not os.path.exists(index):
            die(f"no corpus {corpus}; run `make bench-corpus`")
        idx = gen_corpus.read_index(index)
        m = os.path.join(MDIR, name)
        gen_corpus.write_manifests(MDIR, name, idx, BASES[cond["server"]])
        tools = condition_tools(name)
        c = {"files": len(idx), "bytes": sum(e[2] for e in idx), "tools": {}, "corpus": corpus,
             "server": cond["server"], "j": cond.get("j", J)}
        if cond["server"] == "capped":
            c["conns_allowed"] = cond.get("j", J) if len(idx) > 1 else cond.get("split", 1)
            c["line_rate"] = nginx_rate(CAP) * c["conns_allowed"]
        small = [rel for rel, _sha, size in idx if size <= 2 << 20] if "segment" in cond else None
        w = warm(corpus)
        load0 = os.getloadavg()[0]
        print(f"[{name}] {len(idx)} files, {c['bytes'] / 1e6:.1f} MB from {BASES[cond['server']]} "
              f"(page cache warmed in {w:.1f}s, load {load0:.2f}); tools: {' '.join(tools)}", flush=True)
        for t in tools:
            c["tools"][t] = {"argv": tool_cmd(t, m, os.path.join(OUT, f"{name}-{t}"), cond)[0][:30],
                             "verifies": tool_cmd(t, m, OUT, cond)[3], "runs": []}
        for r in range(RUNS):
            # The first slot of a round runs slower whichever tool takes it (caches, CPU
            # frequency after the warm-up): each round starts with the next tool.
            k = r % len(tools)
            for t in tools[k:] + tools[:k]:
                out = os.path.join(OUT, f"{name}-{t}")
                res = run_once(t, m, out, cond=cond, small=small if t.startswith("fetchpool") else None)
                c["tools"][t]["runs"].append(res)
                flag = ""
                if res["exit"] != 0 or res["timed_out"] or res["bad"]:
                    flag = (f"  <-- FAILED: exit {res['exit']}{' TIMEOUT' if res['timed_out'] else ''}, "
                            f"{res['bad']}/{res['checked']} bad\n      {res['stderr_tail'][-400:]!r}")
                print(f"  run {r + 1}/{RUNS} {t:<16} {res['wall_s']:8.3f} s  rss {fmt_rss(res['rss_kib']):>10}"
                      f"  conns {res['conns']:>6}  reqs {res['requests']:>6}{flag}", flush=True)
        for t in tools:
            c["tools"][t]["summary"] = summarize(c["tools"][t]["runs"])
        c["load"] = [load0, os.getloadavg()[0]]
        result["corpora"][name] = c
    drop_spent()
    print()
    text, any_bad = print_table(result)
    result["table"] = text
    save(result, "bench")
    with open(os.path.join(RESULTS, "latest.txt"), "w") as f:
        f.write(text + "\n")
    sys.exit(1 if any_bad else 0)


def scale_manifest(n):
    """scale-N: N jobs cycling over the api corpus, distinct output paths, 1000 per folder."""
    name = f"scale-{n}"
    stamp = os.path.join(MDIR, f".stamp-{name}")
    if os.path.exists(stamp) and open(stamp).read() == BASE + "\n":
        return os.path.join(MDIR, name)
    api = gen_corpus.read_index(os.path.join(WORK, "corpus", "api.index"))
    # write_manifests uses PATH as URL path too; here they differ, so write the files directly.
    os.makedirs(MDIR, exist_ok=True)
    m = os.path.join(MDIR, name)
    with open(m + ".tsv", "w") as tsv, open(m + ".sha256", "w") as sha, open(m + ".curlrc", "w") as rc, \
            open(m + ".xargs", "w") as xa, open(m + ".aria2", "w") as ar, open(m + ".urls", "w") as ul:
        for i in range(n):
            rel, digest, size = api[i % len(api)]
            url = f"{BASE}/{rel}"
            path = f"s{i // 1000:04d}/j{i:07d}.json"
            tsv.write(f"{url}\t{path}\t{digest}\t{size}\n")
            sha.write(f"{digest}  {path}\n")
            rc.write(f'url = "{url}"\noutput = "{path}"\n')
            xa.write(f"-o {path} {url}\n")
            ar.write(f"{url}\n  out={path}\n")
            ul.write(f"{url}\n")  # wget2 would reuse api/... names: not a valid scale peer
    with open(stamp, "w") as f:
        f.write(BASE + "\n")
    return m


def cmd_scale():
    check_tools(SCALE_TOOLS)
    nginx_status()
    sizes = [n for n in (1_000, 10_000, 100_000, 1_000_000) if n <= SCALE_MAX]
    ts = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    result = {"timestamp": ts, "machine": machine(), "versions": versions(SCALE_TOOLS), "j": J,
              "out": SCALE_OUT, "out_fs": None, "sizes": {}}
    os.makedirs(SCALE_OUT, exist_ok=True)
    result["out_fs"] = fs_type(SCALE_OUT)
    warm("api")
    for n in sizes:
        m = scale_manifest(n)
        result["sizes"][n] = {}
        for t in SCALE_TOOLS:
            out = os.path.join(SCALE_OUT, t)
            res = run_once(t, m, out)
            result["sizes"][n][t] = res
            print(f"  {n:>8} jobs  {t:<14} {res['wall_s']:8.3f} s  rss {fmt_rss(res['rss_kib']):>10}  "
                  f"conns {res['conns']:>6}  verify {res['checked'] - res['bad']}/{res['checked']}"
                  f"{'  <-- FAILED exit ' + str(res['exit']) if res['exit'] or res['bad'] else ''}", flush=True)
    lines = [f"fetchpool bench-scale  {ts}  on {result['machine']['cpu']}, {result['machine']['cores']} cores;"
             f" j={J}, output {SCALE_OUT} ({result['out_fs']})", ""]
    hdr = f"  {'tool':<14}{'jobs':>9}{'wall s':>10}{'us/job':>9}{'jobs/s':>9}{'peak RSS':>11}{'RSS/1k':>8}{'conns':>7}  verify"
    lines += [hdr, "  " + "-" * (len(hdr) - 2)]
    any_bad = False
    for t in SCALE_TOOLS:
        base_rss = None
        for n in sizes:
            r = result["sizes"][n][t]
            base_rss = base_rss or r["rss_kib"]
            bad = r["bad"] or r["exit"] or r["timed_out"]
            any_bad |= bool(bad)
            ver = f"FAIL {r['bad']}/{r['checked']} exit {r['exit']}" if bad else f"ok {r['checked']}"
            lines.append(f"  {t:<14}{n:>9}{r['wall_s']:>10.3f}{r['wall_s'] / n * 1e6:>9.1f}{n / r['wall_s']:>9.0f}"
                         f"{fmt_rss(r['rss_kib']):>11}{(r['rss_kib'] or 0) / (base_rss or 1):>7.2f}x{r['conns']:>7}  {ver}")
    text = "\n".join(lines)
    print("\n" + text)
    result["table"] = text
    save(result, "scale")
    sys.exit(1 if any_bad else 0)


def cmd_chart():
    path = os.path.join(RESULTS, "latest.json")
    if not os.path.exists(path):
        die("no bench/results/latest.json; run `make bench` first")
    res = json.load(open(path))
    if not shutil.which("gnuplot"):
        die("gnuplot missing; run `make bench-deps`")
    corpora = list(res["corpora"])
    png = os.path.join(RESULTS, "bench.png")
    m = res["machine"]
    gp = [f"set terminal pngcairo size {420 * len(corpora) + 80},520 font 'sans,10'",
          f"set output '{png}'",
          f"set multiplot layout 1,{len(corpora)} title \"fetchpool vs peers: median wall time, j={res['j']}, "
          f"{res['runs']} runs, output on {res['out_fs']}\\n{m['cpu']}, {m['cores']} cores ({res['timestamp']})\"",
          "set style fill solid 0.8 border -1", "set boxwidth 0.7", "set grid ytics", "unset key",
          "set xtics rotate by -35 left nomirror", "set ylabel 'seconds (lower is better)'"]
    for corpus in corpora:
        c = res["corpora"][corpus]
        data = os.path.join(RESULTS, f"chart-{corpus}.dat")
        meds = [t["summary"]["median_s"] for t in c["tools"].values()]
        # Clip the axis at 4x the fastest bar so one very slow tool (curl-xargs on api:
        # one process per request) doesn't flatten the rest; clipped bars say so in their label.
        cap = min(max(t["summary"]["max_s"] for t in c["tools"].values()), 4 * min(meds))
        with open(data, "w") as f:
            for i, (tool, t) in enumerate(c["tools"].items()):
                s = t["summary"]
                color = "0xd9534f" if tool == "fetchpool" else "0x5b8fd9"
                label = f"{s['median_s']:.2f}" + (" (off scale)" if s["median_s"] > cap else "")
                if t["verifies"] and (s["bad"] or s["failed_runs"]):
                    label += " VERIFY FAILED"
                f.write(f"{i} \"{tool}\" {min(s['median_s'], cap):.4f} {min(s['min_s'], cap):.4f} "
                        f"{min(s['max_s'], cap):.4f} {color} \"{label}\"\n")
        gp += [f"set title \"{corpus}: {c['files']} files, {c['bytes'] / 1e6:.0f} MB\"",
               f"set yrange [0:{cap * 1.18:.4f}]",
               f"plot '{data}' using 1:3:6:xtic(2) with boxes lc rgb variable, "
               f"'' using 1:3:4:5 with yerrorbars lc rgb 'black' pt 7 ps 0, "
               f"'' using 1:3:7 with labels offset 0,0.8"]
    gp.append("unset multiplot")
    script = os.path.join(RESULTS, "chart.gp")
    with open(script, "w") as f:
        f.write("\n".join(gp) + "\n")
    subprocess.run(["gnuplot", script], check=True)
    print(f"chart: {os.path.relpath(png, ROOT)}")


def cmd_corpora():
    """Prints the corpora the conditions in BENCH_CORPORA need (for bench-corpus)."""
    print(" ".join(sorted({CONDITIONS[n]["corpus"] for n in CORPORA if n in CONDITIONS})))


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else "bench"
    {"bench": cmd_bench, "scale": cmd_scale, "chart": cmd_chart, "corpora": cmd_corpora}.get(
        cmd, lambda: die(f"usage: {sys.argv[0]} bench|scale|chart|corpora"))()


if __name__ == "__main__":
    main()
