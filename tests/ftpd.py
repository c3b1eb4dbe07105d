#!/usr/bin/python3
"""The FTP server of tests/ftp-lib.sh: pyftpdlib serving one directory to
one user, on 127.0.0.1 and a port the kernel picks (printed as "port N").
--tls CERT KEY: FTPS, explicit (AUTH TLS) or with --implicit TLS from the
first byte.  The password is read from a file, never from argv."""
import argparse
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--dir", required=True)
ap.add_argument("--user", required=True)
ap.add_argument("--password-file", required=True)
ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
ap.add_argument("--implicit", action="store_true")
a = ap.parse_args()

with open(a.password_file) as f:
    password = f.readline().rstrip("\n")
auth = DummyAuthorizer()
auth.add_user(a.user, password, a.dir, perm="elradfmwMT")
handler = FTPHandler
if a.tls:
    from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler

    class DTP(TLS_DTPHandler):
        # libcurl starts the data connection's handshake before it sends
        # STOR or RETR; pyftpdlib 1.5.7 closes a data connection that is
        # readable before a transfer was asked for, handshake or not.
        def readable(self):
            if self._ssl_accepting:
                return True
            return super().readable()

    class Explicit(TLS_FTPHandler):
        certfile = a.tls[0]
        keyfile = a.tls[1]
        tls_control_required = True
        tls_data_required = True
        dtp_handler = DTP

    class Implicit(Explicit):
        # TLS from the first byte (ftps://): the greeting comes after the
        # handshake, and AUTH is not for this port.
        tls_control_required = False

        def handle(self):
            self.secure_connection(self.ssl_context)

        def handle_ssl_established(self):
            TLS_FTPHandler.handle(self)

        def ftp_AUTH(self, line):
            self.respond("534 TLS is already on (implicit FTPS).")

    handler = Implicit if a.implicit else Explicit
handler.authorizer = auth
handler.banner = "p11enroll test FTP server"
srv = FTPServer(("127.0.0.1", 0), handler)
print("port %d" % srv.address[1], flush=True)
try:
    srv.serve_forever(handle_exit=True)
except KeyboardInterrupt:
    pass
sys.exit(0)
