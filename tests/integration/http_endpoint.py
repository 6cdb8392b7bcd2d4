"""The HTTP endpoint (listener role http), every answer fetched with curl:
Thunderbird autoconfig (checked field by field against what Thunderbird
reads), Autodiscover POX, the Apple .mobileconfig behind Basic auth (parsed
with plistlib; 401s, the throttle, TLS required), the MTA-STS policy,
/metrics in the Prometheus text format (trusted_networks only, counters
that move), bounded requests, unknown paths and methods."""
import os
import plistlib
import re
import shutil
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

from postern_test import Daemon, LineClient, Results, free_port, skip, tls_context, wait_port
from pop3_util import allow_plaintext
from smtp_util import PASSWORD, USER, make_msg, send_raw, wait_count

POSTERN = os.path.abspath(sys.argv[1])
r = Results()

if shutil.which("curl") is None:
    skip("curl is not installed")
if "http" not in subprocess.run([POSTERN, "version"], capture_output=True,
                                text=True).stdout:
    skip("this build has no protocols/http")

HTTP_PORT = free_port()
HTTPS_PORT = free_port()
EXTRA = """
autoconfig_hostname = imap.example.test
mta_sts_mode = enforce
mta_sts_max_age = 1d
mta_sts_mx = mail.example.test, *.backup.example.test
trusted_networks = 127.0.0.1/32
listener web {
  role = http
  address = 127.0.0.1
  port = %d
}
listener webs {
  role = http
  address = 127.0.0.1
  port = %d
  tls = implicit
}
""" % (HTTP_PORT, HTTPS_PORT)


def curl(url, *extra, source=None):
    """(status, headers text, body bytes) of one curl request."""
    args = ["curl", "-sS", "-k", "--max-time", "30", "-D", "-", "-o", "-"]
    if source:
        args += ["--interface", source]
    p = subprocess.run(args + list(extra) + [url], capture_output=True, timeout=60)
    out = p.stdout
    if p.returncode != 0 or b"\r\n\r\n" not in out:
        return None, p.stderr.decode(errors="replace"), b""
    head, body = out.split(b"\r\n\r\n", 1)
    status = int(head.split(b" ", 2)[1])
    return status, head.decode(errors="replace"), body


def http(path):
    return "http://127.0.0.1:%d%s" % (HTTP_PORT, path)


def https(path):
    return "https://127.0.0.1:%d%s" % (HTTPS_PORT, path)


def header(head, name):
    m = re.search(r"^%s:\s*(.*?)\s*$" % re.escape(name), head, re.M | re.I)
    return m.group(1) if m else None


def servers(provider, tag):
    out = []
    for s in provider.findall(tag):
        out.append((s.get("type"), s.findtext("hostname"), int(s.findtext("port")),
                    s.findtext("socketType"), s.findtext("username"),
                    s.findtext("authentication")))
    return out


