# A refused Parse followed by Flush (no Sync), as drivers that Parse, Describe and Flush before
# they Sync do: the refusal must come at the Flush, after what came before it, as the server's
# own error would. Then a Sync ends the group in step. Prints what it saw; exits 1 on a miss.
#   flush.py PORT USER DATABASE
import socket, struct, sys
port, user, database = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode()
def msg(t, body=b''): return t + struct.pack('!I', len(body) + 4) + body
def parse(name, sql): return msg(b'P', name + b'\0' + sql + b'\0\0\0')
def bind(stmt): return msg(b'B', b'\0' + stmt + b'\0\0\0\0\0\0\0')
class Conn:
    def __init__(self):
        params = b'user\0' + user + b'\0database\0' + database + b'\0\0'
        self.s = socket.create_connection(('127.0.0.1', port))
        self.s.sendall(struct.pack('!II', len(params) + 8, 196608) + params)
        self.buf = b''
        self.read_until(b'Z')
    def read_until(self, stop, timeout=5):
        self.s.settimeout(timeout)
        seen = []
        while True:
            while len(self.buf) >= 5:
                t, l = self.buf[0:1], struct.unpack('!I', self.buf[1:5])[0]
                if len(self.buf) < l + 1:
                    break
                body = self.buf[5:l + 1]
                self.buf = self.buf[l + 1:]
                if t == b'E':
                    f = dict((x[0:1], x[1:]) for x in body.split(b'\0') if x)
                    seen.append('E:' + f.get(b'C', b'?').decode())
                else:
                    seen.append(t.decode())
                if t == stop:
                    return seen
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                seen.append('TIMEOUT')
                return seen
            if not d:
                seen.append('EOF')
                return seen
            self.buf += d
ok = True
c = Conn()
# 0. an allowed Parse, then Flush: its ParseComplete (a header and nothing else) comes at once
c.s.sendall(parse(b'', b'SELECT 1') + msg(b'H'))
seen = c.read_until(b'1', timeout=3)
print('allowed Parse + Flush:', seen)
ok &= seen == ['1']
c.s.sendall(msg(b'S'))
seen = c.read_until(b'Z')
ok &= seen == ['Z']
# 1. a refused Parse, then Flush: the error comes without a Sync
c.s.sendall(parse(b'', b'DELETE FROM orders') + msg(b'H'))
seen = c.read_until(b'E', timeout=3)
print('refused Parse + Flush:', seen)
ok &= seen == ['E:42501']
c.s.sendall(msg(b'S'))
seen = c.read_until(b'Z')
print('then Sync:', seen)
ok &= seen == ['Z']
# 2. an allowed statement run, then a refused Parse, then Flush: its results first, then the error
c.s.sendall(parse(b'', b'SELECT 1') + bind(b'') + msg(b'E', b'\0\0\0\0\0') +
            parse(b's2', b'DELETE FROM orders') + msg(b'D', b'Ss2\0') + msg(b'H'))
seen = c.read_until(b'E', timeout=3)
print('allowed, then refused + Flush:', seen)
ok &= seen == ['1', '2', 'D', 'C', 'E:42501']
c.s.sendall(msg(b'S'))
seen = c.read_until(b'Z')
print('then Sync:', seen)
ok &= seen == ['Z']
# 3. the session goes on
c.s.sendall(msg(b'Q', b'SELECT 2\0'))
seen = c.read_until(b'Z')
print('then a Query:', seen)
ok &= seen == ['T', 'D', 'C', 'Z']
sys.exit(0 if ok else 1)
