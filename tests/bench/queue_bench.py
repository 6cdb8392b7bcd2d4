"""Outbound relay throughput: Postern next to Postfix, side by side.

Each server accepts N messages of 4 KiB (default 5,000) from 10 parallel
sessions and relays them to Postfix's smtp-sink on loopback, spread over
10 destination domains (d0.bench.test ... d9.bench.test).  The clock runs
from the first submission until the sink has counted every message.

  Postern  submission listener (plaintext, AUTH PLAIN on loopback), the
           durable queue, MX look-ups against a dnsmasq on a high port
           (dns_resolver), outbound_port = the sink's port;
  Postfix  postfix -c DIR/etc start with our own main.cf/master.cf
           (queue in DIR/spool, inet_interfaces = 127.0.0.1), clients in
           mynetworks may relay; transport_maps send each domain to
           [127.0.0.1]:SINK, so Postfix does no DNS look-ups at all.

The same Python injector (smtplib, one connection per session, many
messages each) feeds both.  The system's own Postfix is never touched.
Reported, not asserted; not run by CTest.  Use a build without sanitizers.

Usage: queue_bench.py /path/to/postern [--messages N] [--sessions 10]
"""
import argparse
import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postern_test import Daemon, free_port, wait_port  # noqa: E402
# The same Postfix services as the inbound bench (its lmtp line is unused here).
from postfix_private import MAIN_CF_HEAD, MASTER_CF  # noqa: E402

DOMAINS = ["d%d.bench.test" % i for i in range(10)]
SIZE = 4096
USER, PASSWORD = "bench@example.test", "bench-password-1"
RUN_TIMEOUT = 900


