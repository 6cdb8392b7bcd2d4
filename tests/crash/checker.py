"""The power-cut test (issue 13; the method of ALICE, OSDI 2014, and
CrashMonkey, OSDI 2018, applied to Postern).

    checker.py POSTERN RECORDER.so PHASE      PHASE: smtp, imap or pop3

1. Prepares a data directory with a plain daemon (users, an Archive folder,
   seed messages), and snapshots it.
2. Runs the phase's workload (workloads.py) against a daemon started with
   recorder.so preloaded, which logs every file operation under the data
   directory and every byte sent to a client.
3. Replays the log over the snapshot (replay.py) and, at every crash point
   (each fsync/fdatasync, each O_DSYNC write, each send to a client),
   builds the trees a power cut could leave; starts Postern on each
   distinct tree and reads every mailbox over IMAP (and POP3 UIDLs).
4. Checks, at every crash point and for every tree: each message whose
   250 / OK / +OK had been sent is there exactly once, with the flags and
   UID acknowledged; nothing whose expunge or DELE+QUIT was acknowledged
   is back; the message is whole; UIDVALIDITY and POP3 UIDLs unchanged;
   the daemon starts by itself and serves.

Exit 0 when every check passed, 1 otherwise, 77 when it cannot run here.
"""
import concurrent.futures
import imaplib
import os
import poplib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import replay  # noqa: E402
import workloads  # noqa: E402
from postern_test import free_port, wait_port, skip  # noqa: E402

# How many distinct trees one phase starts Postern on; more are sampled
# evenly within their priority.  About 2 s each under ASan (start-up and
# three yescrypt logins), OBSERVERS at a time.
TREES_MAX = int(os.environ.get("POSTERN_CRASH_TREES_MAX", "32"))
OBSERVERS = 2
# "Each single unsynced change kept": at most this many per crash point.
SINGLE_KEPT_MAX = 6
# Failures printed in full per kind (all are counted).
EXAMPLES_MAX = 3
ROLES = ("smtp", "imap", "pop3")


# ---- the daemon ----

class Postern:
    def __init__(self, binary, data_dir, workdir, preload=None, log_path=None):
        self.binary = binary
        self.data = data_dir
        self.ports = {r: free_port() for r in ROLES}
        self.conf = os.path.join(workdir, "postern.conf")
        self.log_path = os.path.join(workdir, "postern.log")
        self.preload = preload
        self.rec_log = log_path
        lines = ["hostname = mail.example.test", "data_dir = " + data_dir,
                 "domains = example.test", "log_level = info",
                 "allow_plaintext_auth_on_loopback = yes", "shutdown_timeout = 5",
                 # the recorder's log is outside data_dir
                 "sandbox = no"]
        for role, port in self.ports.items():
            lines += ["listener %s {" % role, "  role = " + role, "  address = 127.0.0.1",
                      "  port = %d" % port, "  tls = none", "}"]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None

    def cli(self, *args, stdin=None):
        return subprocess.run([self.binary, "-c", self.conf] + list(args), input=stdin,
                              capture_output=True, timeout=120)

    def start(self):
        env = dict(os.environ)
        if self.preload:
            env["LD_PRELOAD"] = self.preload
            env["POSTERN_CRASH_DIR"] = self.data
            env["POSTERN_CRASH_LOG"] = self.rec_log
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "-c", self.conf, "serve"], env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=self.logf)
        for port in self.ports.values():
            if not wait_port(port, timeout=30, proc=self.proc):
                return False
        deadline = time.time() + 30
        while time.time() < deadline and self.proc.poll() is None:
            if " started, pid " in self.log():
                return True
            time.sleep(0.02)
        return False

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        rc, self.proc = self.proc.returncode, None
        return rc

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


