#!/usr/bin/python3
"""Phone resync benchmark (CONDSTORE/QRESYNC, RFC 7162): Postern against
Debian's Dovecot (reported, not asserted).

    /usr/bin/python3 tests/bench/imap_resync_bench.py BUILD/postern [-n 100000]

One user, an INBOX of N small messages written straight into the Maildir
and indexed before any clock starts.  A first session ENABLEs QRESYNC,
SELECTs and notes UIDVALIDITY and HIGHESTMODSEQ (what a phone keeps
between connections); another session then sets \\Flagged on 1% of the
messages, spread over the mailbox.  Timed, the median of 3 rounds after
an untimed one, on a connection that has logged in (imap_bench.RawImap):

  1. QRESYNC resync, as iOS Mail and Thunderbird do it:
       ENABLE QRESYNC
       SELECT INBOX (QRESYNC (uidvalidity modseq))
       UID FETCH 1:* (FLAGS) (CHANGEDSINCE modseq VANISHED)
  2. The same client without CONDSTORE: SELECT INBOX, UID FETCH 1:* (FLAGS).

Reported: milliseconds and the octets of the server's answers, for both
servers, and the ratios.  Dovecot runs with imap_bench's configuration
(DovecotServer).  Build Postern without sanitizers.
"""
import argparse
import os
import re
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "helpers"))
sys.path.insert(0, HERE)
from imap_bench import DOMAIN, DovecotServer, RawImap, one_user_postern  # noqa: E402

USER = "resync@" + DOMAIN
CHANGED_SHARE = 100  # one message in 100 changes


def message(i):
    return ("From: sender%d@example.org\r\nTo: %s\r\nSubject: message %d\r\n"
            "Date: Mon, 7 Dec 2026 10:%02d:00 +0000\r\nMessage-ID: <resync.%d@example.org>\r\n"
            "\r\nbody %d\r\n" % (i, USER, i, i % 60, i, i)).encode()


def fill(mail_of, n):
    path = mail_of(USER)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    for i in range(n):
        with open(os.path.join(path, "cur", "1700000000.M%07dP1.resync:2,S" % i), "wb") as f:
            f.write(message(i))


def state(port):
    """UIDVALIDITY and HIGHESTMODSEQ as a phone last saw them."""
    c = RawImap(port, USER)
    c.cmd("ENABLE QRESYNC")
    out = c.cmd("SELECT INBOX")
    c.close()
    uv = int(re.search(rb"UIDVALIDITY (\d+)", out).group(1))
    ms = int(re.search(rb"HIGHESTMODSEQ (\d+)", out).group(1))
    return uv, ms


def change_flags(port, n):
    """\\Flagged on every CHANGED_SHARE-th UID (the UIDs are 1..n here)."""
    c = RawImap(port, USER)
    c.cmd("SELECT INBOX")
    uids = list(range(1, n + 1, CHANGED_SHARE))
    for k in range(0, len(uids), 500):
        c.cmd("UID STORE %s +FLAGS.SILENT (\\Flagged)" % ",".join(map(str, uids[k:k + 500])))
    c.close()
    return len(uids)


def rounds(port, commands, n_rounds=3):
    """Median milliseconds and the octets answered, after a warm-up."""
    c = RawImap(port, USER)
    times, octets = [], 0
    for r in range(n_rounds + 1):
        t0 = time.time()
        got = sum(len(c.cmd(text)) + 2 for text in commands)
        if r > 0:
            times.append((time.time() - t0) * 1000)
            octets = got
        c.cmd("UNSELECT")
    c.close()
    return statistics.median(times), octets


def measure(port, n):
    uv, ms = state(port)
    changed = change_flags(port, n)
    qresync = ["ENABLE QRESYNC",
               "SELECT INBOX (QRESYNC (%d %d))" % (uv, ms),
               "UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % ms]
    plain = ["SELECT INBOX", "UID FETCH 1:* (FLAGS)"]
    return {"changed": changed, "qresync": rounds(port, qresync), "plain": rounds(port, plain)}


def run_postern(postern, n):
    return one_user_postern(postern, USER, lambda mail_of: fill(mail_of, n),
                            lambda port: measure(port, n))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("postern")
    ap.add_argument("-n", type=int, default=100000, help="messages in the INBOX")
    a = ap.parse_args()
    print("Resync of a %d-message INBOX after 1%% of its flags changed" % a.n, flush=True)
    pres, hash_ = run_postern(a.postern, a.n)
    dv = DovecotServer([USER], hash_, lambda mail_of: fill(mail_of, a.n))
    with dv as server:
        if server is not None:
            c = RawImap(dv.port, USER)  # Dovecot indexes the Maildir now, untimed
            c.cmd("SELECT INBOX")
            c.close()
        dres = measure(dv.port, a.n) if server is not None else None
    print("%d flags changed on each server" % pres["changed"])
    print("%-34s %14s %14s %10s" % ("", "Postern", "Dovecot", "P better"))
    for key, name in (("qresync", "QRESYNC SELECT + CHANGEDSINCE"),
                      ("plain", "SELECT + UID FETCH 1:* (FLAGS)")):
        p = pres[key]
        dd = dres[key] if dres else None
        print("%-34s %11.1f ms %11s ms %10s" % (
            name, p[0], "%.1f" % dd[0] if dd else "-", "%.2fx" % (dd[0] / p[0]) if dd else "-"))
        print("%-34s %11d B  %11s B  %10s" % (
            "  octets answered", p[1], dd[1] if dd else "-",
            "%.2fx" % (dd[1] / p[1]) if dd else "-"))
    if dres is None:
        print("Dovecot: %s" % dv.error)


if __name__ == "__main__":
    main()
