# A client that sends a long statement and is then killed (its socket closed, not
# half-closed): pgwardd must cancel the statement and close the upstream connection at once.
#   client_gone.py PORT USER DATABASE SQL
import socket, struct, sys, time
port, user, database, sql = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode(), sys.argv[4].encode()
params = b'user\0' + user + b'\0database\0' + database + b'\0\0'
s = socket.create_connection(('127.0.0.1', port))
s.sendall(struct.pack('!II', len(params) + 8, 196608) + params)
buf = b''
s.settimeout(10)
while b'Z\0\0\0\x05' not in buf:
    d = s.recv(65536)
    if not d:
        sys.exit('no ReadyForQuery: %r' % buf[-200:])
    buf += d
s.sendall(b'Q' + struct.pack('!I', len(sql) + 5) + sql + b'\0')
time.sleep(0.5)
s.close()  # as a killed process's socket: the kernel closes it
print('gone')
