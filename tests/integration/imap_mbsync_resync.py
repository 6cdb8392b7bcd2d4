"""mbsync (isync) resync cost: after a full sync of a 10,000-message INBOX,
100 flag changes and 100 expunges made on the server cost the second sync
only a small number of bytes, and the local Maildir shows exactly them.

  1. 10,000 small messages (about 1 KiB) are written straight into the
     user's Maildir and indexed with `postern reindex` (README "Command
     line"), before the daemon starts.
  2. mbsync syncs the INBOX fully through a TCP proxy on loopback that
     counts the bytes each way and keeps what mbsync sent (its commands).
  3. A separate IMAP session sets \\Flagged on 100 messages and expunges
     100 others.
  4. mbsync syncs again through the proxy.

Asserted:
  - the first sync moved every message (bytes from the server >= the
    messages' total size) and the local Maildir has all 10,000;
  - the second sync moved under 5% of the first's bytes, and no more than
    the bound its protocol allows: without CONDSTORE mbsync lists every
    message's flags once (flags_line_max() octets each, the longest
    "* n FETCH (UID n FLAGS (...))" line here) plus a constant per change
    (PER_CHANGE_MAX) and a fixed session overhead (SESSION_MAX: greeting,
    LOGIN, CAPABILITY, SELECT); with CONDSTORE/QRESYNC the per-message
    term disappears;
  - locally: exactly the 100 flagged messages carry F, the 100 expunged
    are gone, the other 9,800 are untouched (same file, same flags);
  - the commands mbsync sent are printed, and whether it used CONDSTORE
    or QRESYNC (isync 1.4 does not: it lists all flags with UID FETCH).

  - both on the wire and as IMAP text: mbsync turns on COMPRESS=DEFLATE
    when offered, so the proxy inflates each direction after COMPRESS to
    read the commands and count the protocol's octets; the bound is on
    those, the 5% on both.

The proxy speaks plain IMAP on loopback so the commands can be read: the
daemon allows plaintext login on loopback for this test only.  Measured
under ASan on the loaded 2-vCPU machine: about 25 s in all for 10,000
messages (writing them 3 s, reindex 6 s, first sync 9 s), in tmpfs.

Usage: imap_mbsync_resync.py /path/to/postern [N]
"""
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import imaplib
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results  # noqa: E402

USER = "sync@example.test"
PASSWORD = "sync-secret-1"
N_MESSAGES = 10000       # the mailbox
N_FLAGGED = 100          # \Flagged set on the server
N_EXPUNGED = 100         # expunged on the server
BODY_LINES = 14          # about 1 KiB a message
LINE_LEN = 64
LETTERS = "abcdefghijklmnopqrstuvwxyz      eeettaaoinshr"
POOL_LEN = 4 * 1024 * 1024
POOL_STRIDE = 104729     # > 32 KiB, and 40 strides stay under POOL_LEN

# what one change may add to the second sync besides its line in the flag
# listing: the client's part of a STORE it would send back, an EXPUNGE or
# VANISHED entry, a FETCH of the changed message's flags
PER_CHANGE_MAX = 200
# greeting, CAPABILITY, LOGIN, SELECT and its untagged answers, LOGOUT
SESSION_MAX = 8192
MBSYNC_TIMEOUT = 240     # under ctest's 300 s for the whole test
SHM = "/dev/shm"


def flags_line_max(n):
    """The longest line of mbsync's flag listing here: the largest
    sequence number and UID, the two flags this test can give a message."""
    return len(b"* %d FETCH (UID %d FLAGS (\\Seen \\Flagged))\r\n" % (n, n))


def text_pool():
    """Mail-like letters (they compress about 1.7:1, as text does; not
    10:1 like a repeated line), so COMPRESS does not flatter either sync."""
    rnd = random.Random(4978)
    return "".join(rnd.choices(LETTERS, k=POOL_LEN))


