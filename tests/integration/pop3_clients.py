"""POP3 with real clients: fetchmail (POP3S and STLS; deleting mode, and
--keep twice: the second run fetches nothing new), curl pop3s:// (LIST,
RETR, UIDL-free listing) and curl pop3:// with STLS, and plaintext login
on loopback when allow_plaintext_auth_on_loopback = yes.

Usage: pop3_clients.py /path/to/postern
"""
import os
import poplib
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postern_test import Daemon, Results  # noqa: E402
from pop3_util import (USER, PASSWORD, Raw, deliver, make_msg, maildir_files,  # noqa: E402
                       allow_plaintext, tls_context)


def fetchmail(tmp, port, ssl_mode, keep, out):
    """Run fetchmail once; returns (exit code, output)."""
    rc = os.path.join(tmp, "fetchmailrc")
    opts = "ssl sslproto 'TLS1.2+'" if ssl_mode == "implicit" else "sslproto 'TLS1.2+'"
    with open(rc, "w") as f:
        f.write("set no syslog\n"
                "poll 127.0.0.1 service %d protocol pop3 auth password\n"
                "  user '%s' there with password '%s' is 'root' here\n"
                "  %s no sslcertck %s\n"
                "  mda \"/bin/sh -c 'cat >> %s'\"\n"
                % (port, USER, PASSWORD, opts, "keep" if keep else "nokeep fetchall", out))
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=tmp, FETCHMAILHOME=tmp)
    # FETCHMAILHOME keeps .fetchids (the UIDs seen in keep mode) in tmp
    p = subprocess.run(["fetchmail", "--nosyslog", "-f", rc, "-v", "--nodetach"],
                       capture_output=True, timeout=120, env=env)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_fetchmail(d, res):
    if shutil.which("fetchmail") is None:
        res.check(False, "fetchmail is installed (apt-get install fetchmail)")
        return
    tmp = tempfile.mkdtemp(prefix="pop3-fetchmail-")
    try:
        out = os.path.join(tmp, "mbox")
        for i in range(3):
            deliver(d, make_msg("fm-keep-%d" % i))
        # --keep, twice over STLS: the second run must fetch nothing new
        rc, log = fetchmail(tmp, d.port("pop3"), "stls", True, out)
        got = read(out)
        res.check(rc == 0 and all(b"Subject: fm-keep-%d" % i in got for i in range(3)),
                  "fetchmail --keep over STLS fetched 3 messages (rc %d)" % rc
                  + ("" if rc == 0 else "\n" + log[-3000:]))
        rc, log = fetchmail(tmp, d.port("pop3"), "stls", True, out)
        again = read(out)
        # fetchmail exits 1 when there was no mail
        res.check(rc == 1 and again == got, "second fetchmail --keep run fetches nothing new (rc %d)" % rc
                  + ("" if rc == 1 else "\n" + log[-3000:]))
        res.check(len(maildir_files(d)) == 3, "keep mode left the 3 messages on the server")

        # deleting mode over implicit TLS
        deliver(d, make_msg("fm-new"))
        if os.path.exists(out):
            os.unlink(out)
        rc, log = fetchmail(tmp, d.port("pop3s"), "implicit", False, out)
        got = read(out)
        res.check(rc == 0 and got.count(b"Subject: fm-") == 4,
                  "fetchmail over POP3S fetched all 4 messages (rc %d)" % rc
                  + ("" if rc == 0 else "\n" + log[-3000:]))
        res.check(len(maildir_files(d)) == 0, "fetchmail without --keep deleted them at QUIT")
        rc, log = fetchmail(tmp, d.port("pop3s"), "implicit", False, out)
        res.check(rc == 1, "a further run finds no mail (rc %d)" % rc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def curl(args):
    p = subprocess.run(["curl", "-sS", "-k", "--max-time", "30"] + args,
                       capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def test_curl(d, res):
    if shutil.which("curl") is None:
        res.check(False, "curl is installed")
        return
    body = "curl body line\r\n.dot line\r\n"
    deliver(d, make_msg("curl-1", body=body))
    deliver(d, make_msg("curl-2"))
    creds = "%s:%s" % (USER, PASSWORD)
    rc, out, err = curl(["-u", creds, "pop3s://127.0.0.1:%d/" % d.port("pop3s")])
    lines = out.split(b"\r\n")
    res.check(rc == 0 and lines[0].startswith(b"1 ") and lines[1].startswith(b"2 "),
              "curl pop3s:// LIST (rc %d %s)" % (rc, err))
    rc, out, err = curl(["-u", creds, "pop3s://127.0.0.1:%d/1" % d.port("pop3s")])
    res.check(rc == 0 and b"Subject: curl-1" in out and out.endswith(body.encode()),
              "curl pop3s:// RETR 1 unstuffs to the original body (rc %d %s)" % (rc, err))
    rc, out, err = curl(["-u", creds, "--ssl-reqd", "pop3://127.0.0.1:%d/2" % d.port("pop3")])
    res.check(rc == 0 and b"Subject: curl-2" in out, "curl pop3:// with STLS RETR 2 (rc %d %s)" % (rc, err))
    rc, out, err = curl(["-u", "%s:wrong" % USER, "pop3s://127.0.0.1:%d/" % d.port("pop3s")])
    res.check(rc != 0, "curl with a wrong password fails (rc %d)" % rc)
    # clean up for the fetchmail test
    p = poplib.POP3_SSL("127.0.0.1", d.port("pop3s"), context=tls_context())
    p.user(USER)
    p.pass_(PASSWORD)
    for i in range(p.stat()[0]):
        p.dele(i + 1)
    p.quit()


def test_plaintext_on_loopback(postern, res):
    d = Daemon(postern, roles=("pop3", "pop3s"))
    allow_plaintext(d)
    d.add_user(USER, PASSWORD)
    with d:
        deliver(d, make_msg("plain"))
        c = Raw(d.port("pop3"))
        st, caps = c.lines("CAPA")
        res.check(b"USER" in caps and b"SASL PLAIN LOGIN" in caps and b"STLS" in caps,
                  "allow_plaintext_auth_on_loopback = yes: CAPA offers USER and SASL before TLS")
        r = c.login()
        res.check(r.startswith(b"+OK"), "USER/PASS without TLS on loopback works: %r" % r)
        c.cmd("QUIT")
        c.close()
        p = poplib.POP3("127.0.0.1", d.port("pop3"), timeout=15)
        p.user(USER)
        p.pass_(PASSWORD)
        resp, lines, _ = p.retr(1)
        res.check(b"Subject: plain" in lines, "poplib plaintext RETR")
        p.quit()


def main():
    if len(sys.argv) != 2:
        print("usage: pop3_clients.py POSTERN")
        sys.exit(2)
    res = Results()
    d = Daemon(sys.argv[1], roles=("pop3", "pop3s"))
    d.add_user(USER, PASSWORD)
    with d:
        res.run("curl", lambda: test_curl(d, res))
        res.run("fetchmail", lambda: test_fetchmail(d, res))
    res.run("plaintext_on_loopback", lambda: test_plaintext_on_loopback(sys.argv[1], res))
    res.finish()


if __name__ == "__main__":
    main()
