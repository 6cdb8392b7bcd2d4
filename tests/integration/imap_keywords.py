"""Keywords beyond the 26 letters a Maildir file name holds (RFC 3501
§2.3.2 sets no limit): 30 keywords STOREd on a message are all in FETCH
FLAGS after `postern reindex` rebuilt the index from the Maildir, because
the 4 that did not fit in ":2,a..z" are in the folder's postern-keywords
file; APPEND, COPY and MOVE carry them too, an expunged message's entry is
dropped at the next rewrite, and PERMANENTFLAGS still offers \\*.

Usage: imap_keywords.py /path/to/postern
"""
import imaplib
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results  # noqa: E402
from imap_protocol import USER, PASSWORD, MSG1, deliver, imaps  # noqa: E402

KEYWORDS = ["kw%02d" % i for i in range(30)]


def user_dir(d, folder=""):
    return os.path.join(d.data, "mail", "example.test", "alice", folder)


def flags_of(m, uid):
    typ, data = m.uid("FETCH", str(uid), "(FLAGS)")
    found = re.search(rb"FLAGS \(([^)]*)\)", data[0] or b"")
    # \Recent is the session's, not the message's
    return set(found.group(1).decode().split()) - {"\\Recent"} if found else set()


def xkw_file(d, folder=""):
    try:
        with open(os.path.join(user_dir(d, folder), "postern-keywords"), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def reindex(d, r):
    res = d.cli("reindex", USER, check=False)
    r.check(res.returncode == 0, "reindex: %d %r" % (res.returncode, res.stdout))


def test_reindex(d, r):
    deliver(d, MSG1)
    deliver(d, MSG1)
    m = imaps(d)
    m.select("INBOX")
    typ, data = m.uid("STORE", "1", "+FLAGS", "(%s)" % " ".join(KEYWORDS))
    r.check(typ == "OK", "STORE of 30 keywords: %s %r" % (typ, data))
    r.check(flags_of(m, 1) == set(KEYWORDS), "FETCH FLAGS has all 30 before")
    m.uid("STORE", "2", "+FLAGS", "(\\Seen kw29 kw00)")
    m.logout()
    text = xkw_file(d)
    r.check(text.startswith(b"postern-keywords 1\n") and text.count(b"\nM ") == 2,
            "postern-keywords lists the two messages: %r" % text)
    names = sorted(f for f in os.listdir(user_dir(d, "cur")))
    r.check(len(names) == 2 and any(n.endswith(",abcdefghijklmnopqrstuvwxyz") for n in names),
            "the first 26 are the file name's letters: %r" % names)

    reindex(d, r)
    m = imaps(d)
    typ, data = m.select("INBOX")
    perm = [x for x in m.untagged_responses.get("OK", []) if b"PERMANENTFLAGS" in x]
    r.check(perm and b"\\*)" in perm[-1] and all(k.encode() in perm[-1] for k in KEYWORDS),
            "PERMANENTFLAGS lists the 30 and \\*: %r" % perm)
    got = flags_of(m, 1)
    r.check(got == set(KEYWORDS), "FETCH FLAGS has all 30 after reindex: missing %s"
            % sorted(set(KEYWORDS) - got))
    r.check(flags_of(m, 2) == {"\\Seen", "kw29", "kw00"},
            "the second message kept its three: %r" % flags_of(m, 2))
    typ, data = m.uid("SEARCH", "KEYWORD", "kw28")
    r.check(data == [b"1"], "SEARCH KEYWORD kw28 after reindex: %r" % data)

    # removing them empties the file's entry
    m.uid("STORE", "1", "-FLAGS", "(kw26 kw27 kw28 kw29)")
    text = xkw_file(d)
    r.check(text.count(b"\nM ") == 1 and b"kw28" not in text,
            "-FLAGS drops the entry: %r" % text)
    m.uid("STORE", "1", "+FLAGS", "(kw26 kw27 kw28 kw29)")

    # COPY and MOVE carry them into the other folder's file
    m.create("Kept")
    typ, data = m.uid("COPY", "1", "Kept")
    r.check(typ == "OK", "COPY: %r" % data)
    typ, data = m.uid("MOVE", "2", "Kept")
    r.check(typ == "OK", "MOVE: %r" % data)
    r.check(xkw_file(d, ".Kept").count(b"\nM ") == 2, "the copies are in .Kept's file: %r"
            % xkw_file(d, ".Kept"))
    # an expunge leaves a stale entry (harmless); the next rewrite drops it
    m.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
    m.expunge()
    deliver(d, MSG1)
    m.noop()
    m.uid("STORE", "3", "+FLAGS", "(kw28 kw29)")
    text = xkw_file(d)
    r.check(text.count(b"\nM ") == 1, "the expunged message's entry is gone: %r" % text)
    # APPEND with keywords beyond the letters
    typ, data = m.append("Kept", "(%s)" % " ".join(KEYWORDS), None, MSG1)
    r.check(typ == "OK", "APPEND with 30 keywords: %r" % data)
    m.logout()

    reindex(d, r)
    m = imaps(d)
    m.select("Kept")
    typ, data = m.uid("SEARCH", "ALL")
    uids = data[0].split()
    r.check(len(uids) == 3, "three messages in Kept: %r" % data)
    got = [flags_of(m, int(u)) for u in uids]
    r.check(got[0] == set(KEYWORDS), "the copy has the 30 after reindex: %r" % sorted(got[0]))
    r.check(got[1] == {"\\Seen", "kw29", "kw00"}, "the moved one its three: %r" % got[1])
    r.check(got[2] == set(KEYWORDS), "the appended one its 30: %r" % sorted(got[2]))
    m.select("INBOX")
    r.check(flags_of(m, 1) == {"kw28", "kw29"}, "INBOX's new message kept its two: %r"
            % flags_of(m, 1))
    m.logout()


def test_bad_file(d, r):
    """A damaged postern-keywords costs what it no longer says, nothing else."""
    with open(os.path.join(user_dir(d), "postern-keywords"), "wb") as f:
        f.write(b"postern-keywords 1\nK 9999 toolarge\nK 3 bad(atom\nM x,y junk\n"
                b"K 1 good\nM 1 \nM 1 " + b"a" * 300 + b"\n")
    reindex(d, r)
    m = imaps(d)
    typ, data = m.select("INBOX")
    r.check(typ == "OK", "SELECT after a damaged file: %r" % data)
    m.logout()


def main():
    postern = sys.argv[1]
    res = Results()
    with Daemon(postern, roles=("imaps",)) as d:
        d.add_user(USER, PASSWORD)
        res.run("reindex", lambda: test_reindex(d, res))
        res.run("bad_file", lambda: test_bad_file(d, res))
    res.finish()


if __name__ == "__main__":
    main()
