#!/usr/bin/python3
"""FETCH BINARY and SEARCH text of the store against the conformance corpus.

    corpus_store.py STORE_QUERY binary|search

Delivers every corpus message (ascending ids, with the flags, keyword and
INTERNALDATE the corpus README gives, taken from the corpus's own
compare.py) into a temporary store with store_query (argv[1]), then:

  binary  decodes BINARY[1] and BINARY[2] with md_msg_binary() and
          compares BINARY[1] byte for byte with Dovecot's BINARY.PEEK[1]
          answer (S7), and both lengths with BINARY.SIZE[1] / [2] (S6,
          S8); a NO answer must be the same NO ([PARSE] / [UNKNOWN-CTE]).
  search  evaluates the 40 UID SEARCH queries of golden/searches.json:
          text keys (FROM TO CC BCC SUBJECT HEADER BODY TEXT) through
          md_msg_text() and md_text_*_contains(), the other keys (flags,
          sizes, dates, sequence sets, OR/NOT) here from what the store
          reports, and compares the result sets.

Every difference is either a failure or listed in EXCEPTIONS with the
reason; an exception states the exact difference it excuses and fails
when the difference changes or disappears, so the list stays true.

store_query is built with the sanitizers in a POSTERN_SANITIZE build, so
every corpus message also goes through the decoders under ASan/UBSan.

Exit 0 when everything matches, 1 otherwise, 77 (skipped) without the
corpus at $POSTERN_SHARED_DIR/corpus (the repository's ../shared/corpus).
"""
import calendar
import datetime
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

# ---------------------------------------------------------------------------
# BINARY exceptions: (id, item) -> reason.  The evidence each kind names is
# checked by binary_evidence().
#
# "whole": RFC 3516 §4.2 defines BINARY.SIZE[n] as the size of what
# BINARY[n] returns.  Dovecot decodes the whole message first, so one broken
# or unknown-encoded part makes BINARY.SIZE (and, for some messages,
# BINARY) fail for every part, also parts that decode.  We judge the part
# itself and what is inside it (as md_meta.c and corpus_meta.py do).
# Evidence: we answer with data, Dovecot with NO, and another part of the
# message is the broken one (its md_msg_binary fails with Dovecot's code).
#
# "size": Dovecot's BINARY.SIZE[1] differs from the length of its own
# BINARY[1] answer (S7).  Evidence: our length equals the length of S7 and
# our bytes equal S7.
#
# "container-qp": part 2 is message/rfc822 with Content-Transfer-Encoding
# base64 (forbidden by RFC 2046 §5.2.1, but it is what the message says);
# Dovecot's BINARY.SIZE[2] is 0 for 1196 octets of base64, we decode it.
# Evidence: our answer is OK and longer than 0.
# The list itself is corpus_meta.py's (one list: the store's BINARY sizes
# and its decoded bytes must be excused for the same messages).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus_meta import EXCEPTIONS as BINARY_EXCEPTIONS  # noqa: E402

# SEARCH exceptions: query name -> (ids only in Dovecot's answer, ids only
# in ours, reason).  Checked exactly.
SEARCH_EXCEPTIONS = {
    # none: or-not differed while we folded case only (Dovecot's
    # i;unicode-casemap finds "a" in "S\xc3\xa4ying"); md_text.c decomposes too
}

RESULT_CODES = {"BADMSG": "PARSE", "UNKNOWN_CTE": "UNKNOWN-CTE"}


