/* The index's records.  Every integer is big-endian; every value starts
 * with a format version byte; every decoder checks lengths (the index is a
 * file on disk and may be damaged: MD_CORRUPT, never a crash).
 *
 * Keys (user = user id u32, mbox = mailbox id u32, uid u32):
 *   meta      "version" | "next_user" | "last_uidvalidity"  -> u32
 *             "renaming" + user -> i64 time, from, NUL, to: a RENAME in
 *                                    flight (md_rename.c; no version byte)
 *   users     address ("local@domain", lower case)          -> user
 *   mboxname  user + IMAP name                              -> mbox u32
 *   mbox      user + mbox                                   -> mailbox
 *   subs      user + IMAP name                              -> "" (1 byte 0)
 *   msg       user + mbox + uid                             -> message
 *   msgmeta   user + mbox + uid                   -> md_meta_pack() bytes
 *   basename  user + mbox + Maildir base name               -> uid u32
 *   modseq    user + mbox -> dups modseq u64 + uid u32 (current modseqs)
 *   expunged  user + mbox -> dups modseq u64 + uid u32 (expunges: the
 *             expunge log, md_rec_explog_prune(); a dup with uid 0 marks
 *             the horizon: expunges up to its modseq were pruned)
 *   keyword   user + mbox + index u16                       -> name
 *   exptime   user + mbox + modseq u64 -> i64 Unix time of that expunge
 *             (md_rec_explog_prune() keeps young entries by it)
 *
 * Values:
 *   user     v1 id u32, next_mailbox_id u32, used_bytes u64,
 *            used_messages u64, root_mtime i64                     33 B
 *   mailbox  v1 uidvalidity u32, uidnext u32, highestmodseq u64,
 *            special u32, flags u32, messages u32, unseen u32,
 *            deleted u32, size u64, new_mtime i64, cur_mtime i64,
 *            name_len u16, name                                    63 B + name
 *   message  v2 in_new u8, letters u32, keywords 4 x u64, modseq u64,
 *            size u64, internal_date i64, save_date i64, pop3_size u64,
 *            fname_len u16, fname (the file name in new/ or cur/, with
 *            ":2,...")                                             80 B + fname
 *            v3 only: then uidl_len u8, uidl       80 B + fname + 1 + uidl
 *
 * Format history of the message record (every other record is v1):
 *   v1  until the POP3 size was kept: no pop3_size (72 B + fname).  Still
 *       read; pop3_size is 0 then ("not known"), and POP3 reads the file
 *       once to find it.  A v1 record is rewritten as v2 (pop3_size 0)
 *       when the message changes (flags, rename).
 *   v2  adds pop3_size (md_pop3_size(): the octets POP3 RETR sends),
 *       computed at delivery with the other metadata, so LIST and STAT
 *       never read a file.  0 means "not known" here too.  A version that
 *       knows only v1 finds v2 records corrupt and rebuilds its index
 *       (new UIDVALIDITY): do not downgrade over a v2 index.
 *   v3  v2 plus the POP3 UIDL the message had in Dovecot (uidl_len 1 to 70,
 *       RFC 1939 §7), after the file name.  Written only for messages
 *       imported from a Dovecot Maildir (md_dovecot.c); every other
 *       message keeps a v2 record and its base name is its UIDL.  A
 *       version that knows only v2 finds v3 records corrupt (see above).
 */
#include "md_private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MD_REC_V1 1
#define MD_USER_REC_LEN 33
#define MD_MBOX_REC_LEN 63
#define MD_REC_V2 2
#define MD_MSG_REC_V1_LEN 72
#define MD_MSG_REC_LEN 80 /* v2, and v3 before the file name */
#define MD_REC_V3 3

size_t md_key_mbox(unsigned char *key, uint32_t user, uint32_t mbox)
{
	md_put32(key, user);
	md_put32(key + 4, mbox);
	return 8;
}

size_t md_key_msg(unsigned char *key, uint32_t user, uint32_t mbox, uint32_t uid)
{
	md_put32(key, user);
	md_put32(key + 4, mbox);
	md_put32(key + 8, uid);
	return 12;
}

static size_t md_key_name(unsigned char *key, uint32_t user, const char *name)
{
	size_t len = strlen(name);

	if (len > MD_MAILBOX_NAME_MAX)
		len = MD_MAILBOX_NAME_MAX;
	md_put32(key, user);
	memcpy(key + 4, name, len);
	return 4 + len;
}

static enum md_result md_kv_result(int rc)
{
	return rc == 0 ? MD_OK : rc == 1 ? MD_NOTFOUND : MD_TEMPFAIL;
}

