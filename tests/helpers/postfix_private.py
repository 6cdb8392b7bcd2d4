"""A private Postfix instance for tests and benchmarks: its own
config_directory, queue_directory and data_directory under a temporary
directory, started with `postfix -c DIR start`, never the system's
(not a test itself).

    etc, spool, data = postfix_dirs(base)
    main.cf: MAIN_CF_HEAD.format(etc=etc, spool=spool, data=data) + your lines
    master.cf: MASTER_CF.format(port=SMTPD_PORT)
"""
import os
import shutil

# The services Postfix needs, with smtpd on one loopback port; nothing
# chrooted (the temp dir is no chroot).
MASTER_CF = """\
{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

# The directories of the private instance; Debian's binaries and the
# postfix user and postdrop group of the package.
MAIN_CF_HEAD = """\
compatibility_level = 3.6
config_directory = {etc}
queue_directory = {spool}
data_directory = {data}
meta_directory = /etc/postfix
daemon_directory = /usr/lib/postfix/sbin
command_directory = /usr/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
"""


def postfix_dirs(base):
    """etc, spool and data under base (made world-readable: Postfix's
    unprivileged daemons work in them); returns the three paths."""
    paths = tuple(os.path.join(base, x) for x in ("etc", "spool", "data"))
    for p in paths:
        os.makedirs(p, exist_ok=True)
    shutil.chown(paths[2], "postfix", "postfix")
    os.chmod(base, 0o755)
    return paths
