"""IMAP end to end against the real daemon with Python's imaplib and a raw
client that sees exact bytes: STARTTLS and implicit TLS, login policy,
LOGIN / AUTHENTICATE (PLAIN, LOGIN, SASL-IR), ID, ENABLE, NAMESPACE,
mailbox commands (LIST extended, LSUB, CREATE, DELETE, RENAME incl. INBOX,
(UN)SUBSCRIBE, STATUS), APPEND / MULTIAPPEND with literals, SELECT /
EXAMINE, FETCH items and partial fetches, STORE, COPY / MOVE, EXPUNGE,
SEARCH keys and ESEARCH, IDLE across two sessions, bad input and limits.

Usage: imap_protocol.py /path/to/postern
"""
import base64
import imaplib
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, LineClient, Results, tls_context  # noqa: E402

USER = "alice@example.test"
PASSWORD = "alice-secret-1"
USER2 = "bob@example.test"
PASSWORD2 = "bob-secret-2"

MSG1 = (b"From: Bob Sender <bob@example.test>\r\n"
        b"To: Alice <alice@example.test>\r\n"
        b"Cc: carol@example.test\r\n"
        b"Subject: Quarterly report\r\n"
        b"Date: Mon, 02 Feb 2026 10:00:00 +0000\r\n"
        b"Message-ID: <m1@example.test>\r\n"
        b"X-Folded: first\r\n"
        b" second-part\r\n"
        b"\r\n"
        b"Hello Alice,\r\nthe numbers are in: forty-two.\r\n")
MSG2 = (b"From: carol@example.test\r\n"
        b"To: alice@example.test\r\n"
        b"Subject: lunch\r\n"
        b"Date: Tue, 10 Mar 2026 12:00:00 +0000\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=\"BB\"\r\n"
        b"\r\n"
        b"preamble\r\n"
        b"--BB\r\n"
        b"Content-Type: text/plain\r\n"
        b"\r\n"
        b"part one text\r\n"
        b"--BB\r\n"
        b"Content-Type: text/html\r\n"
        b"\r\n"
        b"<p>part two</p>\r\n"
        b"--BB--\r\n")


class Raw(LineClient):
    """Tagged command client that returns every line up to the tagged one."""

    def __init__(self, port, tls=False):
        super().__init__(port, tls)
        self.greeting = self.raw_line()
        self.n = 0

    def cmd(self, text, tag=None):
        self.n += 1
        tag = tag or "r%d" % self.n
        if isinstance(text, str):
            text = text.encode()
        self.send(tag.encode() + b" " + text + b"\r\n")
        return self.until(tag)

    def until(self, tag):
        lines = []
        tag = tag.encode() if isinstance(tag, str) else tag
        while True:
            line = self.raw_line()
            lines.append(line)
            m = re.search(rb"\{(\d+)\}$", line)
            if m:
                n = int(m.group(1))
                while len(self.buf) < n:
                    self._fill()
                lines.append(self.buf[:n])
                self.buf = self.buf[n:]
                continue
            if line.startswith(tag + b" "):
                return lines

    def login(self, user=USER, password=PASSWORD):
        return self.cmd('LOGIN "%s" "%s"' % (user, password))[-1]


def imaps(d, user=USER, password=PASSWORD):
    m = imaplib.IMAP4_SSL("127.0.0.1", d.port("imaps"), ssl_context=tls_context())
    m.login(user, password)
    return m


def deliver(d, msg, user=USER):
    d.cli("deliver", user, input=msg)


def ok(res):
    return res[0] == "OK"


# ---- login policy, STARTTLS, SASL --------------------------------------------