/* ---- meta counters ---------------------------------------------------- */

static enum md_result md_rec_counter(struct md_txn *t, const char *name,
				     uint32_t *v_r, uint32_t floor)
{
	struct md_val v;
	unsigned char buf[4];
	uint32_t cur = 0;
	int rc = md_kv_get(t, MD_DB_META, name, strlen(name), &v);

	if (rc < 0)
		return MD_TEMPFAIL;
	if (rc == 0) {
		if (v.len != 4)
			return MD_CORRUPT;
		cur = md_get32(v.data);
	}
	if (cur == UINT32_MAX)
		return MD_LIMIT;
	cur = cur + 1 > floor ? cur + 1 : floor;
	md_put32(buf, cur);
	if (md_kv_put(t, MD_DB_META, name, strlen(name), buf, 4, 0) < 0)
		return MD_TEMPFAIL;
	*v_r = cur;
	return MD_OK;
}

enum md_result md_rec_new_uidvalidity(struct md_txn *t, uint32_t *uv_r)
{
	/* time-based so that a rebuilt index (whose counter restarted)
	 * still gives values above the ones clients saw before */
	return md_rec_counter(t, "last_uidvalidity", uv_r, (uint32_t)time(NULL));
}

enum md_result md_rec_new_user_id(struct md_txn *t, uint32_t *id_r)
{
	return md_rec_counter(t, "next_user", id_r, 1);
}

/* ---- users ------------------------------------------------------------- */

enum md_result md_rec_user_get(struct md_txn *t, const char *address,
			       struct md_user_rec *rec)
{
	struct md_val v;
	const unsigned char *p;
	int rc = md_kv_get(t, MD_DB_USERS, address, strlen(address), &v);

	if (rc != 0)
		return md_kv_result(rc);
	p = v.data;
	if (v.len != MD_USER_REC_LEN || p[0] != MD_REC_V1)
		return MD_CORRUPT;
	rec->id = md_get32(p + 1);
	rec->next_mailbox_id = md_get32(p + 5);
	rec->used_bytes = md_get64(p + 9);
	rec->used_messages = md_get64(p + 17);
	rec->root_mtime = (int64_t)md_get64(p + 25);
	return rec->id == 0 ? MD_CORRUPT : MD_OK;
}

enum md_result md_rec_user_put(struct md_txn *t, const char *address,
			       const struct md_user_rec *rec)
{
	unsigned char p[MD_USER_REC_LEN];

	p[0] = MD_REC_V1;
	md_put32(p + 1, rec->id);
	md_put32(p + 5, rec->next_mailbox_id);
	md_put64(p + 9, rec->used_bytes);
	md_put64(p + 17, rec->used_messages);
	md_put64(p + 25, (uint64_t)rec->root_mtime);
	return md_kv_result(md_kv_put(t, MD_DB_USERS, address, strlen(address),
				      p, sizeof(p), 0));
}

/* ---- mailboxes ---------------------------------------------------------- */

enum md_result md_rec_mbox_id(struct md_txn *t, uint32_t user, const char *name,
			      uint32_t *id_r)
{
	unsigned char key[MD_KEY_MAX];
	struct md_val v;
	int rc = md_kv_get(t, MD_DB_MBOXNAME, key, md_key_name(key, user, name), &v);

	if (rc != 0)
		return md_kv_result(rc);
	if (v.len != 4)
		return MD_CORRUPT;
	*id_r = md_get32(v.data);
	return MD_OK;
}

enum md_result md_rec_mbox_get(struct md_txn *t, uint32_t user, uint32_t id,
			       struct md_mbox_rec *rec)
{
	unsigned char key[8];
	struct md_val v;
	const unsigned char *p;
	size_t nlen;
	int rc = md_kv_get(t, MD_DB_MBOX, key, md_key_mbox(key, user, id), &v);

	if (rc != 0)
		return md_kv_result(rc);
	p = v.data;
	if (v.len < MD_MBOX_REC_LEN || p[0] != MD_REC_V1)
		return MD_CORRUPT;
	nlen = (size_t)p[61] << 8 | p[62];
	if (nlen > MD_MAILBOX_NAME_MAX || v.len != MD_MBOX_REC_LEN + nlen)
		return MD_CORRUPT;
	rec->id = id;
	rec->uidvalidity = md_get32(p + 1);
	rec->uidnext = md_get32(p + 5);
	rec->highestmodseq = md_get64(p + 9);
	rec->special = md_get32(p + 17);
	rec->flags = md_get32(p + 21);
	rec->messages = md_get32(p + 25);
	rec->unseen = md_get32(p + 29);
	rec->deleted = md_get32(p + 33);
	rec->size = md_get64(p + 37);
	rec->new_mtime = (int64_t)md_get64(p + 45);
	rec->cur_mtime = (int64_t)md_get64(p + 53);
	memcpy(rec->name, p + MD_MBOX_REC_LEN, nlen);
	rec->name[nlen] = '\0';
	if (memchr(rec->name, '\0', nlen) != NULL || rec->uidnext == 0)
		return MD_CORRUPT;
	return MD_OK;
}

