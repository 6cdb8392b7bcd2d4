"""SORT, THREAD and ESORT (RFC 5256, RFC 5957, RFC 5267) against the real
daemon, checked against an independent implementation written here from
the RFCs' text: base subject (RFC 5256 §2.1, with its own RFC 2047
decoder), each sort key, ORDEREDSUBJECT and REFERENCES (§2.2), string
keys collated by RFC 5051 i;unicode-casemap as §5 requires with
I18NLEVEL=1 (from Python's unicodedata, not the server's tables).

1. The public corpus ($POSTERN_SHARED_DIR/corpus, loaded with its own
   compare.py, as imap_corpus.py does): every message APPENDed in id
   order; the keys of the reference implementation come from Dovecot's
   recorded ENVELOPE, INTERNALDATE and RFC822.SIZE (golden/*.json) and the
   References field of the message file, never from our server.  Every
   sort key, REVERSE, several keys, UID SORT, ESORT, search criteria,
   THREAD=ORDEREDSUBJECT and THREAD=REFERENCES are compared.
2. Hand-written messages: tricky base subjects, threads with missing
   parents, duplicate Message-IDs and a reference loop, with the answers
   written out by hand (and also checked against the implementation);
   non-ASCII subjects and display names whose i;unicode-casemap order
   differs from i;ascii-casemap's (and from a lower-case folding's), and
   "Über" / "Re: über" as one ORDEREDSUBJECT thread.
3. Errors: BADCHARSET, bad syntax, the selected state; `postern reindex`
   gives the same threads.

Usage: imap_sort.py /path/to/postern   (exit 77 without the corpus)
"""
import base64
import codecs
import datetime
import email.utils
import functools
import importlib.util
import json
import os
import re
import sys
import types
import unicodedata

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results, shared_dir, skip  # noqa: E402

USER = "sorter@example.test"
PASSWORD = "sorter-secret-1"
KEY_MAX = 1024  # octets of a string key the server compares (imap_sort.c)
REFS_MAX = 128  # References ids used, the last ones (imap_thread.c)
REFS_BYTES = 4096  # octets of References kept, the tail (imap_sort.c)


def load_compare(corpus):
    """The corpus's own client and parser (standard library only)."""
    spec = importlib.util.spec_from_file_location("corpus_compare", os.path.join(corpus, "compare.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---- the reference implementation ------------------------------------------------

EWORD = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^\s?]*)\?=")


def charset_decode(cs, data):
    cs = cs.split(b"*", 1)[0].decode("ascii", "replace").lower()
    if cs in ("", "utf-8", "utf8", "us-ascii", "ascii"):
        return data
    try:
        codecs.lookup(cs)
    except LookupError:
        return data  # unknown: the octets as they stand
    return data.decode(cs, "replace").encode("utf-8")


def word_bytes(enc, text):
    if enc in b"bB":  # leniently: what is not base64 is skipped
        clean = re.sub(rb"[^A-Za-z0-9+/]", b"", text)
        n = len(clean) // 4 * 4
        out = base64.b64decode(clean[:n])
        if len(clean) - n >= 2:
            out += base64.b64decode(clean[n:] + b"=" * (4 - (len(clean) - n)))
        return out
    return re.sub(rb"=([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]),
                  text.replace(b"_", b" "))


def rfc2047(raw):
    """RFC 2047 words to UTF-8; whitespace between two words goes (§6.2);
    adjacent words of one charset are converted together."""
    out, pend, pend_cs, pos, last_end = b"", b"", None, 0, None
    for m in EWORD.finditer(raw):
        between = raw[pos:m.start()]
        adjacent = last_end is not None and between.strip(b" \t\n") == b""
        if pend_cs is not None and (not adjacent or m.group(1).lower() != pend_cs.lower()):
            out += charset_decode(pend_cs, pend)
            pend, pend_cs = b"", None
        if not adjacent:
            out += between
        pend += word_bytes(m.group(2), m.group(3))
        pend_cs = m.group(1)
        pos = last_end = m.end()
    if pend_cs is not None:
        out += charset_decode(pend_cs, pend)
    return out + raw[pos:]


BLOB = rb"\[[^\[\]]*\] *"
LEADER = re.compile(rb"(?:" + BLOB + rb")*(?:re|fwd?) *(?:" + BLOB + rb")?:", re.I)


def base_subject(raw):
    """RFC 5256 §2.1 on the raw Subject; (base, reply-or-forward)."""
    s = re.sub(rb" +", b" ", re.sub(rb"[\t\r\n]", b" ", rfc2047(raw)))
    reply = False
    while True:
        while True:  # (2)
            if s.endswith(b" "):
                s = s[:-1]
            elif s.lower().endswith(b"(fwd)"):
                s, reply = s[:-5], True
            else:
                break
        changed = True
        while changed:  # (3), (4), (5)
            changed = False
            if s.startswith(b" "):
                s, changed = s[1:], True
                continue
            m = LEADER.match(s)
            if m:
                s, reply, changed = s[m.end():], True, True
                continue
            m = re.match(BLOB, s)
            if m and m.end() < len(s):
                s, changed = s[m.end():], True
        if s.lower().startswith(b"[fwd:") and s.endswith(b"]"):  # (6)
            s, reply = s[5:-1], True
            continue
        return s, reply