def test_policy(d, r):
    c = Raw(d.port("imap"))
    r.check(c.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 "), "greeting carries CAPABILITY")
    r.check(b"STARTTLS" in c.greeting and b"LOGINDISABLED" in c.greeting and
            b"AUTH=PLAIN" not in c.greeting,
            "plaintext greeting: STARTTLS, LOGINDISABLED, no AUTH=: %r" % c.greeting)
    res = c.login()
    r.check(res.startswith(b"r1 NO"), "LOGIN refused without TLS: %r" % res)
    res = c.cmd("SELECT INBOX")[-1]
    r.check(res.startswith(b"r2 BAD"), "SELECT before login is BAD: %r" % res)
    # STARTTLS with a command pipelined behind it: it must be discarded
    c.send(b"s1 STARTTLS\r\ns2 LOGIN alice@example.test alice-secret-1\r\n")
    res = c.raw_line()
    r.check(res.startswith(b"s1 OK"), "STARTTLS answers OK: %r" % res)
    c.sock = tls_context().wrap_socket(c.sock)
    c.buf = b""
    lines = c.cmd("CAPABILITY")
    r.check(lines[0].startswith(b"* CAPABILITY") and b"AUTH=PLAIN" in lines[0] and
            b"STARTTLS" not in lines[0] and b"LOGINDISABLED" not in lines[0],
            "first answer after TLS is CAPABILITY's, with AUTH=PLAIN: %r" % lines)
    res = c.cmd("STARTTLS")[-1]
    r.check(b" BAD" in res, "second STARTTLS refused: %r" % res)
    res = c.login(USER, "wrong")
    r.check(b"NO [AUTHENTICATIONFAILED]" in res, "wrong password: NO [AUTHENTICATIONFAILED]: %r" % res)
    res = c.login()
    r.check(b"OK [CAPABILITY IMAP4rev1" in res and b"MOVE" in res and b"IDLE" in res,
            "LOGIN's tagged OK carries the full CAPABILITY: %r" % res)
    res = c.cmd("LOGIN a b")[-1]
    r.check(b" BAD" in res, "LOGIN when logged in is BAD: %r" % res)
    lines = c.cmd("LOGOUT")
    r.check(lines[0].startswith(b"* BYE") and b"OK" in lines[-1], "LOGOUT: BYE then OK")
    r.check(c.closed(), "connection closed after LOGOUT")
    c.close()


def b64(s):
    return base64.b64encode(s).decode()


def test_sasl(d, r):
    c = Raw(d.port("imaps"), tls=True)
    r.check(b"AUTH=PLAIN AUTH=LOGIN" in c.greeting and b"SASL-IR" in c.greeting,
            "TLS greeting offers AUTH=PLAIN AUTH=LOGIN and SASL-IR")
    # Thunderbird: AUTHENTICATE PLAIN, wait for "+ "
    c.send(b"a1 AUTHENTICATE PLAIN\r\n")
    res = c.raw_line()
    r.check(res == b"+ ", "AUTHENTICATE PLAIN without IR gets '+ ': %r" % res)
    c.send((b64(b"\0" + USER.encode() + b"\0" + PASSWORD.encode()) + "\r\n").encode())
    res = c.until("a1")[-1]
    r.check(res.startswith(b"a1 OK [CAPABILITY "), "PLAIN exchange logs in: %r" % res)
    c.close()
    # SASL-IR
    c = Raw(d.port("imaps"), tls=True)
    res = c.cmd("AUTHENTICATE PLAIN " + b64(b"\0" + USER.encode() + b"\0" + PASSWORD.encode()))[-1]
    r.check(b"OK [CAPABILITY" in res, "PLAIN with initial response: %r" % res)
    c.close()
    # LOGIN mechanism
    c = Raw(d.port("imaps"), tls=True)
    c.send(b"a2 AUTHENTICATE LOGIN\r\n")
    p1 = c.raw_line()
    c.send((b64(USER.encode()) + "\r\n").encode())
    p2 = c.raw_line()
    c.send((b64(PASSWORD.encode()) + "\r\n").encode())
    res = c.until("a2")[-1]
    r.check(p1.startswith(b"+ ") and p2.startswith(b"+ ") and b"OK" in res,
            "AUTHENTICATE LOGIN: two challenges, then OK: %r %r %r" % (p1, p2, res))
    c.close()
    # cancel, bad base64, unknown mechanism
    c = Raw(d.port("imaps"), tls=True)
    c.send(b"a3 AUTHENTICATE PLAIN\r\n")
    c.raw_line()
    c.send(b"*\r\n")
    res = c.until("a3")[-1]
    r.check(res.startswith(b"a3 BAD"), "cancelled exchange is BAD: %r" % res)
    res = c.cmd("AUTHENTICATE PLAIN !!!notbase64")[-1]
    r.check(b" BAD" in res, "bad base64 is BAD: %r" % res)
    res = c.cmd("AUTHENTICATE CRAM-MD5")[-1]
    r.check(b" NO" in res, "unknown mechanism is NO: %r" % res)
    res = c.cmd("AUTHENTICATE PLAIN " + b64(b"\0" + USER.encode() + b"\0wrong"))[-1]
    r.check(b"NO [AUTHENTICATIONFAILED]" in res, "wrong SASL password: %r" % res)
    c.close()


def test_misc(d, r):
    c = Raw(d.port("imaps"), tls=True)
    for text in ("ID NIL", "ID ()", 'ID ("name" "Thunderbird" "version" "153.8.0")'):
        lines = c.cmd(text)
        r.check(lines[0].startswith(b'* ID ("name" "Postern")') and b"OK" in lines[-1],
                "%s answered: %r" % (text, lines))
    res = c.cmd("ID (\"name\"")[-1]
    r.check(b" BAD" in res, "unbalanced ID is BAD")
    c.login()
    lines = c.cmd("NAMESPACE")
    r.check(lines[0] == b'* NAMESPACE (("" "/")) NIL NIL', "NAMESPACE: %r" % lines[0])
    lines = c.cmd("ENABLE X-UNKNOWN")
    r.check(lines[0] == b"* ENABLED" and b"OK" in lines[-1], "ENABLE of nothing offered: %r" % lines)
    lines = c.cmd("CAPABILITY")
    caps = lines[0].split()
    for want in (b"IMAP4rev1", b"LITERAL+", b"SASL-IR", b"ID", b"ENABLE", b"IDLE", b"NAMESPACE",
                 b"UNSELECT", b"CHILDREN", b"UIDPLUS", b"MOVE", b"LIST-EXTENDED", b"SPECIAL-USE",
                 b"LIST-STATUS", b"STATUS=SIZE", b"MULTIAPPEND", b"ESEARCH", b"SEARCHRES",
                 b"BINARY", b"CONDSTORE", b"QRESYNC", b"SAVEDATE", b"UTF8=ACCEPT", b"NOTIFY"):
        r.check(want in caps, "CAPABILITY after login lists " + want.decode())
    r.check(b"CONTEXT=SORT" not in caps, "nothing unimplemented is advertised")
    lines = c.cmd("NOOP")
    r.check(lines[-1].startswith(b"r") and b"OK" in lines[-1], "NOOP")
    c.close()


# ---- mailboxes ----------------------------------------------------------------

def listed(lines):
    out = {}
    for l in lines:
        m = re.match(rb'\* (LIST|LSUB) \(([^)]*)\) "/" "?([^"]*)"?$', l)
        if m:
            out[m.group(3).decode()] = m.group(2).decode().split()
    return out


def test_mailboxes(d, r):
    c = Raw(d.port("imaps"), tls=True)
    c.login()
    boxes = listed(c.cmd('LIST "" "*"'))
    r.check(set(boxes) >= {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"},
            "new user has the special-use folders: %s" % sorted(boxes))
    r.check("\\Trash" in boxes.get("Trash", []) and "\\Sent" in boxes.get("Sent", []),
            "special-use attributes: %s" % boxes)
    lines = c.cmd('LIST (SUBSCRIBED) "" "*" RETURN (SPECIAL-USE)')
    sub = listed(lines)
    r.check(lines[-1].split()[1] == b"OK" and "Trash" in sub and "\\Subscribed" in sub["Trash"],
            "Thunderbird's LIST (SUBSCRIBED) ... RETURN (SPECIAL-USE): %r" % lines)
    lines = c.cmd('LIST "" ""')
    r.check(lines[0] == b'* LIST (\\Noselect) "/" ""', "LIST \"\" \"\" gives the delimiter: %r" % lines[0])
    lines = c.cmd('LIST "" "INBOX"')
    r.check(len(lines) == 2 and b'"INBOX"' in lines[0], "LIST \"\" INBOX: %r" % lines)
    res = c.cmd('CREATE "Projects/2026"')[-1]
    r.check(b"OK" in res, "CREATE Projects/2026")
    res = c.cmd('CREATE "Projects/2026"')[-1]
    r.check(b"NO [ALREADYEXISTS]" in res, "CREATE twice: [ALREADYEXISTS]: %r" % res)
    boxes = listed(c.cmd('LIST "" "Projects/%"'))
    r.check(list(boxes) == ["Projects/2026"], "%% does not cross the delimiter: %s" % boxes)
    boxes = listed(c.cmd('LIST "" "%"'))
    r.check("Projects" in boxes and "\\HasChildren" in boxes["Projects"] and
            "Projects/2026" not in boxes, "parent shown with \\HasChildren: %s" % boxes.get("Projects"))
    boxes = listed(c.cmd('LIST "Projects/" "*"'))
    r.check(list(boxes) == ["Projects/2026"], "reference is a prefix: %s" % boxes)
    res = c.cmd('CREATE "Entw&APw-rfe"')[-1]
    boxes = listed(c.cmd('LIST "" "Entw*"'))
    r.check(b"OK" in res and "Entw&APw-rfe" in boxes, "modified UTF-7 name round trip: %s" % boxes)
    for bad in ('"../evil"', '"a/../b"', '"with.dot"', '"bad&Jjo"', '"tab\there"'):
        res = c.cmd("CREATE " + bad)[-1]
        r.check(b" NO" in res or b" BAD" in res, "CREATE %s refused: %r" % (bad, res))
    before = sorted(os.listdir(os.path.join(d.data, "mail", "example.test")))
    for cmd in ('SELECT "../bob"', 'RENAME "Sent" "../../escape"', 'RENAME "Sent" "/abs"',
                'CREATE "/etc"', 'CREATE "a//b"', 'CREATE "..x/.."', 'CREATE ".hidden"',
                'COPY 1 "../x"', 'SUBSCRIBE "a\x01b"', 'CREATE "INBOX/../Trash2"',
                'STATUS "../bob@example.test" (MESSAGES)', 'DELETE "../bob"'):
        res = c.cmd(cmd)[-1]
        r.check(b" NO" in res or b" BAD" in res, "%s refused: %r" % (cmd, res))
    after = sorted(os.listdir(os.path.join(d.data, "mail", "example.test")))
    r.check(before == after, "no name trick created anything beside the users' trees: %s" % after)
    res = c.cmd("CREATE Mine (USE (\\Archive))")[-1]
    boxes = listed(c.cmd('LIST "" "Mine"'))
    r.check(b"OK" in res and "\\Archive" in boxes.get("Mine", []),
            "CREATE-SPECIAL-USE: %r %s" % (res, boxes))
    res = c.cmd("CREATE Mine2 (USE (\\Bogus))")[-1]
    r.check(b"NO [USEATTR]" in res, "unknown USE attribute: %r" % res)
    res = c.cmd('RENAME "Projects" "Work"')[-1]
    boxes = listed(c.cmd('LIST "" "*"'))
    r.check(b"OK" in res and "Work/2026" in boxes and "Projects/2026" not in boxes,
            "RENAME moves children: %s" % sorted(boxes))
    res = c.cmd('RENAME "Nope" "Other"')[-1]
    r.check(b"NO [NONEXISTENT]" in res, "RENAME of a missing mailbox: %r" % res)
    res = c.cmd('RENAME "Work/2026" "Trash"')[-1]
    r.check(b"NO [ALREADYEXISTS]" in res, "RENAME onto an existing one: %r" % res)
    res = c.cmd('DELETE "Nope"')[-1]
    r.check(b"NO [NONEXISTENT]" in res, "DELETE missing: [NONEXISTENT]: %r" % res)
    res = c.cmd('DELETE "INBOX"')[-1]
    r.check(b" NO" in res, "DELETE INBOX refused: %r" % res)
    res = c.cmd('DELETE "Work/2026"')[-1]
    r.check(b"OK" in res, "DELETE Work/2026")
    res = c.cmd('SUBSCRIBE "Work"')[-1]
    subs = listed(c.cmd('LSUB "" "*"'))
    r.check(b"OK" in res and "Work" in subs, "SUBSCRIBE + LSUB: %s" % subs)
    res = c.cmd('UNSUBSCRIBE "Work"')[-1]
    subs = listed(c.cmd('LSUB "" "*"'))
    r.check(b"OK" in res and "Work" not in subs, "UNSUBSCRIBE: %s" % subs)
    res = c.cmd('SUBSCRIBE "Ghost"')[-1]
    sub = listed(c.cmd('LIST (SUBSCRIBED) "" "Ghost"'))
    r.check(b"OK" in res and "\\NonExistent" in sub.get("Ghost", []),
            "subscription of a nonexistent mailbox shows \\NonExistent: %s" % sub)
    lines = c.cmd('STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT SIZE)')
    r.check(re.match(rb'\* STATUS "INBOX" \(MESSAGES \d+ RECENT 0 UIDNEXT \d+ UIDVALIDITY \d+ '
                     rb'UNSEEN \d+ SIZE \d+\)$', lines[0]) is not None, "STATUS: %r" % lines[0])
    res = c.cmd("STATUS Nope (MESSAGES)")[-1]
    r.check(b"NO [NONEXISTENT]" in res, "STATUS of a missing mailbox: %r" % res)
    res = c.cmd("STATUS INBOX (BOGUS)")[-1]
    r.check(b" BAD" in res, "STATUS with an unknown item is BAD")
    boxes = listed(c.cmd('LIST (SPECIAL-USE) "" "*"'))
    r.check(set(boxes) == {"Sent", "Drafts", "Trash", "Junk", "Archive", "Mine"},
            "LIST (SPECIAL-USE) lists only special-use mailboxes: %s" % sorted(boxes))
    c.cmd('CREATE "Rec/Child"')
    c.cmd('SUBSCRIBE "Rec/Child"')
    c.cmd('UNSUBSCRIBE "Rec"')
    lines = c.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    rec = [l for l in lines if b'"Rec"' in l]
    r.check(len(rec) == 1 and rec[0].endswith(b'"Rec" ("CHILDINFO" ("SUBSCRIBED"))') and
            b"\\Subscribed" not in rec[0],
            "RECURSIVEMATCH: unsubscribed parent of a subscribed child gets CHILDINFO: %r" % rec)
    r.check(not any(b'"Rec/Child"' in l for l in lines), "the child itself does not match %%")
    res = c.cmd('LIST (RECURSIVEMATCH) "" "*"')[-1]
    r.check(b" BAD" in res, "RECURSIVEMATCH alone is BAD: %r" % res)
    lines = c.cmd('LIST "" "*" RETURN (STATUS (MESSAGES UNSEEN))')
    r.check(any(l.startswith(b'* STATUS "INBOX" (MESSAGES') for l in lines),
            "LIST-STATUS returns STATUS lines: %r" % lines[:4])
    c.close()


def test_rename_inbox(d, r):
    deliver(d, MSG1, USER2)
    deliver(d, MSG2, USER2)
    m = imaps(d, USER2, PASSWORD2)
    typ, _ = m.rename("INBOX", "Old-Inbox")
    r.check(typ == "OK", "RENAME INBOX")
    typ, data = m.status("Old-Inbox", "(MESSAGES)")
    r.check(typ == "OK" and b"MESSAGES 2" in data[0], "RENAME INBOX moved its messages: %r" % data)
    typ, data = m.status("INBOX", "(MESSAGES)")
    r.check(typ == "OK" and b"MESSAGES 0" in data[0], "INBOX is empty afterwards: %r" % data)
    m.logout()


# ---- APPEND --------------------------------------------------------------------

def test_append(d, r):
    m = imaps(d)
    date = imaplib.Time2Internaldate(time.mktime((2025, 7, 17, 9, 44, 25, 0, 0, -1)))
    typ, data = m.append("Drafts", "(\\Draft \\Seen $Label1)", date, MSG1)
    r.check(typ == "OK" and re.search(rb"\[APPENDUID \d+ 1\]", data[0]) is not None,
            "APPEND with flags and date, APPENDUID: %r" % data)
    m.select("Drafts")
    typ, data = m.fetch("1", "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
    meta = data[0][0]
    r.check(b"\\Draft" in meta and b"\\Seen" in meta and b"$Label1" in meta,
            "appended flags and keyword kept: %r" % meta)
    r.check(b'INTERNALDATE "17-Jul-2025' in meta, "internal date kept: %r" % meta)
    r.check(data[0][1] == MSG1 and b"RFC822.SIZE %d" % len(MSG1) in meta,
            "appended bytes come back exact")
    typ, data = m.append("NoSuchBox", None, None, MSG1)
    r.check(typ == "NO" and b"TRYCREATE" in data[0], "APPEND to a missing mailbox: [TRYCREATE]: %r" % data)
    m.logout()

    c = Raw(d.port("imaps"), tls=True)
    c.login()
    # LITERAL+ (Thunderbird): no "+" expected
    c.send(b'p1 APPEND "Sent" (\\Seen) {%d+}\r\n' % len(MSG2) + MSG2 + b"\r\n")
    res = c.until("p1")[-1]
    r.check(res.startswith(b"p1 OK [APPENDUID"), "APPEND with a non-synchronising literal: %r" % res)
    # MULTIAPPEND: two messages, one command
    c.send(b'p2 APPEND "Sent" (\\Seen) {%d+}\r\n' % len(MSG1) + MSG1 +
           b' (\\Flagged) {%d+}\r\n' % len(MSG2) + MSG2 + b"\r\n")
    res = c.until("p2")[-1]
    m2 = re.search(rb"APPENDUID \d+ (\d+),(\d+)\]", res)
    r.check(m2 is not None and int(m2.group(2)) == int(m2.group(1)) + 1,
            "MULTIAPPEND appends both, APPENDUID lists two UIDs: %r" % res)
    # MULTIAPPEND is all or nothing: the 2nd message goes over the quota
    d.cli("user", "quota", USER, str(40000))
    lines = c.cmd('STATUS "Sent" (MESSAGES SIZE)')
    before = lines[0]
    used = sum(int(x) for x in re.findall(rb"SIZE (\d+)", b"".join(
        c.cmd('STATUS "%s" (SIZE)' % b)[0] for b in ("INBOX", "Sent", "Drafts"))))
    d.cli("user", "quota", USER, str(used + len(MSG1) + 100))
    c.send(b'p2b APPEND "Sent" {%d+}\r\n' % len(MSG1) + MSG1 +
           b' {%d+}\r\n' % len(MSG2) + MSG2 + b"\r\n")
    res = c.until("p2b")[-1]
    lines = c.cmd('STATUS "Sent" (MESSAGES SIZE)')
    r.check(res.startswith(b"p2b NO [OVERQUOTA]") and lines[0] == before,
            "MULTIAPPEND over quota at its 2nd message appends nothing: %r %r / %r" %
            (res, lines[0], before))
    c.send(b'p2c APPEND "Sent" {%d+}\r\n' % len(MSG1) + MSG1 + b"\r\n")
    res = c.until("p2c")[-1]
    r.check(res.startswith(b"p2c OK"), "the 1st message alone fits: so it was appended "
            "and taken back: %r" % res)
    d.cli("user", "quota", USER, "0")
    # a synchronising literal over message_size_max: refused before "+"
    c.send(b'p3 APPEND "Sent" {4294967295}\r\n')
    res = c.raw_line()
    r.check(res.startswith(b"p3 NO [TOOBIG]"), "huge APPEND refused before '+': %r" % res)
    res = c.cmd("NOOP")[-1]
    r.check(b"OK" in res, "session goes on after the refused APPEND")
    # synchronising literal: "+" then data
    c.send(b'p4 APPEND "Sent" {%d}\r\n' % len(MSG1))
    plus = c.raw_line()
    c.send(MSG1 + b"\r\n")
    res = c.until("p4")[-1]
    r.check(plus.startswith(b"+ ") and b"OK" in res, "synchronising literal: '+' then OK: %r" % res)
    lines = c.cmd('STATUS "Sent" (MESSAGES)')
    r.check(b"MESSAGES 5" in lines[0], "Sent holds the 5 appended messages: %r" % lines[0])
    # the mailbox name itself as a literal
    c.send(b"p6 APPEND {6}\r\n")
    plus = c.raw_line()
    c.send(b"Drafts {%d}\r\n" % len(MSG1))
    plus2 = c.raw_line()
    c.send(MSG1 + b"\r\n")
    res = c.until("p6")[-1]
    r.check(plus.startswith(b"+") and plus2.startswith(b"+") and res.startswith(b"p6 OK [APPENDUID"),
            "APPEND with the mailbox name as a literal: %r" % res)
    res = c.cmd("APPEND Drafts {0}")[-1]
    r.check(b" NO [" in res or b" BAD" in res, "an empty message is refused: %r" % res)
    c.send(b"p7 APPEND Drafts (\\Bogus) {5}\r\n")
    res = c.raw_line()
    r.check(res.startswith(b"p7 BAD"), "a bad flag is BAD before the '+': %r" % res)
    c.send(b"p8 APPEND Drafts (\\Bogus) {5+}\r\nhello\r\np9 NOOP\r\n")
    res = c.until("p8")[-1]
    res9 = c.until("p9")[-1]
    r.check(res.startswith(b"p8 BAD") and res9.startswith(b"p9 OK"),
            "a bad flag with a non-synchronising literal: BAD after its octets, then on: %r %r" %
            (res, res9))
    c.send(b'p10 APPEND Drafts "32-Jan-2026 00:00:00 +0000" {5}\r\n')
    res = c.raw_line()
    r.check(res.startswith(b"p10 BAD"), "a bad date is BAD: %r" % res)
    c.send(b"p11 APPEND Drafts {5+}\r\nhello x\r\np12 NOOP\r\n")
    res = c.until("p11")[-1]
    res12 = c.until("p12")[-1]
    r.check(res.startswith(b"p11 BAD") and res12.startswith(b"p12 OK"),
            "junk after the message literal is BAD: %r" % res)
    # APPEND to the selected mailbox announces EXISTS
    c.cmd("SELECT Sent")
    c.send(b'p5 APPEND "Sent" {%d+}\r\n' % len(MSG1) + MSG1 + b"\r\n")
    lines = c.until("p5")
    r.check(b"* 6 EXISTS" in lines, "APPEND to the selected mailbox sends EXISTS: %r" % lines)
    c.close()


# ---- SELECT, FETCH ---------------------------------------------------------------

def test_fetch(d, r):
    deliver(d, MSG1)
    deliver(d, MSG2)
    m = imaps(d)
    typ, data = m.select("INBOX")
    r.check(typ == "OK" and data == [b"2"], "SELECT INBOX: 2 messages: %r" % data)
    r.check(m.untagged_responses.get("UIDVALIDITY") and m.untagged_responses.get("UIDNEXT"),
            "SELECT gives UIDVALIDITY and UIDNEXT")
    r.check(b"\\Seen" in m.untagged_responses["FLAGS"][0], "SELECT gives FLAGS")
    # delivery prepends Return-Path and Delivered-To: compare with what is stored
    full1 = m.fetch("1", "(BODY.PEEK[])")[1][0][1]
    full2 = m.fetch("2", "(BODY.PEEK[])")[1][0][1]
    r.check(full1.endswith(MSG1) and full2.endswith(MSG2), "delivered messages stored whole")
    typ, data = m.fetch("1", "(UID FLAGS RFC822.SIZE INTERNALDATE)")
    r.check(typ == "OK" and re.match(rb'1 \(UID 1 FLAGS \(\\Recent\) RFC822.SIZE %d INTERNALDATE "\d\d-\w{3}-\d{4} '
                                     rb'\d\d:\d\d:\d\d \+0000"\)' % len(full1), data[0]) is not None,
            "FETCH UID FLAGS RFC822.SIZE INTERNALDATE: %r" % data)
    typ, data = m.fetch("1", "(ENVELOPE)")
    r.check(b'"Quarterly report"' in data[0] and b'(("Bob Sender" NIL "bob" "example.test"))' in data[0],
            "ENVELOPE: %r" % data[0])
    typ, data = m.fetch("2", "(BODYSTRUCTURE)")
    r.check(b'"mixed"' in data[0] and b'("text" "plain"' in data[0] and b'"BB"' in data[0],
            "BODYSTRUCTURE of a multipart: %r" % data[0])
    typ, data = m.fetch("2", "BODY")
    r.check(b"BODY (" in data[0] and b"BODYSTRUCTURE" not in data[0], "BODY: %r" % data[0])
    hdr_end = full1.index(b"\r\n\r\n") + 4
    typ, data = m.fetch("1", "(BODY.PEEK[HEADER])")
    r.check(data[0][1] == full1[:hdr_end], "BODY.PEEK[HEADER] is the header with the blank line")
    typ, data = m.fetch("1", "(BODY.PEEK[TEXT])")
    r.check(data[0][1] == full1[hdr_end:], "BODY.PEEK[TEXT] is the body")
    typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (Subject X-Folded)])")
    r.check(data[0][1] == b"Subject: Quarterly report\r\nX-Folded: first\r\n second-part\r\n\r\n",
            "HEADER.FIELDS keeps the listed fields, folded lines too: %r" % data[0][1])
    r.check(b"BODY[HEADER.FIELDS (Subject X-Folded)]" in data[0][0],
            "HEADER.FIELDS echoes the field list: %r" % data[0][0])
    typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS.NOT (Return-Path Delivered-To From To Cc Date Message-ID X-Folded)])")
    r.check(data[0][1] == b"Subject: Quarterly report\r\n\r\n", "HEADER.FIELDS.NOT: %r" % data[0][1])
    typ, data = m.fetch("2", "(BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[3])")
    flat = b"".join(x if isinstance(x, bytes) else x[0] + b"|" + x[1] for x in data)
    r.check(b"part one text" in flat and b"Content-Type: text/html" in flat,
            "part sections and MIME header: %r" % flat)
    r.check(b'BODY[3] ""' in flat, "a part that does not exist is an empty string: %r" % flat)
    typ, data = m.fetch("1", "(BODY.PEEK[]<0.10>)")
    r.check(data[0][1] == full1[:10] and b"BODY[]<0>" in data[0][0], "partial <0.10>: %r" % (data[0],))
    typ, data = m.fetch("1", "(BODY.PEEK[TEXT]<6.5>)")
    r.check(data[0][1] == full1[hdr_end + 6:hdr_end + 11], "partial of TEXT <6.5>: %r" % (data[0],))
    typ, data = m.fetch("1", "(BODY.PEEK[]<100000.10>)")
    r.check(data[0][1] == b"", "partial past the end is empty: %r" % (data[0],))
    typ, data = m.fetch("1", "(RFC822.HEADER)")
    r.check(data[0][1] == full1[:hdr_end], "RFC822.HEADER")
    typ, data = m.fetch("1", "(FLAGS)")
    r.check(b"\\Seen" not in data[0], "PEEK and RFC822.HEADER do not set \\Seen: %r" % data)
    typ, data = m.fetch("1", "(RFC822.TEXT)")
    r.check(data[0][1] == full1[hdr_end:] and b"\\Seen" in b"".join(
        x if isinstance(x, bytes) else x[0] for x in data),
            "RFC822.TEXT sets \\Seen and reports FLAGS: %r" % data)
    typ, data = m.fetch("2", "(BODY[])")
    joined = b"".join(x if isinstance(x, bytes) else x[0] for x in data)
    r.check(data[0][1] == full2 and b"FLAGS (\\Recent \\Seen)" in b"".join(
        x if isinstance(x, bytes) else x[0] for x in data[1:] + [data[0]]),
            "BODY[] sets \\Seen: %r" % (data,))
    typ, data = m.fetch("1:2", "FAST")
    r.check(len(data) == 2 and all(b"RFC822.SIZE" in x and b"FLAGS" in x for x in data), "FAST macro")
    typ, data = m.fetch("1", "ALL")
    r.check(b"ENVELOPE" in data[0] and b"INTERNALDATE" in data[0], "ALL macro")
    typ, data = m.fetch("1", "FULL")
    r.check(b"BODY (" in data[0], "FULL macro")
    typ, data = m.fetch("1", "(RFC822)")
    r.check(data[0][1] == full1, "RFC822 is the whole message")
    typ, data = m.uid("FETCH", "1:*", "(FLAGS)")
    r.check(len(data) == 2 and b"UID 1" in data[0] and b"UID 2" in data[1], "UID FETCH 1:*: %r" % data)
    typ, data = m.uid("FETCH", "999:*", "(FLAGS)")
    r.check(typ == "OK" and len(data) == 1 and b"UID 2" in data[0],
            "UID FETCH n:* past the end answers for the highest UID: %r" % data)
    m.create("Empty")
    m.select("Empty")
    typ, data = m.fetch("1:*", "(FLAGS)")
    r.check(typ == "OK" and data == [None], "FETCH 1:* in an empty mailbox is OK, empty: %r" % data)
    typ, data = m.uid("FETCH", "1:*", "(FLAGS)")
    r.check(typ == "OK" and data == [None], "UID FETCH 1:* in an empty mailbox: %r" % data)
    m.select("INBOX")
    typ, data = m.uid("FETCH", "50", "(FLAGS)")
    r.check(typ == "OK" and data == [None], "UID FETCH of a missing UID: nothing: %r" % data)
    try:
        typ, data = m.fetch("3", "(FLAGS)")
    except imaplib.IMAP4.error as e:
        typ, data = "BAD", [str(e).encode()]
    r.check(typ == "BAD", "FETCH of a sequence number past the end is BAD")
    typ, data = m.fetch("1", "(BINARY.PEEK[1])")
    r.check(typ == "OK", "BINARY.PEEK[1] answers (imap_binary.py checks the bytes)")
    typ, data = m.select("INBOX", readonly=True)
    r.check(typ == "OK" and m.untagged_responses.get("READ-ONLY") is not None, "EXAMINE is READ-ONLY")
    typ, data = m.store("1", "+FLAGS", "(\\Flagged)")
    r.check(typ == "NO", "STORE in an EXAMINEd mailbox is NO")
    m.logout()

    # a large message streams in slices and arrives whole
    big = MSG1 + b"".join(b"line %07d of a long body that goes on and on\r\n" % i for i in range(60000))
    deliver(d, big)
    m = imaps(d)
    m.select("INBOX")
    typ, data = m.fetch("3", "(BODY.PEEK[])")
    r.check(typ == "OK" and data[0][1].endswith(big), "a %d-byte message arrives intact" % len(big))
    typ, data = m.fetch("1:*", "(UID BODY.PEEK[HEADER.FIELDS (Subject)])")
    r.check(typ == "OK" and len([x for x in data if isinstance(x, tuple)]) == 3,
            "header fetch of every message")
    m.logout()