def test_autoconfig(d):
    status, head, body = curl(http("/.well-known/autoconfig/mail/config-v1.1.xml"))
    r.check(status == 200 and header(head, "Content-Type").startswith("application/xml"),
            "autoconfig: 200 application/xml (%s)" % status)
    root = ET.fromstring(body)
    r.check(root.tag == "clientConfig" and root.get("version") == "1.1",
            "autoconfig: clientConfig version 1.1")
    prov = root.find("emailProvider")
    r.check(prov is not None and prov.get("id") == "example.test" and
            [e.text for e in prov.findall("domain")] == ["example.test"],
            "autoconfig: emailProvider id and domain example.test")
    want_in = [("imap", "imap.example.test", d.port("imaps"), "SSL"),
               ("pop3", "imap.example.test", d.port("pop3s"), "SSL"),
               ("imap", "imap.example.test", d.port("imap"), "STARTTLS")]
    got_in = servers(prov, "incomingServer")
    r.check([g[:4] for g in got_in] == want_in,
            "autoconfig: incoming servers, implicit TLS first: %s" % got_in)
    want_out = [("smtp", "imap.example.test", d.port("submissions"), "SSL"),
                ("smtp", "imap.example.test", d.port("submission"), "STARTTLS")]
    got_out = servers(prov, "outgoingServer")
    r.check([g[:4] for g in got_out] == want_out,
            "autoconfig: outgoing servers submissions then submission (no port 25): %s"
            % got_out)
    r.check(all(g[4] == "%EMAILADDRESS%" and g[5] == "password-cleartext"
                for g in got_in + got_out),
            "autoconfig: username %EMAILADDRESS%, authentication password-cleartext")

    # Thunderbird's ISP lookup form; the answer never depends on the user.
    s1, _, b1 = curl(http("/mail/config-v1.1.xml?emailaddress=%s" % USER))
    s2, _, b2 = curl(http("/mail/config-v1.1.xml?emailaddress=nobody%40example.test"))
    r.check(s1 == 200 and b1 == body and s2 == 200 and b2 == body,
            "autoconfig: same bytes for an existing user, an unknown one and none")
    s3, _, _ = curl(http("/mail/config-v1.1.xml?emailaddress=a@elsewhere.test"))
    r.check(s3 == 404, "autoconfig: another domain is 404 (%s)" % s3)
    s4, head4, b4 = curl(https("/mail/config-v1.1.xml?emailaddress=%s" % USER))
    r.check(s4 == 200 and b4 == body, "autoconfig: the same over TLS")
    # HEAD, as bytes on the wire: the status and headers, no body.
    c = LineClient(HTTP_PORT)
    c.send(b"HEAD /mail/config-v1.1.xml HTTP/1.0\r\nHost: x\r\n\r\n")
    r.check(c.closed(), "autoconfig: HEAD over HTTP/1.0 ends with the connection")
    c.close()
    head5, _, b5 = c.buf.partition(b"\r\n\r\n")
    r.check(head5.startswith(b"HTTP/1.0 200") or head5.startswith(b"HTTP/1.1 200"),
            "autoconfig: HEAD is 200: %r" % head5[:40])
    r.check(b5 == b"", "autoconfig: HEAD has no body (%d bytes)" % len(b5))