def casemap_pass(s):
    """One pass of RFC 5051 §2 over each character: its titlecase (the
    simple mapping: Python's str.title() of one character is the full
    titlecase, and a character whose full titlecase is several characters,
    such as U+00DF, keeps itself, as maildir/md_text_nfkd.py decides),
    then its compatibility decomposition (NFKD)."""
    out = []
    for ch in s:
        t = ch.title()
        out.append(unicodedata.normalize("NFKD", t if len(t) == 1 else ch))
    return "".join(out)


def casemap(b):
    """RFC 5051 i;unicode-casemap form of UTF-8 octets, as SORT and THREAD
    compare it (RFC 5256 §5): the passes repeated until nothing changes
    (so U+FB01 is "FI", not "fi"), as maildir/md_text_nfkd.py does after
    Dovecot; octets that are not UTF-8 are kept (surrogateescape).  The
    server keeps KEY_MAX octets of this form, up to a NUL."""
    s = b.decode("utf-8", "surrogateescape")
    for _ in range(8):
        nxt = casemap_pass(s)
        if nxt == s:
            break
        s = nxt
    return s.encode("utf-8", "surrogateescape").split(b"\0", 1)[0][:KEY_MAX]


def msg_ids(s):
    return [m.group(0) for m in re.finditer(rb"<([^<>\s]+)>", s or b"")
            if b"@" in m.group(1) and not m.group(1).startswith(b"@")
            and not m.group(1).endswith(b"@") and len(m.group(1)) >= 2]


def header_field(data, name):
    """The last field of that name in the message's header, unfolded."""
    fields = []
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1] += b" " + line
            continue
        k, sep, v = line.partition(b":")
        fields.append([k.strip().lower() if sep else None, v.lstrip(b" \t")])
    value = None
    for k, v in fields:
        if k == name:
            value = v
    return value


def sent_date(s, internal):
    t = email.utils.parsedate_tz(s.decode("latin-1")) if s else None
    # RFC 5322 §3.3: a time of day beyond 23:59:60 is no date (Python
    # would carry "59:10" over into the next days)
    if t is None or not (0 <= t[3] <= 23 and 0 <= t[4] <= 59 and 0 <= t[5] <= 60):
        return internal
    try:
        return email.utils.mktime_tz(t if t[9] is not None else t[:9] + (0,))
    except (OverflowError, ValueError):
        return internal


class Msg:
    """The keys of one message, from an ENVELOPE as parsed by compare.P."""

    def __init__(self, seq, uid, env, internal, size, references):
        def s(v):
            return v[1] if v[0] == "S" else None

        def first(addrs):
            if addrs[0] != "L":
                return None
            for a in addrs[1]:
                f = [s(x) for x in a[1]]
                if f[3] is not None:
                    return f
            return None

        f = env[1]
        self.seq, self.uid, self.arrival, self.size = seq, uid, internal, size
        self.date = sent_date(s(f[0]), internal)
        # the string keys in their i;unicode-casemap form, compared as octets
        self.subject, self.reply = base_subject(s(f[1]) or b"")
        self.subject = casemap(self.subject)
        fr, to, cc = first(f[2]), first(f[5]), first(f[6])
        self.from_, self.to, self.cc = [casemap(a[2] or b"") if a else b"" for a in (fr, to, cc)]
        self.dfrom, self.dto = [casemap(self.display(a)) for a in (fr, to)]
        self.in_reply_to, self.message_id = s(f[8]), s(f[9])
        # the server keeps the last 4 KiB of References, from a "<"
        if references is not None and len(references) > REFS_BYTES:
            cut = references[-REFS_BYTES:]
            references = cut[cut.find(b"<"):] if b"<" in cut else b""
        self.references = references

    @staticmethod
    def display(a):
        if a is None:
            return b""
        if a[0]:
            name = rfc2047(a[0])
            if name:
                return name
        return a[2] + b"@" + a[3] if a[2] is not None else b""


KEYS = {
    "ARRIVAL": lambda m: m.arrival, "DATE": lambda m: m.date, "SIZE": lambda m: m.size,
    "SUBJECT": lambda m: m.subject, "FROM": lambda m: m.from_,
    "TO": lambda m: m.to, "CC": lambda m: m.cc,
    "DISPLAYFROM": lambda m: m.dfrom, "DISPLAYTO": lambda m: m.dto,
}


def ref_sort(msgs, criteria):
    """criteria: ["REVERSE", "DATE", "SUBJECT"...] as sent."""
    keys, rev = [], False
    for c in criteria:
        if c == "REVERSE":
            rev = True
            continue
        keys.append((KEYS[c], rev))
        rev = False

    def cmp(a, b):
        for fn, r in keys:
            x, y = fn(a), fn(b)
            if x != y:
                return (-1 if x < y else 1) * (-1 if r else 1)
        return a.seq - b.seq
    return sorted(msgs, key=functools.cmp_to_key(cmp))


class Node:
    def __init__(self, msg=None):
        self.msg, self.parent, self.children = msg, None, []

    def key(self):
        n = self
        while n.msg is None:
            n = n.children[0]
        return (n.msg.date, n.msg.seq)


