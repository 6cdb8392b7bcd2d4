"""Inbound mail authentication on port 25: SPF, DKIM, DMARC and the
Authentication-Results field, end to end through the daemon.

dnsmasq (tests/helpers/dns_server.py) serves the TXT records: SPF records,
DMARC policies, and DKIM keys of two signers: Debian's python3-dkim
(dkimpy, rsa-sha256 and ed25519-sha256, relaxed and simple, with and
without l=) and Postern's own signer (tests/helpers/dkim_sign.c over keys
from `postern dkim generate`, the records `postern dns` prints).  The
client talks from 127.0.0.2 with trusted_networks limited to 127.0.0.3, so
its mail is checked; the stored files are read back from the Maildir.

Run by ctest: smtp_inbound.py POSTERN DKIM_SIGN."""
import base64
import imaplib
import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

from postern_test import Daemon, Results, free_port, maildir_files, skip, tls_context
from dns_server import start_dnsmasq, stop_dnsmasq, txt_record
from smtp_util import USER, PASSWORD

try:
    import dkim
    import nacl.signing
except ImportError:
    skip("python3-dkim (with python3-nacl) is not installed (apt-get install python3-dkim)")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dkim_verify import parse_dns, txt_strings  # noqa: E402

CLIENT = "127.0.0.2"
TRUSTED = "127.0.0.3"
AUTHSERV = "mail.example.test"


def crlf(text):
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def message(from_addr, subject, body="Hello.\n", extra=""):
    return crlf("From: %s\nTo: %s\nSubject: %s\nDate: Sun, 06 Dec 2026 20:00:00 +0000\n"
                "Message-ID: <%s@test>\n%s\n%s" % (from_addr, USER, subject,
                                                   subject.replace(" ", "."), extra, body))