def test_recent(d, r):
    user, pw = "rex@example.test", "rex-secret-6"
    d.add_user(user, pw)
    deliver(d, MSG1, user)
    deliver(d, MSG2, user)
    a = Raw(d.port("imaps"), tls=True)
    a.login(user, pw)
    lines = a.cmd("STATUS INBOX (RECENT MESSAGES)")
    r.check(b"RECENT 2" in lines[0], "STATUS RECENT counts messages nobody was told about: %r" % lines[0])
    e = Raw(d.port("imaps"), tls=True)
    e.login(user, pw)
    lines = e.cmd("EXAMINE INBOX")
    r.check(b"* 2 RECENT" in lines, "EXAMINE sees the recent messages: %r" % lines)
    lines = a.cmd("SELECT INBOX")
    r.check(b"* 2 RECENT" in lines, "EXAMINE did not take them: SELECT sees 2 RECENT: %r" % lines)
    lines = a.cmd("FETCH 1:* (FLAGS)")
    r.check(all(b"\\Recent" in l for l in lines[:-1]) and len(lines) == 3,
            "FETCH FLAGS shows \\Recent: %r" % lines)
    lines = a.cmd("SEARCH RECENT")
    r.check(lines[0] == b"* SEARCH 1 2", "SEARCH RECENT: %r" % lines[0])
    a.cmd("STORE 1 +FLAGS.SILENT (\\Seen)")
    lines = a.cmd("SEARCH NEW")
    r.check(lines[0] == b"* SEARCH 2", "SEARCH NEW is RECENT UNSEEN: %r" % lines[0])
    lines = a.cmd("SEARCH OLD")
    r.check(lines[0] == b"* SEARCH", "SEARCH OLD: nothing: %r" % lines[0])
    b = Raw(d.port("imaps"), tls=True)
    b.login(user, pw)
    lines = b.cmd("SELECT INBOX")
    r.check(b"* 0 RECENT" in lines, "a second session sees none recent: %r" % lines)
    lines = b.cmd("FETCH 2 (FLAGS)")
    r.check(b"\\Recent" not in lines[0], "nor the flag: %r" % lines[0])
    lines = a.cmd("STATUS INBOX (RECENT)")
    r.check(b"RECENT 2" in lines[0], "STATUS of the selected mailbox: this session's count: %r" % lines[0])
    # a new message goes to the first session told about it
    a.cmd("UNSELECT")
    deliver(d, MSG1, user)
    lines = b.cmd("NOOP")
    r.check(b"* 3 EXISTS" in lines and b"* 1 RECENT" in lines,
            "the session that learns of a new message gets it as recent: %r" % lines)
    lines = a.cmd("SELECT INBOX")
    r.check(b"* 0 RECENT" in lines, "and no other session: %r" % lines)
    lines = b.cmd("SEARCH RECENT")
    r.check(lines[0] == b"* SEARCH 3", "SEARCH RECENT in that session: %r" % lines[0])
    for c in (a, b, e):
        c.close()


