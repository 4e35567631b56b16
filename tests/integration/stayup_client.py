# Clients of the stay-up tests (tests/integration/stayup.sh), speaking the protocol directly so
# that what is timed is pgwardd, not a client library's start-up.
#   stayup_client.py probe PORT USER COUNT PAUSE
#       COUNT times: connect, start up (trust), SELECT 1, close; prints each connect+query time
#       and then "probe: N ok, median M ms, max X ms" (exit 1 when one failed)
#   stayup_client.py big PORT USER BYTES SECONDS
#       one session sending Query messages of BYTES bytes (SELECT 1,1,...,1 FROM secret.t, which
#       the policy refuses) for SECONDS; prints "big: N sent, R refused"
#   stayup_client.py hangup PORT USER BYTES
#       sends one such statement and closes at once, while it is being judged
#   stayup_client.py user PORT HEXUSER
#       a start-up with the user name given in hex; prints the server's answer
import socket, statistics, struct, sys, time


def msg(t, body):
    return t + struct.pack('!I', len(body) + 4) + body


def startup(user):
    body = struct.pack('!I', 196608) + b'user\0' + user + b'\0database\0postgres\0\0'
    return struct.pack('!I', len(body) + 4) + body


def read_msg(s):
    def exact(n):
        b = b''
        while len(b) < n:
            d = s.recv(n - len(b))
            if not d:
                raise EOFError('connection closed')
            b += d
        return b
    t = exact(1)
    return t, exact(struct.unpack('!I', exact(4))[0] - 4)


def until_ready(s):
    errors = []
    while True:
        t, body = read_msg(s)
        if t == b'E' and b'SFATAL\0' in body:
            raise RuntimeError(body.decode('utf-8', 'replace'))
        if t == b'E':
            errors.append(body)
        if t == b'Z':
            return errors


def session(port, user):
    s = socket.create_connection(('127.0.0.1', port), timeout=60)
    s.sendall(startup(user))
    until_ready(s)
    return s


mode = sys.argv[1]
port = int(sys.argv[2])
if mode == 'probe':
    user, count, pause = sys.argv[3].encode(), int(sys.argv[4]), float(sys.argv[5])
    times, failed = [], 0
    for _ in range(count):
        t0 = time.monotonic()
        try:
            s = session(port, user)
            s.sendall(msg(b'Q', b'SELECT 1\0'))
            until_ready(s)
            s.close()
            times.append((time.monotonic() - t0) * 1000)
            print('%.1f' % times[-1], flush=True)
        except Exception as e:
            failed += 1
            print('failed: %s' % e, flush=True)
        time.sleep(pause)
    if times:
        print('probe: %d ok, median %.1f ms, max %.1f ms' %
              (len(times), statistics.median(times), max(times)))
    sys.exit(1 if failed or not times else 0)
elif mode in ('big', 'hangup'):
    user, size = sys.argv[3].encode(), int(sys.argv[4])
    head, tail = b'SELECT 1', b' FROM secret.t'
    sql = head + b',1' * ((size - len(head) - len(tail)) // 2) + tail
    s = session(port, user)
    if mode == 'hangup':
        s.sendall(msg(b'Q', sql + b'\0'))
        s.close()
        sys.exit(0)
    seconds = float(sys.argv[5])
    sent = refused = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        s.sendall(msg(b'Q', sql + b'\0'))
        sent += 1
        refused += sum(1 for e in until_ready(s) if b'42501' in e)
    print('big: %d sent, %d refused' % (sent, refused))
elif mode == 'user':
    s = socket.create_connection(('127.0.0.1', port), timeout=20)
    s.sendall(startup(bytes.fromhex(sys.argv[3])))
    t, body = read_msg(s)
    print(t.decode(), body.replace(b'\0', b' ').decode('utf-8', 'replace'))
