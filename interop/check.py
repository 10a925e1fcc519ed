#!/usr/bin/env python3
"""Checks one proxy's interop run: the report, nginx's log and the proxy's log.

usage: check.py PROXY WORKDIR HTTP_A HTTP_B HTTPS_ALT DEAD_PORT
"""
import json
import re
import sys

proxy, work, http_a, http_b, https_alt, dead_port = sys.argv[1:7]
problems = []


def expect(cond, what):
    print(f"   {'ok  ' if cond else 'FAIL'} {what}")
    if not cond:
        problems.append(what)


with open(f"{work}/report-{proxy}.jsonl") as f:
    report = {json.loads(line)["path"]: json.loads(line) for line in f if line.strip()}

want = {
    "a.bin": [],
    "b-redirect.bin": [f"http://127.0.0.1:{http_b}/b.bin?via={proxy}"],
    "a-tls.bin": [],
    "b-tls-redirect.bin": [f"https://127.0.0.1/b.bin?via={proxy}"],
}
for path, redirects in want.items():
    line = report.get(path)
    if line is None:
        expect(False, f"{path}: no report line")
        continue
    detail = line.get("error") and line["error"].get("message")
    expect(line["status"] == "ok", f"{path}: status {line['status']} {detail or ''}".rstrip())
    expect(line["redirects"] == redirects, f"{path}: redirects {line['redirects']}")

# https to a port other than 443: Squid refuses the CONNECT (SSL_ports), tinyproxy
# allows it as packaged; a dead plain-http origin is the proxy's error, kind proxy.
alt = report.get("a-tls-alt.bin", {})
if proxy == "squid":
    expect(
        alt.get("status") == "failed" and (alt.get("error") or {}).get("kind") == "proxy",
        f"a-tls-alt.bin (CONNECT to {https_alt}): {alt.get('status')} {alt.get('error')}",
    )
else:
    expect(alt.get("status") == "ok", f"a-tls-alt.bin (CONNECT to {https_alt}): {alt.get('status')} {alt.get('error')}")
dead = report.get("dead.bin", {})
expect(
    dead.get("status") == "failed" and (dead.get("error") or {}).get("kind") == "proxy",
    f"dead.bin (origin down): {dead.get('status')} {dead.get('error')}",
)

# nginx: every plain-http request of this run carries the proxy's Via header (so it
# came through the proxy, in absolute form), and both ports were reached.
plain = []
with open(f"{work}/nginx-access.log") as f:
    for line in f:
        m = re.match(r'(\d+) "(\S+) (\S+) [^"]*" via="([^"]*)" (\d+)', line)
        if m and f"via={proxy}" in m.group(3) and m.group(1) in (http_a, http_b):
            plain.append((m.group(1), m.group(3), m.group(4)))
expect(
    sorted(p for p, _, _ in plain) == sorted([http_a, http_a, http_b]),
    f"nginx saw the plain-http hops on {http_a}, {http_a} and {http_b}: {[(p, u) for p, u, _ in plain]}",
)
expect(
    all(proxy in via.lower() for _, _, via in plain),
    f"each plain-http hop has {proxy}'s Via: {sorted(set(v for _, _, v in plain))}",
)

# The proxy's own log: the absolute-form requests and the CONNECT tunnels.
log = open(f"{work}/{'tinyproxy.log' if proxy == 'tinyproxy' else 'squid-access.log'}").read()
absolute = re.findall(rf"GET (http://127\.0\.0\.1:\d+/[\w./-]+)\?", log)
connects = re.findall(r"CONNECT 127\.0\.0\.1:443", log)
expect(
    sorted(absolute)
    == sorted(
        [
            f"http://127.0.0.1:{http_a}/a.bin",
            f"http://127.0.0.1:{http_a}/redirect",
            f"http://127.0.0.1:{http_b}/b.bin",
            f"http://127.0.0.1:{dead_port}/nothing",
        ]
    ),
    f"{proxy} logged the absolute-form requests: {absolute}",
)
expect(len(connects) >= 1, f"{proxy} logged {len(connects)} CONNECT 127.0.0.1:443")

sys.exit(1 if problems else 0)
