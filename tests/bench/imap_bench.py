#!/usr/bin/python3
"""IMAP benchmark: Postern against Debian's Dovecot (reported, not asserted).

    /usr/bin/python3 tests/bench/imap_bench.py BUILD/postern [--clients 10,50]
        [--seconds 20] [--big 100000] [--search 10000] [--idle 10000]
        [--auth-cache default|on|off] [--compress]

Both servers run on 127.0.0.1 high ports from temporary directories with
their own configuration (Dovecot: /usr/sbin/dovecot -F -c OURCONF, Debian's
defaults otherwise: one imap-login process per connection in
login_process_per_connection mode, one imap process per session; the
system's instance is never touched) and get the same messages, written
straight into their Maildirs and indexed before any clock starts.  Measured:

  1. Mixed load, commands per second: 10, then 50 client processes, each
     with its own user and a 200-message INBOX, repeat a session for
     --seconds: LOGIN, SELECT, UID FETCH 1:* (FLAGS), FETCH of the last 20
     headers (BODY.PEEK[HEADER.FIELDS (...)] RFC822.SIZE), FETCH of 3
     bodies (BODY.PEEK[]), STORE +FLAGS (\\Seen), UID SEARCH UNSEEN,
     SEARCH SUBJECT, APPEND, STORE +FLAGS (\\Deleted), EXPUNGE, LOGOUT.
     Plain IMAP with LOGIN (the TLS handshake would measure OpenSSL and
     the Python client, not the IMAP server).  Each LOGIN checks the same
     yescrypt hash; --auth-cache says whether a server may skip that
     for a password it verified recently (default: each server's own
     default, which is on for Postern and off for Debian's Dovecot).
  2. SELECT + UID FETCH 1:* (FLAGS) on a --big message mailbox.
  3. 20 x FETCH 1:* BODYSTRUCTURE over the shared corpus (APPENDed).
  4. SEARCH BODY over --search messages (Dovecot has no FTS plugin, as
     Debian installs it).
     2-4 are the median of 3 rounds after an untimed first one, with a
     client that only looks for the tagged answer, so that they time the
     server rather than imaplib's parser.
  5. PSS (sum of Pss of every server process) per TLS session in IDLE
     (logged in, INBOX selected), --idle sessions.

With --compress every connection of every measurement turns on
COMPRESS=DEFLATE (RFC 4978) right after LOGIN, on both servers (Dovecot
with its imap_zlib plugin): the mixed load through imaplib, the timed
commands through RawImap, the IDLE sessions; a server that refuses it
stops the run.

The Python clients share the 2 CPUs with the servers: they bound the mixed
load as much as the servers do.  Build Postern without sanitizers
(cmake -DCMAKE_BUILD_TYPE=Release).
"""
import argparse
import imaplib
import multiprocessing
import os
import pwd
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "helpers"))
sys.path.insert(0, HERE)
from postern_test import Daemon, free_port, shared_dir, wait_port  # noqa: E402
from bench_proc import pss_kib  # noqa: E402

PASSWORD = "bench-password-1"
DOMAIN = "example.test"
DOVECOT = "/usr/sbin/dovecot"
MIX_MESSAGES = 200
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima "
         "mike november oscar papa quebec romeo sierra tango uniform victor").split()


def make_message(i, size=2048):
    w = WORDS[i % len(WORDS)]
    head = ("From: Sender %d <sender%d@example.org>\r\nTo: user@%s\r\n"
            "Subject: bench %d %s\r\nDate: Mon, 7 Dec 2026 10:%02d:00 +0000\r\n"
            "Message-ID: <bench.%d@example.org>\r\n\r\n" % (i, i, DOMAIN, i, w, i % 60,
                                                             i)).encode()
    line = ("The quick brown fox %s jumps over the lazy dog %d.\r\n" % (w, i)).encode()
    body = bytearray()
    while len(head) + len(body) + len(line) <= size:
        body += line
    return head + bytes(body)


def fill_maildir(path, count, size=2048, first=0):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    for i in range(first, first + count):
        with open(os.path.join(path, "cur", "1700000000.M%07dP1.bench:2," % i), "wb") as f:
            f.write(make_message(i, size))


def chown_tree(path, uid, gid):
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for f in files:
            os.chown(os.path.join(root, f), uid, gid)


