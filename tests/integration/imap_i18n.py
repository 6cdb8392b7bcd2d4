"""I18NLEVEL=1 (RFC 5255 §4.1): SEARCH compares text with RFC 5051
i;unicode-casemap (titlecase, then NFKD) for every script, over the wire
with SEARCH CHARSET UTF-8 and literals: German sharp s is not "SS",
Greek final sigma is sigma, precomposed and decomposed accents are one
text either way round, RFC 2047 words in the Subject, dotless i,
fullwidth letters, Hangul syllables and their jamo, Armenian case.

Usage: imap_i18n.py /path/to/postern
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results  # noqa: E402
from imap_protocol import Raw, USER, PASSWORD  # noqa: E402

MSG1 = ("From: a@example.test\r\n"
        "Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgZGVyIFN0cmHDn2U=?=\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "\u03a3\u039f\u03a6\u039f\u03a3 Cre\u0300me BR\u00dbL\u00c9E\r\n").encode()
MSG2 = ("From: b@example.test\r\n"
        "Subject: other\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "\u0131 \uff21\uff22\uff23 \ud55c\uad6d \u0532\u0531\u0550\u0535\u054e\r\n").encode()


def search(c, key, text):
    """SEARCH CHARSET UTF-8 key {n+} text: the numbers found (None: not OK)."""
    data = text.encode()
    res = c.cmd(b"SEARCH CHARSET UTF-8 " + key.encode() + b" {%d+}\r\n" % len(data) + data)
    if b" OK " not in res[-1]:
        return None
    return [int(x) for x in res[0].split()[2:]]


def test_search(d, r):
    c = Raw(d.port("imaps"), tls=True)
    caps = c.login()
    r.check(b" I18NLEVEL=1" in caps, "CAPABILITY offers I18NLEVEL=1: %r" % caps)
    for msg in (MSG1, MSG2):
        res = c.cmd(b"APPEND INBOX {%d+}\r\n" % len(msg) + msg)
        r.check(b" OK " in res[-1], "APPEND: %r" % res[-1])
    c.cmd("SELECT INBOX")
    cases = [
        ("SUBJECT", "stra\u00dfe", [1], "sharp s matches itself (RFC 2047 subject)"),
        ("SUBJECT", "STRASSE", [], "sharp s is not SS (no titlecase mapping)"),
        ("SUBJECT", "GR\u00dc\u00dfE", [1], "upper-case umlaut"),
        ("SUBJECT", "gru\u0308\u00df", [1], "a decomposed needle, precomposed text"),
        ("BODY", "\u03c3\u03bf\u03c6\u03bf\u03c2", [1], "Greek final sigma is sigma"),
        ("BODY", "CR\u00c8ME", [1], "precomposed needle, decomposed text"),
        ("BODY", "bru\u0302le\u0301e", [1], "decomposed needle, precomposed text"),
        ("BODY", "creme", [], "an accent is not dropped"),
        ("TEXT", "I abc", [2], "dotless i is I; fullwidth ABC is abc"),
        ("BODY", "\u1112\u1161\u11ab", [2], "Hangul jamo find the syllable"),
        ("BODY", "\u0562\u0561\u0580\u0565\u057e", [2], "Armenian case"),
    ]
    for key, text, want, what in cases:
        got = search(c, key, text)
        r.check(got == want, "%s %r: %s (%r)" % (key, text, what, got))
    c.close()


def main():
    postern = sys.argv[1]
    res = Results()
    with Daemon(postern, roles=("imaps",)) as d:
        d.add_user(USER, PASSWORD)
        res.run("search", lambda: test_search(d, res))
    res.finish()


if __name__ == "__main__":
    main()