class Sink:
    """smtp-sink -c; counts messages from its running counter output."""

    def __init__(self, port):
        exe = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        args = [exe, "-c"] + (["-u", "nobody"] if os.geteuid() == 0 else []) + \
            ["127.0.0.1:%d" % port, "256"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.count = 0
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()
        wait_port(port)

    def read(self):
        buf = b""
        while True:
            chunk = self.proc.stdout.read1(4096)
            if not chunk:
                return
            buf = (buf + chunk)[-256:]
            found = re.findall(rb"mesg=(\d+)", buf)
            if found:
                self.count = int(found[-1])

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def message(i):
    head = ("From: %s\r\nTo: u%d@%s\r\nSubject: bench %d\r\n\r\n"
            % (USER, i, DOMAINS[i % 10], i)).encode()
    return head + (b"x" * 76 + b"\r\n") * ((SIZE - len(head)) // 78)


def inject(port, messages, sessions, login):
    errors = []

    def worker(k):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
                if login:
                    s.login(USER, PASSWORD)
                for i in range(k, messages, sessions):
                    s.sendmail(USER, ["u%d@%s" % (i, DOMAINS[i % 10])], message(i))
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(sessions)]
    for t in threads:
        t.start()
    return threads, errors


def timed(sink, port, messages, sessions, login):
    before = sink.count
    t0 = time.time()
    threads, errors = inject(port, messages, sessions, login)
    while sink.count - before < messages:
        if time.time() - t0 > RUN_TIMEOUT or (errors and not any(t.is_alive() for t in threads)):
            print("   stopped: %d of %d at the sink; %s" % (sink.count - before, messages,
                                                          errors[:3]))
            return None
        time.sleep(0.02)
    elapsed = time.time() - t0
    for t in threads:
        t.join()
    return elapsed


def postern_bench(postern, sink_port, dns_port, messages, sessions):
    extra = ("outbound_port = %d\ndns_resolver = 127.0.0.1:%d\n"
             "allow_plaintext_auth_on_loopback = yes\nlog_level = info\n"
             % (sink_port, dns_port))
    d = Daemon(postern, roles=("submission",), extra_config=extra, tls=False)
    # the harness writes log_level = debug and allow... = no first; ours win
    # only if not duplicated, so rewrite the file without them
    with open(d.conf) as f:
        text = f.read()
    text = text.replace("log_level = debug\n", "").replace(
        "allow_plaintext_auth_on_loopback = no\n", "")
    with open(d.conf, "w") as f:
        f.write(text)
    with d:
        d.add_user(USER, PASSWORD)
        return timed(SINK, d.port("submission"), messages, sessions, True)


MAIN_CF = MAIN_CF_HEAD + """\
myhostname = postfix-bench.example.test
mydomain = example.test
myorigin = $mydomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
transport_maps = inline:{{ {transports} }}
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


def postfix_bench(tmp, sink_port, messages, sessions):
    if not os.path.exists("/usr/sbin/postfix"):
        print("Postfix not installed: apt-get install postfix")
        return None
    if os.geteuid() != 0:
        print("Postfix needs root to start")
        return None
    base = os.path.join(tmp, "postfix")
    etc, spool, data = (os.path.join(base, x) for x in ("etc", "spool", "data"))
    for d in (etc, spool, data):
        os.makedirs(d, exist_ok=True)
    shutil.chown(data, "postfix", "postfix")
    os.chmod(base, 0o755)
    os.chmod(tmp, 0o755)
    port = free_port()
    transports = ", ".join("%s=smtp:[127.0.0.1]:%d" % (dom, sink_port) for dom in DOMAINS)
    with open(os.path.join(etc, "main.cf"), "w") as f:
        f.write(MAIN_CF.format(etc=etc, spool=spool, data=data, transports=transports,
                               log=os.path.join(base, "postfix.log"), base=base))
    with open(os.path.join(etc, "master.cf"), "w") as f:
        f.write(MASTER_CF.format(port=port))
    p = subprocess.run(["postfix", "-c", etc, "start"], capture_output=True, timeout=60)
    if p.returncode != 0 or not wait_port(port):
        print("Postfix did not start: %s %s" % (p.stderr.decode(errors="replace")[-500:],
                                                p.stdout.decode(errors="replace")[-500:]))
        return None
    try:
        return timed(SINK, port, messages, sessions, False)
    finally:
        subprocess.run(["postfix", "-c", etc, "stop"], capture_output=True, timeout=60)


def start_dns(tmp, port):
    exe = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    args = [exe, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
            "--port=%d" % port, "--listen-address=127.0.0.1", "--bind-interfaces",
            "--pid-file=" + os.path.join(tmp, "dnsmasq.pid"),
            "--host-record=mx.bench.test,127.0.0.1"]
    args += ["--mx-host=%s,mx.bench.test,10" % dom for dom in DOMAINS]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    return proc


SINK = None


def main():
    global SINK
    ap = argparse.ArgumentParser()
    ap.add_argument("postern")
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--sessions", type=int, default=10)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="postern-queue-bench-")
    sink_port, dns_port = free_port(), free_port()
    dns = start_dns(tmp, dns_port)
    SINK = Sink(sink_port)
    results = {}
    try:
        print(" Postern: %d messages, %d sessions, 10 domains ..." % (args.messages, args.sessions))
        results["Postern"] = postern_bench(args.postern, sink_port, dns_port, args.messages,
                                           args.sessions)
        print(" Postfix: %d messages, %d sessions, 10 domains ..." % (args.messages, args.sessions))
        results["Postfix"] = postfix_bench(tmp, sink_port, args.messages, args.sessions)
    finally:
        SINK.close()
        dns.terminate()
        dns.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n%-8s %10s %10s" % ("server", "seconds", "msg/s"))
    for name, secs in results.items():
        print("%-8s %10s %10s" % (name, "%.2f" % secs if secs else "n/a",
                                  "%.1f" % (args.messages / secs) if secs else "n/a"))
    if results.get("Postern") and results.get("Postfix"):
        print("Postern / Postfix throughput: %.2f" % (results["Postfix"] / results["Postern"]))


if __name__ == "__main__":
    main()
