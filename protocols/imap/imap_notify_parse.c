/* NOTIFY's arguments (RFC 5465 §3.1, grammar §8), kept apart from the
 * watching (imap_notify.c) so that the unit tests reach the parser alone:
 *
 *   notify      = "NOTIFY" SP ("NONE" / "SET" [SP "STATUS"] SP event-group
 *                 *(SP event-group))
 *   event-group = "(" filter SP ("NONE" / "(" event *(SP event) ")") ")"
 *   filter      = "selected" / "selected-delayed" / "inboxes" / "personal" /
 *                 "subscribed" / "subtree" SP mailboxes / "mailboxes" SP mailboxes
 *   mailboxes   = mailbox / "(" mailbox *(SP mailbox) ")"
 *   event       = "MessageNew" [SP "(" fetch-att *(SP fetch-att) ")"] /
 *                 "MessageExpunge" / "FlagChange" / "AnnotationChange" /
 *                 "MailboxName" / "SubscriptionChange" /
 *                 "MailboxMetadataChange" / "ServerMetadataChange" / atom
 *
 * Rules beyond the grammar, checked after it: MessageNew and
 * MessageExpunge go together, FlagChange needs both (§5); the selected
 * filters take message events only, and only there may MessageNew carry
 * fetch attributes (§5.2); a filter of selected appears once.  An event
 * we do not support makes NO [BADEVENT (what we support)] (§3.1).
 *
 * Memory: spec->fetch is the one allocation (imap_notify_spec_clear).
 */
#include "imap_private.h"

#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	unsigned event; /* 0: defined by RFC 5465 but not supported here */
} imap_notify_events[] = {
	{ "MessageNew", IMAP_NOTIFY_EV_NEW },
	{ "MessageExpunge", IMAP_NOTIFY_EV_EXPUNGE },
	{ "FlagChange", IMAP_NOTIFY_EV_FLAGS },
	{ "MailboxName", IMAP_NOTIFY_EV_NAME },
	{ "SubscriptionChange", IMAP_NOTIFY_EV_SUBS },
	{ "AnnotationChange", 0 },      /* no ANNOTATE (RFC 5257) */
	{ "MailboxMetadataChange", 0 }, /* METADATA changes are not watched */
	{ "ServerMetadataChange", 0 },
};

static const struct {
	const char *name;
	enum imap_notify_filter filter;
} imap_notify_filters[] = {
	{ "selected", IMAP_NOTIFY_SELECTED },
	{ "selected-delayed", IMAP_NOTIFY_SELECTED_DELAYED },
	{ "inboxes", IMAP_NOTIFY_INBOXES },
	{ "personal", IMAP_NOTIFY_PERSONAL },
	{ "subscribed", IMAP_NOTIFY_SUBSCRIBED },
	{ "subtree", IMAP_NOTIFY_SUBTREE },
	{ "mailboxes", IMAP_NOTIFY_MAILBOXES },
};

#define IMAP_NOTIFY_WORD_MAX 32 /* longest keyword: MailboxMetadataChange */

struct imap_notify_parser {
	const struct imap_session *s;
	struct imap_cursor *c;
	struct imap_notify_spec *spec;
	bool unsupported; /* an event we do not support was named */
	bool limit;       /* IMAP_NOTIFY_*_MAX exceeded */
};

void imap_notify_spec_clear(struct imap_notify_spec *spec)
{
	if (spec->fetch != NULL)
		imap_fetch_notify_free(spec->fetch);
	memset(spec, 0, sizeof(*spec));
}

static bool imap_notify_fail(struct imap_notify_parser *p, const char *why)
{
	if (p->c->err == NULL)
		p->c->err = why;
	return false;
}

/* mailboxes = mailbox / "(" mailbox *(SP mailbox) ")" */
static bool imap_notify_names(struct imap_notify_parser *p, struct imap_notify_group *g)
{
	struct imap_notify_spec *spec = p->spec;
	bool list = imap_char(p->c, '(');

	g->first_name = spec->n_names;
	do {
		char name[MD_MAILBOX_NAME_MAX + 1];

		if (!imap_mailbox_arg(p->s, p->c, name, sizeof(name)))
			return imap_notify_fail(p, "Invalid mailbox name");
		if (spec->n_names >= IMAP_NOTIFY_NAMES_MAX) {
			p->limit = true; /* parse on: a syntax error still wins */
			continue;
		}
		memcpy(spec->names[spec->n_names++], name, sizeof(name));
		g->n_names++;
	} while (list && imap_char(p->c, ' '));
	if (list && !imap_char(p->c, ')'))
		return imap_notify_fail(p, "Expected ) after the mailbox names");
	return true;
}

