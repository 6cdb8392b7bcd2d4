"""PREVIEW (RFC 8970) against the real daemon: CAPABILITY, FETCH PREVIEW of
a plain message, quoted-printable ISO-8859-1, base64 UTF-8,
multipart/alternative (the text/plain part wins over text/html), HTML
alone (markup, styles and entities gone), no text part (""), whitespace
collapsed, the 256-character limit (characters, not octets), PREVIEW
(LAZY); and a record in the index's previous format (version 2, no
preview, written here through liblmdb): FETCH PREVIEW computes it from the
file, PREVIEW (LAZY) answers NIL until `postern reindex` stores it.

Usage: imap_preview.py /path/to/postern
"""
import base64
import ctypes
import ctypes.util
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results  # noqa: E402
from imap_protocol import Raw, USER, PASSWORD, deliver  # noqa: E402

HDR = (b"From: Bob <bob@example.test>\r\nTo: Alice <alice@example.test>\r\n"
       b"Subject: preview\r\nDate: Mon, 02 Feb 2015 10:00:00 +0000\r\n"
       b"MIME-Version: 1.0\r\n")
LONG = "Grüße " * 100
OLD_TEXT = b"written before the preview was kept"

MESSAGES = [
    ("plain", HDR + b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
     b"Hello world,\r\nsee you.\r\n", "Hello world, see you."),
    ("quoted-printable ISO-8859-1", HDR +
     b"Content-Type: text/plain; charset=ISO-8859-1\r\n"
     b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
     b"Caf=E9 cr=E8me br=FBl=\r\n=E9e\r\n", "Café crème brûlée"),
    ("base64 UTF-8", HDR + b"Content-Type: text/plain; charset=utf-8\r\n"
     b"Content-Transfer-Encoding: base64\r\n\r\n" +
     base64.encodebytes("Grüße aus Köln 😀\n".encode()).replace(b"\n", b"\r\n"),
     "Grüße aus Köln 😀"),
    ("multipart/alternative", HDR +
     b"Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n"
     b"--b1\r\nContent-Type: text/html\r\n\r\n<p>the <b>html</b> one</p>\r\n"
     b"--b1\r\nContent-Type: text/plain\r\n\r\nthe plain one\r\n--b1--\r\n",
     "the plain one"),
    ("html only", HDR + b"Content-Type: text/html; charset=utf-8\r\n\r\n"
     b"<html><head><title>No</title><style>p { color: red; }</style></head>"
     b"<body><!-- <p>hidden</p> --><p>Fish &amp; chips</p>"
     b"<div>at&nbsp;<i>ten</i>&#8364;</div></body></html>\r\n",
     "Fish & chips at ten€"),
    ("no text part", HDR + b"Content-Type: image/png\r\n"
     b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n", ""),
    ("whitespace", HDR + b"\r\n  \t first\r\n\r\n\r\n  second\t\tthird  \r\n \r\n",
     "first second third"),
    ("256 characters", HDR + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" +
     LONG.encode() + b"\r\n", " ".join(LONG.split())[:256]),
]


def previews(c, spec="1:*", mods=""):
    """{uid: preview (str) or None for NIL} of UID FETCH PREVIEW; and the
    tagged reply."""
    res = c.cmd("UID FETCH %s (PREVIEW%s)" % (spec, mods))
    out = {}
    i = 0
    while i < len(res) - 1:
        line = res[i]
        m = re.match(rb'\* \d+ FETCH \(UID (\d+) PREVIEW (?:"([^"\\]*)"|(NIL)|\{(\d+)\})(\)?)$', line)
        if m and m.group(4) is not None:
            out[int(m.group(1))] = res[i + 1].decode()
            i += 3
            continue
        if m:
            out[int(m.group(1))] = None if m.group(3) else m.group(2).decode()
        i += 1
    return out, res[-1]


def test_preview(d, r):
    for _, msg, _ in MESSAGES:
        deliver(d, msg)
    c = Raw(d.port("imaps"), tls=True)
    res = c.login()
    r.check(b" PREVIEW" in res, "login CAPABILITY offers PREVIEW: %r" % res)
    c.cmd("SELECT INBOX")
    got, tagged = previews(c)
    r.check(b" OK " in tagged, "UID FETCH PREVIEW: %r" % tagged)
    for uid, (what, _, want) in enumerate(MESSAGES, 1):
        r.check(got.get(uid) == want, "%s: %r, want %r" % (what, got.get(uid), want))
    long_pv = got.get(len(MESSAGES), "")
    r.check(len(long_pv) == 256 and len(long_pv.encode()) > 256,
            "256 characters, more octets: %d" % len(long_pv))
    got, tagged = previews(c, mods=" (LAZY)")
    r.check(got == {uid: m[2] for uid, m in enumerate(MESSAGES, 1)} and b" OK " in tagged,
            "PREVIEW (LAZY) of stored previews answers them: %r" % got)
    # the exact bytes of one quoted and one literal answer
    res = c.cmd("FETCH 1,2 (PREVIEW)")
    r.check(res[0] == b'* 1 FETCH (PREVIEW "Hello world, see you.")', "quoted: %r" % res[0])
    r.check(res[1] == b"* 2 FETCH (PREVIEW {%d}" % len("Café crème brûlée".encode()) and
            res[2] == "Café crème brûlée".encode() and res[3] == b")",
            "8-bit text goes as a literal: %r" % res[1:4])
    res = c.cmd("FETCH 1 (PREVIEW (FAST))")
    r.check(b" BAD " in res[-1], "an unknown modifier is BAD: %r" % res)
    res = c.cmd("FETCH 1 (PREVIEW (LAZY)")
    r.check(b" BAD " in res[-1], "an unclosed list is BAD: %r" % res)
    c.close()


# ---- an index record written before the preview was kept ------------------

class MDBVal(ctypes.Structure):
    _fields_ = [("mv_size", ctypes.c_size_t), ("mv_data", ctypes.c_void_p)]


MDB_NOTLS = 0x200000
MDB_NEXT = 8


def lmdb_downgrade(data_dir, preview):
    """Rewrite every msgmeta record whose preview is `preview` as version 2
    (the previous format: no preview field).  The number rewritten."""
    lib = ctypes.CDLL(ctypes.util.find_library("lmdb") or "liblmdb.so.0")
    env_dir = None
    for root, _, files in os.walk(data_dir):
        if "data.mdb" in files:
            env_dir = root
    assert env_dir is not None, "no data.mdb under %s" % data_dir
    env, txn, cur = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
    dbi = ctypes.c_uint()
    assert lib.mdb_env_create(ctypes.byref(env)) == 0
    lib.mdb_env_set_maxdbs(env, 64)
    lib.mdb_env_set_mapsize(env, ctypes.c_size_t(1 << 30))
    assert lib.mdb_env_open(env, env_dir.encode(), MDB_NOTLS, 0o600) == 0
    assert lib.mdb_txn_begin(env, None, 0, ctypes.byref(txn)) == 0
    assert lib.mdb_dbi_open(txn, b"msgmeta", 0, ctypes.byref(dbi)) == 0
    assert lib.mdb_cursor_open(txn, dbi, ctypes.byref(cur)) == 0
    tail = bytes([len(preview)]) + preview
    rewrite = []
    k, v = MDBVal(), MDBVal()
    while lib.mdb_cursor_get(cur, ctypes.byref(k), ctypes.byref(v), MDB_NEXT) == 0:
        key = ctypes.string_at(k.mv_data, k.mv_size)
        val = ctypes.string_at(v.mv_data, v.mv_size)
        if val[:1] == b"\x03" and val.endswith(tail):
            rewrite.append((key, b"\x02" + val[1:-len(tail)]))
    lib.mdb_cursor_close(cur)
    for key, val in rewrite:
        kb, vb = ctypes.create_string_buffer(key, len(key)), ctypes.create_string_buffer(val, len(val))
        k = MDBVal(len(key), ctypes.cast(kb, ctypes.c_void_p))
        v = MDBVal(len(val), ctypes.cast(vb, ctypes.c_void_p))
        assert lib.mdb_put(txn, dbi, ctypes.byref(k), ctypes.byref(v), 0) == 0
    assert lib.mdb_txn_commit(txn) == 0
    lib.mdb_env_close(env)
    return len(rewrite)


def test_old_record(d, r):
    d.stop()
    n = lmdb_downgrade(d.data, OLD_TEXT)
    r.check(n == 1, "one record rewritten in the version 2 format: %d" % n)
    d.start()
    c = Raw(d.port("imaps"), tls=True)
    c.login()
    c.cmd("SELECT INBOX")
    got, _ = previews(c, "1:*", " (LAZY)")
    r.check(len(got) == 1 and list(got.values())[0] is None,
            "version 2 record: PREVIEW (LAZY) is NIL: %r" % got)
    got, _ = previews(c)
    r.check(list(got.values()) == [OLD_TEXT.decode()],
            "version 2 record: PREVIEW computed from the file: %r" % got)
    c.close()
    d.stop()
    d.cli("reindex", USER)
    d.start()
    c = Raw(d.port("imaps"), tls=True)
    c.login()
    c.cmd("SELECT INBOX")
    got, _ = previews(c, "1:*", " (LAZY)")
    r.check(list(got.values()) == [OLD_TEXT.decode()],
            "after reindex PREVIEW (LAZY) answers the stored preview: %r" % got)
    c.close()


def main():
    res = Results()
    with Daemon(sys.argv[1], roles=("imaps",)) as d:
        d.add_user(USER, PASSWORD)
        res.run("preview", lambda: test_preview(d, res))
        res.check("imap bug:" not in d.log(), "every command ended with its own tagged reply")
    with Daemon(sys.argv[1], roles=("imaps",)) as d:
        d.add_user(USER, PASSWORD)
        deliver(d, HDR + b"\r\n" + OLD_TEXT + b"\r\n")
        res.run("old record", lambda: test_old_record(d, res))
    res.finish()


if __name__ == "__main__":
    main()
