#!/usr/bin/env python3
"""An agent that keeps dialling PostgreSQL while pgwardd restarts (tests/bpf/deb.sh, unit.sh).

agent_loop.py HOST PORT STOPFILE OUT: until STOPFILE exists, every 10 ms connect to
HOST:PORT, send a startup packet (user agent, database postgres) and classify the first
answer: "pgwardd" (AuthenticationOk: the identity's trust, only pgwardd gives it), "direct"
(a SASL request: PostgreSQL itself asking for the role's password: a connect that slipped
through), "refused" (ECONNREFUSED: fail-closed), "error" (anything else, with the reason).
Writes OUT as JSON: the counts, the first errors, and every local port it used (PostgreSQL's
log_connections shows whether any of them reached the server).

agent_loop.py --judge OUT PGLOG MIN_REFUSED: the verdict on such a run, from OUT and the
server's log (log_line_prefix with [%p]): prints one "# agent ..." line and exits 0 when the
agent was served first and last, refused at least MIN_REFUSED times between, never answered by
PostgreSQL itself, and no backend the server started from one of its ports went unauthorized
or was authorized as "agent". A port of the agent's may come back later as another client's
(pgwardd's own upstream connections share the port space): a backend authorized as another
role is that client, not the agent."""
import json
import os
import re
import socket
import struct
import sys
import time


def judge(out, pglog, min_refused):
    a = json.load(open(out))
    c = a["counts"]
    backends = []  # [pid, port, user] in the order the server started them
    latest = {}
    for line in open(pglog, errors="replace"):
        m = re.search(r"\[(\d+)\] .*connection received: host=127\.0\.0\.1 port=(\d+)", line)
        if m:
            latest[m.group(1)] = len(backends)
            backends.append([m.group(1), int(m.group(2)), None])
            continue
        m = re.search(r"\[(\d+)\] .*connection authorized: user=(\S+)", line)
        if m and m.group(1) in latest:
            backends[latest[m.group(1)]][2] = m.group(2)
    suspects = {port for _, port, user in backends if user in (None, "agent")}
    reached = sorted(set(a["ports"]) & suspects)
    print("# agent through the restart: %s; timeline %s; its ports PostgreSQL saw unauthorized "
          "or as agent: %s" % (c, a["timeline"], reached[:10]))
    ok = c["direct"] == 0 and not reached and c["refused"] >= min_refused and c["pgwardd"] >= 2
    ok = ok and a["timeline"][0][0] == "pgwardd" and a["timeline"][-1][0] == "pgwardd"
    return 0 if ok else 1


if sys.argv[1] == "--judge":
    sys.exit(judge(sys.argv[2], sys.argv[3], int(sys.argv[4])))

host, port, stopfile, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
counts = {"pgwardd": 0, "direct": 0, "refused": 0, "error": 0}
errors, ports, timeline = [], [], []


def startup():
    body = struct.pack("!I", 196608)
    for k, v in (("user", "agent"), ("database", "postgres")):
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed after %d bytes" % len(b))
        b += c
    return b


def attempt():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect((host, port))
    except ConnectionRefusedError:
        return "refused", None
    except OSError as e:
        return "error", "connect: %s" % e
    ports.append(s.getsockname()[1])
    try:
        s.sendall(startup())
        head = recv_exact(s, 5)
        kind, n = head[:1], struct.unpack("!I", head[1:])[0]
        body = recv_exact(s, n - 4)
        if kind == b"R":
            code = struct.unpack("!I", body[:4])[0]
            if code == 0:
                s.sendall(b"X\0\0\0\4")
                return "pgwardd", None
            if code == 10:
                return "direct", None
            return "error", "authentication request %d" % code
        return "error", "%r %r" % (kind, body[:120])
    except (OSError, EOFError) as e:
        return "error", str(e)
    finally:
        s.close()


while not os.path.exists(stopfile):
    what, why = attempt()
    counts[what] += 1
    if why and len(errors) < 10:
        errors.append(why)
    if not timeline or timeline[-1][0] != what:
        timeline.append([what, 1])
    else:
        timeline[-1][1] += 1
    time.sleep(0.01)

json.dump({"counts": counts, "errors": errors, "ports": ports, "timeline": timeline},
          open(out, "w"))
