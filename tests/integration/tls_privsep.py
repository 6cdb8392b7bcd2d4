"""Root-only keys and users file after the privilege drop, and TLS session
tickets across SIGHUP (issue 13).

The daemon starts as root with run_as_user = nobody; the key file (0600)
and DATA_DIR/users (0600) belong to root, so only the privileged file
reader (core/privsep.c) can read them once the daemon runs as nobody.

  - the daemon runs as nobody, its helper as root; users log in although
    the users file is root-only;
  - a new certificate and key (root, 0600) put in place, SIGHUP: the next
    connection is served the new certificate;
  - a user added to the root-only users file logs in after SIGHUP;
  - TLS 1.3 and TLS 1.2 sessions resume (python ssl `session=`) before
    the SIGHUP and, with tickets issued before it, after it;
  - SIGTERM: exit 0, and the helper is gone too.

Skipped (77) when not run as root.  Usage: tls_privsep.py /path/to/postern
"""
import imaplib
import os
import pwd
import signal
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results, skip  # noqa: E402
from pop3_util import wait_for  # noqa: E402

POSTERN = os.path.abspath(sys.argv[1])
RUN_AS = "nobody"
USER, PASSWORD = "alice@example.test", "alice-secret-1"
USER2, PASSWORD2 = "bob@example.test", "bob-secret-2"
WAIT_S = 10


def uids(pid):
    with open("/proc/%d/status" % pid) as f:
        line = [l for l in f if l.startswith("Uid:")][0]
    return [int(x) for x in line.split()[1:]]


def cap_eff(pid):
    with open("/proc/%d/status" % pid) as f:
        return int([l for l in f if l.startswith("CapEff:")][0].split()[1], 16)


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, split after ')'
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def make_pair(cert, key, cn):
    """A new self-signed certificate and key, put in place by rename like a
    renewal; the key is root's, mode 0600."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key + ".new", "-out", cert + ".new", "-days", "2",
                    "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chown(key + ".new", 0, 0)
    os.chmod(key + ".new", 0o600)
    os.chmod(cert + ".new", 0o644)
    os.replace(key + ".new", key)
    os.replace(cert + ".new", cert)


def der_of(cert):
    with open(cert) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def client_ctx(version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = version
    ctx.maximum_version = version
    return ctx


def imaps_connect(port, ctx, session=None):
    """Connect, read the greeting (TLS 1.3 tickets arrive after the
    handshake, with the first data), return (certificate DER, session,
    reused, greeting)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    s = ctx.wrap_socket(raw, session=session)
    try:
        greeting = b""
        while b"\r\n" not in greeting:
            data = s.recv(4096)
            if not data:
                break
            greeting += data
        s.sendall(b"a LOGOUT\r\n")
        while True:  # until the server closes: every ticket is read
            try:
                if not s.recv(4096):
                    break
            except (OSError, ssl.SSLError):
                break
        return s.getpeercert(binary_form=True), s.session, s.session_reused, greeting
    finally:
        s.close()


def login_ok(port, user, password):
    ctx = client_ctx(ssl.TLSVersion.TLSv1_3)
    try:
        m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=WAIT_S)
    except TypeError:
        m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx)
    try:
        m.login(user, password)
        m.logout()
        return True
    except imaplib.IMAP4.error:
        return False


def root_only(path):
    os.chown(path, 0, 0)
    os.chmod(path, 0o600)