def load_compare(corpus):
    path = os.path.join(corpus, "compare.py")
    spec = importlib.util.spec_from_file_location("corpus_compare", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


FLAG_BITS = {"\\Answered": 0x01, "\\Flagged": 0x02, "\\Deleted": 0x04,
             "\\Seen": 0x08, "\\Draft": 0x10}


def imap_date(s):
    """dd-Mon-yyyy -> datetime.date"""
    return datetime.datetime.strptime(s, "%d-%b-%Y").date()


# ---------------------------------------------------------------------------
# SEARCH keys (RFC 3501 §6.4.4) -> a tree; text keys become predicates
# that store_query evaluates (their index into preds).

class Parser:
    def __init__(self, parts, preds):
        self.toks = []
        for p in parts:
            if isinstance(p, bytes):
                self.toks.append(("S", p.decode("utf-8")))
                continue
            while p.startswith("("):
                self.toks.append(("(", None))
                p = p[1:]
            close = 0
            while p.endswith(")"):
                close += 1
                p = p[:-1]
            if p.startswith('"') and p.endswith('"') and len(p) >= 2:
                self.toks.append(("S", p[1:-1]))
            elif p:
                self.toks.append(("A", p))
            self.toks.extend([(")", None)] * close)
        self.i = 0
        self.preds = preds
        self.charset = None

    def next(self):
        t = self.toks[self.i]
        self.i += 1
        return t

    def string(self):
        return self.next()[1]

    def pred(self, kind, field, needle):
        key = (kind, field, needle)
        if key not in self.preds:
            self.preds.append(key)
        return ("Q", self.preds.index(key))

    def keys(self):
        res = []
        while self.i < len(self.toks) and self.toks[self.i][0] != ")":
            res.append(self.key())
        return ("AND", res)

    def key(self):
        kind, v = self.next()
        if kind == "(":
            r = self.keys()
            self.next()
            return r
        u = v.upper()
        if u == "CHARSET":
            self.charset = self.string()
            return ("AND", [])
        if u == "ALL":
            return ("AND", [])
        if u in ("SUBJECT", "FROM", "TO", "CC", "BCC"):
            return self.pred("HEADER", u.lower(), self.string())
        if u == "HEADER":
            field = self.string()
            return self.pred("HEADER", field.lower(), self.string())
        if u == "BODY":
            return self.pred("BODY", "-", self.string())
        if u == "TEXT":
            s = self.string()
            return ("OR", self.pred("HEADER", "-", s), self.pred("BODY", "-", s))
        if u == "NOT":
            return ("NOT", self.key())
        if u == "OR":
            a = self.key()
            return ("OR", a, self.key())
        if u in ("LARGER", "SMALLER"):
            return (u, int(self.string()))
        if u in ("SENTBEFORE", "SENTSINCE", "SENTON", "BEFORE", "SINCE", "ON"):
            return (u, imap_date(self.string()))
        if u in ("SEEN", "FLAGGED", "ANSWERED", "DRAFT", "DELETED"):
            return ("FLAG", FLAG_BITS["\\" + u.capitalize()], True)
        if u in ("UNSEEN", "UNFLAGGED", "UNANSWERED", "UNDRAFT", "UNDELETED"):
            return ("FLAG", FLAG_BITS["\\" + u[2:].capitalize()], False)
        if u == "KEYWORD":
            return ("KEYWORD", self.string())
        if u[0].isdigit() or u[0] == "*":
            return ("SEQ", u)
        raise ValueError("search key %r not supported by this test" % v)


def in_seqset(n, total, s):
    for r in s.split(","):
        a, _, b = r.partition(":")
        a = total if a == "*" else int(a)
        b = a if not b else (total if b == "*" else int(b))
        if min(a, b) <= n <= max(a, b):
            return True
    return False


def evaluate(node, m, total):
    op = node[0]
    if op == "AND":
        return all(evaluate(k, m, total) for k in node[1])
    if op == "OR":
        return evaluate(node[1], m, total) or evaluate(node[2], m, total)
    if op == "NOT":
        return not evaluate(node[1], m, total)
    if op == "Q":
        return m["q"][node[1]]
    if op == "LARGER":
        return m["size"] > node[1]
    if op == "SMALLER":
        return m["size"] < node[1]
    if op in ("SENTBEFORE", "SENTSINCE", "SENTON"):
        if m["sent"] == 0:
            pass  # no (valid) Date: header: Dovecot compares 1-Jan-1970
        d = datetime.datetime.fromtimestamp(m["sent"], datetime.timezone.utc).date()
        return {"SENTBEFORE": d < node[1], "SENTSINCE": d >= node[1],
                "SENTON": d == node[1]}[op]
    if op in ("BEFORE", "SINCE", "ON"):
        d = datetime.datetime.fromtimestamp(m["idate"], datetime.timezone.utc).date()
        return {"BEFORE": d < node[1], "SINCE": d >= node[1], "ON": d == node[1]}[op]
    if op == "FLAG":
        return bool(m["flags"] & node[1]) == node[2]
    if op == "KEYWORD":
        return node[1].lower() == "$forwarded" and m["kw"]
    if op == "SEQ":
        return in_seqset(m["seq"], total, node[1])
    raise ValueError(op)


# ---------------------------------------------------------------------------

def run_store(helper, corpus, cmp, ids, preds, bins):
    lines = []
    meta = {}
    for mid in ids:
        flags, date = cmp.append_params(int(mid))
        bits = sum(FLAG_BITS.get(f, 0) for f in flags)
        kw = 1 if "$Forwarded" in flags else 0
        idate = calendar.timegm(datetime.datetime.strptime(
            date, "%d-%b-%Y %H:%M:%S %z").utctimetuple())
        meta[mid] = {"flags": bits, "kw": bool(kw), "idate": idate}
        lines.append("MSG\t%s\t%d\t%d\t%d" % (
            os.path.join(corpus, "messages", mid + ".eml"), bits, kw, idate))
    for kind, field, needle in preds:
        lines.append("Q\t%s\t%s\tx%s" % (kind, field, needle.encode("utf-8").hex()))
    for b in bins:
        lines.append("BIN\t%s" % b)
    tmp = tempfile.mkdtemp(prefix="corpus_store.")
    try:
        r = subprocess.run([helper, tmp], input=("\n".join(lines) + "\n").encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if r.returncode != 0:
        print("store_query exited %d: %s" % (r.returncode, r.stderr.decode("latin-1")[-3000:]))
        return None
    if r.stderr:
        print("store_query said: %s" % r.stderr.decode("latin-1")[-3000:])
    out = r.stdout
    msgs = []
    i = 0
    while i < len(out):
        j = out.index(b"\n", i)
        line = out[i:j].decode("latin-1")
        i = j + 1
        word, _, rest = line.partition(" ")
        if word == "MSG":
            uid, size, sent = rest.split(" ")
            msgs.append({"uid": int(uid), "size": int(size), "sent": int(sent),
                         "bin": {}})
        elif word == "QR":
            msgs[-1]["q"] = [c == "1" for c in rest]
        elif word == "BIN":
            spec, res, n = rest.split(" ")
            n = int(n)
            msgs[-1]["bin"][spec] = (res, out[i:i + n])
            i += n + 1
    if len(msgs) != len(ids):
        print("store_query listed %d messages for %d delivered" % (len(msgs), len(ids)))
        return None
    for seq, (mid, m) in enumerate(zip(ids, msgs), 1):
        m.update(meta[mid])
        m["id"] = mid
        m["seq"] = seq
    return msgs


def our_binary(cmp, m, spec):
    res, data = m["bin"][spec]
    if res == "OK":
        return data
    return {"tagged": {"status": "NO", "code": RESULT_CODES.get(res, res)}}


def binary_evidence(kind, item, golden, got, m):
    if isinstance(got, dict):
        return False
    if kind == "whole":
        g = golden[item]
        code = g.get("tagged", {}).get("code") if isinstance(g, dict) else None
        codes = {RESULT_CODES.get(r) for r, _ in m["bin"].values()}
        return code is not None and code in codes
    if kind == "size":
        s7 = golden.get("S7:BINARY[1]", {})
        n = s7["len"] if "len" in s7 else len(s7.get("s", "").encode("latin-1"))
        return got == str(n) and golden[item] != str(n)
    if kind == "container-qp":
        return got != "0"
    return False


def check_binary(cmp, corpus, ids, msgs):
    passed = failed = excepted = 0
    for mid, m in zip(ids, msgs):
        with open(os.path.join(corpus, "golden", mid + ".json"), encoding="utf-8") as f:
            golden = json.load(f)["items"]
        b1 = our_binary(cmp, m, "1")
        b2 = our_binary(cmp, m, "2")
        got = {
            "S7:BINARY[1]": b1 if isinstance(b1, dict) else cmp.canon(("S", b1)),
            "S6:BINARY.SIZE[1]": b1 if isinstance(b1, dict) else str(len(b1)),
            "S8:BINARY.SIZE[2]": b2 if isinstance(b2, dict) else str(len(b2)),
        }
        for item, ours in got.items():
            g = golden.get(item, {"missing": True})
            ok = ours == g
            exc = BINARY_EXCEPTIONS.get((mid, item))
            if exc is None and item == "S7:BINARY[1]":
                # BINARY[1] is excused where BINARY.SIZE[1] is for "whole"
                if BINARY_EXCEPTIONS.get((mid, "S6:BINARY.SIZE[1]")) == "whole" and \
                        isinstance(g, dict) and "tagged" in g:
                    exc = "whole"
            if exc is not None:
                if ok:
                    print("STALE EXCEPTION %s %s: now matches (%s)" % (mid, item, exc))
                    failed += 1
                elif not binary_evidence(exc, item, golden, ours if item != "S7:BINARY[1]"
                                         else b1, m):
                    print("EXCEPTION WITHOUT EVIDENCE %s %s (%s)\n  golden: %s\n  ours:   %s" % (
                        mid, item, exc, cmp.show(g), cmp.show(ours)))
                    failed += 1
                else:
                    print("EXCEPTION %s %s: golden %s, ours %s -- %s" % (
                        mid, item, cmp.show(g, 100), cmp.show(ours, 100), exc))
                    excepted += 1
                    passed += 1
                continue
            if ok:
                passed += 1
            else:
                failed += 1
                print("MISMATCH %s %s\n  golden: %s\n  ours:   %s\n  %s" % (
                    mid, item, cmp.show(g), cmp.show(ours), cmp.first_diff(g, ours)))
    print("%d messages, %d items as RFC exceptions" % (len(ids), excepted))
    print("%d passed, %d failed" % (passed, failed))
    return failed == 0


def check_search(cmp, corpus, ids, msgs, queries, trees):
    passed = failed = excepted = 0
    for q, tree in zip(queries, trees):
        name = q["name"]
        want = set(q["result"]["ids"])
        got = {m["id"] for m in msgs if evaluate(tree, m, len(msgs))}
        missing = sorted(want - got)
        extra = sorted(got - want)
        exc = SEARCH_EXCEPTIONS.get(name)
        if exc is not None:
            if (missing, extra) == (sorted(exc[0]), sorted(exc[1])):
                print("EXCEPTION %s: Dovecot only %s, ours only %s -- %s" % (
                    name, missing, extra, exc[2]))
                passed += 1
                excepted += 1
            else:
                print("EXCEPTION CHANGED %s: Dovecot only %s, ours only %s; listed %s / %s" % (
                    name, missing, extra, exc[0], exc[1]))
                failed += 1
            continue
        if not missing and not extra:
            passed += 1
        else:
            failed += 1
            print("MISMATCH %s (%s): Dovecot only %s, ours only %s" % (
                name, q["query"], missing, extra))
    print("%d queries, %d as explained exceptions" % (len(queries), excepted))
    print("%d passed, %d failed" % (passed, failed))
    return failed == 0


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("binary", "search"):
        print("usage: corpus_store.py STORE_QUERY binary|search")
        return 2
    helper, mode = sys.argv[1], sys.argv[2]
    corpus = os.path.join(os.environ.get("POSTERN_SHARED_DIR", "/work/shared"), "corpus")
    if not os.path.isfile(os.path.join(corpus, "MANIFEST.tsv")):
        print("skipped: no corpus at %s (set POSTERN_SHARED_DIR)" % corpus)
        return 77
    cmp = load_compare(corpus)
    ids = sorted(cmp.load_manifest(corpus))
    preds, trees, queries = [], [], []
    if mode == "search":
        with open(os.path.join(corpus, "golden", "searches.json"), encoding="utf-8") as f:
            queries = json.load(f)["queries"]
        parts = dict(cmp.SEARCHES)
        for q in queries:
            trees.append(Parser(parts[q["name"]], preds).keys())
    # BINARY[1] and [2] are compared; the others are decoded for the
    # "whole" evidence (and to run every message through the decoders)
    bins = ["-", "1", "2", "3", "4", "5", "1.1", "1.2", "2.1", "3.1", "3.2"]
    msgs = run_store(helper, corpus, cmp, ids, preds, bins if mode == "binary" else [])
    if msgs is None:
        return 1
    if mode == "binary":
        ok = check_binary(cmp, corpus, ids, msgs)
    else:
        ok = check_search(cmp, corpus, ids, msgs, queries, trees)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
