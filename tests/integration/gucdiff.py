# pgward's table of PostgreSQL 15's settings (pgwardctl policy settings, which the guardrail
# superuser_settings goes by) against the server's own: every name pg_settings shows with the
# same context, every hidden name known to the server, and for every name, whether a role that
# is no superuser may SET it (tried on the server, in a rolled-back subtransaction) exactly
# when the table says context "user".
# Arguments: PGWARDCTL CONNINFO (a superuser; password: $PGPASSWORD).
import json, subprocess, sys

ctl, conninfo = sys.argv[1:3]


def psql(sql):
    p = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", conninfo, "-c", sql],
                       capture_output=True, text=True)
    if p.returncode:
        sys.exit("not ok - psql failed: %s" % p.stderr.strip())
    return [l for l in p.stdout.split("\n") if l]


ours = {e["name"]: e for e in json.loads(subprocess.run(
    [ctl, "-j", "policy", "settings"], capture_output=True, text=True, check=True).stdout)}
srv = dict(l.split("|", 1) for l in psql(
    "SELECT lower(name) || '|' || context FROM pg_catalog.pg_settings"))
bad = []
for n, c in sorted(srv.items()):
    if n not in ours:
        bad.append("%s (%s): the server has it, pgward's table does not" % (n, c))
    elif ours[n]["context"] != c or not ours[n]["shown"]:
        bad.append("%s: server %s, pgward %s%s" % (n, c, ours[n]["context"],
                                                   "" if ours[n]["shown"] else " (hidden)"))
for n, e in sorted(ours.items()):
    if e["shown"] and n not in srv:
        bad.append("%s: in pgward's table, not in pg_settings" % n)
hidden = [n for n, e in ours.items() if not e["shown"]]
arr = "ARRAY[%s]" % ",".join("'%s'" % n for n in hidden)
known = psql("SELECT n FROM unnest(%s) n WHERE pg_catalog.current_setting(n, true) IS NOT NULL "
             "AND n NOT IN (SELECT lower(name) FROM pg_catalog.pg_settings)" % arr)
for n in set(hidden) - set(known):
    bad.append("%s: hidden in pgward's table, but the server does not have it (or shows it)" % n)
print("%s - pgward's settings table equals pg_settings (%d names, %d of context user; %d hidden "
      "ones known to the server; %d differ)" % (
          "ok" if not bad else "not ok", len(srv),
          sum(1 for c in srv.values() if c == "user"), len(known), len(bad)))
for b in bad[:20]:
    print("#   " + b)

# what a role that is no superuser may really SET (TO DEFAULT: the permission is checked
# before any value), for every name either side knows
names = sorted(set(ours) | set(srv))
arr = "ARRAY[%s]" % ",".join("'%s'" % n for n in names)
rows = psql("""
DROP ROLE IF EXISTS pgward_gucdiff;
CREATE ROLE pgward_gucdiff NOLOGIN;
CREATE FUNCTION pg_temp.plain_may_set(n text) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
  BEGIN
    SET LOCAL ROLE pgward_gucdiff;
    EXECUTE pg_catalog.format('SET LOCAL %%I TO DEFAULT', n);
    RAISE EXCEPTION 'pgward-gucdiff-settable';
  EXCEPTION WHEN OTHERS THEN
    RETURN SQLERRM = 'pgward-gucdiff-settable';
  END;
END $f$;
SELECT n || '|' || pg_temp.plain_may_set(n) FROM unnest(%s) n;
DROP ROLE pgward_gucdiff;
""" % arr)
bad = []
settable = 0
rows = [r for r in rows if "|" in r]
for l in rows:
    n, may = l.split("|")
    settable += may == "true"
    user = n in ours and ours[n]["context"] == "user"
    if (may == "true") != user:
        bad.append("%s: a plain role %s SET it, pgward's table says %s" % (
            n, "may" if may == "true" else "may not", ours[n]["context"] if n in ours else "unknown"))
print("%s - a plain role may SET exactly the settings pgward's table says \"user\" (%d names "
      "tried, %d settable; %d differ)" % ("ok" if not bad else "not ok", len(rows), settable,
                                          len(bad)))
for b in bad[:20]:
    print("#   " + b)
