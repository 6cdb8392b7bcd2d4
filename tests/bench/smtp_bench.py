"""Inbound SMTP throughput: Postern next to Postfix + Dovecot LMTP.

Both are loaded with Postfix's smtp-source, 4 KiB messages, 5,000 messages
per run, in the shapes real traffic has, side by side in one run:
  conn  one message per connection (how an MX is fed: lists, notification
        services, cron, another relay);
  -d    many messages per connection (smtp-source -d);
each with 10 and 50 parallel sessions, into an INBOX that starts empty and
into one that starts with 50,000 messages (written into the Maildir and
indexed before the clock starts).

The clock stops when every message is durable, not when its file appears:
  Postern  answers 250 only after the file, its directory and the index
           commit are on disk, so the run ends when smtp-source has all its
           250s (and the files are checked to be there);
  Postfix  queues the message, then hands it to Dovecot's LMTP, which
           answers 250 after writing and fsyncing the Maildir file
           (mail_fsync = optimized); the run ends when Postfix has logged
           status=sent for every message.

Everything runs on 127.0.0.1 high ports from a temporary directory:
  Postfix: postfix -c DIR/etc start, with our own main.cf/master.cf
  (inet_interfaces = 127.0.0.1, no chroot), queue in DIR/spool;
  Dovecot: dovecot -F -c DIR/dovecot.conf, LMTP only.
The system's own Postfix and Dovecot services are never touched.  When
Postfix, Dovecot or smtp-source are missing, this installs them with
apt-get (DEBIAN_FRONTEND=noninteractive); when they cannot run, it says why
and still reports Postern.  Reported, not asserted; not run by CTest.

Usage: smtp_bench.py /path/to/postern [--messages N] [--sessions 10,50]
                     [--prefill 50000] [--shapes conn,d]
(use a build without sanitizers for meaningful numbers)
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import free_port, wait_port  # noqa: E402
from postfix_private import MAIN_CF_HEAD, MASTER_CF  # noqa: E402

DOMAIN = "example.test"
SIZE = 4096
RUN_TIMEOUT = 900


def count_new(maildir):
    n = 0
    for sub in ("new", "cur"):
        try:
            n += len(os.listdir(os.path.join(maildir, sub)))
        except OSError:
            pass
    return n


def ensure_tools():
    """Install what is missing; returns a reason string when impossible."""
    missing = [p for p, exe in (("postfix", "/usr/sbin/postfix"),
                                ("dovecot-lmtpd", "/usr/lib/dovecot/lmtp"))
               if not os.path.exists(exe)]
    if not missing:
        return None
    if os.geteuid() != 0:
        return "missing %s and not root to install them" % " ".join(missing)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # On a machine with services the packages' own start is refused by
    # policy-rc.d; we never start or stop the system's instances.
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "postfix", "dovecot-lmtpd"]):
        p = subprocess.run(cmd, env=env, capture_output=True, timeout=900)
        if p.returncode != 0:
            return "%s failed: %s" % (" ".join(cmd), p.stderr.decode(errors="replace")[-300:])
    return None


def smtp_source(port, sessions, messages, rcpt, shape):
    exe = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    args = [exe] + (["-d"] if shape == "d" else []) + [
        "-s", str(sessions), "-m", str(messages), "-l", str(SIZE),
        "-f", "bench-sender@outside.test", "-t", rcpt, "-M", "bench-client.test",
        "127.0.0.1:%d" % port]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def prefill(maildir, n):
    """n messages of SIZE bytes written straight into maildir/new (the same
    bytes for both servers), as another tool or a migration would."""
    new = os.path.join(maildir, "new")
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
    head = b"From: prefill@outside.test\r\nTo: bench@example.test\r\nSubject: old %d\r\n\r\n"
    for i in range(n):
        h = head % i
        body = (b"x" * 76 + b"\r\n") * ((SIZE - len(h)) // 78)
        with open(os.path.join(new, "%d.M%dP1.prefill" % (1500000000 + i, i)), "wb") as f:
            f.write(h + body)


class Run:
    """One load: (shape, sessions, prefilled)."""

    def __init__(self, shape, sessions, full):
        self.shape, self.sessions, self.full = shape, sessions, full  # full: prefilled count

    def local(self):
        return "full" if self.full else "b%s%d" % (self.shape, self.sessions)

    def label(self):
        return "%-4s %2d sessions, INBOX %s" % (
            "conn" if self.shape == "conn" else "-d", self.sessions,
            "%dk" % (self.full // 1000) if self.full else "empty")


def wait_source(src, t0):
    """smtp-source's exit; None (with its output printed) on failure."""
    try:
        out = src.communicate(timeout=RUN_TIMEOUT)[0]
    except subprocess.TimeoutExpired:
        src.kill()
        print("   timeout")
        return None
    if src.returncode != 0:
        print("   smtp-source failed: %s" % out.decode(errors="replace")[-500:])
        return None
    return time.time() - t0


