"""ManageSieve (RFC 5804) against the real daemon, with a raw client over
plain sockets and ssl that sees the exact bytes, and sieve-connect for
interoperability when Debian's sieve-connect is installed.

Greeting and capabilities (SASL empty before TLS, PLAIN after STARTTLS,
capabilities again after the handshake), implicit TLS, AUTHENTICATE PLAIN
with an initial response and as a continuation, wrong passwords (logged for
fail2ban), PUTSCRIPT valid and invalid (the compiler's "line N:" message,
nothing stored), CHECKSCRIPT, LISTSCRIPTS, SETACTIVE and the .active symlink
on disk, GETSCRIPT bytes equal, RENAMESCRIPT of the active script,
DELETESCRIPT of the active one refused, HAVESPACE and the script count and
size limits, a literal over the limit refused (and the connection still
works), names that need encoding on disk, bad input answered NO or BYE,
NOOP tags, UNAUTHENTICATE, LOGOUT; and a filter uploaded here filing
mail that arrives by SMTP.

Usage: managesieve.py /path/to/postern
"""
import base64
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import (Daemon, LineClient, Results, free_port, maildir_files,  # noqa: E402
                          tls_context)

USER, PASSWORD = "sieve@example.test", "sieve-pass-1"
SCRIPT = (b'require ["fileinto"];\r\n'
          b'if header :contains "Subject" "[list]" {\r\n'
          b'  fileinto "Lists";\r\n'
          b'}\r\n')
BAD_SCRIPT = (b'require ["fileinto"];\r\n'
              b'if header :contains "Subject" {\r\n'
              b'  fileinto "Lists";\r\n'
              b'}\r\n')
SIZE_MAX = 256 * 1024       # MD_SIEVE_SIZE_MAX
SCRIPTS_MAX = 32            # MD_SIEVE_SCRIPTS_MAX
DISCARD_MAX = 16 * 1024 * 1024  # MSIEVE_DISCARD_MAX


class Sieve(LineClient):
    """A raw ManageSieve client: commands out, responses as lines."""

    def response(self):
        """Lines up to and including the OK/NO/BYE line; a literal {n} in
        a line is read and appended to it as bytes."""
        lines = []
        while True:
            line = self.raw_line()
            m = re.search(rb"\{(\d+)\}$", line)
            if m:
                n = int(m.group(1))
                while len(self.buf) < n:
                    self._fill()
                line += b"\r\n" + self.buf[:n]
                self.buf = self.buf[n:]
                line += self.raw_line()
            lines.append(line)
            if re.match(rb"(OK|NO|BYE)\b", line):
                return lines

    def cmd(self, text):
        """Send text and the CRLF that ends the command."""
        self.send((text if isinstance(text, bytes) else text.encode()) + b"\r\n")
        return self.response()

    def starttls(self):
        res = self.cmd("STARTTLS")
        assert res[-1].startswith(b"OK"), res
        self.sock = tls_context().wrap_socket(self.sock)
        return self.response()

    def login(self, user=USER, password=PASSWORD):
        token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        return self.cmd('AUTHENTICATE "PLAIN" "%s"' % token)[-1]

    def put(self, name, script):
        if isinstance(name, str):
            name = name.encode()
        return self.cmd(b'PUTSCRIPT "' + name + b'" {%d+}\r\n' % len(script) + script)[-1]


def sieve_dir(d, user=USER):
    local, domain = user.split("@")
    return os.path.join(d.data, "mail", domain, local, "postern-sieve")


def session(d, login=True):
    c = Sieve(d.port("managesieve"))
    c.response()
    c.starttls()
    if login:
        res = c.login()
        assert res.startswith(b"OK"), res
    return c


