#!/usr/bin/python3
"""The control socket without pgwardctl, for what pgwardctl would never send.

  ctlraw.py SOCKET req JSON            one request line, print the response line
  ctlraw.py SOCKET fuzz SECONDS        malformed, huge, slow and half-open requests in a loop;
                                       prints a summary; exit 1 if the socket stops answering
  ctlraw.py SOCKET slow                 a request that never ends: the daemon must drop it
  ctlraw.py PORT pipeline USER DB      a pipeline whose 2nd statement is held for approval
                                       (see control.sh)
  ctlraw.py PORT named USER DB         a named statement approved once, executed twice
  ctlraw.py PORT rebind USER DB        the unnamed statement approved once, bound three times
  ctlraw.py PORT prepbind USER DB      PREPARE (approved), then a protocol Bind of its name
"""
import json
import os
import random
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def connect(path, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def readline(s):
    buf = b""
    while not buf.endswith(b"\n"):
        c = s.recv(65536)
        if not c:
            break
        buf += c
    return buf


def req(path, line):
    s = connect(path)
    s.sendall(line.encode() + b"\n")
    out = readline(s)
    s.close()
    return out


def fuzz(path, seconds):
    """Everything a hostile peer might send; the daemon must answer good requests between."""
    rnd = random.Random(1234)
    end = time.time() + seconds
    n = bad = dropped = 0
    held = []
    cases = [
        lambda: b"not json\n",
        lambda: b"{}\n",
        lambda: b"[1,2,3]\n",
        lambda: b'{"command": 12}\n',
        lambda: b'{"command": "session show", "args": []}\n',
        lambda: b'{"command": "session show", "args": {"id": "x"}}\n',
        lambda: b'{"command": "session show", "args": {"nope": 1}}\n',
        lambda: b'{"command": "session show", "command": "stats"}\n',
        lambda: b'{"command": "\xff\xfe"}\n',
        lambda: b'{"command": "session kill", "args": {"id": 99999999}}\n',
        lambda: b'{"command": "session show", "args": {"id": 1e400}}\n',
        lambda: b"[" * 100000 + b"\n",
        lambda: b'{"command": "' + b"A" * 70000 + b'"}\n',
        # random bytes, one line (a newline inside would make several requests)
        lambda: bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 4096))).replace(
            b"\n", b" ") + b"\n",
        lambda: b"\n\n\n\n{}\n",  # blank lines are skipped: one answer
    ]
    while time.time() < end:
        n += 1
        data = cases[n % len(cases)]()
        try:
            s = connect(path, 5)
            s.sendall(data)
            r = readline(s)
            if r:
                j = json.loads(r)
                if j.get("ok") is not False:
                    print("unexpected answer to %r: %r" % (data[:60], r[:200]))
                    bad += 1
            else:
                dropped += 1
            s.close()
        except (ConnectionResetError, BrokenPipeError, socket.timeout):
            dropped += 1
        except ValueError:
            print("not JSON: %r" % r[:200])
            bad += 1
        time.sleep(0.002)  # a hostile peer, not a CPU hog: pgbench shares 2 cores with it
        if n % 50 == 0:  # connections that say nothing and stay
            try:
                held.append(connect(path, 5))
                held = held[-40:]
            except OSError:
                pass
        if n % 25 == 0:  # a good request still answers, promptly
            t0 = time.time()
            r = json.loads(req(path, '{"command": "stats"}'))
            if not r.get("ok") or time.time() - t0 > 2:
                print("stats failed or slow during the fuzz: %r" % r)
                bad += 1
    for s in held:
        s.close()
    print("fuzz: %d requests, %d dropped, %d bad" % (n, dropped, bad))
    return 0 if bad == 0 else 1


def slow(path):
    s = connect(path, 20)
    s.sendall(b'{"command": "sta')
    t0 = time.time()
    try:
        r = s.recv(100)
    except socket.timeout:
        print("not dropped within 20 s")
        return 1
    print("dropped after %.1f s (%r)" % (time.time() - t0, r))
    return 0 if r == b"" and time.time() - t0 < 15 else 1


