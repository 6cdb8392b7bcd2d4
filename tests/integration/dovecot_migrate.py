"""Moving from Dovecot, as the README's "Moving from Dovecot" section says,
with Debian's Dovecot (dovecot-imapd, dovecot-pop3d): a throw-away Dovecot
on loopback high ports with its own configuration (the system instance is
never touched) receives messages by IMAP APPEND (with INTERNALDATEs), gets
flags and keywords, folders (one special-use), subscriptions, an expunge,
and a POP3 client that leaves mail on the server.  Then Dovecot is stopped,
the Maildir copied into Postern's data directory following the README's
steps, and Postern must show the same POP3 UIDLs, IMAP UIDs, UIDNEXT and
UIDVALIDITY per folder, flags and keywords, subscriptions, INTERNALDATEs
and special-use folders; a CONDSTORE/QRESYNC client that synchronised with
Dovecot (at the end, or earlier) is told by Postern exactly what Dovecot
told it (nothing, for the synchronised one), from the mod-sequences
exported with doveadm, and gets everything when they were not exported.
Mail delivered after the move gets Postern's own UIDL; `postern reindex`
keeps the imported UIDLs.  Skipped (77) when
Dovecot is not installed.  Run by ctest with the postern binary as argv[1].
"""
import imaplib
import os
import poplib
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from postern_test import Daemon, Results, free_port, skip, tls_context, wait_port

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
# the UIDs a resynchronising client knows, per folder (QRESYNC known-uids)
KNOWN = {"INBOX": "1:6", "Work": "1:2", "Archive": "1"}
USER = "alice@example.test"
PASSWORD = "migrate-pass-1"

