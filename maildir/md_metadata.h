/* Inside maildir/ only: what md_mailbox.c tells md_metadata.c so that a
 * mailbox's METADATA entries (RFC 5464) follow it.  Failures are logged,
 * not returned: the mailbox operation itself has succeeded already. */
#ifndef MAILDIR_MD_METADATA_H
#define MAILDIR_MD_METADATA_H

#include "store.h"

/* from and its children ("from/x") became to ("to/x"); names normalised. */
void md_metadata_renamed(struct md_user *u, const char *from, const char *to);
/* The entries of name (not of its children) are gone with it. */
void md_metadata_deleted(struct md_user *u, const char *name);

#endif
