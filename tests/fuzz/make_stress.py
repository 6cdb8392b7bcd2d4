#!/usr/bin/python3
"""Write ~1 MB pathological inputs for each fuzz harness into a directory
(default /tmp/postern-stress/NAME/), to look for quadratic behaviour that
the fuzzers' short inputs cannot show.  Replay them with the harness
programs and time it (tests/fuzz/README.md):

    tests/fuzz/make_stress.py /tmp/postern-stress
    time BUILD/fuzz_meta /tmp/postern-stress/meta

Each file targets one loop that could go quadratic: many lines starting
with a boundary prefix, deep nesting, huge folded fields, long address
lists, many parameters, long runs of dots, CRs or quotes.
"""
import os
import sys

MB = 1024 * 1024
out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/postern-stress"


def w(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("latin-1")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def fill(unit, size=MB):
    return unit * (size // len(unit))


# maildir metadata
mp = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n"
w("meta", "empty-boundary-lines", mp % "" + fill("--\r\n"))
w("meta", "near-boundary-lines", mp % ("b" * 70) + fill("--" + "b" * 69 + "\r\n"))
deep = "".join(mp % ("b%02d" % i) + "--b%02d\r\n" % i for i in range(40))
w("meta", "deep-then-lines", deep + fill("--b00x\r\n"))
w("meta", "many-parts", mp % "x" + fill("--x\r\nContent-Type: text/plain\r\n\r\nx\r\n"))
w("meta", "folded-field", "Subject: x\r\n" + fill(" y\r\n") + "\r\nbody\r\n")
w("meta", "many-fields", fill("X-A: b\r\n") + "\r\nbody\r\n")
w("meta", "long-to", "To: " + fill("a@b.c, ") + "\r\n\r\n")
w("meta", "long-phrase", "From: " + fill("word ") + "\r\n\r\n")
w("meta", "nested-comments", "From: " + "(" * (MB // 2) + ")" * (MB // 2) + "\r\n\r\n")
w("meta", "group-no-end", "To: g: " + fill("a, ") + "\r\n\r\n")
w("meta", "many-params", "Content-Type: text/plain" + fill("; a*%d=b" % 7) + "\r\n\r\n")
w("meta", "rfc2231-sections", "Content-Type: text/plain" +
  "".join("; n*%d=v" % i for i in range(60000)) + "\r\n\r\n")
w("meta", "base64-body", "Content-Transfer-Encoding: base64\r\n\r\n" + fill("QUJD\r\n"))
w("meta", "qp-spaces", "Content-Transfer-Encoding: quoted-printable\r\n\r\n" + fill(" "))
w("meta", "rfc822-chain", "".join("Content-Type: message/rfc822\r\n\r\n" for _ in range(40)) +
  fill("x\r\n"))
w("meta", "bare-lf-lines", mp % "q" + fill("--q\n"))

# config
w("config", "long-lines", fill("# " + "x" * 4000 + "\n"))
w("config", "many-domains", "hostname = a.example\ndata_dir = /d\n" +
  "domains = " + ",".join("d%d.example" % i for i in range(60)) + "\n" + fill("\n"))

# auth files
w("auth_files", "many-users", "".join("u%d@example.org $y$x\n" % i for i in range(40000)))
w("auth_files", "long-alias", "a@example.org " + " ".join("t%d@example.org" % i for i in range(100)) + "\n"
  + "".join("a%d@example.org b@example.org\n" % i for i in range(30000)))

# sasl / base64 (lines are bounded by AUTH_SASL_MAX; a long one is refused early)
w("sasl", "long-line", b"\x04\n" + b"QUFB" * (MB // 4))
w("sasl", "many-lines", b"\x01\n" + b"QUFB\n" * (MB // 5))

# smtp
w("smtp_cmd", "long-line", b"\x08" + b"MAIL FROM:<" + b"a" * MB + b">\r\n")
w("smtp_cmd", "many-crs", b"\x08" + b"\r" * MB)
w("smtp_cmd", "many-lines", b"\x08" + b"NOOP\r\n" * (MB // 6))
w("smtp_data", "dots", b"\x00" + b".\r\n." * (MB // 4))
w("smtp_data", "crs", b"\x02" + b"\r" * MB)
w("smtp_data", "from-quotes", b"\x00From: " + b'"a",' * (MB // 4) + b"\r\n\r\n")
w("smtp_data", "from-comments", b"\x00From: " + b"(" * (MB // 2) + b")" * (MB // 2) + b"\r\n\r\n")
w("smtp_data", "from-words", b"\x00From: " + b"w " * (MB // 2) + b"\r\n\r\n")
w("smtp_data", "no-header-end", b"\xfc" + b"X: y\r\n" * (MB // 6))

# pop3
w("pop3", "dots", b"\x00" + b".\n" * (MB // 2))
w("pop3", "lfs-top", b"\x03" + b"\n" * MB)
w("pop3", "one-line", b"\x00" + b"x" * MB)
