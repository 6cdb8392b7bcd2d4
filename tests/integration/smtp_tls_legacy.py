"""Port 25 takes TLS 1.0 and 1.1 from senders that have nothing better
(smtp_inbound_tls_min, default 1.0); submission stays TLS 1.2+.  Python's
ssl module forced to TLS 1.0 / 1.1 (ciphers "DEFAULT@SECLEVEL=0", since
Debian's OpenSSL refuses those versions at its default security level)
does STARTTLS on port 25 and delivers a message, and is refused on 587;
with smtp_inbound_tls_min = 1.2, port 25 refuses it too.  Run by ctest
with the postern binary as argv[1]."""
import smtplib
import ssl
import sys

from postern_test import Daemon, Results, skip

USER = "alice@example.test"


def old_tls(version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT@SECLEVEL=0")
    ctx.minimum_version = version
    ctx.maximum_version = version
    return ctx


def try_starttls(port, ctx, send=False):
    """The negotiated TLS version, or the error text."""
    s = smtplib.SMTP("127.0.0.1", port, timeout=20)
    try:
        s.ehlo("old.example.org")
        try:
            s.starttls(context=ctx)
        except (ssl.SSLError, OSError, smtplib.SMTPException) as e:
            return "refused: %s" % e
        version = s.sock.version()
        s.ehlo("old.example.org")
        if send:
            s.sendmail("old@example.org", [USER],
                       b"From: old@example.org\r\nSubject: old TLS\r\n\r\nhello\r\n")
        s.quit()
        return version
    finally:
        s.close()


def main():
    postern = sys.argv[1]
    r = Results()
    for v in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        try:
            old_tls(v)
        except (ValueError, ssl.SSLError) as e:
            skip("this Python/OpenSSL cannot offer %s: %s" % (v.name, e))

    with Daemon(postern, roles=("smtp", "submission"),
                extra_config="smtp_pregreet_delay = 0\n") as d:
        d.add_user(USER, "legacy-tls-pass-1")
        for v, name in ((ssl.TLSVersion.TLSv1, "TLSv1"), (ssl.TLSVersion.TLSv1_1, "TLSv1.1")):
            got = try_starttls(d.port("smtp"), old_tls(v), send=True)
            r.check(got == name, "port 25 (default): %s works (%s)" % (name, got))
            got = try_starttls(d.port("submission"), old_tls(v))
            r.check(got.startswith("refused"), "submission: %s refused (%s)" % (name, got))
        modern = ssl.create_default_context()
        modern.check_hostname = False
        modern.verify_mode = ssl.CERT_NONE
        got = try_starttls(d.port("smtp"), modern)
        r.check(got == "TLSv1.3", "port 25: a modern client still gets TLS 1.3 (%s)" % got)
        inbox = open_inbox(d)
        r.check("using TLSv1 with cipher" in inbox and "using TLSv1.1 with cipher" in inbox,
                "both messages delivered, their Received: headers name TLS 1.0 and 1.1")

    with Daemon(postern, roles=("smtp",),
                extra_config="smtp_pregreet_delay = 0\nsmtp_inbound_tls_min = 1.2\n") as d:
        got = try_starttls(d.port("smtp"), old_tls(ssl.TLSVersion.TLSv1))
        r.check(got.startswith("refused"),
                "smtp_inbound_tls_min = 1.2: port 25 refuses TLS 1.0 (%s)" % got)
        got = try_starttls(d.port("smtp"), old_tls(ssl.TLSVersion.TLSv1_2))
        r.check(got == "TLSv1.2", "smtp_inbound_tls_min = 1.2: TLS 1.2 works (%s)" % got)

    d = Daemon(postern, roles=("smtp",), extra_config="smtp_inbound_tls_min = 1.3\n")
    res = d.cli("check", check=False)
    err = res.stderr.decode()
    r.check(res.returncode == 78 and "postern.conf:" in err and "1.0, 1.1 or 1.2" in err,
            "smtp_inbound_tls_min = 1.3: exit 78 with FILE:LINE (%s)" % err.strip())
    r.finish()


def open_inbox(d):
    import glob
    import os
    text = ""
    for f in glob.glob(os.path.join(d.data, "mail", "example.test", "alice", "new", "*")):
        with open(f, errors="replace") as fh:
            text += fh.read()
    return text


if __name__ == "__main__":
    main()
