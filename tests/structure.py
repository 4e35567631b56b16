#!/usr/bin/python3
"""The shape of the code, as tests (TAP): no include cycle among the modules of user/, no .c
file over MAX_FILE lines and no function over MAX_FUNC lines, except the debts listed below,
each held to its ceiling so it can only shrink (lower a ceiling when a file or function
shrinks; remove the entry when it fits).

A module is user/NAME.c with include/pgward/NAME.h; it depends on every module whose header
its .c or .h includes. A function is a body opened by '{' in column 0 (clang-format puts every
function's brace there and nothing else's) and closed by '}' in column 0."""
import os
import re
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_FILE = 900
MAX_FUNC = 120

# file -> ceiling (lines): too big today, to be split along their seams (issue 10)
FILE_DEBTS = {
}
# "file:function" -> ceiling (lines)
FUNC_DEBTS = {
}

n = 0
failed = 0


def check(ok, name):
    global n, failed
    n += 1
    if not ok:
        failed += 1
    print("%s %d - %s" % ("ok" if ok else "not ok", n, name))


def modules():
    mods = {}
    for f in sorted(os.listdir(os.path.join(TOP, "user"))):
        if f.endswith(".c"):
            mods[f[:-2]] = [os.path.join(TOP, "user", f)]
    for f in sorted(os.listdir(os.path.join(TOP, "include", "pgward"))):
        if f.endswith(".h"):
            mods.setdefault(f[:-2], []).append(os.path.join(TOP, "include", "pgward", f))
    return mods


def include_graph(mods):
    inc = re.compile(r'^\s*#\s*include\s+"pgward/([A-Za-z0-9_]+)\.h"', re.M)
    graph = {}
    for m, files in mods.items():
        deps = set()
        for path in files:
            with open(path, encoding="utf-8") as fh:
                deps.update(inc.findall(fh.read()))
        deps.discard(m)
        graph[m] = sorted(d for d in deps if d in mods)
    return graph


def find_cycle(graph):
    state = {}
    stack = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in graph[m]:
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                c = visit(d)
                if c:
                    return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            c = visit(m)
            if c:
                return c
    return None


def functions(path):
    """(name, lines) of every function body in a C file."""
    out = []
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    start = None
    for i, line in enumerate(lines):
        if line == "{" and start is None:
            start = i
            j = i - 1
            sig = ""
            while j >= 0 and lines[j] and not lines[j].startswith((" *", "/*", "#", "}")):
                sig = lines[j] + " " + sig
                j -= 1
            m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", sig)
            name = m.group(1) if m else "?"
        elif line == "}" and start is not None:
            out.append((name, i - start + 1))
            start = None
    return out


def main():
    mods = modules()
    graph = include_graph(mods)
    cycle = find_cycle(graph)
    check(cycle is None,
          "no include cycle among the modules of user/ (%s)" %
          (" -> ".join(cycle) if cycle else "%d modules" % len(graph)))
    for m in ("loop", "relay", "buf"):
        check(m in graph and "session" not in graph[m],
              "%s does not include session.h (depends on: %s)" %
              (m, ", ".join(graph.get(m, [])) or "none"))

    big = []
    for f in sorted(os.listdir(os.path.join(TOP, "user"))):
        if not f.endswith(".c"):
            continue
        with open(os.path.join(TOP, "user", f), encoding="utf-8") as fh:
            count = fh.read().count("\n")
        ceiling = FILE_DEBTS.get(f, MAX_FILE)
        if count > ceiling:
            big.append("%s: %d lines (at most %d)" % (f, count, ceiling))
    check(not big, "no file of user/ over %d lines but the listed debts, none above its "
          "ceiling%s" % (MAX_FILE, ": " + "; ".join(big) if big else ""))
    stale = [f for f, c in FILE_DEBTS.items()
             if os.path.exists(os.path.join(TOP, "user", f)) and
             open(os.path.join(TOP, "user", f), encoding="utf-8").read().count("\n") <= MAX_FILE]
    check(not stale, "every listed file debt is still a debt%s" %
          (": " + ", ".join(stale) + " fit now, remove them" if stale else ""))

    long_fns = []
    seen = {}
    for f in sorted(os.listdir(os.path.join(TOP, "user"))):
        if not f.endswith(".c"):
            continue
        for name, count in functions(os.path.join(TOP, "user", f)):
            key = "%s:%s" % (f, name)
            seen[key] = max(seen.get(key, 0), count)
            ceiling = FUNC_DEBTS.get(key, MAX_FUNC)
            if count > ceiling:
                long_fns.append("%s %d lines (at most %d)" % (key, count, ceiling))
    check(not long_fns, "no function over %d lines but the listed debts, none above its "
          "ceiling%s" % (MAX_FUNC, ": " + "; ".join(long_fns) if long_fns else ""))
    gone = [k for k in FUNC_DEBTS if k not in seen or seen[k] <= MAX_FUNC]
    check(not gone, "every listed function debt is still a debt%s" %
          (": " + ", ".join(gone) + " fit now or are gone, remove them" if gone else ""))
    print("1..%d" % n)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