def test_greeting(d, r):
    c = Sieve(d.port("managesieve"))
    caps = c.response()
    r.check(caps[-1].startswith(b"OK"), "greeting ends with OK: %r" % caps[-1])
    r.check(b'"IMPLEMENTATION" "Postern"' in caps, "IMPLEMENTATION Postern")
    r.check(b'"SASL" ""' in caps, "no SASL mechanism before TLS: %r" % caps)
    r.check(b'"STARTTLS"' in caps, "STARTTLS offered")
    r.check(b'"VERSION" "1.0"' in caps, "VERSION 1.0")
    sieve = [x for x in caps if x.startswith(b'"SIEVE"')]
    r.check(sieve and b"fileinto" in sieve[0] and b"vacation" in sieve[0],
            "SIEVE lists the compiler's extensions: %r" % sieve)
    r.check(any(re.match(rb'"MAXREDIRECTS" "\d+"$', x) for x in caps), "MAXREDIRECTS")
    res = c.login()
    r.check(res.startswith(b"NO (ENCRYPT-NEEDED)"), "AUTHENTICATE before TLS: %r" % res)
    caps = c.starttls()
    r.check(caps[-1].startswith(b"OK") and b'"SASL" "PLAIN"' in caps and
            b'"STARTTLS"' not in caps,
            "after STARTTLS the capabilities again, SASL PLAIN, no STARTTLS: %r" % caps)
    res = c.cmd("STARTTLS")[-1]
    r.check(res.startswith(b"NO"), "a second STARTTLS is NO: %r" % res)
    c.close()


def test_implicit_tls(d, r):
    c = Sieve(d.implicit_port, tls=True)
    caps = c.response()
    r.check(caps[-1].startswith(b"OK") and b'"SASL" "PLAIN"' in caps and
            b'"STARTTLS"' not in caps, "implicit TLS listener: greeting over TLS: %r" % caps)
    r.check(c.login().startswith(b"OK"), "implicit TLS: AUTHENTICATE PLAIN")
    c.close()


def test_authenticate(d, r):
    c = session(d, login=False)
    res = c.login(password="wrong")
    r.check(res.startswith(b"NO") and b"failed" in res, "wrong password is NO: %r" % res)
    r.check("auth failed: proto=managesieve rip=127.0.0.1 user=" + USER in d.log(),
            "the failure is logged for fail2ban")
    res = c.cmd('AUTHENTICATE "PLAIN" "!!!"')[-1]
    r.check(res.startswith(b"NO"), "bad base64 is NO: %r" % res)
    res = c.cmd('AUTHENTICATE "CRAM-MD5"')[-1]
    r.check(res.startswith(b"NO"), "an unknown mechanism is NO: %r" % res)
    res = c.cmd("LISTSCRIPTS")[-1]
    r.check(res.startswith(b"NO"), "LISTSCRIPTS before login is NO: %r" % res)
    # without an initial response: an empty challenge, then the response
    c.send('AUTHENTICATE "PLAIN"\r\n')
    r.check(c.raw_line() == b'""', "PLAIN without initial response: empty challenge")
    c.send(b'"*"\r\n')
    res = c.response()[-1]
    r.check(res.startswith(b"NO"), "\"*\" cancels: %r" % res)
    c.send('AUTHENTICATE "PLAIN"\r\n')
    c.raw_line()
    token = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode())
    c.send(b"{%d+}\r\n" % len(token) + token + b"\r\n")
    res = c.response()[-1]
    r.check(res.startswith(b"OK"), "PLAIN with the response as a literal: %r" % res)
    caps = c.cmd("CAPABILITY")
    r.check(b'"OWNER" "%s"' % USER.encode() in caps, "OWNER after login: %r" % caps)
    res = c.cmd("AUTHENTICATE \"PLAIN\" \"x\"")[-1]
    r.check(res.startswith(b"NO"), "AUTHENTICATE once logged in is NO")
    res = c.cmd("UNAUTHENTICATE")[-1]
    r.check(res.startswith(b"OK"), "UNAUTHENTICATE: %r" % res)
    res = c.cmd("LISTSCRIPTS")[-1]
    r.check(res.startswith(b"NO"), "after UNAUTHENTICATE LISTSCRIPTS is NO: %r" % res)
    r.check(c.login().startswith(b"OK"), "and a new login works")
    res = c.cmd("LOGOUT")
    r.check(res[-1].startswith(b"OK") and c.closed(), "LOGOUT: OK and closed")