DOVECOT_CONF = """\
base_dir = {tmp}/run
state_dir = {tmp}/state
log_path = {tmp}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {uid}
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Archive {{
    special_use = \\Archive
  }}
  mailbox Trash {{
    special_use = \\Trash
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {tmp}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={tmp}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""

MESSAGES = [
    # (folder, date, flags, subject)
    ("INBOX", "01-Feb-2024 10:00:00 +0000", "", "first"),
    ("INBOX", "02-Feb-2024 11:30:00 +0100", "\\Seen", "second"),
    ("INBOX", "03-Feb-2024 12:00:00 +0000", "", "third (expunged)"),
    ("INBOX", "04-Feb-2024 13:00:00 -0500", "\\Seen \\Answered", "fourth"),
    ("INBOX", "05-Feb-2024 14:00:00 +0000", "", "fifth"),
    ("INBOX", "06-Feb-2024 15:00:00 +0000", "", "sixth"),
    ("Work", "07-Feb-2024 16:00:00 +0000", "\\Flagged", "work one"),
    ("Work", "08-Feb-2024 17:00:00 +0000", "\\Seen", "work two"),
    ("Archive", "09-Jan-2023 09:00:00 +0000", "\\Seen", "archived"),
]


def message(subject, i):
    return ("From: Bob <bob@example.org>\r\nTo: alice@example.test\r\n"
            "Subject: %s\r\nMessage-ID: <m%d@example.org>\r\n"
            "Date: Thu, 01 Feb 2024 10:00:00 +0000\r\n\r\n"
            "Body of message %d.\r\n" % (subject, i, i)).encode()


def snapshot(imap):
    """What a client sees: per folder UIDVALIDITY and UID -> (flags,
    INTERNALDATE); subscriptions; special-use folders."""
    folders = {}
    typ, data = imap.list()
    names = []
    special = {}
    for line in data:
        m = re.match(rb'\(([^)]*)\) "(.)" (.*)$', line)
        name = m.group(3).decode().strip('"')
        names.append(name)
        for attr in m.group(1).decode().split():
            if attr in ("\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive"):
                special[name] = attr
    for name in names:
        typ, data = imap.select('"%s"' % name, readonly=True)
        assert typ == "OK", (name, data)
        uv = int(imap.response("UIDVALIDITY")[1][0])
        msgs = {}
        typ, data = imap.uid("FETCH", "1:*", "(FLAGS INTERNALDATE)")
        for item in data:
            if item is None:
                continue
            if isinstance(item, tuple):
                item = item[0]
            m = re.search(rb"UID (\d+)", item)
            if m is None:
                continue
            flags = re.search(rb"FLAGS \(([^)]*)\)", item).group(1).decode().split()
            date = re.search(rb'INTERNALDATE "([^"]*)"', item).group(1).decode()
            flags = sorted(f for f in flags if f != "\\Recent")
            msgs[int(m.group(1))] = (flags, imaplib.Internaldate2tuple(
                b'INTERNALDATE "' + date.encode() + b'"'))
        imap.close()
        typ, data = imap.status('"%s"' % name, "(UIDNEXT)")
        msgs["uidnext"] = int(re.search(rb"UIDNEXT (\d+)", data[0]).group(1))
        folders[name] = (uv, msgs)
    typ, data = imap.lsub()
    subs = sorted(re.match(rb'\([^)]*\) "." (.*)$', l).group(1).decode().strip('"')
                  for l in data if l)
    return folders, subs, special


def pop3_uidls(pop):
    resp, lines, _ = pop.uidl()
    return [l.decode().split(" ", 1)[1] for l in lines]


def resync(imap, folder, uv, modseq, known=None):
    """What a client resynchronising with QRESYNC from (uv, modseq) is told:
    (VANISHED (EARLIER) UIDs, {UID: flags} of the SELECT, {UID: flags} of
    UID FETCH 1:* (FLAGS) (CHANGEDSINCE modseq), HIGHESTMODSEQ)."""
    def fetched():
        got = {}
        for item in imap.untagged_responses.pop("FETCH", []):
            if isinstance(item, tuple):
                item = item[0]
            m = re.search(rb"UID (\d+)", item)
            f = re.search(rb"FLAGS \(([^)]*)\)", item)
            if m and f:
                got[int(m.group(1))] = sorted(x for x in f.group(1).decode().split()
                                              if x != "\\Recent")
        return got

    def uidset(text):
        out = set()
        for part in text.split(","):
            a, _, b = part.partition(":")
            out.update(range(int(a), int(b or a) + 1))
        return out

    imap.untagged_responses.clear()
    typ, data = imap._simple_command(
        "SELECT", '"%s" (QRESYNC (%d %d%s))' % (folder, uv, modseq,
                                              " " + known if known else ""))
    assert typ == "OK", (folder, data)
    imap.state = "SELECTED"
    vanished = set()
    for v in imap.untagged_responses.pop("VANISHED", []):
        v = v.decode()
        if v.startswith("(EARLIER) "):
            vanished |= uidset(v.split(" ", 1)[1])
    highest = int(re.search(rb"HIGHESTMODSEQ (\d+)",
                            b" ".join(imap.untagged_responses.get("OK", []))).group(1))
    on_select = fetched()
    typ, data = imap._simple_command("UID", "FETCH", "1:*", "(FLAGS)",
                                     "(CHANGEDSINCE %d)" % modseq)
    assert typ == "OK", data
    changed = fetched()
    imap._simple_command("UNSELECT")
    imap.state = "AUTH"
    return sorted(vanished), on_select, changed, highest


def run_dovecot(tmp, r):
    """Fill Dovecot's Maildir; returns (maildir path, snapshot, uidls)."""
    os.chmod(tmp, 0o755)
    nobody = pwd.getpwnam("nobody")
    uid, gid = nobody.pw_uid, nobody.pw_gid
    imap_port, pop3_port = free_port(), free_port()
    conf = os.path.join(tmp, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(DOVECOT_CONF.format(tmp=tmp, uid=uid, gid=gid, imap=imap_port,
                                    pop3=pop3_port))
    with open(os.path.join(tmp, "passwd"), "w") as f:
        f.write("%s:{PLAIN}%s\n" % (USER, PASSWORD))
    os.chmod(os.path.join(tmp, "passwd"), 0o644)
    home = os.path.join(tmp, "home", USER)
    os.makedirs(home)
    os.chown(os.path.join(tmp, "home"), uid, gid)
    os.chown(home, uid, gid)
    proc = subprocess.Popen([DOVECOT, "-F", "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        if not wait_port(imap_port, proc=proc) or not wait_port(pop3_port, proc=proc):
            err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None else ""
            try:
                with open(os.path.join(tmp, "dovecot.log")) as f:
                    err += f.read()[-2000:]
            except OSError:
                pass
            raise AssertionError("Dovecot did not start: " + err.strip())
        imap = imaplib.IMAP4("127.0.0.1", imap_port)
        imap.login(USER, PASSWORD)
        for name in ("Work", "Archive", "Old"):
            typ, data = imap.create(name)
            assert typ == "OK", data
        for name in ("Work", "Archive", "Old"):
            imap.subscribe(name)
        imap.unsubscribe("Old")
        for i, (folder, date, flags, subject) in enumerate(MESSAGES):
            typ, data = imap.append(folder, "(%s)" % flags if flags else None,
                                    '"%s"' % date, message(subject, i))
            assert typ == "OK", data
        imap.enable("QRESYNC")
        # a client that synchronised INBOX here and was not seen again
        typ, _ = imap.select("INBOX")
        early = int(re.search(rb"HIGHESTMODSEQ (\d+)",
                              b" ".join(imap.untagged_responses.get("OK", []))).group(1))
        imap.uid("STORE", "3", "+FLAGS", "(\\Deleted)")
        imap.expunge()
        imap.uid("STORE", "1", "+FLAGS", "($Forwarded Project-X)")
        imap.uid("STORE", "5", "+FLAGS", "(Project-X \\Flagged)")
        imap.close()
        imap.select("Work")
        imap.uid("STORE", "2", "+FLAGS", "(Later)")
        imap.close()
        # a POP3 client with "leave messages on server"
        pop = poplib.POP3("127.0.0.1", pop3_port)
        pop.user(USER)
        pop.pass_(PASSWORD)
        uidls = pop3_uidls(pop)
        pop.retr(1)
        pop.quit()
        snap = snapshot(imap)
        # what Dovecot tells a client that synchronised at the end (every
        # folder) and one that synchronised INBOX at `early`
        clients = {}
        for name, (uv, msgs) in snap[0].items():
            st = resync(imap, name, uv, 1)
            clients[name] = (uv, st[3], resync(imap, name, uv, st[3], KNOWN.get(name)))
        clients["early"] = (snap[0]["INBOX"][0], early,
                            resync(imap, "INBOX", snap[0]["INBOX"][0], early, KNOWN["INBOX"]))
        imap.logout()
        # README "Moving from Dovecot", step 2: Dovecot's mod-sequences,
        # exported while it still runs (doveadm asks its auth service)
        maildir = os.path.join(home, "Maildir")
        with open(os.path.join(maildir, "dovecot-modseq"), "w") as f:
            for cmd in (["mailbox", "status", "-u", USER, "guid highestmodseq", "*"],
                        ["fetch", "-u", USER, "mailbox-guid uid modseq", "all"]):
                subprocess.run([DOVEADM, "-c", conf, "-f", "tab"] + cmd, stdout=f,
                               check=True)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return os.path.join(home, "Maildir"), snap, uidls, clients


def main():
    postern = sys.argv[1]
    if not os.path.exists(DOVECOT) or not os.path.exists("/usr/lib/dovecot/imap") or \
            not os.path.exists("/usr/lib/dovecot/pop3"):
        skip("Dovecot is not installed (apt-get install dovecot-imapd dovecot-pop3d)")
    if os.geteuid() != 0:
        skip("Dovecot needs root to start here")
    r = Results()
    tmp = tempfile.mkdtemp(prefix="postern-dovecot-")
    d = Daemon(postern, roles=("smtp", "imaps", "pop3s"))
    try:
        src, before, uidls, clients = run_dovecot(tmp, r)
        r.check(len(uidls) == 5 and all(re.fullmatch(r"[0-9a-f]{16}", u) for u in uidls),
                "Dovecot's POP3 UIDLs are %%08Xu%%08Xv: %s" % uidls)
        print("Dovecot saw:", before)
        # README "Moving from Dovecot": 1. nothing delivers here; 2. the
        # doveadm export and 3. Dovecot stopped (run_dovecot); 4. its
        # pop3_uidl_format is the default; 5. the user; 6. the copy, cp -a
        # and chown; 7. start
        d.add_user(USER, PASSWORD)
        dest = os.path.join(d.data, "mail", "example.test", "alice")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        subprocess.run(["cp", "-a", src, dest], check=True)
        subprocess.run(["chown", "-R", "%d:%d" % (os.getuid(), os.getgid()), dest],
                       check=True)
        d.start()

        pop = poplib.POP3_SSL("127.0.0.1", d.port("pop3s"), context=tls_context())
        pop.user(USER)
        pop.pass_(PASSWORD)
        after_uidls = pop3_uidls(pop)
        pop.quit()
        r.check(after_uidls == uidls, "the same POP3 UIDLs: %s" % after_uidls)

        imap = imaplib.IMAP4_SSL("127.0.0.1", d.port("imaps"), ssl_context=tls_context())
        imap.login(USER, PASSWORD)
        folders, subs, special = snapshot(imap)
        # RFC 8474 MAILBOXID: the mailbox GUID Dovecot wrote in dovecot-uidlist
        with open(os.path.join(dest, "dovecot-uidlist")) as f:
            guid = re.search(r" G([0-9a-f]{32})", f.readline())
        typ, data = imap.status("INBOX", "(MAILBOXID)")
        r.check(guid is not None and data == [b'"INBOX" (MAILBOXID (%s))' % guid.group(1).encode()],
                "INBOX's MAILBOXID is Dovecot's mailbox GUID %s: %r" % (guid and guid.group(1), data))
        # CONDSTORE/QRESYNC clients: Postern tells each exactly what
        # Dovecot told it, so a synchronised one sees no change at all
        imap.enable("QRESYNC")
        for name, (uv, modseq, want) in clients.items():
            box = "INBOX" if name == "early" else name
            got = resync(imap, box, uv, modseq, KNOWN.get(box))
            r.check(got[:3] == want[:3] and got[3] >= modseq,
                    "%s: a client at HIGHESTMODSEQ %d is told %s, as by Dovecot %s"
                    % (name, modseq, got, want))
        r.check(clients["INBOX"][2][:3] == ([], {}, {}),
                "Dovecot itself told the synchronised client nothing: %s" % (clients["INBOX"],))
        r.check(clients["early"][2][0] == [3], "the early client learns of the expunge: %s"
                % (clients["early"],))
        # a change made after the move reaches the synchronised client
        uv, modseq, _ = clients["INBOX"]
        imap.select("INBOX")
        imap.uid("STORE", "6", "+FLAGS", "(\\Answered)")
        imap.unselect()
        got = resync(imap, "INBOX", uv, modseq, KNOWN["INBOX"])
        r.check(got[:3] == ([], {6: ["\\Answered"]}, {6: ["\\Answered"]}),
                "the first flag change after the move, and only it: %s" % (got,))
        imap.logout()
        for name, (uv, msgs) in before[0].items():
            got = folders.get(name)
            r.check(got is not None and got[0] == uv,
                    "%s: UIDVALIDITY %d (%s)" % (name, uv, got and got[0]))
            r.check(got is not None and got[1]["uidnext"] == msgs["uidnext"],
                    "%s: UIDNEXT %d (%s)" % (name, msgs["uidnext"], got and got[1]["uidnext"]))
            msgs = {k: v for k, v in msgs.items() if k != "uidnext"}
            r.check(got is not None and sorted(k for k in got[1] if k != "uidnext") ==
                    sorted(msgs), "%s: UIDs %s (%s)" % (
                        name, sorted(msgs), got and sorted(k for k in got[1] if k != "uidnext")))
            for u, (flags, date) in msgs.items():
                g = got[1].get(u) if got else None
                r.check(g is not None and g[0] == flags,
                        "%s UID %d: flags %s (%s)" % (name, u, flags, g and g[0]))
                r.check(g is not None and time.mktime(g[1]) == time.mktime(date),
                        "%s UID %d: INTERNALDATE %s (%s)" % (
                            name, u, time.strftime("%c", date),
                            g and time.strftime("%c", g[1])))
        want_subs = sorted(before[1])
        r.check([s for s in subs if s in folders and s in before[0]] == want_subs,
                "subscriptions %s (%s)" % (want_subs, subs))
        for name, attr in before[2].items():
            r.check(special.get(name) == attr, "%s is %s (%s)" % (name, attr, special.get(name)))

        # new mail gets Postern's own UIDL; reindex keeps the imported ones
        d.cli("deliver", USER, input=b"Subject: after the move\n\nhello\n")
        d.cli("reindex", USER)
        pop = poplib.POP3_SSL("127.0.0.1", d.port("pop3s"), context=tls_context())
        pop.user(USER)
        pop.pass_(PASSWORD)
        again = pop3_uidls(pop)
        pop.quit()
        # The same set: a reindex gives new UIDs (new UIDVALIDITY), and the
        # running daemon's own sync (woken by the delivery above) may index
        # some files before the CLI does, in file-name order, so the message
        # numbers can come in another order; POP3 clients track UIDLs.
        fresh = [x for x in again if x not in uidls]
        r.check(sorted(x for x in again if x in uidls) == sorted(uidls),
                "after reindex, the same UIDLs: %s" % again)
        r.check(len(again) == 6 and len(fresh) == 1 and "." in fresh[0],
                "new mail: a Postern UIDL (%s)" % fresh)
        d.stop()

        # Another pop3_uidl_format, and a UIDL dovecot-uidlist recorded
        # itself (its "P" field, written here by hand: Dovecot writes one
        # when a message's UIDL differs from its format) wins over it
        d2 = Daemon(postern, roles=("pop3s", "imaps"),
                    extra_config="pop3_uidl_format = %u-%08v.%f\n")
        try:
            d2.add_user(USER, PASSWORD)
            dest2 = os.path.join(d2.data, "mail", "example.test", "alice")
            os.makedirs(os.path.dirname(dest2), exist_ok=True)
            subprocess.run(["cp", "-a", src, dest2], check=True)
            uidlist = os.path.join(dest2, "dovecot-uidlist")
            with open(uidlist) as f:
                lines = f.read().split("\n")
            uv = int(lines[0].split(" V", 1)[1].split()[0])
            bases = {}
            for i, l in enumerate(lines[1:], 1):
                if l:
                    uid, rest = l.split(" ", 1)
                    bases[int(uid)] = rest.split(":", 1)[1]
                    if uid == "2":
                        lines[i] = "2 Pkept-from-before " + rest
            with open(uidlist, "w") as f:
                f.write("\n".join(lines))
            # ... and a move that skipped the doveadm export
            os.unlink(os.path.join(dest2, "dovecot-modseq"))
            d2.start()
            imap = imaplib.IMAP4_SSL("127.0.0.1", d2.port("imaps"), ssl_context=tls_context())
            imap.login(USER, PASSWORD)
            imap.enable("QRESYNC")
            uv, modseq, _ = clients["INBOX"]
            got = resync(imap, "INBOX", uv, modseq, KNOWN["INBOX"])
            imap.logout()
            r.check(got[0] == [3] and sorted(got[1]) == [1, 2, 4, 5, 6] and
                    sorted(got[2]) == [1, 2, 4, 5, 6],
                    "without Dovecot's mod-sequences a client at %d gets everything, "
                    "never less: %s" % (modseq, got))
            pop = poplib.POP3_SSL("127.0.0.1", d2.port("pop3s"), context=tls_context())
            pop.user(USER)
            pop.pass_(PASSWORD)
            got = pop3_uidls(pop)
            pop.quit()
            want = ["%d-%08d.%s" % (u, uv, bases[u]) if u != 2 else "kept-from-before"
                    for u in (1, 2, 4, 5, 6)]
            r.check(got == want, "pop3_uidl_format = %%u-%%08v.%%f and a P field: %s (%s)"
                    % (want, got))
        finally:
            d2.stop()
            shutil.rmtree(d2.dir, ignore_errors=True)
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(d.dir, ignore_errors=True)
    r.finish()


if __name__ == "__main__":
    main()
