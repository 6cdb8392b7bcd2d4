"""The daemon as a user meets it: `postern check` and its errors, the user
CLI, `postern demo` (files, TLS on its ports, TLS 1.1 refused, reuse of an
existing directory), SIGHUP, privilege drop when run as root, graceful
shutdown on SIGTERM, and the README's commands agreeing with .ci/run."""
import os
import pwd
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

from postern_test import Daemon, Results, wait_port

POSTERN = os.path.abspath(sys.argv[1])
SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
r = Results()


def run(*args, input=None, cwd=None):
    return subprocess.run([POSTERN] + list(args), input=input, capture_output=True,
                          timeout=120, cwd=cwd)


def available_roles():
    out = run("version").stdout.decode()
    m = re.search(r"^protocols:(.*)$", out, re.M)
    return m.group(1).split() if m else []


ROLES = available_roles()
print("protocols in this build:", ROLES or "none")

# ---- postern check -------------------------------------------------------
with tempfile.TemporaryDirectory() as tmp:
    conf = os.path.join(tmp, "p.conf")
    with open(conf, "w") as f:
        f.write("hostname = mail.example.test\ndata_dir = %s/data\n"
                "domains = example.test\nhostnme = typo\n" % tmp)
    res = run("-c", conf, "check")
    err = res.stderr.decode()
    r.check(res.returncode == 78, "check: unknown key exits 78 (got %d)" % res.returncode)
    r.check("%s:4:" % conf in err and "hostnme" in err,
            "check: error names file and line 4: " + err.strip())

    with open(conf, "w") as f:
        f.write("hostname = mail.example.test\ndata_dir = %s/data\n"
                "tls_certificate {\n cert = %s/missing.pem\n key = %s/missing.key\n}\n"
                % (tmp, tmp, tmp))
    res = run("-c", conf, "check")
    r.check(res.returncode == 78 and "missing.pem" in res.stderr.decode(),
            "check: unreadable certificate named, exit 78: " + res.stderr.decode().strip())

    res = run("-c", os.path.join(tmp, "nope.conf"), "check")
    r.check(res.returncode == 78 and "nope.conf" in res.stderr.decode(),
            "check: missing file named, exit 78")

    example = os.path.join(SRC, "conf", "postern.conf")
    res = run("-c", example, "check")
    # The example names certificates under /etc that do not exist here: its
    # syntax must pass, so the only acceptable complaint is a certificate.
    err = res.stderr.decode()
    r.check(res.returncode == 0 or (res.returncode == 78 and "postern.conf:" not in err),
            "check: the example configuration parses: " + err.strip())

    res = run("bogus")
    r.check(res.returncode == 64, "unknown subcommand exits 64")
    res = run("-c", conf, "queue", "list")
    r.check(res.returncode == 0 and "queue is empty" in res.stdout.decode(),
            "queue list: an empty queue, exit 0")
    res = run("-c", conf, "queue", "frobnicate")
    r.check(res.returncode == 64, "queue: unknown action exits 64")
    res = run("-c", conf, "dns", "example.test")
    r.check(res.returncode == 67, "dns: a domain this server does not serve exits 67 "
            "(dkim_verify.py checks the records themselves)")

# ---- users CLI through a daemon configuration ----------------------------
d = Daemon(POSTERN, roles=[x for x in ROLES if x in ("pop3", "imap", "smtp")][:1] or [])
try:
    d.add_user("alice@example.test", "s3cret-pass")
    res = d.cli("user", "list")
    r.check(b"alice@example.test" in res.stdout, "user list shows the new user")
    res = d.cli("user", "add", "alice@example.test", "--password-stdin", input=b"x\n", check=False)
    r.check(res.returncode != 0, "user add of an existing user fails (%d)" % res.returncode)
    res = d.cli("user", "add", "bob@other.test", "--password-stdin", input=b"pw\n", check=False)
    r.check(res.returncode != 0, "user add in a foreign domain fails (%d)" % res.returncode)
    with open(os.path.join(d.data, "users"), "a") as f:
        f.write("this line is broken\n")
    res = run("-c", d.conf, "user", "list")
    r.check(res.returncode == 78 and "users:" in res.stderr.decode(),
            "malformed users file: file:line error, exit 78: " + res.stderr.decode().strip())
