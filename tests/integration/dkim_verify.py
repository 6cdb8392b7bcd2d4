"""DKIM signing checked by an independent implementation.

Keys come from `postern dkim generate`; the key records come from what
`postern dns` prints (so the DNS output is tested too); messages are signed
by dkim_sign (tests/helpers/dkim_sign.c: the signer the outbound queue
calls, fed in chunks of 1, 7, 4096 octets and whole) and every signature,
rsa-sha256 and ed25519-sha256, is verified by Debian's python3-dkim
(dkimpy).  Then one changed header or body byte must make dkimpy fail.

Run by ctest: dkim_verify.py POSTERN DKIM_SIGN."""
import os
import random
import re
import shutil
import subprocess
import sys
import time

from postern_test import Daemon, Results, skip

try:
    import dkim
except ImportError:
    skip("python3-dkim is not installed (apt-get install python3-dkim)")

DOMAIN = "example.test"
CHUNKS = (1, 7, 4096, 1 << 20)


def crlf(text):
    if isinstance(text, str):
        text = text.encode("utf-8")
    return text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


MESSAGES = {
    "plain": crlf(
        "From: Alice <alice@example.test>\n"
        "To: Bob <bob@example.org>\n"
        "Subject: Lunch\n"
        "Date: Sun, 06 Dec 2026 20:00:00 +0000\n"
        "Message-ID: <plain.1@example.test>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        "Shall we have lunch at noon?\n"
        "\n"
        "-- \n"
        "Alice\n"),
    "utf8": crlf(
        "From: =?UTF-8?Q?J=C3=BCrgen?= <juergen@example.test>\n"
        "To: Zo\u00eb <zoe@example.org>\n"
        "Subject: Gr\u00fc\u00dfe aus K\u00f6ln \u2014 \u00e7a va?\n"
        "Date: Sun, 06 Dec 2026 20:00:00 +0100\n"
        "Message-ID: <utf8.1@example.test>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n"
        "\n"
        "Sch\u00f6ne Gr\u00fc\u00dfe,   \t\n"
        "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8  und  \u20ac 5\n"),
    "multipart": crlf(
        "From: alice@example.test\n"
        "To: bob@example.org, carol@example.org\n"
        "Cc: dave@example.org\n"
        "Subject: Report attached\n"
        "Date: Sun, 06 Dec 2026 20:00:00 +0000\n"
        "Message-ID: <multi.1@example.test>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=\"=-b1\"\n"
        "\n"
        "This is a multi-part message in MIME format.\n"
        "--=-b1\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        "See the report =E2=80=94 attached.\n"
        "--=-b1\n"
        "Content-Type: application/octet-stream; name=\"r.bin\"\n"
        "Content-Transfer-Encoding: base64\n"
        "Content-Disposition: attachment; filename=\"r.bin\"\n"
        "\n"
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v\n"
        "--=-b1--\n"),
    "folded": crlf(
        "Received: from client.example.test by mail.example.test; Sun, 06 Dec 2026\n"
        "\t20:00:00 +0000\n"
        "From: Alice Example With A Rather Long Display Name\n"
        "   <alice@example.test>\n"
        "To: one@example.org, two@example.org, three@example.org, four@example.org,\n"
        " five@example.org, six@example.org, seven@example.org, eight@example.org,\n"
        "\tnine@example.org\n"
        "Subject: " + "a long subject line that goes on " * 6 + "\n"
        "  and is folded   with   odd   whitespace\t\n"
        "References: <a1@example.org> <a2@example.org> <a3@example.org>\n"
        " <a4@example.org> <a5@example.org>\n"
        "In-Reply-To: <a5@example.org>\n"
        "Date: Sun, 06 Dec 2026 20:00:00 +0000\n"
        "Message-ID: <folded.1@example.test>\n"
        "X-Mailer: not signed\n"
        "\n"
        "Body.\n"),
    "trailing_blank_lines": crlf(
        "From: alice@example.test\n"
        "Subject: trailing\n"
        "\n"
        "text   with  spaces   \n"
        "\n"
        "\n"
        "\n"
        "\n"),
    "no_trailing_crlf": crlf(
        "From: alice@example.test\n"
        "Subject: no final line end\n"
        "\n"
        "first line\n"
        "last line without CRLF").rstrip(b"\r\n"),
    "empty_body": crlf(
        "From: alice@example.test\n"
        "Subject: nothing to say\n"
        "\n"),
    "header_only": crlf(
        "From: alice@example.test\n"
        "Subject: no empty line at all\n"),
    "repeated_fields": crlf(
        "From: alice@example.test\n"
        "Subject: first\n"
        "Subject: second\n" +
        "".join("Cc: person%d@example.org\n" % i for i in range(11)) +
        "".join("Resent-To: r%d@example.org\n" % i for i in range(3)) +
        "\n"
        "More Cc fields than the signer lists (DKIM_SIGN_INSTANCES_MAX).\n"),
    "big": crlf(
        "From: alice@example.test\n"
        "Subject: big\n"
        "\n" + "".join("line %06d of a large body, with  two  spaces\n" % i
                       for i in range(4000))),
}


