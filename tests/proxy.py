#!/usr/bin/env python3
"""A recording HTTP proxy for the tests (parity.sh, parity-mock.sh).

proxy.py DIR: listens on 127.0.0.1, port chosen by the kernel, and prints
"port N" on stdout.  Forwards POST http://... requests (keeping each
request body in DIR/req-N.der, the CMP message as the proxy sees it) and
tunnels CONNECT host:port; every request is one line of DIR/proxy.log
("POST URL" or "CONNECT HOST:PORT"), written before it is forwarded.
"""
import http.client
import http.server
import os
import select
import socket
import sys
import threading
import urllib.parse

DIR = sys.argv[1]
LOCK = threading.Lock()
COUNT = [0]


def record(line, body=None):
    with LOCK:
        COUNT[0] += 1
        if body is not None:
            with open(os.path.join(DIR, "req-%d.der" % COUNT[0]), "wb") as f:
                f.write(body)
        with open(os.path.join(DIR, "proxy.log"), "a") as f:
            f.write(line + "\n")


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        record("POST " + self.path, body)
        u = urllib.parse.urlsplit(self.path)
        try:
            c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
            c.request("POST", u.path or "/", body,
                      {"Content-Type": self.headers.get("Content-Type", "")})
            r = c.getresponse()
            data = r.read()
            self.send_response(r.status)
            self.send_header("Content-Type", r.getheader("Content-Type", ""))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            c.close()
        except OSError:
            self.send_error(502)

    def do_CONNECT(self):
        record("CONNECT " + self.path)
        host, _, port = self.path.rpartition(":")
        try:
            up = socket.create_connection((host, int(port)), timeout=60)
        except OSError:
            self.send_error(502)
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        socks = [self.connection, up]
        while True:
            ready, _, _ = select.select(socks, [], [], 60)
            if not ready:
                break
            done = False
            for s in ready:
                data = s.recv(65536)
                if not data:
                    done = True
                    break
                (up if s is self.connection else self.connection).sendall(data)
            if done:
                break
        up.close()
        self.close_connection = True


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
srv.daemon_threads = True
print("port %d" % srv.server_address[1], flush=True)
srv.serve_forever()
