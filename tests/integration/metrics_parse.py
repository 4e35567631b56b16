#!/usr/bin/python3
"""Reads pgwardd's Prometheus exposition (text format 0.0.4) strictly and prints its samples
as one JSON object {"name": value, "name{label=\"value\",...}": value} (labels sorted, their
values as read, unescaped); exits 1 naming the first violation. The input: a URL
(http://host:port/metrics, fetched with a 5 s timeout; the answer must be 200 with the
exposition's content type) or "-" for stdin.

The rules are those of the unit test's checker (tests/unit/test_metrics.c): every line a HELP,
a TYPE or a sample; every sample's family has both, before its samples, which come together;
names start with pgward_; counters end in _total; label values escape only \\, \" and \\n;
no series twice; a histogram's buckets have increasing le, cumulative counts, and end in
le="+Inf" equal to _count, with a _sum. When python3-prometheus-client is installed, its
text_string_to_metric_families must read the text too."""
import json
import math
import re
import sys
import urllib.request

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
CTYPE = "text/plain; version=0.0.4; charset=utf-8"


class Bad(Exception):
    pass


def labels(s):
    """'{a="x",b="y"}' at the start of s: ({a: x, ...}, the rest of s)"""
    out, i = {}, 1
    while s[i] != "}":
        m = re.match(NAME + "=\"", s[i:])
        if not m:
            raise Bad("bad label at %r" % s[i:])
        key, i, v = m.group(0)[:-2], i + m.end(), []
        while s[i] != '"':
            if s[i] == "\\":
                i += 1
                if s[i] not in '\\"n':
                    raise Bad("bad escape \\%s" % s[i])
                v.append("\n" if s[i] == "n" else s[i])
            else:
                v.append(s[i])
            i += 1
        if key in out:
            raise Bad("label %s twice" % key)
        out[key] = "".join(v)
        i += 1
        if s[i] == ",":
            i += 1
        elif s[i] != "}":
            raise Bad("expected , or } at %r" % s[i:])
    return out, s[i + 1:]


def family_of(fams, name):
    for suf in ("_bucket", "_sum", "_count"):
        base = name[:-len(suf)]
        if name.endswith(suf) and fams.get(base, {}).get("type") == "histogram":
            return base, suf
    if fams.get(name, {}).get("type") not in (None, "histogram"):
        return name, ""
    raise Bad("a sample without HELP and TYPE: %s" % name)


def sample(fams, state, series, line):
    m = re.match(NAME, line)
    if not m or not line.startswith("pgward_"):
        raise Bad("bad sample name: %r" % line)
    name, rest = m.group(0), line[m.end():]
    lab = {}
    if rest.startswith("{"):
        lab, rest = labels(rest)
    if not rest.startswith(" ") or " " in rest[1:]:
        raise Bad("one value after one space (no timestamp): %r" % line)
    value = float(rest[1:])
    fam, suf = family_of(fams, name)
    f = fams[fam]
    if "help" not in f or "type" not in f:
        raise Bad("%s: no HELP or no TYPE" % fam)
    if state["cur"] != fam:
        if f.get("seen"):
            raise Bad("%s: samples not together" % fam)
        state["cur"] = fam
    f["seen"] = True
    if f["type"] == "counter" and not name.endswith("_total"):
        raise Bad("counter %s does not end in _total" % name)
    key = name + ("{" + ",".join('%s="%s"' % kv for kv in sorted(lab.items())) + "}" if lab else "")
    if key in series:
        raise Bad("twice: %s" % key)
    series[key] = value
    if f["type"] == "histogram":
        if suf == "_bucket":
            le = float(lab["le"]) if "le" in lab else None
            if (le is None or le <= f.get("le", -math.inf) or value < f.get("cum", 0)
                    or "inf" in f):
                raise Bad("%s: buckets not increasing and cumulative" % fam)
            f["le"], f["cum"] = le, value
            if math.isinf(le):
                f["inf"] = value
        else:
            f[suf] = value


def check(text):
    if not text.endswith("\n") or "\n\n" in text or "\0" in text:
        raise Bad("the text must end in one newline, with no empty line and no NUL")
    fams, state, series = {}, {"cur": None}, {}
    for line in text[:-1].split("\n"):
        m = re.match(r"# (HELP|TYPE) (" + NAME + r") (.*)$", line)
        if m:
            f = fams.setdefault(m.group(2), {})
            what = m.group(1).lower()
            if what in f or f.get("seen"):
                raise Bad("%s twice or after the samples: %s" % (m.group(1), line))
            if what == "type" and m.group(3) not in TYPES:
                raise Bad("unknown type: %s" % line)
            f[what] = m.group(3)
        elif line.startswith("#"):
            raise Bad("a comment that is neither HELP nor TYPE: %s" % line)
        else:
            sample(fams, state, series, line)
    for name, f in fams.items():
        if "help" not in f or "type" not in f:
            raise Bad("%s: no HELP or no TYPE" % name)
        if f["type"] == "histogram" and f.get("seen"):
            if "inf" not in f or f.get("_count") != f["inf"] or "_sum" not in f:
                raise Bad("%s: +Inf bucket, _count and _sum do not agree" % name)
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        return series
    for _ in text_string_to_metric_families(text):
        pass
    return series


def main():
    if len(sys.argv) != 2:
        print("usage: metrics_parse.py URL|-", file=sys.stderr)
        return 2
    if sys.argv[1] == "-":
        text = sys.stdin.read()
    else:
        with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
            if r.status != 200 or r.headers.get("Content-Type") != CTYPE:
                print("status %d, content type %r" % (r.status, r.headers.get("Content-Type")),
                      file=sys.stderr)
                return 1
            text = r.read().decode("utf-8")
    try:
        series = check(text)
    except (Bad, ValueError, KeyError, IndexError) as e:
        print("metrics_parse: %s" % e, file=sys.stderr)
        return 1
    json.dump(series, sys.stdout, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
