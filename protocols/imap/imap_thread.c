/* THREAD and UID THREAD (RFC 5256 §3): ORDEREDSUBJECT and REFERENCES
 * (§2.2, the algorithm's steps are numbered as there).
 *
 * The keys are SORT's (imap_sort_collect(): base subject, sent date,
 * message-id, in-reply-to, References, from the index alone).  The
 * threads are built as a forest of nodes (a node is a message or a
 * "dummy" standing for a referenced message not in the set); every walk
 * over it is iterative, so a long reference chain cannot exhaust the
 * worker's stack.
 *
 * Message ids are compared as octets; a valid one is "<" left "@" right
 * ">" without whitespace or angle brackets inside (RFC 5322 §3.6.4
 * msg-id; anything else in the field is skipped).  A message without a
 * valid id, or with the id of an earlier message, gets a unique one.
 * References of more than IMAP_THREAD_REFS_MAX ids use the last ones.
 * Base subjects are compared as SORT compares them: by RFC 5051
 * i;unicode-casemap (RFC 5256 §5), mapped once when the keys are
 * collected, so that equal means equal octets (ids and subjects share one
 * hash table kind).
 *
 * Memory: nodes, hash tables and the output are sized by the matching
 * messages and their (bounded) references; all freed by the command's
 * cmd_free or before the work function returns.
 */
#include "imap_private.h"

#include <stdlib.h>
#include <string.h>

#include "store.h"

/* Ids of one References field used (the last ones: the nearest
 * ancestors).  RFC 5256 sets no bound; this keeps the nodes a THREAD
 * builds proportional to the messages. */
#define IMAP_THREAD_REFS_MAX 128
#define IMAP_THREAD_NONE (-1)

enum imap_thread_alg {
	IMAP_THREAD_ORDEREDSUBJECT,
	IMAP_THREAD_REFERENCES,
};

struct imap_thread_cmd {
	enum imap_thread_alg alg;
	struct imap_sort_set set;
};

/* Siblings are a doubly linked list with the parent holding both ends,
 * so that linking and unlinking cost O(1) however many children the root
 * has. */
struct imap_thread_node {
	int32_t msg; /* index in the set, IMAP_THREAD_NONE for a dummy */
	int32_t parent, child, last, next, prev;
};

struct imap_thread_forest {
	struct imap_thread_node *nodes;
	size_t n, cap;
	const struct imap_sort_set *set;
};

/* ---- nodes ----------------------------------------------------------------- */

static int32_t imap_thread_node_new(struct imap_thread_forest *f, int32_t msg)
{
	struct imap_thread_node *nd;

	if (f->n == f->cap) {
		size_t ncap = f->cap == 0 ? 64 : f->cap * 2;
		struct imap_thread_node *nn = realloc(f->nodes, ncap * sizeof(*nn));

		if (nn == NULL)
			return IMAP_THREAD_NONE;
		f->nodes = nn;
		f->cap = ncap;
	}
	nd = &f->nodes[f->n];
	nd->msg = msg;
	nd->parent = nd->child = nd->last = nd->next = nd->prev = IMAP_THREAD_NONE;
	return (int32_t)f->n++;
}

static void imap_thread_unlink(struct imap_thread_forest *f, int32_t c)
{
	struct imap_thread_node *nd = &f->nodes[c];
	int32_t p = nd->parent;

	if (p == IMAP_THREAD_NONE)
		return;
	if (nd->prev != IMAP_THREAD_NONE)
		f->nodes[nd->prev].next = nd->next;
	else
		f->nodes[p].child = nd->next;
	if (nd->next != IMAP_THREAD_NONE)
		f->nodes[nd->next].prev = nd->prev;
	else
		f->nodes[p].last = nd->prev;
	nd->parent = nd->next = nd->prev = IMAP_THREAD_NONE;
}

/* Append c (unlinked) to p's children. */
static void imap_thread_adopt(struct imap_thread_forest *f, int32_t p, int32_t c)
{
	struct imap_thread_node *pn = &f->nodes[p], *cn = &f->nodes[c];

	cn->parent = p;
	cn->next = IMAP_THREAD_NONE;
	cn->prev = pn->last;
	if (pn->last != IMAP_THREAD_NONE)
		f->nodes[pn->last].next = c;
	else
		pn->child = c;
	pn->last = c;
}

