# A fake PostgreSQL server for one login, for what a real one never does: it asks for SCRAM
# and then answers AuthenticationOk without the SASLFinal that proves it knows the password
# (MODE skip-final), or sends a forged server signature (MODE bad-signature). Serves CONNS
# connections on 127.0.0.1:PORT, then exits.
#   fake_upstream.py PORT MODE CONNS
import base64, os, socket, struct, sys
port, mode, conns = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def msg(t, body): return t + struct.pack('!I', len(body) + 4) + body
def read_exact(c, n):
    b = b''
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d:
            raise EOFError
        b += d
    return b
def read_msg(c):
    t = read_exact(c, 1)
    l = struct.unpack('!I', read_exact(c, 4))[0]
    return t, read_exact(c, l - 4)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', port))
srv.listen(8)
srv.settimeout(30)  # a test whose client never comes must not wait for ever
print('ready', flush=True)
for _ in range(conns):
    try:
        c, _ = srv.accept()
    except socket.timeout:
        sys.exit('fake_upstream: no connection within 30 s')
    c.settimeout(30)
    try:
        l = struct.unpack('!I', read_exact(c, 4))[0]
        code = struct.unpack('!I', read_exact(c, 4))[0]
        read_exact(c, l - 8)
        if code == 80877103:  # SSLRequest: no
            c.sendall(b'N')
            l = struct.unpack('!I', read_exact(c, 4))[0]
            read_exact(c, l - 4)
        c.sendall(msg(b'R', struct.pack('!I', 10) + b'SCRAM-SHA-256\0\0'))
        t, body = read_msg(c)
        mech_end = body.index(b'\0')
        first = body[mech_end + 5:].decode()
        cnonce = [a[2:] for a in first.split(',') if a.startswith('r=')][0]
        salt = base64.b64encode(os.urandom(16)).decode()
        server_first = 'r=%sfakeserver,s=%s,i=4096' % (cnonce, salt)
        c.sendall(msg(b'R', struct.pack('!I', 11) + server_first.encode()))
        read_msg(c)  # the client's proof: this server cannot check it, nor sign
        if mode == 'bad-signature':
            c.sendall(msg(b'R', struct.pack('!I', 12) + b'v=' + base64.b64encode(os.urandom(32))))
        c.sendall(msg(b'R', struct.pack('!I', 0)) +
                  msg(b'S', b'server_version\x0015.0\0') +
                  msg(b'S', b'standard_conforming_strings\0on\0') +
                  msg(b'S', b'client_encoding\0UTF8\0') +
                  msg(b'K', struct.pack('!II', 4242, 1)) + msg(b'Z', b'I'))
        c.settimeout(5)
        while True:
            t, body = read_msg(c)
            if t == b'X':
                break
            if t == b'Q':  # it should never get here: answer as if it were the server
                c.sendall(msg(b'T', struct.pack('!H', 1) + b'secret\0' + b'\0' * 18) +
                          msg(b'D', struct.pack('!HI', 1, 6) + b'leaked') +
                          msg(b'C', b'SELECT 1\0') + msg(b'Z', b'I'))
    except (EOFError, OSError, socket.timeout):
        pass
    c.close()
