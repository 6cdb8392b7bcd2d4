"""IMAP under concurrency: a dozen sessions of one user APPEND, FETCH,
STORE, EXPUNGE, SEARCH, COPY, STATUS and IDLE on the same mailbox at once
for a few seconds, while other clients hang up in the middle of a large
FETCH and of an APPEND literal.  Every command must get its tagged answer
(no BAD from a race in the sequence-number map), and the daemon, built
with the sanitizers in a POSTERN_SANITIZE build, must exit cleanly (a
report makes it exit non-zero).

Usage: imap_concurrency.py /path/to/postern
"""
import imaplib
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postern_test import Daemon, Results, tls_context  # noqa: E402
from imap_protocol import MSG1, MSG2, Raw  # noqa: E402

USER = "busy@example.test"
PASSWORD = "busy-secret-1"
SESSIONS = 12
SECONDS = 6


def session(d, i, stop, errors, counts):
    rnd = random.Random(i)
    try:
        m = imaplib.IMAP4_SSL("127.0.0.1", d.port("imaps"), ssl_context=tls_context())
        m.login(USER, PASSWORD)
        m.select("INBOX")
        while not stop.is_set():
            op = rnd.randrange(9)
            if op == 0:
                m.append("INBOX", "(\\Seen)", None, MSG1 if rnd.random() < .5 else MSG2)
            elif op == 1:
                m.fetch("1:*", "(FLAGS UID BODY.PEEK[HEADER.FIELDS (Subject)] BODY.PEEK[]<0.100>)")
            elif op == 2:
                m.uid("STORE", "1:*", "+FLAGS", "(\\Flagged)")
            elif op == 3:
                typ, data = m.search(None, "ALL")
                ids = data[0].split()
                if ids:
                    m.store(rnd.choice(ids).decode(), "+FLAGS", "(\\Deleted)")
                    m.expunge()
            elif op == 4:
                m.noop()
            elif op == 5:
                m.uid("SEARCH", "OR", "FLAGGED", "BODY", "numbers")
            elif op == 6:
                m.uid("COPY", "1:3", "Archive")
            elif op == 7:
                m.status("Archive", "(MESSAGES SIZE)")
            else:
                m.send(b"I IDLE\r\n")
                m.readline()
                time.sleep(rnd.random() * 0.3)
                m.send(b"DONE\r\n")
                while not m.readline().startswith(b"I "):
                    pass
            counts[i] += 1
        m.logout()
    except Exception as e:  # any NO/BAD raises in imaplib
        errors.append("session %d: %r" % (i, e))


def main():
    r = Results()
    with Daemon(sys.argv[1], roles=("imaps",)) as d:
        d.add_user(USER, PASSWORD)
        stop = threading.Event()
        errors = []
        counts = [0] * SESSIONS
        threads = [threading.Thread(target=session, args=(d, i, stop, errors, counts))
                   for i in range(SESSIONS)]
        for t in threads:
            t.start()
        end = time.time() + SECONDS
        hangups = 0
        while time.time() < end:
            c = Raw(d.port("imaps"), tls=True)
            c.login(USER, PASSWORD)
            c.cmd("SELECT INBOX")
            c.send(b"x FETCH 1:* (BODY[])\r\n")
            c.close()
            c = Raw(d.port("imaps"), tls=True)
            c.login(USER, PASSWORD)
            c.send(b"y APPEND INBOX {100000}\r\n")
            c.raw_line()
            c.send(b"abc" * 1000)
            c.close()
            hangups += 2
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(60)
        r.check(not errors, "every command of %d sessions answered OK: %s" % (SESSIONS, errors[:3]))
        r.check(sum(counts) > SESSIONS * 5, "sessions got work done (%d commands)" % sum(counts))
        r.check(hangups > 0, "%d clients hung up mid-command" % hangups)
        m = imaplib.IMAP4_SSL("127.0.0.1", d.port("imaps"), ssl_context=tls_context())
        m.login(USER, PASSWORD)
        typ, data = m.select("INBOX")
        r.check(typ == "OK", "the mailbox still opens afterwards: %r" % data)
        m.logout()
    r.finish()


if __name__ == "__main__":
    main()