def asan_runtime(binary):
    """The libasan a sanitized postern links, which must come first in
    LD_PRELOAD; None for a plain build."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    m = re.search(r"libasan\.so\S*\s*=>\s*(\S+)", out)
    return m.group(1) if m else None


# ---- reading a crash tree back ----

def observe(binary, tree_dir, workdir, pop3_users):
    """What clients see of a tree: ((messages, unknown), uidvalidity,
    uidls), or an error text.  messages: (user, token) -> [(folder, flags,
    uid, bytes)]."""
    d = Postern(binary, tree_dir, workdir)
    try:
        if not d.start():
            return "daemon did not start"
        seen = read_back(d.ports, pop3_users)
    except Exception as e:  # noqa: BLE001 - any client error is a finding
        seen = "reading the mail back failed: %r" % (e,)
    finally:
        rc = d.stop()
    if rc != 0 and not isinstance(seen, str):
        seen = "daemon exited %s" % rc
    if isinstance(seen, str):
        return seen + "\n" + d.log()[-3000:]
    return seen


def read_back(ports, pop3_users):
    msgs, validity, uidls, unknown = {}, {}, {}, []
    for user, password in workloads.USERS.items():
        c = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=30)
        c.login(user, password)
        _, listing = c.list('""', "*")
        for entry in listing:
            name = entry.rsplit(b" ", 1)[1].strip(b'"').decode()
            typ, _ = c.select('"%s"' % name, readonly=True)
            if typ != "OK":
                raise AssertionError("EXAMINE %s failed" % name)
            validity[(user, name)] = int(c.untagged_responses["UIDVALIDITY"][-1])
            _, data = c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
            for part in data:
                if not isinstance(part, tuple):
                    continue
                uid = int(re.search(rb"UID (\d+)", part[0]).group(1))
                flags = re.search(rb"FLAGS \(([^)]*)\)", part[0]).group(1).decode().split()
                flags = frozenset(f for f in flags if f != "\\Recent")
                m = workloads.TOKEN_RE.search(part[1])
                if m is None:
                    unknown.append((user, name, uid, part[1][:200]))
                    continue
                msgs.setdefault((user, m.group().decode()), []).append(
                    (name, flags, uid, part[1]))
        c.logout()
    for user in pop3_users:
        p = poplib.POP3("127.0.0.1", ports["pop3"], timeout=30)
        p.user(user)
        p.pass_(workloads.USERS[user])
        for entry in p.uidl()[1]:
            n, u = entry.decode().split()
            m = workloads.TOKEN_RE.search(b"\n".join(p.top(int(n), 0)[1]))
            if m:
                uidls[(user, m.group().decode())] = u
        p.quit()
    return (msgs, unknown), validity, uidls


# ---- checking one crash state ----

def allowed_states(item, acked):
    """The states a message may be in when acked of its steps were
    acknowledged: the last acknowledged one, or what the next (in flight)
    does."""
    states = [item.steps[acked - 1][1] if acked else item.initial]
    if acked < len(item.steps):
        states.append(item.steps[acked][1])
        states += [tuple(s) for s in item.steps[acked][2]]
    return states


def matches(observed, state):
    want = sorted((f, tuple(sorted(fl))) for f, fl, _ in state)
    got = sorted((f, tuple(sorted(fl))) for f, fl, _, _ in observed)
    return want == got


def describe(state):
    if not state:
        return "absent"
    return " + ".join("%s %s%s" % (f, "{%s}" % " ".join(sorted(fl)),
                                   "" if uid is None else " uid %d" % uid)
                      for f, fl, uid, *_ in state)


def check_state(wl, acks, point, seen, findings):
    """Every invariant for one crash point and one observed tree."""
    (msgs, unknown), validity, uidls = seen
    for (user, token), item in wl.items.items():
        acked = sum(1 for s in item.steps if acks[id(s)] <= point)
        observed = msgs.get((user, token), [])
        states = allowed_states(item, acked)
        if not any(matches(observed, s) for s in states):
            kind = "lost" if not observed and states[0] else (
                "resurrected" if observed and not states[0] else "wrong state")
            findings.append(("%s: %s %s: acknowledged %s, found %s" % (
                kind, user, token, describe(states[0]), describe(observed)), point))
        for folder, flags, uid, data in observed:
            if not data.endswith(item.body):
                findings.append(("torn message: %s %s in %s is not the message sent (%d bytes)" % (
                    user, token, folder, len(data)), point))
            # only an acknowledged UID binds: one in a reply not yet sent
            # (APPENDUID, COPYUID) was never seen by the client
            want = [u for f, fl, u in states[0] if f == folder and u is not None]
            same_validity = validity.get((user, folder)) == wl.uidvalidity.get((user, folder))
            if want and same_validity and uid not in want:
                findings.append(("UID changed: %s %s in %s has UID %d, acknowledged %s" % (
                    user, token, folder, uid, want), point))
        if (user, token) in wl.uidls and (user, token) in uidls and \
                uidls[(user, token)] != wl.uidls[(user, token)]:
            findings.append(("POP3 UIDL changed: %s %s from %s to %s" % (
                user, token, wl.uidls[(user, token)], uidls[(user, token)]), point))
    for key, before in wl.uidvalidity.items():
        if key in validity and validity[key] != before:
            findings.append(("UIDVALIDITY changed: %s %s from %d to %d (index lost and rebuilt)" % (
                key[0], key[1], before, validity[key]), point))
    for user, folder, uid, head in unknown:
        findings.append(("unknown message: %s %s UID %d: %r" % (user, folder, uid, head), point))


# ---- the run ----

def ack_points(records, wl):
    """id(step) -> index of the record that sent the acknowledging byte."""
    sent, ends = {}, {}
    for rec in records:
        if rec.op == "send":
            port = rec.num("port")
            sent[port] = sent.get(port, 0) + len(rec.data)
            ends.setdefault(port, []).append((sent[port], rec.index))
    out = {}
    for item in wl.items.values():
        for step in item.steps:
            port, nbytes = step[0]
            hit = [i for total, i in ends.get(port, []) if total >= nbytes]
            if not hit:
                raise replay.LogError("the reply to client port %d was not recorded" % port)
            out[id(step)] = hit[0]
    return out


def crash_points(records):
    return [r.index for r in records
            if r.op in ("fsync", "sync", "send") or (r.op == "write" and r.fields.get("sync") == "1")]


def point_name(rec):
    if rec.op == "send":
        text = rec.data.decode("utf-8", "replace").strip().splitlines()
        return "reply to port %s %r" % (rec.fields["port"], text[-1][:60] if text else "")
    if rec.op == "fsync":
        return "fsync %s" % rec.path()
    return "%s (record %d)" % (rec.op, rec.index)


def plan_states(model, records, points):
    """Replay the log; per crash point its variants as (moment, record
    index, variant name, fingerprint, priority); trees kept once by
    fingerprint.  A persistence point (fsync...) is tried while it runs
    (what was pending may or may not be on disk: moment index - 0.5, the
    replies before it sent) and after it (only what is durable); a reply
    just after it was sent."""
    wanted, trees = [], {}
    point_set = set(points)

    def add(moment, rec, variants, reply):
        for name, kept, prefix in variants:
            tree = model.tree(kept, prefix)
            fp = replay.fingerprint(tree)
            trees.setdefault(fp, tree)
            main = name.split(": ")[-1] in ("durable only", "all unsynced entries kept")
            prio = (0 if reply else 1) if main else (2 if not prefix else 3)
            wanted.append((moment, rec.index, name, fp, prio))
    for rec in records:
        if rec.index not in point_set:
            model.apply(rec)
        elif rec.op == "send":
            model.apply(rec)
            add(rec.index, rec, model.variants(SINGLE_KEPT_MAX, False), True)
        else:
            variants = model.variants(SINGLE_KEPT_MAX, True)
            add(rec.index - 0.5, rec, [("during: " + v[0],) + v[1:] for v in variants], False)
            model.apply(rec)
            add(rec.index, rec, model.variants(0, False)[:1], False)
    return wanted, trees


def choose_trees(wanted):
    """Distinct trees to start Postern on: by priority, evenly sampled
    within the priority that overflows TREES_MAX."""
    chosen = []
    labels = ("reply points", "persistence points", "single changes kept", "torn writes")
    for prio, label in enumerate(labels):
        fps = []
        for _, _, _, fp, p in wanted:
            if p == prio and fp not in chosen and fp not in fps:
                fps.append(fp)
        # reply points first, whole; then half of what is left to each
        # next kind, what one leaves unused going to the next
        room = TREES_MAX - len(chosen)
        if prio > 0:
            room = max(room // 2, 1) if prio < len(labels) - 1 else room
        if len(fps) > room:
            fps = [fps[round(i * (len(fps) - 1) / max(room - 1, 1))] for i in range(room)] \
                if room > 0 else []
        print("  %s: %d new distinct trees, %d started" % (label, len(set(
            fp for _, _, _, fp, p in wanted if p == prio) - set(chosen)), len(fps)))
        chosen += [f for f in fps if f not in chosen]
    return chosen


def prepare(binary, phase, work):
    """The data directory before the recorded run, and the workload with
    its seed messages noted."""
    data = os.path.join(work, "data")
    os.mkdir(data)
    wl = workloads.Workload()
    prep = Postern(binary, data, work)
    for user, password in workloads.USERS.items():
        res = prep.cli("user", "add", user, "--password-stdin", stdin=(password + "\n").encode())
        if res.returncode != 0:
            raise AssertionError("user add: " + res.stderr.decode())
    if not prep.start():
        raise AssertionError("preparing daemon did not start:\n" + prep.log())
    try:
        seeds = workloads.prepare(wl, prep.ports, phase)
    finally:
        prep.stop()
    return data, wl, seeds


def record(binary, recorder, phase, work, data, wl, seeds):
    """Run the workload on a daemon with the recorder; its log records."""
    rec_log = os.path.join(work, "recorder.log")
    asan = asan_runtime(binary)
    preload = (asan + " " if asan else "") + os.path.abspath(recorder)
    live = Postern(binary, data, work, preload=preload, log_path=rec_log)
    if not live.start():
        raise AssertionError("recorded daemon did not start:\n" + live.log()[-5000:])
    try:
        workloads.PHASES[phase](wl, live.ports, seeds)
    finally:
        rc = live.stop()
    if rc != 0:
        raise AssertionError("recorded daemon exited %s:\n%s" % (rc, live.log()[-5000:]))
    records = replay.read_log(rec_log)
    counts = {}
    for r in records:
        counts[r.op] = counts.get(r.op, 0) + 1
    print("recorded %d operations: %s" % (len(records), ", ".join(
        "%s %d" % kv for kv in sorted(counts.items()))))
    if not counts.get("fsync") or not counts.get("send"):
        raise AssertionError("the recorder saw no fsync or no reply: not preloaded?")
    return records


def observe_all(binary, work, trees, chosen, store, pop3_users):
    """fingerprint -> what observe() saw, for the chosen trees."""
    def observe_one(n):
        tree_dir = os.path.join(work, "tree%d" % n)
        replay.materialize(trees[chosen[n]], tree_dir, store)
        scratch = os.path.join(work, "run%d" % n)
        os.mkdir(scratch)
        try:
            return observe(binary, tree_dir, scratch, pop3_users)
        finally:
            shutil.rmtree(tree_dir, ignore_errors=True)
            shutil.rmtree(scratch, ignore_errors=True)
    with concurrent.futures.ThreadPoolExecutor(OBSERVERS) as pool:
        return dict(zip(chosen, pool.map(observe_one, range(len(chosen)))))


def run(binary, recorder, phase, work):
    data, wl, seeds = prepare(binary, phase, work)
    model = replay.Model(data)
    records = record(binary, recorder, phase, work, data, wl, seeds)
    acks = ack_points(records, wl)
    points = crash_points(records)
    wanted, trees = plan_states(model, records, points)
    if model.msync_seen:
        raise AssertionError("msync on a mapping: writes through mmap cannot be replayed")
    chosen = choose_trees(wanted)
    print("%d crash points, %d crash states, %d distinct trees, starting Postern on %d" % (
        len(points), len(wanted), len(trees), len(chosen)))
    seen = observe_all(binary, work, trees, chosen, model.store,
                       sorted({u for u, _ in wl.uidls}))
    findings = []
    checked = 0
    by_index = {r.index: r for r in records}
    for moment, index, name, fp, _ in wanted:
        if fp not in seen:
            continue
        checked += 1
        before = len(findings)
        if isinstance(seen[fp], str):
            findings.append(("Postern did not serve the tree by itself: " + seen[fp], moment))
        else:
            check_state(wl, acks, moment, seen[fp], findings)
        for i in range(before, len(findings)):
            findings[i] = (findings[i][0], "%s, %s" % (point_name(by_index[index]), name))
    return report(findings, checked, len(wanted))


def report(findings, checked, total):
    kinds = {}
    for what, where in findings:
        key = re.sub(r"CRASHTOK-\S+|UID \d+|\d{6,}", "_", what.split(":")[0])
        kinds.setdefault(key, []).append((what, where))
    for key, items in sorted(kinds.items()):
        print("FAIL %s: %d times, e.g." % (key, len(items)))
        for what, where in items[:EXAMPLES_MAX]:
            print("     %s\n       at %s" % (what, where))
    print("%d crash states checked of %d; %d findings" % (checked, total, len(findings)))
    return 1 if findings else 0


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in workloads.PHASES:
        sys.exit("usage: checker.py POSTERN RECORDER.so smtp|imap|pop3")
    binary, recorder, phase = sys.argv[1:]
    if not os.path.exists(recorder):
        skip("recorder library not built: " + recorder)
    work = tempfile.mkdtemp(prefix="postern-crash-")
    keep = os.environ.get("POSTERN_CRASH_KEEP")
    started = time.time()
    try:
        rc = run(os.path.abspath(binary), recorder, phase, work)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("kept " + work)
    print("phase %s: %.1f s" % (phase, time.time() - started))
    sys.exit(rc)


if __name__ == "__main__":
    main()