finally:
    import shutil
    shutil.rmtree(d.dir, ignore_errors=True)

# ---- postern demo --------------------------------------------------------
def demo_ports(base):
    return {"smtp": base + 25, "submission": base + 587, "submissions": base + 465,
            "imap": base + 143, "imaps": base + 993, "pop3": base + 110, "pop3s": base + 995,
            "managesieve": base + 4190}


def pick_base():
    for _ in range(50):
        base = 20000 + (os.getpid() * 7919 + int(time.time() * 1000)) % 30000
        ok = True
        for p in demo_ports(base).values():
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
        if ok:
            return base
        time.sleep(0.01)
    raise RuntimeError("no free port base")


with tempfile.TemporaryDirectory() as tmp:
    ddir = os.path.join(tmp, "demo")
    base = pick_base()
    ports = demo_ports(base)
    logf = open(os.path.join(tmp, "demo.log"), "wb")
    proc = subprocess.Popen([POSTERN, "demo", "--dir", ddir, "--port-base", str(base)],
                            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        live = [role for role in ROLES if role in ports]
        ready = all(wait_port(ports[role], proc=proc) for role in live) if live else \
            (time.sleep(2) or proc.poll() is None)
        r.check(ready, "demo: listening on %s" % (live or "nothing yet (no protocol built)"))
        for name in ("postern.conf", "cert.pem", "key.pem", "demo-password", "data/users"):
            r.check(os.path.exists(os.path.join(ddir, name)), "demo: created " + name)
        r.check(os.stat(os.path.join(ddir, "key.pem")).st_mode & 0o077 == 0,
                "demo: key.pem is private")
        password = open(os.path.join(ddir, "demo-password")).read().strip()
        r.check(len(password) >= 12, "demo: random password saved")
        res = run("-c", os.path.join(ddir, "postern.conf"), "check")
        r.check(res.returncode == 0, "demo: its configuration passes check: " +
                (res.stdout + res.stderr).decode().strip())

        # The certificate names localhost and 127.0.0.1 (mbsync/Apple Mail check names).
        txt = subprocess.run(["openssl", "x509", "-in", os.path.join(ddir, "cert.pem"),
                              "-noout", "-text"], capture_output=True).stdout.decode()
        r.check("DNS:localhost" in txt and "IP Address:127.0.0.1" in txt,
                "demo: certificate subjectAltName has localhost and 127.0.0.1")

        for role in [x for x in live if x in ("imaps", "pop3s", "submissions")]:
            ctx = ssl.create_default_context(cafile=os.path.join(ddir, "cert.pem"))
            try:
                with socket.create_connection(("127.0.0.1", ports[role]), timeout=10) as s:
                    with ctx.wrap_socket(s, server_hostname="localhost") as t:
                        r.check(t.version() in ("TLSv1.2", "TLSv1.3"),
                                "demo %s: verified TLS handshake (%s)" % (role, t.version()))
            except (OSError, ssl.SSLError) as e:
                r.check(False, "demo %s: TLS handshake: %s" % (role, e))
            ctx11 = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx11.check_hostname = False
            ctx11.verify_mode = ssl.CERT_NONE
            try:
                ctx11.set_ciphers("DEFAULT:@SECLEVEL=0")
                ctx11.minimum_version = ssl.TLSVersion.TLSv1
                ctx11.maximum_version = ssl.TLSVersion.TLSv1_1
                with socket.create_connection(("127.0.0.1", ports[role]), timeout=10) as s:
                    with ctx11.wrap_socket(s) as t:
                        r.check(False, "demo %s: TLS 1.1 must be refused (got %s)" % (role, t.version()))
            except (ssl.SSLError, OSError):
                r.check(True, "demo %s: TLS 1.1 refused" % role)
            except ValueError as e:
                r.check(True, "demo %s: TLS 1.1 not even offered by this client (%s)" % (role, e))

        # SIGHUP: a renewed certificate is used by new connections, and a
        # connection opened before keeps working.
        if "pop3s" in live:
            from postern_test import tls_context

            def peer_cert(sock_port):
                with socket.create_connection(("127.0.0.1", sock_port), timeout=10) as s:
                    with tls_context().wrap_socket(s) as t:
                        return t.getpeercert(binary_form=True)

            old_cert = peer_cert(ports["pop3s"])
            held = tls_context().wrap_socket(
                socket.create_connection(("127.0.0.1", ports["pop3s"]), timeout=10))
            greeting = held.recv(512)
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", os.path.join(ddir, "key.pem"),
                            "-out", os.path.join(ddir, "cert.pem"), "-days", "2",
                            "-subj", "/CN=renewed"], check=True, capture_output=True)
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            r.check(proc.poll() is None, "demo: SIGHUP reloads without stopping")
            r.check(peer_cert(ports["pop3s"]) != old_cert,
                    "SIGHUP: new connections get the renewed certificate")
            held.sendall(b"CAPA\r\n")
            r.check(greeting.startswith(b"+OK") and held.recv(512).startswith(b"+OK"),
                    "SIGHUP: a connection opened before keeps working")
            held.close()
        else:
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            r.check(proc.poll() is None, "demo: SIGHUP reloads without stopping")
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            rc = None
        r.check(rc == 0, "demo: SIGTERM stops it with exit 0 (got %s)" % rc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        logf.close()
    out = open(os.path.join(tmp, "demo.log"), "rb").read().decode(errors="replace")
    r.check(password in out and "demo@example.test" in out, "demo: prints user and password")
    r.check(str(ports["imaps"]) in out and str(ports["pop3s"]) in out, "demo: prints its port table")

    # Run again on the same directory: same password, same certificate.
    cert_before = open(os.path.join(ddir, "cert.pem")).read()
    proc = subprocess.Popen([POSTERN, "demo", "--dir", ddir], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    out2 = proc.communicate(timeout=30)[0].decode(errors="replace")
    r.check(password in out2, "demo again: reuses the saved password")
    r.check(open(os.path.join(ddir, "cert.pem")).read() == cert_before,
            "demo again: reuses the certificate")

    # The user edits postern.conf; later runs keep the edit.  Another
    # --port-base moves only the listeners' ports, and says so.
    conf = os.path.join(ddir, "postern.conf")
    with open(conf) as f:
        edited = f.read().replace("log_level = info",
                                  "# my own note\nlog_level = debug\nsmtp_timeout = 77")
    with open(conf, "w") as f:
        f.write(edited)

    def demo_run(*extra):
        p = subprocess.Popen([POSTERN, "demo", "--dir", ddir] + list(extra),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        time.sleep(1.5)
        p.send_signal(signal.SIGTERM)
        return p.communicate(timeout=30)[0].decode(errors="replace")

    out3 = demo_run()
    r.check(open(conf).read() == edited and "reusing" in out3,
            "demo again: an edited postern.conf is reused as it is")
    base2 = pick_base()
    out4 = demo_run("--port-base", str(base2))
    after = open(conf).read()
    r.check("# my own note\nlog_level = debug\nsmtp_timeout = 77" in after,
            "demo --port-base: the user's edits stay")
    r.check(all(("port = %d" % p) in after for p in demo_ports(base2).values()) and
            not any(("port = %d" % p) in after for p in demo_ports(base).values()),
            "demo --port-base: every listener moved to base %d" % base2)
    r.check(re.sub(r"port = \d+", "port = N", after) ==
            re.sub(r"port = \d+", "port = N", edited),
            "demo --port-base: nothing but the port lines changed")
    r.check("%d listener ports moved to base %d" % (len(demo_ports(base2)), base2) in out4 and
            str(base2 + 993) in out4,
            "demo --port-base: says so, and serves there: " + out4[:300])

# ---- a port already in use ------------------------------------------------
if ROLES:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    busy = blocker.getsockname()[1]
    d = Daemon(POSTERN, roles=[ROLES[0]])
    d.ports[ROLES[0]] = busy
    with open(d.conf) as f:
        text = f.read()
    text = re.sub(r"port = \d+", "port = %d" % busy, text)
    with open(d.conf, "w") as f:
        f.write(text)
    res = run("-c", d.conf, "serve")
    r.check(res.returncode != 0 and (":%d" % busy) in res.stderr.decode(),
            "serve: a port in use is named, non-zero exit: " + res.stderr.decode().strip()[-200:])
    blocker.close()
    import shutil
    shutil.rmtree(d.dir, ignore_errors=True)

# ---- users and aliases changed by the CLI reach the running daemon at once --
if "pop3s" in ROLES and "smtp" in ROLES:
    import poplib
    import smtplib
    from postern_test import tls_context, maildir_files
    d = Daemon(POSTERN, roles=["pop3s", "smtp"])
    with d:
        d.add_user("late@example.test", "late-password-1")
        try:
            p = poplib.POP3_SSL("127.0.0.1", d.port("pop3s"), context=tls_context(), timeout=20)
            p.user("late@example.test")
            p.pass_("late-password-1")
            p.quit()
            r.check(True, "a user added while the daemon runs can log in at once")
        except poplib.error_proto as e:
            r.check(False, "a user added while the daemon runs can log in at once: %s" % e)
        d.cli("alias", "add", "sales@example.test", "late@example.test")
        try:
            with smtplib.SMTP("127.0.0.1", d.port("smtp"), timeout=20) as s:
                s.sendmail("someone@outside.test", ["sales@example.test"],
                           b"Subject: via alias\r\n\r\nhi\r\n")
            r.check(len(maildir_files(d, "late@example.test")) == 1,
                    "an alias added while the daemon runs is used at once")
        except smtplib.SMTPException as e:
            r.check(False, "an alias added while the daemon runs is used at once: %s" % e)
        d.cli("user", "passwd", "late@example.test", "--password-stdin", input=b"new-password-2\n")
        try:
            p = poplib.POP3_SSL("127.0.0.1", d.port("pop3s"), context=tls_context(), timeout=20)
            p.user("late@example.test")
            p.pass_("late-password-1")
            r.check(False, "the old password stops working after passwd")
        except poplib.error_proto:
            r.check(True, "the old password stops working after passwd")
        # The failed login above is logged in the form conf/fail2ban-postern.conf matches.
        filt = open(os.path.join(SRC, "conf", "fail2ban-postern.conf")).read()
        rx = re.search(r"^failregex = (.*)$", filt, re.M).group(1)
        rx = re.compile(rx.replace("<HOST>", r"(?P<host>\S+)"))
        time.sleep(0.3)
        hosts = [m.group("host") for m in map(rx.match, d.log().splitlines()) if m]
        r.check(hosts == ["127.0.0.1"], "fail2ban filter matches the failed login once: %s" % hosts)


# ---- privilege drop (only when the tests run as root) ---------------------
if os.geteuid() == 0 and ROLES:
    d = Daemon(POSTERN, roles=[ROLES[0]], extra_config="run_as_user = nobody\n")
    os.makedirs(d.data, exist_ok=True)
    os.chown(d.data, pwd.getpwnam("nobody").pw_uid, -1)
    os.chmod(d.dir, 0o755)
    for f in (d.cert, d.key, d.conf):
        os.chmod(f, 0o644)
    try:
        d.start()
        nobody = pwd.getpwnam("nobody").pw_uid
        # The port answers once it is bound, a moment before the drop
        # (bind needs root): look until the drop is done, for 5 s at most.
        deadline = time.time() + 5
        while True:
            status = open("/proc/%d/status" % d.proc.pid).read()
            uid_line = [l for l in status.splitlines() if l.startswith("Uid:")][0]
            if all(int(x) == nobody for x in uid_line.split()[1:]) or time.time() > deadline:
                break
            time.sleep(0.05)
        r.check(all(int(x) == nobody for x in uid_line.split()[1:]),
                "privilege drop: running as nobody (%s)" % uid_line)
        rc = d.stop()
        r.check(rc == 0, "privilege drop: clean stop (%s)" % rc)
    except AssertionError as e:
        r.check(False, "privilege drop: %s" % e)
        d.stop()
    import shutil
    shutil.rmtree(d.dir, ignore_errors=True)
else:
    print("skip privilege drop: not running as root" if os.geteuid() else
          "skip privilege drop: no protocol built yet")

# ---- README and CI agree ---------------------------------------------------
readme = open(os.path.join(SRC, "README.md")).read().splitlines()
cmds = [l.strip().strip("`") for l in readme[:20] if "apt-get" in l]
ci = [l.strip() for l in open(os.path.join(SRC, ".ci", "run")) if "apt-get" in l]
r.check(len(cmds) >= 2 and "postern demo" in cmds[0], "README: first command starts postern demo")
r.check(len(cmds) >= 2 and len(ci) == 1 and ci[0] == cmds[1],
        "README: second command is exactly what .ci/run runs")

r.finish()
