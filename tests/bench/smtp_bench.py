"""Inbound SMTP throughput: Postern next to Postfix + Dovecot LMTP.

Both are loaded with Postfix's smtp-source (10, then 50 parallel sessions,
4 KiB messages, 5,000 messages per run, several messages per connection
with -d so that Postern's 1 s pregreet delay on port 25 is paid once per
session) and timed until every message is durable in the Maildir: Postern
answers 250 only after that; Postfix queues, then hands each message to
Dovecot's LMTP, which writes the Maildir (mail_fsync = optimized).

Everything runs on 127.0.0.1 high ports from a temporary directory:
  Postfix: postfix -c DIR/etc start, with our own main.cf/master.cf
  (inet_interfaces = 127.0.0.1, no chroot), queue in DIR/spool;
  Dovecot: dovecot -F -c DIR/dovecot.conf, LMTP only.
The system's own Postfix and Dovecot services are never touched.  When
Postfix, Dovecot or smtp-source are missing, this installs them with
apt-get (DEBIAN_FRONTEND=noninteractive); when they cannot run, it says why
and still reports Postern.  Reported, not asserted; not run by CTest.

Usage: smtp_bench.py /path/to/postern [--messages N] [--sessions 10,50]
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


def smtp_source(port, sessions, messages, rcpt):
    exe = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    return subprocess.Popen([exe, "-d", "-s", str(sessions), "-m", str(messages),
                             "-l", str(SIZE), "-f", "bench-sender@outside.test",
                             "-t", rcpt, "-M", "bench-client.test", "127.0.0.1:%d" % port],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def run_load(port, sessions, messages, rcpt, maildir):
    """Seconds until `messages` new files are in maildir, or None."""
    before = count_new(maildir)
    t0 = time.time()
    src = smtp_source(port, sessions, messages, rcpt)
    while True:
        n = count_new(maildir) - before
        if n >= messages:
            break
        if time.time() - t0 > RUN_TIMEOUT:
            src.kill()
            print("   timeout: %d of %d delivered" % (n, messages))
            return None
        if src.poll() is not None and src.returncode != 0:
            print("   smtp-source failed: %s" % src.stdout.read().decode(errors="replace")[-500:])
            return None
        time.sleep(0.02)
    elapsed = time.time() - t0
    src.wait(timeout=60)
    return elapsed


# ---- Postern ---------------------------------------------------------------

def postern_bench(postern, tmp, runs, messages):
    port = free_port()
    data = os.path.join(tmp, "postern-data")
    conf = os.path.join(tmp, "postern.conf")
    with open(conf, "w") as f:
        f.write("hostname = bench.%s\ndata_dir = %s\ndomains = %s\nlog_level = info\n"
                "listener smtp {\n  role = smtp\n  address = 127.0.0.1\n  port = %d\n"
                "  tls = none\n}\n" % (DOMAIN, data, DOMAIN, port))
    users = ["bench%d@%s" % (s, DOMAIN) for s in runs]
    for u in users:
        subprocess.run([postern, "-c", conf, "user", "add", u, "--password-stdin"],
                       input=b"bench-password\n", check=True, capture_output=True)
    log = open(os.path.join(tmp, "postern.log"), "wb")
    proc = subprocess.Popen([postern, "-c", conf, "serve"], stdout=log, stderr=log)
    results = {}
    try:
        if not wait_port(port, proc=proc):
            print("Postern did not start; see %s" % log.name)
            return results
        for sessions, user in zip(runs, users):
            local = user.split("@")[0]
            maildir = os.path.join(data, "mail", DOMAIN, local)
            print(" Postern: %d sessions, %d messages ..." % (sessions, messages))
            results[sessions] = run_load(port, sessions, messages, user, maildir)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    return results


# ---- Postfix + Dovecot --------------------------------------------------------

MASTER_CF = """\
{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
config_directory = {etc}
queue_directory = {spool}
data_directory = {data}
meta_directory = /etc/postfix
daemon_directory = /usr/lib/postfix/sbin
command_directory = /usr/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
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


def postfix_bench(tmp, runs, messages):
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
        for sessions in runs:
            rcpt = "bench%d@%s" % (sessions, DOMAIN)
            maildir = os.path.join(mail, DOMAIN, "bench%d" % sessions)
            print(" Postfix+Dovecot: %d sessions, %d messages ..." % (sessions, messages))
            results[sessions] = run_load(smtp_port, sessions, messages, rcpt, maildir)
            if results[sessions] is None:
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
    args = ap.parse_args()
    runs = [int(x) for x in args.sessions.split(",")]
    if shutil.which("smtp-source") is None and not os.path.exists("/usr/sbin/smtp-source"):
        reason = ensure_tools()
        if reason:
            print("smtp-source (package postfix) is needed: " + reason)
            return 1
    tmp = tempfile.mkdtemp(prefix="postern-smtp-bench-")
    try:
        ours = postern_bench(os.path.abspath(args.postern), tmp, runs, args.messages)
        theirs = postfix_bench(tmp, runs, args.messages)
        print()
        print("SMTP inbound, %d messages of %d bytes, smtp-source -d, until durable in the Maildir"
              % (args.messages, SIZE))
        print("%-9s %14s %14s %8s" % ("sessions", "Postern msg/s", "Postfix msg/s", "ratio"))
        for s in runs:
            a = ours.get(s)
            b = (theirs or {}).get(s)
            ratio = "%7.2fx" % ((args.messages / a) / (args.messages / b)) if a and b else "     n/a"
            print("%-9d %14s %14s %8s" % (s, rate(args.messages, a), rate(args.messages, b), ratio))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
