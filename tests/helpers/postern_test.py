"""Shared harness for Postern's integration tests.

Starts the real daemon on free loopback ports with its own data directory,
configuration and self-signed certificate, and always stops it (SIGTERM,
then SIGKILL) when the test ends, even on failure.

    with Daemon(postern) as d:
        d.add_user("alice@example.test", "secret")
        port = d.port("pop3")
"""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROLES = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s")
IMPLICIT = {"submissions", "imaps", "pop3s"}
SKIP = 77

_live = []


def _kill_all():
    for proc in _live:
        if proc.poll() is None:
            proc.kill()


atexit.register(_kill_all)


def skip(reason):
    print("SKIPPED: " + reason)
    sys.exit(SKIP)


_PORTS_HANDED_OUT = set()


def free_port():
    """A loopback port free now and not handed out before in this process.

    The kernel may give the same ephemeral port to two bind(0) calls once
    the first socket is closed; a test that asks for several ports before
    starting the daemon would then configure two listeners on one port."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _PORTS_HANDED_OUT:
            _PORTS_HANDED_OUT.add(port)
            return port
    raise AssertionError("no free loopback port not already handed out")


def wait_port(port, timeout=20.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def shared_dir():
    return os.environ.get("POSTERN_SHARED_DIR") or os.path.join(
        os.path.dirname(__file__), "..", "..", "..", "shared")


def tls_context():
    """A client TLS context that accepts the tests' self-signed certificates."""
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def maildir_files(d, address, folder=""):
    """Message files in new/ and cur/ of a user's Maildir folder, sorted."""
    import glob
    local, domain = address.split("@")
    base = os.path.join(d.data, "mail", domain, local)
    if folder:
        base = os.path.join(base, "." + folder)
    return sorted(glob.glob(os.path.join(base, "new", "*")) +
                  glob.glob(os.path.join(base, "cur", "*")))


class LineClient:
    """A CRLF line reader over a plain or TLS socket on 127.0.0.1; the
    protocol tests' raw clients build on it to see exact bytes."""

    def __init__(self, port, tls=False, timeout=20, source=None):
        """source: a local address to connect from (another loopback
        address such as 127.0.0.2 looks like a different client)."""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        if tls:
            self.sock = tls_context().wrap_socket(self.sock)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def raw_line(self):
        """The next line as bytes, without its CRLF."""
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def closed(self, timeout=10):
        """True when the server closes the connection (EOF or reset) within
        timeout seconds; bytes still arriving before that are kept."""
        import ssl
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (socket.timeout, TimeoutError):
            return False
        except (ConnectionResetError, ssl.SSLError, OSError):
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Daemon:
    """A postern serve process with a throw-away configuration."""

    def __init__(self, postern, roles=ROLES, domains=("example.test",),
                 extra_config="", tls=True, keep_dir=False):
        self.postern = os.path.abspath(postern)
        self.dir = tempfile.mkdtemp(prefix="postern-it-")
        self.keep_dir = keep_dir
        self.conf = os.path.join(self.dir, "postern.conf")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "postern.log")
        self.ports = {role: free_port() for role in roles}
        self.proc = None
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        if tls:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", self.key, "-out", self.cert, "-days", "2",
                            "-subj", "/CN=localhost",
                            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lines = [
            "hostname = mail.example.test",
            "data_dir = " + self.data,
            "domains = " + ", ".join(domains),
            "log_level = debug",
            "allow_plaintext_auth_on_loopback = no",
            "shutdown_timeout = 5",
        ]
        if tls:
            lines += ["tls_certificate {", "  cert = " + self.cert,
                      "  key = " + self.key, "}"]
        for role, port in self.ports.items():
            mode = "implicit" if role in IMPLICIT else ("starttls" if tls else "none")
            lines += ["listener %s {" % role, "  role = " + role,
                      "  address = 127.0.0.1", "  port = %d" % port,
                      "  tls = " + mode, "}"]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n" + extra_config)

    def port(self, role):
        return self.ports[role]

    def cli(self, *args, input=None, check=True):
        """Run `postern -c CONF ARGS...`; returns CompletedProcess."""
        res = subprocess.run([self.postern, "-c", self.conf] + list(args),
                             input=input, capture_output=True, timeout=120)
        if check and res.returncode != 0:
            raise AssertionError("postern %s exited %d: %s" % (
                " ".join(args), res.returncode, res.stderr.decode(errors="replace")))
        return res

    def add_user(self, address, password):
        self.cli("user", "add", address, "--password-stdin",
                 input=(password + "\n").encode())

    def start(self):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.postern, "-c", self.conf, "serve"],
                                     stdout=self.logf, stderr=self.logf,
                                     stdin=subprocess.DEVNULL)
        _live.append(self.proc)
        for role, port in self.ports.items():
            if not wait_port(port, proc=self.proc):
                self.stop()
                raise AssertionError("daemon did not listen on %s:%d\n%s" % (
                    role, port, self.log()))
        # The sockets listen before the start-up ends (the password hash of
        # unknown users, the store, the sandbox): a test that times its
        # first greeting waits for the event loop, as logged at info level.
        with open(self.conf) as f:
            verbose = any(l.split() in (["log_level", "=", "debug"], ["log_level", "=", "info"])
                          for l in f)
        deadline = time.time() + 30
        while verbose and time.time() < deadline and self.proc.poll() is None:
            if " started, pid " in self.log():
                break
            time.sleep(0.02)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Stop the daemon; returns its exit code (negative: signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.logf.close()
        return rc

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        rc = self.stop()
        if exc_type is not None:
            sys.stderr.write("---- daemon log ----\n" + self.log()[-20000:] + "\n")
        elif rc not in (0, None):
            sys.stderr.write("---- daemon log ----\n" + self.log()[-20000:] + "\n")
            raise AssertionError("daemon exited %s" % rc)
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False


class Results:
    """Counts checks and prints the closing 'N passed, N failed' line."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
            print("ok   " + what)
        else:
            self.failed += 1
            print("FAIL " + what)
        return cond

    def run(self, name, fn):
        """One group of checks; an exception is a failed check, not the end."""
        import traceback
        try:
            fn()
        except Exception:
            self.check(False, "%s raised:\n%s" % (name, traceback.format_exc()))

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.exit(1 if self.failed else 0)