# ---- Postern ---------------------------------------------------------------

def postern_bench(postern, tmp, runs, messages, prefilled):
    port = free_port()
    data = os.path.join(tmp, "postern-data")
    conf = os.path.join(tmp, "postern.conf")
    with open(conf, "w") as f:
        f.write("hostname = bench.%s\ndata_dir = %s\ndomains = %s\nlog_level = warn\n"
                "listener smtp {\n  role = smtp\n  address = 127.0.0.1\n  port = %d\n"
                "  tls = none\n}\n" % (DOMAIN, data, DOMAIN, port))
    for local in sorted({r.local() for r in runs}):
        subprocess.run([postern, "-c", conf, "user", "add", "%s@%s" % (local, DOMAIN),
                        "--password-stdin"], input=b"bench-password\n", check=True,
                       capture_output=True)
    if any(r.full for r in runs):
        print(" Postern: prefilling an INBOX with %d messages and indexing it ..." % prefilled)
        prefill(os.path.join(data, "mail", DOMAIN, "full"), prefilled)
        subprocess.run([postern, "-c", conf, "reindex", "full@" + DOMAIN], check=True,
                       capture_output=True)
    log = open(os.path.join(tmp, "postern.log"), "wb")
    proc = subprocess.Popen([postern, "-c", conf, "serve"], stdout=log, stderr=log)
    results = {}
    try:
        if not wait_port(port, proc=proc):
            print("Postern did not start; see %s" % log.name)
            return results
        for r in runs:
            maildir = os.path.join(data, "mail", DOMAIN, r.local())
            before = count_new(maildir)
            print(" Postern: %s, %d messages ..." % (r.label(), messages))
            t0 = time.time()
            secs = wait_source(smtp_source(port, r.sessions, messages,
                                           "%s@%s" % (r.local(), DOMAIN), r.shape), t0)
            got = count_new(maildir) - before
            if secs is not None and got != messages:
                print("   %d of %d messages in the Maildir after the last 250" % (got, messages))
                secs = None
            results[r] = secs
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    return results


class SentCounter:
    """Counts Postfix's status=sent log lines (one per message handed to
    Dovecot's LMTP and acknowledged), reading the log incrementally."""

    def __init__(self, path):
        self.path, self.offset, self.count, self.rest = path, 0, 0, b""

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return self.count
        self.offset += len(chunk)
        data = self.rest + chunk
        lines = data.split(b"\n")
        self.rest = lines.pop()
        self.count += sum(1 for ln in lines if b" status=sent " in ln)
        return self.count


def postfix_run(port, r, messages, sent):
    before = sent.poll()
    t0 = time.time()
    src = smtp_source(port, r.sessions, messages, "%s@%s" % (r.local(), DOMAIN), r.shape)
    while sent.poll() - before < messages:
        if time.time() - t0 > RUN_TIMEOUT:
            src.kill()
            print("   timeout: %d of %d delivered" % (sent.poll() - before, messages))
            return None
        if src.poll() is not None and src.returncode != 0:
            print("   smtp-source failed: %s" % src.stdout.read().decode(errors="replace")[-500:])
            return None
        time.sleep(0.01)
    elapsed = time.time() - t0
    src.wait(timeout=60)
    return elapsed


# ---- Postfix + Dovecot --------------------------------------------------------


MAIN_CF = MAIN_CF_HEAD + """\
myhostname = postfix-bench.{domain}
mydomain = {domain}
myorigin = $mydomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = {domain}
virtual_transport = lmtp:inet:127.0.0.1:{lmtp}
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
local_recipient_maps =
smtputf8_enable = no
biff = no
maillog_file = {log}
maillog_file_prefixes = {base}
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_connection_rate_limit = 0
in_flow_delay = 0
"""

