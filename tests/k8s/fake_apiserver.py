#!/usr/bin/python3
"""A tiny stand-in for the Kubernetes API server, for tests/bpf/k8s.sh (no cluster runs here).

Serves only what pgward-k8s-sync asks: GET /api/v1/pods with fieldSelector spec.nodeName=N and
an equality labelSelector (k=v[,k=v...]), as a PodList, and the same with watch=1 (one event
line once the pod file changes, or nothing before timeoutSeconds). The pods are the JSON array
in POD_FILE (re-read on every request: the test edits it); the answer's mode is MODE_FILE's
content: "ok", "down" (503), "garbage" (200, not a PodList), "unauthorized" (401). A request
without "Authorization: Bearer <TOKEN>" gets 401. Every request is logged to LOG_FILE.

Usage: fake_apiserver.py PORT_FILE POD_FILE MODE_FILE TOKEN LOG_FILE
(binds 127.0.0.1 on a free port, written to PORT_FILE once listening)
"""
import json
import os
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT_FILE, POD_FILE, MODE_FILE, TOKEN, LOG_FILE = sys.argv[1:6]


def mode():
    try:
        return open(MODE_FILE).read().strip() or "ok"
    except OSError:
        return "ok"


def version():
    try:
        return str(os.stat(POD_FILE).st_mtime_ns)
    except OSError:
        return "0"


def pods(q):
    items = json.load(open(POD_FILE))
    field = q.get("fieldSelector", [""])[0]
    labels = q.get("labelSelector", [""])[0]
    node = field[len("spec.nodeName="):] if field.startswith("spec.nodeName=") else None
    if field and node is None:
        raise ValueError("unsupported fieldSelector " + field)
    want = dict(kv.split("=", 1) for kv in labels.split(",") if kv)
    out = []
    for p in items:
        if node is not None and p.get("spec", {}).get("nodeName") != node:
            continue
        lab = p.get("metadata", {}).get("labels") or {}
        if all(lab.get(k) == v for k, v in want.items()):
            out.append(p)
    return out


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send(self, code, body, ctype="application/json"):
        b = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(b)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b)

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        auth = self.headers.get("Authorization", "")
        with open(LOG_FILE, "a") as f:
            f.write(json.dumps({"t": time.time(), "path": u.path, "query": {k: v[0] for k, v in q.items()},
                                "auth": auth == "Bearer " + TOKEN, "mode": mode()}) + "\n")
        m = mode()
        if auth != "Bearer " + TOKEN or m == "unauthorized":
            return self.send(401, json.dumps({"kind": "Status", "status": "Failure", "code": 401,
                                              "reason": "Unauthorized"}))
        if u.path != "/api/v1/pods":
            return self.send(404, json.dumps({"kind": "Status", "code": 404}))
        if m == "down":
            return self.send(503, "service unavailable", "text/plain")
        if m == "garbage":
            return self.send(200, json.dumps({"kind": "Status", "items": "nope"}))
        try:
            items = pods(q)
        except ValueError as e:
            return self.send(400, json.dumps({"kind": "Status", "code": 400, "message": str(e)}))
        if q.get("watch", ["0"])[0] in ("1", "true"):
            rv = q.get("resourceVersion", [""])[0]
            deadline = time.time() + float(q.get("timeoutSeconds", ["30"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            while time.time() < deadline:
                if version() != rv or mode() != "ok":
                    ev = {"type": "MODIFIED", "object": {"kind": "Pod", "metadata": {"resourceVersion": version()}}}
                    self.wfile.write((json.dumps(ev) + "\n").encode())
                    self.wfile.flush()
                    break
                time.sleep(0.1)
            return
        self.send(200, json.dumps({"kind": "PodList", "apiVersion": "v1",
                                   "metadata": {"resourceVersion": version()}, "items": items}))


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
srv.serve_forever()
