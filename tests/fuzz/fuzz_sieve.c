/* Fuzz target: Sieve (protocols/sieve/): sieve_compile() on script text,
 * then sieve_run() of what compiles against a fixed MIME message, and the
 * vacation helpers on its result.
 *
 * Input: the first byte chooses the message's envelope (bit 0: the null
 * sender); the rest is the script.
 *
 * Oracles:
 *   - compile: NULL exactly with an error "line N: ..." (N >= 1) shorter
 *     than SIEVE_ERROR_MAX; a script with a NUL never compiles;
 *   - run: 0 with 1 to SIEVE_ACTIONS_MAX actions or none (discard), every
 *     FILEINTO with a mailbox, REDIRECT with an address (at most
 *     SIEVE_REDIRECTS_MAX), REJECT and VACATION with a text, vacation days
 *     within [DAYS_MIN, DAYS_MAX], flags without spaces; or -1 with no
 *     actions and an error text;
 *   - vacation: sieve_vacation_allowed() is false for the null sender and
 *     gives a reason when false; the reply has no bare CR or LF in its
 *     header block; the handle is 16 hex digits.
 */
#include "fuzz_common.h"

#include <string.h>

#include "sieve.h"

static const char fuzz_header[] =
	"Return-Path: <a@b.example>\r\n"
	"From: \"A, B\" <a@b.example>\r\n"
	"To: me@example.test, (c) other@x.example\r\n"
	"Subject: =?UTF-8?Q?hello_=C3=A9?= [list] x\r\n"
	"Message-ID: <1@b.example>\r\n"
	"Content-Type: multipart/mixed; boundary=B\r\n"
	"\r\n";
static const char fuzz_body[] =
	"--B\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	"aGVsbG8gd29ybGQ=\r\n--B\r\nContent-Type: text/html\r\n\r\n<b>x</b>\r\n--B--\r\n";

static void fuzz_check_reply(const struct sieve_message *m, const struct sieve_action *a)
{
	char *out = NULL;
	size_t len = 0;
	const char *end;

	if (sieve_vacation_reply(m, a, "Mon, 7 Dec 2026 00:00:00 +0000", "<r@x>", &out, &len) < 0)
		return;
	FUZZ_CHECK(strlen(out) == len);
	end = a->mime ? strstr(out, "MIME-Version: 1.0\r\n") : strstr(out, "\r\n\r\n");
	FUZZ_CHECK(end != NULL);
	for (const char *p = out; p < end; p++) {
		if (*p == '\r')
			FUZZ_CHECK(p[1] == '\n');
		if (*p == '\n')
			FUZZ_CHECK(p > out && p[-1] == '\r');
	}
	free(out);
}

static void fuzz_check_result(const struct sieve_message *m, const struct sieve_result *res)
{
	size_t redirects = 0;

	FUZZ_CHECK(res->n_actions <= SIEVE_ACTIONS_MAX);
	for (size_t i = 0; i < res->n_actions; i++) {
		const struct sieve_action *a = &res->actions[i];
		const char *why = NULL;
		char handle[17];
		switch (a->kind) {
		case SIEVE_ACTION_KEEP:
			break;
		case SIEVE_ACTION_FILEINTO:
			FUZZ_CHECK(a->mailbox != NULL && a->mailbox[0] != '\0');
			break;
		case SIEVE_ACTION_REDIRECT:
			FUZZ_CHECK(a->address != NULL && strchr(a->address, '@') != NULL);
			redirects++;
			break;
		case SIEVE_ACTION_REJECT:
			FUZZ_CHECK(a->text != NULL);
			break;
		case SIEVE_ACTION_VACATION:
			FUZZ_CHECK(a->text != NULL);
			FUZZ_CHECK(a->days >= SIEVE_VACATION_DAYS_MIN &&
				   a->days <= SIEVE_VACATION_DAYS_MAX);
			if (!sieve_vacation_allowed(m, a, &why))
				FUZZ_CHECK(why != NULL);
			else
				FUZZ_CHECK(m->envelope_from[0] != '\0');
			sieve_vacation_handle(a, handle, sizeof(handle));
			FUZZ_CHECK(strlen(handle) == 16 && strspn(handle, "0123456789abcdef") == 16);
			fuzz_check_reply(m, a);
			break;
		default:
			FUZZ_CHECK(!"unknown action kind");
		}
		for (size_t k = 0; k < a->n_flags; k++)
			FUZZ_CHECK(a->flags[k][0] != '\0' && strchr(a->flags[k], ' ') == NULL);
	}
	FUZZ_CHECK(redirects <= SIEVE_REDIRECTS_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sieve_message m = {
		.header = fuzz_header, .header_len = sizeof(fuzz_header) - 1,
		.body = fuzz_body, .body_len = sizeof(fuzz_body) - 1, .size = 2000,
		.envelope_from = "a@b.example", .envelope_to = "me@example.test",
	};
	char err[SIEVE_ERROR_MAX];
	struct sieve_script *s;
	struct sieve_result res;
	const char *text;
	size_t len;

	if (size < 1)
		return 0;
	if (data[0] & 1)
		m.envelope_from = "";
	text = (const char *)data + 1;
	len = size - 1;
	s = sieve_compile(text, len, err, sizeof(err));
	if (s == NULL) {
		FUZZ_CHECK(strncmp(err, "line ", 5) == 0 && atoi(err + 5) >= 1);
		FUZZ_CHECK(strlen(err) < sizeof(err));
		return 0;
	}
	FUZZ_CHECK(memchr(text, '\0', len) == NULL);
	if (sieve_run(s, &m, &res) < 0) {
		FUZZ_CHECK(res.n_actions == 0 && res.error[0] != '\0');
	} else {
		fuzz_check_result(&m, &res);
	}
	sieve_result_free(&res);
	sieve_script_free(s);
	return 0;
}
