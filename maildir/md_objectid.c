/* Object identifiers (RFC 8474): MAILBOXID and EMAILID.
 *
 * MAILBOXID lives with the mailbox's directory, in its postern-mailboxid
 * file (the Maildir root's for INBOX): one line holding the id.  So a
 * RENAME, which renames the directory, keeps it (RFC 8474 §4.1), a DELETE
 * takes it away with the directory, and a mailbox created again under the
 * same name gets a new one; a rebuilt index (`postern reindex`) does not
 * change it.  The file is made at the first need: a folder Dovecot had
 * takes Dovecot's mailbox GUID (dovecot-uidlist's "G" field, 32 hex
 * digits: the id Dovecot itself keeps for the mailbox; all zeros means
 * none), any other gets "F" and 128 random bits in hex.  It is written with link(2), so
 * two sessions asking at once agree on the first one written.
 *
 * EMAILID is derived from the Maildir base name, the one thing of a
 * message that never changes (flag changes only touch what follows ':'):
 * "M" and the first 96 bits of the SHA-256 of the base name, in hex.
 * COPY and MOVE (md_copy.c) give the copy a new base name, so they write
 * the original's EMAILID into it as a ",E=<emailid>" field (Dovecot and
 * mutt ignore fields they do not know); a base name with that field has
 * that EMAILID.  So a message and its copies share one EMAILID (RFC 8474
 * §5.1), across a reindex too.  A copy made by another program (mutt,
 * Dovecot) gets an EMAILID of its own.
 */
#include "md_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log.h"

#define MD_MAILBOXID_FILE "postern-mailboxid"
#define MD_MAILBOXID_BITS 128       /* random bits of a new MAILBOXID */
#define MD_EMAILID_HASH_OCTETS 12   /* 96 bits of SHA-256: no collision in
				     * any mailbox that fits on a disk */
#define MD_EMAILID_FIELD ",E="