# ---- STORE, COPY, MOVE, EXPUNGE -----------------------------------------------------

def test_store_copy(d, r):
    for _ in range(4):
        deliver(d, MSG1, USER2)
    m = imaps(d, USER2, PASSWORD2)
    m.create("Box")
    m.select("Box")
    for _ in range(4):
        m.append("Box", None, None, MSG1)
    m.select("Box")
    typ, data = m.store("1", "+FLAGS", "(\\Flagged \\Seen)")
    r.check(typ == "OK" and data == [b"1 (FLAGS (\\Flagged \\Seen))"], "+FLAGS: %r" % data)
    typ, data = m.store("1", "-FLAGS", "(\\Seen)")
    r.check(data == [b"1 (FLAGS (\\Flagged))"], "-FLAGS: %r" % data)
    typ, data = m.store("1", "FLAGS", "(\\Answered custom1)")
    r.check(data == [b"1 (FLAGS (\\Answered custom1))"], "FLAGS replaces, keyword kept: %r" % data)
    typ, data = m.store("2", "+FLAGS.SILENT", "(\\Deleted)")
    r.check(typ == "OK" and data == [None], ".SILENT sends no FETCH: %r" % data)
    m.store("1", "+FLAGS", "(brandnew)")
    flags = m.untagged_responses.pop("FLAGS", [b""])[-1]
    perm = [x for x in m.untagged_responses.pop("OK", []) if b"PERMANENTFLAGS" in x]
    r.check(b"brandnew" in flags and perm and b"brandnew" in perm[-1],
            "a new keyword is announced in FLAGS and PERMANENTFLAGS: %r %r" % (flags, perm))
    m.store("1", "-FLAGS", "(brandnew)")
    typ, data = m.uid("STORE", "3", "+FLAGS", "(\\Seen)")
    r.check(b"UID 3" in data[0], "UID STORE reports the UID: %r" % data)
    try:
        typ, data = m.store("1", "+FLAGS", "(\\Recent)")
    except imaplib.IMAP4.error:
        typ = "BAD"
    r.check(typ == "BAD", "\\Recent cannot be stored")
    typ, data = m.search(None, "KEYWORD", "custom1")
    r.check(data == [b"1"], "stored keyword is searchable: %r" % data)
    typ, data = m.copy("1:2", "Trash")
    r.check(typ == "OK" and re.search(rb"\[COPYUID \d+ 1:2 \d+,\d+\]", data[-1]) is not None,
            "COPY with COPYUID: %r" % data)
    typ, data = m.copy("1", "NoSuchBox")
    r.check(typ == "NO" and b"TRYCREATE" in data[0], "COPY to a missing mailbox: [TRYCREATE]: %r" % data)
    typ, data = m.uid("MOVE", "4", "Archive")
    r.check(typ == "OK", "UID MOVE")
    moved = m.untagged_responses.pop("EXPUNGE", None)
    r.check(moved == [b"4"], "MOVE expunges from the source: %r" % moved)
    typ, data = m.expunge()
    r.check(typ == "OK" and data == [b"2"], "EXPUNGE removes the \\Deleted message: %r" % data)
    typ, data = m.status("Archive", "(MESSAGES)")
    r.check(b"MESSAGES 1" in data[0], "moved message is in Archive: %r" % data)
    # UID EXPUNGE only expunges the named \Deleted messages
    m.store("1:2", "+FLAGS", "(\\Deleted)")
    typ, data = m.uid("FETCH", "1:*", "(UID)")
    uids = [int(re.search(rb"UID (\d+)", x).group(1)) for x in data]
    typ, data = m.uid("EXPUNGE", str(uids[1]))
    data = m.untagged_responses.pop("EXPUNGE", None)
    r.check(typ == "OK" and data == [b"2"], "UID EXPUNGE expunges only that UID: %r" % data)
    typ, data = m.search(None, "ALL")
    r.check(data == [b"1"], "one message left: %r" % data)
    # UNSELECT keeps \Deleted messages, CLOSE expunges them
    m.unselect()
    m.select("Box")
    typ, data = m.search(None, "DELETED")
    r.check(data == [b"1"], "UNSELECT did not expunge: %r" % data)
    m.close()
    typ, data = m.status("Box", "(MESSAGES)")
    r.check(b"MESSAGES 0" in data[0], "CLOSE expunged: %r" % data)
    m.logout()