def parse_dns(text):
    """name -> list of (type, rdata) from `postern dns` output."""
    records = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        m = re.match(r"^(\S+)\s+IN\s+(\S+)\s+(.*)$", line)
        if m is None:
            raise AssertionError("not a zone-file record: %r" % line)
        records.setdefault(m.group(1).lower(), []).append((m.group(2), m.group(3)))
    return records


def txt_strings(rdata):
    return re.findall(r'"([^"]*)"', rdata)


def sig_tags(field):
    """tags of one DKIM-Signature field (bytes), whitespace removed."""
    value = field.split(b":", 1)[1]
    tags = {}
    for part in value.split(b";"):
        part = re.sub(rb"\s+", b"", part)
        if b"=" in part:
            k, v = part.split(b"=", 1)
            tags[k.decode()] = v.decode()
    return tags


def sig_fields(signed):
    """The DKIM-Signature fields at the top of a signed message."""
    fields = []
    for m in re.finditer(rb"^DKIM-Signature:.*?\r\n(?![ \t])", signed, re.S | re.M):
        fields.append(m.group(0))
    return fields


def verify_all(signed, dnsfunc, count):
    """dkimpy's verdict for each of the first `count` signatures."""
    out = []
    for idx in range(count):
        try:
            d = dkim.DKIM(signed)
            out.append(bool(d.verify(idx=idx, dnsfunc=dnsfunc)))
        except dkim.DKIMException as e:
            print("     dkimpy: %s" % e)
            out.append(False)
    return out


