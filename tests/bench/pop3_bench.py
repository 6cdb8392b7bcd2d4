#!/usr/bin/python3
"""POP3 benchmark: Postern against Debian's Dovecot (reported, not asserted).

    /usr/bin/python3 tests/bench/pop3_bench.py BUILD/postern [--messages 2000]
        [--size 4096] [--sessions 1000] [--users 20]

Both servers get the same 2,000 messages of 4 KiB, written straight into
Maildirs (new/), and run on 127.0.0.1 high ports from a temp dir, with their
own configuration; Dovecot is started as /usr/sbin/dovecot -F -c OURCONF and
never touches the system's instance.  Measured, over POP3S:

  1. RETR+DELE throughput, 1 user holding all messages, then 20 users
     holding an equal share each, all at once (one client process each);
     each client logs in, waits for the others, then RETRs and DELEs every
     message and QUITs (the clock covers that part, QUIT's deletions
     included, not the logins).  A warm-up session per user (STAT, QUIT)
     runs first so both servers have indexed the Maildirs.
  2. Memory per idle session: PSS (sum of Pss in /proc/PID/smaps_rollup of
     every server process) before and after 1,000 logged-in, idle POP3S
     sessions of 1,000 different users (POP3 allows one session per user).

Build Postern without sanitizers for meaningful numbers
(cmake -DCMAKE_BUILD_TYPE=Release).  Takes 1-3 minutes.
"""
import argparse
import multiprocessing
import os
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "helpers"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
from bench_proc import process_tree, pss_kib  # noqa: E402
from postern_test import Daemon, free_port, wait_port  # noqa: E402
from pop3_util import Raw  # noqa: E402

PASSWORD = "bench-password-1"
DOMAIN = "example.test"
DOVECOT = "/usr/sbin/dovecot"


def make_message(i, size):
    head = ("From: sender%d@example.org\r\nTo: user@%s\r\nSubject: bench %d\r\n"
            "Message-ID: <bench.%d@example.org>\r\n\r\n" % (i, DOMAIN, i, i)).encode()
    line = b"The quick brown fox jumps over the lazy dog 0123456789 abcdefghij.\r\n"
    body = bytearray()
    while len(head) + len(body) + len(line) <= size:
        body += line
    body += b"x" * (size - len(head) - len(body) - 2) + b"\r\n"
    return head + bytes(body)


def fill_maildir(path, msgs, uid=None, gid=None):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    for i, m in msgs:
        with open(os.path.join(path, "new", "1700000000.M%06dP1.bench" % i), "wb") as f:
            f.write(m)
    if uid is not None:
        for root, dirs, files in os.walk(path):
            os.chown(root, uid, gid)
            for f in files:
                os.chown(os.path.join(root, f), uid, gid)


def login(port, user):
    c = Raw(port, tls=True, timeout=120)
    r = c.cmd("USER " + user)
    r = c.cmd("PASS " + PASSWORD)
    if not r.startswith(b"+OK"):
        raise RuntimeError("%s: login failed: %r" % (user, r))
    return c


def warm(args):
    port, user = args
    c = login(port, user)
    c.cmd("STAT")
    c.cmd("QUIT")
    c.close()


_barrier = None


def _set_barrier(b):
    global _barrier
    _barrier = b


def drain(args):
    """Log in, wait for every client, then RETR and DELE every message of
    one user and QUIT; returns (count, start, end) of that part."""
    port, user = args
    c = login(port, user)
    n = int(c.cmd("STAT").split()[1])
    _barrier.wait()
    t0 = time.time()
    c0 = os.times()
    for i in range(1, n + 1):
        st = c.cmd("RETR %d" % i)
        if not st.startswith(b"+OK"):
            raise RuntimeError("RETR %d: %r" % (i, st))
        c.until_dot()
        if not c.cmd("DELE %d" % i).startswith(b"+OK"):
            raise RuntimeError("DELE %d failed" % i)
    tq = time.time()
    if not c.cmd("QUIT").startswith(b"+OK"):
        raise RuntimeError("QUIT failed")
    t1 = time.time()
    c1 = os.times()
    c.close()
    return n, t0, t1, (c1.user - c0.user) + (c1.system - c0.system), t1 - tq