def is_under(a, b):
    """Is a b itself or one of b's ancestors?"""
    while b is not None:
        if b is a:
            return True
        b = b.parent
    return False


def link(parent, child):
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def ref_references(msgs):
    table = {}
    nodes = []

    def node_of(mid):
        if mid not in table:
            table[mid] = Node()
            nodes.append(table[mid])
        return table[mid]

    for m in msgs:  # step 1, in sequence order
        own = msg_ids(m.message_id)
        n = node_of(own[0]) if own else None
        if n is None or n.msg is not None:
            n = Node()
            nodes.append(n)
        n.msg = m
        refs = msg_ids(m.references)[-REFS_MAX:]
        if not refs:
            refs = msg_ids(m.in_reply_to)[:1]
        prev = None
        for r in refs:
            y = node_of(r)
            if prev is not None and y.parent is None and not is_under(y, prev):
                link(prev, y)
            prev = y
        if n.parent is not None:
            n.parent.children.remove(n)
            n.parent = None
        if prev is not None and not is_under(n, prev):
            link(prev, n)
    root = Node()
    for n in list(nodes):  # step 2
        if n.parent is None:
            link(root, n)

    def prune(n):  # step 3
        new = []
        for c in list(n.children):
            prune(c)
            if c.msg is not None or (n is root and len(c.children) > 1):
                new.append(c)
                continue
            for g in c.children:
                g.parent = n
                new.append(g)
        for c in new:
            c.parent = n
        n.children = new
    prune(root)
    for c in root.children:  # step 4
        if c.msg is None:
            c.children.sort(key=Node.key)
    root.children.sort(key=Node.key)

    def subj(n):
        while n.msg is None:
            n = n.children[0]
        return n.msg.subject

    def reply(n):
        return n.msg is not None and n.msg.reply

    tab = {}  # step 5
    for c in root.children:
        s = subj(c)
        if not s:
            continue
        t = tab.get(s)
        if t is None or (t.msg is not None and (c.msg is None or (reply(t) and not reply(c)))):
            tab[s] = c
    for c in list(root.children):
        s = subj(c)
        if not s or c.parent is not root:
            continue  # no subject, or merged away already
        t = tab.get(s)
        if t is None or t is c:
            continue
        if t.msg is None and c.msg is None:
            for g in list(c.children):
                link(t, g)
            root.children.remove(c)
            c.parent = None
        elif t.msg is None or (reply(c) and not reply(t)):
            link(t, c)
        else:
            d = Node()
            link(root, d)
            link(d, t)
            link(d, c)
            tab[s] = d

    def sort_all(n):  # step 6, the deepest first
        for c in n.children:
            sort_all(c)
        n.children.sort(key=Node.key)
    sort_all(root)
    return root


def ref_ordered(msgs):
    root = Node()
    ordered = sorted(msgs, key=lambda m: (m.subject, m.date, m.seq))
    parent = None
    for i, m in enumerate(ordered):
        n = Node(m)
        if i > 0 and m.subject == ordered[i - 1].subject:
            link(parent, n)
        else:
            link(root, n)
            parent = n
    root.children.sort(key=Node.key)
    return root


def thread_text(root, uid):
    def sub(n):
        s = ""
        if n.msg is not None:
            s = str(n.msg.uid if uid else n.msg.seq)
            if len(n.children) == 1:
                return s + " " + sub(n.children[0])
            if not n.children:
                return s
            s += " "
        return s + "".join("(" + sub(c) + ")" for c in n.children)
    return "".join("(" + sub(c) + ")" for c in root.children)


# ---- talking to the server ----------------------------------------------------------

def untagged(u, name):
    for line in u:
        m = re.match(rb"\* " + name.encode() + rb"(?: (.*))?\r\n$", line, re.S)
        if m:
            return (m.group(1) or b"").decode("latin-1")
    return None


def check_sort(r, cli, msgs, criteria, search="ALL", uid=False, label=""):
    u, t = cli.command((["UID"] if uid else []) + ["SORT", "(%s)" % " ".join(criteria),
                                                   "UTF-8", search])
    got = untagged(u, "SORT")
    want = " ".join(str(m.uid if uid else m.seq) for m in ref_sort(msgs, criteria))
    ok = r.check(t.split()[1:2] == [b"OK"] and got == want,
                 "%s%sSORT (%s) %s" % (label, "UID " if uid else "", " ".join(criteria), search))
    if not ok:
        print("   want %s\n   got  %s %r" % (want, got, t))


def check_thread(r, cli, msgs, alg, search="ALL", uid=False, label="", expect=None):
    u, t = cli.command((["UID"] if uid else []) + ["THREAD", alg, "UTF-8", search])
    got = untagged(u, "THREAD")
    root = ref_references(msgs) if alg == "REFERENCES" else ref_ordered(msgs)
    want = thread_text(root, uid)
    ok = r.check(t.split()[1:2] == [b"OK"] and got == want,
                 "%s%sTHREAD %s %s" % (label, "UID " if uid else "", alg, search))
    if not ok:
        print("   want %s\n   got  %s %r" % (want, got, t))
    if expect is not None:
        r.check(got == expect, "%sTHREAD %s is the hand-written %s (got %s)" % (label, alg, expect, got))
    return got