DOVECOT_CONF = """\
base_dir = {run}
state_dir = {state}
instance_name = dovecot-bench-{port}
protocols = lmtp
listen = 127.0.0.1
log_path = {log}
ssl = no
mail_location = maildir:{mail}/%d/%n
mail_fsync = optimized
first_valid_uid = 1
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={mail}/%d/%n
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
  unix_listener lmtp {{
    mode = 0600
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


def postfix_bench(tmp, runs, messages, prefilled):
    reason = ensure_tools()
    if reason:
        print("Postfix/Dovecot not available: " + reason)
        return None
    base = os.path.join(tmp, "postfix")
    etc, spool, data = (os.path.join(base, x) for x in ("etc", "spool", "data"))
    mail = os.path.join(base, "mail")
    for d in (etc, spool, data, mail, os.path.join(base, "dovecot-run"),
              os.path.join(base, "dovecot-state")):
        os.makedirs(d, exist_ok=True)
    shutil.chown(data, "postfix", "postfix")
    shutil.chown(mail, "nobody", "nogroup")
    os.chmod(base, 0o755)
    os.chmod(tmp, 0o755)
    smtp_port, lmtp_port = free_port(), free_port()
    with open(os.path.join(etc, "main.cf"), "w") as f:
        f.write(MAIN_CF.format(etc=etc, spool=spool, data=data, domain=DOMAIN, lmtp=lmtp_port,
                               log=os.path.join(base, "postfix.log"), base=base))
    with open(os.path.join(etc, "master.cf"), "w") as f:
        f.write(MASTER_CF.format(port=smtp_port))
    dconf = os.path.join(base, "dovecot.conf")
    with open(dconf, "w") as f:
        f.write(DOVECOT_CONF.format(run=os.path.join(base, "dovecot-run"),
                                    state=os.path.join(base, "dovecot-state"),
                                    log=os.path.join(base, "dovecot.log"), mail=mail,
                                    port=lmtp_port))
    dovecot = subprocess.Popen(["dovecot", "-F", "-c", dconf], stdout=subprocess.DEVNULL,
                               stderr=open(os.path.join(base, "dovecot.err"), "wb"))
    started_postfix = False
    results = {}
    try:
        if not wait_port(lmtp_port, proc=dovecot):
            print("Dovecot LMTP did not start: %s" % tail(os.path.join(base, "dovecot.err")) +
                  tail(os.path.join(base, "dovecot.log")))
            return None
        p = subprocess.run(["postfix", "-c", etc, "start"], capture_output=True, timeout=60)
        started_postfix = p.returncode == 0
        if not started_postfix or not wait_port(smtp_port):
            print("Postfix did not start: %s %s" % (p.stderr.decode(errors="replace")[-800:],
                                                    tail(os.path.join(base, "postfix.log"))))
            return None
        sent = SentCounter(os.path.join(base, "postfix.log"))
        if any(r.full for r in runs):
            print(" Postfix+Dovecot: prefilling an INBOX with %d messages ..." % prefilled)
            box = os.path.join(mail, DOMAIN, "full")
            prefill(box, prefilled)
            subprocess.run(["chown", "-R", "nobody:nogroup", os.path.join(mail, DOMAIN)],
                           check=True)
            # One message, untimed, so that Dovecot indexes the 50,000 now
            # (dovecot-uidlist), as `postern reindex` did for Postern.
            warm = postfix_run(smtp_port, Run("d", 1, prefilled), 1, sent)
            if warm is None:
                return None
        for r in runs:
            print(" Postfix+Dovecot: %s, %d messages ..." % (r.label(), messages))
            results[r] = postfix_run(smtp_port, r, messages, sent)
            if results[r] is None:
                print("   postfix log: " + tail(os.path.join(base, "postfix.log")))
    finally:
        if started_postfix:
            subprocess.run(["postfix", "-c", etc, "stop"], capture_output=True, timeout=60)
        dovecot.send_signal(signal.SIGTERM)
        try:
            dovecot.wait(timeout=30)
        except subprocess.TimeoutExpired:
            dovecot.kill()
    return results


def tail(path, n=600):
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")
    except OSError:
        return ""


def rate(messages, secs):
    return "%8.1f" % (messages / secs) if secs else "     n/a"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("postern")
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--sessions", default="10,50")
    ap.add_argument("--shapes", default="conn,d", help="conn: one message per connection; "
                    "d: smtp-source -d")
    ap.add_argument("--prefill", type=int, default=50000,
                    help="messages already in the INBOX for the second set of runs (0: skip)")
    args = ap.parse_args()
    runs = [Run(shape, int(s), full)
            for full in ([0, args.prefill] if args.prefill > 0 else [0])
            for shape in args.shapes.split(",")
            for s in args.sessions.split(",")]
    if shutil.which("smtp-source") is None and not os.path.exists("/usr/sbin/smtp-source"):
        reason = ensure_tools()
        if reason:
            print("smtp-source (package postfix) is needed: " + reason)
            return 1
    tmp = tempfile.mkdtemp(prefix="postern-smtp-bench-")
    try:
        ours = postern_bench(os.path.abspath(args.postern), tmp, runs, args.messages,
                             args.prefill)
        theirs = postfix_bench(tmp, runs, args.messages, args.prefill) or {}
        print()
        print("SMTP inbound, %d messages of %d bytes per run, until durable" % (
            args.messages, SIZE))
        print("%-34s %14s %14s %8s" % ("load", "Postern msg/s", "Postfix msg/s", "ratio"))
        for r in runs:
            a, b = ours.get(r), theirs.get(r)
            ratio = "%7.2fx" % (b / a) if a and b else "     n/a"
            print("%-34s %14s %14s %8s" % (r.label(), rate(args.messages, a),
                                            rate(args.messages, b), ratio))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
