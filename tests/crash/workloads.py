"""Workloads of the power-cut test and what each acknowledgement promises.

Each workload talks to the recorded daemon with raw clients that count the
bytes they have read, so an acknowledgement is known as (client port, bytes
of the server's stream up to the end of the acknowledging line); the
checker finds the recorded send that carried that byte.

Every message carries a unique token (CRASHTOK-...) in its Subject and
body.  For each (user, token) the workload lists the states acknowledged
one after the other: a state is a tuple of (folder, flags, uid or None)
occurrences, () when the message is gone.
"""
import itertools
import re
import socket

USERS = {"alice@example.test": "alice-crash-secret", "bob@example.test": "bob-crash-secret"}
ALICE, BOB = sorted(USERS)
OUTSIDE = "sender@outside.test"
TOKEN_RE = re.compile(rb"CRASHTOK-[0-9a-z]+")
_serial = itertools.count(1)


def new_token(label):
    return "CRASHTOK-%s%d" % (label.lower(), next(_serial))


def message(token, size_lines=40):
    """A message whose body names its token on every line, so a torn or
    truncated file shows."""
    head = "From: <%s>\r\nTo: <x@example.test>\r\nSubject: crash test %s\r\n" \
           "Message-ID: <%s@crash.test>\r\n\r\n" % (OUTSIDE, token, token)
    body = "".join("line %02d of %s\r\n" % (i, token) for i in range(size_lines))
    return (head + body + "END %s\r\n" % token).encode()


def body_of(msg):
    return msg[msg.index(b"\r\n\r\n"):]


class Wire:
    """A line client over a plain socket that counts what it consumed."""

    def __init__(self, port, timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.local_port = self.sock.getsockname()[1]
        self.buf = b""
        self.received = 0

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("server closed the connection")
            self.received += len(data)
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def ack(self):
        """Where the server's stream stands: the last line read ended at
        this many bytes."""
        return (self.local_port, self.received - len(self.buf))

    def close(self):
        self.sock.close()


class Imap(Wire):
    def __init__(self, port, user):
        super().__init__(port)
        self.n = 0
        self.line()
        self.ok("LOGIN %s %s" % (user, USERS[user]))

    def cmd(self, text, literal=None):
        """Send a command (with a LITERAL+ literal); returns (lines, tagged)."""
        self.n += 1
        tag = "w%d" % self.n
        if literal is None:
            self.send("%s %s\r\n" % (tag, text))
        else:
            self.send(b"%s %s {%d+}\r\n%s\r\n" % (tag.encode(), text.encode(),
                                                 len(literal), literal))
        lines = []
        while True:
            line = self.line()
            if line.startswith(tag + " "):
                return lines, line[len(tag) + 1:]
            lines.append(line)

    def ok(self, text, literal=None):
        lines, tagged = self.cmd(text, literal)
        if not tagged.startswith("OK"):
            raise AssertionError("%s -> %s" % (text, tagged))
        return lines, tagged


def code_field(tagged, name):
    """The numbers of a response code: [APPENDUID v u] -> ['v', 'u']."""
    m = re.search(r"\[%s ([^\]]*)\]" % name, tagged)
    if m is None:
        raise AssertionError("no %s in %r" % (name, tagged))
    return m.group(1).split()


class Smtp(Wire):
    def reply(self):
        while True:
            line = self.line()
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), line

    def cmd(self, text, want):
        self.send(text + "\r\n")
        code, line = self.reply()
        if code != want:
            raise AssertionError("%s -> %s" % (text, line))
        return line


class Pop3(Wire):
    def cmd(self, text, multi=False):
        self.send(text + "\r\n")
        first = self.line()
        if not first.startswith("+OK"):
            raise AssertionError("%s -> %s" % (text, first))
        lines = []
        while multi:
            line = self.line()
            if line == ".":
                break
            lines.append(line[1:] if line.startswith("..") else line)
        return first, lines


class Workload:
    """The acknowledged history of every message."""

    def __init__(self):
        self.items = {}        # (user, token) -> Item
        self.uidvalidity = {}  # (user, folder) -> value before the run
        self.uidls = {}        # (user, token) -> POP3 UIDL seen in the run
        self.ports = []

    def item(self, user, token, body, state=()):
        self.items[(user, token)] = Item(body, state)

    def step(self, user, token, ack, state, inflight=()):
        self.items[(user, token)].steps.append([ack, tuple(state), list(inflight)])

    def conn(self, wire):
        if wire.local_port in self.ports:
            raise AssertionError("client port %d used twice" % wire.local_port)
        self.ports.append(wire.local_port)
        return wire


class Item:
    def __init__(self, body, state):
        self.body = body
        self.initial = tuple(state)
        self.steps = []        # [ack, state, extra in-flight states]


def occ(folder, flags=(), uid=None):
    return (folder, frozenset(flags), uid)


# ---- preparation (not recorded) ----