enum md_result md_rec_mbox_find(struct md_txn *t, uint32_t user,
				const char *name, struct md_mbox_rec *rec_r)
{
	uint32_t id;
	enum md_result r = md_rec_mbox_id(t, user, name, &id);

	if (r == MD_NOTFOUND)
		return MD_NOMAILBOX;
	if (r != MD_OK)
		return r;
	r = md_rec_mbox_get(t, user, id, rec_r);
	return r == MD_NOTFOUND ? MD_CORRUPT : r;
}

enum md_result md_rec_mbox_put(struct md_txn *t, uint32_t user,
			       const struct md_mbox_rec *rec)
{
	unsigned char key[8], p[MD_MBOX_REC_LEN + MD_MAILBOX_NAME_MAX];
	size_t nlen = strlen(rec->name);

	p[0] = MD_REC_V1;
	md_put32(p + 1, rec->uidvalidity);
	md_put32(p + 5, rec->uidnext);
	md_put64(p + 9, rec->highestmodseq);
	md_put32(p + 17, rec->special);
	md_put32(p + 21, rec->flags);
	md_put32(p + 25, rec->messages);
	md_put32(p + 29, rec->unseen);
	md_put32(p + 33, rec->deleted);
	md_put64(p + 37, rec->size);
	md_put64(p + 45, (uint64_t)rec->new_mtime);
	md_put64(p + 53, (uint64_t)rec->cur_mtime);
	p[61] = (unsigned char)(nlen >> 8);
	p[62] = (unsigned char)nlen;
	memcpy(p + MD_MBOX_REC_LEN, rec->name, nlen);
	return md_kv_result(md_kv_put(t, MD_DB_MBOX, key,
				      md_key_mbox(key, user, rec->id), p,
				      MD_MBOX_REC_LEN + nlen, 0));
}

enum md_result md_rec_mbox_create(struct md_txn *t, const char *address,
				  uint32_t user, struct md_mbox_rec *rec)
{
	unsigned char key[MD_KEY_MAX], idb[4];
	size_t klen = md_key_name(key, user, rec->name);
	struct md_user_rec urec;
	struct md_val v;
	enum md_result r;
	int rc = md_kv_get(t, MD_DB_MBOXNAME, key, klen, &v);

	if (rc < 0)
		return MD_TEMPFAIL;
	if (rc == 0)
		return MD_EXISTS;
	if ((r = md_rec_user_get(t, address, &urec)) != MD_OK)
		return r == MD_NOTFOUND ? MD_CORRUPT : r;
	if (urec.next_mailbox_id == UINT32_MAX)
		return MD_LIMIT;
	rec->id = urec.next_mailbox_id++;
	if ((r = md_rec_user_put(t, address, &urec)) != MD_OK)
		return r;
	if (rec->uidvalidity == 0 &&
	    (r = md_rec_new_uidvalidity(t, &rec->uidvalidity)) != MD_OK)
		return r;
	if (rec->uidnext == 0)
		rec->uidnext = 1;
	if (rec->highestmodseq == 0)
		rec->highestmodseq = 1;
	md_put32(idb, rec->id);
	if (md_kv_put(t, MD_DB_MBOXNAME, key, klen, idb, 4, 0) < 0)
		return MD_TEMPFAIL;
	return md_rec_mbox_put(t, user, rec);
}