AUTODISCOVER_REQ = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
<Request><EMailAddress>%s</EMailAddress>
<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
</Request></Autodiscover>"""
NS = {"a": "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006",
      "o": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}


def test_autodiscover(d):
    status, head, body = curl(http("/Autodiscover/Autodiscover.xml"), "-H",
                              "Content-Type: text/xml", "--data-binary",
                              AUTODISCOVER_REQ % USER)
    r.check(status == 200, "autodiscover: POST is 200 (%s)" % status)
    root = ET.fromstring(body)
    acct = root.find("o:Response/o:Account", NS)
    r.check(acct is not None and acct.findtext("o:AccountType", namespaces=NS) == "email"
            and acct.findtext("o:Action", namespaces=NS) == "settings",
            "autodiscover: Response/Account email settings")
    protos = [(p.findtext("o:Type", namespaces=NS), p.findtext("o:Server", namespaces=NS),
               int(p.findtext("o:Port", namespaces=NS)), p.findtext("o:SSL", namespaces=NS),
               p.findtext("o:Encryption", namespaces=NS), p.findtext("o:LoginName", namespaces=NS))
              for p in acct.findall("o:Protocol", NS)]
    r.check(("IMAP", "imap.example.test", d.port("imaps"), "on", None, USER) in protos and
            ("SMTP", "imap.example.test", d.port("submission"), "off", "TLS", USER) in protos,
            "autodiscover: IMAP 993-style SSL and SMTP STARTTLS with the login name: %s"
            % protos)
    s2, _, b2 = curl(http("/autodiscover/autodiscover.xml"), "--data-binary",
                     AUTODISCOVER_REQ % "nobody@example.test")
    r.check(s2 == 200 and b2 == body.replace(USER.encode(), b"nobody@example.test"),
            "autodiscover: an unknown user gets the same answer")
    s3, _, b3 = curl(http("/autodiscover/autodiscover.xml"), "--data-binary",
                     AUTODISCOVER_REQ % "<x>&amp;")
    r.check(s3 == 200 and b"LoginName" not in b3, "autodiscover: a bad address is ignored")


def test_mobileconfig(d):
    s, _, b = curl(http("/mail.mobileconfig"), "-u", "%s:%s" % (USER, PASSWORD))
    r.check(s == 403, "mobileconfig: plain HTTP without the loopback allowance is 403 (%s)" % s)
    s, head, _ = curl(https("/mail.mobileconfig"))
    r.check(s == 401 and header(head, "WWW-Authenticate").startswith("Basic realm="),
            "mobileconfig: no credentials, 401 with a Basic challenge (%s)" % s)
    s_bad, _, b_bad = curl(https("/mail.mobileconfig"), "-u", "%s:wrong" % USER)
    s_none, _, b_none = curl(https("/mail.mobileconfig"), "-u", "nobody@example.test:wrong")
    r.check(s_bad == 401 and s_none == 401 and b_bad == b_none,
            "mobileconfig: a wrong password and an unknown user get the same 401")
    s, _, _ = curl(https("/mail.mobileconfig"), "-H", "Authorization: Basic !!!")
    r.check(s == 401, "mobileconfig: malformed Basic credentials are 401 (%s)" % s)
    r.check("auth failed: proto=http rip=127.0.0.1 user=%s" % USER in d.log(),
            "mobileconfig: the failure is logged for fail2ban")
    s, head, body = curl(https("/mail.mobileconfig"), "-u", "%s:%s" % (USER, PASSWORD))
    r.check(s == 200 and header(head, "Content-Type") == "application/x-apple-aspen-config",
            "mobileconfig: 200 application/x-apple-aspen-config (%s)" % s)
    pl = plistlib.loads(body)
    acct = pl["PayloadContent"][0]
    r.check(pl["PayloadType"] == "Configuration" and pl["PayloadVersion"] == 1 and
            acct["PayloadType"] == "com.apple.mail.managed",
            "mobileconfig: a Configuration profile with a com.apple.mail.managed payload")
    r.check(acct["EmailAccountType"] == "EmailTypeIMAP" and acct["EmailAddress"] == USER and
            acct["IncomingMailServerHostName"] == "imap.example.test" and
            acct["IncomingMailServerPortNumber"] == d.port("imaps") and
            acct["IncomingMailServerUseSSL"] is True and
            acct["IncomingMailServerUsername"] == USER and
            acct["OutgoingMailServerPortNumber"] == d.port("submissions") and
            acct["OutgoingMailServerUseSSL"] is True and
            acct["OutgoingMailServerAuthentication"] == "EmailAuthPassword",
            "mobileconfig: IMAPS and submissions of this server, the user's address")
    r.check(PASSWORD.encode() not in body, "mobileconfig: the password is not in it")
    s2, _, body2 = curl(https("/mail.mobileconfig"), "-u", "%s:%s" % (USER.upper(), PASSWORD))
    r.check(s2 == 200 and body2 == body,
            "mobileconfig: the same profile (same UUIDs) again, any case of the address")


def test_throttle(d):
    # From 127.0.0.3, so that other checks are not slowed down.
    for _ in range(5):
        curl(https("/mail.mobileconfig"), "-u", "%s:bad" % USER, source="127.0.0.3")
    t0 = time.time()
    s, _, _ = curl(https("/mail.mobileconfig"), "-u", "%s:bad" % USER, source="127.0.0.3")
    took = time.time() - t0
    r.check(s == 401 and took >= 0.9,
            "throttle: the 6th failure is answered after the 1 s delay (%.2f s)" % took)
    # A client that leaves while its check waits on the delay or a worker.
    import base64
    ctx = tls_context()
    cred = base64.b64encode(("%s:bad" % USER).encode()).decode()
    for _ in range(3):
        sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", HTTPS_PORT),
                                                        source_address=("127.0.0.3", 0)))
        sock.sendall(("GET /mail.mobileconfig HTTP/1.1\r\nHost: x\r\n"
                      "Authorization: Basic %s\r\n\r\n" % cred).encode())
        sock.close()
    time.sleep(3)
    s, _, _ = curl(http("/.well-known/mta-sts.txt"))
    r.check(s == 200 and d.proc.poll() is None,
            "throttle: clients gone before their answer leave the daemon serving")


def test_mta_sts(d):
    s, head, body = curl(http("/.well-known/mta-sts.txt"))
    r.check(s == 200 and header(head, "Content-Type") == "text/plain",
            "mta-sts: 200 text/plain (%s)" % s)
    r.check(body == b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\n"
            b"mx: *.backup.example.test\r\nmax_age: 86400\r\n",
            "mta-sts: the policy of RFC 8461 §3.2: %r" % body)


METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*"'
                         r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*)\})? (-?[0-9.e+]+|\+Inf|NaN)$')


def metrics(source=None):
    s, head, body = curl(http("/metrics"), source=source)
    values, bad, types = {}, [], {}
    for line in body.decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        if line.startswith("# HELP ") or not line:
            continue
        m = METRIC_LINE.match(line)
        if not m:
            bad.append(line)
            continue
        values[m.group(1) + (m.group(2) or "")] = float(m.group(5))
    return s, head, values, bad, types


def test_metrics(d):
    s, head, before, bad, types = metrics()
    r.check(s == 200 and header(head, "Content-Type").startswith("text/plain; version=0.0.4"),
            "metrics: 200 text/plain version=0.0.4 (%s)" % s)
    r.check(not bad and before, "metrics: every line parses as the text format: %s" % bad[:3])
    r.check(types.get("postern_connections_total") == "counter" and
            types.get("postern_queue_messages") == "gauge" and
            types.get("postern_delivery_latency_seconds") == "histogram" and
            types.get("postern_index_commit_batch_size") == "histogram",
            "metrics: counter, gauge and histogram types declared")
    for name in ('postern_logins_total{result="ok"}', 'postern_logins_total{result="failed"}',
                 "postern_messages_received_total", 'postern_deliveries_total{result="deferred"}',
                 'postern_delivery_latency_seconds_bucket{le="+Inf"}',
                 "postern_index_commit_batch_size_count"):
        r.check(name in before, "metrics: %s present" % name)
    # Move the counters: an SMTP delivery, an IMAP login and a failed one.
    replies = send_raw(d.port("smtp"), "x@remote.test", [USER],
                       make_msg("metrics").replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
    r.check(replies[-2][0] == 250, "metrics: a message delivered on port 25")
    wait_count(d, USER, 1)
    import imaplib
    im = imaplib.IMAP4_SSL("127.0.0.1", d.port("imaps"), ssl_context=tls_context())
    try:
        im.login(USER, "wrong")
    except imaplib.IMAP4.error:
        pass
    im.login(USER, PASSWORD)
    im.logout()
    _, _, after, _, _ = metrics()

    def grew(name, by=1):
        return after.get(name, 0) - before.get(name, 0) >= by

    r.check(grew('postern_connections_total{protocol="smtp",role="smtp"}') and
            grew('postern_connections_total{protocol="imap",role="imaps"}') and
            grew('postern_connections_total{protocol="http",role="http"}'),
            "metrics: connections counted by protocol and role")
    r.check(grew('postern_logins_total{result="ok"}') and
            grew('postern_logins_total{result="failed"}'),
            "metrics: logins ok and failed counted")
    r.check(grew("postern_messages_received_total"), "metrics: message received counted")
    r.check(grew("postern_index_commit_batch_size_count") and
            after['postern_index_commit_batch_size_bucket{le="+Inf"}'] ==
            after["postern_index_commit_batch_size_count"],
            "metrics: index commits observed; +Inf bucket equals the count")
    s, _, _, _, _ = metrics(source="127.0.0.2")
    r.check(s == 403, "metrics: 403 outside trusted_networks (%s)" % s)
    s, _, _ = curl(http("/metrics"), "-H", "X-Forwarded-For: 192.0.2.7")
    r.check(s == 403, "metrics: 403 for a request a reverse proxy forwarded (%s)" % s)


def test_bad_requests(d):
    s, _, _ = curl(http("/nothing-here"))
    r.check(s == 404, "unknown path: 404 (%s)" % s)
    s, _, _ = curl(http("/metrics"), "-X", "PUT")
    r.check(s in (405, 501), "PUT: refused with 405/501 (%s)" % s)
    s, _, _ = curl(http("/.well-known/mta-sts.txt"), "--data-binary", "x")
    r.check(s == 405, "POST where only GET is allowed: 405 (%s)" % s)
    s, _, _ = curl(http("/metrics"), "-H", "X-Big: " + "a" * 9000)
    r.check(s in (400, 413, 431, None), "headers over 8 KiB refused (%s)" % s)
    s, _, _ = curl(http("/autodiscover/autodiscover.xml"), "--data-binary", "x" * 20000)
    r.check(s in (400, 413, None), "a body over 16 KiB refused (%s)" % s)
    # The daemon still answers afterwards.
    s, _, _ = curl(http("/.well-known/mta-sts.txt"))
    r.check(s == 200, "still answering after bad requests")


def test_dns(d):
    """`postern dns` prints the records that lead clients and senders here."""
    out = d.cli("dns", "example.test").stdout.decode()
    policy = curl(http("/.well-known/mta-sts.txt"))[2]
    import hashlib
    want_id = hashlib.sha256(policy).hexdigest()[:20]
    for line in ("autoconfig.example.test.\tIN CNAME\timap.example.test.",
                 "autodiscover.example.test.\tIN CNAME\timap.example.test.",
                 "_autodiscover._tcp.example.test.\tIN SRV\t0 0 443 imap.example.test.",
                 "mta-sts.example.test.\tIN CNAME\timap.example.test.",
                 '_mta-sts.example.test.\tIN TXT\t"v=STSv1; id=%s"' % want_id):
        r.check(line in out.splitlines(), "dns: %s" % line)


with Daemon(POSTERN, roles=("smtp", "submission", "submissions", "imap", "imaps", "pop3s"),
            extra_config=EXTRA) as d:
    d.add_user(USER, PASSWORD)
    r.check(wait_port(HTTP_PORT) and wait_port(HTTPS_PORT), "http listeners accept")
    r.run("autoconfig", lambda: test_autoconfig(d))
    r.run("autodiscover", lambda: test_autodiscover(d))
    r.run("mobileconfig", lambda: test_mobileconfig(d))
    r.run("throttle", lambda: test_throttle(d))
    r.run("mta-sts", lambda: test_mta_sts(d))
    r.run("metrics", lambda: test_metrics(d))
    r.run("bad requests", lambda: test_bad_requests(d))
    r.run("dns", lambda: test_dns(d))
    # Stop while a throttled check waits on its timer: the daemon still
    # exits 0, and ASan finds nothing left behind (Daemon checks the code).
    held = tls_context().wrap_socket(socket.create_connection(
        ("127.0.0.1", HTTPS_PORT), source_address=("127.0.0.3", 0)))
    held.sendall(b"GET /mail.mobileconfig HTTP/1.1\r\nHost: x\r\n"
                 b"Authorization: Basic YWxpY2VAZXhhbXBsZS50ZXN0OmJhZA==\r\n\r\n")
    time.sleep(0.5)

# Configuration: role http takes no STARTTLS; the keys check their values.
for extra, what in (("listener w {\n role = http\n tls = starttls\n}\n", "tls = starttls"),
                    ("mta_sts_mode = strict\n", "mta_sts_mode = strict"),
                    ("mta_sts_max_age = 400d\n", "mta_sts_max_age over a year"),
                    ("mta_sts_mx = bad_name!\n", "mta_sts_mx with a bad name")):
    bad = Daemon(POSTERN, roles=(), extra_config=extra)
    res = bad.cli("check", check=False)
    r.check(res.returncode == 78, "check: %s exits 78 (%d)" % (what, res.returncode))
    shutil.rmtree(bad.dir, ignore_errors=True)

# `postern dns` without MTA-STS, and without an http listener.
for extra, want, what in (
        ("listener w {\n role = http\n port = %d\n}\n" % free_port(),
         lambda out: "autoconfig.example.test." in out and "\n_mta-sts." not in out and
         "mta_sts_mode is none" in out, "mta_sts_mode none: no MTA-STS records"),
        ("", lambda out: "autoconfig" not in out and "_imaps._tcp" in out,
         "no http listener: no autoconfig records")):
    nd = Daemon(POSTERN, roles=("imaps",), extra_config=extra)
    res = nd.cli("dns", "example.test", check=False)
    r.check(res.returncode == 0 and want(res.stdout.decode()), "dns: " + what)
    shutil.rmtree(nd.dir, ignore_errors=True)

# Loopback with allow_plaintext_auth_on_loopback: the profile over plain HTTP.
d = Daemon(POSTERN, roles=("imaps", "submissions"), extra_config=EXTRA.replace(
    "trusted_networks = 127.0.0.1/32\n", ""))
allow_plaintext(d)
with d:
    d.add_user(USER, PASSWORD)
    wait_port(HTTP_PORT)
    s, _, body = curl(http("/mail.mobileconfig"), "-u", "%s:%s" % (USER, PASSWORD))
    r.check(s == 200 and plistlib.loads(body)["PayloadContent"][0]["EmailAddress"] == USER,
            "mobileconfig: plain HTTP on loopback when allow_plaintext_auth_on_loopback = yes")
    held.close()
    s, _, body = curl(http("/mail/config-v1.1.xml"))
    root = ET.fromstring(body)
    r.check([x.get("type") for x in root.iter("incomingServer")] == ["imap"] and
            [x.get("type") for x in root.iter("outgoingServer")] == ["smtp"],
            "autoconfig: only the listeners that exist are advertised")

r.finish()
