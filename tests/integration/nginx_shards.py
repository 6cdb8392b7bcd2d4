"""More than one machine: nginx's mail proxy (Debian's nginx with
libnginx-mod-mail) in front of two Postern instances, each with its own
data_dir, on loopback.  Instance A serves the HTTP endpoint whose /auth
answers nginx's auth_http requests from a shards file: alice lives on A,
bob on B (both instances know both users, as the README's "More than one
machine" says).  IMAP, POP3 and SMTP submission through nginx reach each
user's own instance: each sees only the message delivered to their
instance, and mail each sends to themselves lands there.  A wrong password
is refused through nginx, and /auth answers a direct request as the
protocol says.  Skipped (77) when nginx or its mail module is missing.
Run by ctest with the postern binary as argv[1]."""
import imaplib
import os
import poplib
import shutil
import smtplib
import subprocess
import sys
import time
import urllib.request

from postern_test import Daemon, Results, free_port, skip, wait_port

NGINX = "/usr/sbin/nginx"
MAIL_MODULE = "/usr/lib/nginx/modules/ngx_mail_module.so"
ALICE, ALICE_PW = "alice@example.test", "alice-shard-pass"
BOB, BOB_PW = "bob@example.test", "bob-shard-pass"

NGINX_CONF = """\
load_module {module};
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log info;
daemon off;
master_process off;
events {{ worker_connections 64; }}
mail {{
    auth_http 127.0.0.1:{http}/auth;
    proxy_pass_error_message on;
    xclient off;
    server {{ listen 127.0.0.1:{imap}; protocol imap; imap_auth login plain; }}
    server {{ listen 127.0.0.1:{pop3}; protocol pop3; pop3_auth plain; }}
    server {{ listen 127.0.0.1:{smtp}; protocol smtp; smtp_auth login plain;
             proxy_smtp_auth on; }}
}}
"""


def instance(postern, http_port=None, shards=None):
    extra = ""
    if http_port:
        extra = ("listener web {\n  role = http\n  address = 127.0.0.1\n  port = %d\n"
                 "  tls = none\n}\nshards_file = %s\n" % (http_port, shards))
    d = Daemon(postern, roles=("imap", "pop3", "submission"), tls=False, extra_config=extra)
    with open(d.conf) as f:
        conf = f.read()
    # nginx logs in to the backends in plain text over loopback
    with open(d.conf, "w") as f:
        f.write(conf.replace("allow_plaintext_auth_on_loopback = no",
                             "allow_plaintext_auth_on_loopback = yes"))
    d.add_user(ALICE, ALICE_PW)
    d.add_user(BOB, BOB_PW)
    return d


def subjects_imap(port, user, pw, r):
    c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    c.login(user, pw)
    typ, data = c.select("INBOX")
    n = int(data[0])
    subjects = []
    if n:
        typ, data = c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = sorted(x[1].decode().strip() for x in data if isinstance(x, tuple))
    c.logout()
    return subjects


def subjects_pop3(port, user, pw):
    c = poplib.POP3("127.0.0.1", port, timeout=30)
    c.user(user)
    c.pass_(pw)
    out = []
    for i in range(1, len(c.list()[1]) + 1):
        lines = c.retr(i)[1]
        out += [l.decode() for l in lines if l.startswith(b"Subject:")]
    c.quit()
    return sorted(out)