def test_scripts(d, r):
    c = session(d)
    sdir = sieve_dir(d)
    res = c.cmd("LISTSCRIPTS")
    r.check(res == [b'OK "Listscripts completed"'], "no scripts at first: %r" % res)
    res = c.put("vacation", SCRIPT)
    r.check(res.startswith(b"OK"), "PUTSCRIPT valid: %r" % res)
    with open(os.path.join(sdir, "vacation.sieve"), "rb") as f:
        r.check(f.read() == SCRIPT, "the script is on disk byte for byte")
    res = c.put("broken", BAD_SCRIPT)
    r.check(res.startswith(b'NO "line 2:'), "PUTSCRIPT invalid: NO with the line: %r" % res)
    r.check(not os.path.exists(os.path.join(sdir, "broken.sieve")), "nothing stored for it")
    res = c.cmd(b"CHECKSCRIPT {%d+}\r\n" % len(SCRIPT) + SCRIPT)[-1]
    r.check(res.startswith(b"OK"), "CHECKSCRIPT valid: %r" % res)
    res = c.cmd(b"CHECKSCRIPT {%d+}\r\n" % len(BAD_SCRIPT) + BAD_SCRIPT)[-1]
    r.check(res.startswith(b'NO "line 2:'), "CHECKSCRIPT invalid: %r" % res)
    res = c.cmd("LISTSCRIPTS")
    r.check(res[:-1] == [b'"vacation"'], "LISTSCRIPTS: %r" % res)
    res = c.cmd('SETACTIVE "nosuch"')[-1]
    r.check(res.startswith(b"NO (NONEXISTENT)"), "SETACTIVE of a missing script: %r" % res)
    res = c.cmd('SETACTIVE "vacation"')[-1]
    r.check(res.startswith(b"OK"), "SETACTIVE: %r" % res)
    active = os.path.join(sdir, ".active")
    r.check(os.path.islink(active) and os.readlink(active) == "vacation.sieve",
            ".active -> vacation.sieve (relative)")
    res = c.cmd("LISTSCRIPTS")
    r.check(res[:-1] == [b'"vacation" ACTIVE'], "LISTSCRIPTS marks it ACTIVE: %r" % res)
    res = c.cmd('GETSCRIPT "vacation"')
    r.check(res[0] == b"{%d}\r\n" % len(SCRIPT) + SCRIPT and res[-1].startswith(b"OK"),
            "GETSCRIPT gives the bytes back: %r" % res)
    res = c.cmd('GETSCRIPT "nosuch"')[-1]
    r.check(res.startswith(b"NO (NONEXISTENT)"), "GETSCRIPT of a missing script: %r" % res)
    res = c.cmd('DELETESCRIPT "vacation"')[-1]
    r.check(res.startswith(b"NO (ACTIVE)"), "DELETESCRIPT of the active script: %r" % res)
    r.check(os.path.exists(os.path.join(sdir, "vacation.sieve")), "... it is still there")
    r.check(c.put("other", SCRIPT).startswith(b"OK"), "a second script")
    res = c.cmd('RENAMESCRIPT "vacation" "other"')[-1]
    r.check(res.startswith(b"NO (ALREADYEXISTS)"), "RENAMESCRIPT onto a name in use: %r" % res)
    res = c.cmd('RENAMESCRIPT "nosuch" "x"')[-1]
    r.check(res.startswith(b"NO (NONEXISTENT)"), "RENAMESCRIPT of a missing one: %r" % res)
    res = c.cmd('RENAMESCRIPT "vacation" "away"')[-1]
    r.check(res.startswith(b"OK"), "RENAMESCRIPT of the active script: %r" % res)
    r.check(os.readlink(active) == "away.sieve" and
            not os.path.exists(os.path.join(sdir, "vacation.sieve")),
            "it stays active under its new name")
    res = c.cmd("LISTSCRIPTS")
    r.check(sorted(res[:-1]) == [b'"away" ACTIVE', b'"other"'], "LISTSCRIPTS: %r" % res)
    res = c.put("away", SCRIPT + b"# changed\r\n")
    r.check(res.startswith(b"OK"), "PUTSCRIPT replaces the active script: %r" % res)
    res = c.cmd('GETSCRIPT "away"')[0]
    r.check(res.endswith(b"# changed\r\n"), "... and GETSCRIPT has the new text")
    res = c.cmd('SETACTIVE ""')[-1]
    r.check(res.startswith(b"OK") and not os.path.lexists(active),
            "SETACTIVE \"\" removes .active: %r" % res)
    res = c.cmd('DELETESCRIPT "away"')[-1]
    r.check(res.startswith(b"OK") and not os.path.exists(os.path.join(sdir, "away.sieve")),
            "DELETESCRIPT once inactive: %r" % res)
    res = c.cmd('DELETESCRIPT "away"')[-1]
    r.check(res.startswith(b"NO (NONEXISTENT)"), "DELETESCRIPT twice: %r" % res)
    res = c.cmd('NOOP "tag-1"')[-1]
    r.check(res == b'OK (TAG "tag-1") "Done"', "NOOP with a tag: %r" % res)
    res = c.cmd('PUTSCRIPT "empty" {0+}\r\n')[-1]
    r.check(res.startswith(b"OK") and os.path.getsize(os.path.join(sdir, "empty.sieve")) == 0,
            "an empty script (an empty literal): %r" % res)
    # pipelined: answered in order although each one waits for a worker
    c.send(b'GETSCRIPT "empty"\r\nDELETESCRIPT "empty"\r\nNOOP "last"\r\n')
    res = c.response() + c.response() + c.response()
    r.check(res == [b"{0}\r\n", b'OK "Getscript completed"', b'OK "Completed"',
                    b'OK (TAG "last") "Done"'], "pipelined commands in order: %r" % res)
    c.cmd('DELETESCRIPT "other"')
    c.close()


