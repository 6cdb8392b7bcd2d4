"""The client quirks table (protocols/imap/imap_quirks.c) against the real
daemon, with the raw client of imap_protocol.py (exact bytes).

For each entry: a session that sends that client's ID gets the workaround,
and a session that sends none (or another client's) gets the standard
answer, so every check below fails if the table or the hook is removed.

  Apple Mail   ID of iPhone Mail 17.1.2 (as asimap's tests record it):
               UID FETCH ... (CHANGEDSINCE 0) answers every message with
               MODSEQ; without the ID it is BAD (RFC 7162 §7).
  Outlook      ID ("name" "Microsoft Outlook" ...): UID FETCH n (UID
               RFC822.SIZE RFC822.PEEK) answers RFC822 with the whole
               message and leaves \\Seen alone (on the wire and in the
               Maildir file name); without the ID it is BAD.
  Thunderbird  ID ("name" "Thunderbird" "version" "153.8.0")
               (/work/shared/clients/thunderbird-imap-session.txt):
               SELECT / STATUS / SUBSCRIBE of "Projects/" name "Projects";
               without the ID they fail.

  K-9 Mail     no entry: K-9 Mail sends ID ("name" "K-9 Mail" "version" ...)
               and Thunderbird for Android names itself "Thunderbird"
               (thunderbird-android's RealImapConnection and build files).
               Its session as its source writes it -- AUTHENTICATE PLAIN
               with a continuation, ID after login, NAMESPACE, LIST "" ""
               for the delimiter, then commands whose UID sets it splits
               at 8,172 octets when CONDSTORE is offered -- works without
               a workaround, and the log says quirks=-.

And the ID bookkeeping: the fields are logged once per session (a second
ID changes nothing), values are truncated and made printable in the log,
ID NIL / ID () stay valid, and a client not in the table gets quirks=-.

Usage: imap_quirks.py /path/to/postern
"""
import base64
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results, maildir_files  # noqa: E402
from imap_protocol import MSG1, PASSWORD, USER, Raw  # noqa: E402

ID_IPHONE = ('ID ("version" "21B101" "os" "iOS" "name" "iPhone Mail" '
             '"os-version" "17.1.2 (21B101)")')
ID_OUTLOOK = 'ID ("name" "Microsoft Outlook" "version" "16.0")'
ID_THUNDERBIRD = 'ID ("name" "Thunderbird" "version" "153.8.0")'
ID_MUTT = 'ID ("name" "Mutt" "version" "2.2.9")'


def session(d, id_cmd=None, select="INBOX"):
    c = Raw(d.port("imaps"), tls=True)
    res = c.login(USER, PASSWORD)
    assert b" OK" in res, res
    if id_cmd is not None:
        lines = c.cmd(id_cmd)
        assert lines[-1].split(b" ")[1] == b"OK", lines
    if select is not None:
        res = c.cmd('SELECT "%s"' % select)[-1]
        assert b" OK" in res, res
    return c


def fetched(lines):
    """The untagged FETCH responses."""
    return [l for l in lines if re.match(rb"\* \d+ FETCH ", l)]


def status(lines):
    """OK / NO / BAD of the tagged reply."""
    return lines[-1].split(b" ")[1].decode()


def test_apple(d, r):
    cmd = "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 0)"
    c = session(d, ID_IPHONE)
    lines = c.cmd(cmd)
    fetches = fetched(lines)
    r.check(status(lines) == "OK" and len(fetches) == 2 and
            all(re.search(rb"MODSEQ \(\d+\)", l) for l in fetches),
            "iPhone Mail: CHANGEDSINCE 0 answers both messages with MODSEQ: %r" % lines)
    # the quirk accepts 0 only: a real mod-sequence filters as for anyone
    st = c.cmd('STATUS "INBOX" (HIGHESTMODSEQ)')
    top = int(re.search(rb"HIGHESTMODSEQ (\d+)", st[0]).group(1))
    lines = c.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % top)
    r.check(status(lines) == "OK" and not fetched(lines),
            "iPhone Mail: CHANGEDSINCE HIGHESTMODSEQ (%d) still filters: %r" % (top, lines))
    c.close()
    for label, id_cmd in (("no ID", None), ("Thunderbird", ID_THUNDERBIRD)):
        c = session(d, id_cmd)
        lines = c.cmd(cmd)
        r.check(status(lines) == "BAD" and not fetched(lines),
                "%s: CHANGEDSINCE 0 is BAD (RFC 7162 §7): %r" % (label, lines))
        c.close()