# ---- COMPRESS=DEFLATE (RFC 4978) --------------------------------------------

# RFC 4978 §3: raw DEFLATE (no zlib header), each direction one stream,
# the sender flushing at the end of what it sends.
DEFLATE_WBITS = -15
DEFLATE_LEVEL = 6


class Deflate:
    """Both directions of one connection once COMPRESS succeeded."""

    def __init__(self):
        self.zout = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, DEFLATE_WBITS)
        self.zin = zlib.decompressobj(DEFLATE_WBITS)

    def pack(self, data):
        return self.zout.compress(data) + self.zout.flush(zlib.Z_SYNC_FLUSH)

    def unpack(self, data):
        return self.zin.decompress(data)


imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))


class DeflateIMAP4(imaplib.IMAP4):
    """imaplib's client, with compress() turning on COMPRESS=DEFLATE; the
    rest of imaplib reads and writes through read/readline/send."""

    deflate = None

    def compress(self):
        typ, data = self._simple_command("COMPRESS", "DEFLATE")
        if typ != "OK":
            raise RuntimeError("COMPRESS DEFLATE refused: %r" % data)
        self.deflate = Deflate()
        self.zbuf = b""

    def _zfill(self):
        data = self.file.read1(65536)  # what the file buffered comes first
        if not data:
            raise imaplib.IMAP4.abort("connection closed")
        self.zbuf += self.deflate.unpack(data)

    def read(self, size):
        if self.deflate is None:
            return super().read(size)
        while len(self.zbuf) < size:
            self._zfill()
        out, self.zbuf = self.zbuf[:size], self.zbuf[size:]
        return out

    def readline(self):
        if self.deflate is None:
            return super().readline()
        while b"\n" not in self.zbuf:
            self._zfill()
        i = self.zbuf.index(b"\n") + 1
        out, self.zbuf = self.zbuf[:i], self.zbuf[i:]
        return out

    def send(self, data):
        if self.deflate is not None:
            data = self.deflate.pack(data)
        super().send(data)


# ---- the load ---------------------------------------------------------------

def mixed_session(port, user, deadline, compress=False):
    """Sessions until the deadline; returns the number of commands (the
    COMPRESS command is not counted: it is the same work for both)."""
    n = 0
    msg = make_message(999999, 3000)
    while time.time() < deadline:
        c = DeflateIMAP4("127.0.0.1", port)
        c.login(user, PASSWORD)
        if compress:
            c.compress()
        typ, data = c.select("INBOX")
        exists = int(data[0])
        c.uid("FETCH", "1:*", "(FLAGS)")
        lo = max(1, exists - 19)
        c.fetch("%d:%d" % (lo, exists),
                "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)])")
        c.fetch("%d:%d" % (max(1, exists - 2), exists), "(BODY.PEEK[])")
        c.store("%d:%d" % (lo, exists), "+FLAGS", "(\\Seen)")
        c.uid("SEARCH", "UNSEEN")
        c.search(None, "SUBJECT", WORDS[n % len(WORDS)])
        c.append("INBOX", None, None, msg)
        c.noop()  # learn the new EXISTS like a client would
        typ, data = c.select("INBOX")
        c.store(data[0].decode(), "+FLAGS", "(\\Deleted)")
        c.expunge()
        c.logout()
        n += 13
    return n


def mixed_worker(args):
    port, user, start, seconds, compress = args
    while time.time() < start:
        time.sleep(0.005)
    return mixed_session(port, user, start + seconds, compress)


def mixed_load(port, clients, seconds, compress=False):
    ctx = multiprocessing.get_context("fork")
    start = time.time() + 2 + clients * 0.02
    with ctx.Pool(clients) as pool:
        counts = pool.map(mixed_worker, [(port, "m%d@%s" % (k, DOMAIN), start, seconds,
                                          compress) for k in range(clients)])
    return sum(counts) / seconds