def corpus_msgs(cmp, corpus, ids, id2uid):
    msgs = []
    for seq, mid in enumerate(ids, 1):
        with open(os.path.join(corpus, "golden", mid + ".json"), encoding="utf-8") as f:
            g = json.load(f)
        env = None
        for c in g["commands"]:
            if c["name"] == "A":
                for raw in c["untagged"]:
                    p = cmp.parse_fetch(raw.encode("latin-1"))
                    if p and "ENVELOPE" in p[1]:
                        env = p[1]["ENVELOPE"][0]
        with open(os.path.join(corpus, "messages", mid + ".eml"), "rb") as f:
            data = f.read()
        msgs.append(Msg(seq, id2uid[mid], env, g["items"]["A:INTERNALDATE"]["instant"],
                        int(g["items"]["A:RFC822.SIZE"]), header_field(data, b"references")))
    return msgs


def test_corpus(r, cmp, d, corpus):
    cli = cmp.Client("127.0.0.1", d.port("imaps"), True)
    cli.simple("LOGIN", USER, PASSWORD)
    ids = cmp.load_manifest(corpus)
    _, id2uid = cmp.setup_mailbox(cli, types.SimpleNamespace(mailbox="INBOX", record=False),
                                  ids, corpus)
    msgs = corpus_msgs(cmp, corpus, ids, id2uid)
    u, _ = cli.simple("CAPABILITY")
    caps = untagged(u, "CAPABILITY").split()
    for cap in ("SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES"):
        r.check(cap in caps, "capability " + cap)
    r.check("CONTEXT=SORT" not in caps, "CONTEXT=SORT is not offered")
    for key in KEYS:
        check_sort(r, cli, msgs, [key], label="corpus ")
        check_sort(r, cli, msgs, ["REVERSE", key], label="corpus ")
    for crit in (["SUBJECT", "REVERSE", "DATE"], ["FROM", "SIZE"], ["REVERSE", "TO", "ARRIVAL"],
                 ["CC", "REVERSE", "SUBJECT", "DATE"], ["DISPLAYFROM", "REVERSE", "DISPLAYTO"]):
        check_sort(r, cli, msgs, crit, label="corpus ")
    check_sort(r, cli, msgs, ["DATE"], uid=True, label="corpus ")
    seen = [m for m in msgs if int(ids[m.seq - 1]) % 3 == 0]
    check_sort(r, cli, seen, ["SUBJECT"], search="SEEN", label="corpus ")
    flagged = [m for m in msgs if int(ids[m.seq - 1]) % 5 == 0 or int(ids[m.seq - 1]) % 11 == 0]
    check_sort(r, cli, flagged, ["REVERSE", "DATE"], search="OR FLAGGED DRAFT", uid=True,
               label="corpus ")
    check_sort(r, cli, msgs[:40], ["FROM"], search="1:40", label="corpus ")
    for alg in ("ORDEREDSUBJECT", "REFERENCES"):
        check_thread(r, cli, msgs, alg, label="corpus ")
        check_thread(r, cli, msgs, alg, uid=True, label="corpus ")
        check_thread(r, cli, seen, alg, search="SEEN", label="corpus ")
    # ESORT (RFC 5267 §3): MIN/MAX are the first and last in sort order
    order = [m.uid for m in ref_sort(msgs, ["SUBJECT"])]
    u, t = cli.command(["UID", "SORT", "RETURN", "(MIN MAX COUNT)", "(SUBJECT)", "UTF-8", "ALL"])
    r.check(untagged(u, "ESEARCH") == '(TAG "%s") UID MIN %d MAX %d COUNT %d' % (
        t.split()[0].decode(), order[0], order[-1], len(order)),
        "UID SORT RETURN (MIN MAX COUNT): %s" % untagged(u, "ESEARCH"))
    u, t = cli.command(["SORT", "RETURN", "()", "(ARRIVAL)", "US-ASCII", "1:5"])
    r.check(untagged(u, "ESEARCH") == '(TAG "%s") ALL 1:5' % t.split()[0].decode(),
            "SORT RETURN () is ALL, consecutive runs as ranges: %s" % untagged(u, "ESEARCH"))
    u, t = cli.command(["SORT", "RETURN", "(ALL COUNT)", "(REVERSE ARRIVAL)", "UTF-8", "3:5"])
    r.check(untagged(u, "ESEARCH") == '(TAG "%s") COUNT 3 ALL 5,4,3' % t.split()[0].decode(),
            "SORT RETURN (ALL) keeps the sort order: %s" % untagged(u, "ESEARCH"))
    u, t = cli.command(["SORT", "RETURN", "(COUNT)", "(DATE)", "UTF-8", "SUBJECT", "zzz-none"])
    r.check(untagged(u, "ESEARCH") == '(TAG "%s") COUNT 0' % t.split()[0].decode(),
            "ESORT of nothing: COUNT 0")
    cli.simple("LOGOUT")
    return msgs


# ---- hand-written cases ----------------------------------------------------------

def hand_date(n):
    """n hours after 2026-06-01 00:00 UTC; message 3 at 01:30 UTC, written
    in +0200 (03:30 there): only with the zone applied does it come
    between messages 1 and 2"""
    if n == 3:
        return b"Mon, 01 Jun 2026 03:30:00 +0200"
    when = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(hours=n)
    return email.utils.format_datetime(when).encode()