def message(i, pool):
    # POOL_STRIDE apart: no message repeats text DEFLATE's 32 KiB window
    # still holds from the messages just before it
    at = (i * POOL_STRIDE) % (POOL_LEN - BODY_LINES * LINE_LEN)
    body = "".join(pool[at + k * LINE_LEN:at + (k + 1) * LINE_LEN] + "\r\n"
                   for k in range(BODY_LINES))
    return ("From: sender%d@example.org\r\nTo: %s\r\nSubject: resync %d\r\n"
            "Date: Mon, 7 Dec 2026 10:%02d:00 +0000\r\n"
            "Message-ID: <resync.%d@example.org>\r\n\r\n%s"
            % (i, USER, i, i % 60, i, body)).encode()


def fill(d, n):
    local, domain = USER.split("@")
    path = os.path.join(d.data, "mail", domain, local)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    total = 0
    pool = text_pool()
    for i in range(n):
        data = message(i, pool)
        total += len(data)
        with open(os.path.join(path, "cur", "1796000000.M%06dP1.resync:2," % i), "wb") as f:
            f.write(data)
    return total


class Stream:
    """One direction of a proxied IMAP connection: the octets on the wire,
    and the IMAP text they carry (inflated after COMPRESS, RFC 4978)."""

    def __init__(self):
        self.wire = 0
        self.plain = 0
        self.text = bytearray()   # kept up to TEXT_KEEP octets
        self.pending = b""        # a line not yet complete, before COMPRESS
        self.zin = None

    TEXT_KEEP = 8 * 1024 * 1024

    def _keep(self, data):
        self.plain += len(data)
        if len(self.text) < self.TEXT_KEEP:
            self.text += data

    def feed(self, data, switch_after):
        """Account for data; switch_after(line) says whether compression
        starts after that (plain) line."""
        self.wire += len(data)
        if self.zin is not None:
            self._keep(self.zin.decompress(data))
            return
        self.pending += data
        while b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            self._keep(line + b"\n")
            if switch_after(line.rstrip(b"\r")):
                self.zin = zlib.decompressobj(-15)
                rest, self.pending = self.pending, b""
                self._keep(self.zin.decompress(rest))
                return


