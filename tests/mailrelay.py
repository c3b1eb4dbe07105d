#!/usr/bin/python3
# The mail tests' CA gateway (tests/mail.sh): carries the CMP request mails
# that arrive in the CA's Maildir to the test CA's spool directory
# (p11enroll-testca --spool DIR) and mails its answers back by SMTP, the
# way a mail gateway in front of a file-based CA does, with the faults a
# test asks for.  Each mail of MAILDIR/new is handled once, in delivery
# order; the request is the mail's application/pkixcmp part, named by its
# subject "CMP <tid> <n>"; the answer is DIR/<tid>.<n>.rsp.der.
#
# usage: mailrelay.py MAILDIR SPOOL SMTP-PORT FROM TO LOG [MODE...]
# MODE (each applies to every answer):
#   x-pkixcmp    the answer's part is application/x-pkixcmp (older drafts)
#   multipart    the answer is multipart/mixed: a text part, then the CMP part
#   subject-only no In-Reply-To, References or X-CMP-Transaction-ID
#   dup          the answer is mailed twice
#   garbage      first a mail for the message whose CMP part is not base64
#   othertid     first a mail for the message whose PKIMessage is the answer
#                of an earlier transaction (needs one)
#   wrongtid     first the answer under another transactionID's subject and
#                headers
#   bigpart      first a mail for the message whose CMP part is 20000 bytes
#   huge         first a mail for the message of 200000 bytes
#   only-faults  the faults asked for, and not the answer
# Prints "ready" once it watches; logs one line per mail handled and sent.
import base64
import os
import re
import smtplib
import sys
import time
from email import message_from_bytes, policy

SUBJ = re.compile(r"CMP ([0-9a-f]+) ([0-9]+)")


def log(msg):
    with open(LOG, "a", encoding="utf-8") as f:
        f.write(msg + "\n")


def b64(der):
    s = base64.b64encode(der).decode()
    return "\r\n".join(s[i:i + 76] for i in range(0, len(s), 76)) + "\r\n"


def answer_mail(tid, n, msgid, der, ctype="application/pkixcmp", body=None):
    subject = "Re: CMP %s %s" % (tid, n)
    hdr = ["From: " + FROM, "To: " + TO, "Subject: " + subject, "MIME-Version: 1.0",
           "Date: Thu, 03 Dec 2026 12:00:00 +0000"]
    if "subject-only" not in MODES:
        hdr += ["In-Reply-To: " + msgid, "References: " + msgid, "X-CMP-Transaction-ID: " + tid]
    part = body if body is not None else b64(der)
    if "multipart" in MODES:
        hdr.append('Content-Type: multipart/mixed;\r\n boundary="=_relay_1"')
        text = ("This is the CA's answer.\r\n\r\n--=_relay_1\r\nContent-Type: text/plain\r\n\r\n"
                "Your CMP request was processed.\r\n\r\n--=_relay_1\r\n"
                "Content-Type: %s; name=\"rsp.der\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                "%s\r\n--=_relay_1--\r\n" % (ctype, part))
    else:
        hdr += ["Content-Type: " + ctype, "Content-Transfer-Encoding: base64"]
        text = part
    return "\r\n".join(hdr) + "\r\n\r\n" + text


def send(text):
    with smtplib.SMTP("127.0.0.1", PORT, timeout=30) as s:
        s.sendmail(FROM, [TO], text.encode())


def handle(path):
    with open(path, "rb") as f:
        msg = message_from_bytes(f.read(), policy=policy.default)
    m = SUBJ.search(str(msg.get("Subject", "")))
    if not m:
        log("skipped %s: no CMP subject" % os.path.basename(path))
        return
    tid, n = m.group(1), m.group(2)
    msgid = str(msg.get("Message-ID", ""))
    der = None
    for part in msg.walk():
        if part.get_content_type() == "application/pkixcmp":
            der = part.get_payload(decode=True)
    if not der:
        log("skipped %s: no CMP part" % tid)
        return
    req = os.path.join(SPOOL, "%s.%s.req.der" % (tid, n))
    with open(req + ".tmp", "wb") as f:
        f.write(der)
    os.rename(req + ".tmp", req)
    log("request %s %s (%d bytes)" % (tid, n, len(der)))
    rsp = os.path.join(SPOOL, "%s.%s.rsp.der" % (tid, n))
    for _ in range(3000):
        if os.path.exists(rsp):
            break
        time.sleep(0.02)
    else:
        log("no answer from the CA for %s %s" % (tid, n))
        return
    with open(rsp, "rb") as f:
        ans = f.read()
    ctype = "application/x-pkixcmp" if "x-pkixcmp" in MODES else "application/pkixcmp"
    if "garbage" in MODES:
        send(answer_mail(tid, n, msgid, None, ctype, body="this is * not base64 *\r\n"))
        log("sent garbage %s %s" % (tid, n))
    if "othertid" in MODES and LAST.get("other"):
        send(answer_mail(tid, n, msgid, LAST["other"], ctype))
        log("sent othertid %s %s" % (tid, n))
    if "bigpart" in MODES:
        send(answer_mail(tid, n, msgid, bytes(20000), ctype))
        log("sent bigpart %s %s" % (tid, n))
    if "huge" in MODES:
        send(answer_mail(tid, n, msgid, bytes(150000), ctype))
        log("sent huge %s %s" % (tid, n))
    if "wrongtid" in MODES:
        send(answer_mail("00" + tid[2:], n, "<00" + msgid[3:], ans, ctype))
        log("sent wrongtid %s %s" % (tid, n))
    if "only-faults" in MODES:
        return
    send(answer_mail(tid, n, msgid, ans, ctype))
    log("sent %s %s" % (tid, n))
    if "dup" in MODES:
        send(answer_mail(tid, n, msgid, ans, ctype))
        log("sent dup %s %s" % (tid, n))
    if LAST.get("tid") != tid and LAST.get("mine"):
        LAST["other"] = LAST["mine"]
    LAST["tid"] = tid
    LAST["mine"] = ans


MAILDIR, SPOOL, PORT, FROM, TO, LOG = sys.argv[1:7]
PORT = int(PORT)
MODES = set(sys.argv[7:])
LAST = {}
# mails handled by an earlier run (a test restarts the gateway)
SEEN = os.path.join(SPOOL, "relay.seen")
seen = set(open(SEEN).read().split()) if os.path.exists(SEEN) else set()
# the answer of an earlier transaction, for "othertid"
OTHER = os.environ.get("RELAY_OTHER")
if OTHER:
    with open(OTHER, "rb") as f:
        LAST["other"] = f.read()
print("ready", flush=True)
while True:
    new = sorted(set(os.listdir(os.path.join(MAILDIR, "new"))) - seen)
    for name in new:
        seen.add(name)
        with open(SEEN, "a") as f:
            f.write(name + "\n")
        try:
            handle(os.path.join(MAILDIR, "new", name))
        except Exception as e:  # a test's gateway: say it and go on
            log("error %s: %r" % (name, e))
    time.sleep(0.02)
