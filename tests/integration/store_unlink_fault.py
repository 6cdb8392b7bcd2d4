"""An expunge whose unlink fails keeps the message (issue 13: "an unlink
made to fail by fault injection").

The daemon runs with tests/faults/unlink_fault.c preloaded, which makes
unlink() fail with EIO for the Maildir files named in POSTERN_FAULT_UNLINK
(the store's own unit test, check_store_io, covers the store API; this one
covers what IMAP and POP3 clients are told):

- IMAP: STORE \\Deleted on a stuck and a removable message, EXPUNGE: the
  removable one goes (* n EXPUNGE), the tagged reply is NO [UNAVAILABLE],
  the stuck one stays in the index and on disk, still \\Deleted, and FETCH
  still gives its bytes.
- POP3: DELE of a stuck and a removable message, QUIT: -ERR saying one was
  kept; a new session still lists and RETRs the stuck one.
- After a restart without the fault nothing was lost or duplicated, and
  EXPUNGE then removes the stuck message.

Usage: store_unlink_fault.py /path/to/postern /path/to/postern_unlink_fault.so
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, LineClient, Results, maildir_files  # noqa: E402
from imap_protocol import raw_imaps  # noqa: E402

USER = "stuck@example.test"
PASSWORD = "unlink-pass-1"
SUBJECTS = ("imap-stuck", "imap-goes", "pop3-stuck", "pop3-goes", "keep")


def make_msg(subject):
    return ("From: sender@example.org\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%s@example.org>\r\n\r\nbody of %s\r\n"
            % (USER, subject, subject, subject)).encode()


def files(d):
    """Subject -> (path, bytes) of every message file of the INBOX."""
    out = {}
    for path in maildir_files(d, USER):
        with open(path, "rb") as f:
            data = f.read()
        m = re.search(rb"\r\nSubject: (\S+)\r\n", data)
        if m:
            out[m.group(1).decode()] = (path, data)
    return out


def base_name(path):
    """The Maildir unique name: stays when a flag change renames the file."""
    return os.path.basename(path).split(":")[0]


def asan_runtime(binary):
    """The libasan a sanitized postern links (first in LD_PRELOAD), or None."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    m = re.search(r"libasan\.so\S*\s*=>\s*(\S+)", out)
    return m.group(1) if m else None


def start_with_fault(d, shim, names):
    saved = {k: os.environ.get(k) for k in ("LD_PRELOAD", "POSTERN_FAULT_UNLINK")}
    asan = asan_runtime(d.postern)
    os.environ["LD_PRELOAD"] = " ".join(([asan] if asan else []) + [shim])
    os.environ["POSTERN_FAULT_UNLINK"] = " ".join(names)
    try:
        d.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def pop3(d):
    c = LineClient(d.port("pop3s"), tls=True)
    assert c.raw_line().startswith(b"+OK")
    for cmd in ("USER " + USER, "PASS " + PASSWORD):
        c.send(cmd + "\r\n")
        res = c.raw_line()
        assert res.startswith(b"+OK"), (cmd, res)
    return c


def pop3_multi(c, cmd):
    """Status line and the lines of a multi-line answer (unstuffed)."""
    c.send(cmd + "\r\n")
    status = c.raw_line()
    lines = []
    if status.startswith(b"+OK"):
        while True:
            line = c.raw_line()
            if line == b".":
                break
            lines.append(line[1:] if line.startswith(b"..") else line)
    return status, lines