def rsa_key(tmp, name):
    """(PEM private key, base64 DER public key) made by openssl."""
    path = os.path.join(tmp, name + ".pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", path], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    der = subprocess.run(["openssl", "pkey", "-in", path, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    with open(path, "rb") as f:
        return f.read(), base64.b64encode(der).decode()


class Keys:
    """The independent signer's keys and the records that publish them."""

    def __init__(self, tmp):
        self.rsa, rsa_pub = rsa_key(tmp, "indep")
        sk = nacl.signing.SigningKey.generate()
        self.ed = base64.b64encode(bytes(sk))
        ed_pub = base64.b64encode(bytes(sk.verify_key)).decode()
        self.records = [
            txt_record("py._domainkey.indep.test", "v=DKIM1; k=rsa; p=" + rsa_pub),
            txt_record("pyed._domainkey.indep.test", "v=DKIM1; k=ed25519; p=" + ed_pub),
            txt_record("py._domainkey.testkey.test", "v=DKIM1; t=y; p=" + rsa_pub),
            txt_record("py._domainkey.revoked.test", "v=DKIM1; p="),
            txt_record("py._domainkey.strict.test", "v=DKIM1; t=s; p=" + rsa_pub),
            txt_record("py._domainkey.lpart.test", "v=DKIM1; p=" + rsa_pub),
            txt_record("_dmarc.lpart.test", "v=DMARC1; p=quarantine"),
        ]

    def sign_rsa(self, msg, domain="indep.test", canon=(b"relaxed", b"relaxed"),
                 length=False, identity=None):
        return dkim.sign(msg, b"py", domain.encode(), self.rsa, canonicalize=canon,
                         length=length, identity=identity) + msg

    def sign_ed(self, msg, canon=(b"relaxed", b"simple")):
        return dkim.sign(msg, b"pyed", b"indep.test", self.ed, canonicalize=canon,
                         signature_algorithm=b"ed25519-sha256") + msg


def own_keys(postern, tmp):
    """Keys of own.test by `postern dkim generate`, published as `postern dns`
    prints them; returns (data_dir, records)."""
    d = Daemon(postern, roles=("smtp",), domains=("own.test",), tls=False)
    d.cli("dkim", "generate", "own.test")
    records = []
    for name, rrs in parse_dns(d.cli("dns", "own.test").stdout.decode()).items():
        if "_domainkey" not in name:
            continue
        for rtype, rdata in rrs:
            if rtype == "TXT":
                records.append(txt_record(name.rstrip("."), "".join(txt_strings(rdata))))
    return d, records


def sign_own(signer, own, msg):
    res = subprocess.run([signer, own.data, "own.test", str(int(time.time())), "7"],
                         input=msg, capture_output=True)
    if res.returncode != 0:
        raise AssertionError("dkim_sign: %s" % res.stderr.decode(errors="replace"))
    return res.stdout


def send(port, mail_from, data, source=CLIENT, helo="client.indep.test"):
    """One transaction from source; (code, reply) of the end of DATA."""
    s = smtplib.SMTP("127.0.0.1", port, local_hostname=helo, timeout=60,
                     source_address=(source, 0))
    try:
        s.ehlo(helo)
        code, msg = s.mail(mail_from)
        if code != 250:
            return code, msg
        code, msg = s.rcpt(USER)
        if code != 250:
            return code, msg
        try:
            return s.data(data)
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            s.close()


def stored(d, before, folder=""):
    """The message stored after `before` files were there."""
    deadline = time.time() + 10
    while time.time() < deadline:
        files = maildir_files(d, USER, folder)
        if len(files) > before:
            with open(files[-1], "rb") as f:
                return f.read()
        time.sleep(0.05)
    return None


def authres(msg):
    """Our Authentication-Results field, unfolded, or None."""
    m = re.search(rb"^Authentication-Results: " + re.escape(AUTHSERV.encode()) +
                  rb";.*?\r\n(?![ \t])", msg, re.S | re.M)
    return re.sub(rb"\r\n[ \t]", b" ", m.group(0)).decode() if m else None


def deliver(r, d, what, mail_from, data, folder="", source=CLIENT, helo="client.indep.test"):
    before = len(maildir_files(d, USER, folder))
    code, reply = send(d.port("smtp"), mail_from, data, source=source, helo=helo)
    r.check(code == 250, "%s: 250 at the end of DATA (%d %r)" % (what, code, reply))
    msg = stored(d, before, folder)
    r.check(msg is not None, "%s: stored%s" % (what, " in " + folder if folder else ""))
    return msg or b""


def tests(d, r, keys, signer, own):
    port = d.port("smtp")

    # ---- DKIM by the independent signer, SPF pass, DMARC pass -----------------
    m = keys.sign_rsa(message("Alice <alice@indep.test>", "rsa relaxed"))
    got = deliver(r, d, "dkimpy rsa-sha256", "alice@indep.test", m)
    ar = authres(got) or ""
    r.check(got.startswith(b"Return-Path: <alice@indep.test>\r\nAuthentication-Results: "),
            "Authentication-Results right below Return-Path, above Received")
    r.check("dkim=pass" in ar and "header.d=indep.test header.s=py header.a=rsa-sha256" in ar,
            "dkim=pass with header.d/s/a: %s" % ar)
    r.check("spf=pass smtp.mailfrom=alice@indep.test" in ar, "spf=pass for MAIL FROM")
    r.check("spf=pass smtp.helo=client.indep.test" in ar, "spf=pass for HELO")
    r.check("dmarc=pass" in ar and "header.from=indep.test" in ar, "dmarc=pass: %s" % ar)

    for canon in ((b"simple", b"simple"), (b"relaxed", b"simple"), (b"simple", b"relaxed")):
        m = keys.sign_rsa(message("alice@indep.test", "canon %s %s" % canon,
                                  body="Some   spaced\ttext  \n\n\n"), canon=canon)
        ar = authres(deliver(r, d, "dkimpy %s/%s" % canon, "alice@indep.test", m)) or ""
        r.check("dkim=pass" in ar, "c=%s/%s verifies: %s" % (canon[0].decode(),
                                                              canon[1].decode(), ar))

    # BDAT (RFC 3030) in two chunks takes the same path
    m = keys.sign_rsa(message("alice@indep.test", "bdat"))
    before = len(maildir_files(d, USER))
    c = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(CLIENT, 0))
    half = len(m) // 2
    c.sendall(b"EHLO client.indep.test\r\nMAIL FROM:<alice@indep.test>\r\n"
              b"RCPT TO:<%s>\r\nBDAT %d\r\n%sBDAT %d LAST\r\n%sQUIT\r\n"
              % (USER.encode(), half, m[:half], len(m) - half, m[half:]))
    replies = b""
    while True:
        chunk = c.recv(65536)
        if not chunk:
            break
        replies += chunk
    c.close()
    ar = authres(stored(d, before) or b"") or ""
    r.check(b"250 2.0.0 Ok: delivered" in replies and "dkim=pass" in ar,
            "BDAT in two chunks: verified and delivered: %s" % ar)

    m = keys.sign_ed(message("alice@indep.test", "ed25519"))
    ar = authres(deliver(r, d, "dkimpy ed25519", "alice@indep.test", m)) or ""
    r.check("dkim=pass" in ar and "header.a=ed25519-sha256" in ar,
            "ed25519-sha256 (RFC 8463) verifies: %s" % ar)

    # two signatures, one broken by a change after signing
    m = message("alice@indep.test", "two sigs")
    m = keys.sign_ed(m)
    m = keys.sign_rsa(m)
    m = m.replace(b"Subject: two sigs", b"Subject: two sigz")
    ar = authres(deliver(r, d, "two broken signatures", "alice@indep.test", m)) or ""
    r.check(ar.count("dkim=fail") == 2, "a changed Subject fails both signatures: %s" % ar)
    m = keys.sign_rsa(keys.sign_ed(message("alice@indep.test", "body change")))
    m = m.replace(b"Hello.", b"Hellp.")
    ar = authres(deliver(r, d, "body change", "alice@indep.test", m)) or ""
    r.check("body hash did not verify" in ar, "a changed body: body hash fails: %s" % ar)

    # ---- Postern's own signer ---------------------------------------------------
    m = sign_own(signer, own, message("Owen <owen@own.test>", "own signer",
                                      body="Signed by   Postern.\n\n"))
    ar = authres(deliver(r, d, "own signer", "owen@own.test", m)) or ""
    r.check(ar.count("dkim=pass") == 2 and "header.d=own.test" in ar,
            "both of Postern's signatures (rsa, ed25519) verify: %s" % ar)
    r.check("spf=fail" in ar, "own.test publishes -all: spf=fail: %s" % ar)
    r.check("dmarc=pass" in ar, "aligned DKIM passes DMARC despite SPF: %s" % ar)

    # ---- l= --------------------------------------------------------------------
    m = keys.sign_rsa(message("x@lpart.test", "with l"), domain="lpart.test", length=True)
    m += b"Appended by someone else.\r\n"
    got = deliver(r, d, "l= with appended text", "other@spf-none.test", m, folder="Junk")
    ar = authres(got) or ""
    r.check("dkim=pass (l= left 27 body octets unsigned)" in ar,
            "l=: the result says what is unsigned: %s" % ar)
    r.check("dmarc=fail" in ar, "l= with unsigned content does not satisfy DMARC: %s" % ar)

    # ---- key records: t=y, revoked, t=s -----------------------------------------
    m = keys.sign_rsa(message("x@testkey.test", "test key"), domain="testkey.test")
    ar = authres(deliver(r, d, "t=y key", "x@testkey.test", m)) or ""
    r.check("dkim=pass (key in test mode)" in ar, "t=y: marked test mode: %s" % ar)
    m = keys.sign_rsa(message("x@revoked.test", "revoked"), domain="revoked.test")
    ar = authres(deliver(r, d, "revoked key", "x@revoked.test", m)) or ""
    r.check("dkim=permerror (key revoked)" in ar, "empty p=: key revoked: %s" % ar)
    m = keys.sign_rsa(message("x@strict.test", "t=s"), domain="strict.test",
                      identity=b"x@sub.strict.test")
    ar = authres(deliver(r, d, "t=s key", "x@strict.test", m)) or ""
    r.check("dkim=permerror (t=s key" in ar, "t=s with i= in a subdomain: %s" % ar)
    ar = authres(deliver(r, d, "unsigned", "x@indep.test",
                         message("x@indep.test", "unsigned"))) or ""
    r.check("dkim=none" in ar, "an unsigned message: dkim=none: %s" % ar)

    # ---- SPF results -------------------------------------------------------------
    for domain, want in (("spf-none.test", "none"), ("softfail.test", "softfail"),
                         ("neutral.test", "neutral"), ("perm.test", "permerror")):
        ar = authres(deliver(r, d, "spf " + want, "x@" + domain,
                             message("x@" + domain, "spf " + want))) or ""
        r.check("spf=%s smtp.mailfrom=x@%s" % (want, domain) in ar,
                "MAIL FROM in %s: spf=%s: %s" % (domain, want, ar))
    ar = authres(deliver(r, d, "spf fail exp", "x@softfail.test",
                         message("x@softfail.test", "helo fail"),
                         helo="bad.helo.test")) or ""
    r.check("spf=fail smtp.helo=bad.helo.test" in ar, "HELO identity checked: %s" % ar)

    # ---- DMARC dispositions ------------------------------------------------------
    before = len(maildir_files(d, USER)), len(maildir_files(d, USER, "Junk"))
    code, reply = send(port, "x@indep.test", message("CEO <ceo@reject.test>", "forged"))
    r.check(code == 550 and reply.startswith(b"5.7.1"),
            "forged From: of a p=reject domain: 550 5.7.1 (%d %r)" % (code, reply))
    time.sleep(0.3)
    r.check((len(maildir_files(d, USER)), len(maildir_files(d, USER, "Junk"))) == before,
            "and nothing was stored")
    got = deliver(r, d, "p=quarantine", "x@indep.test",
                  message("Bank <bank@quar.test>", "phish"), folder="Junk")
    ar = authres(got) or ""
    r.check("dmarc=fail (p=quarantine) header.from=quar.test" in ar,
            "p=quarantine failure goes to Junk with dmarc=fail: %s" % ar)
    # a user who deleted Junk gets it back rather than a bounce
    im = imaplib.IMAP4("127.0.0.1", d.port("imap"))
    im.starttls(ssl_context=tls_context())
    im.login(USER, PASSWORD)
    typ, _ = im.delete("Junk")
    r.check(typ == "OK", "IMAP DELETE Junk")
    got = deliver(r, d, "p=quarantine without Junk", "x@indep.test",
                  message("Bank <bank@quar.test>", "phish again"), folder="Junk")
    typ, data = im.list('""', "Junk")
    r.check(typ == "OK" and data[0] is not None and b"\\Junk" in data[0],
            "Junk is created again (\\Junk special-use): %r" % (data,))
    im.logout()
    ar = authres(deliver(r, d, "p=reject subdomain sp=none", "x@indep.test",
                         message("x@news.reject.test", "subdomain"))) or ""
    r.check("dmarc=fail" in ar and "p=none" in ar,
            "sp=none of the organisational domain for a subdomain: %s" % ar)

    # ---- forged Authentication-Results ------------------------------------------
    forged = ("Authentication-Results: %s; dkim=pass header.d=bank.test;\n"
              "\tdmarc=pass header.from=bank.test\n"
              "Authentication-Results: relay.other.test; spf=pass\n" % AUTHSERV)
    got = deliver(r, d, "spoofed header", "x@indep.test",
                  message("x@indep.test", "spoofed", extra=forged))
    r.check(got.count(b"Authentication-Results: " + AUTHSERV.encode()) == 1 and
            b"header.d=bank.test" not in got,
            "an incoming Authentication-Results with our authserv-id is removed")
    r.check(b"Authentication-Results: relay.other.test; spf=pass" in got,
            "another server's Authentication-Results stays")
    allhead = crlf("From: x@indep.test\nAuthentication-Results: %s; dmarc=pass\n"
                   "Subject: no body\n" % AUTHSERV)
    got = deliver(r, d, "all header", "x@indep.test", allhead)
    r.check(got.count(b"Authentication-Results: ") == 1 and b"dmarc=pass\r\n" not in got,
            "a message that is all header loses its forged field too")

    # a header block too large to be searched for forged fields is refused
    big = message("x@indep.test", "big header",
                  extra="".join("X-Filler-%d: %s\n" % (i, "y" * 900) for i in range(300)))
    code, reply = send(port, "x@indep.test", big)
    r.check(code == 552, "checked mail with a header block over 256 KB: 552 (%d %r)"
            % (code, reply))

    # ---- not checked: trusted networks, authenticated submission -----------------
    got = deliver(r, d, "trusted network", "x@reject.test",
                  message("x@reject.test", "trusted"), source=TRUSTED)
    r.check(b"Authentication-Results:" not in got,
            "mail from trusted_networks is not checked (not even p=reject)")
    s = smtplib.SMTP("127.0.0.1", d.port("submission"), timeout=30)
    s.starttls(context=tls_context())
    s.login(USER, PASSWORD)
    before = len(maildir_files(d, USER))
    s.sendmail(USER, [USER], message(USER, "submitted"))
    s.quit()
    got = stored(d, before) or b""
    r.check(got != b"" and b"Authentication-Results:" not in got,
            "authenticated submission is not checked")


def test_cache(r, tmp):
    """Answers are cached for their TTL: one query for a name asked by
    every message."""
    with open(os.path.join(tmp, "dnsmasq.log"), errors="replace") as f:
        log = f.read()
    n = len(re.findall(r"query\[TXT\] _dmarc\.indep\.test from", log))
    r.check(n == 1, "DNS answers cached per TTL: _dmarc.indep.test asked %d time(s)" % n)


def test_dns_down(postern, r):
    """Every DNS query fails: temperror everywhere, and the mail is delivered."""
    dead = free_port()
    extra = ("trusted_networks = %s/32\nsmtp_pregreet_delay = 0\n"
             "dns_resolver = 127.0.0.1:%d\n" % (TRUSTED, dead))
    with Daemon(postern, roles=("smtp",), extra_config=extra, tls=False) as d:
        d.add_user(USER, PASSWORD)
        m = message("x@reject.test", "dns down")
        got = deliver(r, d, "DNS down", "x@reject.test", m)
        ar = authres(got) or ""
        r.check("spf=temperror" in ar and "dmarc=temperror" in ar,
                "no DNS: temperror, message delivered: %s" % ar)


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    postern, signer = sys.argv[1], sys.argv[2]
    r = Results()
    tmp = tempfile.mkdtemp(prefix="postern-inbound-")
    dns_port = free_port()
    keys = Keys(tmp)
    own, own_records = own_keys(postern, tmp)
    # --local: names under test. that dnsmasq does not know are NXDOMAIN, as
    # from an authoritative server, not REFUSED (a DNS failure)
    records = ["--local-ttl=300", "--local=/test/"] + keys.records + own_records + [
        txt_record("indep.test", "v=spf1 ip4:%s -all" % CLIENT),
        txt_record("client.indep.test", "v=spf1 a -all"),
        "--host-record=client.indep.test,%s" % CLIENT,
        txt_record("_dmarc.indep.test", "v=DMARC1; p=reject"),
        txt_record("own.test", "v=spf1 -all"),
        txt_record("_dmarc.own.test", "v=DMARC1; p=reject"),
        txt_record("softfail.test", "v=spf1 ~all"),
        txt_record("bad.helo.test", "v=spf1 -all"),
        txt_record("neutral.test", "v=spf1 ?all"),
        txt_record("perm.test", "v=spf1 ip4:999.1.1.1 -all"),
        txt_record("spf-none.test", "not an spf record"),
        txt_record("reject.test", "v=spf1 ip4:192.0.2.1 -all"),
        txt_record("_dmarc.reject.test", "v=DMARC1; p=reject; sp=none"),
        txt_record("quar.test", "v=spf1 -all"),
        txt_record("_dmarc.quar.test", "v=DMARC1; p=quarantine; pct=100"),
        txt_record("testkey.test", "v=spf1 -all"),
    ]
    dns = start_dnsmasq(tmp, dns_port, records)
    try:
        extra = ("trusted_networks = %s/32\nsmtp_pregreet_delay = 0\n"
                 "dns_resolver = 127.0.0.1:%d\n" % (TRUSTED, dns_port))
        with Daemon(postern, roles=("smtp", "submission", "imap"), extra_config=extra) as d:
            d.add_user(USER, PASSWORD)
            r.run("inbound", lambda: tests(d, r, keys, signer, own))
            r.run("cache", lambda: test_cache(r, tmp))
            if r.failed:
                sys.stderr.write("---- daemon log ----\n" + d.log()[-8000:] + "\n")
        r.run("dns down", lambda: test_dns_down(postern, r))
    finally:
        stop_dnsmasq(dns)
        shutil.rmtree(own.dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    r.finish()


if __name__ == "__main__":
    main()
