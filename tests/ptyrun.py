#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal and acts on what it shows.

    ptyrun.py --log FILE --timeout SECONDS [STEP...] -- COMMAND [ARG...]

The command gets a new pty as its controlling terminal (stdin, stdout and
stderr), so that it sees a terminal and Ctrl-C works as on one: writing
\\x03 makes the line discipline send SIGINT to it.  The steps run in
order, each waiting for an event, never for a fixed time:

    expect:TEXT    until TEXT has appeared in the output since the start
                   (or since the last expect's match)
    file:PATH      until PATH exists
    send:TEXT      writes TEXT to the terminal (\\x03 is Ctrl-C; Python
                   escapes are decoded)
    touch:PATH     creates PATH
    signal:NAME    sends the signal (TERM, HUP, INT...) to the command

Then it waits for the command to end.  Everything the command wrote goes
to the log FILE, raw (carriage returns and escape sequences included).
Exit: the command's exit code (128 + N when signal N ended it); 124 when
a step or the end did not come within SECONDS (the command is killed,
the step named on stderr); 2 on bad usage.
"""
import os
import pty
import select
import signal
import sys
import time


def usage():
    sys.stderr.write(__doc__)
    sys.exit(2)


def main(argv):
    log = None
    timeout = 30.0
    steps = []
    i = 0
    while i < len(argv) and argv[i] != '--':
        a = argv[i]
        if a == '--log' and i + 1 < len(argv):
            log = argv[i + 1]
            i += 2
        elif a == '--timeout' and i + 1 < len(argv):
            timeout = float(argv[i + 1])
            i += 2
        elif a.split(':', 1)[0] in ('expect', 'file', 'send', 'touch', 'signal') and ':' in a:
            steps.append(tuple(a.split(':', 1)))
            i += 1
        else:
            usage()
    cmd = argv[i + 1:]
    if log is None or not cmd:
        usage()

    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)

    out = bytearray()
    seen = 0  # where the next expect starts looking
    end = time.monotonic() + timeout
    status = None

    def pump(wait):
        """Reads what is there (waiting up to wait s); False at EOF."""
        r, _, _ = select.select([fd], [], [], max(wait, 0))
        if not r:
            return True
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the last holder of the terminal closed it
            return False
        if not data:
            return False
        out.extend(data)
        return True

    def give_up(what):
        if time.monotonic() > end:
            sys.stderr.write('ptyrun: timed out after %g s waiting for %s\n' % (timeout, what))
        else:
            sys.stderr.write('ptyrun: waiting for %s in vain\n' % what)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        save()
        sys.exit(124)

    def save():
        with open(log, 'wb') as f:
            f.write(bytes(out))

    open_fd = True
    for kind, arg in steps:
        if kind == 'expect':
            want = arg.encode()
            while True:
                at = out.find(want, seen)
                if at >= 0:
                    seen = at + len(want)
                    break
                if time.monotonic() > end:
                    give_up('"%s"' % arg)
                if open_fd:
                    open_fd = pump(0.1)
                else:
                    give_up('"%s" (the command closed the terminal)' % arg)
        elif kind == 'file':
            while not os.path.exists(arg):
                if time.monotonic() > end:
                    give_up(arg)
                if open_fd:
                    open_fd = pump(0.05)
                else:
                    time.sleep(0.05)
        elif kind == 'send':
            os.write(fd, arg.encode().decode('unicode_escape').encode('latin-1'))
        elif kind == 'touch':
            with open(arg, 'a'):
                pass
        elif kind == 'signal':
            os.kill(pid, getattr(signal, 'SIG' + arg))

    while status is None:
        if open_fd:
            open_fd = pump(0.1)
        else:
            time.sleep(0.05)
        p, st = os.waitpid(pid, os.WNOHANG)
        if p == pid:
            status = st
        elif time.monotonic() > end:
            give_up('the command to end')
    while open_fd:
        open_fd = pump(0.1) and select.select([fd], [], [], 0)[0] != []
    save()
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