def test_imap(d, r, before):
    c = raw_imaps(d, USER, PASSWORD)
    c.cmd("SELECT INBOX")
    res = c.cmd("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    r.check(res[-1].split()[1] == b"OK", "STORE \\Deleted on messages 1 and 2: %r" % res)
    res = c.cmd("EXPUNGE")
    r.check(res[:-1] == [b"* 2 EXPUNGE"],
            "EXPUNGE removes the message whose unlink works, only it: %r" % res)
    r.check(re.match(rb"r\d+ NO \[UNAVAILABLE\] 1 message\(s\) could not be removed", res[-1])
            is not None, "and answers NO [UNAVAILABLE] for the one kept: %r" % res[-1])
    now = files(d)
    r.check("imap-stuck" in now and "imap-goes" not in now,
            "on disk: the stuck file stays, the other is gone: %r" % sorted(now))
    res = c.cmd("FETCH 1 (FLAGS BODY.PEEK[])")
    want = before["imap-stuck"][1]
    head = re.match(rb"\* 1 FETCH \(FLAGS \(([^)]*)\) BODY\[\] \{(\d+)\}$", res[0])
    r.check(head is not None and b"\\Deleted" in head.group(1).split() and
            int(head.group(2)) == len(want) and res[-1].split()[1] == b"OK",
            "the kept message is still in the index, \\Deleted: %r" % res[0])
    r.check(len(res) > 1 and res[1] == want, "and FETCH gives its bytes whole")
    c.cmd("LOGOUT")
    c.close()
    r.check("not expunged" in d.log(), "the store logs the failed unlink")


def test_pop3(d, r, before):
    c = pop3(d)
    status, uidls = pop3_multi(c, "UIDL")
    r.check(status.startswith(b"+OK") and len(uidls) == 4, "POP3 lists 4 messages: %r" % uidls)
    for n in (2, 3):  # pop3-stuck, pop3-goes
        c.send("DELE %d\r\n" % n)
        r.check(c.raw_line().startswith(b"+OK"), "DELE %d" % n)
    c.send("QUIT\r\n")
    res = c.raw_line()
    r.check(res.startswith(b"-ERR") and b"1 deleted messages could not be removed" in res,
            "QUIT answers -ERR for the message it could not remove: %r" % res)
    r.check(c.closed(), "and closes")
    c.close()
    c = pop3(d)
    c.send("STAT\r\n")
    res = c.raw_line()
    r.check(res.startswith(b"+OK 3 "), "a new session has 3 messages: %r" % res)
    status, lines = pop3_multi(c, "RETR 2")
    r.check(b"\r\n".join(lines) + b"\r\n" == before["pop3-stuck"][1],
            "RETR 2 is the kept message, whole: %r" % status)
    c.send("QUIT\r\n")
    c.raw_line()
    c.close()
    now = files(d)
    r.check(sorted(now) == ["imap-stuck", "keep", "pop3-stuck"],
            "on disk: the removable one went, the stuck ones stay: %r" % sorted(now))


def test_after_restart(d, r, before):
    c = raw_imaps(d, USER, PASSWORD)
    res = c.cmd("SELECT INBOX")
    r.check(b"* 3 EXISTS" in res, "after a restart without the fault: 3 messages")
    res = c.cmd("UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    text = b"\n".join(res)
    r.check(text.count(b"Subject: ") == 3 and b"imap-stuck" in text and b"pop3-stuck" in text and
            b"keep" in text, "each message once, none lost or duplicated")
    res = c.cmd("EXPUNGE")
    r.check(res[:-1] == [b"* 1 EXPUNGE"] and res[-1].split()[1] == b"OK",
            "EXPUNGE now removes the stuck \\Deleted message: %r" % res)
    c.cmd("LOGOUT")
    c.close()
    r.check(sorted(files(d)) == ["keep", "pop3-stuck"], "and its file is gone")


def main():
    postern, shim = sys.argv[1], sys.argv[2]
    r = Results()
    d = Daemon(postern, roles=("imaps", "pop3s"))
    try:
        d.add_user(USER, PASSWORD)
        for subject in SUBJECTS:
            d.cli("deliver", USER, input=make_msg(subject))
        before = files(d)
        assert sorted(before) == sorted(SUBJECTS), before
        start_with_fault(d, shim, [base_name(before[s][0])
                                   for s in ("imap-stuck", "pop3-stuck")])
        r.run("imap", lambda: test_imap(d, r, before))
        r.run("pop3", lambda: test_pop3(d, r, before))
        r.check(d.stop() == 0, "the daemon with the fault stops cleanly")
        d.start()
        r.run("after restart", lambda: test_after_restart(d, r, before))
    finally:
        d.__exit__(None, None, None)
    r.finish()


if __name__ == "__main__":
    main()