# ---- SEARCH -------------------------------------------------------------------------

def test_search(d, r):
    user, pw = "sam@example.test", "sam-secret-3"
    d.add_user(user, pw)
    m = imaps(d, user, pw)
    m.create("S")
    m.append("S", "(\\Seen)", imaplib.Time2Internaldate(time.mktime((2026, 2, 2, 12, 0, 0, 0, 0, -1))), MSG1)
    m.append("S", "(\\Flagged kwA)", imaplib.Time2Internaldate(time.mktime((2026, 3, 10, 12, 0, 0, 0, 0, -1))), MSG2)
    m.append("S", "(\\Answered \\Deleted)", imaplib.Time2Internaldate(time.mktime((2026, 4, 1, 12, 0, 0, 0, 0, -1))),
             b"From: zed@example.test\r\nSubject: =?utf-8?q?encoded?=\r\n\r\nsmall\r\n")
    m.select("S")

    def s(*keys):
        typ, data = m.search(None, *keys)
        return data[0].decode() if typ == "OK" else typ

    cases = [
        (("ALL",), "1 2 3"), (("SEEN",), "1"), (("UNSEEN",), "2 3"), (("FLAGGED",), "2"),
        (("UNFLAGGED",), "1 3"), (("ANSWERED",), "3"), (("UNANSWERED",), "1 2"),
        (("DELETED",), "3"), (("UNDELETED",), "1 2"), (("DRAFT",), ""), (("UNDRAFT",), "1 2 3"),
        (("KEYWORD", "kwA"), "2"), (("UNKEYWORD", "kwA"), "1 3"), (("KEYWORD", "nope"), ""),
        (("NEW",), ""), (("OLD",), "1 2 3"), (("RECENT",), ""),
        (("LARGER", str(len(MSG1) - 1)), "1 2"), (("SMALLER", "100"), "3"),
        (("BEFORE", "10-Mar-2026"), "1"), (("ON", "10-Mar-2026"), "2"), (("SINCE", "10-Mar-2026"), "2 3"),
        (("SENTBEFORE", "3-Feb-2026"), "1 3"),  # 3 has no Date: (1970, as Dovecot) (("SENTON", "10-Mar-2026"), "2"),
        (("SENTSINCE", "1-Mar-2026"), "2"),
        (("FROM", '"BOB SENDER"'), "1"), (("TO", "alice"), "1 2"), (("CC", "carol"), "1"),
        (("BCC", "x"), ""), (("SUBJECT", "quarterly"), "1"), (("SUBJECT", "lunch"), "2"),
        (("HEADER", "X-Folded", "second-part"), "1"), (("HEADER", "Message-ID", '""'), "1"),
        (("BODY", "FORTY-TWO"), "1"), (("BODY", "Quarterly"), ""), (("TEXT", "quarterly"), "1"),
        (("TEXT", '"part two"'), "2"),
        (("2:3",), "2 3"), (("UID", "1,3"), "1 3"), (("*",), "3"),
        (("NOT", "SEEN"), "2 3"), (("OR", "SEEN", "FLAGGED"), "1 2"),
        (("(SEEN FLAGGED)",), ""), (("NOT", "(SEEN DELETED)"), "1 2 3"),
        (("OR", "(SEEN", "LARGER", "1)", "DELETED"), "1 3"),
        (("CHARSET", "UTF-8", "SUBJECT", "lunch"), "2"), (("CHARSET", "US-ASCII", "ALL"), "1 2 3"),
    ]
    for keys, want in cases:
        try:
            got = s(*keys)
        except imaplib.IMAP4.error as e:
            got = str(e)
        r.check(got == want, "SEARCH %s -> %r (got %r)" % (" ".join(keys), want, got))
    typ, data = m.search("ISO-8859-1", "ALL")
    r.check(typ == "NO" and b"BADCHARSET" in data[0], "unknown charset: NO [BADCHARSET]: %r" % data)
    typ, data = m.uid("SEARCH", "UNSEEN")
    r.check(data == [b"2 3"], "UID SEARCH answers UIDs: %r" % data)
    typ, data = m._simple_command("SEARCH", "RETURN", "(MIN", "MAX", "COUNT", "ALL)", "UNDELETED")
    es = m.untagged_responses.pop("ESEARCH", [b""])[0]
    r.check(typ == "OK" and re.search(rb'\(TAG "\w+"\) MIN 1 MAX 2 COUNT 2 ALL 1:2', es) is not None,
            "ESEARCH RETURN (MIN MAX COUNT ALL): %r" % es)
    typ, data = m._simple_command("UID", "SEARCH", "RETURN", "(COUNT)", "KEYWORD", "nope")
    es = m.untagged_responses.pop("ESEARCH", [b""])[0]
    r.check(re.search(rb"UID COUNT 0$", es) is not None, "ESEARCH with no match: %r" % es)
    typ, data = m._simple_command("SEARCH", "RETURN", "(SAVE)", "FLAGGED")
    typ, data = m.fetch("$", "(UID)")
    r.check(typ == "OK" and len(data) == 1 and data[0].startswith(b"2 "),
            "SEARCHRES: RETURN (SAVE) then FETCH $: %r" % data)
    for bad in (("BOGUSKEY",), ("LARGER", "x"), ("BEFORE", "32-Jan-2026"), ("(", "ALL"),
                ("OR", "ALL"), ("NOT",)):
        try:
            typ, _ = m.search(None, *bad)
        except imaplib.IMAP4.error:
            typ = "BAD"
        r.check(typ == "BAD", "SEARCH %s is BAD" % " ".join(bad))
    try:
        typ, data = m.search(None, " ".join(["1:*"] * 17))
    except imaplib.IMAP4.error as e:
        typ, data = "BAD", [str(e).encode()]
    r.check(typ == "BAD" and b"LIMIT" in data[0], "17 sequence sets in one SEARCH: BAD [LIMIT]: %r" % data)
    typ, data = m.search(None, " ".join(["1:*"] * 16))
    r.check(typ == "OK" and data == [b"1 2 3"], "16 are fine: %r" % data)
    deep = "NOT " * 40 + "ALL"
    try:
        typ, data = m.search(None, deep)
    except imaplib.IMAP4.error as e:
        typ, data = "BAD", [str(e).encode()]
    r.check(typ == "BAD" and b"LIMIT" in data[0], "nesting past the limit is BAD [LIMIT]: %r" % data)
    m.logout()


