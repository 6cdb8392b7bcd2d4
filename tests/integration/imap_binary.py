"""IMAP BINARY (RFC 3516) on the wire, exact bytes.

A multipart message with a base64 part holding NUL and 8-bit octets, a
quoted-printable part, a part in an unknown transfer encoding and a part
with broken base64 is APPENDed, then:
- BINARY is advertised after login;
- BINARY.PEEK[2] is the decoded octets as a literal8 (~{n}, they hold
  NUL), BINARY.SIZE[2] their count, BINARY.PEEK[2]<1.3> a slice;
- BINARY.PEEK[3] is the QP part decoded (soft line break joined), as a
  plain literal; BINARY[3] (not PEEK) sets \\Seen and reports it;
- BINARY[4] (x-uuencode) fails with NO [UNKNOWN-CTE], BINARY[5] (broken
  base64) with NO [PARSE]; BINARY[HEADER] is BAD; BINARY[9] is empty;
- APPEND with a literal8 (~{n}) stores the message; one holding NUL is
  refused with NO and nothing is stored.

Usage: imap_binary.py /path/to/postern
"""
import base64
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, LineClient, Results  # noqa: E402

USER = "bin@example.test"
PASSWORD = "bin-secret-1"
RAW = b"\x00\x01binary\xff\xfe\x00end"

MSG = (b"From: a@example.test\r\nTo: bin@example.test\r\nSubject: binary parts\r\n"
       b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
       b"--XX\r\nContent-Type: text/plain\r\n\r\nplain part\r\n"
       b"--XX\r\nContent-Type: application/octet-stream\r\n"
       b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(RAW) + b"\r\n"
       b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n"
       b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 soft=\r\nbreak\r\n"
       b"--XX\r\nContent-Type: application/octet-stream\r\n"
       b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\nend\r\n"
       b"--XX\r\nContent-Type: application/octet-stream\r\n"
       b"Content-Transfer-Encoding: base64\r\n\r\n!!!not*base64!!!\r\n"
       b"--XX--\r\n")


class Imap(LineClient):
    def __init__(self, port):
        super().__init__(port, tls=True)
        self.raw_line()
        self.n = 0

    def read_response(self, tag):
        """Everything up to and including the tagged line, literals
        (plain and literal8) read by their counts."""
        out = b""
        while True:
            line = self.raw_line()
            out += line + b"\r\n"
            m = re.search(rb"~?\{(\d+)\}$", line)
            if m:
                n = int(m.group(1))
                while len(self.buf) < n:
                    self._fill()
                out += self.buf[:n]
                self.buf = self.buf[n:]
                continue
            if line.startswith(tag + b" "):
                return out

    def cmd(self, text):
        self.n += 1
        tag = b"b%d" % self.n
        self.send(tag + b" " + (text if isinstance(text, bytes) else text.encode()) + b"\r\n")
        return self.read_response(tag), tag


def main():
    if len(sys.argv) < 2:
        print("usage: imap_binary.py POSTERN")
        return 2
    res = Results()
    with Daemon(sys.argv[1], roles=("imaps",)) as d:
        d.add_user(USER, PASSWORD)
        c = Imap(d.port("imaps"))
        out, tag = c.cmd("LOGIN %s %s" % (USER, PASSWORD))
        res.check(b" BINARY" in out.split(tag + b" OK")[1].split(b"]")[0],
                  "BINARY is in the CAPABILITY after login")
        out, tag = c.cmd(b"APPEND INBOX {%d+}\r\n" % len(MSG) + MSG)
        res.check(tag + b" OK" in out, "the message is appended")
        c.cmd("SELECT INBOX")

        out, tag = c.cmd("FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2])")
        res.check(b"BINARY[2] ~{%d}\r\n" % len(RAW) + RAW in out,
                  "BINARY.PEEK[2]: the base64 part decoded, as literal8 (%r)" % out[:160])
        res.check(b"BINARY.SIZE[2] %d" % len(RAW) in out, "BINARY.SIZE[2] is %d" % len(RAW))
        out, tag = c.cmd("FETCH 1 (BINARY.PEEK[2]<1.3>)")
        res.check(b"BINARY[2]<1> ~{3}\r\n" + RAW[1:4] in out or
                  b"BINARY[2]<1> {3}\r\n" + RAW[1:4] in out,
                  "BINARY.PEEK[2]<1.3> is octets 1..3 (%r)" % out[:120])
        qp = "café softbreak".encode()  # the CRLF before a boundary is the boundary's
        out, tag = c.cmd("FETCH 1 (BINARY.PEEK[3] FLAGS)")
        res.check(b"BINARY[3] {%d}\r\n" % len(qp) + qp in out and b"\\Seen" not in out,
                  "BINARY.PEEK[3]: quoted-printable decoded, a plain literal, no \\Seen (%r)"
                  % out[:160])
        out, tag = c.cmd("FETCH 1 (BINARY[3])")
        res.check(b"\\Seen" in out, "BINARY[3] without PEEK sets \\Seen and reports it (%r)"
                  % out[-120:])
        out, tag = c.cmd("FETCH 1 (BINARY.PEEK[4])")
        res.check(out.startswith(tag + b" NO [UNKNOWN-CTE]"),
                  "x-uuencode: NO [UNKNOWN-CTE] (%r)" % out[:100])
        out, tag = c.cmd("FETCH 1 (BINARY.PEEK[5])")
        res.check(out.startswith(tag + b" NO [PARSE]"), "broken base64: NO [PARSE] (%r)" % out[:100])
        out, tag = c.cmd("FETCH 1 (BINARY.SIZE[4])")
        res.check(out.startswith(tag + b" NO [UNKNOWN-CTE]"),
                  "BINARY.SIZE of x-uuencode: NO [UNKNOWN-CTE]")
        out, tag = c.cmd("FETCH 1 (BINARY.PEEK[HEADER])")
        res.check(out.startswith(tag + b" BAD"), "BINARY[HEADER] is BAD (part numbers only)")
        out, tag = c.cmd("FETCH 1 (BINARY.PEEK[9] BINARY.SIZE[9])")
        res.check((b'BINARY[9] ""' in out or b"BINARY[9] {0}" in out) and
                  b"BINARY.SIZE[9] 0" in out, "a part that does not exist is empty (%r)" % out)
        out, tag = c.cmd("FETCH 1 (BINARY.PEEK[1] BODY.PEEK[1])")
        res.check(out.count(b"{10}\r\nplain part") == 2,
                  "a 7bit part is the same as BINARY and BODY (%r)" % out)

        small = b"Subject: literal8\r\n\r\n8-bit \xc3\xa9 but no NUL\r\n"
        out, tag = c.cmd(b"APPEND INBOX ~{%d+}\r\n" % len(small) + small)
        res.check(tag + b" OK" in out, "APPEND with a literal8 is stored (%r)" % out[-80:])
        out, tag = c.cmd("FETCH 2 (BODY.PEEK[])")
        res.check(small in out, "and reads back byte for byte")
        nul = b"Subject: nul\r\n\r\na\x00b\r\n"
        out, tag = c.cmd(b"APPEND INBOX ~{%d+}\r\n" % len(nul) + nul)
        res.check(tag + b" NO" in out, "APPEND of content with NUL is refused with NO (%r)" % out)
        out, tag = c.cmd("NOOP")
        res.check(b"* 3 EXISTS" not in out, "nothing was stored for it")
        c.cmd("LOGOUT")
        c.close()
    res.finish()


if __name__ == "__main__":
    sys.exit(main())
