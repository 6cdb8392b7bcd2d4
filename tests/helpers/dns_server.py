"""dnsmasq (Debian's dnsmasq-base) on a loopback port, serving only the
records a test gives it: MX and A records for the outbound queue's tests
(smtp_queue.py), TXT records for the inbound checks (smtp_inbound.py).

    dns = start_dnsmasq(tmp, port, ["--mx-host=a.test,mx.a.test,10",
                                    "--txt-record=a.test,v=spf1 -all"])
    ... dns_resolver = 127.0.0.1:PORT in the daemon's configuration ...
    stop_dnsmasq(dns)

Skips the test (exit 77) when dnsmasq is not installed."""
import os
import shutil
import subprocess
import time

from postern_test import skip


def txt_record(name, text):
    """A --txt-record option; text longer than 255 octets is split into
    character-strings (RFC 1035 §3.3.14), which resolvers join again.  On
    dnsmasq's command line a comma separates strings and quotes are kept
    literally, so text must hold no comma."""
    if "," in text:
        raise ValueError("dnsmasq cannot serve a comma in a TXT string: %r" % text)
    parts = [text[i:i + 255] for i in range(0, len(text), 255)] or [""]
    return "--txt-record=%s,%s" % (name, ",".join(parts))


def start_dnsmasq(tmp, port, records, listen="127.0.0.1"):
    """listen: 127.0.0.1, or ::1 (its pid and log files get a -v6 suffix)."""
    exe = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    if not os.path.exists(exe):
        skip("dnsmasq is not installed (apt-get install dnsmasq-base)")
    tag = "" if listen == "127.0.0.1" else "-v6"
    args = [exe, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
            "--port=%d" % port, "--listen-address=" + listen, "--bind-interfaces",
            "--pid-file=" + os.path.join(tmp, "dnsmasq%s.pid" % tag),
            "--log-facility=" + os.path.join(tmp, "dnsmasq%s.log" % tag), "--log-queries"]
    proc = subprocess.Popen(args + list(records), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    if proc.poll() is not None:
        raise AssertionError("dnsmasq did not start")
    return proc


def stop_dnsmasq(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