/* Move every child of from to the end of to's children, in order. */
static void imap_thread_adopt_children(struct imap_thread_forest *f, int32_t to, int32_t from)
{
	int32_t c = f->nodes[from].child, next;

	f->nodes[from].child = f->nodes[from].last = IMAP_THREAD_NONE;
	for (; c != IMAP_THREAD_NONE; c = next) {
		next = f->nodes[c].next;
		f->nodes[c].parent = f->nodes[c].next = f->nodes[c].prev = IMAP_THREAD_NONE;
		imap_thread_adopt(f, to, c);
	}
}

/* Is a the same as d or one of d's ancestors?  Then making a a child of
 * d would make a loop (§2.2 step 1). */
static bool imap_thread_is_ancestor(const struct imap_thread_forest *f, int32_t a, int32_t d)
{
	/* a node without children is nobody's ancestor: no walk up from d
	 * (a reply chain linked in order, each message naming only the one
	 * before, would otherwise walk the whole chain for every message) */
	if (f->nodes[a].child == IMAP_THREAD_NONE)
		return a == d;
	for (int32_t x = d; x != IMAP_THREAD_NONE; x = f->nodes[x].parent)
		if (x == a)
			return true;
	return false;
}

/* The message that stands for node x: itself, or a dummy's first child's
 * (§2.2 steps 4 and 6; children are sorted before this is asked). */
static const struct imap_sort_msg *imap_thread_msg(const struct imap_thread_forest *f, int32_t x)
{
	while (x != IMAP_THREAD_NONE && f->nodes[x].msg == IMAP_THREAD_NONE)
		x = f->nodes[x].child;
	return x == IMAP_THREAD_NONE ? NULL : &f->set->msgs[f->nodes[x].msg];
}

static int imap_thread_cmp_nodes(const void *pa, const void *pb, void *ctx)
{
	const struct imap_thread_forest *f = ctx;
	const struct imap_sort_msg *a = imap_thread_msg(f, *(const int32_t *)pa);
	const struct imap_sort_msg *b = imap_thread_msg(f, *(const int32_t *)pb);

	if (a == NULL || b == NULL)
		return a == b ? 0 : a == NULL ? 1 : -1;
	return imap_sort_cmp_date_ptr(&a, &b);
}

/* Sort p's children by sent date (§2.2); scratch holds f->n entries. */
static void imap_thread_sort_children(struct imap_thread_forest *f, int32_t p, int32_t *scratch)
{
	size_t n = 0;

	for (int32_t c = f->nodes[p].child; c != IMAP_THREAD_NONE; c = f->nodes[c].next)
		scratch[n++] = c;
	if (n < 2)
		return;
	qsort_r(scratch, n, sizeof(*scratch), imap_thread_cmp_nodes, f);
	f->nodes[p].child = f->nodes[p].last = IMAP_THREAD_NONE;
	for (size_t i = 0; i < n; i++)
		imap_thread_adopt(f, p, scratch[i]);
}

/* Nodes under root in pre-order (parents before children), iteratively.
 * order holds f->n entries; returns how many. */
static size_t imap_thread_preorder(const struct imap_thread_forest *f, int32_t root,
				   int32_t *order)
{
	size_t n = 0;
	int32_t x = root;

	while (x != IMAP_THREAD_NONE) {
		order[n++] = x;
		if (f->nodes[x].child != IMAP_THREAD_NONE) {
			x = f->nodes[x].child;
			continue;
		}
		while (x != root && f->nodes[x].next == IMAP_THREAD_NONE)
			x = f->nodes[x].parent;
		x = x == root ? IMAP_THREAD_NONE : f->nodes[x].next;
	}
	return n;
}

/* Step 6 (and step 4 for the top level): every set of siblings by date,
 * the deepest first. */
static void imap_thread_sort_all(struct imap_thread_forest *f, int32_t root, int32_t *order,
				 int32_t *scratch)
{
	size_t n = imap_thread_preorder(f, root, order);

	while (n-- > 0)
		imap_thread_sort_children(f, order[n], scratch);
}

/* ---- hash of ids and subjects -------------------------------------------------- */

/* Open addressing with linear probing; a slot keeps the key's hash, so
 * that a probe past another key rarely reads that key's octets. */
struct imap_thread_slot {
	const char *key; /* NULL: empty */
	uint32_t len, hash;
	int32_t val;
};