def main():
    postern, signer = sys.argv[1], sys.argv[2]
    r = Results()
    d = Daemon(postern, domains=(DOMAIN, "other.test"))
    now = int(time.time())
    try:
        # ---- key generation -------------------------------------------
        res = d.cli("dns", DOMAIN, check=False)
        r.check(res.returncode == 0 and b"no DKIM key" in res.stdout,
                "dns before any key: exit 0 and a hint (%d)" % res.returncode)
        res = d.cli("dkim", "generate", DOMAIN, check=False)
        r.check(res.returncode == 0, "dkim generate: exit 0 (%d %s)" % (
            res.returncode, res.stderr.decode(errors="replace")))
        keydir = os.path.join(d.data, "dkim", DOMAIN)
        for name in ("postern.rsa.key", "postern.ed25519.key"):
            path = os.path.join(keydir, name)
            ok = os.path.exists(path)
            r.check(ok and (os.stat(path).st_mode & 0o777) == 0o600,
                    "%s exists, mode 0600" % name)
        with open(os.path.join(keydir, "postern.rsa.key"), "rb") as f:
            rsa_pem = f.read()
        res = d.cli("dkim", "generate", DOMAIN, check=False)
        r.check(res.returncode == 73 and b"exists" in res.stderr,
                "second generate refused: exit 73 (%d)" % res.returncode)
        with open(os.path.join(keydir, "postern.rsa.key"), "rb") as f:
            r.check(f.read() == rsa_pem, "existing key left unchanged")
        for args, code, what in (
                (("dkim", "generate", "stranger.test"), 67, "unknown domain"),
                (("dkim", "generate", "bad domain"), 65, "bad domain name"),
                (("dkim", "generate", DOMAIN, "--selector", "a_b"), 65, "bad selector"),
                (("dkim", "generate"), 64, "no domain"),
                (("dkim", "rotate", DOMAIN), 64, "unknown subcommand"),
                (("dns", "stranger.test"), 67, "dns of an unknown domain"),
                (("dns", "-x"), 65, "dns of a bad name"),
                (("dns",), 64, "dns without a domain")):
            res = d.cli(*args, check=False)
            r.check(res.returncode == code, "%s: exit %d (%d)" % (what, code, res.returncode))

        # ---- postern dns -----------------------------------------------
        res = d.cli("dns", DOMAIN)
        text = res.stdout.decode()
        print(text)
        recs = parse_dns(text)
        apex = DOMAIN + "."
        r.check(("MX", "10 mail.example.test.") in recs.get(apex, []), "MX -> hostname")
        r.check(("TXT", '"v=spf1 mx -all"') in recs.get(apex, []), "SPF record")
        dmarc = recs.get("_dmarc." + apex, [])
        r.check(len(dmarc) == 1 and txt_strings(dmarc[0][1])[0].startswith("v=DMARC1; p=quarantine;")
                and "rua=mailto:postmaster@example.test" in dmarc[0][1], "DMARC record")
        for service, role, prio in (("submissions", "submissions", 0),
                                    ("submission", "submission", 10),
                                    ("imaps", "imaps", 0), ("imap", "imap", 10),
                                    ("pop3s", "pop3s", 20), ("pop3", "pop3", 30)):
            want = ("SRV", "%d 1 %d mail.example.test." % (prio, d.port(role)))
            r.check(recs.get("_%s._tcp.%s" % (service, apex)) == [want],
                    "SRV _%s._tcp: %s" % (service, want[1]))
        keyrecs = {}
        for sel, alg in (("postern-rsa", "rsa"), ("postern-ed25519", "ed25519")):
            name = "%s._domainkey.%s" % (sel, apex)
            got = recs.get(name, [])
            strings = txt_strings(got[0][1]) if len(got) == 1 else []
            value = "".join(strings)
            r.check(len(got) == 1 and all(len(s) <= 255 for s in strings)
                    and value.startswith("v=DKIM1; k=%s; p=" % alg),
                    "DKIM record %s (%d strings)" % (name, len(strings)))
            keyrecs[name.encode()] = value.encode()
        r.check(len(txt_strings(recs["postern-rsa._domainkey." + apex][0][1])) == 2,
                "RSA record split into two strings")

        def dnsfunc(name, timeout=5):
            if isinstance(name, str):
                name = name.encode()
            name = name.lower()
            if not name.endswith(b"."):
                name += b"."
            return keyrecs.get(name)

        # ---- sign and verify -------------------------------------------
        signed_msgs = {}
        for label, msg in MESSAGES.items():
            outputs = set()
            for chunk in CHUNKS:
                res = subprocess.run([signer, d.data, DOMAIN, str(now), str(chunk)],
                                     input=msg, capture_output=True, timeout=60)
                if res.returncode != 0:
                    r.check(False, "%s: dkim_sign chunk %d exited %d: %s" % (
                        label, chunk, res.returncode, res.stderr.decode(errors="replace")))
                    continue
                outputs.add(res.stdout)
            r.check(len(outputs) == 1, "%s: same signatures for chunks %s" % (label, CHUNKS))
            if not outputs:
                continue
            signed = outputs.pop()
            signed_msgs[label] = signed
            fields = sig_fields(signed)
            tags = [sig_tags(f) for f in fields]
            r.check([t.get("a") for t in tags] == ["rsa-sha256", "ed25519-sha256"],
                    "%s: rsa-sha256 and ed25519-sha256 signatures" % label)
            r.check(all(t.get("c") == "relaxed/relaxed" and t.get("d") == DOMAIN and
                        t.get("t") == str(now) and
                        t.get("h", "").lower().startswith("from:from") for t in tags),
                    "%s: c=relaxed/relaxed d= t= and From over-signed" % label)
            r.check(all(len(line) < 78 for f in fields for line in f.split(b"\r\n")),
                    "%s: signature lines below 78 columns" % label)
            r.check(signed.endswith(msg) and len(signed) == sum(map(len, fields)) + len(msg),
                    "%s: message unchanged after the fields" % label)
            r.check(verify_all(signed, dnsfunc, 2) == [True, True],
                    "%s: dkimpy verifies both signatures" % label)
            if not signed.endswith(b"\r\n"):
                r.check(verify_all(signed + b"\r\n", dnsfunc, 2) == [True, True],
                        "%s: and with the CRLF the SMTP transfer adds" % label)

        # ---- random messages: whitespace, folding, blank lines ----------
        # (CRLF only: dkimpy takes a bare LF for a line end, SMTP has none)
        rnd = random.Random(6376)
        atoms = [b"a", b"Z", b"0", b" ", b"  ", b"\t", b" \t ", b"\xc3\xa9", b";", b":"]

        def rline(maxlen):
            return b"".join(rnd.choice(atoms) for _ in range(rnd.randrange(maxlen)))

        bad = []
        for i in range(120):
            head = [b"From:" + rline(4) + b"a@example.test" + rline(3)]
            for name in rnd.sample([b"Subject", b"To", b"Cc", b"Date", b"X-Other",
                                    b"Message-ID", b"subject", b"CC"], rnd.randrange(5)):
                value = b"x" + rline(12)
                for _ in range(rnd.randrange(3)):
                    value += b"\r\n" + rnd.choice([b" ", b"\t", b"  \t"]) + b"y" + rline(6)
                head.append(name + rnd.choice([b":", b":\t"]) + value)
            rnd.shuffle(head)
            body = b"".join(rline(10) + b"\r\n" for _ in range(rnd.randrange(6)))
            body += rnd.choice([b"", b"\r\n", b"\r\n\r\n", b" \t\r\n \r\n", b"tail", b"tail \t"])
            msg = b"\r\n".join(head) + b"\r\n\r\n" + body
            res = subprocess.run([signer, d.data, DOMAIN, str(now), str(rnd.randrange(1, 64))],
                                 input=msg, capture_output=True, timeout=60)
            # A body without a final CRLF reaches the far side with one:
            # SMTP's DATA end needs it (RFC 5321 §4.1.1.4).  Verify that.
            # (dkimpy keeps the WSP of an unterminated last line, "tail \t"
            # -> "tail \r\n"; we treat it as the line it becomes, "tail\r\n",
            # which is what every verifier computes after the transfer.)
            received = res.stdout if res.stdout.endswith(b"\r\n") else res.stdout + b"\r\n"
            if res.returncode != 0 or verify_all(received, dnsfunc, 2) != [True, True]:
                bad.append((i, msg, res.returncode))
        for i, msg, rc in bad[:3]:
            print("     random message %d (dkim_sign %d): %r" % (i, rc, msg))
        r.check(not bad, "120 random messages verify with both keys (%d failed)" % len(bad))

        # ---- tampering --------------------------------------------------
        def tampered(label, what, data):
            got = verify_all(data, dnsfunc, 2)
            r.check(got == [False, False], "%s: %s -> dkimpy fails both (%s)" % (label, what, got))

        for label, signed in signed_msgs.items():
            head, sep, body = signed.partition(b"\r\n\r\n")
            subj = head.index(b"\r\nSubject:") + 12
            flipped = bytes([head[subj] ^ 0x01])
            tampered(label, "one Subject byte changed",
                     head[:subj] + flipped + head[subj + 1:] + sep + body)
            tampered(label, "a second From added",
                     b"From: mallory@example.org\r\n" + signed)
            if body.strip():
                pos = body.index(next(c for c in body if c not in b"\r\n \t").to_bytes(1, "big"))
                tampered(label, "one body byte changed",
                         head + sep + body[:pos] + bytes([body[pos] ^ 0x02]) + body[pos + 1:])
            else:
                tampered(label, "body text appended",
                         signed + (b"appended\r\n" if sep else b"\r\nappended\r\n"))
            # what a relaxed verifier must accept: an unsigned field on top,
            # refolded whitespace
            got = verify_all(b"X-Added: by a relay\r\n" + signed, dnsfunc, 2)
            r.check(got == [True, True], "%s: unsigned field added on top still verifies" % label)

        # a key record that is not the signer's: both fail
        other = d.cli("dkim", "generate", DOMAIN, "--selector", "other", check=False)
        r.check(other.returncode == 0, "second selector generated")
        recs2 = parse_dns(d.cli("dns", DOMAIN).stdout.decode())
        swapped = {
            ("postern-rsa._domainkey." + apex).encode():
                "".join(txt_strings(recs2["other-rsa._domainkey." + apex][0][1])).encode(),
            ("postern-ed25519._domainkey." + apex).encode():
                "".join(txt_strings(recs2["other-ed25519._domainkey." + apex][0][1])).encode(),
        }
        got = verify_all(signed_msgs["plain"], lambda n, timeout=5: swapped.get(
            (n.decode() if isinstance(n, bytes) else n).lower().rstrip(".").encode() + b"."), 2)
        r.check(got == [False, False], "wrong public keys: dkimpy fails both (%s)" % got)
        # now the domain has two selectors: four signatures, all verifying
        res = subprocess.run([signer, d.data, DOMAIN, str(now), "4096"],
                             input=MESSAGES["plain"], capture_output=True, timeout=60)
        keyrecs.update({k.lower().encode(): "".join(txt_strings(v[0][1])).encode()
                        for k, v in recs2.items() if "._domainkey." in k})
        r.check(res.returncode == 0 and len(sig_fields(res.stdout)) == 4 and
                verify_all(res.stdout, dnsfunc, 4) == [True] * 4,
                "two selectors: four signatures verify")
        res = subprocess.run([signer, d.data, "other.test", str(now), "1"],
                             input=MESSAGES["plain"], capture_output=True, timeout=60)
        r.check(res.returncode == 2, "domain without keys: nothing to sign (%d)" % res.returncode)

        # a damaged key file: dns says which, exit 66; signing refuses too
        with open(os.path.join(keydir, "other.ed25519.key"), "wb") as f:
            f.write(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
        res = d.cli("dns", DOMAIN, check=False)
        r.check(res.returncode == 66 and b"other.ed25519.key" in res.stderr,
                "damaged key: dns exits 66 naming the file (%d)" % res.returncode)
        res = subprocess.run([signer, d.data, DOMAIN, str(now), "1"],
                             input=MESSAGES["plain"], capture_output=True, timeout=60)
        r.check(res.returncode == 1 and b"other.ed25519.key" in res.stderr,
                "damaged key: the loader fails, naming the file")
        res = subprocess.run([postern, "help"], capture_output=True, timeout=30)
        r.check(b"dkim generate DOMAIN" in res.stdout and b"dns [--check] DOMAIN" in res.stdout,
                "postern help lists dkim generate and dns")
    finally:
        shutil.rmtree(d.dir, ignore_errors=True)
    r.finish()


if __name__ == "__main__":
    main()