enum md_result md_rec_mbox_drop(struct md_txn *t, const char *address,
				uint32_t user, uint32_t id)
{
	unsigned char key[MD_KEY_MAX];
	struct md_mbox_rec rec;
	struct md_user_rec urec;
	enum md_result r = md_rec_mbox_get(t, user, id, &rec);
	size_t klen;

	if (r != MD_OK)
		return r == MD_NOTFOUND ? MD_NOMAILBOX : r;
	klen = md_key_mbox(key, user, id);
	if (md_kv_del_prefix(t, MD_DB_MSG, key, klen) < 0 ||
	    md_kv_del_prefix(t, MD_DB_MSGMETA, key, klen) < 0 ||
	    md_kv_del_prefix(t, MD_DB_BASENAME, key, klen) < 0 ||
	    md_kv_del_prefix(t, MD_DB_KEYWORD, key, klen) < 0 ||
	    md_kv_del(t, MD_DB_MODSEQ, key, klen, NULL, 0) < 0 ||
	    md_kv_del(t, MD_DB_EXPUNGED, key, klen, NULL, 0) < 0 ||
	    md_kv_del_prefix(t, MD_DB_EXPTIME, key, klen) < 0 ||
	    md_kv_del(t, MD_DB_MBOX, key, klen, NULL, 0) < 0)
		return MD_TEMPFAIL;
	klen = md_key_name(key, user, rec.name);
	if (md_kv_del(t, MD_DB_MBOXNAME, key, klen, NULL, 0) < 0)
		return MD_TEMPFAIL;
	if ((r = md_rec_user_get(t, address, &urec)) != MD_OK)
		return r == MD_NOTFOUND ? MD_CORRUPT : r;
	urec.used_bytes -= urec.used_bytes < rec.size ? urec.used_bytes : rec.size;
	urec.used_messages -= urec.used_messages < rec.messages ?
			      urec.used_messages : rec.messages;
	return md_rec_user_put(t, address, &urec);
}

/* ---- messages ------------------------------------------------------------ */

enum md_result md_rec_msg_decode(const struct md_val *key,
				 const struct md_val *val, struct md_msg_rec *rec)
{
	const unsigned char *p = val->data;
	size_t flen, fixed;

	if (key->len != 12 || val->len < MD_MSG_REC_V1_LEN)
		return MD_CORRUPT;
	if (p[0] == MD_REC_V1)
		fixed = MD_MSG_REC_V1_LEN;
	else if ((p[0] == MD_REC_V2 || p[0] == MD_REC_V3) && val->len >= MD_MSG_REC_LEN)
		fixed = MD_MSG_REC_LEN;
	else
		return MD_CORRUPT;
	flen = (size_t)p[fixed - 2] << 8 | p[fixed - 1];
	if (flen == 0 || flen > MD_FILENAME_MAX)
		return MD_CORRUPT;
	rec->uidl[0] = '\0';
	if (p[0] == MD_REC_V3) {
		size_t ulen = val->len > fixed + flen ? p[fixed + flen] : 0;

		if (ulen == 0 || ulen > MD_UIDL_MAX ||
		    val->len != fixed + flen + 1 + ulen)
			return MD_CORRUPT;
		memcpy(rec->uidl, p + fixed + flen + 1, ulen);
		rec->uidl[ulen] = '\0';
		for (size_t i = 0; i < ulen; i++)
			if ((unsigned char)rec->uidl[i] < 0x21 ||
			    (unsigned char)rec->uidl[i] > 0x7e)
				return MD_CORRUPT;
	} else if (val->len != fixed + flen) {
		return MD_CORRUPT;
	}
	rec->uid = md_get32((const unsigned char *)key->data + 8);
	rec->in_new = p[1] != 0;
	rec->letters = md_get32(p + 2);
	for (int i = 0; i < MD_KW_WORDS; i++)
		rec->kw[i] = md_get64(p + 6 + 8 * i);
	rec->modseq = md_get64(p + 38);
	rec->size = md_get64(p + 46);
	rec->internal_date = (int64_t)md_get64(p + 54);
	rec->save_date = (int64_t)md_get64(p + 62);
	rec->pop3_size = fixed == MD_MSG_REC_LEN ? md_get64(p + 70) : 0;
	memcpy(rec->fname, p + fixed, flen);
	rec->fname[flen] = '\0';
	if (memchr(rec->fname, '\0', flen) != NULL || memchr(rec->fname, '/', flen))
		return MD_CORRUPT;
	return MD_OK;
}

enum md_result md_rec_msg_get(struct md_txn *t, uint32_t user, uint32_t mbox,
			      uint32_t uid, struct md_msg_rec *rec_r)
{
	unsigned char key[12];
	struct md_val k = { key, md_key_msg(key, user, mbox, uid) }, v;
	int rc = md_kv_get(t, MD_DB_MSG, key, k.len, &v);

	if (rc != 0)
		return md_kv_result(rc);
	return md_rec_msg_decode(&k, &v, rec_r);
}

static size_t md_key_base(unsigned char *key, uint32_t user, uint32_t mbox,
			  const char *base, size_t blen)
{
	md_key_mbox(key, user, mbox);
	memcpy(key + 8, base, blen);
	return 8 + blen;
}

