"""The persistence model of replay.py on a hand-written log: what a crash
keeps of a Maildir delivery (a file written, fsynced, renamed into new/,
new/ fsynced) at each step, so the power-cut tests cannot pass because the
model keeps too much.

Usage: replay_test.py
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import replay  # noqa: E402

failed = 0


def check(cond, what):
    global failed
    print(("ok   " if cond else "FAIL ") + what)
    failed += 0 if cond else 1


def rec(op, data=b"", **fields):
    fields = {k: str(v) for k, v in fields.items()}
    if op == "write":
        fields["len"] = str(len(data))
    return replay.Record(0, op, fields, data)


def names(tree, *path):
    node = tree
    for p in path:
        node = node[1][p]
    return sorted(node[1])


def content(model, tree, *path):
    node = tree
    for p in path:
        node = node[1][p]
    return model.store.blobs[node[1]]


def main():
    root = tempfile.mkdtemp(prefix="postern-crash-model-")
    for d in ("tmp", "new"):
        os.mkdir(os.path.join(root, d))
    with open(os.path.join(root, "new", "old"), "wb") as f:
        f.write(b"old message")
    m = replay.Model(root)
    ino = 999999001
    tmp, new = os.path.join(root, "tmp", "m1"), os.path.join(root, "new", "m1")

    m.apply(rec("create", p=tmp, ino=ino, pm="1.0"))
    m.apply(rec("write", b"hello ", ino=ino, off=0, sync=0))
    m.apply(rec("write", b"world", ino=ino, off=6, sync=0))
    states = m.variants(6, True)
    durable = m.tree(*states[0][1:])
    check(names(durable, "tmp") == [], "an unsynced create is dropped when nothing is synced")
    kept = m.tree(*states[1][1:])
    check(names(kept, "tmp") == ["m1"] and content(m, kept, "tmp", "m1") == b"",
          "a kept create without fsync has no data")
    torn = m.tree(*states[-1][1:])
    check(content(m, torn, "tmp", "m1") == b"hello wo",
          "the torn-write variant keeps the first half of the unsynced writes, "
          "the last one cut")

    m.apply(rec("fsync", ino=ino, p=tmp))
    m.apply(rec("rename", p=tmp, pm="2.0", q=new, qm="3.0", flags=0))
    states = m.variants(6, False)
    check(names(m.tree(*states[0][1:]), "new") == ["old"],
          "fsync of the file alone does not make its names durable")
    all_kept = m.tree(*states[1][1:])
    check(names(all_kept, "new") == ["m1", "old"] and names(all_kept, "tmp") == [] and
          content(m, all_kept, "new", "m1") == b"hello world",
          "all kept: the fsynced data under its new name")
    check(all_kept[1]["new"][2] == 3000000000, "a kept change gives its directory's mtime")
    singles = [v for v in states if v[0].startswith("only")]
    check(len(singles) == 2 and singles[1][0].endswith(": -m1,+m1"),
          "the two halves of a pending rename go together")

    m.apply(rec("fsync", ino=os.stat(os.path.join(root, "new")).st_ino, p="new"))
    states = m.variants(6, False)
    durable = m.tree(*states[0][1:])
    check(names(durable, "new") == ["m1", "old"],
          "after new/ is fsynced the new name is durable")
    tmp_dir = m.lookup(os.path.join(root, "tmp"))
    check(all(h[0] is tmp_dir for g in m.pending for h in g[0]) and len(m.pending) == 2,
          "tmp/'s changes (create, the rename's removal) wait for tmp/'s own fsync")

    m.apply(rec("unlink", p=os.path.join(root, "new", "old"), pm="4.0"))
    states = m.variants(6, False)
    check(names(m.tree(*states[0][1:]), "new") == ["m1", "old"],
          "an unsynced unlink is dropped (the message comes back)")
    m.apply(rec("sync"))
    states = m.variants(6, False)
    check(len(states) == 1 and names(m.tree(*states[0][1:]), "new") == ["m1"],
          "sync() makes every change durable")
    shutil.rmtree(root)
    print("%d failed" % failed)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