# ---- IDLE across sessions ------------------------------------------------------------

def wait_for(c, pred, timeout):
    """Lines the server sends within timeout until pred(line)."""
    end = time.time() + timeout
    got = []
    c.sock.settimeout(0.1)
    while time.time() < end:
        try:
            line = c.raw_line()
        except (socket.timeout, TimeoutError):
            continue
        got.append(line)
        if pred(line):
            c.sock.settimeout(20)
            return got, True
    c.sock.settimeout(20)
    return got, False


def test_idle(d, r):
    user, pw = "ida@example.test", "ida-secret-4"
    d.add_user(user, pw)
    a = Raw(d.port("imaps"), tls=True)
    a.login(user, pw)
    lines = a.cmd("SELECT INBOX")
    r.check(b"* 0 EXISTS" in lines, "A selects an empty INBOX")
    a.send(b"i1 IDLE\r\n")
    r.check(a.raw_line() == b"+ idling", "IDLE answers '+ idling'")
    b = imaps(d, user, pw)
    b.select("INBOX")
    t0 = time.time()
    b.append("INBOX", None, None, MSG1)
    got, seen = wait_for(a, lambda l: l == b"* 1 EXISTS", 1.0)
    r.check(seen, "A in IDLE sees B's APPEND within 1 s (%.2fs): %r" % (time.time() - t0, got))
    t0 = time.time()
    b.store("1", "+FLAGS", "(\\Flagged)")
    got, seen = wait_for(a, lambda l: l.startswith(b"* 1 FETCH") and b"\\Flagged" in l, 1.0)
    r.check(seen, "A in IDLE sees B's STORE within 1 s (%.2fs): %r" % (time.time() - t0, got))
    t0 = time.time()
    deliver(d, MSG2, user)  # another process
    got, seen = wait_for(a, lambda l: l == b"* 2 EXISTS", 1.0)
    r.check(seen, "A in IDLE sees a `postern deliver` from another process within 1 s of its "
            "end (%.2fs): %r" % (time.time() - t0, got))
    t0 = time.time()
    b.store("1", "+FLAGS", "(\\Deleted)")
    b.expunge()
    got, seen = wait_for(a, lambda l: l == b"* 1 EXPUNGE", 1.0)
    r.check(seen, "A in IDLE sees B's EXPUNGE within 1 s (%.2fs): %r" % (time.time() - t0, got))
    a.send(b"DONE\r\n")
    lines = a.until("i1")
    r.check(lines[-1] == b"i1 OK IDLE terminated", "DONE ends IDLE: %r" % lines)
    # no EXPUNGE during FETCH with sequence numbers; NOOP then reports it
    b.store("1", "+FLAGS", "(\\Deleted)")
    b.expunge()
    lines = a.cmd("FETCH 1 (FLAGS)")
    r.check(not any(b"EXPUNGE" in l for l in lines), "no EXPUNGE during FETCH: %r" % lines)
    lines = a.cmd("NOOP")
    r.check(b"* 1 EXPUNGE" in lines, "NOOP reports the expunge: %r" % lines)
    b.logout()
    a.close()