static void md_dup(unsigned char *dup, uint64_t modseq, uint32_t uid)
{
	md_put64(dup, modseq);
	md_put32(dup + 8, uid);
}

enum md_result md_rec_msg_put(struct md_txn *t, uint32_t user, uint32_t mbox,
			      const struct md_msg_rec *rec,
			      const struct md_msg_rec *old)
{
	unsigned char key[MD_KEY_MAX],
		p[MD_MSG_REC_LEN + MD_FILENAME_MAX + 1 + MD_UIDL_MAX], dup[12];
	size_t flen = strlen(rec->fname), ulen = strnlen(rec->uidl, MD_UIDL_MAX),
	       blen, mlen, plen;
	uint32_t letters;
	uint64_t kw[MD_KW_WORDS];

	p[0] = ulen > 0 ? MD_REC_V3 : MD_REC_V2;
	p[1] = rec->in_new;
	md_put32(p + 2, rec->letters);
	for (int i = 0; i < MD_KW_WORDS; i++)
		md_put64(p + 6 + 8 * i, rec->kw[i]);
	md_put64(p + 38, rec->modseq);
	md_put64(p + 46, rec->size);
	md_put64(p + 54, (uint64_t)rec->internal_date);
	md_put64(p + 62, (uint64_t)rec->save_date);
	md_put64(p + 70, rec->pop3_size);
	p[78] = (unsigned char)(flen >> 8);
	p[79] = (unsigned char)flen;
	memcpy(p + MD_MSG_REC_LEN, rec->fname, flen);
	plen = MD_MSG_REC_LEN + flen;
	if (ulen > 0) {
		p[plen++] = (unsigned char)ulen;
		memcpy(p + plen, rec->uidl, ulen);
		plen += ulen;
	}
	if (md_kv_put(t, MD_DB_MSG, key, md_key_msg(key, user, mbox, rec->uid),
		      p, plen, 0) < 0)
		return MD_TEMPFAIL;

	md_fname_parse(rec->fname, &blen, &letters, kw);
	if (old == NULL || strncmp(old->fname, rec->fname, blen) != 0 ||
	    (old->fname[blen] != '\0' && old->fname[blen] != ':')) {
		unsigned char uidb[4];

		if (old != NULL) {
			size_t oblen;

			md_fname_parse(old->fname, &oblen, &letters, kw);
			if (md_kv_del(t, MD_DB_BASENAME, key,
				      md_key_base(key, user, mbox, old->fname,
						  oblen), NULL, 0) < 0)
				return MD_TEMPFAIL;
		}
		md_put32(uidb, rec->uid);
		if (md_kv_put(t, MD_DB_BASENAME, key,
			      md_key_base(key, user, mbox, rec->fname, blen),
			      uidb, 4, 0) < 0)
			return MD_TEMPFAIL;
	}
	if (old == NULL || old->modseq != rec->modseq) {
		mlen = md_key_mbox(key, user, mbox);
		if (old != NULL) {
			md_dup(dup, old->modseq, old->uid);
			if (md_kv_del(t, MD_DB_MODSEQ, key, mlen, dup, 12) < 0)
				return MD_TEMPFAIL;
		}
		md_dup(dup, rec->modseq, rec->uid);
		if (md_kv_put(t, MD_DB_MODSEQ, key, mlen, dup, 12, 0) < 0)
			return MD_TEMPFAIL;
	}
	return MD_OK;
}

enum md_result md_rec_msg_del(struct md_txn *t, uint32_t user, uint32_t mbox,
			      const struct md_msg_rec *rec, uint64_t modseq)
{
	unsigned char key[MD_KEY_MAX], dup[12];
	size_t klen = md_key_msg(key, user, mbox, rec->uid), blen;
	uint32_t letters;
	uint64_t kw[MD_KW_WORDS];

	if (md_kv_del(t, MD_DB_MSG, key, klen, NULL, 0) < 0 ||
	    md_kv_del(t, MD_DB_MSGMETA, key, klen, NULL, 0) < 0)
		return MD_TEMPFAIL;
	md_fname_parse(rec->fname, &blen, &letters, kw);
	if (md_kv_del(t, MD_DB_BASENAME, key,
		      md_key_base(key, user, mbox, rec->fname, blen), NULL, 0) < 0)
		return MD_TEMPFAIL;
	klen = md_key_mbox(key, user, mbox);
	md_dup(dup, rec->modseq, rec->uid);
	if (md_kv_del(t, MD_DB_MODSEQ, key, klen, dup, 12) < 0)
		return MD_TEMPFAIL;
	md_dup(dup, modseq, rec->uid);
	if (md_kv_put(t, MD_DB_EXPUNGED, key, klen, dup, 12, 0) < 0)
		return MD_TEMPFAIL;
	if (md_txn_store(t)->explog_age > 0) {
		unsigned char tkey[16], when[8];

		md_key_mbox(tkey, user, mbox);
		md_put64(tkey + 8, modseq);
		md_put64(when, (uint64_t)time(NULL));
		if (md_kv_put(t, MD_DB_EXPTIME, tkey, 16, when, 8, 0) < 0)
			return MD_TEMPFAIL;
	}
	return md_rec_explog_prune(t, user, mbox, md_txn_store(t)->explog_max);
}