class CountingProxy:
    """Loopback TCP proxy: counts octets each way, on the wire and as IMAP
    text (mbsync turns on COMPRESS=DEFLATE when offered), and keeps the
    client's text to list its commands."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.reset()
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self):
        with self.lock:
            self.conns = []  # (up Stream, down Stream) per connection

    def totals(self):
        """(up wire, down wire, up plain, down plain) over the connections."""
        with self.lock:
            return (sum(u.wire for u, _ in self.conns), sum(d.wire for _, d in self.conns),
                    sum(u.plain for u, _ in self.conns), sum(d.plain for _, d in self.conns))

    def _pump(self, src, dst, stream, switch_after):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    stream.feed(data, switch_after)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            up, down = Stream(), Stream()
            state = {"tag": None}

            def up_switch(line, state=state):
                m = re.match(rb"^(\S+) COMPRESS DEFLATE$", line, re.I)
                if m:
                    state["tag"] = m.group(1)
                    return True
                return False

            def down_switch(line, state=state):
                return state["tag"] is not None and line.startswith(state["tag"] + b" OK")

            with self.lock:
                self.conns.append((up, down))
            threading.Thread(target=self._pump, args=(client, server, up, up_switch),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, down, down_switch),
                             daemon=True).start()

    def commands(self):
        """The command lines the clients sent (LOGIN's password hidden)."""
        out = []
        with self.lock:
            sent = b"".join(bytes(u.text) for u, _ in self.conns)
        for line in sent.split(b"\r\n"):
            m = re.match(rb"^[A-Za-z0-9.]+ ((?:UID )?[A-Za-z]+)(.*)$", line)
            if m is None:
                continue
            verb = m.group(1).decode().upper()
            rest = m.group(2).decode(errors="replace")
            out.append(verb + (" ..." if verb in ("LOGIN", "AUTHENTICATE") else rest))
        return out

    def close(self):
        self.sock.close()


def mbsync(tmp, port):
    conf = os.path.join(tmp, "mbsyncrc")
    local = os.path.join(tmp, "mail")
    os.makedirs(local, exist_ok=True)
    with open(conf, "w") as f:
        f.write("FSync no\n\n"
                "IMAPAccount t\nHost 127.0.0.1\nPort %d\nUser %s\nPass %s\n"
                "SSLType None\nAuthMechs LOGIN\n\n"
                "IMAPStore remote\nAccount t\n\n"
                "MaildirStore local\nPath %s/\nInbox %s/INBOX\n\n"
                "Channel c\nFar :remote:\nNear :local:\nPatterns INBOX\n"
                "Create Both\nExpunge Both\nSync All\nSyncState *\n"
                % (port, USER, PASSWORD, local, local))
    t0 = time.time()
    p = subprocess.run(["mbsync", "-c", conf, "-a"], capture_output=True,
                       timeout=MBSYNC_TIMEOUT, env=dict(os.environ, HOME=tmp))
    return (p.returncode, (p.stdout + p.stderr).decode(errors="replace"),
            os.path.join(local, "INBOX"), time.time() - t0)


def local_state(inbox):
    """message number -> (file name, flags) of the local Maildir."""
    out = {}
    for sub in ("cur", "new"):
        dd = os.path.join(inbox, sub)
        for name in os.listdir(dd) if os.path.isdir(dd) else []:
            with open(os.path.join(dd, name), "rb") as f:
                head = f.read(300)
            m = re.search(rb"Subject: resync (\d+)", head)
            if m:
                flags = name.split(":2,")[1] if ":2," in name else ""
                out[int(m.group(1))] = (name, flags)
    return out


def change_on_server(d, n):
    """\\Flagged on every 100th message from 0, expunge every 100th from
    50 (message i has UID i + 1 after the reindex).  Returns the message
    numbers flagged and expunged."""
    flagged = list(range(0, n, n // N_FLAGGED))[:N_FLAGGED]
    expunged = list(range(n // N_EXPUNGED // 2, n, n // N_EXPUNGED))[:N_EXPUNGED]
    m = imaplib.IMAP4("127.0.0.1", d.port("imap"))
    m.login(USER, PASSWORD)
    typ, _ = m.select("INBOX")
    assert typ == "OK"
    uids = lambda nums: ",".join(str(i + 1) for i in nums)  # noqa: E731
    typ, _ = m.uid("STORE", uids(flagged), "+FLAGS.SILENT", "(\\Flagged)")
    assert typ == "OK"
    typ, _ = m.uid("STORE", uids(expunged), "+FLAGS.SILENT", "(\\Deleted)")
    assert typ == "OK"
    typ, _ = m.expunge()
    assert typ == "OK"
    m.logout()
    return flagged, expunged


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: imap_mbsync_resync.py POSTERN [N]")
    if shutil.which("mbsync") is None:
        print("mbsync (isync) is not installed")
        sys.exit(77)
    n = int(sys.argv[2]) if len(sys.argv) == 3 else N_MESSAGES
    r = Results()
    start = time.time()
    # 10,000 messages on the server and 10,000 more in mbsync's Maildir:
    # on a disk that discards on unlink, writing and removing them took
    # longer than the syncs; the test counts bytes, not disk speed, so it
    # keeps both trees in tmpfs when there is one.
    if os.path.isdir(SHM) and os.access(SHM, os.W_OK):
        tempfile.tempdir = SHM
    d = Daemon(sys.argv[1], roles=("imap",))
    with open(d.conf) as f:
        conf = f.read()
    with open(d.conf, "w") as f:
        f.write(conf.replace("allow_plaintext_auth_on_loopback = no",
                             "allow_plaintext_auth_on_loopback = yes"))
    tmp = tempfile.mkdtemp(prefix="postern-mbsync-resync-")
    try:
        d.add_user(USER, PASSWORD)
        print("daemon configured, user added: %.1f s" % (time.time() - start))
        t0 = time.time()
        total = fill(d, n)
        t1 = time.time()
        d.cli("reindex", USER)
        print("%d messages (%d octets) written in %.1f s, indexed in %.1f s" %
              (n, total, t1 - t0, time.time() - t1))
        t0 = time.time()
        with d:
            print("daemon up in %.1f s" % (time.time() - t0))
            proxy = CountingProxy(d.port("imap"))
            rc, out, inbox, secs = mbsync(tmp, proxy.port)
            up1, down1, pup1, pdown1 = proxy.totals()
            print("first sync: %.1f s; on the wire %d octets up, %d down; as IMAP text "
                  "%d up, %d down" % (secs, up1, down1, pup1, pdown1))
            if not r.check(rc == 0, "first mbsync exits 0: %s" % out[-2000:]):
                r.finish()
            t0 = time.time()
            before = local_state(inbox)
            print("local Maildir read in %.1f s" % (time.time() - t0))
            r.check(len(before) == n and all(f == "" for _, f in before.values()),
                    "all %d messages are local, unflagged (%d)" % (n, len(before)))
            r.check(pdown1 >= total, "the first sync carried every message: %d >= %d" %
                    (pdown1, total))

            t0 = time.time()
            flagged, expunged = change_on_server(d, n)
            print("server-side changes in %.1f s" % (time.time() - t0))
            proxy.reset()
            rc, out, inbox, secs = mbsync(tmp, proxy.port)
            up2, down2, pup2, pdown2 = proxy.totals()
            cmds = proxy.commands()
            print("second sync: %.1f s; on the wire %d octets up, %d down; as IMAP text "
                  "%d up, %d down" % (secs, up2, down2, pup2, pdown2))
            print("commands of the second sync:\n  " + "\n  ".join(c[:150] for c in cmds))
            if not r.check(rc == 0, "second mbsync exits 0: %s" % out[-2000:]):
                r.finish()

            condstore = any("CHANGEDSINCE" in c.upper() or "QRESYNC" in c.upper() or
                            "CONDSTORE" in c.upper() for c in cmds)
            print("mbsync used CONDSTORE/QRESYNC: %s" % ("yes" if condstore else "no"))
            changes = len(flagged) + len(expunged)
            bound = SESSION_MAX + changes * PER_CHANGE_MAX
            if not condstore:
                bound += n * flags_line_max(n)
            # the bound is on the IMAP text: what the protocol needs,
            # whatever COMPRESS makes of it
            moved = pup2 + pdown2
            r.check(moved <= bound,
                    "second sync: %d octets of IMAP text <= bound %d (%s)" %
                    (moved, bound, "per change" if condstore else
                     "one flags line per message + per change"))
            r.check(moved * 20 < pup1 + pdown1,
                    "second sync: under 5%% of the first's IMAP text: %d vs %d (%.2f%%)" %
                    (moved, pup1 + pdown1, 100.0 * moved / max(1, pup1 + pdown1)))
            r.check((up2 + down2) * 20 < up1 + down1,
                    "second sync: under 5%% of the first's octets on the wire: %d vs %d "
                    "(%.2f%%)" % (up2 + down2, up1 + down1,
                                  100.0 * (up2 + down2) / max(1, up1 + down1)))
            r.check(not any(re.search(r"BODY(\.PEEK)?\[|RFC822(?!\.SIZE)", c.upper())
                            for c in cmds),
                    "the second sync fetched no message content")

            after = local_state(inbox)
            gone = set(expunged)
            r.check(set(after) == set(before) - gone,
                    "exactly the %d expunged messages are gone locally (%d left, %d missing "
                    "of the wrong ones)" % (len(gone), len(after),
                                            len((set(before) - gone) - set(after))))
            want_f = set(flagged)
            have_f = {i for i, (_, fl) in after.items() if "F" in fl}
            r.check(have_f == want_f,
                    "exactly the %d flagged messages carry F locally (%d do; wrong: %s)" %
                    (len(want_f), len(have_f), sorted(have_f ^ want_f)[:10]))
            untouched = [i for i in after if i not in want_f]
            r.check(all(after[i] == before[i] for i in untouched),
                    "the other %d messages are untouched (same file name)" % len(untouched))
            proxy.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%.1f s in all" % (time.time() - start))
    r.finish()


if __name__ == "__main__":
    main()
