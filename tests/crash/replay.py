"""The persistence model of the power-cut test: replays recorder.c's log
over a snapshot of the data directory and yields, at each crash point, the
trees a power cut at that moment could leave.

What is durable when (see README.md):
- a file's data: what it held at its last fsync/fdatasync (or sync());
  writes through an O_SYNC/O_DSYNC descriptor at once.  Writes after that
  are dropped, or (the "torn" variant) the first half of them is kept, in
  the order made, the last one cut in the middle.
- a directory entry (create, rename, link, unlink, mkdir, symlink): once
  that directory was fsynced.  Never through an fsync of the file itself
  (ext4 happens to do it; we do not count on it).  Until then each change
  is dropped or kept: all dropped, all kept, and each single one kept
  (the two halves of a rename go together while both are pending).

A tree is described as a dict name -> node, where a node is
("f", content_key, inode_id), ("d", {entries}, mtime) or ("l", target);
contents are kept once in a store keyed by their hash.
"""
import hashlib
import os
import stat


class LogError(Exception):
    pass


class Record:
    __slots__ = ("index", "op", "fields", "data")

    def __init__(self, index, op, fields, data):
        self.index, self.op, self.fields, self.data = index, op, fields, data

    def num(self, key):
        return int(self.fields[key])

    def path(self, key="p"):
        return unescape(self.fields[key])


