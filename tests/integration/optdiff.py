# The startup "options" parameter: pgward's reading (pgwardctl policy startup) against the
# server's own. For generated option strings, the server's settings after a connection with
# those options must equal its settings after a connection with the canonical "-c name=value"
# list pgward says they make (both refused, or both the same pg_settings).
import json, os, random, subprocess, sys
ctl, cfg, ident, conninfo, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
random.seed(int(os.environ.get("PGWARD_OPTDIFF_SEED", "20261130")))
pieces = ["-c", "--", "-e", "-E", "-P", "-ce", "-Ec", "-c search_path=x", "--search_path=x",
          "-csearch_path=y", "--search-path=z", "\\", "\\ ", " ", "  ", "\t", "-d", "1", "3", "0",
          "-fs", "-fi", "-fq", "-tpa", "-tpl", "-te", "-tx", "-S", "4MB", "-W", "-w", "work_mem=2MB",
          "-e-", "-", "x", "--work-mem=3MB", "-c datestyle=german", "-O", "-s", "-j", "-n", "-T",
          "-r", "-v", "-C", "-D", "/tmp", "-B", "-p", "5", "-i", "-l", "-F", "-N", "-k", "-h",
          "application_name=a\\ b", "-c application_name=q\\\\r", "--application-name", "=",
          "-c", "-cwork_mem", "-dx", "-E-datestyle=sql", "-Pe", "-:", "-?", "-b", "-ceP",
          "-c extra_float_digits=2", "--extra_float_digits=1", "-c lc_messages=C", "-e -e",
          "-c search_path=secret", "-csearch_path=secret,public", "-e-search-path=secret",
          "-Ec\\ search_path=secret", "-c search_path=\\\"a\\ b\\\"", "-c role=postgres",
          "-e-role=postgres", "--session-authorization=postgres", "-c ROLE=postgres"]
def gen():
    return "".join(random.choice(pieces) + random.choice(["", " ", " ", "  "])
                   for _ in range(random.randint(1, 6)))
def esc(s):
    return "".join("\\" + ch if ch in " \t\n\r\f\v\\" else ch for ch in s)
def connect(opts):
    env = dict(os.environ, PGOPTIONS=opts)
    p = subprocess.run(["psql", "-X", "-At", conninfo, "-c",
                        "SELECT name || '=' || setting FROM pg_settings ORDER BY name"],
                       env=env, capture_output=True, text=True)
    return (p.returncode == 0, p.stdout if p.returncode == 0 else p.stderr)
bad = accepted = 0
for k in range(n):
    opts = gen()
    q = subprocess.run([ctl, "-j", "policy", "startup", "--config", cfg, "--identity", ident,
                        "options=" + opts], capture_output=True, text=True)
    try:
        ours = json.loads(q.stdout)
    except ValueError:
        print("not ok - pgwardctl policy startup failed on %r: %s" % (opts, q.stderr.strip()))
        bad += 1
        continue
    direct = connect(opts)
    if ours.get("by") == "server":
        # pgward refuses what the server refuses to read (the server may stop earlier, at a
        # setting it applies as it reads, or name another word: refused all the same)
        ok = not direct[0]
    else:
        canon = " ".join("-c " + esc(s["name"]) + "=" + esc(s["value"]) for s in ours["settings"])
        via = connect(canon)
        ok = direct[0] == via[0] and (not direct[0] or direct[1] == via[1])
        accepted += direct[0]
        if not direct[0] and not via[0]:
            # both refused: by the same setting
            ok = direct[1].splitlines()[0] == via[1].splitlines()[0]
    if not ok:
        bad += 1
        if bad <= 10:
            print("#   options %r: pgward %s; server %s" % (opts, json.dumps(ours),
                  "accepted" if direct[0] else direct[1].strip().replace("\n", " | ")))
print("%s - startup options read as the server reads them (%d generated strings, %d accepted "
      "by the server, %d differ)" % ("ok" if bad == 0 else "not ok", n, accepted, bad))
