#!/usr/bin/python3
# The tests' SMTP server (tests/mail-lib.sh): python3-aiosmtpd on 127.0.0.1,
# plain SMTP and SMTPS (implicit TLS) on ports the kernel picks, printed as
# "smtp PORT" and "smtps PORT" once both listen.  Each accepted mail goes
# into the Maildir of each recipient's local part, ROOT/LOCALPART/new,
# written to tmp/ first and renamed (what a Maildir reader expects: never
# half a mail in new/).  Only local parts with a Maildir under ROOT are
# accepted (550 for the others), so a wrong address fails at RCPT as at a
# real server.  AUTH PLAIN/LOGIN is offered and optional; the users and
# passwords are dovecot's passwd-file (name:{PLAIN}password:...).  While
# the file ROOT/../smtpd.reject exists, DATA is answered with its first line
# (e.g. "452 4.3.1 mailbox full") and nothing is delivered: a server that
# refuses the mail.
#
# usage: smtpd.py ROOT CERT KEY PASSWD-FILE LOG [SMTP-PORT SMTPS-PORT]
# (the ports of a restart; 0 or none: the kernel picks)
# Run with /usr/bin/python3: Debian's aiosmtpd is not in other Pythons.
import asyncio
import logging
import os
import re
import signal
import socket
import ssl
import sys
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

LOCAL_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def read_users(path):
    users = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split(":")
            if len(parts) >= 2 and parts[1].startswith("{PLAIN}"):
                users[parts[0]] = parts[1][len("{PLAIN}"):]
    return users


class Deliver:
    def __init__(self, root, log):
        self.root = root
        self.log = log
        self.count = 0

    def mailbox(self, rcpt):
        local, _, _ = rcpt.partition("@")
        local = local.lower()
        if not LOCAL_RE.match(local):
            return None
        box = os.path.join(self.root, local)
        return box if os.path.isdir(os.path.join(box, "new")) else None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.mailbox(address) is None:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        try:
            with open(os.path.join(self.root, "..", "smtpd.reject"), encoding="utf-8") as f:
                reply = f.readline().strip()
            if re.match(r"^[45][0-9][0-9] ", reply):
                self.log.write("refused: %s\n" % reply)
                self.log.flush()
                return reply
        except FileNotFoundError:
            pass
        # Maildir files end lines in LF; the wire had CRLF
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        data = data.replace(b"\r\n", b"\n")
        head = ("Return-Path: <%s>\n" % envelope.mail_from).encode()
        for rcpt in envelope.rcpt_tos:
            box = self.mailbox(rcpt)
            self.count += 1
            # seconds and microseconds of one clock reading: names sort in
            # delivery order (and so do dovecot's UIDs for mails of one scan)
            now = time.time_ns() // 1000
            name = "%d.M%06dP%dQ%d.smtpd" % (now // 1000000, now % 1000000,
                                             os.getpid(), self.count)
            tmp = os.path.join(box, "tmp", name)
            with open(tmp, "wb") as f:
                f.write(head + data)
                f.flush()
                os.fsync(f.fileno())
            st = os.stat(box)
            if os.geteuid() == 0:
                # dovecot reads the mailbox as its owner (mail-lib.sh)
                os.chown(tmp, st.st_uid, st.st_gid)
            os.rename(tmp, os.path.join(box, "new", name))
            self.log.write("delivered %s %s from %s (%d bytes)\n" %
                           (rcpt, name, envelope.mail_from, len(data)))
            self.log.flush()
        return "250 2.0.0 delivered"


def main():
    # aiosmtpd 1.4 logs a warning about its own use of Session.login_data
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    if len(sys.argv) not in (6, 8):
        sys.exit("usage: smtpd.py ROOT CERT KEY PASSWD-FILE LOG [SMTP-PORT SMTPS-PORT]")
    root, cert, key, passwd, logpath = sys.argv[1:6]
    ports = [int(p) for p in sys.argv[6:8]] or [0, 0]
    users = read_users(passwd)
    log = open(logpath, "a", encoding="utf-8")
    handler = Deliver(root, log)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and
              users.get(auth_data.login.decode("utf-8", "replace")) ==
              auth_data.password.decode("utf-8", "replace"))
        log.write("auth %s %s\n" % (mechanism, "ok" if ok else "failed"))
        log.flush()
        return AuthResult(success=ok, handled=False)

    def factory():
        return SMTP(handler, hostname="mail.test.invalid", authenticator=authenticator,
                    auth_required=False, auth_require_tls=False)

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    plain = loop.run_until_complete(
        loop.create_server(factory, "127.0.0.1", ports[0], family=socket.AF_INET))
    tls = loop.run_until_complete(
        loop.create_server(factory, "127.0.0.1", ports[1], family=socket.AF_INET, ssl=ctx))
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    print("smtp %d" % plain.sockets[0].getsockname()[1], flush=True)
    print("smtps %d" % tls.sockets[0].getsockname()[1], flush=True)
    try:
        loop.run_forever()
    finally:
        plain.close()
        tls.close()
        log.close()


if __name__ == "__main__":
    main()