class RawImap:
    """A minimal client for the timed single commands: it sends a command
    and reads until its tagged answer without parsing the rest, so the
    clock measures the server, not imaplib's response parser."""

    def __init__(self, port, user, compress=False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.n = 0
        self.buf = b""
        self.deflate = None
        self.read_until(None)
        self.cmd("LOGIN %s %s" % (user, PASSWORD))
        if compress:
            self.cmd("COMPRESS DEFLATE")
            self.deflate = Deflate()
            self.buf = self.deflate.unpack(self.buf)

    def read_until(self, tag):
        while True:
            if tag is None and b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                return line
            if tag is not None:
                i = self.buf.find(b"\r\n" + tag + b" ")
                if i >= 0 or self.buf.startswith(tag + b" "):
                    start = i + 2 if i >= 0 else 0
                    end = self.buf.find(b"\r\n", start)
                    if end >= 0:
                        out, self.buf = self.buf[:end], self.buf[end + 2:]
                        return out
            data = self.sock.recv(1 << 20)
            if not data:
                raise RuntimeError("connection closed")
            self.buf += self.deflate.unpack(data) if self.deflate else data

    def cmd(self, text):
        """The whole answer; raises unless the tagged status is OK."""
        self.n += 1
        tag = b"t%d" % self.n
        data = tag + b" " + text.encode() + b"\r\n"
        self.sock.sendall(self.deflate.pack(data) if self.deflate else data)
        out = self.read_until(tag)
        last = out[out.rfind(b"\r\n") + 2:] if b"\r\n" in out else out
        if not last.startswith(tag + b" OK"):
            raise RuntimeError("%s: %r" % (text, last[:200]))
        return out

    def close(self):
        self.sock.close()


def one_user_postern(postern, user, fill, measure):
    """Postern on a plain IMAP port for one user whose Maildir fill(mail_of)
    writes and `postern reindex` indexes before measure(port) runs; returns
    (measure's result, the user's password hash for DovecotServer)."""
    d = Daemon(postern, roles=("imap",))
    with open(d.conf) as f:
        text = f.read()
    with open(d.conf, "w") as f:
        f.write(text.replace("log_level = debug", "log_level = warn").replace(
            "allow_plaintext_auth_on_loopback = no", "allow_plaintext_auth_on_loopback = yes"))
    d.add_user(user, PASSWORD)
    with open(os.path.join(d.data, "users")) as f:
        hash_ = [ln.split()[1] for ln in f if ln.startswith(user)][0]
    print(" Postern: writing the Maildir ...", flush=True)
    fill(lambda u: os.path.join(d.data, "mail", DOMAIN, u.split("@")[0]))
    d.cli("reindex", user)
    with d:
        return measure(d.port("imap")), hash_


def timed(port, user, commands, rounds=3, compress=False):
    """Median seconds of running commands (after one untimed warm-up round)."""
    c = RawImap(port, user, compress)
    times = []
    for r in range(rounds + 1):
        t0 = time.time()
        for text in commands:
            c.cmd(text)
        if r > 0:
            times.append(time.time() - t0)
    c.close()
    return statistics.median(times)


def big_select(port, user, compress=False):
    return timed(port, user, ["SELECT INBOX", "UID FETCH 1:* (FLAGS)", "UNSELECT"],
                 compress=compress)


def corpus_load(port, user, corpus, compress=False):
    c = DeflateIMAP4("127.0.0.1", port)
    c.login(user, PASSWORD)
    if compress:
        c.compress()
    for name in sorted(os.listdir(corpus)):
        with open(os.path.join(corpus, name), "rb") as f:
            c.append("INBOX", None, None, f.read())
    c.logout()


def corpus_bodystructure(port, user, compress=False):
    return timed(port, user, ["EXAMINE INBOX"] + ["FETCH 1:* (BODYSTRUCTURE)"] * 20 +
                 ["UNSELECT"], compress=compress)


def search_body(port, user, compress=False):
    return timed(port, user, ["EXAMINE INBOX", 'SEARCH BODY "uniform"', "UNSELECT"],
                 compress=compress)


# ---- idle TLS sessions -------------------------------------------------------

def idle_worker(args):
    """Open and park the sessions; reports their count, or -1 on failure
    (so that the parent never waits for a worker that died)."""
    try:
        idle_sessions(*args)
    except Exception as e:  # noqa: BLE001 - reported to the parent
        print("idle worker failed: %r" % (e,))
        args[2].put(-1)


def idle_open(ctx, port, user, compress):
    """One TLS session logged in, INBOX selected, in IDLE (with COMPRESS
    turned on after LOGIN when asked); returns (socket, reader)."""
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=60))
    f = s.makefile("rb")
    f.readline()
    login = b"a LOGIN %s %s\r\n" % (user.encode(), PASSWORD.encode())
    rest = b"b SELECT INBOX\r\nc IDLE\r\n"
    deflate = None
    if compress:
        s.sendall(login + b"z COMPRESS DEFLATE\r\n")
        while True:
            line = f.readline()
            if not line:
                raise RuntimeError("closed before COMPRESS")
            if line[:2] in (b"a ", b"z ") and b" OK" not in line[:6]:
                raise RuntimeError("%s: %r" % (user, line))
            if line.startswith(b"z OK"):
                break
        deflate = Deflate()
        s.sendall(deflate.pack(rest))
    else:
        s.sendall(login + rest)
    buf = b""
    while True:
        if deflate is None:
            line = f.readline()
        else:
            while b"\n" not in buf:
                data = f.read1(65536)
                if not data:
                    raise RuntimeError("closed before IDLE")
                buf += deflate.unpack(data)
            line, _, buf = buf.partition(b"\n")
        if not line:
            raise RuntimeError("closed before IDLE")
        if line.startswith(b"+"):
            return s, f
        if line[:2] in (b"a ", b"b ") and b" OK" not in line[:6]:
            raise RuntimeError("%s: %r" % (user, line))


