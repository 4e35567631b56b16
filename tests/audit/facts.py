"""Assertions on an audit trail (docs/audit.md), for tests/integration/audit.sh and
tests/bpf/audit.sh. Usage: facts.py TRAIL COMMAND ARGS... (TRAIL: the trail's file; the
files rotated from it, TRAIL.<16 digits>, are read first, in order)

  form                      every line is one JSON object with v, seq, ts, type, prev, hash
  has TYPE COND...          some record of TYPE meets every COND
  count N TYPE COND...      exactly N records of TYPE meet every COND
  count-min N TYPE COND...  at least N do
  first TYPE                the first record is TYPE, seq 1, prev all zeros
  last TYPE                 the last record is TYPE

COND: PATH=VALUE (VALUE as JSON when it parses, else a string), PATH~REGEX, PATH>=N, PATH>N;
PATH is dotted (kernel.comm, kernel.ancestors.0.pid). Exit 0 when it holds; else 1, with the nearest records on
stderr."""
import json
import os
import re
import sys


def load(path):
    recs = []
    d, base = os.path.split(path)
    rotated = sorted(n for n in os.listdir(d or ".") if re.fullmatch(re.escape(base) + r"\.\d{16}", n))
    for p in [os.path.join(d, n) for n in rotated] + [path]:
        with open(p, "rb") as f:
            for n, line in enumerate(f, 1):
                if not line.endswith(b"\n"):
                    raise SystemExit("%s: line %d is cut (no newline)" % (p, n))
                recs.append(json.loads(line))
    return recs


def get(rec, path):
    v = rec
    for k in path.split("."):
        if isinstance(v, dict) and k in v:
            v = v[k]
        elif isinstance(v, list) and k.isdigit() and int(k) < len(v):
            v = v[int(k)]
        else:
            return KeyError
    return v


def holds(rec, cond):
    m = re.match(r"^([A-Za-z0-9_.]+)(>=|>|=|~)(.*)$", cond, re.S)
    if not m:
        raise SystemExit("bad condition %r" % cond)
    path, op, want = m.groups()
    v = get(rec, path)
    if v is KeyError:
        return False
    if op == "~":
        return isinstance(v, str) and re.search(want, v) is not None
    if op in (">=", ">"):
        return isinstance(v, (int, float)) and (v >= float(want) if op == ">=" else v > float(want))
    if isinstance(v, str):
        return v == want  # a string compares as written ("42501" stays a string)
    try:
        w = json.loads(want)
    except ValueError:
        w = want
    return v == w


def matching(recs, typ, conds):
    return [r for r in recs if r.get("type") == typ and all(holds(r, c) for c in conds)]


def show(recs, typ):
    near = [r for r in recs if r.get("type") == typ][-5:]
    for r in near:
        print(json.dumps(r)[:600], file=sys.stderr)
    if not near:
        print("no record of type %s; types: %s" % (typ, sorted({r.get("type") for r in recs})),
              file=sys.stderr)


def main():
    path, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    recs = load(path)
    ok = False
    if cmd == "form":
        ok = all(isinstance(r, dict) and all(k in r for k in ("v", "seq", "ts", "type", "prev", "hash"))
                 for r in recs) and len(recs) > 0
    elif cmd == "has":
        ok = len(matching(recs, args[0], args[1:])) > 0
        if not ok:
            show(recs, args[0])
    elif cmd in ("count", "count-min"):
        n = len(matching(recs, args[1], args[2:]))
        ok = n == int(args[0]) if cmd == "count" else n >= int(args[0])
        if not ok:
            print("%d records match" % n, file=sys.stderr)
            show(recs, args[1])
    elif cmd == "first":
        r = recs[0] if recs else {}
        ok = r.get("type") == args[0] and r.get("seq") == 1 and r.get("prev") == "0" * 64
        if not ok:
            print(json.dumps(r)[:600], file=sys.stderr)
    elif cmd == "last":
        ok = bool(recs) and recs[-1].get("type") == args[0]
        if not ok and recs:
            print(json.dumps(recs[-1])[:600], file=sys.stderr)
    else:
        raise SystemExit("unknown command " + cmd)
    sys.exit(0 if ok else 1)


main()
