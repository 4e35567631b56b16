# A listening session's backend is terminated; its FATAL and the close of its connection arrive
# together while pgwardd is not reading (it is stopped meanwhile, as a busy worker would be):
# the client must see the FATAL and then the end of its connection, not wait forever.
#   eof_race.py PORT RUNS PGWARDD_PID USER DATABASE   (ADMIN_CMD: a shell command with one %d,
#   the backend pid to terminate)
import os, signal, socket, struct, subprocess, sys, time
port, n, pgwardd = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
user, database = sys.argv[4].encode(), sys.argv[5].encode()
def msg(t, body): return t + struct.pack('!I', len(body) + 4) + body
def startup(user):
    params = b'user\0' + user + b'\0database\0' + database + b'\0\0'
    return struct.pack('!II', len(params) + 8, 196608) + params
def read_until(s, types, timeout=5):
    s.settimeout(timeout); buf = b''; seen = []; rows = []
    while True:
        while len(buf) >= 5:
            t, l = buf[0:1], struct.unpack('!I', buf[1:5])[0]
            if len(buf) < l + 1: break
            seen.append(t)
            if t == b'D': rows.append(buf[5:l + 1])
            buf = buf[l + 1:]
            if t in types: return seen, rows
        d = s.recv(65536)
        if not d: seen.append('EOF'); return seen, rows
        buf += d
hung = 0
admin = os.environ['ADMIN_CMD']
for i in range(n):
    s = socket.create_connection(('127.0.0.1', port))
    s.sendall(startup(user)); read_until(s, [b'Z'])
    s.sendall(msg(b'Q', b'LISTEN pgw_l; SELECT pg_backend_pid()\0')); seen, rows = read_until(s, [b'Z'])
    pid = int(rows[-1][6:])
    os.kill(pgwardd, signal.SIGSTOP)
    try:
        subprocess.run(admin % pid, shell=True, check=True, capture_output=True)
        time.sleep(0.2)
    finally:
        os.kill(pgwardd, signal.SIGCONT)
    try:
        seen, _ = read_until(s, [], timeout=3)
        if seen[-1] != 'EOF' or b'E' not in seen: hung += 1
    except socket.timeout:
        hung += 1
    s.close()
print('hung %d of %d' % (hung, n))
