#!/usr/bin/python3
"""Masking along the extended protocol, message by message (what libpq and psql never send):
named statements and portals replaced, re-parsed after an error, skipped after an error in
the same group, pipelined before the server confirmed them; portals and SQL cursors of the same
name; a described statement executed without a RowDescription; row limits and PortalSuspended;
COPY through a portal. Each scenario runs on its own connection as the masked identity, and
every byte received is searched for the secrets (as stored, and as the scenarios' queries turn
them: '-' to 'x', '@' to '#', reversed). Prints TAP.

Usage: mask_proto.py PORT DATABASE USER SECRETS_FILE"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgraw  # noqa: E402

PORT, DB, USER, SECRETS = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
Q = (b"SELECT translate(ssn, '-', 'x'), salary + 0, reverse(card), replace(email, '@', '#') "
     b"FROM people")
CLEAN = b"SELECT 'a', 'b', 'c', 'd'"


def m(t, body):
    return t + struct.pack("!i", len(body) + 4) + body


def parse(name, sql):
    return m(b"P", name + b"\0" + sql + b"\0\0\0")


def bind(portal, stmt, fmts=()):
    return m(b"B", portal + b"\0" + stmt + b"\0\0\0\0\0" + struct.pack("!h", len(fmts)) +
             b"".join(struct.pack("!h", f) for f in fmts))


def describe(kind, name):
    return m(b"D", kind + name + b"\0")


def execute(portal, rows=0):
    return m(b"E", portal + b"\0" + struct.pack("!i", rows))


def close(kind, name):
    return m(b"C", kind + name + b"\0")


def query(sql):
    return m(b"Q", sql + b"\0")


SYNC = m(b"S", b"")

# each scenario: a list of rounds; a round is the messages sent together and the number of
# ReadyForQuery that end its answer
SCENARIOS = [
    ("a statement re-parsed under its name after an error keeps the first plan's masking",
     [([parse(b"s1", Q), SYNC], 1), ([parse(b"s1", CLEAN), SYNC], 1),
      ([bind(b"", b"s1"), execute(b""), SYNC], 1)]),
    ("a Parse the server skips after an error is not taken as made",
     [([parse(b"s3", Q), SYNC], 1),
      ([parse(b"e", b"SELECT 1/0"), bind(b"", b"e"), execute(b""), parse(b"s3", CLEAN), SYNC], 1),
      ([bind(b"", b"s3"), execute(b""), SYNC], 1)]),
    ("a portal whose name a WITH HOLD cursor takes after its transaction",
     [([parse(b"s", CLEAN), bind(b"cc", b"s"), SYNC], 1),
      ([query(b"DECLARE cc CURSOR WITH HOLD FOR " + Q)], 1),
      ([execute(b"cc"), SYNC], 1)]),
    ("a cursor closed by SQL and a protocol portal of its name",
     [([query(b"BEGIN; DECLARE cc CURSOR FOR " + CLEAN + b"; CLOSE cc")], 1),
      ([parse(b"s1", Q), bind(b"cc", b"s1"), SYNC], 1),
      ([query(b"FETCH ALL cc; COMMIT")], 1)]),
    ("a cursor re-declared in a Query that fails before it",
     [([query(b"DECLARE dd CURSOR WITH HOLD FOR " + Q)], 1),
      ([query(b"SELECT 1/0; DECLARE dd CURSOR WITH HOLD FOR " + CLEAN)], 1),
      ([query(b"FETCH ALL dd")], 1)]),
    ("Parse, Bind and Execute pipelined before any confirmation, binary results",
     [([parse(b"p", Q), bind(b"", b"p", (1,)), execute(b""), SYNC], 1)]),
    ("a statement described, then executed without a RowDescription, two rows at a time",
     [([parse(b"d", Q), describe(b"S", b"d"), SYNC], 1),
      ([bind(b"q", b"d", (1,)), execute(b"q", 1), execute(b"q", 1), SYNC], 1)]),
    ("an SQL prepared statement bound by the protocol",
     [([query(b"PREPARE sp AS " + Q)], 1), ([bind(b"", b"sp"), execute(b""), SYNC], 1)]),
    ("a protocol statement run by SQL EXECUTE",
     [([parse(b"ps", Q), SYNC], 1), ([query(b"EXECUTE ps")], 1)]),
    ("a statement closed and made again under its name",
     [([parse(b"c1", CLEAN), SYNC], 1), ([close(b"S", b"c1"), parse(b"c1", Q), SYNC], 1),
      ([bind(b"", b"c1"), execute(b""), SYNC], 1)]),
    ("COPY (query) TO STDOUT through a portal",
     [([parse(b"", b"COPY (" + Q + b") TO STDOUT"), bind(b"", b""), execute(b""), SYNC], 1)]),
    ("a WITH HOLD cursor's error at COMMIT (the cursor runs there)",
     [([query(b"BEGIN")], 1),
      ([query(b"DECLARE h CURSOR WITH HOLD FOR SELECT ('x' || translate(ssn, '-', 'q'))::int "
              b"FROM people")], 1),
      ([query(b"COMMIT")], 1)]),
    ("the same COMMIT through the extended protocol",
     [([query(b"BEGIN")], 1),
      ([query(b"DECLARE h CURSOR WITH HOLD FOR SELECT ('x' || translate(email, '@', 'q'))::int "
              b"FROM people")], 1),
      ([parse(b"", b"COMMIT"), bind(b"", b""), execute(b""), SYNC], 1)]),
    ("three Syncs pipelined, the middle group failing",
     [([parse(b"", Q), bind(b"", b""), execute(b""), SYNC,
        parse(b"", b"SELECT 1/0"), bind(b"", b""), execute(b""), SYNC,
        parse(b"", Q), bind(b"", b"", (1,)), execute(b""), SYNC], 3)]),
]


def forms(secret):
    out = {secret, secret[::-1], secret.replace("-", "x"), secret.replace("@", "#"),
           secret.replace("-", "x")[::-1], secret.replace("-", "q"), secret.replace("@", "q")}
    digits = "".join(ch for ch in secret if ch.isdigit())
    if len(digits) >= 8:
        out.add(digits)
    return {f.encode() for f in out if len(f) >= 6}


def main():
    secrets = [line.rstrip("\n") for line in open(SECRETS, encoding="utf-8")
               if line.strip() and not line.startswith("#")]
    needles = set()
    for s in secrets:
        needles |= forms(s)
    n = failed = 0
    for name, rounds in SCENARIOS:
        got = b""
        why = ""
        try:
            c = pgraw.Conn("127.0.0.1", PORT, [("user", USER), ("database", DB)])
            for msgs, nz in rounds:
                c.s.sendall(b"".join(msgs))
                z = 0
                while z < nz:
                    t, body = c.msg()
                    got += t + body
                    z += t == b"Z"
            c.s.close()
        except Exception as e:  # a session ended by pgward is fine: nothing leaked by it
            why = " (the session ended: %s)" % e
        leaks = sorted(x.decode() for x in needles if x in got)
        n += 1
        ok = not leaks
        failed += not ok
        print("%s %d - protocol: %s: no secret reaches the client%s" %
              ("ok" if ok else "not ok", n, name, why))
        if leaks:
            print("#   leaked: %s" % ", ".join(leaks[:5]))
    print("1..%d" % n)
    return 1 if failed else 0


sys.exit(main())