def test_outlook(d, r):
    cmd = "UID FETCH 1 (UID RFC822.SIZE RFC822.PEEK)"
    c = session(d, ID_OUTLOOK)
    lines = c.cmd(cmd)
    m = re.match(rb"\* 1 FETCH \(UID 1 RFC822\.SIZE (\d+) RFC822 \{(\d+)\}$", lines[0])
    r.check(status(lines) == "OK" and len(lines) >= 3 and m is not None and
            m.group(1) == m.group(2) and len(lines[1]) == int(m.group(2)) and
            lines[1].endswith(MSG1),
            "Outlook: RFC822.PEEK answers RFC822 with the whole message: %r" % lines[:2])
    r.check(not any(b"\\Seen" in l for l in lines),
            "Outlook: no FLAGS (\\Seen) after RFC822.PEEK: %r" % lines)
    flags = c.cmd("UID FETCH 1 (FLAGS)")
    r.check(b"\\Seen" not in flags[0], "Outlook: message 1 is still unseen: %r" % flags)
    names = [os.path.basename(p) for p in maildir_files(d, USER)]
    r.check(names and not any(re.search(r":2,[A-Z]*S", n) for n in names),
            "Outlook: no S in the Maildir file names: %r" % names)
    # RFC822 (no .PEEK) still sets \Seen for Outlook: the quirk adds, changes nothing
    lines = c.cmd("UID FETCH 2 (RFC822)")
    r.check(status(lines) == "OK" and any(b"\\Seen" in l for l in lines),
            "Outlook: RFC822 without .PEEK sets \\Seen as usual: %r" % lines[-1:])
    c.cmd("UID STORE 2 -FLAGS.SILENT (\\Seen)")
    c.close()
    c = session(d, None)
    lines = c.cmd(cmd)
    r.check(status(lines) == "BAD" and not fetched(lines),
            "no ID: RFC822.PEEK is BAD (not in RFC 3501): %r" % lines)
    c.close()


def test_thunderbird(d, r):
    c = session(d, ID_THUNDERBIRD, select=None)
    res = c.cmd('CREATE "Projects"')[-1]
    r.check(b" OK" in res, "CREATE Projects: %r" % res)
    lines = c.cmd('STATUS "Projects/" (MESSAGES)')
    r.check(status(lines) == "OK" and lines[0] == b'* STATUS "Projects" (MESSAGES 0)',
            "Thunderbird: STATUS \"Projects/\" is Projects: %r" % lines)
    lines = c.cmd('SUBSCRIBE "Projects/"')
    r.check(status(lines) == "OK", "Thunderbird: SUBSCRIBE \"Projects/\": %r" % lines)
    lines = c.cmd('LSUB "" "*"')
    r.check(b'* LSUB () "/" "Projects"' in lines and
            not any(b"Projects/" in l for l in lines),
            "Thunderbird: the subscription is Projects, not Projects/: %r" % lines)
    lines = c.cmd('SELECT "Projects/"')
    r.check(status(lines) == "OK" and b"* 0 EXISTS" in lines,
            "Thunderbird: SELECT \"Projects/\" opens Projects: %r" % lines[-1:])
    c.close()
    c = session(d, None, select=None)
    for cmd in ('SELECT "Projects/"', 'STATUS "Projects/" (MESSAGES)',
                'SUBSCRIBE "Projects/"'):
        lines = c.cmd(cmd)
        r.check(status(lines) in ("NO", "BAD"),
                "no ID: %s fails: %r" % (cmd, lines[-1:]))
    c.close()


K9_LINE_LIMIT = 8172  # K-9's command split size when CONDSTORE is offered


def k9_uid_set(prefix, suffix):
    """A UID set that makes "prefix SET suffix" exactly K9_LINE_LIMIT long:
    UIDs 1 and 2 (the messages), then absent ones, the last one padded."""
    target = K9_LINE_LIMIT - len(prefix) - len(suffix)
    set_, uid = "1,2", 1000
    while target - len(set_) > 11:
        set_ += ",%d" % uid
        uid += 2
    digits = target - len(set_) - 1  # 5..10: "1" and zeros stays a UID
    return set_ + ",1" + "0" * (digits - 1)


