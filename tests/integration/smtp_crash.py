"""Durability of SMTP deliveries across kill -9.

A message that got its 250 is in the Maildir after the daemon is killed
with SIGKILL right after the reply and started again; a message whose DATA
was cut by the kill (several hundred KB already streamed to the store's
spool, or only a few octets) delivers nothing, and neither does one killed
between the final dot and the reply unless the reply was sent.

Usage: smtp_crash.py /path/to/postern
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postern_test import Daemon, Results  # noqa: E402
from smtp_util import USER, PASSWORD, Raw, maildir_messages  # noqa: E402

OUTSIDE = "sender@outside.test"


def kill9(d):
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(timeout=10)
    d.logf.close()


def begin(d, subject):
    c = Raw(d.port("smtp"))
    c.cmd("EHLO crash.test")
    c.cmd("MAIL FROM:<%s>" % OUTSIDE)
    c.cmd("RCPT TO:<%s>" % USER)
    code, _ = c.cmd("DATA")
    if code != 354:
        raise AssertionError("DATA refused: %d" % code)
    c.send(b"Subject: %s\r\n\r\n" % subject.encode())
    return c


def subjects(d):
    out = set()
    for m in maildir_messages(d, USER):
        for line in m.split(b"\r\n\r\n")[0].split(b"\r\n"):
            if line.startswith(b"Subject: "):
                out.add(line[9:].decode())
    return out


def main():
    if len(sys.argv) < 2:
        print("usage: smtp_crash.py POSTERN")
        return 2
    res = Results()
    with Daemon(sys.argv[1], roles=("smtp",)) as d:
        d.add_user(USER, PASSWORD)
        acked = []
        for round_ in range(3):
            # some acknowledged messages, then one cut in the middle
            c = Raw(d.port("smtp"))
            c.cmd("EHLO crash.test")
            for i in range(5):
                subject = "acked %d.%d" % (round_, i)
                c.cmd("MAIL FROM:<%s>" % OUTSIDE)
                c.cmd("RCPT TO:<%s>" % USER)
                c.cmd("DATA")
                c.send(b"Subject: %s\r\n\r\nbody\r\n.\r\n" % subject.encode())
                code, _ = c.reply()
                if code == 250:
                    acked.append(subject)
            if round_ == 0:
                kill9(d)  # at once after the last 250
                c.close()
                d.start()
                continue
            cut = begin(d, "cut big %d" % round_)
            cut.send(b"x" * 998 + b"\r\n")
            for _ in range(700):  # ~700 KB: several spool batches written
                cut.send(b"y" * 998 + b"\r\n")
            small = begin(d, "cut small %d" % round_)
            small.send(b"partial line without end")
            time.sleep(0.3)
            kill9(d)  # right after the last 250, in the middle of two DATA
            c.close()
            cut.close()
            small.close()
            d.start()
        have = subjects(d)
        res.check(len(acked) == 15, "15 messages acknowledged with 250 (%d)" % len(acked))
        missing = [s for s in acked if s not in have]
        res.check(not missing, "every acknowledged message survived kill -9 (missing %s)" % missing)
        res.check(not [s for s in have if s.startswith("cut")],
                  "no message cut by kill -9 was delivered (%s)" % sorted(have))
        res.check(len(maildir_messages(d, USER)) == len(acked),
                  "exactly the acknowledged messages, no duplicates")
        # the daemon works after the restarts
        c = Raw(d.port("smtp"))
        c.cmd("EHLO crash.test")
        c.cmd("MAIL FROM:<%s>" % OUTSIDE)
        c.cmd("RCPT TO:<%s>" % USER)
        c.cmd("DATA")
        c.send(b"Subject: after\r\n\r\nx\r\n.\r\n")
        res.check(c.reply()[0] == 250 and "after" in subjects(d), "delivery works after the restarts")
        c.cmd("QUIT")
        c.close()
    res.finish()


if __name__ == "__main__":
    sys.exit(main())