def test_names(d, r):
    c = session(d)
    sdir = sieve_dir(d)
    for name in ("50%", "\u00e9t\u00e9 \"quoted\"", "\u0436" * 128):
        q = name.replace("\\", "\\\\").replace('"', '\\"')
        res = c.put(q, SCRIPT)
        r.check(res.startswith(b"OK"), "PUTSCRIPT name %r: %r" % (name[:20], res))
        res = c.cmd(b'GETSCRIPT "' + q.encode() + b'"')
        r.check(res[0].endswith(SCRIPT), "GETSCRIPT name %r" % name[:20])
    res = c.cmd("LISTSCRIPTS")
    listed = sorted(res[:-1])
    want = sorted(b'"' + n.replace('"', '\\"').encode() + b'"'
                  for n in ("50%", "\u00e9t\u00e9 \"quoted\"", "\u0436" * 128))
    r.check(listed == want, "LISTSCRIPTS shows the names as given: %r" % listed)
    files = sorted(os.listdir(sdir))
    r.check("50%25.sieve" in files and "\u00e9t\u00e9 \"quoted\".sieve" in files,
            "plain names stay plain on disk, '%%' is %%25: %r" % files)
    r.check(c.cmd('SETACTIVE "' + "\u0436" * 128 + '"')[-1].startswith(b"OK") and
            os.readlink(os.path.join(sdir, ".active")).startswith("%L"),
            "a 128-character name (256 octets) can be activated (hashed file name)")
    c.cmd('SETACTIVE ""')
    for bad in ("", ".hidden", "a/b", "x\\\\y\x01", "\u0436" * 129):
        res = c.put(bad, SCRIPT)
        r.check(res.startswith(b"NO"), "bad name %r refused: %r" % (bad[:20], res))
    for name in ("50%", "\u00e9t\u00e9 \\\"quoted\\\"", "\u0436" * 128):
        res = c.cmd('DELETESCRIPT "%s"' % name)[-1]
        r.check(res.startswith(b"OK"), "DELETESCRIPT %r: %r" % (name[:20], res))
    r.check(sorted(os.listdir(sdir)) == [".lock"], "nothing left: %r" % os.listdir(sdir))
    c.close()