def main():
    if os.geteuid() != 0:
        skip("needs root: the daemon must start as root to drop to %s" % RUN_AS)
    try:
        nobody = pwd.getpwnam(RUN_AS)
    except KeyError:
        skip("no user %s on this system" % RUN_AS)
    r = Results()
    d = Daemon(POSTERN, roles=["imaps"], extra_config="run_as_user = %s\n" % RUN_AS)
    # nobody must reach data_dir (mkdtemp makes the test directory 0700).
    os.chmod(d.dir, 0o755)
    os.chmod(d.conf, 0o644)
    os.chmod(d.cert, 0o644)
    root_only(d.key)
    d.add_user(USER, PASSWORD)  # runs as nobody: DATA_DIR is made for it
    users = os.path.join(d.data, "users")
    root_only(users)
    port = d.port("imaps")
    tls13 = client_ctx(ssl.TLSVersion.TLSv1_3)
    tls12 = client_ctx(ssl.TLSVersion.TLSv1_2)
    with d:
        pid = d.proc.pid
        r.check(wait_for(lambda: uids(pid) == [nobody.pw_uid] * 4),
                "the daemon runs as %s: %s" % (RUN_AS, uids(pid)))
        helpers = children(pid)
        r.check(len(helpers) == 1 and uids(helpers[0])[0] == 0,
                "one child, the file reader, keeps root: %s" %
                [(h, uids(h)) for h in helpers])
        cap_dac_read_search = 1 << 2
        r.check(len(helpers) == 1 and cap_eff(helpers[0]) & ~cap_dac_read_search == 0,
                "the helper keeps no capability but CAP_DAC_READ_SEARCH: %#x" %
                (cap_eff(helpers[0]) if helpers else -1))
        r.check(login_ok(port, USER, PASSWORD),
                "login with the users file root-only (read by the helper)")

        old_der = der_of(d.cert)
        der, s13, reused, greeting = imaps_connect(port, tls13)
        r.check(der == old_der and greeting.startswith(b"* OK"),
                "before SIGHUP: the first certificate is served")
        _, s12, _, _ = imaps_connect(port, tls12)
        r.check(s13 is not None and s12 is not None, "TLS 1.3 and 1.2 sessions kept")
        _, _, reused13, _ = imaps_connect(port, tls13, s13)
        _, _, reused12, _ = imaps_connect(port, tls12, s12)
        r.check(reused13, "before SIGHUP: TLS 1.3 session resumed")
        r.check(reused12, "before SIGHUP: TLS 1.2 session resumed")

        make_pair(d.cert, d.key, "renewed.example.test")
        new_der = der_of(d.cert)
        os.chown(users, nobody.pw_uid, -1)  # the CLI runs as nobody
        d.add_user(USER2, PASSWORD2)
        root_only(users)
        reloads = d.log().count("reload: certificates reloaded")
        d.proc.send_signal(signal.SIGHUP)
        r.check(wait_for(lambda: d.log().count("reload: certificates reloaded") > reloads),
                "SIGHUP reloads the certificates although the key is root-only")
        r.check("keeping the old certificates" not in d.log(),
                "no reload error in the log")

        der, _, _, _ = imaps_connect(port, tls13)
        r.check(der == new_der and der != old_der,
                "after SIGHUP: the new certificate is served (TLS 1.3)")
        der, _, _, _ = imaps_connect(port, tls12)
        r.check(der == new_der, "after SIGHUP: the new certificate is served (TLS 1.2)")
        _, _, reused13, _ = imaps_connect(port, tls13, s13)
        _, _, reused12, _ = imaps_connect(port, tls12, s12)
        r.check(reused13, "after SIGHUP: a TLS 1.3 ticket from before it resumes")
        r.check(reused12, "after SIGHUP: a TLS 1.2 ticket from before it resumes")

        r.check(login_ok(port, USER2, PASSWORD2),
                "after SIGHUP: the user added to the root-only users file logs in")
        r.check(login_ok(port, USER, PASSWORD) and not login_ok(port, USER, "wrong"),
                "the first user still logs in, a wrong password still fails")
        r.check(uids(pid) == [nobody.pw_uid] * 4, "the daemon still runs as %s" % RUN_AS)

        rc = d.stop()
        r.check(rc == 0, "SIGTERM: exit 0 (%s)" % rc)
        gone = all(not os.path.exists("/proc/%d" % h) for h in helpers)
        r.check(gone, "the helper is gone with the daemon")
    r.finish()


main()