def pipeline(port, user, db):
    """Parse/Bind/Execute of nextval, DELETE (held), nextval, Sync, all at once (a sequence
    moves outside any transaction: the caller sees from another session how far the server
    got). Prints the tags as they come, one per line, flushed."""
    import pgraw

    c = pgraw.Conn("127.0.0.1", int(port), [("user", user), ("database", db)], timeout=120)
    out = b""
    for sql in ("SELECT nextval('pseq')", "DELETE FROM pt", "SELECT nextval('pseq')"):
        out += b"P" + struct.pack("!i", 4 + 1 + len(sql) + 1 + 2) + b"\0" + sql.encode() + b"\0" + b"\0\0"
        out += b"B" + struct.pack("!i", 4 + 1 + 1 + 2 + 2 + 2) + b"\0\0" + b"\0\0" + b"\0\0" + b"\0\0"
        out += b"E" + struct.pack("!i", 4 + 1 + 4) + b"\0" + b"\0\0\0\0"
    out += b"S\0\0\0\4"
    c.s.sendall(out)
    while True:
        t, b = c.msg()
        if t == b"C":
            print("tag", b.rstrip(b"\0").decode(), flush=True)
        elif t == b"E":
            f = pgraw._fields(b)
            print("error", f.get("C"), f.get("M"), flush=True)
        elif t == b"Z":
            print("ready", b.decode(), flush=True)
            return 0


def named(port, user, db):
    """A named statement approved once: Parse "s1" (held), then two executions of it, each
    held again. Prints what each step got back."""
    import pgraw

    c = pgraw.Conn("127.0.0.1", int(port), [("user", user), ("database", db)], timeout=120)
    sql = b"DELETE FROM pt WHERE id < 3"
    c.s.sendall(b"P" + struct.pack("!i", 4 + 3 + len(sql) + 1 + 2) + b"s1\0" + sql + b"\0\0\0"
                + b"S\0\0\0\4")
    c.s.sendall(_bind_exec(b"s1") + _bind_exec(b"s1"))
    _answers(c, 3)
    return 0


def _bind_exec(stmt):
    return (b"B" + struct.pack("!i", 4 + 1 + len(stmt) + 1 + 6) + b"\0" + stmt + b"\0"
            + b"\0\0\0\0\0\0" + b"E" + struct.pack("!i", 9) + b"\0\0\0\0\0"
            + b"S\0\0\0\4")


def _answers(c, n):
    """Print what comes back until n ReadyForQuery."""
    import pgraw

    done = 0
    while done < n:
        t, b = c.msg()
        if t == b"1":
            print("parsed", flush=True)
        elif t == b"C":
            print("tag", b.rstrip(b"\0").decode(), flush=True)
        elif t == b"E":
            f = pgraw._fields(b)
            print("error", f.get("C"), f.get("M"), flush=True)
        elif t == b"Z":
            done += 1


def rebind(port, user, db):
    """The unnamed statement approved once, then bound again twice."""
    import pgraw

    c = pgraw.Conn("127.0.0.1", int(port), [("user", user), ("database", db)], timeout=120)
    sql = b"DELETE FROM pt WHERE id = 1"
    c.s.sendall(b"P" + struct.pack("!i", 4 + 1 + len(sql) + 1 + 2) + b"\0" + sql + b"\0\0\0"
                + _bind_exec(b"") + _bind_exec(b"") + _bind_exec(b""))
    _answers(c, 3)
    return 0


def prepbind(port, user, db):
    """PREPARE in a simple Query (approved), then a protocol Bind of its name."""
    import pgraw

    c = pgraw.Conn("127.0.0.1", int(port), [("user", user), ("database", db)], timeout=120)
    q = b"PREPARE s2 AS DELETE FROM pt WHERE id = 2"
    c.s.sendall(b"Q" + struct.pack("!i", 4 + len(q) + 1) + q + b"\0")
    _answers(c, 1)
    c.s.sendall(_bind_exec(b"s2"))
    _answers(c, 1)
    return 0


def main():
    path, cmd = sys.argv[1], sys.argv[2]
    if cmd == "req":
        sys.stdout.write(req(path, sys.argv[3]).decode("utf-8", "replace"))
        return 0
    if cmd == "fuzz":
        return fuzz(path, float(sys.argv[3]))
    if cmd == "slow":
        return slow(path)
    if cmd == "pipeline":
        return pipeline(path, sys.argv[3], sys.argv[4])
    if cmd == "named":
        return named(path, sys.argv[3], sys.argv[4])
    if cmd in ("rebind", "prepbind"):
        return globals()[cmd](path, sys.argv[3], sys.argv[4])
    return 2


if __name__ == "__main__":
    sys.exit(main())