def hand_sender(n, name):
    return name if name is not None else b"Sender %d" % n


def hand_message(n, subject, mid=None, refs=None, irt=None, date=True, extra=b"", sender=None):
    """sender: the From display name as written (default "Sender n")."""
    h = b"From: %s <s%d@example.test>\r\nTo: rcpt@example.test\r\n" % (hand_sender(n, sender), n)
    h += b"Subject: " + subject + b"\r\n"
    if date:
        h += b"Date: " + hand_date(n) + b"\r\n"
    if mid:
        h += b"Message-ID: " + mid + b"\r\n"
    if refs:
        h += b"References: " + refs + b"\r\n"
    if irt:
        h += b"In-Reply-To: " + irt + b"\r\n"
    return h + extra + b"\r\nbody %d\r\n" % n


# seq: subject, Message-ID, References, In-Reply-To, has Date
HAND = [
    (b"Topic A", b"<a@t>", None, None, True),                        # 1
    (b"Re: Topic A", b"<b@t>", None, b"<a@t>", True),                # 2
    (b"RE: [list] Topic A", b"<c@t>", b"<a@t> <missing@t>", None, True),  # 3: parent missing
    (b"Dup", b"<a@t>", None, None, True),                            # 4: duplicate id
    (b"Loop", b"<e@t>", b"<f@t>", None, True),                       # 5: e -> f ...
    (b"Loop", b"<f@t>", b"<e@t>", None, True),                       # 6: ... -> e: a loop
    (b"=?utf-8?q?Fwd=3A_Topic_A?=", None, None, None, True),          # 7: no id, a forward
    (b"Orphan", b"<h@t>", b"<gone1@t>\r\n <gone2@t>", None, True),   # 8
    (b"Re: Orphan (fwd)", b"<i@t>", None, b"<gone3@t>", True),        # 9
    (b"[fwd: Twins]", b"<j@t>", None, b"<parent@t>", True),          # 10
    (b"Twins", b"<k@t>", None, b"junk <parent@t>", False),           # 11: no Date
]
HAND_REFERENCES = "(1 (3)(2)(7))(4)(6 5)(8 9)((10)(11))"
HAND_ORDERED = "(1 (3)(2)(7))(4)(5 6)(8 9)(10 11)"


def hand_append(r, cli, mailbox, n, subj, mid=None, refs=None, irt=None, has_date=True,
                sender=None):
    """APPEND hand_message(n, ...) as message n of mailbox; its Msg, the
    ENVELOPE written out as Dovecot would give it."""
    data = hand_message(n, subj, mid, refs, irt, has_date, sender=sender)
    # INTERNALDATE runs backwards, so ARRIVAL and DATE differ
    when = datetime.datetime(2026, 7, 1) - datetime.timedelta(hours=n)
    idate = when.strftime("%d-%b-%Y %H:%M:%S +0000")
    _, t = cli.append(mailbox, [], idate, data)
    r.check(b" OK " in t, "APPEND %s %d" % (mailbox, n))
    env = ("L", [("S", hand_date(n)) if has_date else ("A", b"NIL"), ("S", subj),
                 ("L", [("L", [("S", hand_sender(n, sender)), ("A", b"NIL"),
                               ("S", b"s%d" % n), ("S", b"example.test")])]),
                 None, None, ("L", [("L", [("A", b"NIL"), ("A", b"NIL"), ("S", b"rcpt"),
                                           ("S", b"example.test")])]),
                 ("A", b"NIL"), None, ("S", irt) if irt else ("A", b"NIL"),
                 ("S", mid) if mid else ("A", b"NIL")])
    return Msg(n, n, env, int(when.replace(tzinfo=datetime.timezone.utc).timestamp()), len(data),
               refs.replace(b"\r\n", b" ") if refs else None)