# ---- what Thunderbird and iOS Mail send (shared/clients/) --------------------------

TB_FIELDS = ("From To Cc Bcc Subject Date Message-ID Priority X-Priority References "
             "Newsgroups In-Reply-To Content-Type Reply-To Received")


def test_thunderbird(d, r):
    user, pw = "tb@example.test", "tb-secret-5"
    d.add_user(user, pw)
    for msg in (MSG1, MSG2):
        deliver(d, msg, user)
    c = Raw(d.port("imaps"), tls=True)
    caps = c.greeting
    c.send(b"70 authenticate PLAIN\r\n")
    plus = c.raw_line()
    c.send((b64(b"\0" + user.encode() + b"\0" + pw.encode()) + "\r\n").encode())
    res = c.until("70")[-1]
    r.check(plus == b"+ " and b"70 OK [CAPABILITY" in res and b"AUTH=PLAIN" in caps,
            "Thunderbird: authenticate PLAIN, waits for '+ ', trusts the tagged CAPABILITY")
    seq = [
        ("71 namespace", b"71 OK"),
        ('72 ID ("name" "Thunderbird" "version" "153.8.0")', b"72 OK"),
        ('73 list (subscribed) "" "*" return (special-use)', b"73 OK"),
        ('74 list "" "INBOX"', b"74 OK"),
        ('75 select "INBOX"', b"75 OK [READ-WRITE]"),
        ("76 UID fetch 1:* (FLAGS)", b"76 OK"),
        ("77 UID fetch 1:2 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (%s)])" % TB_FIELDS,
         b"77 OK"),
        ("78 UID fetch 1:2 (UID RFC822.SIZE BODY.PEEK[])", b"78 OK"),
        ("79 noop", b"79 OK"),
        ("80 UID fetch 3:* (FLAGS)", b"80 OK"),
        ("81 uid store 1 +Flags (\\Seen)", b"81 OK"),
        ("82 uid store 1 -Flags (\\Seen)", b"82 OK"),
        ('83 create "Projects"', b"83 OK"),
        ('84 subscribe "Projects"', b"84 OK"),
        ('85 list "" "Projects"', b"85 OK"),
        ('86 uid copy 1 "Projects"', b"86 OK [COPYUID"),
        ('87 uid move 2 "Projects"', b"87 OK"),
        ("88 check", b"88 OK"),
    ]
    out = {}
    for cmd, want in seq:
        tag = cmd.split()[0]
        lines = c.until(tag) if c.send(cmd.encode() + b"\r\n") is None else []
        out[tag] = lines
        r.check(lines[-1].startswith(want), "Thunderbird %s -> %r" % (cmd[:60], lines[-1][:80]))
    r.check(any(b"\\Trash" in l for l in out["73"]), "LIST (subscribed) shows \\Trash")
    r.check(len([l for l in out["76"] if l.startswith(b"* ")]) == 2, "UID fetch 1:* (FLAGS): both")
    r.check(any(b"BODY[HEADER.FIELDS (%s)]" % TB_FIELDS.encode() in l for l in out["77"]),
            "header fetch echoes Thunderbird's field list")
    r.check(any(l.startswith(b"* 2 FETCH (UID 2 FLAGS") for l in out["80"]),
            "UID fetch <uidnext>:* answers for the highest UID: %r" % out["80"])
    r.check(b"* 2 EXPUNGE" in out["87"] and any(b"[COPYUID" in l for l in out["87"]),
            "uid move: COPYUID then EXPUNGE: %r" % out["87"])
    # append with a non-synchronising literal, then IDLE / DONE
    body = b"From: Someone <someone@example.test>\r\nSubject: draft\r\n\r\nhi\r\n"
    c.send(b'89 append "Projects" (\\Seen) {%d+}\r\n' % len(body) + body + b"\r\n")
    res = c.until("89")[-1]
    r.check(res.startswith(b"89 OK [APPENDUID"), "append {n+}: %r" % res)
    c.send(b"90 IDLE\r\n")
    plus = c.raw_line()
    c.send(b"DONE\r\n")
    res = c.until("90")[-1]
    r.check(plus.startswith(b"+") and res == b"90 OK IDLE terminated", "IDLE / DONE")
    lines = c.cmd("STATUS Projects (MESSAGES)")
    r.check(b"MESSAGES 3" in lines[0], "Projects holds the copy, the moved and the appended: %r" % lines)
    c.close()


