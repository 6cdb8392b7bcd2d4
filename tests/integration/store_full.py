"""A full disk, for real: the Maildirs (DATA_DIR/mail, with the delivery
spool) live on a small tmpfs mounted for this test (`mount -t tmpfs -o
size=...`, so it needs root; skipped, 77, otherwise), filled up with a
file until a message no longer fits.  Then SMTP answers `452 4.3.1`
(RFC 3463: mail system full), IMAP APPEND a NO without [SERVERBUG]
([OVERQUOTA], as Dovecot says it), `postern deliver` exits 75, and no
message file, whole or partial, is left in new/, cur/, tmp/ or the spool.
Once space is freed, mail flows again.  Then the same with the index
(DATA_DIR/index) alone on the small tmpfs: LMDB's commit fails with ENOSPC
and the answers are the same.  Run by ctest with the postern binary as argv[1]."""
import imaplib
import os
import shutil
import smtplib
import subprocess
import sys

from postern_test import Daemon, Results, skip, tls_context

USER = "alice@example.test"
PASSWORD = "full-disk-pass-1"
FS_SIZE = 2 * 1024 * 1024
BIG = 200 * 1024  # a message that does not fit in what is left


def message(subject, size):
    line = "x" * 76 + "\r\n"
    body = line * (size // len(line) + 1)
    return ("From: bob@example.test\r\nTo: %s\r\nSubject: %s\r\n\r\n%s" %
            (USER, subject, body)).encode()


def files_under(path):
    out = []
    for root, _, files in os.walk(path):
        out += [os.path.join(root, f) for f in files]
    return out


def message_files(mail):
    rel = [os.path.relpath(f, mail) for f in files_under(mail)]
    return [f for f in rel if f.split("/")[-2:-1] and
            f.split("/")[-2] in ("new", "cur", "tmp", ".tmp")]


def main():
    postern = sys.argv[1]
    if os.geteuid() != 0:
        skip("mounting a small tmpfs needs root")
    r = Results()
    d = Daemon(postern, roles=("smtp", "imaps"))
    mail = os.path.join(d.data, "mail")
    os.makedirs(mail, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % FS_SIZE, "tmpfs", mail],
                         capture_output=True)
    if res.returncode != 0:
        skip("cannot mount a tmpfs here: " + res.stderr.decode(errors="replace").strip())
    try:
        d.add_user(USER, PASSWORD)
        d.start()
        # the Maildir exists and works
        d.cli("deliver", USER, input=message("before", 1000))
        before = set(message_files(mail))
        r.check(len(before) == 1, "one message delivered before the disk fills: %s" % sorted(before))

        # fill the file system, leaving less than one big message
        filler = os.path.join(mail, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        st = os.statvfs(mail)
        os.truncate(filler, os.path.getsize(filler) - 64 * 1024)
        st = os.statvfs(mail)
        free = st.f_bavail * st.f_frsize
        r.check(free < BIG, "tmpfs nearly full: %d bytes free" % free)

        # SMTP on port 25
        s = smtplib.SMTP("127.0.0.1", d.port("smtp"), timeout=30)
        s.ehlo("sender.example.org")
        try:
            s.sendmail("bob@example.org", [USER], message("by smtp", BIG))
            r.check(False, "SMTP: a message that does not fit was accepted")
        except smtplib.SMTPDataError as e:
            r.check(e.smtp_code == 452 and e.smtp_error.startswith(b"4.3.1"),
                    "SMTP: %d %s" % (e.smtp_code, e.smtp_error.decode()))
        except smtplib.SMTPRecipientsRefused as e:
            r.check(False, "SMTP: refused at RCPT: %s" % e.recipients)
        s.quit()

        # IMAP APPEND
        imap = imaplib.IMAP4_SSL("127.0.0.1", d.port("imaps"), ssl_context=tls_context())
        imap.login(USER, PASSWORD)
        try:
            typ, data = imap.append("INBOX", None, None, message("by imap", BIG))
        except imaplib.IMAP4.error as e:
            typ, data = "NO", [str(e).encode()]
        text = b" ".join(x for x in data if isinstance(x, bytes)).decode(errors="replace")
        r.check(typ == "NO" and "SERVERBUG" not in text and "OVERQUOTA" in text,
                "IMAP APPEND: %s %s" % (typ, text))
        typ, data = imap.select("INBOX")
        r.check(typ == "OK" and int(data[0]) == 1, "IMAP: INBOX still has 1 message (%s)" % data)
        imap.logout()

        # postern deliver (the MDA)
        res = d.cli("deliver", USER, input=message("by deliver", BIG), check=False)
        r.check(res.returncode == 75, "postern deliver: exit 75 (%d: %s)" % (
            res.returncode, res.stderr.decode(errors="replace").strip()))

        left = set(message_files(mail)) - before
        r.check(not left, "no message file, whole or partial, left behind: %s" % sorted(left))

        # space again: mail flows
        os.unlink(filler)
        s = smtplib.SMTP("127.0.0.1", d.port("smtp"), timeout=30)
        s.ehlo("sender.example.org")
        refused = s.sendmail("bob@example.org", [USER], message("after", BIG))
        s.quit()
        r.check(not refused, "after freeing space, SMTP delivers again")
        res = d.cli("deliver", USER, input=message("after 2", 1000), check=False)
        r.check(res.returncode == 0, "after freeing space, postern deliver exits 0")
    finally:
        d.stop()
        subprocess.run(["umount", mail])
        d.keep_dir = False
        shutil.rmtree(d.dir, ignore_errors=True)
    index_full(postern, r)
    r.finish()


def fill(path):
    """Fill the file system of path; the filler's name."""
    filler = os.path.join(path, "filler")
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def index_full(postern, r):
    """The same answers when it is the index's file system that is full
    (DATA_DIR/index on its own small tmpfs, the Maildirs on the ordinary
    one): LMDB's commit fails with ENOSPC."""
    d = Daemon(postern, roles=("smtp", "imaps"))
    index = os.path.join(d.data, "index")
    os.makedirs(index, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % FS_SIZE, "tmpfs", index],
                         capture_output=True)
    if res.returncode != 0:
        r.check(False, "cannot mount a tmpfs on the index: " + res.stderr.decode(errors="replace"))
        return
    mail = os.path.join(d.data, "mail")
    try:
        d.add_user(USER, PASSWORD)
        d.start()
        d.cli("deliver", USER, input=message("before", 1000))
        before = set(message_files(mail))
        filler = fill(index)
        refused = 0
        # fill what LMDB's free pages still take, until a commit fails
        for i in range(200):
            s = smtplib.SMTP("127.0.0.1", d.port("smtp"), timeout=30)
            s.ehlo("sender.example.org")
            try:
                s.sendmail("bob@example.org", [USER], message("index %d" % i, 2000))
            except smtplib.SMTPDataError as e:
                r.check(e.smtp_code == 452 and e.smtp_error.startswith(b"4.3.1"),
                        "index full: SMTP %d %s" % (e.smtp_code, e.smtp_error.decode()))
                refused = i
                break
            finally:
                s.quit()
        r.check(refused > 0 or i < 199, "a delivery was refused once the index's disk was full")
        imap = imaplib.IMAP4_SSL("127.0.0.1", d.port("imaps"), ssl_context=tls_context())
        imap.login(USER, PASSWORD)
        try:
            typ, data = imap.append("INBOX", None, None, message("by imap", 1000))
        except imaplib.IMAP4.error as e:
            typ, data = "NO", [str(e).encode()]
        imap.logout()
        text = b" ".join(x for x in data if isinstance(x, bytes)).decode(errors="replace")
        r.check(typ == "NO" and "SERVERBUG" not in text and "OVERQUOTA" in text,
                "index full: IMAP APPEND %s %s" % (typ, text))
        res = d.cli("deliver", USER, input=message("by deliver", 1000), check=False)
        r.check(res.returncode == 75, "index full: postern deliver exits 75 (%d: %s)" % (
            res.returncode, res.stderr.decode(errors="replace").strip()))
        stored = set(message_files(mail)) - before
        r.check(len(stored) == refused,
                "index full: the %d accepted messages are stored and no other file is left: %d"
                % (refused, len(stored)))
        os.unlink(filler)
        res = d.cli("deliver", USER, input=message("after", 1000), check=False)
        r.check(res.returncode == 0, "index space again: postern deliver exits 0")
    finally:
        d.stop()
        subprocess.run(["umount", index])
        shutil.rmtree(d.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
