"""The running daemon restricts itself with Landlock (core/sandbox.c).

Started with POSTERN_SANDBOX_PROBE naming a file, the daemon tries to open
it once the sandbox is on and logs the result: /etc/shadow (readable by
root, which runs this test) is refused, a file in data_dir opens.  With
the sandbox on, mail still arrives by SMTP and is read over IMAPS, and a
certificate replaced on disk is served after SIGHUP.  `sandbox = no`
leaves /etc/shadow reachable.  Skipped (exit 77) where the kernel has no
Landlock.  Run by ctest with the postern binary as argv[1]."""
import imaplib
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time

from postern_test import Daemon, Results, skip, tls_context

USER = "alice@example.test"
PASSWORD = "sandbox-pass-1"
SHADOW = "/etc/shadow"


def wait_log(d, text, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in d.log():
            return True
        time.sleep(0.05)
    return False


def server_cert_der(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s) as t:
            return t.getpeercert(binary_form=True)


def test_sandboxed(d, r):
    r.check(wait_log(d, "sandbox probe: %s refused" % SHADOW),
            "%s is out of reach of the running daemon" % SHADOW)
    r.check("sandbox probe: %s opened" % SHADOW not in d.log(), "and was not opened")

    with smtplib.SMTP("127.0.0.1", d.port("smtp"), timeout=20) as s:
        s.sendmail("bob@example.org", [USER],
                   b"From: bob@example.org\r\nSubject: inside the sandbox\r\n\r\nhello\r\n")
    c = imaplib.IMAP4_SSL("127.0.0.1", d.port("imaps"), ssl_context=tls_context())
    c.login(USER, PASSWORD)
    typ, data = c.select("INBOX")
    r.check(typ == "OK" and data[0] == b"1", "SMTP delivery and IMAP SELECT work: %r" % data)
    typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    r.check(typ == "OK" and b"inside the sandbox" in data[0][1], "FETCH reads the file")
    c.logout()

    # A new certificate at the same paths, read again on SIGHUP.
    before = server_cert_der(d.port("imaps"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", d.key, "-out", d.cert, "-days", "2", "-subj", "/CN=renewed"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    d.proc.send_signal(signal.SIGHUP)
    r.check(wait_log(d, "reload: certificates reloaded"), "certificates reloaded on SIGHUP")
    after = server_cert_der(d.port("imaps"))
    r.check(after != before, "the renewed certificate is served")


def main():
    postern = sys.argv[1]
    res = Results()
    os.environ["POSTERN_SANDBOX_PROBE"] = SHADOW
    with Daemon(postern, roles=("smtp", "imaps")) as d:
        if not wait_log(d, "sandbox: "):
            res.check(False, "the daemon says whether it is sandboxed")
            res.finish()
        if "sandbox: not available" in d.log():
            line = [x for x in d.log().splitlines() if "sandbox: not available" in x]
            d.stop()
            skip("this kernel has no Landlock: %s" % line[0])
        res.check("sandbox: on (Landlock ABI" in d.log(), "sandbox on by default")
        d.add_user(USER, PASSWORD)
        res.run("sandboxed", lambda: test_sandboxed(d, res))

    os.environ["POSTERN_SANDBOX_PROBE"] = SHADOW
    with Daemon(postern, roles=("smtp",), tls=False, extra_config="sandbox = no\n") as d:
        res.check(wait_log(d, "sandbox: off"), "sandbox = no is logged")
        res.check(wait_log(d, "sandbox probe: %s opened" % SHADOW),
                  "without the sandbox the same probe opens %s" % SHADOW)
    res.finish()


if __name__ == "__main__":
    main()
