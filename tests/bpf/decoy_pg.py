#!/usr/bin/env python3
"""A decoy PostgreSQL for the network-namespace tests (tests/bpf/k8s.sh, netns.sh).

decoy_pg.py PORT MESSAGE IDLE_SECONDS: listens on 127.0.0.1:PORT (in whatever network
namespace it runs in) and answers every connection with an ErrorResponse FATAL 08P01 MESSAGE,
until no connection came for IDLE_SECONDS. A client that prints MESSAGE reached this server,
not pgwardd: its connect was not steered."""
import socket
import struct
import sys

port, message, idle = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen()
s.settimeout(idle)
body = b"SFATAL\0C08P01\0M" + message.encode() + b"\0\0"
try:
    while True:
        c, _ = s.accept()
        c.recv(8192)
        c.sendall(b"E" + struct.pack("!I", 4 + len(body)) + body)
        c.close()
except OSError:
    pass
