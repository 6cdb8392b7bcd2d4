"""SAVEDATE (RFC 8514) against the real daemon: CAPABILITY, FETCH SAVEDATE
after APPEND with an old internal date (the save date is now, not the
INTERNALDATE), after COPY and MOVE (a new save date in the destination),
SEARCH SAVEDBEFORE / SAVEDON / SAVEDSINCE / SAVEDATESUPPORTED, with exact
bytes from the raw client of imap_protocol.py.

Usage: imap_savedate.py /path/to/postern
"""
import calendar
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results  # noqa: E402
from imap_protocol import Raw, USER, PASSWORD  # noqa: E402

MSG = (b"From: Bob <bob@example.test>\r\n"
       b"To: Alice <alice@example.test>\r\n"
       b"Subject: old one\r\n"
       b"Date: Mon, 02 Feb 2015 10:00:00 +0000\r\n"
       b"\r\n"
       b"body text\r\n")
OLD = b'"02-Feb-2015 10:00:00 +0000"'
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def imap_day(t):
    tm = time.gmtime(t)
    return "%d-%s-%d" % (tm.tm_mday, MONTHS[tm.tm_mon - 1], tm.tm_year)


def fetch_dates(c, what="1:*"):
    """{uid: (internaldate, savedate)} of UID FETCH."""
    out = {}
    for l in c.cmd("UID FETCH %s (INTERNALDATE SAVEDATE)" % what)[:-1]:
        m = re.match(rb'\* \d+ FETCH \(UID (\d+) INTERNALDATE ("[^"]*") SAVEDATE ("[^"]*"|NIL)\)$', l)
        if m:
            out[int(m.group(1))] = (m.group(2), m.group(3))
    return out


def saved_today(v, before, after):
    """v, a quoted date-time, lies within [before, after] (UTC seconds)."""
    t = time.strptime(v.decode().strip('"'), "%d-%b-%Y %H:%M:%S +0000")
    secs = calendar.timegm(t)
    return before - 1 <= secs <= after + 1


def timed(c, tag, data):
    """Send data (a command tagged tag); its answer and the UTC seconds
    around it."""
    before = int(time.time())
    c.send(data)
    res = c.until(tag)
    return res, before, int(time.time())


def only_message(c, r, mailbox, what):
    """SELECT mailbox; the (internaldate, savedate) of its one message."""
    c.cmd("SELECT " + mailbox)
    dates = fetch_dates(c)
    r.check(len(dates) == 1, "%s: FETCH answers INTERNALDATE and SAVEDATE: %r" % (what, dates))
    return list(dates.values())[0] if dates else (None, b"NIL")


def search(c, keys):
    res = c.cmd("UID SEARCH " + keys)
    line = [l for l in res if l.startswith(b"* SEARCH")]
    return (line[0].split()[2:] if line else None), res[-1]


def test_savedate(d, r):
    c = Raw(d.port("imaps"), tls=True)
    res = c.login()
    r.check(b" SAVEDATE" in res, "login CAPABILITY offers SAVEDATE: %r" % res)
    c.cmd("CREATE Archive")
    res, before, after = timed(c, "a1", b"a1 APPEND INBOX () " + OLD +
                               b" {%d+}\r\n" % len(MSG) + MSG + b"\r\n")
    r.check(res[-1].startswith(b"a1 OK [APPENDUID "), "APPEND with an old date: %r" % res)
    idate, sdate = only_message(c, r, "INBOX", "after APPEND")
    r.check(idate == OLD, "INTERNALDATE is the APPEND's: %r" % idate)
    r.check(sdate != b"NIL" and saved_today(sdate, before, after),
            "SAVEDATE is when it was appended, not the internal date: %r" % sdate)

    today, old = imap_day(after), "2-Feb-2015"
    got, tagged = search(c, "SAVEDON " + today)
    r.check(got == [b"1"] and b" OK " in tagged, "SEARCH SAVEDON today: %r" % got)
    got, _ = search(c, "SAVEDSINCE " + today)
    r.check(got == [b"1"], "SEARCH SAVEDSINCE today: %r" % got)
    got, _ = search(c, "SAVEDBEFORE " + today)
    r.check(got == [], "SEARCH SAVEDBEFORE today matches nothing: %r" % got)
    got, _ = search(c, "SAVEDON " + old)
    r.check(got == [], "SEARCH SAVEDON the internal date matches nothing: %r" % got)
    got, _ = search(c, "ON " + old)
    r.check(got == [b"1"], "while ON the internal date matches: %r" % got)
    got, _ = search(c, "SAVEDBEFORE 1-Jan-2100 SAVEDSINCE 1-Jan-2000")
    r.check(got == [b"1"], "SAVEDBEFORE and SAVEDSINCE together: %r" % got)
    got, _ = search(c, "SAVEDATESUPPORTED")
    r.check(got == [b"1"], "SAVEDATESUPPORTED matches every message: %r" % got)
    got, _ = search(c, "NOT SAVEDATESUPPORTED")
    r.check(got == [], "NOT SAVEDATESUPPORTED none: %r" % got)
    res = c.cmd("UID SEARCH SAVEDON 31-Foo-2020")
    r.check(res[-1].startswith(b"r") and b" BAD " in res[-1], "a bad date is BAD: %r" % res)

    # COPY and MOVE: the copy is saved now, its internal date stays
    time.sleep(1.1)
    res, before, after = timed(c, "c1", b"c1 UID COPY 1 Archive\r\n")
    r.check(b"OK [COPYUID " in res[-1], "COPY: %r" % res)
    cidate, csdate = only_message(c, r, "Archive", "after COPY")
    r.check(cidate == OLD, "the copy keeps the INTERNALDATE: %r" % cidate)
    r.check(csdate != sdate and saved_today(csdate, before, after),
            "the copy has a save date of its own (%r, original %r)" % (csdate, sdate))
    got, _ = search(c, "SAVEDSINCE " + imap_day(after))
    r.check(got == [b"1"], "SAVEDSINCE finds the copy: %r" % got)
    time.sleep(1.1)
    c.cmd("SELECT INBOX")
    res, before, after = timed(c, "m1", b"m1 UID MOVE 1 Archive\r\n")
    r.check(res[-1].split()[1] == b"OK", "MOVE: %r" % res)
    c.cmd("SELECT Archive")
    dates = fetch_dates(c)
    r.check(len(dates) == 2 and dates.get(2, (None, b"NIL"))[0] == OLD and
            saved_today(dates[2][1], before, after) and dates[2][1] != csdate,
            "the moved message has a new save date: %r" % dates)
    c.close()


def main():
    res = Results()
    with Daemon(sys.argv[1], roles=("imaps",)) as d:
        d.add_user(USER, PASSWORD)
        res.run("savedate", lambda: test_savedate(d, res))
        res.check("imap bug:" not in d.log(), "every command ended with its own tagged reply")
    res.finish()


if __name__ == "__main__":
    main()