def idle_sessions(port, users, conn_ready, release, compress=False):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    socks = [idle_open(ctx, port, u, compress) for u in users]
    conn_ready.put(len(socks))
    release.wait()
    for s, f in socks:
        s.close()


def idle_pss(port, root_pid, users, compress=False):
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Queue(), ctx.Event()
    parts = 8
    time.sleep(1)
    before = pss_kib(root_pid)
    procs = [ctx.Process(target=idle_worker,
                         args=((port, users[k::parts], ready, release, compress),))
             for k in range(parts)]
    for p in procs:
        p.start()
    counts = [ready.get(timeout=1800) for _ in procs]
    if min(counts) < 0:
        release.set()
        for p in procs:
            p.join(timeout=120)
        raise RuntimeError("some IDLE sessions could not be opened")
    n = sum(counts)
    time.sleep(2)
    after = pss_kib(root_pid)
    release.set()
    for p in procs:
        p.join(timeout=120)
    return (after - before) / n, after - before, n


# ---- the runs ----------------------------------------------------------------

def fill_users(mail_of, a, corpus):
    """Maildirs for every user; mail_of(user) is the user's Maildir path."""
    for k in range(max(a.clients_list)):
        fill_maildir(mail_of("m%d@%s" % (k, DOMAIN)), MIX_MESSAGES)
    fill_maildir(mail_of("big@" + DOMAIN), a.big, size=600)
    fill_maildir(mail_of("search@" + DOMAIN), a.search, size=2048)
    os.makedirs(os.path.join(mail_of("corpus@" + DOMAIN), "cur"), exist_ok=True)
    for k in range(a.idle):
        fill_maildir(mail_of("i%d@%s" % (k, DOMAIN)), 1, size=600)


def all_users(a):
    return (["m%d@%s" % (k, DOMAIN) for k in range(max(a.clients_list))] +
            ["big@" + DOMAIN, "search@" + DOMAIN, "corpus@" + DOMAIN] +
            ["i%d@%s" % (k, DOMAIN) for k in range(a.idle)])


def measure(port, tls_port, pid, a, corpus):
    res = {}
    for n in a.clients_list:
        print("   mixed load, %d clients ..." % n, flush=True)
        res["mix%d" % n] = mixed_load(port, n, a.seconds, a.compress)
    print("   SELECT + UID FETCH 1:* (FLAGS), %d messages ..." % a.big, flush=True)
    res["big"] = big_select(port, "big@" + DOMAIN, a.compress)
    if corpus:
        corpus_load(port, "corpus@" + DOMAIN, corpus, a.compress)
        res["bs"] = corpus_bodystructure(port, "corpus@" + DOMAIN, a.compress)
    print("   SEARCH BODY over %d messages ..." % a.search, flush=True)
    res["search"] = search_body(port, "search@" + DOMAIN, a.compress)
    if a.idle:
        print("   %d TLS sessions in IDLE ..." % a.idle, flush=True)
        res["idle"] = idle_pss(tls_port, pid, ["i%d@%s" % (k, DOMAIN) for k in range(a.idle)],
                               a.compress)
    return res