def test_hand(r, cmp, d):
    cli = cmp.Client("127.0.0.1", d.port("imaps"), True)
    cli.simple("LOGIN", USER, PASSWORD)
    cli.simple("CREATE", "Hand")
    msgs = [hand_append(r, cli, "Hand", n, subj, mid, refs, irt, has_date)
            for n, (subj, mid, refs, irt, has_date) in enumerate(HAND, 1)]
    cli.simple("SELECT", "Hand")
    check_thread(r, cli, msgs, "REFERENCES", label="hand ", expect=HAND_REFERENCES)
    check_thread(r, cli, msgs, "ORDEREDSUBJECT", label="hand ", expect=HAND_ORDERED)
    u, _ = cli.command(["SORT", "(DATE)", "UTF-8", "ALL"])
    r.check(untagged(u, "SORT") == "1 3 2 4 5 6 7 8 9 10 11",
            "hand SORT (DATE): sent dates, INTERNALDATE without Date (%s)" % untagged(u, "SORT"))
    u, _ = cli.command(["SORT", "(SUBJECT)", "UTF-8", "ALL"])
    r.check(untagged(u, "SORT") == "4 5 6 8 9 1 2 3 7 10 11",
            "hand SORT (SUBJECT): base subjects, then sequence (%s)" % untagged(u, "SORT"))
    u, _ = cli.command(["SORT", "(ARRIVAL)", "UTF-8", "ALL"])
    r.check(untagged(u, "SORT") == "11 10 9 8 7 6 5 4 3 2 1", "hand SORT (ARRIVAL)")
    u, _ = cli.command(["SORT", "(REVERSE SUBJECT REVERSE DATE)", "UTF-8", "NOT 11"])
    r.check(untagged(u, "SORT") == "10 7 2 3 1 9 8 6 5 4",
            "hand SORT (REVERSE SUBJECT REVERSE DATE) NOT 11 (%s)" % untagged(u, "SORT"))
    for key in KEYS:
        check_sort(r, cli, msgs, [key], label="hand ")
    # a thread of the messages the criteria leave: without 1, message 4
    # is the first with <a@t> and becomes the parent of 2 and 3; 7 has no
    # thread of its subject left to join
    check_thread(r, cli, [m for m in msgs if m.seq != 1], "REFERENCES", search="NOT 1",
                 label="hand ", expect="(4 (3)(2))(6 5)(7)(8 9)((10)(11))")
    check_thread(r, cli, [], "REFERENCES", search="SUBJECT nothing-like-this", label="hand ")
    u, _ = cli.command(["THREAD", "REFERENCES", "UTF-8", "SUBJECT", "nothing-like-this"])
    r.check(u == [b"* THREAD\r\n"], "an empty THREAD answer is a bare * THREAD")
    u, _ = cli.command(["SORT", "(DATE)", "UTF-8", "SUBJECT", "nothing-like-this"])
    r.check(u == [b"* SORT\r\n"], "an empty SORT answer is a bare * SORT")
    errors(r, cli)
    cli.simple("LOGOUT")
    return msgs


# seq: subject, From display name (None: "Sender n"); raw UTF-8 and
# RFC 2047 words (UTF-8, ISO-8859-1) both.  In i;unicode-casemap form:
INTL = [
    (b"\xc3\xa9mile", b"=?utf-8?q?=C3=A9mile?="),         # 1  émile: E U+0301 MILE
    (b"Zebra", b"Zoe"),                                      # 2  ZEBRA
    (b"\xc3\x89clair", b"=?iso-8859-1?q?=C9ric?="),        # 3  Éclair: E U+0301 CLAIR
    (b"=?utf-8?q?=C3=A9clair?=", None),                      # 4  éclair: the same
    (b"Eclipse", None),                                      # 5  ECLIPSE
    (b"Stra\xc3\x9fe", None),                               # 6  STRAßE (ß keeps itself)
    (b"strasse", None),                                      # 7  STRASSE
    (b"\xcf\x89\xce\xbc\xce\xad\xce\xb3\xce\xb1", None),  # 8  ωμέγα: ΩΜΕ U+0301 ΓΑ
    (b"\xce\x91\xce\x9b\xce\xa6\xce\x91", None),            # 9  ΑΛΦΑ
    (b"\xce\xac\xce\xbb\xcf\x86\xce\xb1", None),            # 10 άλφα: Α U+0301 ΛΦΑ
    (b"_under", None),                                       # 11 "_" after "Z"
    (b"apple", None),                                        # 12 APPLE
    (b"=?iso-8859-1?q?=DCber?=", None),                      # 13 Über: U U+0308 BER
    (b"=?utf-8?b?w7xiZXI=?=", None),                         # 14 über: the same
]
# i;ascii-casemap would give 12 5 7 6 2 11 3 13 4 1 14 9 10 8 (é after Z,
# É apart from é, ά after Α); the store's lower-case ASCII as it stands
# would put 11 first
INTL_SUBJECT = "12 5 3 4 1 7 6 13 14 2 11 10 9 8"
INTL_DISPLAYFROM = "1 3 10 11 12 13 14 4 5 6 7 8 9 2"
INTL_ORDERED = "(1)(3 4)(2)(5)(6)(7)(8)(9)(10)(11)(12)(13 14)"
INTL_REFERENCES = "(1)((3)(4))(2)(5)(6)(7)(8)(9)(10)(11)(12)((13)(14))"


def test_intl(r, cmp, d):
    """RFC 5256 §5: string keys collate by i;unicode-casemap."""
    cli = cmp.Client("127.0.0.1", d.port("imaps"), True)
    cli.simple("LOGIN", USER, PASSWORD)
    cli.simple("CREATE", "Intl")
    msgs = [hand_append(r, cli, "Intl", n, subj, sender=sender)
            for n, (subj, sender) in enumerate(INTL, 1)]
    cli.simple("SELECT", "Intl")
    for crit, want in ((["SUBJECT"], INTL_SUBJECT), (["DISPLAYFROM"], INTL_DISPLAYFROM)):
        u, _ = cli.command(["SORT", "(%s)" % " ".join(crit), "UTF-8", "ALL"])
        r.check(untagged(u, "SORT") == want, "intl SORT (%s) is the hand-written %s (got %s)" % (
            " ".join(crit), want, untagged(u, "SORT")))
    for key in KEYS:
        check_sort(r, cli, msgs, [key], label="intl ")
        check_sort(r, cli, msgs, ["REVERSE", key], label="intl ")
    check_sort(r, cli, [m for m in msgs if not 4 <= m.seq <= 6], ["SUBJECT"], search="NOT 4:6",
               uid=True, label="intl ")
    # "Über" and "über" differ only by the case of a non-ASCII letter
    check_thread(r, cli, msgs, "ORDEREDSUBJECT", label="intl ", expect=INTL_ORDERED)
    check_thread(r, cli, msgs, "REFERENCES", label="intl ", expect=INTL_REFERENCES)
    cli.simple("LOGOUT")