def prepare(wl, ports, phase):
    """Mailboxes and seed messages the phase works on; their UIDs and the
    UIDVALIDITYs are noted in wl."""
    seeds = {"imap": (ALICE, 4), "pop3": (BOB, 4), "smtp": (ALICE, 1)}[phase]
    user, count = seeds
    c = Imap(ports["imap"], user)
    _, tagged = c.cmd("CREATE Archive")
    if not tagged.startswith("OK") and "ALREADYEXISTS" not in tagged:
        raise AssertionError("CREATE Archive -> " + tagged)
    out = []
    for _ in range(count):
        tok = new_token("seed")
        msg = message(tok)
        _, tagged = c.ok("APPEND INBOX", msg)
        uid = int(code_field(tagged, "APPENDUID")[1])
        wl.item(user, tok, msg, [occ("INBOX", (), uid)])
        out.append((tok, uid))
    for who in USERS:
        cc = c if who == user else Imap(ports["imap"], who)
        for folder in ("INBOX", "Archive"):
            if who != user and folder == "Archive":
                continue
            lines, _ = cc.ok("EXAMINE " + folder)
            v = [code_field(x, "UIDVALIDITY")[0] for x in lines if "UIDVALIDITY" in x]
            wl.uidvalidity[(who, folder)] = int(v[0])
        cc.ok("LOGOUT")
        cc.close()
    return out


# ---- the recorded workloads ----

def smtp_delivery(wl, ports, _seeds):
    """One message per connection, one to two recipients, then two
    transactions on one connection."""
    plans = [[[ALICE]], [[ALICE, BOB]], [[BOB], [ALICE]]]
    for plan in plans:
        c = wl.conn(Smtp(ports["smtp"]))
        c.reply()
        c.cmd("EHLO crash.test", 250)
        for rcpts in plan:
            tok = new_token("smtp")
            msg = message(tok)
            c.cmd("MAIL FROM:<%s>" % OUTSIDE, 250)
            for r in rcpts:
                c.cmd("RCPT TO:<%s>" % r, 250)
                wl.item(r, tok, body_of(msg))
            c.cmd("DATA", 354)
            c.send(msg + b".\r\n")
            code, line = c.reply()
            if code != 250:
                raise AssertionError("DATA end -> " + line)
            for r in rcpts:
                wl.step(r, tok, c.ack(), [occ("INBOX")])
        c.cmd("QUIT", 221)
        c.close()


def imap_changes(wl, ports, seeds):
    """APPEND (with and without flags), STORE, EXPUNGE and MOVE."""
    # the fourth seed is left alone: the checker sees that it stays
    (a1, u1), (a2, u2), (a3, u3), _untouched = seeds
    c = wl.conn(Imap(ports["imap"], ALICE))
    appended = []
    for flags in (["\\Flagged"], []):
        tok = new_token("append")
        msg = message(tok)
        wl.item(ALICE, tok, msg)
        _, tagged = c.ok("APPEND INBOX (%s)" % " ".join(flags), msg)
        uid = int(code_field(tagged, "APPENDUID")[1])
        wl.step(ALICE, tok, c.ack(), [occ("INBOX", flags, uid)])
        appended.append((tok, uid, flags))
    c.ok("SELECT INBOX")
    c.ok("UID STORE %d +FLAGS (\\Seen)" % u1)
    wl.step(ALICE, a1, c.ack(), [occ("INBOX", ["\\Seen"], u1)])
    c.ok("UID STORE %d +FLAGS.SILENT (\\Deleted)" % u2)
    wl.step(ALICE, a2, c.ack(), [occ("INBOX", ["\\Deleted"], u2)])
    c.ok("EXPUNGE")
    wl.step(ALICE, a2, c.ack(), [])
    lines, tagged = c.ok("UID MOVE %d Archive" % u3)
    # RFC 6851 §4.3: COPYUID comes in an untagged OK before the expunges
    copyuid = [x for x in lines + [tagged] if "[COPYUID " in x]
    new_uid = int(code_field(copyuid[0] if copyuid else tagged, "COPYUID")[2])
    # While the MOVE runs the message may be in both folders for a moment
    # (RFC 6851 §3.3 allows a MOVE made of COPY then EXPUNGE); once
    # acknowledged, only in Archive.
    wl.step(ALICE, a3, c.ack(), [occ("Archive", (), new_uid)],
            inflight=[[occ("INBOX", (), u3), occ("Archive", (), new_uid)]])
    tok, uid, _ = appended[1]
    c.ok("UID STORE %d +FLAGS (\\Answered \\Seen)" % uid)
    wl.step(ALICE, tok, c.ack(), [occ("INBOX", ["\\Answered", "\\Seen"], uid)])
    c.ok("LOGOUT")
    c.close()


def pop3_dele(wl, ports, _seeds):
    """DELE then QUIT, twice; UIDLs of the rest must not change."""
    for session in ([1, 3], [1]):
        c = wl.conn(Pop3(ports["pop3"]))
        c.line()
        c.cmd("USER " + BOB)
        c.cmd("PASS " + USERS[BOB])
        _, uidl = c.cmd("UIDL", multi=True)
        numbered = {}
        for entry in uidl:
            n, u = entry.split()
            _, top = c.cmd("TOP %s 0" % n, multi=True)
            tok = TOKEN_RE.search("\n".join(top).encode()).group().decode()
            numbered[int(n)] = tok
            wl.uidls[(BOB, tok)] = u
        for n in session:
            c.cmd("DELE %d" % n)
        c.cmd("QUIT")
        for n in session:
            tok = numbered[n]
            wl.step(BOB, tok, c.ack(), [])
        c.close()


PHASES = {"smtp": smtp_delivery, "imap": imap_changes, "pop3": pop3_dele}
