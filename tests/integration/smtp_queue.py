"""The outbound queue, end to end on loopback.

dnsmasq (from Debian, on a free high port) serves MX and A records for test
domains whose mail servers are loopback addresses 127.0.0.2-6, all on one
port (outbound_port); the receivers are Postfix's smtp-sink and a small
scripted SMTP server written here (it can refuse chosen recipients, defer
the first attempt, or stall before its final reply).  A submitting client
(python3 smtplib, STARTTLS + AUTH) sends as alice@example.test.

Cases: MX preference order with fallback when the first MX is down; null
MX (RFC 7505) bounces; 4xx then success after a shortened retry; 5xx gives
a DSN in the local sender's INBOX that Python's email package parses as a
multipart/report naming the failed recipient; partial recipient rejection
(one delivered, one bounced); several recipients of one domain in one
transaction; a broken STARTTLS followed by a plaintext retry; a far side that drops the
connection or answers garbage (deferred, then delivered); at most
outbound_destination_concurrency sessions at once to one destination;
connection reuse (20 messages over fewer connections; far sides that close
or answer 421 after each message still get every message once); 8-bit text
converted to quoted-printable for a server without 8BITMIME; kill -9 while the far side holds the final reply, then
delivery after restart (at most once more); `postern queue list|delete`;
an alias forwarding to
another domain; a local user deleted between RCPT and DATA (DSN after 250); dns_resolver on ::1 (skipped when ::1 is missing); a delay notice for NOTIFY=DELAY, queue_lifetime ending (DSN with 4.4.7); an unreadable envelope moved to
queue/corrupt/; smarthost over STARTTLS with AUTH PLAIN (a second Postern
as the relay).

Usage: smtp_queue.py /path/to/postern
"""
import email
import email.policy
import os
import shutil
import signal
import smtplib
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postern_test import Daemon, Results, free_port, skip, tls_context  # noqa: E402
from smtp_util import USER, PASSWORD, PASSWORD2, USER2, maildir_messages, wait_count  # noqa: E402
from dns_server import start_dnsmasq  # noqa: E402

PREF_DOWN = "127.0.0.2"   # mx1.pref.test: nothing listens
PREF_UP = "127.0.0.3"     # mx2.pref.test: smtp-sink
SCRIPTED = "127.0.0.4"    # mx.scripted.test: the scripted server
BADTLS = "127.0.0.5"      # mx.badtls.test: offers STARTTLS, then breaks it
DOWN = "127.0.0.6"        # mx.down.test: nothing listens
SEVEN = "127.0.0.7"       # mx.seven.test: no 8BITMIME, no PIPELINING
REUSE = "127.0.0.8"       # mx.reuse.test: scripted, counts connections
CLOSING = "127.0.0.9"     # mx.closing.test: closes after each message
TIRED = "127.0.0.10"      # mx.tired.test: 421 to the second MAIL
DEST_LIMIT = 3            # outbound_destination_concurrency in the tests