CHAIN = 300


def test_chain(r, cmp, d):
    """A reply chain CHAIN deep (each In-Reply-To its predecessor; the walks
    over it must not recurse), closed by a message whose References name
    all of them: more ids than are used and more octets than are kept."""
    cli = cmp.Client("127.0.0.1", d.port("imaps"), True)
    cli.simple("LOGIN", USER, PASSWORD)
    cli.simple("CREATE", "Chain")
    msgs = []
    for n in range(1, CHAIN + 2):
        mid = b"<chain.%d@example.test>" % n
        irt = b"<chain.%d@example.test>" % (n - 1) if 1 < n <= CHAIN else None
        refs = b" ".join(b"<chain.%d@example.test>" % k for k in range(1, n)) if n > CHAIN else None
        data = hand_message(n, b"Re: chain" if n > 1 else b"chain", mid, refs, irt)
        _, t = cli.append("Chain", [], "01-Jul-2026 00:00:00 +0000", data)
        if b" OK " not in t:
            r.check(False, "APPEND chain %d: %r" % (n, t))
            return
        env = ("L", [("S", hand_date(n)), ("S", b"Re: chain" if n > 1 else b"chain"),
                     ("A", b"NIL"), None, None, ("A", b"NIL"), ("A", b"NIL"), None,
                     ("S", irt) if irt else ("A", b"NIL"), ("S", mid)])
        msgs.append(Msg(n, n, env, 0, len(data), refs))
    cli.simple("SELECT", "Chain")
    got = check_thread(r, cli, msgs, "REFERENCES", label="chain ")
    r.check(got == "(" + " ".join(str(n) for n in range(1, CHAIN + 2)) + ")",
            "a chain %d deep is one thread, the last message at its end: %s..." % (
                CHAIN, (got or "")[:40]))
    check_thread(r, cli, msgs, "ORDEREDSUBJECT", label="chain ")
    check_sort(r, cli, msgs, ["REVERSE", "DATE"], label="chain ")
    cli.simple("LOGOUT")


def errors(r, cli):
    for parts, status, code, what in (
            (["SORT", "(DATE)", "ISO-8859-1", "ALL"], b"NO", b"[BADCHARSET", "SORT other charset"),
            (["THREAD", "REFERENCES", "KOI8-R", "ALL"], b"NO", b"[BADCHARSET", "THREAD other charset"),
            (["SORT", "(NOSUCHKEY)", "UTF-8", "ALL"], b"BAD", None, "unknown sort key"),
            (["SORT", "(REVERSE)", "UTF-8", "ALL"], b"BAD", None, "REVERSE without a key"),
            (["SORT", "()", "UTF-8", "ALL"], b"BAD", None, "empty sort criteria"),
            (["SORT", "(DATE)", "UTF-8"], b"BAD", None, "SORT without search criteria"),
            (["SORT", "DATE", "UTF-8", "ALL"], b"BAD", None, "sort criteria without parentheses"),
            (["SORT", "(DATE)", "UTF-8", "NOSUCHSEARCHKEY"], b"BAD", None, "unknown search key"),
            (["SORT", "RETURN", "(SAVE)", "(DATE)", "UTF-8", "ALL"], b"BAD", None,
             "RETURN (SAVE) is not offered for SORT"),
            (["SORT", "(" + " ".join(["DATE"] * 17) + ")", "UTF-8", "ALL"], b"BAD", b"[LIMIT",
             "more than 16 sort keys"),
            (["THREAD", "NOSUCHALG", "UTF-8", "ALL"], b"BAD", None, "unknown algorithm"),
            (["THREAD", "REFERENCES", "UTF-8"], b"BAD", None, "THREAD without search criteria"),
            (["UID", "THREAD", "REFERENCES", "UTF-8", "UID", "1:*"], b"OK", None, "UID THREAD UID 1:*")):
        _, t = cli.command(parts)
        cli.simple("NOOP")  # BAD replies in a row end the session (IMAP_BAD_MAX)
        st = t.split(b" ", 2)
        r.check(st[1] == status and (code is None or st[2].startswith(code)),
                "%s: %s" % (what, t.decode("latin-1").strip()))


