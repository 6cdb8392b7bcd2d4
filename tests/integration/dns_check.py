"""`postern dns --check DOMAIN` against a live DNS server: dnsmasq on a
loopback port (dns_resolver in the configuration) serves first exactly the
records `postern dns DOMAIN` printed (parsed from its zone lines), and the
check says every one is right and exits 0; then a zone with one mistake of
each kind (MX elsewhere, two SPF records, another DKIM key, no DMARC, an
SRV record with the wrong port and one for a service not offered, a PTR
naming another host, a stale MTA-STS id, autoconfig without an address),
and the check names each in words and exits 1.  Run by ctest with the
postern binary as argv[1]."""
import re
import shutil
import sys

from dns_server import start_dnsmasq, stop_dnsmasq, txt_record
from postern_test import Daemon, Results, free_port

DOMAIN = "example.test"
HOST = "mail.example.test"
ADDR = "127.0.0.10"


def zone_options(zone):
    """dnsmasq options for the MX, TXT, SRV and CNAME lines of `postern dns`."""
    # --local: NXDOMAIN and NODATA for what is not listed, as a real
    # authoritative server answers (dnsmasq would refuse otherwise)
    opts = ["--host-record=%s,%s" % (HOST, ADDR), "--local=/%s/" % DOMAIN]
    for line in zone.splitlines():
        if not line or line.startswith(";"):
            continue
        name, rtype, data = line.split("\t", 2)
        name = name.rstrip(".")
        rtype = rtype.split()[-1]
        if rtype == "MX":
            pref, host = data.split()
            opts.append("--mx-host=%s,%s,%s" % (name, host.rstrip("."), pref))
        elif rtype == "TXT":
            opts.append(txt_record(name, "".join(re.findall(r'"([^"]*)"', data))))
        elif rtype == "SRV":
            prio, weight, port, target = data.split()
            if target == ".":
                opts.append("--srv-host=%s" % name)
            else:
                opts.append("--srv-host=%s,%s,%s,%s,%s" % (name, target.rstrip("."), port,
                                                           prio, weight))
        elif rtype == "CNAME":
            opts.append("--cname=%s,%s" % (name, data.rstrip(".")))
    return opts


def check(d):
    res = d.cli("dns", "--check", DOMAIN, check=False)
    out = res.stdout.decode(errors="replace")
    print(out, res.stderr.decode(errors="replace")[-3000:])
    return res.returncode, out


def main():
    postern = sys.argv[1]
    r = Results()
    port = free_port()
    d = Daemon(postern, roles=("smtp", "submissions", "imaps"),
               extra_config="dns_resolver = 127.0.0.1:%d\nmta_sts_mode = testing\n"
               "listener web {\n  role = http\n  address = 127.0.0.1\n  port = %d\n"
               "  tls = none\n}\n" % (port, free_port()))
    dns = None
    try:
        d.cli("dkim", "generate", DOMAIN)
        zone = d.cli("dns", DOMAIN).stdout.decode()
        good = zone_options(zone)
        dns = start_dnsmasq(d.dir, port, good + ["--ptr-record=10.0.0.127.in-addr.arpa,%s"
                                                  % HOST])
        rc, out = check(d)
        r.check(rc == 0, "the records `postern dns` printed pass: exit %d" % rc)
        for what in ("MX", "PTR", "SPF", "DKIM", "DMARC", "SRV", "autoconfig", "MTA-STS"):
            r.check(re.search(r"^ok +%s: " % what, out, re.M) is not None,
                    "%s checked and found right" % what)
        r.check("FAIL" not in out and "0 problems" in out, "no problem reported")
        stop_dnsmasq(dns)

        # one mistake of each kind
        imaps = "_imaps._tcp.%s" % DOMAIN
        pop3s = "_pop3s._tcp.%s" % DOMAIN
        bad = [o for o in good if not o.startswith(("--mx-host=", "--txt-record=_dmarc",
                                                     "--srv-host=" + imaps,
                                                     "--srv-host=" + pop3s,
                                                     "--cname=autoconfig",
                                                     "--txt-record=_mta-sts",
                                                     "--txt-record=postern-rsa"))]
        bad += ["--mx-host=%s,mx.elsewhere.test,10" % DOMAIN,
                txt_record(DOMAIN, "v=spf1 a -all"),
                txt_record("postern-rsa._domainkey." + DOMAIN, "v=DKIM1; k=rsa; p=AAAAold"),
                "--srv-host=%s,%s,1993,0,1" % (imaps, HOST),
                "--srv-host=%s,%s,995,20,1" % (pop3s, HOST),
                txt_record("_mta-sts." + DOMAIN, "v=STSv1; id=0000stale"),
                "--ptr-record=10.0.0.127.in-addr.arpa,vps-123.provider.test"]
        dns = start_dnsmasq(d.dir, port, bad)
        rc, out = check(d)
        r.check(rc == 1, "a wrong zone: exit 1 (%d)" % rc)
        want = [
            r"FAIL +MX: example\.test's mail goes to mx\.elsewhere\.test, not to this server",
            r"FAIL +PTR: 127\.0\.0\.10 is named vps-123\.provider\.test, not mail\.example\.test",
            r"FAIL +SPF: example\.test has 2 \"v=spf1\" records",
            r"FAIL +DKIM: postern-rsa\._domainkey\.example\.test publishes another key",
            r"ok +DKIM: postern-ed25519\._domainkey\.example\.test holds this server's key",
            r"FAIL +DMARC: _dmarc\.example\.test has no \"v=DMARC1\" record",
            r"FAIL +SRV: _imaps\._tcp\.example\.test points to mail\.example\.test:1993, but the "
            r"imaps listener is mail\.example\.test:%d" % d.port("imaps"),
            r"FAIL +SRV: _pop3s\._tcp\.example\.test points to mail\.example\.test:995, but this "
            r"server has no pop3s listener",
            r"FAIL +autoconfig: autoconfig\.example\.test has no address",
            r"FAIL +MTA-STS: _mta-sts\.example\.test has id=0000stale, but the policy now served",
            r"^9 problems",
        ]
        for pattern in want:
            r.check(re.search(pattern, out, re.M) is not None, "said: /%s/" % pattern)
        res = d.cli("dns", "--check", "other.test", check=False)
        r.check(res.returncode == 67, "a domain not served here: exit 67 (%d)" % res.returncode)
    finally:
        if dns is not None:
            stop_dnsmasq(dns)
        shutil.rmtree(d.dir, ignore_errors=True)
    r.finish()


if __name__ == "__main__":
    main()