def test_ios_pipelined(d, r):
    # iOS Mail: ID, NAMESPACE and LIST pipelined in one packet after login
    c = Raw(d.port("imaps"), tls=True)
    c.login()
    c.send(b'i1 ID ("name" "iPhone Mail" "os" "iOS")\r\ni2 NAMESPACE\r\n'
           b'i3 LIST "" "*" RETURN (SPECIAL-USE)\r\n')
    l1 = c.until("i1")
    l2 = c.until("i2")
    l3 = c.until("i3")
    r.check(l1[-1].startswith(b"i1 OK") and l2[-1].startswith(b"i2 OK") and
            l3[-1].startswith(b"i3 OK") and any(b"\\Sent" in l for l in l3),
            "pipelined ID, NAMESPACE, LIST answered in order")
    # a many-kilobyte UID set
    c.cmd("SELECT INBOX")
    big = ",".join(str(i) for i in range(1, 3000, 2))
    lines = c.cmd("UID FETCH %s (FLAGS)" % big)
    r.check(len(big) > 4000 and lines[-1].split()[1] == b"OK", "UID FETCH with a %d-byte UID set" % len(big))
    lines = c.cmd("UID SEARCH UID %s" % big)
    r.check(lines[-1].split()[1] == b"OK" and lines[0].startswith(b"* SEARCH"),
            "UID SEARCH UID with a long set")
    c.close()


# ---- bad input --------------------------------------------------------------------

def test_bad_input(d, r):
    c = Raw(d.port("imaps"), tls=True)
    res = c.cmd("FROB")[-1]
    r.check(res.startswith(b"r1 BAD"), "unknown command is tagged BAD: %r" % res)
    c.send(b"\r\n")
    res = c.raw_line()
    r.check(res.startswith(b"* BAD") or b"BAD" in res, "empty line is BAD: %r" % res)
    # a literal announcement too large: refused before any "+"
    c.send(b"h1 LOGIN {4294967295}\r\n")
    res = c.raw_line()
    r.check(res.startswith(b"h1 BAD [TOOBIG]"), "{4294967295} refused with TOOBIG before '+': %r" % res)
    # non-synchronising literal over 4096 outside APPEND: refused, skipped
    c.send(b"h2 LOGIN {5000+}\r\n" + b"x" * 5000 + b" pw\r\nh3 NOOP\r\n")
    res = c.raw_line()
    r.check(res.startswith(b"h2 BAD [TOOBIG]"), "non-sync literal over 4096 refused: %r" % res)
    res = c.raw_line()
    r.check(res.startswith(b"h3 OK"), "its octets were skipped, the next command runs: %r" % res)
    # a command line over line_length_max
    c.send(b"h4 NOOP " + b"a" * 9000 + b"\r\n")
    res = c.raw_line()
    r.check(b"BAD" in res and b"TOOBIG" in res, "over-long line is BAD [TOOBIG]: %r" % res[:80])
    res = c.cmd("NOOP")[-1]
    r.check(b"OK" in res, "session goes on after the long line")
    # a literal in a LOGIN (synchronising)
    c.send(b"h5 LOGIN {%d}\r\n" % len(USER))
    plus = c.raw_line()
    c.send(USER.encode() + b" {%d}\r\n" % len(PASSWORD))
    plus2 = c.raw_line()
    c.send(PASSWORD.encode() + b"\r\n")
    res = c.until("h5")[-1]
    r.check(plus.startswith(b"+") and plus2.startswith(b"+") and b"OK" in res,
            "LOGIN with two synchronising literals: %r" % res)
    c.cmd("SELECT INBOX")
    for bad in ("FETCH", "FETCH 1", "FETCH x (FLAGS)", "FETCH 1 (NOSUCH)", "STORE 1 +FLAGS",
                "UID FROB 1", "SELECT", "LIST \"\"", 'STATUS INBOX ()'):
        res = c.cmd(bad)[-1]
        r.check(b" BAD" in res, "%r is BAD: %r" % (bad, res))
    # 10 bad commands in a row: BYE
    c2 = Raw(d.port("imaps"), tls=True)
    lines = []
    for i in range(10):
        lines += c2.cmd("BOGUS%d" % i)
    lines.append(c2.raw_line())
    r.check(any(l.startswith(b"* BYE") for l in lines), "10 BADs in a row: BYE")
    r.check(c2.closed(), "and the connection is closed")
    c2.close()
    # commands before login are limited (even valid ones)
    c3 = Raw(d.port("imaps"), tls=True)
    lines = []
    for i in range(50):
        lines += c3.cmd("NOOP")
    r.check(all(l.endswith(b"OK NOOP completed") for l in lines), "50 NOOPs before login are fine")
    c3.send(b"x NOOP\r\n")
    res = c3.raw_line()
    r.check(res.startswith(b"* BYE"), "the 51st command before login gets BYE: %r" % res)
    r.check(c3.closed(), "and the connection is closed")
    c3.close()
    c.close()


def main():
    postern = sys.argv[1]
    res = Results()
    with Daemon(postern, roles=("smtp", "imap", "imaps")) as d:
        d.add_user(USER, PASSWORD)
        d.add_user(USER2, PASSWORD2)
        for name, fn in (("policy", test_policy), ("sasl", test_sasl), ("misc", test_misc),
                         ("mailboxes", test_mailboxes), ("rename_inbox", test_rename_inbox),
                         ("append", test_append), ("fetch", test_fetch), ("recent", test_recent),
                         ("store_copy", test_store_copy), ("search", test_search),
                         ("idle", test_idle), ("thunderbird", test_thunderbird),
                         ("ios_pipelined", test_ios_pipelined), ("bad_input", test_bad_input)):
            res.run(name, lambda fn=fn: fn(d, res))
        # graceful stop: an idle session is told
        c = Raw(d.port("imaps"), tls=True)
        c.login()
        rc = d.stop()
        try:
            last = c.raw_line()
        except (EOFError, OSError):
            last = b""
        res.check(last.startswith(b"* BYE"), "graceful stop says BYE: %r" % last)
        res.check(rc == 0, "daemon exits 0 on SIGTERM (%s)" % rc)
        c.close()
        log = d.log()
        res.check("imap login user=alice@example.test" in log, "logins are logged")
        res.check("imap bug:" not in log, "every command ended with its own tagged reply")
        res.check("auth failed: proto=imap rip=127.0.0.1" in log,
                  "failed logins are logged for fail2ban")
    # login throttling, in a daemon of its own (its counts are per address)
    with Daemon(postern, roles=("imaps",)) as d:
        d.add_user(USER, PASSWORD)
        res.run("throttle", lambda: test_throttle(d, res))
    res.finish()


def test_throttle(d, r):
    c = Raw(d.port("imaps"), tls=True)
    for i in range(5):
        c.login(USER, "wrong%d" % i)
    t0 = time.time()
    c.send(b"t6 LOGIN alice@example.test wrong6\r\n")
    # while that attempt waits out its delay, other clients are served
    other = Raw(d.port("imaps"), tls=True)
    t1 = time.time()
    res = other.cmd("CAPABILITY")[-1]
    fast = time.time() - t1
    res6 = c.until("t6")[-1]
    slow = time.time() - t0
    r.check(b"NO [AUTHENTICATIONFAILED]" in res6 and slow >= 0.9,
            "the 6th failure in a row is delayed (%.2fs): %r" % (slow, res6))
    r.check(b"OK" in res and fast < 0.5, "another client is served meanwhile (%.2fs)" % fast)
    t0 = time.time()
    res = c.login()
    r.check(b"OK [CAPABILITY" in res and time.time() - t0 >= 0.9,
            "the right password still logs in, after the delay (%.2fs)" % (time.time() - t0))
    c.close()
    other.close()
    r.check(d.log().count("auth failed: proto=imap rip=127.0.0.1 user=alice@example.test") == 6,
            "each failure is logged once for fail2ban")


if __name__ == "__main__":
    main()