enum md_result md_rec_basename_uid(struct md_txn *t, uint32_t user,
				   uint32_t mbox, const char *base, size_t blen,
				   uint32_t *uid_r)
{
	unsigned char key[MD_KEY_MAX];
	struct md_val v;
	int rc;

	if (blen > MD_FILENAME_MAX)
		return MD_NOTFOUND;
	rc = md_kv_get(t, MD_DB_BASENAME, key,
		       md_key_base(key, user, mbox, base, blen), &v);
	if (rc != 0)
		return md_kv_result(rc);
	if (v.len != 4)
		return MD_CORRUPT;
	*uid_r = md_get32(v.data);
	return MD_OK;
}

void md_rec_count(struct md_mbox_rec *mb, const struct md_msg_rec *msg, int sign)
{
	unsigned flags = md_letters_to_flags(msg->letters);

	if (sign > 0) {
		mb->messages++;
		mb->size += msg->size;
		if (!(flags & MD_FLAG_SEEN))
			mb->unseen++;
		if (flags & MD_FLAG_DELETED)
			mb->deleted++;
	} else {
		/* the counters are a cache: never wrap on a damaged index */
		mb->messages -= mb->messages > 0;
		mb->size -= mb->size < msg->size ? mb->size : msg->size;
		if (!(flags & MD_FLAG_SEEN))
			mb->unseen -= mb->unseen > 0;
		if (flags & MD_FLAG_DELETED)
			mb->deleted -= mb->deleted > 0;
	}
}

void md_rec_quota(struct md_user_rec *u, const struct md_msg_rec *msg, int sign)
{
	if (sign > 0) {
		u->used_bytes += msg->size;
		u->used_messages++;
	} else {
		u->used_bytes -= u->used_bytes < msg->size ? u->used_bytes : msg->size;
		u->used_messages -= u->used_messages > 0;
	}
}

/* ---- subscriptions -------------------------------------------------------- */

bool md_rec_subscribed(struct md_txn *t, uint32_t user, const char *name)
{
	unsigned char key[MD_KEY_MAX];
	struct md_val v;

	return md_kv_get(t, MD_DB_SUBS, key, md_key_name(key, user, name), &v) == 0;
}

enum md_result md_rec_subscribe(struct md_txn *t, uint32_t user,
				const char *name, bool on)
{
	unsigned char key[MD_KEY_MAX], zero = 0;
	size_t klen = md_key_name(key, user, name);
	int rc = on ? md_kv_put(t, MD_DB_SUBS, key, klen, &zero, 1, 0) :
		 md_kv_del(t, MD_DB_SUBS, key, klen, NULL, 0);

	return rc < 0 ? MD_TEMPFAIL : MD_OK;
}

/* ---- keywords ----------------------------------------------------------- */

enum md_result md_kw_load(struct md_txn *t, uint32_t user, uint32_t mbox,
			  struct md_kwtab *tab)
{
	unsigned char prefix[8];
	struct md_cursor *cur;
	struct md_val k, v;
	int rc;

	memset(tab, 0, sizeof(*tab));
	if (md_cursor_open(t, MD_DB_KEYWORD, prefix,
			   md_key_mbox(prefix, user, mbox), &cur) < 0)
		return MD_TEMPFAIL;
	for (rc = md_cursor_seek(cur, prefix, 8, &k, &v); rc == 0;
	     rc = md_cursor_next(cur, &k, &v)) {
		const unsigned char *kp = k.data;
		unsigned i;

		if (k.len != 10 || v.len == 0 || v.len > MD_KEYWORD_LEN_MAX)
			continue; /* damaged entry: the keyword is lost */
		i = (unsigned)kp[8] << 8 | kp[9];
		if (i >= MD_KEYWORDS_MAX || tab->names[i] != NULL)
			continue;
		tab->names[i] = strndup(v.data, v.len);
		if (tab->names[i] == NULL) {
			rc = -1;
			break;
		}
		if (i + 1 > tab->n)
			tab->n = i + 1;
	}
	md_cursor_close(cur);
	if (rc < 0) {
		md_kw_free(tab);
		return MD_TEMPFAIL;
	}
	return MD_OK;
}

