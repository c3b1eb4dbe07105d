#!/usr/bin/env python3
"""Test peers for test-cmpc.sh: waiting for a port, a small HTTP server
that answers CMP clients wrongly on purpose, a TLS front for the openssl
mock server, and a port that refuses connections.  Each server binds the
port it is given (0: one the kernel picks) and prints "port N" once it
listens: no port is picked free and bound later, which another process
could take meanwhile.  Loopback only; test use only."""
import http.server
import socket
import ssl
import sys
import time
import urllib.request

BIG = 2 * 1024 * 1024


def listening(srv):
    print("port %d" % srv.server_address[1], flush=True)


def dead():
    """A port bound and never listened on: connections to it are refused,
    and no other process can take it while this one holds it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print("port %d" % s.getsockname()[1], flush=True)
    while True:
        time.sleep(3600)


def wait(ports):
    end = time.time() + 15
    for p in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", int(p)), 0.5).close()
                break
            except OSError:
                if time.time() > end:
                    sys.exit("port %s never opened" % p)
                time.sleep(0.05)


class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n > 0 else b""

    def answer(self, code, ctype, data, length=True):
        self.send_response(code)
        if ctype:
            self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(data)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)


class Wrong(Quiet):
    capture = None

    def do_POST(self):
        req = self.body()
        p = self.path
        if p == "/capture":
            with open(self.capture, "wb") as f:
                f.write(req)
            self.answer(500, "text/plain", b"captured")
        elif p == "/html":
            self.answer(200, "text/html", b"<html><body>not CMP</body></html>")
        elif p == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif p == "/big":
            self.answer(200, "application/pkixcmp", b"\x30" * BIG)
        elif p == "/bignolen":
            self.answer(200, "application/pkixcmp", b"\x30" * BIG, length=False)
        elif p == "/garbage":
            self.answer(200, "application/pkixcmp", b"this is not DER at all")
        elif p == "/truncated":
            self.answer(200, "Application/PKIXCMP; charset=binary",
                        b"\x30\x82\x01\x00\x30\x10\x02\x01\x02")
        elif p == "/error500":
            self.answer(500, "text/plain", b"internal error")
        elif p == "/slow":
            time.sleep(4)
            self.answer(200, "application/pkixcmp", b"\x30\x00")
        else:
            self.answer(404, "text/plain", b"no such path")


def serve_wrong(port, capture):
    Wrong.capture = capture
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Wrong)
    srv.daemon_threads = True
    listening(srv)
    srv.serve_forever()


def serve_tls(port, cert, key, upstream):
    class Front(Quiet):
        def do_POST(self):
            req = urllib.request.Request(upstream, data=self.body(), method="POST",
                                         headers={"Content-Type": "application/pkixcmp"})
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(req, timeout=30) as r:
                self.answer(r.status, r.headers.get("Content-Type"), r.read())

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Front)
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    listening(srv)
    srv.serve_forever()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "dead":
        dead()
    elif cmd == "wait":
        wait(sys.argv[2:])
    elif cmd == "wrong":
        serve_wrong(sys.argv[2], sys.argv[3])
    elif cmd == "tls":
        serve_tls(*sys.argv[2:6])
    else:
        sys.exit("unknown command " + cmd)