def test_limits(d, r):
    c = session(d)
    res = c.cmd('HAVESPACE "x" 1000')[-1]
    r.check(res.startswith(b"OK"), "HAVESPACE small: %r" % res)
    res = c.cmd('HAVESPACE "x" %d' % (SIZE_MAX + 1))[-1]
    r.check(res.startswith(b"NO (QUOTA/MAXSIZE)"), "HAVESPACE over the size: %r" % res)
    res = c.cmd('HAVESPACE "x" 99999999999')[-1]
    r.check(res.startswith(b"NO"), "HAVESPACE with a number past 32 bits: %r" % res)
    big = b"#" * (SIZE_MAX + 10) + b"\r\n"
    res = c.put("big", big)
    r.check(res.startswith(b"NO (QUOTA/MAXSIZE)"), "a literal over the limit: %r" % res)
    res = c.cmd("NOOP")[-1]
    r.check(res.startswith(b"OK"), "the connection still works (the literal was skipped)")
    for i in range(SCRIPTS_MAX):
        res = c.put("s%d" % i, SCRIPT)
        if not res.startswith(b"OK"):
            break
    r.check(res.startswith(b"OK"), "%d scripts stored: %r" % (SCRIPTS_MAX, res))
    res = c.cmd('HAVESPACE "one-more" 10')[-1]
    r.check(res.startswith(b"NO (QUOTA/MAXSCRIPTS)"), "HAVESPACE at the count: %r" % res)
    res = c.cmd('HAVESPACE "s0" 10')[-1]
    r.check(res.startswith(b"OK"), "HAVESPACE of a script to replace: %r" % res)
    res = c.put("one-more", SCRIPT)
    r.check(res.startswith(b"NO (QUOTA/MAXSCRIPTS)"), "PUTSCRIPT past the count: %r" % res)
    r.check(c.put("s0", SCRIPT).startswith(b"OK"), "replacing one is fine")
    for i in range(SCRIPTS_MAX):
        c.cmd('DELETESCRIPT "s%d"' % i)
    r.check(len(c.cmd("LISTSCRIPTS")) == 1, "all deleted")
    c.close()


def test_bad_input(d, r):
    c = session(d)
    for line, what in ((b"FROBNICATE", "unknown command"),
                       (b'PUTSCRIPT "a', "unterminated quote"),
                       (b"GETSCRIPT x", "an atom for a string"),
                       (b'GETSCRIPT "a" "b"', "too many arguments"),
                       (b'PUTSCRIPT "a" {3+}\r\nxyz junk', "junk after a literal"),
                       (b'GETSCRIPT "a\\x"', "a bad escape"),
                       (b"\x00\xff", "binary")):
        res = c.cmd(line)[-1]
        r.check(res.startswith(b"NO"), "%s is NO: %r" % (what, res))
    r.check(c.cmd("NOOP")[-1].startswith(b"OK"), "still working after bad input")
    # a script literal does not run as commands even when refused
    res = c.cmd(b'FROB {14+}\r\nLOGOUT\r\nNOOP\r\n')
    r.check(len(res) == 1 and res[0].startswith(b"NO"), "literal of a bad command skipped: %r" % res)
    c.send("PUTSCRIPT \"a\" {%d+}\r\n" % (DISCARD_MAX + 1))
    res = c.response()[-1]
    r.check(res.startswith(b"BYE") and c.closed(), "a huge literal: BYE: %r" % res)
    c = session(d)
    c.send(b"NOOP " + b"x" * 10000 + b"\r\n")
    res = c.response()[-1]
    r.check(res.startswith(b"BYE") and c.closed(), "a line too long: BYE: %r" % res)
    c = Sieve(d.port("managesieve"))
    c.response()
    for _ in range(10):
        c.send(b"BAD\r\n")
    lines = []
    try:
        while True:
            lines += c.response()
            if lines[-1].startswith(b"BYE"):
                break
    except (EOFError, OSError):
        pass
    r.check(lines and lines[-1].startswith(b"BYE"), "ten errors in a row: BYE")
    r.check(d.proc.poll() is None, "the daemon is still running")