def main():
    postern = sys.argv[1]
    if not os.path.exists(NGINX) or not os.path.exists(MAIL_MODULE):
        skip("nginx with its mail module is not installed "
             "(apt-get install nginx libnginx-mod-mail)")
    r = Results()
    http_port = free_port()
    b = instance(postern)
    shards = os.path.join(b.dir, "shards")
    with open(shards, "w") as f:
        f.write("# who lives where\n"
                "shard a 127.0.0.1 imap=%%d pop3=%%d smtp=%%d\n"
                "shard b 127.0.0.1 imap=%d pop3=%d smtp=%d\n"
                "%s b\n* a\n" % (b.port("imap"), b.port("pop3"), b.port("submission"), BOB))
    a = instance(postern, http_port, shards)
    with open(shards) as f:
        text = f.read() % (a.port("imap"), a.port("pop3"), a.port("submission"))
    with open(shards, "w") as f:
        f.write(text)
    ndir = os.path.join(b.dir, "nginx")
    os.makedirs(ndir)
    ports = {"imap": free_port(), "pop3": free_port(), "smtp": free_port()}
    with open(os.path.join(ndir, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(module=MAIL_MODULE, dir=ndir, http=http_port, **ports))
    nginx = None
    try:
        a.cli("deliver", ALICE, input=b"Subject: alice on a\n\nhello\n")
        b.cli("deliver", BOB, input=b"Subject: bob on b\n\nhello\n")
        a.start()
        b.start()
        nginx = subprocess.Popen([NGINX, "-p", ndir, "-e", os.path.join(ndir, "early.log"),
                                  "-c", os.path.join(ndir, "nginx.conf")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not all(wait_port(p, proc=nginx) for p in ports.values()):
            raise AssertionError("nginx did not start: %s" % (
                nginx.stderr.read().decode(errors="replace") if nginx.poll() is not None
                else ""))

        # /auth as nginx asks it
        req = urllib.request.Request("http://127.0.0.1:%d/auth" % http_port, headers={
            "Auth-Method": "plain", "Auth-User": "bob%40example.test",
            "Auth-Pass": BOB_PW.replace("-", "%2D"), "Auth-Protocol": "pop3",
            "Auth-Login-Attempt": "1", "Client-IP": "192.0.2.7"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            h = resp.headers
        r.check((h["Auth-Status"], h["Auth-Server"], h["Auth-Port"]) ==
                ("OK", "127.0.0.1", str(b.port("pop3"))),
                "/auth: bob's POP3 is on b: %s %s %s" % (h["Auth-Status"], h["Auth-Server"],
                                                          h["Auth-Port"]))
        req = urllib.request.Request("http://127.0.0.1:%d/auth" % http_port, headers={
            "Auth-Method": "plain", "Auth-User": ALICE, "Auth-Pass": "wrong",
            "Auth-Protocol": "smtp", "Auth-Login-Attempt": "1", "Client-IP": "192.0.2.8"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            h = resp.headers
        r.check((h["Auth-Status"], h["Auth-Wait"], h["Auth-Error-Code"], h["Auth-Server"]) ==
                ("Invalid login or password", "3", "535 5.7.8", None),
                "/auth: a wrong password: %s" % dict(h))

        # IMAP and POP3 through nginx reach each user's instance
        for user, pw, want in ((ALICE, ALICE_PW, "alice on a"), (BOB, BOB_PW, "bob on b")):
            got = subjects_imap(ports["imap"], user, pw, r)
            r.check(got == ["Subject: " + want], "IMAP via nginx, %s: %s" % (user, got))
            got = subjects_pop3(ports["pop3"], user, pw)
            r.check(got == ["Subject: " + want], "POP3 via nginx, %s: %s" % (user, got))
        try:
            imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=30).login(ALICE, "wrong")
            r.check(False, "IMAP via nginx: a wrong password was accepted")
        except imaplib.IMAP4.error as e:
            r.check(True, "IMAP via nginx: a wrong password is refused (%s)" % e)

        # SMTP submission through nginx: each user's mail to themselves
        for user, pw in ((ALICE, ALICE_PW), (BOB, BOB_PW)):
            s = smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=30)
            s.ehlo("client.example.org")
            s.login(user, pw)
            s.sendmail(user, [user], ("From: %s\r\nTo: %s\r\nSubject: sent by %s\r\n\r\nhi\r\n"
                                      % (user, user, user)).encode())
            s.quit()
        time.sleep(0.5)
        for d, user, pw, other in ((a, ALICE, ALICE_PW, b), (b, BOB, BOB_PW, a)):
            got = subjects_imap(d.port("imap"), user, pw, r)
            r.check("Subject: sent by %s" % user in got,
                    "submission via nginx: %s's mail to self is on their instance: %s"
                    % (user, got))
            got = subjects_imap(other.port("imap"), user, pw, r)
            r.check(not any("sent by" in x for x in got),
                    "... and not on the other instance: %s" % got)
        log = a.log()
        r.check("http nginx: user=bob@example.test proto=imap shard=b" in log and
                "auth failed: proto=imap rip=127.0.0.1 user=alice@example.test" in log,
                "A's log names the shard chosen and the failure for fail2ban")
    finally:
        if nginx is not None and nginx.poll() is None:
            nginx.terminate()
            try:
                nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait()
        a.stop()
        b.stop()
        shutil.rmtree(a.dir, ignore_errors=True)
        shutil.rmtree(b.dir, ignore_errors=True)
    r.finish()


if __name__ == "__main__":
    main()