enum md_result md_kw_names(struct md_txn *t, uint32_t user, uint32_t mbox,
			   char ***names_r, size_t *n_r)
{
	struct md_kwtab tab;
	char **names;
	enum md_result r = md_kw_load(t, user, mbox, &tab);

	if (r != MD_OK)
		return r;
	names = calloc(tab.n + 1, sizeof(*names));
	if (names == NULL) {
		md_kw_free(&tab);
		return MD_TEMPFAIL;
	}
	for (size_t i = 0; i < tab.n; i++) {
		names[i] = tab.names[i]; /* ownership moves */
		tab.names[i] = NULL;
	}
	*names_r = names;
	*n_r = tab.n;
	md_kw_free(&tab);
	return MD_OK;
}

void md_kw_free(struct md_kwtab *tab)
{
	for (size_t i = 0; i < tab->n; i++)
		free(tab->names[i]);
	memset(tab, 0, sizeof(*tab));
}

int md_kw_find(const struct md_kwtab *tab, const char *name)
{
	/* RFC 3501 §2.3.2 keywords are compared without case */
	for (size_t i = 0; i < tab->n; i++)
		if (tab->names[i] != NULL && strcasecmp(tab->names[i], name) == 0)
			return (int)i;
	return -1;
}

enum md_result md_kw_set(struct md_txn *t, uint32_t user, uint32_t mbox,
			 struct md_kwtab *tab, int idx, const char *name)
{
	unsigned char key[10];
	char *copy;

	if (idx < 0 || idx >= MD_KEYWORDS_MAX)
		return MD_LIMIT;
	md_key_mbox(key, user, mbox);
	key[8] = (unsigned char)(idx >> 8);
	key[9] = (unsigned char)idx;
	if ((copy = strdup(name)) == NULL)
		return MD_TEMPFAIL;
	if (md_kv_put(t, MD_DB_KEYWORD, key, 10, name, strlen(name), 0) < 0) {
		free(copy);
		return MD_TEMPFAIL;
	}
	free(tab->names[idx]);
	tab->names[idx] = copy;
	if ((size_t)idx + 1 > tab->n)
		tab->n = (size_t)idx + 1;
	return MD_OK;
}

enum md_result md_kw_ensure(struct md_txn *t, uint32_t user, uint32_t mbox,
			    struct md_kwtab *tab, const char *name, int *idx_r,
			    bool *created_r)
{
	int i = md_kw_find(tab, name);
	enum md_result r;

	if (i >= 0) {
		*idx_r = i;
		return MD_OK;
	}
	/* the first free index: letters a..z for Maildir names come first */
	for (i = 0; i < MD_KEYWORDS_MAX && tab->names[i] != NULL; i++)
		;
	if (i == MD_KEYWORDS_MAX)
		return MD_LIMIT;
	if ((r = md_kw_set(t, user, mbox, tab, i, name)) != MD_OK)
		return r;
	*idx_r = i;
	if (i < 26)
		*created_r = true;
	return MD_OK;
}

/* ---- the expunge log -------------------------------------------------- */

/* When the expunge of modseq happened (0: not recorded). */
static int64_t md_explog_time(struct md_txn *t, uint32_t user, uint32_t mbox, uint64_t modseq)
{
	unsigned char key[16];
	struct md_val v;

	md_key_mbox(key, user, mbox);
	md_put64(key + 8, modseq);
	if (md_kv_get(t, MD_DB_EXPTIME, key, 16, &v) != 0 || v.len != 8)
		return 0;
	return (int64_t)md_get64(v.data);
}

/* Forget the times of expunges below the horizon (collected, then
 * deleted once the cursor is closed). */
static enum md_result md_explog_times_drop(struct md_txn *t, uint32_t user, uint32_t mbox,
					   uint64_t horizon)
{
	unsigned char prefix[8], *keys = NULL;
	struct md_cursor *cur;
	struct md_val k, v;
	size_t n = 0, cap = 0;
	int rc;

	md_key_mbox(prefix, user, mbox);
	if (md_cursor_open(t, MD_DB_EXPTIME, prefix, 8, &cur) < 0)
		return MD_TEMPFAIL;
	for (rc = md_cursor_seek(cur, prefix, 8, &k, &v); rc == 0;
	     rc = md_cursor_next(cur, &k, &v)) {
		if (k.len != 16 || md_get64((const unsigned char *)k.data + 8) >= horizon)
			break;
		if (n == cap) {
			unsigned char *nk = realloc(keys, (cap = cap ? cap * 2 : 16) * 16);

			if (nk == NULL) {
				rc = -1;
				break;
			}
			keys = nk;
		}
		memcpy(keys + 16 * n++, k.data, 16);
	}
	md_cursor_close(cur);
	for (size_t i = 0; rc >= 0 && i < n; i++)
		if (md_kv_del(t, MD_DB_EXPTIME, keys + 16 * i, 16, NULL, 0) < 0)
			rc = -1;
	free(keys);
	return rc < 0 ? MD_TEMPFAIL : MD_OK;
}