def test_delivery(d, r):
    """End to end: a script uploaded and activated here files mail that
    arrives by SMTP."""
    import smtplib
    script = (b'require ["fileinto", "mailbox"];\r\n'
              b'if header :contains "Subject" "[list]" { fileinto :create "Lists"; }\r\n')
    c = session(d)
    r.check(c.put("e2e", script).startswith(b"OK") and
            c.cmd('SETACTIVE "e2e"')[-1].startswith(b"OK"), "upload and activate a filter")
    c.close()
    with smtplib.SMTP("127.0.0.1", d.port("smtp"), timeout=30) as smtp:
        smtp.sendmail("someone@outside.test", [USER],
                      b"From: someone@outside.test\r\nTo: %s\r\nSubject: [list] news\r\n"
                      b"\r\nhello\r\n" % USER.encode())
    files = maildir_files(d, USER, "Lists")
    r.check(len(files) == 1, "the message was filed into Lists by the script: %r" % files)
    c = session(d)
    c.cmd('SETACTIVE ""')
    c.cmd('DELETESCRIPT "e2e"')
    c.close()


def test_sieve_connect(d, r):
    tool = shutil.which("sieve-connect")
    if tool is None:
        print("note: sieve-connect not installed; interop part skipped")
        return
    tmp = tempfile.mkdtemp()
    try:
        local = os.path.join(tmp, "filter.sieve")
        with open(local, "wb") as f:
            f.write(SCRIPT)
        rfd, wfd = os.pipe()
        os.write(wfd, (PASSWORD + "\n").encode())
        os.close(wfd)
        res = subprocess.run([tool, "--server", "127.0.0.1", "--port", str(d.port("managesieve")),
                              "--user", USER, "--passwordfd", str(rfd), "--notlsverify",
                              "--authmech", "PLAIN", "--upload", "--localsieve", local,
                              "--remotesieve", "interop"],
                             pass_fds=(rfd,), capture_output=True, timeout=30)
        os.close(rfd)
        r.check(res.returncode == 0, "sieve-connect --upload: rc %d %r" % (
            res.returncode, (res.stdout + res.stderr)[-500:]))
        path = os.path.join(sieve_dir(d), "interop.sieve")
        r.check(os.path.exists(path) and open(path, "rb").read().replace(b"\r\n", b"\n") ==
                SCRIPT.replace(b"\r\n", b"\n"), "sieve-connect: the script arrived")
        rfd, wfd = os.pipe()
        os.write(wfd, (PASSWORD + "\n").encode())
        os.close(wfd)
        res = subprocess.run([tool, "--server", "127.0.0.1", "--port", str(d.port("managesieve")),
                              "--user", USER, "--passwordfd", str(rfd), "--notlsverify",
                              "--authmech", "PLAIN", "--activate", "--remotesieve", "interop"],
                             pass_fds=(rfd,), capture_output=True, timeout=30)
        os.close(rfd)
        active = os.path.join(sieve_dir(d), ".active")
        r.check(res.returncode == 0 and os.path.islink(active) and
                os.readlink(active) == "interop.sieve",
                "sieve-connect --activate: .active -> interop.sieve (rc %d %r)" % (
                    res.returncode, (res.stdout + res.stderr)[-300:]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    postern = sys.argv[1]
    implicit = free_port()
    extra = ("listener sieve-tls {\n  role = managesieve\n  address = 127.0.0.1\n"
             "  port = %d\n  tls = implicit\n}\n" % implicit)
    r = Results()
    with Daemon(postern, roles=("managesieve", "smtp"), extra_config=extra) as d:
        d.implicit_port = implicit
        d.add_user(USER, PASSWORD)
        r.run("greeting", lambda: test_greeting(d, r))
        r.run("implicit TLS", lambda: test_implicit_tls(d, r))
        r.run("authenticate", lambda: test_authenticate(d, r))
        r.run("scripts", lambda: test_scripts(d, r))
        r.run("names", lambda: test_names(d, r))
        r.run("limits", lambda: test_limits(d, r))
        r.run("bad input", lambda: test_bad_input(d, r))
        r.run("delivery", lambda: test_delivery(d, r))
        r.run("sieve-connect", lambda: test_sieve_connect(d, r))
    r.finish()


if __name__ == "__main__":
    main()