def run_postern(postern, a, corpus):
    d = Daemon(postern, roles=("imap", "imaps"),
               extra_config="connections_per_ip_max = %d\nconnections_max = %d\n%s" % (
                   a.idle + 1000, a.idle + 1000,
                   "auth_cache_ttl = 0\n" if a.auth_cache == "off" else ""))
    with open(d.conf) as f:
        text = f.read()
    with open(d.conf, "w") as f:
        f.write(text.replace("log_level = debug", "log_level = warn").replace(
            "allow_plaintext_auth_on_loopback = no", "allow_plaintext_auth_on_loopback = yes"))
    d.add_user("m0@" + DOMAIN, PASSWORD)
    users_file = os.path.join(d.data, "users")
    with open(users_file) as f:
        hash_ = [ln.split()[1] for ln in f if ln.startswith("m0@")][0]
    with open(users_file, "a") as f:
        for u in all_users(a)[1:]:
            f.write("%s %s\n" % (u, hash_))
    print(" Postern: writing the Maildirs ...", flush=True)
    fill_users(lambda u: os.path.join(d.data, "mail", DOMAIN, u.split("@")[0]), a, corpus)
    for u in ("big@" + DOMAIN, "search@" + DOMAIN):
        d.cli("reindex", u)
    with d:
        return measure(d.port("imap"), d.port("imaps"), d.proc.pid, a, corpus), hash_, d


DOVECOT_CONF = """\
base_dir = {tmp}/run
state_dir = {tmp}/state
log_path = {tmp}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {uid}
mail_location = maildir:~/Maildir
default_client_limit = {clients}
default_process_limit = {procs}
default_vsz_limit = 0
mail_max_userip_connections = 100
passdb {{
  driver = passwd-file
  args = scheme=CRYPT {tmp}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={tmp}/home/%u
}}
service imap {{
  process_limit = {procs}
}}
service imap-login {{
  process_limit = {procs}
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {ports}
    ssl = yes
  }}
}}
"""


# COMPRESS=DEFLATE in Debian's Dovecot 2.3: the imap_zlib plugin (it needs
# the zlib plugin loaded too); without it Dovecot does not offer COMPRESS.
DOVECOT_COMPRESS = """\
mail_plugins = $mail_plugins zlib
protocol imap {
  mail_plugins = $mail_plugins imap_zlib
}
"""


class DovecotServer:
    """Debian's Dovecot on 127.0.0.1 high ports from a temporary directory
    (DOVECOT_CONF), for users sharing one password hash; fill(mail_of)
    writes the Maildirs before it starts (mail_of(user) is the user's
    Maildir path); extra_conf is appended to the configuration.  A
    context manager: .port, .ports (IMAPS), .pid; None from start() with
    .error set when Dovecot is missing or fails."""

    def __init__(self, users, hash_, fill, clients=1000, procs=1000, extra_conf=""):
        self.users, self.hash, self.fill = users, hash_, fill
        self.clients, self.procs = clients, procs
        self.extra_conf = extra_conf
        self.error = None
        self.proc = None
        self.tmp = None

    def log_tail(self):
        return tail(os.path.join(self.tmp, "dovecot.log")) if self.tmp else ""

    def start(self):
        if not os.path.exists(DOVECOT) or not os.path.exists("/usr/lib/dovecot/imap"):
            self.error = "Dovecot IMAP not installed (apt-get install dovecot-imapd)"
            return None
        tmp = self.tmp = tempfile.mkdtemp(prefix="imap-bench-dv-")
        os.chmod(tmp, 0o755)
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
        self.port, self.ports = free_port(), free_port()
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        key, "-out", cert, "-days", "2", "-subj", "/CN=localhost"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        conf = os.path.join(tmp, "dovecot.conf")
        with open(conf, "w") as f:
            f.write(DOVECOT_CONF.format(tmp=tmp, cert=cert, key=key, uid=uid, gid=gid,
                                        clients=self.clients, procs=self.procs,
                                        port=self.port, ports=self.ports))
            f.write(self.extra_conf)
        with open(os.path.join(tmp, "passwd"), "w") as f:
            for u in self.users:
                f.write("%s:%s\n" % (u, self.hash))
        home = os.path.join(tmp, "home")
        print(" Dovecot: writing the Maildirs ...", flush=True)
        self.fill(lambda u: os.path.join(home, u, "Maildir"))
        chown_tree(home, uid, gid)
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.pid = self.proc.pid
        if not wait_port(self.port, proc=self.proc):
            self.error = "Dovecot did not start: %s" % self.log_tail()
            self.stop()
            return None
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        return False


