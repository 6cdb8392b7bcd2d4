"""`postern deliver` and `postern reindex` as an MTA and an admin use them:
parallel deliveries to one user, sysexits codes, headers added, a rebuilt
index, and a Dovecot Maildir imported by reindex.  Run by ctest with the
postern binary as argv[1]."""
import os
import shutil
import subprocess
import sys

from postern_test import Daemon, Results

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "unit", "fixtures", "dovecot-maildir")


def main():
    postern = sys.argv[1]
    r = Results()
    d = Daemon(postern, roles=(), tls=False)
    try:
        d.add_user("alice@example.test", "secret-password-1")
        maildir = os.path.join(d.data, "mail", "example.test", "alice")

        # ten MTA processes at once, one user: no UID lost, none doubled
        procs = []
        for i in range(10):
            msg = "From: s%d@example.org\nSubject: parallel %d\n\nbody %d\n" % (i, i, i)
            p = subprocess.Popen([postern, "-c", d.conf, "deliver", "-f",
                                  "s%d@example.org" % i, "alice@example.test"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            procs.append((p, msg))
        for p, msg in procs:
            p.communicate(msg.encode(), timeout=60)
        r.check(all(p.returncode == 0 for p, _ in procs),
                "10 parallel deliveries exit 0: %s" % [p.returncode for p, _ in procs])
        files = sorted(os.listdir(os.path.join(maildir, "new")))
        r.check(len(files) == 10, "10 files in new/ (%d)" % len(files))
        bodies = set()
        for name in files:
            with open(os.path.join(maildir, "new", name), "rb") as f:
                data = f.read()
            bodies.add(data.split(b"\r\n\r\n", 1)[-1])
            r.check(data.startswith(b"Return-Path: <s") and
                    b"\r\nDelivered-To: alice@example.test\r\n" in data and
                    b"\n" not in data.replace(b"\r\n", b""),
                    "%s: headers added, CRLF line ends" % name)
        r.check(len(bodies) == 10, "ten different messages stored")

        res = d.cli("deliver", "nobody@example.test", input=b"Subject: x\n\nx\n", check=False)
        r.check(res.returncode == 67, "unknown user: exit 67 (%d)" % res.returncode)
        res = d.cli("deliver", "alice@example.test", input=b"", check=False)
        r.check(res.returncode == 65, "empty message: exit 65 (%d)" % res.returncode)
        res = d.cli("deliver", input=b"x", check=False)
        r.check(res.returncode == 64, "no address: exit 64 (%d)" % res.returncode)

        res = d.cli("reindex", "alice@example.test", check=False)
        r.check(res.returncode == 0 and b"10 messages" in res.stdout,
                "reindex: %d %s" % (res.returncode, res.stdout.strip()))
        res = d.cli("reindex", "ghost@example.test", check=False)
        r.check(res.returncode == 67, "reindex of no Maildir: exit 67 (%d)" % res.returncode)

        # a Dovecot Maildir copied in, imported by reindex
        bob = os.path.join(d.data, "mail", "example.test", "bob")
        shutil.copytree(FIXTURE, bob)
        res = d.cli("reindex", "bob@example.test", check=False)
        r.check(res.returncode == 0 and b"4 messages" in res.stdout,
                "Dovecot Maildir reindexed: %d %s" % (res.returncode, res.stdout.strip()))
        r.check(os.path.exists(os.path.join(bob, "postern-indexed")), "marker written")
    finally:
        shutil.rmtree(d.dir, ignore_errors=True)
    r.finish()


if __name__ == "__main__":
    main()