def unescape(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "%" and i + 2 < len(s):
            out.append(chr(int(s[i + 1:i + 3], 16)))
            i += 3
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def mtime_ns(text):
    """A recorded "SECONDS.NANOSECONDS" as integer nanoseconds."""
    if not text or text == "0":
        return 0
    sec, _, frac = text.partition(".")
    return int(sec) * 1000000000 + int(frac.ljust(9, "0")[:9])


def read_log(path):
    """The records of a recorder log, in order."""
    with open(path, "rb") as f:
        raw = f.read()
    records, pos = [], 0
    while pos < len(raw):
        nl = raw.index(b"\n", pos)
        parts = raw[pos:nl].decode("utf-8", "surrogateescape").split("\t")
        pos = nl + 1
        fields = dict(p.split("=", 1) for p in parts[1:])
        data = b""
        if parts[0] in ("write", "send"):
            n = int(fields["len"])
            data = raw[pos:pos + n]
            if len(data) != n:
                raise LogError("truncated record at byte %d" % pos)
            pos += n
        records.append(Record(len(records), parts[0], fields, data))
    return records


class Inode:
    """A file, directory or symlink of the model: what is on disk
    (durable) and what the running daemon sees (volatile)."""
    _ids = 0

    def __init__(self, kind, data=b"", target=None, mtime=0):
        Inode._ids += 1
        self.id = Inode._ids
        self.kind = kind
        self.durable = bytes(data)
        self.volatile = bytearray(data)
        self.pending = []          # unsynced ("w", off, bytes) / ("t", len)
        self.target = target
        self.entries = {}          # directories: name -> Inode (volatile)
        self.entries_durable = {}
        self.mtime = mtime         # directories, in ns: of the volatile state
        self.mtime_durable = mtime
        self._key = None           # content key of durable, cached

    def content_key(self, store):
        if self._key is None:
            self._key = store.put(self.durable)
        return self._key


def apply_write(buf, off, data):
    if len(buf) < off:
        buf.extend(b"\0" * (off - len(buf)))
    buf[off:off + len(data)] = data


def apply_pending(base, ops):
    buf = bytearray(base)
    for op in ops:
        if op[0] == "w":
            apply_write(buf, op[1], op[2])
        else:
            del buf[op[1]:]
            if len(buf) < op[1]:
                buf.extend(b"\0" * (op[1] - len(buf)))
    return bytes(buf)


def torn(node):
    """A file's durable data plus the first half of its unsynced writes,
    the last of them cut in the middle: what a power cut during writeback
    may leave."""
    n = len(node.pending)
    ops = node.pending[:n // 2]
    nxt = node.pending[n // 2]
    if nxt[0] == "w":
        ops = ops + [("w", nxt[1], nxt[2][:len(nxt[2]) // 2])]
    return apply_pending(node.durable, ops)


class ContentStore:
    def __init__(self):
        self.blobs = {}

    def put(self, data):
        key = hashlib.sha1(data).hexdigest()
        self.blobs.setdefault(key, bytes(data))
        return key


class Model:
    """The data directory as the log replays over it."""

    def __init__(self, root_path):
        self.root_path = os.path.realpath(root_path)
        self.by_ino = {}
        self.pending = []          # groups: [[(dir, name, inode or None, mtime)]]
        self.store = ContentStore()
        self.root = self._snapshot(self.root_path)
        self.msync_seen = False

    # ---- the snapshot ----

    def _snapshot(self, path):
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            node = Inode("d", mtime=st.st_mtime_ns)
            for name in sorted(os.listdir(path)):
                child = self._snapshot(os.path.join(path, name))
                node.entries[name] = child
            node.entries_durable = dict(node.entries)
        elif stat.S_ISLNK(st.st_mode):
            node = Inode("l", target=os.readlink(path))
        elif stat.S_ISREG(st.st_mode):
            if st.st_ino in self.by_ino:        # a hard link seen before
                return self.by_ino[st.st_ino]
            with open(path, "rb") as f:
                node = Inode("f", f.read())
        else:
            raise LogError("unexpected file type at " + path)
        self.by_ino[st.st_ino] = node
        return node

    # ---- path look-up ----

    def _split(self, abs_path):
        if abs_path == "-":
            raise LogError("an operation crossed out of the data directory")
        rel = os.path.relpath(abs_path, self.root_path)
        if rel.startswith(".."):
            raise LogError("path outside the data directory: " + abs_path)
        return [] if rel == "." else rel.split("/")

    def lookup(self, abs_path):
        node = self.root
        for name in self._split(abs_path):
            if node.kind != "d" or name not in node.entries:
                raise LogError("no such entry in the model: " + abs_path)
            node = node.entries[name]
        return node

    def parent(self, abs_path):
        parts = self._split(abs_path)
        if not parts:
            raise LogError("operation on the data directory itself")
        node = self.root
        for name in parts[:-1]:
            node = node.entries.get(name)
            if node is None or node.kind != "d":
                raise LogError("no parent directory in the model: " + abs_path)
        return node, parts[-1]

    # ---- replay ----

    def _change(self, halves):
        """Apply directory entry changes (dir, name, inode or None, the
        dir's mtime after it) to the volatile tree and remember them as one
        pending group."""
        for d, name, node, mtime in halves:
            if node is None:
                d.entries.pop(name, None)
            else:
                d.entries[name] = node
            d.mtime = mtime
        self.pending.append([list(halves)])

    def _fsync_file(self, node):
        node.durable = bytes(node.volatile)
        node.pending = []
        node._key = None

    def _fsync_dir(self, node):
        node.entries_durable = dict(node.entries)
        node.mtime_durable = node.mtime
        for group in self.pending:
            group[0] = [h for h in group[0] if h[0] is not node]
        self.pending = [g for g in self.pending if g[0]]

    def apply(self, rec):
        op = rec.op
        pm, qm = mtime_ns(rec.fields.get("pm")), mtime_ns(rec.fields.get("qm"))
        if op == "create":
            d, name = self.parent(rec.path())
            ino = rec.num("ino")
            old = d.entries.get(name)
            if old is not None and self.by_ino.get(ino) is old:
                return
            node = Inode("f")
            self.by_ino[ino] = node
            self._change([(d, name, node, pm)])
        elif op == "write":
            node = self._inode(rec)
            off = rec.num("off")
            apply_write(node.volatile, off, rec.data)
            if rec.fields.get("sync") == "1":
                buf = bytearray(node.durable)
                apply_write(buf, off, rec.data)
                node.durable, node._key = bytes(buf), None
            else:
                node.pending.append(("w", off, rec.data))
        elif op == "trunc":
            node = self._inode(rec)
            n = rec.num("len")
            del node.volatile[n:]
            if len(node.volatile) < n:
                node.volatile.extend(b"\0" * (n - len(node.volatile)))
            node.pending.append(("t", n))
        elif op == "fsync":
            node = self._inode(rec)
            if node.kind == "d":
                self._fsync_dir(node)
            else:
                self._fsync_file(node)
        elif op == "sync":
            for node in set(self.by_ino.values()):
                if node.kind == "d":
                    self._fsync_dir(node)
                elif node.kind == "f":
                    self._fsync_file(node)
        elif op == "nosync":
            if rec.fields.get("what") == "msync":
                self.msync_seen = True
        elif op == "rename":
            self._rename(rec, pm, qm)
        elif op == "link":
            node = self.lookup(rec.path("p"))
            d, name = self.parent(rec.path("q"))
            self._change([(d, name, node, qm)])
        elif op in ("unlink", "rmdir"):
            d, name = self.parent(rec.path())
            if name not in d.entries:
                raise LogError("unlink of an entry the model lacks: " + rec.path())
            self._change([(d, name, None, pm)])
        elif op == "mkdir":
            d, name = self.parent(rec.path())
            node = Inode("d", mtime=mtime_ns(rec.fields["m"]))
            self.by_ino[rec.num("ino")] = node
            self._change([(d, name, node, pm)])
        elif op == "symlink":
            d, name = self.parent(rec.path())
            self._change([(d, name, Inode("l", target=rec.path("q")), pm)])
        elif op in ("send", "sclose"):
            pass
        else:
            raise LogError("unknown record " + op)

    def _inode(self, rec):
        node = self.by_ino.get(rec.num("ino"))
        if node is None:
            raise LogError("%s on an inode the model does not know (%s)" % (
                rec.op, rec.fields.get("p", rec.fields["ino"])))
        return node

    def _rename(self, rec, pm, qm):
        RENAME_EXCHANGE = 2
        src = rec.path("p")
        dst = rec.path("q")
        sd, sn = self.parent(src)
        dd, dn = self.parent(dst)
        node = sd.entries.get(sn)
        if node is None:
            raise LogError("rename of an entry the model lacks: " + src)
        if rec.num("flags") & RENAME_EXCHANGE:
            other = dd.entries.get(dn)
            self._change([(sd, sn, other, pm), (dd, dn, node, qm)])
        elif sd is dd and sn == dn:
            return
        else:
            self._change([(sd, sn, None, pm), (dd, dn, node, qm)])

    # ---- crash states ----

    def variants(self, single_max, with_prefix):
        """(name, chosen pending groups, keep a prefix of unsynced data)
        for the crash states to try at this point."""
        out = [("durable only", [], False)]
        if self.pending:
            out.append(("all unsynced entries kept", list(range(len(self.pending))), False))
            n = len(self.pending)
            picks = range(n) if n <= single_max else sorted(
                {round(i * (n - 1) / (single_max - 1)) for i in range(single_max)})
            for i in picks:
                halves = self.pending[i][0]
                what = ",".join("%s%s" % ("-" if h[2] is None else "+", h[1]) for h in halves)
                out.append(("only unsynced entry change kept: " + what, [i], False))
        if with_prefix and any(n.pending for n in self.by_ino.values() if n.kind == "f"):
            out.append(("unsynced entries kept, unsynced writes torn",
                        list(range(len(self.pending))), True))
        return out

    def tree(self, kept_groups, prefix):
        """The tree a crash leaves when the pending groups whose positions
        are in kept_groups reached the disk (and, with prefix, the first
        half of each file's unsynced writes)."""
        entries = {}   # dir inode -> dict, durable plus kept changes
        mtimes = {}
        for i in sorted(kept_groups):
            for d, name, node, t in self.pending[i][0]:
                e = entries.setdefault(d, dict(d.entries_durable))
                if node is None:
                    e.pop(name, None)
                else:
                    e[name] = node
                mtimes[d] = t
        seen = set()

        def build(d):
            if d in seen:
                raise LogError("directory cycle in the model")
            seen.add(d)
            out = {}
            for name, node in sorted(entries.get(d, d.entries_durable).items()):
                if node.kind == "d":
                    out[name] = ("d", build(node), mtimes.get(node, node.mtime_durable))
                elif node.kind == "l":
                    out[name] = ("l", node.target)
                elif prefix and node.pending:
                    out[name] = ("f", self.store.put(torn(node)), node.id)
                else:
                    out[name] = ("f", node.content_key(self.store), node.id)
            return out
        return ("d", build(self.root), mtimes.get(self.root, self.root.mtime_durable))


def fingerprint(tree):
    """A key that is equal for equal trees (hard links included)."""
    return hashlib.sha1(repr(tree).encode()).hexdigest()


def materialize(tree, path, store):
    """Write a tree to path (which must not exist); hard links stay links."""
    made = {}

    def write(node, p):
        if node[0] == "d":
            os.mkdir(p)
            for name, child in node[1].items():
                write(child, os.path.join(p, name))
        elif node[0] == "l":
            os.symlink(node[1], p)
        elif node[2] in made:
            os.link(made[node[2]], p)
        else:
            with open(p, "wb") as f:
                f.write(store.blobs[node[1]])
            made[node[2]] = p
    write(tree, path)
    # Directory mtimes last, deepest first (writing a child changes its
    # parent's).
    for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
        node = tree
        for name in os.path.relpath(dirpath, path).split("/"):
            if name != ".":
                node = node[1][name]
        os.utime(dirpath, ns=(node[2], node[2]))
