"""systemd's Type=notify protocol without systemd: NOTIFY_SOCKET points at
a unix datagram socket this test owns (a path, then a name in the abstract
namespace); READY=1 must arrive once the ports accept connections, then
RELOADING=1 and READY=1 around SIGHUP, STOPPING=1 on SIGTERM.  And
conf/postern.service passes `systemd-analyze verify` with no warning."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

from postern_test import Daemon, Results

POSTERN = os.path.abspath(sys.argv[1])
SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
r = Results()


def datagrams(sock, want, timeout=20):
    """Datagrams until one equals want (or the timeout); the list."""
    got = []
    sock.settimeout(timeout)
    try:
        while want not in got:
            got.append(sock.recv(4096).decode(errors="replace"))
    except socket.timeout:
        pass
    return got


def ports_accept(d):
    for role, port in d.ports.items():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except OSError:
            return False
    return True


def run(address, bind_to, label):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(bind_to)
    os.environ["NOTIFY_SOCKET"] = address
    d = Daemon(POSTERN, roles=("imap", "pop3s"))
    try:
        d.logf = open(d.log_path, "ab")
        d.proc = subprocess.Popen([d.postern, "-c", d.conf, "serve"], stdout=d.logf,
                                  stderr=d.logf, stdin=subprocess.DEVNULL)
        got = datagrams(sock, "READY=1")
        r.check(got == ["READY=1"], "%s: READY=1 received: %s" % (label, got))
        r.check(ports_accept(d), "%s: every port accepts once READY=1 arrived" % label)
        d.proc.send_signal(signal.SIGHUP)
        got = datagrams(sock, "READY=1")
        r.check(got == ["RELOADING=1", "READY=1"],
                "%s: SIGHUP: RELOADING=1 then READY=1: %s" % (label, got))
        d.proc.send_signal(signal.SIGTERM)
        got = datagrams(sock, "STOPPING=1")
        r.check(got == ["STOPPING=1"], "%s: SIGTERM: STOPPING=1: %s" % (label, got))
        r.check(d.proc.wait(timeout=20) == 0, "%s: exit 0" % label)
    finally:
        del os.environ["NOTIFY_SOCKET"]
        d.stop()
        sock.close()
        shutil.rmtree(d.dir, ignore_errors=True)


with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "notify.sock")
    run(path, path, "path")
name = "postern-test-%d" % os.getpid()
run("@" + name, "\0" + name, "abstract")

# A NOTIFY_SOCKET nobody listens on is not fatal: logged, and serving goes on.
os.environ["NOTIFY_SOCKET"] = "/nonexistent/notify.sock"
try:
    d = Daemon(POSTERN, roles=("imap",), keep_dir=True)
    with d:
        r.check(ports_accept(d), "no listener on NOTIFY_SOCKET: still serving")
    r.check("cannot send READY=1" in d.log(), "no listener on NOTIFY_SOCKET: logged")
finally:
    del os.environ["NOTIFY_SOCKET"]
    shutil.rmtree(d.dir, ignore_errors=True)

unit = os.path.join(SRC, "conf", "postern.service")
text = open(unit).read()
for key in ("Type=notify", "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=",
            "PrivateTmp=yes", "ProtectHome=yes", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"):
    r.check(("\n" + key) in text, "postern.service: " + key)
if shutil.which("systemd-analyze"):
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "postern.service")
        with open(copy, "w") as f:
            f.write(text.replace("/usr/local/sbin/postern", POSTERN))
        res = subprocess.run(["systemd-analyze", "verify", copy], capture_output=True,
                             text=True, timeout=60)
        r.check(res.returncode == 0 and res.stdout.strip() == "" and res.stderr.strip() == "",
                "postern.service: systemd-analyze verify is silent: %s%s"
                % (res.stdout, res.stderr))
else:
    print("systemd-analyze not installed: unit not verified")

r.finish()