def cpu_seconds(root):
    """CPU time (user + system, with reaped children's) of a process tree."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in process_tree(root):
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / tick


def throughput(port, users, server_pid):
    """Messages per second from the moment every client is logged in until
    the last QUIT (deletions included) is answered; also the CPU seconds
    the server and the clients spent on that part (both share the CPUs:
    a client near 100% of a CPU bounds the figure)."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(users) + 1)  # the clients and this process
    with ctx.Pool(len(users), initializer=_set_barrier, initargs=(barrier,)) as pool:
        pool.map(warm, [(port, u) for u in users])
        pending = pool.map_async(drain, [(port, u) for u in users])
        barrier.wait()  # every client logged in
        s0 = cpu_seconds(server_pid)
        runs = pending.get()
        time.sleep(0.5)  # Dovecot's master reaps the sessions' processes
        s1 = cpu_seconds(server_pid)
    total = sum(r[0] for r in runs)
    elapsed = max(r[2] for r in runs) - min(r[1] for r in runs)
    client_cpu = sum(r[3] for r in runs)
    quit_max = max(r[4] for r in runs)
    return total / elapsed, total, elapsed, s1 - s0, client_cpu, quit_max


def idle_sessions(port, root_pid, users):
    time.sleep(1)
    before = pss_kib(root_pid)
    with ThreadPoolExecutor(16) as ex:
        sessions = list(ex.map(lambda u: login(port, u), users))
    time.sleep(2)
    after = pss_kib(root_pid)
    procs = len(process_tree(root_pid))
    for c in sessions:
        c.cmd("NOOP")  # every one of them is still alive
    for c in sessions:
        c.close()
    return before, after, (after - before) / len(users), procs


# ---- Postern -----------------------------------------------------------------

def run_postern(postern, msgs, n_users, n_sessions):
    d = Daemon(postern, roles=("pop3", "pop3s"),
               extra_config="connections_per_ip_max = %d\n" % (n_sessions + 100))
    with open(d.conf) as f:
        text = f.read()
    with open(d.conf, "w") as f:
        f.write(text.replace("log_level = debug", "log_level = warn"))
    d.add_user("u0@" + DOMAIN, PASSWORD)
    users_file = os.path.join(d.data, "users")
    with open(users_file) as f:
        hash_ = [l.split()[1] for l in f if l.startswith("u0@")][0]
    names = ["u%d@%s" % (i, DOMAIN) for i in range(max(n_sessions, n_users) + 1)]
    with open(users_file, "a") as f:
        for u in names[1:]:
            f.write("%s %s\n" % (u, hash_))
    mail = os.path.join(d.data, "mail", DOMAIN)
    fill_maildir(os.path.join(mail, "single"), msgs)
    with open(users_file, "a") as f:
        f.write("single@%s %s\n" % (DOMAIN, hash_))
    per = len(msgs) // n_users
    for k in range(n_users):
        fill_maildir(os.path.join(mail, "u%d" % k), msgs[k * per:(k + 1) * per])
    res = {}
    with d:
        port = d.port("pop3s")
        res["idle"] = idle_sessions(port, d.proc.pid, names[:n_sessions])
        res["one"] = throughput(port, ["single@" + DOMAIN], d.proc.pid)
        res["many"] = throughput(port, ["u%d@%s" % (k, DOMAIN) for k in range(n_users)],
                                 d.proc.pid)
    return res, hash_


# ---- Dovecot -----------------------------------------------------------------

DOVECOT_CONF = """\
base_dir = {tmp}/run
state_dir = {tmp}/state
log_path = {tmp}/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login
first_valid_uid = {uid}
mail_location = maildir:~/Maildir
default_client_limit = {clients}
default_process_limit = {procs}
mail_max_userip_connections = 10
passdb {{
  driver = passwd-file
  args = scheme=CRYPT {tmp}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={tmp}/home/%u
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {port}
  }}
  inet_listener pop3s {{
    port = {ports}
    ssl = yes
  }}
}}
"""