def test_k9(d, r):
    before = len(client_lines(d))
    c = Raw(d.port("imaps"), tls=True)
    caps = c.cmd("CAPABILITY")[0]
    r.check(all(k in caps for k in (b"AUTH=PLAIN", b" ID")),
            "what K-9 looks for before login is offered: %r" % caps)
    c.send(b"2 AUTHENTICATE PLAIN\r\n")
    cont = c.raw_line()
    c.send(base64.b64encode(("\0%s\0%s" % (USER, PASSWORD)).encode()) + b"\r\n")
    res = c.until("2")
    r.check(cont.startswith(b"+") and status(res) == "OK",
            "AUTHENTICATE PLAIN with a continuation: %r %r" % (cont, res))
    r.check(all(k in res[-1] for k in (b"[CAPABILITY ", b" CONDSTORE", b" NAMESPACE")),
            "the capabilities K-9 reads from the login reply: %r" % res[-1])
    lines = c.cmd('ID ("name" "K-9 Mail" "version" "6.802")')
    r.check(status(lines) == "OK", "K-9's ID: %r" % lines)
    lines = c.cmd("NAMESPACE")
    r.check(status(lines) == "OK" and lines[0].startswith(b"* NAMESPACE ((\"\" \"/\"))"),
            "NAMESPACE gives K-9 its prefix and delimiter: %r" % lines)
    lines = c.cmd('LIST "" ""')
    r.check(status(lines) == "OK" and lines[0] == b'* LIST (\\Noselect) "/" ""',
            "LIST \"\" \"\" gives the delimiter: %r" % lines)
    r.check(b" OK" in c.cmd('SELECT "INBOX"')[-1], "SELECT INBOX")
    prefix, suffix = "UID FETCH ", " (UID FLAGS)"
    text = prefix + k9_uid_set(prefix, suffix) + suffix
    lines = c.cmd(text)
    r.check(len(text) == K9_LINE_LIMIT and status(lines) == "OK" and len(fetched(lines)) == 2,
            "a %d-octet UID FETCH (K-9's split size) answers both messages: %r"
            % (len(text), lines[-1:]))
    c.close()
    new = client_lines(d)[before:]
    r.check(len(new) == 1 and 'name="K-9 Mail" version="6.802"' in new[0] and
            "quirks=-" in new[0], "K-9 Mail is logged with no quirk: %r" % new)


def client_lines(d):
    return [l for l in d.log().splitlines() if " imap client " in l]


def test_id_log(d, r):
    before = len(client_lines(d))
    c = session(d, ID_IPHONE, select=None)
    lines = c.cmd(ID_THUNDERBIRD)
    r.check(status(lines) == "OK" and lines[0] == b'* ID ("name" "Postern")',
            "a second ID is answered: %r" % lines)
    # the second ID (Thunderbird) did not replace the first (iPhone Mail)
    res = c.cmd('SELECT "INBOX"')[-1]
    lines = c.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 0)")
    r.check(b" OK" in res and status(lines) == "OK",
            "the first ID decides (still iPhone Mail): %r" % lines[-1:])
    c.close()
    new = client_lines(d)[before:]
    r.check(len(new) == 1 and 'name="iPhone Mail" version="21B101" os="iOS"' in new[0] and
            "quirks=changedsince-zero" in new[0],
            "one log line with the client's fields and quirks: %r" % new)
    before = len(client_lines(d))
    long_name = "X" * 300
    c = session(d, 'ID ("name" "%s" "version" "1\\"2" "os" NIL)' % long_name, select=None)
    c.close()
    c = session(d, ID_MUTT, select=None)
    c.close()
    for id_cmd in ("ID NIL", "ID ()"):
        c = session(d, None, select=None)
        lines = c.cmd(id_cmd)
        r.check(status(lines) == "OK", "%s is OK: %r" % (id_cmd, lines))
        c.close()
    for bad in ('ID ("name")', 'ID (NIL "x")', 'ID ("name" "a" "version")'):
        lines = session(d, None, select=None).cmd(bad)
        r.check(status(lines) == "BAD", "%s is BAD (RFC 2971 §4): %r" % (bad, lines))
    new = client_lines(d)[before:]
    r.check(len(new) == 4 and ('name="%s" version="1?2" os=""' % ("X" * 64)) in new[0] and
            "X" * 65 not in new[0],
            "long name cut to 64 octets, quote made printable: %r" % new[:1])
    r.check(len(new) == 4 and 'name="Mutt"' in new[1] and "quirks=-" in new[1],
            "a client not in the table: quirks=-: %r" % new[1:2])


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: imap_quirks.py POSTERN")
    r = Results()
    d = Daemon(sys.argv[1], roles=("imaps",))
    with d:
        d.add_user(USER, PASSWORD)
        d.cli("deliver", USER, input=MSG1)
        d.cli("deliver", USER, input=MSG1)
        r.run("apple", lambda: test_apple(d, r))
        r.run("outlook", lambda: test_outlook(d, r))
        r.run("thunderbird", lambda: test_thunderbird(d, r))
        r.run("k-9", lambda: test_k9(d, r))
        r.run("id log", lambda: test_id_log(d, r))
    r.finish()


if __name__ == "__main__":
    main()
