# The startup parameter "replication": pgward's reading (pgwardctl policy startup) against the
# server's own. For each value, a connection straight to the server with replication=<value>
# is classified by what the server does (a walsender answers IDENTIFY_SYSTEM; a physical one
# refuses SQL; an ordinary session refuses IDENTIFY_SYSTEM; or FATAL at start-up), and pgward
# must allow exactly the values the server reads as an ordinary session.
# Arguments: PGWARDCTL CONFIG IDENTITY HOST PORT USER DATABASE (password: $PGPASSWORD).
import json, os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgraw

ctl, cfg, ident, host, port, user, db = sys.argv[1:8]
pw = os.environ.get("PGPASSWORD", "")

values = [""]
for word in ("true", "false", "yes", "no", "on", "off", "database"):
    for n in range(1, len(word) + 1):
        for v in (word[:n], word[:n].upper(), word[:n].capitalize()):
            if v not in values:
                values.append(v)
values += ["1", "0", "2", "00", "01", "10", "-1", "TRu", "fAlSe", "oN", "oFf", " t", "t ",
           "\tt", " 0", "0 ", " database", "database ", "Database", "DATABASE", "databasex",
           "truex", "falsey", "yess", "noo", "onn", "offf", "nope", "replication", "x",
           "t\u200b", "\u00e9"]


def server(v):
    try:
        c = pgraw.Conn(host, int(port), [("user", user), ("database", db), ("replication", v)],
                       pw)
    except pgraw.Error as e:
        return "fatal (%s)" % e.fields.get("C")
    try:
        try:
            c.query("IDENTIFY_SYSTEM")
            walsender = True
        except pgraw.Error:
            walsender = False
        try:
            c.query("SELECT 1")
            sql = True
        except pgraw.Error:
            sql = False
    finally:
        c.close()
    if walsender:
        time.sleep(0.05)  # let the walsender go before the next one (max_wal_senders)
        return "logical walsender" if sql else "physical walsender"
    return "session" if sql else "neither"


def pgward(v):
    p = subprocess.run([ctl, "-j", "policy", "startup", "--config", cfg, "--identity", ident,
                        "replication=" + v], capture_output=True, text=True)
    d = json.loads(p.stdout)
    return d["decision"], d.get("sqlstate")


bad = 0
kinds = {}
for v in values:
    srv = server(v)
    dec, state = pgward(v)
    kinds[srv.split(" (")[0]] = kinds.get(srv.split(" (")[0], 0) + 1
    ok = (dec == "allow") == (srv == "session") and (dec == "allow" or state == "0A000")
    if not ok:
        bad += 1
        print("#   replication=%r: server %s, pgward %s %s" % (v, srv, dec, state or ""))
print("%s - replication read as the server reads it (%d values: %s; %d differ)" % (
    "ok" if bad == 0 else "not ok", len(values),
    ", ".join("%d %s" % (n, k) for k, n in sorted(kinds.items())), bad))