def run_dovecot(msgs, n_users, n_sessions, hash_, cert, key):
    if not os.path.exists(DOVECOT):
        return None, "%s not found (apt-get install dovecot-pop3d)" % DOVECOT
    tmp = tempfile.mkdtemp(prefix="pop3-bench-dv-")
    # Dovecot's auth worker runs as "dovecot", mail processes as nobody.
    os.chmod(tmp, 0o755)
    nobody = pwd.getpwnam("nobody")
    uid, gid = nobody.pw_uid, nobody.pw_gid
    port, ports = free_port(), free_port()
    conf = os.path.join(tmp, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(DOVECOT_CONF.format(tmp=tmp, cert=cert, key=key, uid=uid, gid=gid,
                                    clients=4 * n_sessions + 100, procs=2 * n_sessions + 100,
                                    port=port, ports=ports))
    names = ["u%d@%s" % (i, DOMAIN) for i in range(max(n_sessions, n_users) + 1)]
    with open(os.path.join(tmp, "passwd"), "w") as f:
        for u in names + ["single@" + DOMAIN]:
            f.write("%s:%s\n" % (u, hash_))
    os.chmod(os.path.join(tmp, "passwd"), 0o644)
    home = os.path.join(tmp, "home")
    os.makedirs(home)
    os.chown(home, uid, gid)
    fill_maildir(os.path.join(home, "single@" + DOMAIN, "Maildir"), msgs, uid, gid)
    os.chown(os.path.join(home, "single@" + DOMAIN), uid, gid)
    per = len(msgs) // n_users
    for k in range(n_users):
        h = os.path.join(home, "u%d@%s" % (k, DOMAIN))
        fill_maildir(os.path.join(h, "Maildir"), msgs[k * per:(k + 1) * per], uid, gid)
        os.chown(h, uid, gid)
    proc = subprocess.Popen([DOVECOT, "-F", "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        if not wait_port(ports, proc=proc):
            err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None else ""
            try:
                with open(os.path.join(tmp, "dovecot.log")) as f:
                    err += f.read()[-2000:]
            except OSError:
                pass
            return None, "Dovecot did not start: " + err.strip()
        res = {}
        res["idle"] = idle_sessions(ports, proc.pid, names[:n_sessions])
        res["one"] = throughput(ports, ["single@" + DOMAIN], proc.pid)
        res["many"] = throughput(ports, ["u%d@%s" % (k, DOMAIN) for k in range(n_users)],
                                 proc.pid)
        return res, None
    except Exception as e:  # report, do not hide Postern's numbers
        return None, "Dovecot run failed: %r" % (e,)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("postern")
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--sessions", type=int, default=1000)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * a.sessions + 1000))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    msgs = [(i, make_message(i, a.size)) for i in range(a.messages)]
    t0 = time.time()
    pres, hash_ = run_postern(a.postern, msgs, a.users, a.sessions)
    # the same self-signed certificate kind for Dovecot
    tmp = tempfile.mkdtemp(prefix="pop3-bench-cert-")
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=localhost"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(tmp, 0o755)
    for p in (cert, key):
        os.chmod(p, 0o644)
    dres, why = run_dovecot(msgs, a.users, a.sessions, hash_, cert, key)
    shutil.rmtree(tmp, ignore_errors=True)

    print("\nPOP3 benchmark: %d messages of %d bytes, POP3S on 127.0.0.1, %d CPUs"
          % (a.messages, a.size, os.cpu_count()))
    if why:
        print("Dovecot: not measured: " + why)
    rows = [
        ("RETR+DELE msg/s, 1 user", lambda r: r["one"][0]),
        ("RETR+DELE msg/s, %d users at once" % a.users, lambda r: r["many"][0]),
        # QUIT's unlinks depend on the disk more than on the server
        ("RETR+DELE msg/s, 1 user, QUIT not timed",
         lambda r: r["one"][1] / (r["one"][2] - r["one"][5])),
        ("PSS KiB per idle session (%d sessions)" % a.sessions, lambda r: r["idle"][2]),
    ]
    print("%-44s %12s %12s %10s" % ("", "Postern", "Dovecot", "P/D"))
    for name, get in rows:
        p = get(pres)
        d = get(dres) if dres else None
        print("%-44s %12.1f %12s %10s" % (name, p, "%.1f" % d if d is not None else "-",
                                           "%.2f" % (p / d) if d else "-"))
    for key, name in (("one", "1 user"), ("many", "%d users" % a.users)):
        for who, r in (("Postern", pres), ("Dovecot", dres)):
            if r:
                print("%s %s: %.2f s elapsed (slowest QUIT %.2f s), server CPU %.2f s (%.0f%%), "
                      "clients CPU %.2f s (%.0f%%)"
                      % (who, name, r[key][2], r[key][5], r[key][3], 100 * r[key][3] / r[key][2],
                         r[key][4], 100 * r[key][4] / r[key][2]))
    print("PSS total KiB before/after sessions: Postern %d/%d (%d processes)"
          % (pres["idle"][0], pres["idle"][1], pres["idle"][3]), end="")
    if dres:
        print(", Dovecot %d/%d (%d processes)" % (dres["idle"][0], dres["idle"][1], dres["idle"][3]))
    else:
        print()
    print("elapsed %.0f s" % (time.time() - t0))


if __name__ == "__main__":
    main()
