"""Login throttling end to end, as the README's "Failed logins" paragraph
describes it: one client address (127.0.0.1) tries 20 wrong passwords for
bob through imaplib, poplib and smtplib in turn.  The first 5 fail at once;
then each attempt waits 1 s, 2 s, 4 s, 8 s, then 16 s (the last eleven are
made in parallel, so the test takes a minute, not three); after the 20th,
even bob's right password is refused at once (IMAP [UNAVAILABLE], POP3
[LOGIN-DELAY], SMTP 535).  Meanwhile alice, from another address
(127.0.0.2, through the harness's LineClient), logs in at once over IMAP,
POP3 and SMTP.  Bob's own phone (127.0.0.3), which logged in before the
attack, still gets in at once afterwards; a new place (127.0.0.4) is
refused at once.  Run by ctest with the postern binary as argv[1]."""
import base64
import imaplib
import poplib
import smtplib
import sys
import threading
import time

from postern_test import Daemon, LineClient, Results, tls_context

BOB, BOB_PW = "bob@example.test", "bob-right-pass-1"
ALICE, ALICE_PW = "alice@example.test", "alice-right-pass-1"
FAST = 1.0  # seconds: "at once" (a yescrypt verify is ~20 ms)


def imap_login(d, user, pw):
    c = imaplib.IMAP4_SSL("127.0.0.1", d.port("imaps"), ssl_context=tls_context(), timeout=60)
    try:
        c.login(user, pw)
        c.logout()
        return "OK"
    except imaplib.IMAP4.error as e:
        return "NO " + str(e)
    finally:
        try:
            c.shutdown()
        except OSError:
            pass


def pop3_login(d, user, pw):
    c = poplib.POP3_SSL("127.0.0.1", d.port("pop3s"), context=tls_context(), timeout=60)
    try:
        c.user(user)
        c.pass_(pw)
        c.quit()
        return "OK"
    except poplib.error_proto as e:
        return "NO " + e.args[0].decode(errors="replace")
    finally:
        c.close()


def smtp_login(d, user, pw):
    # one AUTH PLAIN (smtplib's login() would try LOGIN after a failed PLAIN,
    # which is a second failed attempt)
    c = smtplib.SMTP_SSL("127.0.0.1", d.port("submissions"), context=tls_context(), timeout=60)
    try:
        c.ehlo("client.example.org")
        code, text = c.docmd("AUTH", "PLAIN " + base64.b64encode(
            ("\0%s\0%s" % (user, pw)).encode()).decode())
        c.quit()
        return "OK" if code == 235 else "NO %d %s" % (code, text.decode(errors="replace"))
    finally:
        c.close()


CLIENTS = [("imap", imap_login), ("pop3", pop3_login), ("smtp", smtp_login)]


def timed(fn, *args):
    t = time.monotonic()
    res = fn(*args)
    return res, time.monotonic() - t


def from_other_address(d, r, src="127.0.0.2", user=ALICE, pw=ALICE_PW, ok=True):
    """user from address src, raw clients (imaplib and poplib cannot bind):
    every protocol answers at once, OK (ok) or refused."""
    who = "%s: %s's" % (src, user.split("@")[0])
    t = time.monotonic()
    c = LineClient(d.port("imaps"), tls=True, source=src)
    c.raw_line()
    c.send("a LOGIN %s %s\r\n" % (user, pw))
    line = c.raw_line()
    while line.startswith(b"*"):
        line = c.raw_line()
    c.close()
    el = time.monotonic() - t
    r.check(line.startswith(b"a OK" if ok else b"a NO") and el < FAST,
            "%s IMAP login %s at once (%s, %.2f s)" % (who, "in" if ok else "refused",
                                                      line[:60], el))

    t = time.monotonic()
    c = LineClient(d.port("pop3s"), tls=True, source=src)
    c.raw_line()
    c.send("USER %s\r\n" % user)
    c.raw_line()
    c.send("PASS %s\r\n" % pw)
    line = c.raw_line()
    c.close()
    el = time.monotonic() - t
    r.check(line.startswith(b"+OK" if ok else b"-ERR") and el < FAST,
            "%s POP3 login %s at once (%s, %.2f s)" % (who, "in" if ok else "refused",
                                                      line[:60], el))

    t = time.monotonic()
    c = smtplib.SMTP_SSL("127.0.0.1", d.port("submissions"), context=tls_context(),
                         timeout=30, source_address=(src, 0))
    c.ehlo("client.example.org")
    code, _ = c.docmd("AUTH", "PLAIN " + base64.b64encode(
        ("\0%s\0%s" % (user, pw)).encode()).decode())
    c.quit()
    el = time.monotonic() - t
    r.check((code == 235 if ok else code == 535) and el < FAST,
            "%s SMTP AUTH %s at once (%d, %.2f s)" % (who, "in" if ok else "refused", code, el))


def main():
    postern = sys.argv[1]
    r = Results()
    with Daemon(postern, roles=("imaps", "pop3s", "submissions")) as d:
        d.add_user(BOB, BOB_PW)
        d.add_user(ALICE, ALICE_PW)
        # bob's phone, at 127.0.0.3, has been logging in all along
        from_other_address(d, r, "127.0.0.3", BOB, BOB_PW)

        # failures 1..5: no delay
        for i in range(5):
            name, fn = CLIENTS[i % 3]
            res, el = timed(fn, d, BOB, "wrong-%d" % i)
            r.check(res.startswith("NO") and el < FAST,
                    "failure %d (%s): refused at once (%.2f s)" % (i + 1, name, el))
        # failures 6..9: 1, 2, 4, 8 s
        for i, want in zip(range(5, 9), (1, 2, 4, 8)):
            name, fn = CLIENTS[i % 3]
            res, el = timed(fn, d, BOB, "wrong-%d" % i)
            r.check(res.startswith("NO") and want - 0.1 <= el < want + FAST,
                    "failure %d (%s): answered after %d s (%.2f s)" % (i + 1, name, want, el))
        # the other address is not slowed down meanwhile
        from_other_address(d, r)
        # failures 10..20: 16 s each, in parallel
        results = []

        def attempt(i):
            name, fn = CLIENTS[i % 3]
            results.append((i, name) + timed(fn, d, BOB, "wrong-%d" % i))

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(9, 20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        r.check(len(results) == 11, "11 parallel attempts answered")
        for i, name, res, el in sorted(results):
            # (the upper bound leaves room for a loaded 2-CPU machine
            # running eleven TLS handshakes and password checks at once)
            r.check(res.startswith("NO") and 15.9 <= el < 16 + 6,
                    "failure %d (%s): answered after 16 s (%.2f s)" % (i + 1, name, el))
        # after 20: refused at once, even with the right password
        for name, fn in CLIENTS:
            res, el = timed(fn, d, BOB, BOB_PW)
            r.check(res.startswith("NO") and el < FAST,
                    "after 20 failures, %s refuses bob's right password at once (%s, %.2f s)"
                    % (name, res, el))
        r.check("Too many failed logins" in imap_login(d, BOB, BOB_PW) and
                "LOGIN-DELAY" in pop3_login(d, BOB, BOB_PW),
                "IMAP and POP3 say why")
        from_other_address(d, r)
        # the attack locked bob's account out of new places, not his phone
        from_other_address(d, r, "127.0.0.3", BOB, BOB_PW)
        from_other_address(d, r, "127.0.0.4", BOB, BOB_PW, ok=False)
        log = d.log()
        r.check(log.count("auth failed: proto=") >= 20 and "rip=127.0.0.1" in log,
                "every failure logged for fail2ban")
    r.finish()


if __name__ == "__main__":
    main()