/* RFC 8474 §4: objectid = 1*255(ALPHA / DIGIT / "_" / "-") */
static bool md_objectid_valid(const char *s, size_t len)
{
	if (len == 0 || len > MD_OBJECTID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static void md_objectid_hex(const unsigned char *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* The id in dir's file: 0, 1 when there is none (or an unusable one),
 * -1 on a read error. */
static int md_mailboxid_read(const char *path, char *id_r)
{
	char *text;
	size_t len;

	if (read_small_file(path, MD_OBJECTID_MAX + 2, &text, &len) < 0)
		return errno == ENOENT || errno == EFBIG ? 1 : -1;
	if (len > 0 && text[len - 1] == '\n')
		text[--len] = '\0';
	if (!md_objectid_valid(text, len)) {
		free(text);
		return 1;
	}
	memcpy(id_r, text, len + 1);
	free(text);
	return 0;
}

/* A new MAILBOXID for the folder in dir. */
static int md_mailboxid_new(const char *dir, char *id_r)
{
	unsigned char rnd[MD_MAILBOXID_BITS / 8];
	struct md_dovecot dc;

	if (md_dovecot_read(dir, true, NULL, NULL, &dc) == 0) {
		bool usable = dc.guid[0] != '\0' &&
			      strspn(dc.guid, "0") != MD_DCGUID_LEN;

		if (usable)
			memcpy(id_r, dc.guid, MD_DCGUID_LEN + 1);
		md_dovecot_free(&dc);
		if (usable)
			return 0;
	}
	if (random_bytes(rnd, sizeof(rnd)) < 0)
		return -1;
	id_r[0] = 'F';
	md_objectid_hex(rnd, sizeof(rnd), id_r + 1);
	return 0;
}

/* The MAILBOXID of the mailbox whose directory is dir, made when missing. */
static enum md_result md_mailboxid_dir(struct md_user *u, const char *dir,
				       char *id_r)
{
	char path[PATH_MAX], text[MD_OBJECTID_MAX + 2];
	struct stat st;
	int rc;

	if (md_pathf(path, sizeof(path), "%s/%s", dir, MD_MAILBOXID_FILE) < 0)
		return MD_CORRUPT;
	for (int attempt = 0; attempt < 2; attempt++) {
		if ((rc = md_mailboxid_read(path, id_r)) <= 0)
			break;
		if (stat(dir, &st) < 0) {
			md_user_seterr(u, "%s: %s", dir, strerror(errno));
			return errno == ENOENT ? MD_NOMAILBOX : MD_TEMPFAIL;
		}
		if (md_mailboxid_new(dir, id_r) < 0)
			return MD_TEMPFAIL;
		snprintf(text, sizeof(text), "%s\n", id_r);
		/* a damaged file is replaced; else the first writer wins */
		if (access(path, F_OK) == 0 ?
		    write_file_atomic(path, text, strlen(text), 0600) == 0 :
		    write_file_new(path, text, strlen(text), 0600) == 0)
			return MD_OK;
		if (errno != EEXIST) {
			md_user_seterr(u, "%s: %s", path, strerror(errno));
			return MD_TEMPFAIL;
		}
	}
	if (rc < 0) {
		md_user_seterr(u, "%s: %s", path, strerror(errno));
		return MD_TEMPFAIL;
	}
	return rc == 0 ? MD_OK : MD_TEMPFAIL;
}

enum md_result md_mailbox_objectid(struct md_user *u, const char *name,
				   char *id_r)
{
	char norm[MD_MAILBOX_NAME_MAX + 1], dir[PATH_MAX];
	enum md_result r = md_mailbox_name_norm(name, norm, sizeof(norm));

	if (r != MD_OK)
		return r;
	if (md_mailbox_dir(u->root, norm, dir, sizeof(dir)) < 0)
		return MD_LIMIT;
	return md_mailboxid_dir(u, dir, id_r);
}

enum md_result md_mailbox_open_objectid(struct md_mailbox *mb, char *id_r)
{
	struct md_mbox_rec rec;
	struct md_txn *t;
	char dir[PATH_MAX];
	enum md_result r = md_read_begin(mb->user->store, &t);

	if (r != MD_OK)
		return r;
	r = md_mbox_dir(mb->user, t, mb->id, &rec, dir, sizeof(dir));
	md_read_end(t);
	return r != MD_OK ? r : md_mailboxid_dir(mb->user, dir, id_r);
}

/* The ",E=" field of base[0..blen), or NULL; its length in *len_r. */
static const char *md_emailid_field(const char *base, size_t blen, size_t *len_r)
{
	const char *end = base + blen;

	for (const char *p = base; p + 3 <= end; p++) {
		if (memcmp(p, MD_EMAILID_FIELD, 3) != 0)
			continue;
		*len_r = strcspn(p + 3, ",:");
		if (p + 3 + *len_r > end)
			*len_r = (size_t)(end - (p + 3));
		if (md_objectid_valid(p + 3, *len_r))
			return p + 3;
	}
	return NULL;
}

void md_emailid_of(const char *fname, char *id_r)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t blen = strcspn(fname, ":"), flen;
	const char *field = md_emailid_field(fname, blen, &flen);

	if (field != NULL) {
		memcpy(id_r, field, flen);
		id_r[flen] = '\0';
		return;
	}
	if (EVP_Digest(fname, blen, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen < MD_EMAILID_HASH_OCTETS)
		memset(md, 0, sizeof(md)); /* never: SHA-256 is built in */
	id_r[0] = 'M';
	md_objectid_hex(md, MD_EMAILID_HASH_OCTETS, id_r + 1);
}

void md_msg_emailid(const struct md_msg *msg, char *id_r)
{
	md_emailid_of(msg->basename != NULL ? msg->basename :
		      msg->path != NULL ? strrchr(msg->path, '/') + 1 : "", id_r);
}

int md_emailid_name(const char *src_fname, char *base, size_t baselen)
{
	char id[MD_OBJECTID_MAX + 1];
	size_t len = strlen(base);

	md_emailid_of(src_fname, id);
	if (len + strlen(MD_EMAILID_FIELD) + strlen(id) >= baselen ||
	    len + strlen(MD_EMAILID_FIELD) + strlen(id) > MD_FILENAME_MAX - 40)
		return -1; /* room for ":2," and the letters must stay */
	snprintf(base + len, baselen - len, "%s%s", MD_EMAILID_FIELD, id);
	return 0;
}