class Scripted:
    """A small SMTP server: PIPELINING, 8BITMIME, SIZE, DSN.

    rcpt_replies: address -> reply line for RCPT (default 250)
    defer_first:  addresses that get 451 on their first RCPT only
    stall:        addresses whose message waits `stall_s` before the final
                  reply (the message is recorded as received first)
    """

    def __init__(self, addr, port, bad_tls=False, eight_bit=True, pipelining=True,
                 after_message=None, dsn=True):
        self.bad_tls = bad_tls
        self.dsn = dsn
        # None; "close": the connection is closed right after the 250 for
        # a message; "421": the next MAIL on it gets 421 and a close
        self.after_message = after_message
        self.eight_bit = eight_bit
        self.pipelining = pipelining
        self.starttls_seen = 0
        self.messages = []      # (mail_from, [rcpts], data bytes)
        self.rcpt_replies = {}
        self.defer_first = set()
        self.deferred = set()
        self.drop_first = set()     # RCPT: the connection is closed, once
        self.garbage_first = set()  # RCPT: a reply without a code, once
        self.misbehaved = set()
        self.stall = set()
        self.stall_s = 0
        self.sessions = 0
        self.current = 0
        self.max_current = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                with outer.lock:
                    outer.current += 1
                    outer.max_current = max(outer.max_current, outer.current)
                try:
                    outer.session(self.rfile, self.wfile)
                finally:
                    with outer.lock:
                        outer.current -= 1

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server((addr, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def session(self, rf, wf):
        def send(line):
            wf.write(line.encode() + b"\r\n")
            wf.flush()

        with self.lock:
            self.sessions += 1
        send("220 scripted.test ESMTP")
        mail_from, rcpts = None, []
        tired = False
        while True:
            line = rf.readline()
            if not line:
                return
            cmd = line.decode(errors="replace").rstrip("\r\n")
            verb = cmd[:4].upper()
            if verb == "EHLO":
                send("250-scripted.test")
                if self.pipelining:
                    send("250-PIPELINING")
                if self.eight_bit:
                    send("250-8BITMIME")
                if self.dsn:
                    send("250-DSN")
                if self.bad_tls:
                    send("250-STARTTLS")
                send("250 SIZE 10000000")
            elif verb == "STAR" and self.bad_tls:
                with self.lock:
                    self.starttls_seen += 1
                send("220 2.0.0 Ready")
                wf.write(b"this is not a TLS server hello\r\n")
                wf.flush()
                return
            elif verb == "MAIL":
                if tired:
                    send("421 4.3.2 scripted.test closing: one message per connection")
                    return
                mail_from, rcpts = cmd.split(":", 1)[1].split(">")[0].lstrip(" <"), []
                send("250 2.1.0 Ok")
            elif verb == "RCPT":
                addr = cmd.split(":", 1)[1].split(">")[0].lstrip(" <")
                with self.lock:
                    odd = None
                    if addr not in self.misbehaved:
                        if addr in self.drop_first:
                            odd = "drop"
                        elif addr in self.garbage_first:
                            odd = "garbage"
                    if odd:
                        self.misbehaved.add(addr)
                if odd == "drop":
                    return
                if odd == "garbage":
                    send("hello, this is not an SMTP reply")
                    continue
                with self.lock:
                    if addr in self.defer_first and addr not in self.deferred:
                        self.deferred.add(addr)
                        send("451 4.2.0 <%s>: try again later" % addr)
                        continue
                    reply = self.rcpt_replies.get(addr)
                if reply:
                    send(reply)
                else:
                    rcpts.append(addr)
                    send("250 2.1.5 Ok")
            elif verb == "DATA":
                if not rcpts:
                    send("554 5.5.1 No valid recipients")
                    continue
                send("354 End data with <CR><LF>.<CR><LF>")
                data = b""
                while True:
                    dl = rf.readline()
                    if not dl or dl == b".\r\n":
                        break
                    data += dl[1:] if dl.startswith(b"..") else dl
                with self.lock:
                    self.messages.append((mail_from, list(rcpts), data))
                if any(r in self.stall for r in rcpts):
                    time.sleep(self.stall_s)
                send("250 2.0.0 Ok: queued")
                if self.after_message == "close":
                    return
                tired = self.after_message == "421"
            elif verb == "RSET":
                mail_from, rcpts = None, []
                send("250 2.0.0 Ok")
            elif verb == "QUIT":
                send("221 2.0.0 Bye")
                return
            else:
                send("502 5.5.2 Error: command not recognized")

    def received(self, rcpt):
        with self.lock:
            return [m for m in self.messages if rcpt in m[1]]


def wait_for(fn, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    return fn()


def submit(d, rcpts, subject, body="Hello.\r\n", rcpt_options=(), headers="", mail_options=()):
    """Send as alice through submission; returns smtplib's refused dict."""
    msg = ("From: Alice <%s>\r\nTo: %s\r\nSubject: %s\r\n%s\r\n%s"
           % (USER, ", ".join(rcpts), subject, headers, body))
    with smtplib.SMTP("127.0.0.1", d.port("submission"), timeout=30) as s:
        s.starttls(context=tls_context())
        s.login(USER, PASSWORD)
        return s.sendmail(USER, rcpts, msg.encode(), mail_options=list(mail_options),
                          rcpt_options=list(rcpt_options))


def dsn_for(d, subject_needle, timeout=20.0, action=b"Action: failed"):
    """The first DSN in alice's INBOX whose copied headers hold the needle."""
    def find():
        for raw in maildir_messages(d, USER):
            if b"multipart/report" in raw and subject_needle.encode() in raw and action in raw:
                return raw
        return None
    return wait_for(find, timeout)


def parse_dsn(raw):
    """(msg, [Final-Recipient values], [Status values], text)"""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    finals, statuses = [], []
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            for block in part.get_payload():
                if block.get("Final-Recipient"):
                    finals.append(block.get("Final-Recipient").split(";", 1)[1].strip())
                    statuses.append(block.get("Status"))
    return msg, finals, statuses


def start_dns(tmp, port, listen="127.0.0.1"):
    """The MX and A records of the test domains (tests/helpers/dns_server.py)."""
    return start_dnsmasq(tmp, port, [
        "--mx-host=pref.test,mx1.pref.test,10", "--mx-host=pref.test,mx2.pref.test,20",
        "--host-record=mx1.pref.test,%s" % PREF_DOWN,
        "--host-record=mx2.pref.test,%s" % PREF_UP,
        "--mx-host=scripted.test,mx.scripted.test,10",
        "--host-record=mx.scripted.test,%s" % SCRIPTED,
        "--mx-host=down.test,mx.down.test,10",
        "--mx-host=badtls.test,mx.badtls.test,10",
        "--mx-host=seven.test,mx.seven.test,10",
        "--host-record=mx.seven.test,%s" % SEVEN,
        "--host-record=mx.badtls.test,%s" % BADTLS,
        "--host-record=mx.down.test,%s" % DOWN,
        "--mx-host=reuse.test,mx.reuse.test,10",
        "--host-record=mx.reuse.test,%s" % REUSE,
        "--mx-host=closing.test,mx.closing.test,10",
        "--host-record=mx.closing.test,%s" % CLOSING,
        "--mx-host=tired.test,mx.tired.test,10",
        "--host-record=mx.tired.test,%s" % TIRED,
        "--mx-host=null.test,.,0",
        "--txt-record=scripted.test,v=spf1 -all"], listen=listen)


def start_sink(tmp, port):
    exe = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not os.path.exists(exe):
        skip("smtp-sink is not installed (apt-get install postfix)")
    dump = os.path.join(tmp, "sink")
    os.makedirs(dump, exist_ok=True)
    os.chmod(tmp, 0o755)  # smtp-sink writes as nobody
    os.chmod(dump, 0o777)
    args = [exe, "-u", "nobody", "-d", os.path.join(dump, "%M."), "-c",
            "%s:%d" % (PREF_UP, port), "64"]
    if os.geteuid() != 0:
        args = args[:1] + args[3:]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with socket.create_connection((PREF_UP, port), timeout=1):
                break
        except OSError:
            time.sleep(0.05)
    return proc, dump


def sink_messages(dump):
    out = []
    for name in sorted(os.listdir(dump)):
        with open(os.path.join(dump, name), "rb") as f:
            out.append(f.read())
    return out


def queue_ids(d):
    res = d.cli("queue", "list")
    return [line.split()[0] for line in res.stdout.decode().splitlines()
            if line and not line.startswith(" ") and not line.startswith("queue is empty")]


def tests_main(d, res, sc, bt, s7, dump, tmp):
    # 1. MX preference order: mx1 (10) refuses connections, mx2 (20) takes it
    refused = submit(d, ["bob@pref.test"], "to pref")
    res.check(refused == {}, "submission answers 250 for a remote recipient")
    got = wait_for(lambda: [m for m in sink_messages(dump) if b"Subject: to pref" in m])
    res.check(bool(got), "MX fallback: delivered to the second MX when the first is down")
    if got:
        res.check(b"Received: from " in got[0] and b"Return-Path:" not in got[0],
                  "relayed message carries our Received: and no Return-Path")
    # the sink has the message once it answered 250 to DATA; the daemon
    # logs status=sent only after reading that reply: wait for the line
    log = wait_for(lambda: "status=sent" in d.log() and d.log()) or d.log()
    res.check("127.0.0.2" in log and log.find("127.0.0.2") < log.find("status=sent"),
              "MX order: the preference-10 host was tried first")

    # 2. several recipients of one domain: one transaction
    before = sc.sessions
    submit(d, ["one@scripted.test", "two@scripted.test"], "two at once")
    got = wait_for(lambda: sc.received("one@scripted.test"))
    res.check(bool(got) and sorted(got[0][1]) == ["one@scripted.test", "two@scripted.test"],
              "two recipients of one domain delivered in one transaction")
    res.check(sc.sessions == before + 1, "one connection for both recipients")

    # 3. 4xx then success after the (shortened) retry
    sc.defer_first.add("later@scripted.test")
    submit(d, ["later@scripted.test"], "deferred once")
    got = wait_for(lambda: sc.received("later@scripted.test"), timeout=30)
    res.check(bool(got) and "later@scripted.test" in sc.deferred,
              "451 first, then delivered on the retry")
    res.check(wait_for(lambda: "status=deferred" in d.log()), "the deferral is logged")

    # 4. 5xx: a DSN in the sender's INBOX
    sc.rcpt_replies["nobody@scripted.test"] = "550 5.1.1 <nobody@scripted.test>: no such user"
    submit(d, ["nobody@scripted.test"], "will bounce")
    raw = dsn_for(d, "will bounce")
    res.check(raw is not None, "5xx: a bounce arrives in the local sender's INBOX")
    if raw is not None:
        msg, finals, statuses = parse_dsn(raw)
        res.check(msg.get_content_type() == "multipart/report" and
                  msg.get_param("report-type") == "delivery-status",
                  "the bounce is a multipart/report; report-type=delivery-status")
        res.check(finals == ["nobody@scripted.test"] and statuses == ["5.1.1"],
                  "delivery-status names the failed recipient with Status 5.1.1 (%s %s)"
                  % (finals, statuses))
        res.check(b"Reporting-MTA: dns; mail.example.test" in raw and
                  b"Diagnostic-Code: smtp; 550 5.1.1" in raw and b"Action: failed" in raw,
                  "Reporting-MTA, Action and Diagnostic-Code are present")
        res.check(b"Return-Path: <>" in raw, "the bounce comes from the null sender")
        res.check(any(p.get_content_type() == "text/rfc822-headers" for p in msg.walk()),
                  "the original headers are attached")

    # 5. partial rejection: one recipient delivered, the other bounced
    sc.rcpt_replies["gone@scripted.test"] = "550 5.1.1 <gone@scripted.test>: gone"
    submit(d, ["kept@scripted.test", "gone@scripted.test"], "half and half")
    got = wait_for(lambda: sc.received("kept@scripted.test"))
    res.check(bool(got) and got[0][1] == ["kept@scripted.test"],
              "partial rejection: the accepted recipient got the message")
    raw = dsn_for(d, "half and half")
    if res.check(raw is not None, "partial rejection: a bounce for the refused one"):
        _, finals, _ = parse_dsn(raw)
        res.check(finals == ["gone@scripted.test"], "the bounce names only the refused recipient")

    # 6. null MX: bounced at once, no connection
    submit(d, ["x@null.test"], "null mx")
    raw = dsn_for(d, "null mx")
    if res.check(raw is not None, "null MX: bounced"):
        _, finals, statuses = parse_dsn(raw)
        res.check(finals == ["x@null.test"] and statuses == ["5.1.10"],
                  "null MX bounce has Status 5.1.10 (RFC 7505) (%s)" % statuses)

    # 7. postern queue list / delete
    submit(d, ["stuck@down.test"], "stuck")
    ids = wait_for(lambda: [i for i in queue_ids(d)
                            if "stuck@down.test" in d.cli("queue", "list").stdout.decode()])
    out = d.cli("queue", "list").stdout.decode()
    res.check("stuck@down.test" in out and "pending" in out,
              "queue list shows the deferred message and its recipient")
    res.check(wait_for(lambda: "Cannot connect" in d.cli("queue", "list").stdout.decode()),
              "queue list shows the last failure")
    if ids:
        r = d.cli("queue", "delete", ids[0])
        res.check(r.returncode == 0 and "stuck@down.test" not in
                  d.cli("queue", "list").stdout.decode(), "queue delete removes it")
    r = d.cli("queue", "flush")
    res.check(r.returncode == 0, "queue flush is accepted")
    r = d.cli("queue", "delete", "0123456789abcdef", check=False)
    res.check(r.returncode != 0, "queue delete of an unknown id fails")

    # 8. STARTTLS offered but broken: once more without TLS
    submit(d, ["x@badtls.test"], "bad tls")
    got = wait_for(lambda: bt.received("x@badtls.test"))
    res.check(bool(got) and bt.starttls_seen == 1,
              "a failed TLS handshake is followed by one plaintext attempt that delivers")

    # 9. 8-bit text to a server without 8BITMIME: quoted-printable (RFC 6152)
    text = "Grüße aus Köln – 8-bit ✓\r\n"
    submit(d, ["eight@seven.test"], "eight bit", body=text, mail_options=["BODY=8BITMIME"],
           headers="MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   "Content-Transfer-Encoding: 8bit\r\n")
    got = wait_for(lambda: s7.received("eight@seven.test"))
    if res.check(bool(got), "8-bit message delivered to a server without 8BITMIME"):
        data = got[0][2]
        res.check(all(b < 0x80 for b in data), "it arrived as 7-bit data")
        m = email.message_from_bytes(data, policy=email.policy.default)
        res.check(m["Content-Transfer-Encoding"] == "quoted-printable" and
                  m.get_content().replace("\r\n", "\n") == text.replace("\r\n", "\n"),
                  "as quoted-printable that decodes to the original text")
    submit(d, ["eight2@scripted.test"], "eight bit kept", body=text,
           mail_options=["BODY=8BITMIME"],
           headers="Content-Type: text/plain; charset=utf-8\r\n")
    got = wait_for(lambda: sc.received("eight2@scripted.test"))
    res.check(bool(got) and text.encode() in got[0][2],
              "to a server with 8BITMIME the 8-bit body goes unchanged")

    # without PIPELINING: one command at a time, partial rejection too
    s7.rcpt_replies["no@seven.test"] = "550 5.1.1 <no@seven.test>: no"
    submit(d, ["yes@seven.test", "no@seven.test", "yes2@seven.test"], "no pipelining")
    got = wait_for(lambda: s7.received("yes@seven.test"))
    res.check(bool(got) and got[0][1] == ["yes@seven.test", "yes2@seven.test"],
              "without PIPELINING: the accepted recipients got it in one transaction")
    raw = dsn_for(d, "no pipelining")
    res.check(raw is not None and parse_dsn(raw)[1] == ["no@seven.test"],
              "without PIPELINING: the refused recipient is bounced")

    # 10. far sides that drop the connection or answer garbage: deferred,
    #     then delivered on the retry
    sc.drop_first.add("drop@scripted.test")
    sc.garbage_first.add("garbage@scripted.test")
    submit(d, ["drop@scripted.test"], "dropped once")
    submit(d, ["garbage@scripted.test"], "garbage once")
    got = wait_for(lambda: sc.received("drop@scripted.test") and
                   sc.received("garbage@scripted.test"), timeout=30)
    res.check(bool(got), "a dropped connection and a garbage reply are retried and delivered")
    log = d.log()
    res.check("Connection to mx.scripted.test[127.0.0.4] lost" in log and
              "Malformed reply from mx.scripted.test" in log,
              "both failures are logged as deferrals")

    # 11. at most outbound_destination_concurrency sessions at once to one
    #     destination
    sc.stall.add("busy@scripted.test")
    sc.stall_s = 1
    with sc.lock:
        sc.max_current = 0
    with smtplib.SMTP("127.0.0.1", d.port("submission"), timeout=30) as s:
        s.starttls(context=tls_context())
        s.login(USER, PASSWORD)
        for i in range(25):
            s.sendmail(USER, ["busy@scripted.test"],
                       ("From: %s\r\nSubject: busy %d\r\n\r\nx\r\n" % (USER, i)).encode())
    got = wait_for(lambda: len(sc.received("busy@scripted.test")) >= 25, timeout=60)
    res.check(bool(got), "25 messages to one destination all delivered")
    res.check(sc.max_current <= DEST_LIMIT, "at most %d sessions at once to it (saw %d)"
              % (DEST_LIMIT, sc.max_current))
    sc.stall.discard("busy@scripted.test")

    # 12. an unreadable envelope is moved aside; the rest goes on
    qdir = os.path.join(d.data, "queue")
    with open(os.path.join(qdir, "ABCDEF0123456789.msg"), "wb") as f:
        f.write(b"Subject: orphan\r\n\r\nx\r\n")
    with open(os.path.join(qdir, "ABCDEF0123456789.env"), "wb") as f:
        f.write(b"this is not an envelope\n")
    res.check(wait_for(lambda: os.path.exists(os.path.join(qdir, "corrupt",
                                                           "ABCDEF0123456789.env"))),
              "a corrupt envelope is moved to queue/corrupt/")
    res.check("ABCDEF0123456789 envelope unreadable" in d.log(), "and logged")
    submit(d, ["after@scripted.test"], "after corrupt")
    res.check(bool(wait_for(lambda: sc.received("after@scripted.test"))),
              "the queue goes on after a corrupt file")


def submit_many(d, rcpt, subject, n):
    with smtplib.SMTP("127.0.0.1", d.port("submission"), timeout=30) as s:
        s.starttls(context=tls_context())
        s.login(USER, PASSWORD)
        for i in range(n):
            s.sendmail(USER, [rcpt], ("From: %s\r\nSubject: %s %d\r\n\r\nx\r\n"
                                      % (USER, subject, i)).encode())


def test_reuse(d, res, ru, cl, tired):
    """20 messages to one destination over fewer connections than messages
    (counted at the server); far sides that close, or answer 421, after each
    message still get every message, once."""
    submit_many(d, "many@reuse.test", "reuse", 20)
    got = wait_for(lambda: len(ru.received("many@reuse.test")) >= 20, timeout=60)
    res.check(bool(got), "reuse: 20 messages to one destination delivered")
    res.check(ru.sessions < 20, "reuse: over fewer connections than messages (%d)"
              % ru.sessions)
    res.check(ru.max_current <= DEST_LIMIT, "reuse: at most %d at once (saw %d)"
              % (DEST_LIMIT, ru.max_current))
    res.check("reusing connection" in d.log(), "reuse: logged")
    # an idle connection is closed with QUIT after CLIENT_IDLE_S (5 s)
    res.check(bool(wait_for(lambda: ru.current == 0, timeout=20)),
              "reuse: idle connections are closed after a few seconds")
    for srv, dom, what in ((cl, "closing.test", "closes the connection"),
                           (tired, "tired.test", "answers 421 to the next MAIL")):
        submit_many(d, "x@" + dom, "one per connection", 8)
        got = wait_for(lambda: len(srv.received("x@" + dom)) >= 8, timeout=60)
        res.check(bool(got), "a far side that %s after each message gets all 8" % what)
        time.sleep(1)
        subjects = sorted(m[2].split(b"Subject: ")[1].split(b"\r\n")[0]
                          for m in srv.received("x@" + dom))
        res.check(len(subjects) == 8 and len(set(subjects)) == 8,
                  "... each exactly once (%d copies)" % len(subjects))
    log = d.log()
    res.check("kept connection failed" in log, "a failed kept connection is logged")


def test_dsn_options(d, res, sc, s7):
    """RET=FULL / RET=HDRS in bounces (RFC 3461 §4.3); NOTIFY=SUCCESS gives
    an Action: relayed notice when the far side has no DSN (§5.2.2), none
    when it has (it got the NOTIFY), Action: delivered for a local mailbox;
    the session's TLS is in the DSN."""
    sc.rcpt_replies["full@scripted.test"] = "550 5.1.1 <full@scripted.test>: no such user"
    submit(d, ["full@scripted.test"], "ret full", body="The whole body comes back.\r\n",
           mail_options=["RET=FULL"])
    raw = dsn_for(d, "ret full")
    if res.check(raw is not None, "RET=FULL: a bounce"):
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        kinds = [p.get_content_type() for p in msg.walk()]
        res.check("message/rfc822" in kinds and "text/rfc822-headers" not in kinds and
                  b"The whole body comes back." in raw,
                  "RET=FULL: the whole message as message/rfc822 (%s)" % kinds)
        res.check(b"X-Postern-TLS: none" in raw and b"(TLS: none)" in raw,
                  "the DSN records that the session had no TLS")
    submit(d, ["full@scripted.test"], "ret hdrs", body="This body stays here.\r\n",
           mail_options=["RET=HDRS"])
    raw = dsn_for(d, "ret hdrs")
    if res.check(raw is not None, "RET=HDRS: a bounce"):
        res.check(b"text/rfc822-headers" in raw and b"message/rfc822" not in raw and
                  b"This body stays here." not in raw, "RET=HDRS: the headers only")

    submit(d, ["ok@seven.test"], "success wanted", rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
    raw = dsn_for(d, "success wanted", action=b"Action: relayed")
    if res.check(raw is not None, "NOTIFY=SUCCESS to a server without DSN: a notice"):
        _, finals, statuses = parse_dsn(raw)
        res.check(finals == ["ok@seven.test"] and statuses == ["2.0.0"] and
                  b"Subject: Successful Mail Delivery Report" in raw and
                  b"Remote-MTA: dns; mx.seven.test" in raw,
                  "Action: relayed, Status 2.0.0, Remote-MTA (%s %s)" % (finals, statuses))
    submit(d, ["ok@scripted.test"], "success passed on", rcpt_options=["NOTIFY=SUCCESS"])
    got = wait_for(lambda: sc.received("ok@scripted.test"))
    res.check(bool(got), "NOTIFY=SUCCESS to a server with DSN: delivered")
    time.sleep(2)
    res.check(dsn_for(d, "success passed on", timeout=0.1, action=b"Action: relayed") is None,
              "... and no notice from us: the far side got NOTIFY=SUCCESS")

    submit(d, [USER], "local success", rcpt_options=["NOTIFY=SUCCESS"])
    raw = dsn_for(d, "local success", action=b"Action: delivered")
    if res.check(raw is not None, "NOTIFY=SUCCESS to a local mailbox: a notice"):
        _, finals, statuses = parse_dsn(raw)
        res.check(finals == [USER] and statuses == ["2.0.0"],
                  "Action: delivered, Status 2.0.0 (%s %s)" % (finals, statuses))
    submit(d, [USER], "local no notice")
    time.sleep(1)
    res.check(dsn_for(d, "local no notice", timeout=0.1, action=b"Action: delivered") is None,
              "no notice for a local recipient without NOTIFY=SUCCESS")


def test_dkim(d, res, sc):
    """Mail leaving through submission carries DKIM-Signatures for the From:
    domain that an independent verifier (python3-dkim) accepts against the
    records `postern dns` prints; a domain without keys goes unsigned."""
    try:
        import dkim
    except ImportError:
        print("SKIPPED dkim: python3-dkim is not installed")
        return
    from dkim_verify import parse_dns, txt_strings
    submit(d, ["plain@scripted.test"], "before keys")
    got = wait_for(lambda: sc.received("plain@scripted.test"))
    res.check(bool(got) and b"DKIM-Signature:" not in got[0][2],
              "without keys the message leaves unsigned")
    d.cli("dkim", "generate", "example.test")
    records = parse_dns(d.cli("dns", "example.test").stdout.decode())
    keyrecs = {name.encode(): "".join(txt_strings(rdata)).encode()
               for name, recs in records.items() for kind, rdata in recs
               if kind == "TXT" and "._domainkey." in name}

    def dnsfunc(name, timeout=5):
        name = name if isinstance(name, bytes) else name.encode()
        name = name.lower() if name.endswith(b".") else name.lower() + b"."
        return keyrecs.get(name)

    submit(d, ["signed@scripted.test"], "signed on the way out",
           body="Body line one.\r\n\r\ntrailing   spaces  \r\n")
    got = wait_for(lambda: sc.received("signed@scripted.test"))
    res.check(bool(got), "the signed message is delivered")
    if not got:
        return
    raw = got[0][2]
    sigs = [ln for ln in raw.split(b"\r\n") if ln.startswith(b"DKIM-Signature:")]
    res.check(len(sigs) == 2 and b"a=rsa-sha256" in raw and b"a=ed25519-sha256" in raw and
              b"d=example.test" in raw, "two DKIM-Signatures (rsa-sha256, ed25519-sha256) "
              "for d=example.test (%d)" % len(sigs))
    v = dkim.DKIM(raw)
    ok = [v.verify(idx=i, dnsfunc=dnsfunc) for i in range(len(sigs))]
    res.check(len(ok) == 2 and all(ok), "python3-dkim verifies both signatures (%r)" % ok)
    try:  # dkimpy raises on a body hash mismatch, returns False on others
        altered = dkim.DKIM(raw.replace(b"Body line one.", b"Body line 1.")).verify(
            dnsfunc=dnsfunc)
    except dkim.ValidationError:
        altered = False
    res.check(not altered, "and fails them when the body is altered")


def test_kill9(postern, res, tmp, dns_port, out_port, sc):
    """kill -9 while the far side holds the final reply; restart delivers."""
    extra = ("dns_resolver = 127.0.0.1:%d\noutbound_port = %d\nqueue_retry = 1s\n"
             % (dns_port, out_port))
    d = Daemon(postern, roles=("submission",), extra_config=extra, keep_dir=True)
    d.start()
    try:
        d.add_user(USER, PASSWORD)
        sc.stall.add("slow@scripted.test")
        sc.stall_s = 4
        submit(d, ["slow@scripted.test"], "kill nine")
        got = wait_for(lambda: sc.received("slow@scripted.test"), timeout=20)
        res.check(bool(got), "kill -9: the far side has the data (reply held back)")
        d.stop(sig=signal.SIGKILL)
        sc.stall.discard("slow@scripted.test")
        d.start()
        got = wait_for(lambda: len(sc.received("slow@scripted.test")) >= 2, timeout=30)
        res.check(bool(got), "after restart the message is delivered again")
        time.sleep(3)
        n = len(sc.received("slow@scripted.test"))
        res.check(n == 2, "at most once more (%d copies)" % n)
        res.check(wait_for(lambda: "queue is empty" in d.cli("queue", "list").stdout.decode()),
                  "the queue is empty afterwards")
    finally:
        d.keep_dir = False
        d.__exit__(None, None, None)


def test_forward(postern, res, dns_port, out_port, sc):
    """An alias with a target in another domain: mail from outside on port 25
    reaches the local target and is forwarded through the queue, with the
    original envelope sender (no SRS)."""
    extra = ("dns_resolver = 127.0.0.1:%d\noutbound_port = %d\nqueue_retry = 1s\n"
             % (dns_port, out_port))
    with Daemon(postern, roles=("smtp", "submission"), extra_config=extra) as d:
        d.add_user(USER, PASSWORD)
        d.cli("alias", "add", "fwd@example.test", USER, "far@scripted.test")
        with smtplib.SMTP("127.0.0.1", d.port("smtp"), timeout=30) as s:
            refused = s.sendmail("someone@elsewhere.test", ["fwd@example.test"],
                                 b"From: someone@elsewhere.test\r\nSubject: forwarded\r\n"
                                 b"\r\nhello\r\n")
        res.check(refused == {}, "forward: the alias is accepted on port 25")
        got = wait_for(lambda: sc.received("far@scripted.test"))
        res.check(bool(got) and got[0][0] == "someone@elsewhere.test" and
                  b"Subject: forwarded" in got[0][2],
                  "forward: delivered to the outside target with the original sender")
        res.check(wait_count(d, USER, 1) == 1, "forward: the local target has it too")
    with Daemon(postern, roles=("smtp",), extra_config="outbound_delivery = no\n") as d:
        d.add_user(USER, PASSWORD)
        d.cli("alias", "add", "fwd@example.test", USER, "far@scripted.test")
        with smtplib.SMTP("127.0.0.1", d.port("smtp"), timeout=30) as s:
            s.ehlo()
            s.mail("someone@elsewhere.test")
            code, text = s.rcpt("fwd@example.test")
        res.check(code == 451 and b"4.3.2" in text,
                  "forward with outbound_delivery = no: 451 4.3.2 (%s)" % code)


def test_ipv6_resolver(postern, res, tmp, out_port, sc):
    """dns_resolver = [::1]:PORT: the MX look-up goes to a dnsmasq on ::1."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError as e:
        print("SKIPPED ipv6 resolver: cannot bind ::1 here (%s)" % e)
        return
    port = free_port()
    try:
        dns6 = start_dns(tmp, port, listen="::1")
    except AssertionError:
        print("SKIPPED ipv6 resolver: dnsmasq does not start on ::1 here")
        return
    try:
        extra = "dns_resolver = [::1]:%d\noutbound_port = %d\nqueue_retry = 1s\n" % (
            port, out_port)
        with Daemon(postern, roles=("submission",), extra_config=extra) as d:
            d.add_user(USER, PASSWORD)
            submit(d, ["v6@scripted.test"], "over an ipv6 resolver")
            got = wait_for(lambda: sc.received("v6@scripted.test"))
            res.check(bool(got), "dns_resolver = [::1]:PORT: routed and delivered")
        with open(os.path.join(tmp, "dnsmasq-v6.log"), errors="replace") as f:
            res.check("query[MX] scripted.test" in f.read(),
                      "the MX query reached the resolver on ::1")
    finally:
        dns6.terminate()
        dns6.wait(timeout=5)


def test_local_gone(postern, res):
    """A local user deleted between RCPT and the end of DATA: the others get
    the message, the reply is 250, and the sender gets a DSN for the deleted
    one (its mailbox is not made again)."""
    gone = "carl@example.test"
    with Daemon(postern, roles=("submission",)) as d:
        d.add_user(USER, PASSWORD)
        d.add_user(USER2, PASSWORD2)
        d.add_user(gone, "carl-secret-3")
        with smtplib.SMTP("127.0.0.1", d.port("submission"), timeout=30) as s:
            s.starttls(context=tls_context())
            s.login(USER, PASSWORD)
            s.mail(USER)
            ok = s.rcpt(USER2)[0] == 250 and s.rcpt(gone)[0] == 250
            d.cli("user", "del", gone)
            code, text = s.data(("From: %s\r\nSubject: one of them is gone\r\n\r\nhi\r\n"
                                 % USER).encode())
        res.check(ok and code == 250 and b"1 of 2 local mailboxes failed" in text,
                  "deleted after RCPT: 250 naming one failed mailbox (%s %s)" % (code, text))
        res.check(wait_count(d, USER2, 1) == 1, "the remaining recipient has the message")
        res.check(not os.path.exists(os.path.join(d.data, "mail", "example.test", "carl")) or
                  not [m for m in maildir_messages(d, gone) if b"one of them is gone" in m],
                  "the deleted user's mailbox did not get it")
        raw = dsn_for(d, "one of them is gone")
        if res.check(raw is not None, "the sender gets a DSN in the INBOX"):
            _, finals, statuses = parse_dsn(raw)
            res.check(finals == [gone] and statuses == ["5.1.1"],
                      "the DSN names the deleted recipient with 5.1.1 (%s %s)"
                      % (finals, statuses))


def test_switched_off(postern, res):
    """outbound_delivery = no: remote recipients get 451 4.3.2, nothing queued."""
    with Daemon(postern, roles=("submission",), extra_config="outbound_delivery = no\n") as d:
        d.add_user(USER, PASSWORD)
        try:
            submit(d, ["x@elsewhere.test"], "switched off")
            code, text = 250, b""
        except smtplib.SMTPRecipientsRefused as e:
            code, text = list(e.recipients.values())[0]
        res.check(code == 451 and b"4.3.2" in text,
                  "outbound_delivery = no: 451 4.3.2 for a remote recipient (%s %s)"
                  % (code, text))
        res.check(not os.path.exists(os.path.join(d.data, "queue")) or
                  "queue is empty" in d.cli("queue", "list").stdout.decode(),
                  "outbound_delivery = no: nothing queued")


def test_expiry(postern, res, dns_port, out_port):
    """A delay notice (NOTIFY=DELAY), then queue_lifetime ends: Status 4.4.7."""
    extra = ("dns_resolver = 127.0.0.1:%d\noutbound_port = %d\nqueue_retry = 1s\n"
             "queue_lifetime = 4s\nqueue_delay_warning = 1s\n" % (dns_port, out_port))
    with Daemon(postern, roles=("submission",), extra_config=extra) as d:
        d.add_user(USER, PASSWORD)
        submit(d, ["late@down.test"], "never arrives", rcpt_options=["NOTIFY=DELAY,FAILURE"])
        submit(d, ["quiet@down.test"], "no delay notice wanted")

        def delayed():
            return [m for m in maildir_messages(d, USER) if b"Action: delayed" in m]
        got = wait_for(delayed, timeout=20)
        if res.check(len(got) == 1, "NOTIFY=DELAY: one delay notice"):
            _, finals, statuses = parse_dsn(got[0])
            res.check(finals == ["late@down.test"] and statuses[0].startswith("4."),
                      "the delay notice names the recipient with a 4.x.x status")
            res.check(b"Subject: Delayed Mail" in got[0] and b"Will-Retry-Until: " in got[0],
                      "the delay notice says until when it is retried")
        raw = dsn_for(d, "never arrives", timeout=30)
        if res.check(raw is not None, "lifetime over: a bounce in the sender's INBOX"):
            _, finals, statuses = parse_dsn(raw)
            res.check(finals == ["late@down.test"] and statuses == ["4.4.7"],
                      "the expiry bounce has Status 4.4.7 (%s %s)" % (finals, statuses))
            res.check(b"Cannot connect" in raw, "and names the last failure")
        res.check(wait_for(lambda: "queue is empty" in d.cli("queue", "list").stdout.decode()),
                  "the expired message left the queue")
        res.check(len(delayed()) == 1, "no delay notice without NOTIFY=DELAY, only one with it")


def test_smarthost(postern, res):
    """relay_host: STARTTLS (self-signed: logged as unverified) + AUTH PLAIN,
    implicit TLS, and a wrong password (deferred, never bounced)."""
    with Daemon(postern, roles=("smtp", "submission", "submissions"),
                domains=("example.test", "relayed.test")) as relay:
        relay.add_user(USER, PASSWORD)
        relay.add_user("carol@relayed.test", "carol-secret-9")
        pwfile = os.path.join(relay.dir, "relay-password")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        badpw = os.path.join(relay.dir, "bad-password")
        with open(badpw, "w") as f:
            f.write("not-the-password\n")

        def sender(port, tls, pw):
            return ("relay_host = 127.0.0.1:%d\nrelay_tls = %s\nrelay_user = %s\n"
                    "relay_password_file = %s\nqueue_retry = 1s\n" % (port, tls, USER, pw))

        with Daemon(postern, roles=("submission",),
                    extra_config=sender(relay.port("submission"), "starttls", pwfile)) as d:
            d.add_user(USER, PASSWORD)
            submit(d, ["carol@relayed.test"], "via smarthost")
            n = wait_count(relay, "carol@relayed.test", 1, timeout=30)
            res.check(n == 1, "smarthost: delivered through the relay with STARTTLS + AUTH")
            res.check("verified=no (self-signed certificate" in d.log(),
                      "smarthost: the unverified certificate is logged")
            res.check(wait_for(lambda: "status=sent tls=\"TLSv1.3 " in d.log(), timeout=10),
                      "smarthost: the delivery's log line names its TLS")
            submit(d, ["nobody@relayed.test"], "no such user at the relay")
            raw = dsn_for(d, "no such user at the relay")
            res.check(raw is not None and b"X-Postern-TLS: TLSv1.3 " in raw and
                      b"verified=no" in raw,
                      "smarthost: the bounce records the session's TLS, verified=no")
            msgs = maildir_messages(relay, "carol@relayed.test")
            res.check(bool(msgs) and b"with ESMTPSA" in msgs[0],
                      "smarthost: the relay saw an authenticated TLS session")

        with Daemon(postern, roles=("submission",),
                    extra_config=sender(relay.port("submissions"), "implicit", pwfile)) as d:
            d.add_user(USER, PASSWORD)
            submit(d, ["carol@relayed.test"], "via smarthost on 465")
            n = wait_count(relay, "carol@relayed.test", 2, timeout=30)
            res.check(n == 2, "smarthost: implicit TLS (465) with AUTH")

        with Daemon(postern, roles=("submission",),
                    extra_config=sender(relay.port("submission"), "starttls", badpw)) as d:
            d.add_user(USER, PASSWORD)
            submit(d, ["carol@relayed.test"], "wrong relay password")
            out = wait_for(lambda: "refused AUTH" in d.cli("queue", "list").stdout.decode() and
                           d.cli("queue", "list").stdout.decode())
            res.check(bool(out) and "pending" in out,
                      "smarthost: a refused AUTH defers the message (no bounce)")
            res.check(bool(out) and "TLS TLSv1.3 " in out and "verified=no" in out,
                      "queue list shows the session's TLS (verified=no)")
            res.check(not [m for m in maildir_messages(d, USER) if b"multipart/report" in m],
                      "smarthost: no bounce for a relay configuration problem")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    postern = sys.argv[1]
    res = Results()
    tmp = tempfile.mkdtemp(prefix="postern-queue-")
    dns_port = free_port()
    out_port = free_port()
    dns = start_dns(tmp, dns_port)
    sink, dump = start_sink(tmp, out_port)
    sc = Scripted(SCRIPTED, out_port)
    bt = Scripted(BADTLS, out_port, bad_tls=True)
    s7 = Scripted(SEVEN, out_port, eight_bit=False, pipelining=False, dsn=False)
    ru = Scripted(REUSE, out_port)
    cl = Scripted(CLOSING, out_port, after_message="close")
    tired = Scripted(TIRED, out_port, after_message="421")
    try:
        extra = ("dns_resolver = 127.0.0.1:%d\noutbound_port = %d\nqueue_retry = 1s 1s 2s\n"
                 "outbound_destination_concurrency = %d\n" % (dns_port, out_port, DEST_LIMIT))
        with Daemon(postern, roles=("submission",), extra_config=extra) as d:
            d.add_user(USER, PASSWORD)
            res.run("queue", lambda: tests_main(d, res, sc, bt, s7, dump, tmp))
            res.run("reuse", lambda: test_reuse(d, res, ru, cl, tired))
            res.run("dsn options", lambda: test_dsn_options(d, res, sc, s7))
            res.run("dkim", lambda: test_dkim(d, res, sc))
            if res.failed:
                sys.stderr.write("---- daemon log ----\n" + d.log()[-8000:] + "\n")
        res.run("kill -9", lambda: test_kill9(postern, res, tmp, dns_port, out_port, sc))
        res.run("expiry", lambda: test_expiry(postern, res, dns_port, out_port))
        res.run("switched off", lambda: test_switched_off(postern, res))
        res.run("local gone", lambda: test_local_gone(postern, res))
        res.run("forward", lambda: test_forward(postern, res, dns_port, out_port, sc))
        res.run("ipv6 resolver", lambda: test_ipv6_resolver(postern, res, tmp, out_port, sc))
        res.run("smarthost", lambda: test_smarthost(postern, res))
    finally:
        for srv in (sc, bt, s7, ru, cl, tired):
            srv.close()
        for p in (sink, dns):
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    res.finish()


if __name__ == "__main__":
    main()