static bool imap_notify_filter(struct imap_notify_parser *p, struct imap_notify_group *g)
{
	char word[IMAP_NOTIFY_WORD_MAX];

	if (!imap_atom(p->c, word, sizeof(word), NULL))
		return imap_notify_fail(p, "Expected a mailbox filter");
	for (size_t i = 0; i < sizeof(imap_notify_filters) / sizeof(imap_notify_filters[0]); i++)
		if (str_ieq(word, imap_notify_filters[i].name)) {
			g->filter = imap_notify_filters[i].filter;
			if (g->filter != IMAP_NOTIFY_SUBTREE && g->filter != IMAP_NOTIFY_MAILBOXES)
				return true;
			if (!imap_sp(p->c))
				return imap_notify_fail(p, "Expected mailbox names");
			return imap_notify_names(p, g);
		}
	return imap_notify_fail(p, "Unknown mailbox filter");
}

static bool imap_notify_is_selected(const struct imap_notify_group *g)
{
	return g->filter == IMAP_NOTIFY_SELECTED || g->filter == IMAP_NOTIFY_SELECTED_DELAYED;
}

static bool imap_notify_event(struct imap_notify_parser *p, struct imap_notify_group *g)
{
	char word[IMAP_NOTIFY_WORD_MAX];
	size_t n_events = sizeof(imap_notify_events) / sizeof(imap_notify_events[0]);

	if (!imap_atom(p->c, word, sizeof(word), NULL))
		return imap_notify_fail(p, "Expected an event");
	for (size_t i = 0; i < n_events; i++) {
		if (!str_ieq(word, imap_notify_events[i].name))
			continue;
		if (imap_notify_events[i].event == 0) {
			p->unsupported = true;
			return true;
		}
		g->events |= imap_notify_events[i].event;
		if (imap_notify_events[i].event != IMAP_NOTIFY_EV_NEW || !imap_peek(p->c, ' '))
			return true;
		/* SP "(" fetch-att ... ")": only after MessageNew */
		if (p->c->p + 1 >= p->c->end || p->c->p[1] != '(')
			return true;
		imap_sp(p->c);
		if (!imap_notify_is_selected(g))
			return imap_notify_fail(p, "Fetch attributes only for the selected mailbox");
		if (p->spec->fetch != NULL)
			return imap_notify_fail(p, "MessageNew fetch attributes given twice");
		p->spec->fetch = imap_fetch_notify_parse(p->c);
		return p->spec->fetch != NULL ? true : imap_notify_fail(p, "Invalid fetch attribute");
	}
	/* event-ext (§8): an atom we do not know is an event we do not support */
	p->unsupported = true;
	return true;
}

/* "NONE" / "(" event *(SP event) ")" */
static bool imap_notify_events_arg(struct imap_notify_parser *p, struct imap_notify_group *g)
{
	char word[8];

	if (!imap_char(p->c, '(')) {
		if (!imap_atom(p->c, word, sizeof(word), NULL) || !str_ieq(word, "NONE"))
			return imap_notify_fail(p, "Expected events or NONE");
		return true;
	}
	do {
		if (!imap_notify_event(p, g))
			return false;
	} while (imap_char(p->c, ' '));
	if (!imap_char(p->c, ')'))
		return imap_notify_fail(p, "Expected ) after the events");
	return true;
}

/* RFC 5465 §5: the rules between events, and §6.1/§6.2 for selected */
static bool imap_notify_group_check(struct imap_notify_parser *p, const struct imap_notify_group *g)
{
	unsigned ev = g->events;

	if (!!(ev & IMAP_NOTIFY_EV_NEW) != !!(ev & IMAP_NOTIFY_EV_EXPUNGE))
		return imap_notify_fail(p, "MessageNew and MessageExpunge go together");
	if ((ev & IMAP_NOTIFY_EV_FLAGS) && !(ev & IMAP_NOTIFY_EV_NEW))
		return imap_notify_fail(p, "FlagChange needs MessageNew and MessageExpunge");
	if (imap_notify_is_selected(g) && (ev & ~IMAP_NOTIFY_EV_MESSAGE))
		return imap_notify_fail(p, "The selected mailbox takes message events only");
	return true;
}

