# Idle clients for the soak test: opens N connections to pgwardd (a unix socket path, or a TCP
# port on 127.0.0.1), sends each a StartupMessage (user u<i>) and reads its first answer; then
# prints one line "opened N answers {KIND: COUNT}" (KIND: R for an authentication request, 53300
# for a "too many connections" refusal, E another error, EOF, or the exception's name) and
# holds every connection open until it is killed (its sockets then close all at once).
#   idle_clients.py N ADDRESS [HOLD_SECONDS]
import resource, socket, struct, sys, time

n, addr = int(sys.argv[1]), sys.argv[2]
hold = float(sys.argv[3]) if len(sys.argv) > 3 else 3600
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def startup(i):
    body = struct.pack('!I', 196608) + b'user\0u%d\0database\0idle\0\0' % i
    return struct.pack('!I', len(body) + 4) + body


socks, pending, answers = [], [], {}


def count(kind):
    answers[kind] = answers.get(kind, 0) + 1


def read_answers():
    # in batches: the backlog stays short, and a stuck pgwardd shows early (20 s per batch)
    deadline = time.monotonic() + 20
    for c in pending:
        try:
            c.settimeout(max(0.01, deadline - time.monotonic()))
            d = c.recv(256)
            count('EOF' if not d else '53300' if d[:1] == b'E' and b'53300' in d
                  else d[:1].decode('latin-1'))
        except OSError as e:
            count(type(e).__name__)
    pending.clear()


for i in range(n):
    c = socket.socket(socket.AF_UNIX if addr.startswith('/') else socket.AF_INET)
    c.settimeout(20)
    try:
        c.connect(addr if addr.startswith('/') else ('127.0.0.1', int(addr)))
        c.sendall(startup(i))
        socks.append(c)
        pending.append(c)
    except OSError as e:
        count(type(e).__name__)
        c.close()
    if len(pending) >= 256:
        read_answers()
read_answers()
print('opened %d answers %s' % (len(socks), answers), flush=True)
time.sleep(hold)
