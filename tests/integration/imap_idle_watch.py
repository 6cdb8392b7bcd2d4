"""IDLE hears changes made to the Maildir by other programs, through inotify.

Once a session is in IDLE its mailbox is watched and the poll timer slows
to 30 s, so a change seen within a second here came through inotify:
- a message file written into tmp/ and renamed into new/ (how every Maildir
  deliverer works) gives `* n EXISTS`;
- mutt-style flag change (a rename inside cur/ to ":2,S") gives
  `* n FETCH (... FLAGS (\\Seen))`;
- a file removed by another program gives `* n EXPUNGE`;
- two sessions in IDLE on one mailbox share the watch: both hear a change,
  and after one says DONE the other still does.

Usage: imap_idle_watch.py /path/to/postern
"""
import glob
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, LineClient, Results  # noqa: E402

USER = "watch@example.test"
PASSWORD = "watch-secret-1"
WITHIN = 1.0  # RFC-free promise of the README: IDLE reports within a second


class Imap(LineClient):
    def __init__(self, port):
        super().__init__(port, tls=True)
        self.raw_line()
        self.n = 0

    def cmd(self, text):
        self.n += 1
        tag = b"w%d" % self.n
        self.send(tag + b" " + text.encode() + b"\r\n")
        lines = []
        while True:
            line = self.raw_line()
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def idle(self):
        self.send(b"idle IDLE\r\n")
        return self.raw_line() == b"+ idling"

    def wait_for(self, want, timeout=WITHIN):
        """(lines, seconds) until a line equal to want (or for which want,
        a function, is true), or (lines, None)."""
        t0 = time.time()
        got = []
        self.sock.settimeout(0.05)
        try:
            while time.time() - t0 < timeout:
                try:
                    line = self.raw_line()
                except (socket.timeout, TimeoutError):
                    continue
                got.append(line)
                if (want(line) if callable(want) else line == want):
                    return got, time.time() - t0
        finally:
            self.sock.settimeout(20)
        return got, None


def maildir(d):
    return os.path.join(d.data, "mail", "example.test", "watch")


def drop(d, name, text):
    """Deliver as an outside program does: write in tmp/, rename into new/."""
    tmp = os.path.join(maildir(d), "tmp", name)
    with open(tmp, "wb") as f:
        f.write(text)
    os.rename(tmp, os.path.join(maildir(d), "new", name))


def main():
    if len(sys.argv) < 2:
        print("usage: imap_idle_watch.py POSTERN")
        return 2
    res = Results()
    with Daemon(sys.argv[1], roles=("imaps",)) as d:
        d.add_user(USER, PASSWORD)
        d.cli("deliver", USER, input=b"Subject: first\r\n\r\none\r\n")
        a, b = Imap(d.port("imaps")), Imap(d.port("imaps"))
        for c in (a, b):
            c.cmd("LOGIN %s %s" % (USER, PASSWORD))
            c.cmd("SELECT INBOX")
        res.check(a.idle(), "A is in IDLE")
        time.sleep(2)  # well past the first sync: only inotify or the 30 s poll remain

        drop(d, "1765000001.outside1.host", b"Subject: dropped\r\n\r\nhello\r\n")
        got, secs = a.wait_for(b"* 2 EXISTS")
        res.check(secs is not None, "a file moved into new/ by another program: * 2 EXISTS "
                  "within %.0f s (%s s; %r)" % (WITHIN, secs and "%.3f" % secs, got))

        cur = glob.glob(os.path.join(maildir(d), "cur", "*")) + \
            glob.glob(os.path.join(maildir(d), "new", "1765000001.outside1.host"))
        target = [p for p in cur if "outside1" in p]
        res.check(len(target) == 1, "the dropped file is in the Maildir (%r)" % cur)
        if target:
            base = os.path.basename(target[0]).split(":2,")[0]
            os.rename(target[0], os.path.join(maildir(d), "cur", base + ":2,S"))
        got, secs = a.wait_for(lambda ln: ln.startswith(b"* 2 FETCH (") and
                               re.search(rb"FLAGS \([^)]*\\Seen", ln) is not None)
        res.check(secs is not None, "a rename to :2,S by another program: * 2 FETCH (FLAGS "
                  "(\\Seen)) within %.0f s (%s s; %r)" % (WITHIN, secs and "%.3f" % secs, got))

        res.check(b.idle(), "B is in IDLE on the same mailbox")
        time.sleep(0.5)
        for p in glob.glob(os.path.join(maildir(d), "cur", "*outside1*")):
            os.unlink(p)
        got_a, secs_a = a.wait_for(b"* 2 EXPUNGE")
        got_b, secs_b = b.wait_for(b"* 2 EXPUNGE")
        res.check(secs_a is not None and secs_b is not None,
                  "a file removed by another program: both sessions get * 2 EXPUNGE (%r %r)"
                  % (got_a, got_b))

        a.send(b"DONE\r\n")
        a.raw_line()
        drop(d, "1765000002.outside2.host", b"Subject: again\r\n\r\nhello\r\n")
        got, secs = b.wait_for(b"* 2 EXISTS")
        res.check(secs is not None, "after A's DONE, B still hears changes (%r)" % got)
        b.send(b"DONE\r\n")
        got, secs = b.wait_for(b"idle OK IDLE terminated", 5)
        res.check(secs is not None, "B's DONE ends its IDLE (%r)" % got)
        lines = a.cmd("NOOP")
        res.check(b"* 2 EXISTS" in lines, "A learns of the new message at NOOP (%r)" % lines)
        for c in (a, b):
            c.cmd("LOGOUT")
            c.close()
        res.check("no inotify" not in d.log() and d.log().count("mailbox watched by inotify") >= 2,
                  "the daemon watched the mailbox with inotify for both sessions (log)")
    res.finish()


if __name__ == "__main__":
    sys.exit(main())
