# A raw PostgreSQL v3 client for the tests that need what libpq will not send (an empty or
# blank "replication" value, any startup parameter): startup packet, SCRAM-SHA-256 or trust,
# simple queries. Used by repldiff.py.
import base64, hashlib, hmac, os, socket, struct


class Error(Exception):
    def __init__(self, fields):
        self.fields = fields
        super().__init__("%s %s: %s" % (fields.get("S", "?"), fields.get("C", "?"),
                                          fields.get("M", "?")))


def _fields(body):
    out = {}
    for part in body.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return out


class Conn:
    def __init__(self, host, port, params, password=None, timeout=10):
        self.s = socket.create_connection((host, port), timeout=timeout)
        body = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params) + b"\0"
        self.s.sendall(struct.pack("!ii", len(body) + 8, 3 << 16) + body)
        self._login(password)

    def _recv(self, n):
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            if not c:
                raise EOFError("connection closed")
            b += c
        return b

    def msg(self):
        t, n = struct.unpack("!ci", self._recv(5))
        return t, self._recv(n - 4)

    def send(self, t, body):
        self.s.sendall(t + struct.pack("!i", len(body) + 4) + body)

    def _login(self, password):
        nonce = cfirst = sfirst = None
        while True:
            t, b = self.msg()
            if t == b"E":
                raise Error(_fields(b))
            if t == b"Z":
                return
            if t != b"R":
                continue
            code = struct.unpack("!i", b[:4])[0]
            if code == 10:  # SASL: SCRAM-SHA-256 without channel binding
                nonce = base64.b64encode(os.urandom(18)).decode()
                cfirst = "n=,r=" + nonce
                data = ("n,," + cfirst).encode()
                self.send(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(data)) + data)
            elif code == 11:
                sfirst = b[4:].decode()
                a = dict(kv.split("=", 1) for kv in sfirst.split(","))
                salted = hashlib.pbkdf2_hmac("sha256", (password or "").encode(),
                                             base64.b64decode(a["s"]), int(a["i"]))
                ckey = hmac.new(salted, b"Client Key", "sha256").digest()
                final = "c=biws,r=" + a["r"]
                auth = ",".join([cfirst, sfirst, final]).encode()
                sig = hmac.new(hashlib.sha256(ckey).digest(), auth, "sha256").digest()
                proof = bytes(x ^ y for x, y in zip(ckey, sig))
                self.send(b"p", (final + ",p=" + base64.b64encode(proof).decode()).encode())
            elif code == 3:
                self.send(b"p", (password or "").encode() + b"\0")
            elif code not in (0, 12):
                raise Error({"M": "authentication method %d not supported here" % code})

    def query(self, sql):
        """Rows (lists of text) of a simple query; raises Error on an ErrorResponse."""
        self.send(b"Q", sql.encode() + b"\0")
        rows, err = [], None
        while True:
            t, b = self.msg()
            if t == b"D":
                n = struct.unpack("!h", b[:2])[0]
                p, row = 2, []
                for _ in range(n):
                    ln = struct.unpack("!i", b[p:p + 4])[0]
                    p += 4
                    row.append(None if ln < 0 else b[p:p + ln].decode())
                    p += max(ln, 0)
                rows.append(row)
            elif t == b"E":
                err = Error(_fields(b))
            elif t == b"Z":
                if err:
                    raise err
                return rows

    def close(self):
        try:
            self.send(b"X", b"")
        except OSError:
            pass
        self.s.close()