enum md_result md_rec_explog_horizon(struct md_txn *t, uint32_t user, uint32_t mbox,
				     uint64_t modseq)
{
	unsigned char key[8], dup[12];

	md_key_mbox(key, user, mbox);
	md_put64(dup, modseq);
	md_put32(dup + 8, 0);
	/* the same pair again is no change (LMDB dup data is a set) */
	return md_kv_put(t, MD_DB_EXPUNGED, key, 8, dup, 12, 0) < 0 ? MD_TEMPFAIL : MD_OK;
}

/* Keep the newest max entries of a mailbox's expunge log (RFC 7162 §3.2.5.2
 * lets a server forget expunges: a client asking from before the horizon
 * gets every UID it knows that no longer exists), except those younger than
 * the store's explog_age (config imap_expunge_log_age).  The horizon marker
 * (modseq H, uid 0) replaces the entries removed: all of them had a
 * mod-sequence <= H.  Entries are collected first and deleted after the
 * cursor is closed. */
enum md_result md_rec_explog_prune(struct md_txn *t, uint32_t user,
				   uint32_t mbox, size_t max)
{
	unsigned char key[8], dup[12];
	struct md_cursor *cur;
	struct md_val v;
	unsigned char *gone = NULL;
	size_t count, n_gone = 0, cap = 0, excess, marker;
	uint64_t horizon = 0;
	int64_t age = md_txn_store(t)->explog_age, now = (int64_t)time(NULL);
	int rc;

	md_key_mbox(key, user, mbox);
	if (md_kv_dup_count(t, MD_DB_EXPUNGED, key, 8, &count) < 0)
		return MD_TEMPFAIL;
	if (count <= max)
		return MD_OK;
	md_put64(dup, 0);
	md_put32(dup + 8, 0);
	if (md_cursor_open(t, MD_DB_EXPUNGED, key, 8, &cur) < 0)
		return MD_TEMPFAIL;
	rc = md_cursor_seek_dup(cur, key, 8, dup, 12, &v);
	/* a marker sorts first (every entry left has a modseq >= its own) */
	marker = rc == 0 && v.len == 12 && md_get32((const unsigned char *)v.data + 8) == 0;
	if (rc != 0 || count - marker <= max) {
		md_cursor_close(cur);
		return rc < 0 ? MD_TEMPFAIL : MD_OK;
	}
	excess = count - max; /* the old marker goes too, replaced below */
	for (; rc == 0 && n_gone < excess; rc = md_cursor_next_dup(cur, &v)) {
		uint64_t ms;

		if (v.len != 12)
			continue;
		ms = md_get64(v.data);
		/* beyond the newest max, but younger than the age: kept, and
		 * so is every later one */
		if (md_get32((const unsigned char *)v.data + 8) != 0 && age > 0 &&
		    md_explog_time(t, user, mbox, ms) >= now - age)
			break;
		if (n_gone == cap) {
			/* grown as found: young entries may stop it early */
			unsigned char *ng = realloc(gone, (cap = cap ? cap * 2 : 64) * 12);

			if (ng == NULL) {
				rc = -1;
				break;
			}
			gone = ng;
		}
		horizon = ms > horizon ? ms : horizon;
		memcpy(gone + 12 * n_gone++, v.data, 12);
	}
	md_cursor_close(cur);
	for (size_t i = 0; rc >= 0 && i < n_gone; i++)
		if (md_kv_del(t, MD_DB_EXPUNGED, key, 8, gone + 12 * i, 12) < 0)
			rc = -1;
	free(gone);
	if (rc < 0)
		return MD_TEMPFAIL;
	if (n_gone == 0)
		return MD_OK;
	md_put64(dup, horizon);
	md_put32(dup + 8, 0);
	if (md_kv_put(t, MD_DB_EXPUNGED, key, 8, dup, 12, 0) < 0)
		return MD_TEMPFAIL;
	return md_explog_times_drop(t, user, mbox, horizon);
}