static bool imap_notify_group(struct imap_notify_parser *p)
{
	struct imap_notify_spec *spec = p->spec;
	struct imap_notify_group g;

	memset(&g, 0, sizeof(g));
	if (!imap_char(p->c, '('))
		return imap_notify_fail(p, "Expected ( before an event group");
	if (!imap_notify_filter(p, &g) || !imap_sp(p->c) || !imap_notify_events_arg(p, &g))
		return imap_notify_fail(p, "Invalid event group");
	if (!imap_char(p->c, ')'))
		return imap_notify_fail(p, "Expected ) after an event group");
	if (!imap_notify_group_check(p, &g))
		return false;
	if (imap_notify_is_selected(&g)) {
		for (size_t i = 0; i < spec->n_groups; i++)
			if (imap_notify_is_selected(&spec->groups[i]))
				return imap_notify_fail(p, "The selected mailbox is named twice");
		spec->selected_events = g.events;
		spec->selected_delayed = g.filter == IMAP_NOTIFY_SELECTED_DELAYED;
	}
	if (spec->n_groups >= IMAP_NOTIFY_GROUPS_MAX) {
		p->limit = true;
		return true;
	}
	spec->groups[spec->n_groups++] = g;
	return true;
}

enum imap_notify_parse_result imap_notify_parse(const struct imap_session *s,
						struct imap_cursor *c,
						struct imap_notify_spec *spec)
{
	struct imap_notify_parser p = { .s = s, .c = c, .spec = spec };
	char word[8];

	memset(spec, 0, sizeof(*spec));
	if (!imap_sp(c) || !imap_atom(c, word, sizeof(word), NULL)) {
		imap_notify_fail(&p, "Expected SET or NONE");
		return IMAP_NOTIFY_PARSE_BAD;
	}
	if (str_ieq(word, "NONE")) {
		if (!imap_at_end(c)) {
			imap_notify_fail(&p, "NOTIFY NONE takes no arguments");
			return IMAP_NOTIFY_PARSE_BAD;
		}
		return IMAP_NOTIFY_PARSE_NONE;
	}
	if (!str_ieq(word, "SET") || !imap_sp(c)) {
		imap_notify_fail(&p, "Expected SET or NONE");
		return IMAP_NOTIFY_PARSE_BAD;
	}
	if (!imap_peek(c, '(')) {
		if (!imap_atom(c, word, sizeof(word), NULL) || !str_ieq(word, "STATUS") ||
		    !imap_sp(c)) {
			imap_notify_fail(&p, "Expected STATUS or an event group");
			return IMAP_NOTIFY_PARSE_BAD;
		}
		spec->status = true;
	}
	do {
		if (!imap_notify_group(&p)) {
			imap_notify_spec_clear(spec);
			imap_notify_fail(&p, "Invalid event group");
			return IMAP_NOTIFY_PARSE_BAD;
		}
	} while (imap_sp(c));
	if (!imap_at_end(c)) {
		imap_notify_spec_clear(spec);
		imap_notify_fail(&p, "Unexpected text after the event groups");
		return IMAP_NOTIFY_PARSE_BAD;
	}
	if (p.unsupported || p.limit) {
		imap_notify_spec_clear(spec);
		return p.unsupported ? IMAP_NOTIFY_PARSE_BADEVENT : IMAP_NOTIFY_PARSE_LIMIT;
	}
	return IMAP_NOTIFY_PARSE_SET;
}

static bool imap_notify_under(const char *name, const char *top)
{
	size_t n = strlen(top);

	return strncmp(name, top, n) == 0 && (name[n] == '\0' || name[n] == '/');
}

static bool imap_notify_matches(const struct imap_notify_spec *spec,
				const struct imap_notify_group *g, const char *name,
				bool subscribed)
{
	switch (g->filter) {
	case IMAP_NOTIFY_SELECTED:
	case IMAP_NOTIFY_SELECTED_DELAYED:
		return false;
	case IMAP_NOTIFY_INBOXES:
		return strcmp(name, "INBOX") == 0;
	case IMAP_NOTIFY_PERSONAL:
		return true;
	case IMAP_NOTIFY_SUBSCRIBED:
		return subscribed;
	case IMAP_NOTIFY_SUBTREE:
	case IMAP_NOTIFY_MAILBOXES:
		for (size_t i = g->first_name; i < g->first_name + g->n_names; i++)
			if (g->filter == IMAP_NOTIFY_SUBTREE ? imap_notify_under(name, spec->names[i])
							     : strcmp(name, spec->names[i]) == 0)
				return true;
		return false;
	}
	return false;
}

unsigned imap_notify_events_for(const struct imap_notify_spec *spec, const char *name,
				bool subscribed)
{
	unsigned events = 0;

	for (size_t i = 0; i < spec->n_groups; i++)
		if (imap_notify_matches(spec, &spec->groups[i], name, subscribed))
			events |= spec->groups[i].events;
	return events;
}
