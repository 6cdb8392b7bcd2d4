"""The IMAP server against the Dovecot-recorded conformance corpus.

Starts the daemon, runs the corpus's own compare.py (from
$POSTERN_SHARED_DIR/corpus, never copied) over IMAPS: every corpus message
is APPENDed, 21 FETCH items per message and 40 UID SEARCH queries are
compared with Dovecot's golden answers (normalisation: corpus README.md).

Differences we know of are listed in EXCEPTIONS / SEARCH_EXCEPTIONS with
the reason.  Each is checked: an exception must still differ exactly as
stated (so the list cannot hide a new difference, and an exception that
has been fixed is reported so the list stays true); every other mismatch
fails the test.  The daemon runs under the sanitizers in a
POSTERN_SANITIZE build: a report makes it exit non-zero and the test fail.

Usage: imap_corpus.py /path/to/postern   (exit 77 without the corpus)
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results, SKIP  # noqa: E402

USER = "corpus@example.test"
PASSWORD = "corpus-secret-1"

# FETCH items: (message id, item) -> why our answer differs.  These are the
# BINARY.SIZE readings of RFC 3516 §4.2 that corpus_meta.py explains and
# checks against the store directly (Dovecot judges BINARY.SIZE on the
# whole message, or gives a size other than its own BINARY answer's
# length); imported from it so that the two lists cannot drift apart.
def fetch_exceptions():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import corpus_meta
    return {key: "RFC 3516 BINARY.SIZE, see corpus_meta.py (%s)" % why
            for key, why in corpus_meta.EXCEPTIONS.items()}


# SEARCH queries -> (reason, ids Dovecot finds that we do not, ids we find
# that Dovecot does not).  Text keys use the store's decoded text
# (md_msg_text: RFC 2047, base64/QP, charsets, case folding).
SEARCH_EXCEPTIONS = {}  # none left: the store matches as i;unicode-casemap does


def main():
    postern = sys.argv[1]
    corpus = os.path.join(os.environ.get("POSTERN_SHARED_DIR", "/work/shared"), "corpus")
    if not os.path.exists(os.path.join(corpus, "compare.py")):
        print("skipped: no corpus at %s (set POSTERN_SHARED_DIR)" % corpus)
        sys.exit(SKIP)
    r = Results()
    with Daemon(postern, roles=("imaps",)) as d:
        d.add_user(USER, PASSWORD)
        proc = subprocess.run([sys.executable, os.path.join(corpus, "compare.py"), "--ssl",
                               "127.0.0.1", str(d.port("imaps")), USER, PASSWORD, corpus,
                               "--show", "100000"], capture_output=True, timeout=280)
        out = proc.stdout.decode(errors="replace")
        last = out.strip().splitlines()[-1] if out.strip() else ""
        m = re.match(r"(\d+) passed, (\d+) failed$", last)
        if not r.check(m is not None, "compare.py ran to the end: %r %s" %
                       (last, proc.stderr.decode(errors="replace")[-2000:])):
            r.finish()
        failed = int(m.group(2))
        exceptions = fetch_exceptions()
        seen_items = set()
        seen_searches = {}
        for line in out.splitlines():
            mm = re.match(r"MISMATCH search ([\w-]+): .*missing \[([^\]]*)\] extra \[([^\]]*)\]", line)
            if mm:
                ids = lambda s: set(x.strip().strip("'") for x in s.split(",") if x.strip())
                seen_searches[mm.group(1)] = (ids(mm.group(2)), ids(mm.group(3)))
                continue
            mm = re.match(r"MISMATCH (\d{4}) (\S+)$", line.rstrip())
            if mm:
                seen_items.add((mm.group(1), mm.group(2)))
                if (mm.group(1), mm.group(2)) not in exceptions:
                    r.check(False, "unexplained FETCH difference: " + line)
        for key, why in sorted(exceptions.items()):
            r.check(key in seen_items, "exception %s %s still differs (%s); remove it if fixed" %
                    (key[0], key[1], why))
        n_binary = len(seen_items & set(exceptions))
        for name, (missing, extra) in seen_searches.items():
            if name not in SEARCH_EXCEPTIONS:
                r.check(False, "unexplained SEARCH difference %s: missing %s extra %s" %
                        (name, sorted(missing), sorted(extra)))
                continue
            why, want_missing, want_extra = SEARCH_EXCEPTIONS[name]
            r.check(missing == want_missing and extra == want_extra,
                    "SEARCH %s differs only as explained (%s): missing %s extra %s" %
                    (name, why, sorted(missing), sorted(extra)))
        for name in SEARCH_EXCEPTIONS:
            r.check(name in seen_searches, "search exception %s still differs; remove it if fixed" % name)
        explained = n_binary + len(seen_searches)
        r.check(failed == explained, "every failed check is explained (%d failed, %d explained)" %
                (failed, explained))
        r.check(int(m.group(1)) > 3000, "compare.py: %s" % last)
    r.finish()


if __name__ == "__main__":
    main()