def test_shared_keys(r, cmp, d):
    """The sort keys a session collected are kept for the mailbox (shared
    by every session) and must follow it: a message another session
    APPENDs is sorted once announced; one it EXPUNGEs is left out at once,
    and its sequence number goes when the EXPUNGE is announced."""
    a = cmp.Client("127.0.0.1", d.port("imaps"), True)
    a.simple("LOGIN", USER, PASSWORD)
    b = cmp.Client("127.0.0.1", d.port("imaps"), True)
    b.simple("LOGIN", USER, PASSWORD)
    a.simple("CREATE", "Shared")
    for n in (1, 2, 3):
        subj, mid, refs, irt, has_date = HAND[n - 1]
        hand_append(r, a, "Shared", n, subj, mid, refs, irt, has_date)
    a.simple("SELECT", "Shared")
    b.simple("SELECT", "Shared")

    def expect(cli, steps):
        """steps: (command, the SORT or THREAD answer it must give, what)"""
        for text, want, what in steps:
            parts = text.split()
            u, t = cli.command(parts)
            got = untagged(u, "THREAD" if "THREAD" in parts else "SORT") if b" OK " in t else t
            r.check(got == want, "%s (%s): %s" % (what, text, got))

    expect(a, [("SORT (DATE) UTF-8 ALL", "1 3 2", "shared SORT")])
    expect(b, [("THREAD REFERENCES UTF-8 ALL", "(1 (3)(2))", "shared THREAD, a second session")])
    # message 4 ("Dup", dated after the others) comes in through b
    subj, mid, refs, irt, has_date = HAND[3]
    hand_append(r, b, "Shared", 4, subj, mid, refs, irt, has_date)
    b.simple("NOOP")
    expect(b, [("SORT (DATE) UTF-8 ALL", "1 3 2 4", "the appending session sorts it")])
    # a's view is behind the kept keys: its SORT answers for its own view
    # (the EXISTS comes after the answer)
    expect(a, [("SORT (DATE) UTF-8 ALL", "1 3 2", "a session not yet told of it does not")])
    a.simple("NOOP")
    expect(a, [("SORT (DATE) UTF-8 ALL", "1 3 2 4", "a new message is sorted once announced"),
               ("THREAD REFERENCES UTF-8 ALL", "(1 (3)(2))(4)", "and threaded"),
               ("SORT (SUBJECT) UTF-8 ALL", "4 1 2 3", "SUBJECT after DATE and THREAD")])
    # b expunges message 1; a has not been told yet (no EXPUNGE during SORT,
    # RFC 3501 §7.4.1) but no longer sorts it; without 1, message 4 is the
    # first with <a@t> (as in hand's NOT 1)
    b.simple("STORE", "1", "+FLAGS.SILENT", "(\\Deleted)")
    b.simple("EXPUNGE")
    expect(a, [("SORT (DATE) UTF-8 ALL", "3 2 4", "a message expunged elsewhere is left out"),
               ("SORT (DATE) UTF-8 UNSEEN", "3 2 4", "by a search program too"),
               ("THREAD REFERENCES UTF-8 ALL", "(4 (3)(2))", "and by THREAD")])
    u, _ = a.simple("NOOP")
    r.check(b"* 1 EXPUNGE\r\n" in u, "the EXPUNGE is announced at NOOP")
    expect(a, [("SORT (DATE) UTF-8 ALL", "2 1 3", "then the sequence numbers move"),
               ("UID SORT (DATE) UTF-8 ALL", "3 2 4", "UID SORT")])
    a.simple("LOGOUT")
    b.simple("LOGOUT")


def test_state_and_reindex(r, cmp, d, hand):
    cli = cmp.Client("127.0.0.1", d.port("imaps"), True)
    cli.simple("LOGIN", USER, PASSWORD)
    _, t = cli.command(["SORT", "(DATE)", "UTF-8", "ALL"])
    r.check(t.split()[1] == b"BAD", "SORT before SELECT is BAD")
    _, t = cli.command(["THREAD", "REFERENCES", "UTF-8", "ALL"])
    r.check(t.split()[1] == b"BAD", "THREAD before SELECT is BAD")
    cli.simple("LOGOUT")
    # reindex recomputes the metadata (References included) from the files
    res = d.cli("reindex", USER)
    r.check(b"reindexed" in res.stdout, "postern reindex: %s" % res.stdout.decode().strip())
    cli = cmp.Client("127.0.0.1", d.port("imaps"), True)
    cli.simple("LOGIN", USER, PASSWORD)
    cli.simple("SELECT", "Hand")
    u, _ = cli.command(["THREAD", "REFERENCES", "UTF-8", "ALL"])
    r.check(untagged(u, "THREAD") == HAND_REFERENCES, "THREAD REFERENCES after reindex: %s" %
            untagged(u, "THREAD"))
    cli.simple("LOGOUT")


def main():
    corpus = os.path.join(shared_dir(), "corpus")
    if not os.path.exists(os.path.join(corpus, "compare.py")):
        skip("no corpus at %s (set POSTERN_SHARED_DIR)" % corpus)
    postern = sys.argv[1]
    cmp = load_compare(corpus)
    r = Results()
    with Daemon(postern, roles=("imaps",)) as d:
        d.add_user(USER, PASSWORD)
        r.run("corpus", lambda: test_corpus(r, cmp, d, corpus))
        hand = []
        r.run("hand", lambda: hand.extend(test_hand(r, cmp, d)))
        r.run("intl", lambda: test_intl(r, cmp, d))
        r.run("chain", lambda: test_chain(r, cmp, d))
        r.run("shared keys", lambda: test_shared_keys(r, cmp, d))
        r.run("state and reindex", lambda: test_state_and_reindex(r, cmp, d, hand))
    r.finish()


if __name__ == "__main__":
    main()
