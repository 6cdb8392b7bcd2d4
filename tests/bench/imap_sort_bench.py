#!/usr/bin/python3
"""SORT and THREAD benchmark: Postern against Debian's Dovecot (reported,
not asserted).

    /usr/bin/python3 tests/bench/imap_sort_bench.py BUILD/postern [-n 10000]

One user, an INBOX of N messages written straight into the Maildir and
indexed before any clock starts (Dovecot: by a first untimed round), in
threads: message i answers message i // 2 (References: the whole chain
up from it; In-Reply-To its parent) with "Re: " subjects, every 7th
message starts a thread of its own, dates go back and forth across zones.
Timed, the median of 3 rounds after an untimed one (imap_bench.timed):

  1. SORT (DATE) ALL
  2. THREAD REFERENCES UTF-8 ALL

Dovecot runs with imap_bench's configuration (DovecotServer); its SORT and
THREAD read their keys from its index caches after the first round, as
Postern reads them from its LMDB index.  Build Postern without sanitizers.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "helpers"))
sys.path.insert(0, HERE)
from imap_bench import DOMAIN, DovecotServer, timed, one_user_postern  # noqa: E402

USER = "sort@" + DOMAIN
COMMANDS = {
    "SORT (DATE)": ["SELECT INBOX", "SORT (DATE) UTF-8 ALL", "UNSELECT"],
    "THREAD REFERENCES": ["SELECT INBOX", "THREAD REFERENCES UTF-8 ALL", "UNSELECT"],
}


def thread_message(i):
    """Message i of the threads described above."""
    root = i < 2 or i % 7 == 0
    chain = []
    top = p = i
    while not root and p > 1:
        p //= 2
        chain.insert(0, "<sort.%d@example.org>" % p)
        top = p
        if p % 7 == 0:
            break
    zone = ("+0000", "-0500", "+0930")[i % 3]
    head = ("From: Sender %d <sender%d@example.org>\r\nTo: user@%s\r\n"
            "Subject: %sthread %d\r\nDate: Mon, %d Dec 2026 %02d:%02d:00 %s\r\n"
            "Message-ID: <sort.%d@example.org>\r\n" % (
                i, i % 50, DOMAIN, "" if root else "Re: ", top,
                1 + i % 28, i % 24, i % 60, zone, i))
    if chain:
        head += "References: %s\r\nIn-Reply-To: %s\r\n" % (" ".join(chain), chain[-1])
    return (head + "\r\nbody of message %d\r\n" % i).encode()


def fill(mail_of, n):
    path = mail_of(USER)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    for i in range(n):
        with open(os.path.join(path, "cur", "1700000000.M%07dP1.sort:2," % i), "wb") as f:
            f.write(thread_message(i))


def measure(port):
    return {name: timed(port, USER, cmds) for name, cmds in COMMANDS.items()}


def run_postern(postern, n):
    return one_user_postern(postern, USER, lambda mail_of: fill(mail_of, n),
                            lambda port: measure(port))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("postern")
    ap.add_argument("-n", type=int, default=10000, help="messages in the INBOX")
    a = ap.parse_args()
    print("SORT / THREAD over %d messages (seconds, median of 3)" % a.n, flush=True)
    pres, hash_ = run_postern(a.postern, a.n)
    dv = DovecotServer([USER], hash_, lambda mail_of: fill(mail_of, a.n))
    with dv as server:
        dres = measure(dv.port) if server is not None else None
    print("%-20s %10s %10s" % ("", "Postern", "Dovecot"))
    for name in COMMANDS:
        print("%-20s %10.3f %10s" % (name, pres[name],
                                    "%.3f" % dres[name] if dres else "-"))
    if dres is None:
        print("Dovecot: %s" % dv.error)


if __name__ == "__main__":
    main()