def run_dovecot(a, hash_, corpus):
    dv = DovecotServer(all_users(a), hash_, lambda mail_of: fill_users(mail_of, a, corpus),
                       clients=4 * a.idle + 1000, procs=2 * a.idle + 1000,
                       extra_conf=("auth_cache_size = 10M\nauth_cache_ttl = 1 hour\n"
                                   if a.auth_cache == "on" else "") +
                       (DOVECOT_COMPRESS if a.compress else ""))
    with dv as server:
        if server is None:
            return None, dv.error
        try:
            return measure(dv.port, dv.ports, dv.pid, a, corpus), None
        except Exception as e:  # report, do not hide Postern's numbers
            return None, "Dovecot run failed: %r %s" % (e, dv.log_tail())


def tail(path, n=1500):
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")
    except OSError:
        return ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("postern")
    ap.add_argument("--clients", default="10,50")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--big", type=int, default=100000)
    ap.add_argument("--search", type=int, default=10000)
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--auth-cache", choices=("default", "on", "off"), default="default",
                    help="default: each server's own default (Postern caches verified "
                    "passwords for 1h, Debian's Dovecot does not); on/off: both alike")
    ap.add_argument("--compress", action="store_true",
                    help="COMPRESS=DEFLATE (RFC 4978) on every connection, both servers")
    a = ap.parse_args()
    a.clients_list = [int(x) for x in a.clients.split(",")]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    corpus = os.path.join(shared_dir(), "corpus", "messages")
    if not os.path.isdir(corpus):
        print("corpus not found at %s: BODYSTRUCTURE run skipped" % corpus)
        corpus = None
    t0 = time.time()
    pres, hash_, _ = run_postern(os.path.abspath(a.postern), a, corpus)
    dres, why = run_dovecot(a, hash_, corpus)

    print("\nIMAP benchmark on 127.0.0.1, %d CPUs%s" % (
        os.cpu_count(), ", COMPRESS=DEFLATE on every connection" if a.compress else ""))
    if why:
        print("Dovecot: not measured: " + why)
    rows = [("mixed load, %d clients: commands/s" % n, "mix%d" % n, 0, True)
            for n in a.clients_list]
    rows += [("SELECT + UID FETCH 1:* (FLAGS), %d msgs: s" % a.big, "big", 0, False),
             ("20 x FETCH 1:* BODYSTRUCTURE, corpus: s", "bs", 0, False),
             ("SEARCH BODY, %d msgs: s" % a.search, "search", 0, False),
             ("PSS KiB per TLS IDLE session (%d)" % a.idle, "idle", 0, False)]
    print("%-48s %12s %12s %16s" % ("", "Postern", "Dovecot", "Postern better by"))
    for name, key, idx, higher in rows:
        p = pres.get(key)
        dv = (dres or {}).get(key)
        if isinstance(p, tuple):
            p = p[idx]
        if isinstance(dv, tuple):
            dv = dv[idx]
        better = "-"
        if p and dv:
            better = "%.2fx" % (p / dv if higher else dv / p)
        print("%-48s %12s %12s %16s" % (name, "%.3f" % p if p is not None else "-",
                                         "%.3f" % dv if dv is not None else "-", better))
    if "idle" in pres:
        print("Postern: %d KiB for %d idle TLS sessions" % (pres["idle"][1], pres["idle"][2]))
    if dres and "idle" in dres:
        print("Dovecot: %d KiB for %d idle TLS sessions" % (dres["idle"][1], dres["idle"][2]))
    print("elapsed %.0f s" % (time.time() - t0))


if __name__ == "__main__":
    main()
