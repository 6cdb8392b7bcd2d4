"""The pregreet test on port 25, trusted networks and the per-address limit.

Other clients are simulated from other loopback addresses: Linux routes all
of 127.0.0.0/8 to lo, so a socket bound to 127.0.0.2 reaches the daemon on
127.0.0.1 and the daemon sees 127.0.0.2 as the client.

- default configuration: 127.0.0.1 (trusted) is greeted at once, and
  connections_per_ip_max does not apply to it;
- trusted_networks = 127.0.0.1/32: 127.0.0.2 waits the delay once, says
  EHLO, and is greeted at once on its next connection; a client that speaks
  early gets 554 and is still delayed next time; one that waits but never
  says EHLO/HELO is not remembered; the memory survives SIGHUP; the
  per-address limit applies to untrusted addresses;
- smtp_pregreet_delay = 0 greets everyone at once;
- smtp_pregreet_ttl: a remembered client is delayed again once it expires.

Usage: smtp_pregreet.py /path/to/postern
"""
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postern_test import Daemon, Results  # noqa: E402
from smtp_util import Raw  # noqa: E402

DELAY = 1.0
FAST = 0.4   # "at once": well under the delay even on a loaded CI machine
SLOW = 0.85  # "delayed": most of the delay


def timed_greeting(port, source=None):
    """(seconds until the greeting, client) for a new connection."""
    t0 = time.time()
    c = Raw(port, source=source)
    return time.time() - t0, c


def hello_and_quit(c, verb="EHLO"):
    code, _ = c.cmd(verb + " client.test")
    c.cmd("QUIT")
    c.close()
    return code


def speak_early(port, source):
    """Talk before the greeting; returns everything the server sent."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    s.sendall(b"EHLO eager.test\r\n")
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return data


def test_defaults(postern, res):
    with Daemon(postern, roles=("smtp",), extra_config="connections_per_ip_max = 2\n") as d:
        waited, c = timed_greeting(d.port("smtp"))
        res.check(c.greeting[0] == 220 and waited < FAST,
                  "default: 127.0.0.1 is trusted and greeted at once (%.2f s)" % waited)
        res.check(hello_and_quit(c) == 250, "default: the trusted client's EHLO works")
        clients = [Raw(d.port("smtp")) for _ in range(5)]
        res.check(all(c.greeting[0] == 220 for c in clients),
                  "default: connections_per_ip_max = 2 does not refuse 5 trusted connections")
        for c in clients:
            c.close()
        waited, c = timed_greeting(d.port("smtp"), "127.0.0.2")
        res.check(c.greeting[0] == 220 and waited < FAST,
                  "default: all of 127.0.0.0/8 is trusted (127.0.0.2: %.2f s)" % waited)
        c.close()


def test_memory(postern, res):
    extra = ("trusted_networks = 127.0.0.1/32\nsmtp_pregreet_delay = %dms\n"
             "connections_per_ip_max = 2\n" % int(DELAY * 1000))
    with Daemon(postern, roles=("smtp", "submission"), extra_config=extra) as d:
        port = d.port("smtp")
        waited, c = timed_greeting(port, "127.0.0.2")
        res.check(c.greeting[0] == 220 and waited >= SLOW,
                  "untrusted client waits the pregreet delay on its first connection (%.2f s)"
                  % waited)
        res.check(hello_and_quit(c) == 250, "after waiting it says EHLO and is served")
        waited, c = timed_greeting(port, "127.0.0.2")
        res.check(c.greeting[0] == 220 and waited < FAST,
                  "its second connection within the TTL is greeted at once (%.2f s)" % waited)
        hello_and_quit(c, "HELO")

        data = speak_early(port, "127.0.0.3")
        res.check(data.startswith(b"554 5.5.1 ") and b"220" not in data,
                  "a client speaking early gets 554 5.5.1 and is closed (%r)" % data[:60])
        waited, c = timed_greeting(port, "127.0.0.3")
        res.check(c.greeting[0] == 220 and waited >= SLOW,
                  "the early talker is not remembered: delayed again (%.2f s)" % waited)
        c.close()

        waited, c = timed_greeting(port, "127.0.0.4")
        c.cmd("QUIT")
        c.close()
        waited, c = timed_greeting(port, "127.0.0.4")
        res.check(waited >= SLOW, "a client that never said EHLO/HELO is not remembered (%.2f s)"
                  % waited)
        c.close()

        t0 = time.time()
        c = Raw(d.port("submission"), source="127.0.0.5")
        res.check(c.greeting[0] == 220 and time.time() - t0 < FAST,
                  "submission never delays, trusted or not")
        c.close()

        first = Raw(port, source="127.0.0.2")
        second = Raw(port, source="127.0.0.2")
        third = Raw(port, source="127.0.0.2", greet=False)
        line = third.raw_line()
        res.check(line.startswith(b"421 "),
                  "connections_per_ip_max = 2 refuses an untrusted third connection (%r)" % line)
        for c in (first, second, third):
            c.close()
        time.sleep(0.2)  # let the daemon count the closed connections

        d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        waited, c = timed_greeting(port, "127.0.0.2")
        res.check(c.greeting[0] == 220 and waited < FAST,
                  "the remembered client is still greeted at once after SIGHUP (%.2f s)" % waited)
        c.close()
        waited, c = timed_greeting(port, "127.0.0.3")
        res.check(waited >= SLOW, "an unremembered client is still delayed after SIGHUP")
        c.close()
        res.check("pregreet pass rip=127.0.0.2" in d.log(),
                  "the pass is logged with the client address")


def test_ttl(postern, res):
    extra = "trusted_networks = none\nsmtp_pregreet_delay = 500ms\nsmtp_pregreet_ttl = 2s\n"
    with Daemon(postern, roles=("smtp",), extra_config=extra) as d:
        port = d.port("smtp")
        waited, c = timed_greeting(port)
        res.check(waited >= 0.4, "trusted_networks = none: even 127.0.0.1 waits (%.2f s)" % waited)
        hello_and_quit(c)
        waited, c = timed_greeting(port)
        res.check(waited < 0.3, "then it is remembered (%.2f s)" % waited)
        c.close()
        time.sleep(2.2)
        waited, c = timed_greeting(port)
        res.check(waited >= 0.4, "after smtp_pregreet_ttl it waits again (%.2f s)" % waited)
        c.close()


def test_off(postern, res):
    extra = "trusted_networks = 127.0.0.1/32\nsmtp_pregreet_delay = 0\n"
    with Daemon(postern, roles=("smtp",), extra_config=extra) as d:
        for source in ("127.0.0.2", "127.0.0.3"):
            waited, c = timed_greeting(d.port("smtp"), source)
            res.check(c.greeting[0] == 220 and waited < FAST,
                      "smtp_pregreet_delay = 0 greets %s at once (%.2f s)" % (source, waited))
            res.check(hello_and_quit(c) == 250, "and serves it")


def main():
    if len(sys.argv) < 2:
        print("usage: smtp_pregreet.py POSTERN")
        return 2
    res = Results()
    for name, fn in (("defaults", test_defaults), ("memory", test_memory),
                     ("ttl", test_ttl), ("off", test_off)):
        res.run(name, lambda fn=fn: fn(sys.argv[1], res))
    res.finish()


if __name__ == "__main__":
    sys.exit(main())