struct imap_thread_map {
	struct imap_thread_slot *slots;
	size_t cap; /* a power of two, at least twice the entries */
	size_t n;
};

/* Keys are octet strings: message ids, and base subjects already in
 * their i;unicode-casemap form (both far shorter than 4 GiB: ids at most
 * IMAP_SORT_REFS_MAX, subjects IMAP_SORT_KEY_MAX octets). */
static int imap_thread_map_init(struct imap_thread_map *m, size_t entries)
{
	m->cap = 16;
	while (m->cap < entries * 2)
		m->cap *= 2;
	m->n = 0;
	m->slots = calloc(m->cap, sizeof(*m->slots));
	return m->slots != NULL ? 0 : -1;
}

static void imap_thread_map_free(struct imap_thread_map *m)
{
	free(m->slots);
	m->slots = NULL;
}

static uint32_t imap_thread_hash(const char *k, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)k[i]) * 16777619u;
	return h;
}

/* The slot of key: where it is, or the empty one where it would go. */
static size_t imap_thread_map_slot(const struct imap_thread_map *m, const char *k, size_t len,
				   uint32_t h)
{
	for (size_t i = (size_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		const struct imap_thread_slot *sl = &m->slots[i];

		if (sl->key == NULL)
			return i;
		if (sl->hash == h && sl->len == len && memcmp(sl->key, k, len) == 0)
			return i;
	}
}

static int32_t imap_thread_map_get(const struct imap_thread_map *m, const char *k, size_t len)
{
	size_t i = imap_thread_map_slot(m, k, len, imap_thread_hash(k, len));

	return m->slots[i].key != NULL ? m->slots[i].val : IMAP_THREAD_NONE;
}

/* Twice the slots, every key moved to its new place. */
static int imap_thread_map_grow(struct imap_thread_map *m)
{
	struct imap_thread_map bigger;

	bigger.cap = m->cap * 2;
	bigger.n = m->n;
	bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
	if (bigger.slots == NULL)
		return -1;
	for (size_t i = 0; i < m->cap; i++) {
		const struct imap_thread_slot *sl = &m->slots[i];

		if (sl->key != NULL)
			bigger.slots[imap_thread_map_slot(&bigger, sl->key, sl->len, sl->hash)] = *sl;
	}
	free(m->slots);
	*m = bigger;
	return 0;
}

/* -1 when memory ran out (the map unchanged). */
static int imap_thread_map_put(struct imap_thread_map *m, const char *k, size_t len, int32_t v)
{
	uint32_t h = imap_thread_hash(k, len);
	size_t i = imap_thread_map_slot(m, k, len, h);

	if (m->slots[i].key == NULL && (m->n + 1) * 2 > m->cap) {
		if (imap_thread_map_grow(m) < 0)
			return -1;
		i = imap_thread_map_slot(m, k, len, h);
	}
	if (m->slots[i].key == NULL)
		m->n++;
	m->slots[i] = (struct imap_thread_slot){ .key = k, .len = (uint32_t)len, .hash = h, .val = v };
	return 0;
}

/* ---- message ids ------------------------------------------------------------ */

struct imap_thread_id {
	const char *p;
	size_t len;
};

/* The next valid msg-id in s[*pos, len) (RFC 5322 §3.6.4), with its
 * angle brackets; false when there is none. */
static bool imap_thread_next_id(const char *s, size_t len, size_t *pos, struct imap_thread_id *id)
{
	while (*pos < len) {
		size_t a = *pos, b;
		bool at = false;

		while (a < len && s[a] != '<')
			a++;
		if (a >= len)
			break;
		for (b = a + 1; b < len; b++) {
			char c = s[b];

			if (c == '>' || c == '<' || c == ' ' || c == '\t' || c == '\r' || c == '\n')
				break;
			at = at || c == '@';
		}
		*pos = b;
		if (b < len && s[b] == '>' && at && b > a + 2 && s[a + 1] != '@' && s[b - 1] != '@') {
			id->p = s + a;
			id->len = b + 1 - a;
			*pos = b + 1;
			return true;
		}
	}
	*pos = len;
	return false;
}

/* §2.2 step 1: the references of a message: References' ids (the last
 * IMAP_THREAD_REFS_MAX), or else the first id of In-Reply-To. */
static size_t imap_thread_refs(const struct imap_sort_msg *m, struct imap_thread_id *ids)
{
	size_t n = 0, total = 0, pos = 0, len;
	struct imap_thread_id id;

	if (m->references != NULL) {
		len = strlen(m->references);
		while (imap_thread_next_id(m->references, len, &pos, &id)) {
			/* a ring of the last IMAP_THREAD_REFS_MAX */
			ids[total++ % IMAP_THREAD_REFS_MAX] = id;
		}
		n = total < IMAP_THREAD_REFS_MAX ? total : IMAP_THREAD_REFS_MAX;
		if (total > IMAP_THREAD_REFS_MAX) {
			struct imap_thread_id tmp[IMAP_THREAD_REFS_MAX];
			size_t start = total % IMAP_THREAD_REFS_MAX;

			for (size_t i = 0; i < n; i++)
				tmp[i] = ids[(start + i) % IMAP_THREAD_REFS_MAX];
			memcpy(ids, tmp, sizeof(tmp));
		}
	}
	pos = 0;
	if (n == 0 && m->in_reply_to != NULL &&
	    imap_thread_next_id(m->in_reply_to, strlen(m->in_reply_to), &pos, &id))
		ids[n++] = id;
	return n;
}

/* ---- REFERENCES ------------------------------------------------------------- */

/* The node of an id, a new dummy when none has it yet. */
static int32_t imap_thread_id_node(struct imap_thread_forest *f, struct imap_thread_map *ids,
				   const struct imap_thread_id *id)
{
	int32_t x = imap_thread_map_get(ids, id->p, id->len);

	if (x == IMAP_THREAD_NONE) {
		x = imap_thread_node_new(f, IMAP_THREAD_NONE);
		if (x != IMAP_THREAD_NONE && imap_thread_map_put(ids, id->p, id->len, x) < 0)
			x = IMAP_THREAD_NONE; /* the node stays, unreachable: freed with f */
	}
	return x;
}

/* Step 1 for message i: its node, then the links of its references. */
static int imap_thread_link_msg(struct imap_thread_forest *f, struct imap_thread_map *ids,
				int32_t i, struct imap_thread_id *refs)
{
	const struct imap_sort_msg *m = &f->set->msgs[i];
	struct imap_thread_id own;
	size_t pos = 0, n;
	int32_t x = IMAP_THREAD_NONE, prev = IMAP_THREAD_NONE;

	if (m->message_id != NULL &&
	    imap_thread_next_id(m->message_id, strlen(m->message_id), &pos, &own)) {
		x = imap_thread_id_node(f, ids, &own);
		if (x == IMAP_THREAD_NONE)
			return -1;
		if (f->nodes[x].msg != IMAP_THREAD_NONE)
			x = IMAP_THREAD_NONE; /* a duplicate: a unique id of its own */
	}
	if (x == IMAP_THREAD_NONE && (x = imap_thread_node_new(f, IMAP_THREAD_NONE)) == IMAP_THREAD_NONE)
		return -1;
	f->nodes[x].msg = i;
	n = imap_thread_refs(m, refs);
	for (size_t r = 0; r < n; r++) {
		int32_t y = imap_thread_id_node(f, ids, &refs[r]);

		if (y == IMAP_THREAD_NONE)
			return -1;
		/* 1.A: prev becomes y's parent unless y has one already or
		 * that would make a loop */
		if (prev != IMAP_THREAD_NONE && f->nodes[y].parent == IMAP_THREAD_NONE &&
		    !imap_thread_is_ancestor(f, y, prev))
			imap_thread_adopt(f, prev, y);
		prev = y;
	}
	/* 1.B: the last reference is the parent (or none), replacing a
	 * parent from a truncated References elsewhere */
	imap_thread_unlink(f, x);
	if (prev != IMAP_THREAD_NONE && !imap_thread_is_ancestor(f, x, prev))
		imap_thread_adopt(f, prev, x);
	return 0;
}

/* Step 3: dummies go; their children take their place, but under the
 * root only when a dummy had one child.  Children first (reverse
 * pre-order), so a dummy's children are already pruned. */
static void imap_thread_prune(struct imap_thread_forest *f, int32_t root, int32_t *order)
{
	size_t n = imap_thread_preorder(f, root, order);

	while (n-- > 0) {
		int32_t p = order[n], c = f->nodes[p].child, next;

		/* the children are taken off and put back one by one, a
		 * pruned dummy's children in its place */
		f->nodes[p].child = f->nodes[p].last = IMAP_THREAD_NONE;
		for (; c != IMAP_THREAD_NONE; c = next) {
			int32_t gc = f->nodes[c].child;

			next = f->nodes[c].next;
			f->nodes[c].parent = f->nodes[c].next = f->nodes[c].prev = IMAP_THREAD_NONE;
			if (f->nodes[c].msg != IMAP_THREAD_NONE ||
			    (p == root && gc != IMAP_THREAD_NONE &&
			     f->nodes[gc].next != IMAP_THREAD_NONE))
				imap_thread_adopt(f, p, c);
			else
				imap_thread_adopt_children(f, p, c);
		}
	}
}

static const char *imap_thread_subject(const struct imap_thread_forest *f, int32_t x)
{
	const struct imap_sort_msg *m = imap_thread_msg(f, x);

	return m != NULL ? m->subject : "";
}

static bool imap_thread_is_dummy(const struct imap_thread_forest *f, int32_t x)
{
	return f->nodes[x].msg == IMAP_THREAD_NONE;
}

static bool imap_thread_is_reply(const struct imap_thread_forest *f, int32_t x)
{
	return !imap_thread_is_dummy(f, x) && f->set->msgs[f->nodes[x].msg].reply;
}

/* Step 5: threads under the root with the same base subject merged. */
static int imap_thread_merge_subjects(struct imap_thread_forest *f, int32_t root, int32_t *top)
{
	struct imap_thread_map subj;
	size_t n = 0;

	for (int32_t c = f->nodes[root].child; c != IMAP_THREAD_NONE; c = f->nodes[c].next)
		top[n++] = c;
	if (imap_thread_map_init(&subj, n) < 0) {
		imap_thread_map_free(&subj);
		return -1;
	}
	/* 5.B, 5.C */
	for (size_t i = 0; i < n; i++) {
		const char *s = imap_thread_subject(f, top[i]);
		int32_t t;

		if (*s == '\0')
			continue;
		t = imap_thread_map_get(&subj, s, strlen(s));
		if ((t == IMAP_THREAD_NONE ||
		     (!imap_thread_is_dummy(f, t) &&
		      (imap_thread_is_dummy(f, top[i]) ||
		       (imap_thread_is_reply(f, t) && !imap_thread_is_reply(f, top[i]))))) &&
		    imap_thread_map_put(&subj, s, strlen(s), top[i]) < 0) {
			imap_thread_map_free(&subj);
			return -1;
		}
	}
	/* 5.D */
	for (size_t i = 0; i < n; i++) {
		int32_t cur = top[i], t, d;
		const char *s = imap_thread_subject(f, cur);

		/* merged away already (under another node, or emptied) */
		if (f->nodes[cur].parent != root || *s == '\0')
			continue;
		t = imap_thread_map_get(&subj, s, strlen(s));
		if (t == cur || t == IMAP_THREAD_NONE)
			continue;
		if (imap_thread_is_dummy(f, t) && imap_thread_is_dummy(f, cur)) {
			imap_thread_unlink(f, cur);
			imap_thread_adopt_children(f, t, cur);
		} else if (imap_thread_is_dummy(f, t) ||
			   (imap_thread_is_reply(f, cur) && !imap_thread_is_reply(f, t))) {
			imap_thread_unlink(f, cur);
			imap_thread_adopt(f, t, cur);
		} else {
			d = imap_thread_node_new(f, IMAP_THREAD_NONE);
			if (d == IMAP_THREAD_NONE) {
				imap_thread_map_free(&subj);
				return -1;
			}
			/* the keys point into messages, not nodes: s stays */
			imap_thread_unlink(f, cur);
			imap_thread_unlink(f, t);
			imap_thread_adopt(f, root, d);
			imap_thread_adopt(f, d, t);
			imap_thread_adopt(f, d, cur);
			/* s is in the map already: its slot is reused */
			if (imap_thread_map_put(&subj, s, strlen(s), d) < 0) {
				imap_thread_map_free(&subj);
				return -1;
			}
		}
	}
	imap_thread_map_free(&subj);
	return 0;
}

static int imap_thread_references(struct imap_thread_forest *f, int32_t *root_r)
{
	struct imap_thread_map ids;
	struct imap_thread_id *refs;
	int32_t *order = NULL, *scratch = NULL, root;
	size_t entries = 0;
	int ret = -1;

	memset(&ids, 0, sizeof(ids));
	refs = malloc(IMAP_THREAD_REFS_MAX * sizeof(*refs));
	if (refs == NULL)
		goto out_map;
	/* about one id a message (its own), more as references name
	 * messages not in the set: the map grows */
	entries = f->set->n;
	if (imap_thread_map_init(&ids, entries) < 0)
		goto out_map;
	for (size_t i = 0; i < f->set->n; i++)
		if (imap_thread_link_msg(f, &ids, (int32_t)i, refs) < 0)
			goto out_map;
	/* step 2: the parentless under one root */
	root = imap_thread_node_new(f, IMAP_THREAD_NONE);
	if (root == IMAP_THREAD_NONE)
		goto out_map;
	for (int32_t x = 0; x < root; x++)
		if (f->nodes[x].parent == IMAP_THREAD_NONE)
			imap_thread_adopt(f, root, x);
	/* one more node per top-level thread at most comes in step 5 */
	order = malloc(2 * (f->n + 1) * sizeof(*order));
	scratch = malloc(2 * (f->n + 1) * sizeof(*scratch));
	if (order == NULL || scratch == NULL)
		goto out_map;
	imap_thread_prune(f, root, order);
	/* step 4: the top level by date (its dummies' children first) */
	for (int32_t c = f->nodes[root].child; c != IMAP_THREAD_NONE; c = f->nodes[c].next)
		if (imap_thread_is_dummy(f, c))
			imap_thread_sort_children(f, c, scratch);
	imap_thread_sort_children(f, root, scratch);
	if (imap_thread_merge_subjects(f, root, scratch) < 0)
		goto out_map;
	imap_thread_sort_all(f, root, order, scratch);
	*root_r = root;
	ret = 0;
out_map:
	imap_thread_map_free(&ids);
	free(refs);
	free(order);
	free(scratch);
	return ret;
}

/* ---- ORDEREDSUBJECT ---------------------------------------------------------- */

static int imap_thread_cmp_subject(const void *pa, const void *pb)
{
	const struct imap_sort_msg *a = *(const struct imap_sort_msg *const *)pa;
	const struct imap_sort_msg *b = *(const struct imap_sort_msg *const *)pb;
	int r = strcmp(a->subject, b->subject); /* i;unicode-casemap forms */

	return r != 0 ? r : imap_sort_cmp_date_ptr(pa, pb);
}

/* RFC 5256 §2.2 ORDEREDSUBJECT: by base subject and date; each run of
 * one subject is a thread whose first message is the parent of the
 * others; threads by the date of their first message. */
static int imap_thread_ordered(struct imap_thread_forest *f, int32_t *root_r)
{
	const struct imap_sort_msg **v;
	int32_t *scratch, root, parent = IMAP_THREAD_NONE;
	size_t n = f->set->n;

	v = malloc((n + 1) * sizeof(*v));
	scratch = malloc((n + 2) * sizeof(*scratch));
	root = imap_thread_node_new(f, IMAP_THREAD_NONE);
	if (v == NULL || scratch == NULL || root == IMAP_THREAD_NONE) {
		free(v);
		free(scratch);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		v[i] = &f->set->msgs[i];
	qsort(v, n, sizeof(*v), imap_thread_cmp_subject);
	for (size_t i = 0; i < n; i++) {
		int32_t x = imap_thread_node_new(f, (int32_t)(v[i] - f->set->msgs));

		if (x == IMAP_THREAD_NONE) {
			free(v);
			free(scratch);
			return -1;
		}
		if (i > 0 && strcmp(v[i]->subject, v[i - 1]->subject) == 0) {
			imap_thread_adopt(f, parent, x);
		} else {
			imap_thread_adopt(f, root, x);
			parent = x;
		}
	}
	imap_thread_sort_children(f, root, scratch);
	free(v);
	free(scratch);
	*root_r = root;
	return 0;
}

/* ---- the answer ------------------------------------------------------------- */

static size_t imap_thread_nchildren(const struct imap_thread_forest *f, int32_t x)
{
	size_t n = 0;

	for (int32_t c = f->nodes[x].child; c != IMAP_THREAD_NONE && n < 2; c = f->nodes[c].next)
		n++;
	return n;
}

/* One thread-list (RFC 5256 §4): a chain of only children goes inline,
 * two or more children each get their own parentheses.  stack holds
 * f->n entries: the children whose "(" is open. */
static void imap_thread_write(struct imap_session *s, const struct imap_thread_forest *f,
			      int32_t top, int32_t *stack)
{
	size_t depth = 0;
	int32_t cur = top;

	buf_putc(&s->out, '(');
	for (;;) {
		for (;;) {
			const struct imap_thread_node *nd = &f->nodes[cur];
			size_t nc = imap_thread_nchildren(f, cur);

			if (nd->msg != IMAP_THREAD_NONE) {
				const struct imap_sort_msg *m = &f->set->msgs[nd->msg];

				buf_put_uint(&s->out, s->uid ? m->uid : m->seq);
			}
			if (nc == 0)
				break;
			if (nd->msg != IMAP_THREAD_NONE)
				buf_putc(&s->out, ' ');
			if (nc == 1 && nd->msg != IMAP_THREAD_NONE) {
				cur = nd->child;
				continue;
			}
			buf_putc(&s->out, '(');
			stack[depth++] = nd->child;
			cur = nd->child;
		}
		/* a leaf: close the lists that ended with it */
		while (depth > 0) {
			int32_t done = stack[depth - 1];

			buf_putc(&s->out, ')');
			if (f->nodes[done].next != IMAP_THREAD_NONE) {
				stack[depth - 1] = f->nodes[done].next;
				buf_putc(&s->out, '(');
				break;
			}
			depth--;
		}
		if (depth == 0)
			break;
		cur = stack[depth - 1];
	}
	buf_putc(&s->out, ')');
}

static void imap_thread_free(void *arg)
{
	struct imap_thread_cmd *c = arg;

	if (c != NULL)
		imap_sort_set_free(&c->set);
	free(c);
}

static enum imap_cmd_status imap_thread_work(struct imap_session *s)
{
	struct imap_thread_cmd *c = s->cmd_state;
	struct imap_thread_forest f;
	int32_t root = IMAP_THREAD_NONE, *stack;
	int rc;

	if (imap_sort_collect(s, &c->set) < 0)
		return CMD_DONE;
	memset(&f, 0, sizeof(f));
	f.set = &c->set;
	rc = c->alg == IMAP_THREAD_REFERENCES ? imap_thread_references(&f, &root)
					      : imap_thread_ordered(&f, &root);
	stack = rc == 0 ? malloc((f.n + 1) * sizeof(*stack)) : NULL;
	if (stack == NULL) {
		free(f.nodes);
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return CMD_DONE;
	}
	buf_appendf(&s->out, "* THREAD");
	if (f.nodes[root].child != IMAP_THREAD_NONE)
		buf_putc(&s->out, ' ');
	for (int32_t t = f.nodes[root].child; t != IMAP_THREAD_NONE; t = f.nodes[t].next)
		imap_thread_write(s, &f, t, stack);
	buf_appendf(&s->out, "\r\n");
	free(stack);
	free(f.nodes);
	/* RFC 3501 §7.4.1: no EXPUNGE after a command with sequence numbers */
	imap_view_update(s, s->uid);
	imap_reply(s, "OK", "%sTHREAD completed", s->uid ? "UID " : "");
	return CMD_DONE;
}

void imap_cmd_thread(struct imap_session *s, struct imap_cursor *args)
{
	struct imap_thread_cmd *c = calloc(1, sizeof(*c));
	char alg[32];

	if (c == NULL) {
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	s->cmd_state = c;
	s->cmd_free = imap_thread_free;
	c->set.need = IMAP_SORT_NEED_IDS;
	if (!imap_sp(args) || !imap_atom(args, alg, sizeof(alg), NULL) || !imap_sp(args)) {
		imap_reply(s, "BAD", "%s", args->err != NULL ? args->err : "Invalid THREAD arguments");
		return;
	}
	if (str_ieq(alg, "REFERENCES")) {
		c->alg = IMAP_THREAD_REFERENCES;
	} else if (str_ieq(alg, "ORDEREDSUBJECT")) {
		c->alg = IMAP_THREAD_ORDEREDSUBJECT;
	} else {
		imap_reply(s, "BAD", "Unknown threading algorithm");
		return;
	}
	if (imap_sort_criteria(s, args, &c->set))
		imap_job_start(s, imap_thread_work, NULL);
}
