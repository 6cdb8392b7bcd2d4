/* auth/: password hashing, the users and aliases files (round trip, errors,
 * crash safety, refresh), recipient resolution, SASL PLAIN/LOGIN, failure
 * throttling and the user/alias CLI.  Every test works in its own temp
 * directory.  Hashes cost ~20 ms each, so tests reuse one where they can. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "auth_private.h"
#include "base64.h"
#include "config.h"
#include "util.h"

/* ---- helpers ------------------------------------------------------ */

/* snprintf that must not truncate (and so keeps -Wformat-truncation quiet). */
#define PATHF(buf, size, ...) \
	ck_assert_int_lt(snprintf(buf, size, __VA_ARGS__), (int)(size))

static char test_dir[PATH_MAX];
static struct config test_cfg;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	str_copy(test_dir, "/tmp/postern-auth-XXXXXX", sizeof(test_dir));
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
	memset(&test_cfg, 0, sizeof(test_cfg));
	PATHF(test_cfg.data_dir, sizeof(test_cfg.data_dir), "%s/data", test_dir);
	ck_assert_int_eq(mkdir(test_cfg.data_dir, 0700), 0);
	str_copy(test_cfg.domains[0], "example.org", sizeof(test_cfg.domains[0]));
	str_copy(test_cfg.domains[1], "example.net", sizeof(test_cfg.domains[1]));
	test_cfg.n_domains = 2;
	log_level_current = LOG_LEVEL_ERROR;
}

static void teardown(void)
{
	nftw(test_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void data_path(char *out, const char *name)
{
	PATHF(out, PATH_MAX, "%s/%s", test_cfg.data_dir, name);
}

static void put_file(const char *name, const char *text)
{
	char path[PATH_MAX];

	data_path(path, name);
	ck_assert_int_eq(write_file_atomic(path, text, strlen(text), 0600), 0);
}

static char *get_file(const char *path)
{
	char *data;
	size_t len;

	ck_assert_int_eq(read_small_file(path, 1 << 20, &data, &len), 0);
	return data;
}

static const char *secret_hash(void)
{
	static char hash[AUTH_HASH_MAX + 1];

	if (hash[0] == '\0')
		ck_assert_int_eq(auth_hash_password("secret", hash, sizeof(hash)), 0);
	return hash;
}

static struct auth *open_auth(void)
{
	char err[512] = "";
	struct auth *auth = auth_open(&test_cfg, err, sizeof(err));

	ck_assert_msg(auth != NULL, "auth_open: %s", err);
	return auth;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Run fn with fd (0, 1 or 2) redirected to a file; returns its text. */
static char *capture_path(int fd, char *path_r)
{
	PATHF(path_r, PATH_MAX, "%s/capture-%d", test_dir, fd);
	return path_r;
}

static int redirect(int fd, const char *path, int flags)
{
	int saved = dup(fd), f = open(path, flags, 0600);

	ck_assert_int_ge(f, 0);
	ck_assert_int_ge(dup2(f, fd), 0);
	close(f);
	return saved;
}

static void restore(int fd, int saved)
{
	if (fd == STDOUT_FILENO)
		fflush(stdout);
	dup2(saved, fd);
	close(saved);
}

/* ---- hashing and passwords ---------------------------------------- */

START_TEST(test_auth_hash_verify)
{
	char h1[AUTH_HASH_MAX + 1], h2[AUTH_HASH_MAX + 1];

	ck_assert_int_eq(auth_hash_password("correct horse", h1, sizeof(h1)), 0);
	ck_assert_int_eq(auth_hash_password("correct horse", h2, sizeof(h2)), 0);
	ck_assert(strncmp(h1, "$y$", 3) == 0);
	ck_assert_str_ne(h1, h2); /* fresh salt each time */
	ck_assert(auth_hash_verify("correct horse", h1));
	ck_assert(auth_hash_verify("correct horse", h2));
	ck_assert(!auth_hash_verify("correct horse ", h1));
	ck_assert(!auth_hash_verify("", h1));
	ck_assert(!auth_hash_verify("correct horse", "!"));
	ck_assert(!auth_hash_verify("correct horse", "$y$garbage"));
}
END_TEST

START_TEST(test_auth_verify_password)
{
	char users[2048], canon[AUTH_ADDRESS_MAX + 1] = "";
	struct auth *auth;
	double t0, known, unknown;

	snprintf(users, sizeof(users),
		 "alice@example.org %s\nlocked@example.org !%s\n", secret_hash(), secret_hash());
	put_file("users", users);
	auth = open_auth();

	ck_assert_int_eq(auth_verify_password(auth, "Alice@Example.ORG", "secret",
					      canon, sizeof(canon)), 0);
	ck_assert_str_eq(canon, "alice@example.org");
	/* An unknown user costs a real verify too (yescrypt: ~20 ms); the
	 * fastest of three runs ignores scheduling noise. */
	known = unknown = 1e9;
	for (int i = 0; i < 3; i++) {
		double d;

		t0 = now_ms();
		ck_assert_int_eq(auth_verify_password(auth, "alice@example.org", "Secret", NULL, 0), -1);
		d = now_ms() - t0;
		known = d < known ? d : known;
		t0 = now_ms();
		ck_assert_int_eq(auth_verify_password(auth, "nobody@example.org", "secret", NULL, 0), -1);
		d = now_ms() - t0;
		unknown = d < unknown ? d : unknown;
	}
	ck_assert_msg(unknown > known / 3, "unknown %.1f ms, known %.1f ms", unknown, known);
	ck_assert_int_eq(auth_verify_password(auth, "locked@example.org", "secret", NULL, 0), -1);
	ck_assert_int_eq(auth_verify_password(auth, "not an address", "secret", NULL, 0), -1);
	auth_close(auth);
}
END_TEST

/* ---- the verified-password cache ------------------------------------ */

START_TEST(test_auth_cache_table)
{
	unsigned char d1[AUTH_CACHE_DIGEST_LEN], d2[AUTH_CACHE_DIGEST_LEN];
	unsigned char d3[AUTH_CACHE_DIGEST_LEN], d4[AUTH_CACHE_DIGEST_LEN];
	struct auth_cache *c = auth_cache_new(60, 2);
	time_t t = 1000000;

	ck_assert_ptr_null(auth_cache_new(0, 10)); /* ttl 0: off */
	ck_assert_ptr_nonnull(c);
	/* Each of user, stored hash and password changes the entry; the NUL
	 * separators keep "ab"+"c" apart from "a"+"bc". */
	ck_assert_int_eq(auth_cache_digest(c, "a@x.org", "$y$h1", "pw", d1), 0);
	ck_assert_int_eq(auth_cache_digest(c, "a@x.org", "$y$h2", "pw", d2), 0);
	ck_assert_int_eq(auth_cache_digest(c, "a@x.org", "$y$h1", "pW", d3), 0);
	ck_assert_int_eq(auth_cache_digest(c, "a@x.or", "g$y$h1", "pw", d4), 0);
	ck_assert(memcmp(d1, d2, sizeof(d1)) != 0 && memcmp(d1, d3, sizeof(d1)) != 0 &&
		  memcmp(d1, d4, sizeof(d1)) != 0);

	ck_assert(!auth_cache_hit(c, d1, t));
	auth_cache_add(c, d1, t);
	ck_assert(auth_cache_hit(c, d1, t + 59));
	ck_assert(!auth_cache_hit(c, d2, t + 1));
	ck_assert(!auth_cache_hit(c, d1, t + 60)); /* expired, and dropped */
	ck_assert_uint_eq(auth_cache_size(c), 0);

	/* Full: the least recently used entry goes. */
	auth_cache_add(c, d1, t);
	auth_cache_add(c, d2, t);
	ck_assert(auth_cache_hit(c, d1, t + 1));
	auth_cache_add(c, d3, t + 2);
	ck_assert_uint_eq(auth_cache_size(c), 2);
	ck_assert(!auth_cache_hit(c, d2, t + 3));
	ck_assert(auth_cache_hit(c, d1, t + 3));
	ck_assert(auth_cache_hit(c, d3, t + 3));
	auth_cache_free(c);
}
END_TEST

START_TEST(test_auth_cache_verify)
{
	char users[2048], other[AUTH_HASH_MAX + 1];
	struct auth *auth;
	double t0, full, cached, wrong;

	snprintf(users, sizeof(users), "alice@example.org %s\n", secret_hash());
	put_file("users", users);
	test_cfg.auth_cache_ttl = 3600;
	test_cfg.auth_cache_max = 100;
	auth = open_auth();

	t0 = now_ms();
	ck_assert_int_eq(auth_verify_password(auth, "alice@example.org", "secret", NULL, 0), 0);
	full = now_ms() - t0;
	t0 = now_ms();
	ck_assert_int_eq(auth_verify_password(auth, "ALICE@example.org", "secret", NULL, 0), 0);
	cached = now_ms() - t0;
	ck_assert_msg(cached < full / 5, "cached %.2f ms, full verify %.2f ms", cached, full);
	/* A wrong password is never answered from the cache. */
	t0 = now_ms();
	ck_assert_int_eq(auth_verify_password(auth, "alice@example.org", "secret2", NULL, 0), -1);
	wrong = now_ms() - t0;
	ck_assert_msg(wrong > full / 3, "wrong %.2f ms, full verify %.2f ms", wrong, full);

	/* A new password (a new hash in the users file): the old one stops
	 * working at once, cached or not. */
	ck_assert_int_eq(auth_hash_password("changed", other, sizeof(other)), 0);
	snprintf(users, sizeof(users), "alice@example.org %s\n", other);
	put_file("users", users);
	ck_assert_int_eq(auth_verify_password(auth, "alice@example.org", "secret", NULL, 0), -1);
	ck_assert_int_eq(auth_verify_password(auth, "alice@example.org", "changed", NULL, 0), 0);
	/* A deleted user: gone, cached password or not. */
	put_file("users", "");
	ck_assert_int_eq(auth_verify_password(auth, "alice@example.org", "changed", NULL, 0), -1);
	auth_close(auth);
}
END_TEST

/* ---- the users file ------------------------------------------------ */

START_TEST(test_auth_users_roundtrip)
{
	char path[PATH_MAX], err[512];
	struct auth_edit_op op = { .kind = AUTH_EDIT_USER_ADD };
	struct auth_users users;
	struct stat st;
	char *text;

	data_path(path, "users");
	put_file("users", "# our users\n\n");
	op.address = "alice@example.org";
	op.hash = secret_hash();
	op.quota = 1ULL << 30;
	ck_assert_int_eq(auth_files_edit(test_cfg.data_dir, &op, err, sizeof(err)), AUTH_EDIT_OK);
	op.address = "bob@example.net";
	op.quota = 0;
	ck_assert_int_eq(auth_files_edit(test_cfg.data_dir, &op, err, sizeof(err)), AUTH_EDIT_OK);
	ck_assert_int_eq(auth_files_edit(test_cfg.data_dir, &op, err, sizeof(err)), AUTH_EDIT_EXISTS);

	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	text = get_file(path);
	{
		char want[2048];
		snprintf(want, sizeof(want), "# our users\n\nalice@example.org %s quota=1073741824\n"
			 "bob@example.net %s\n", secret_hash(), secret_hash());
		ck_assert_str_eq(text, want);
	}
	free(text);

	op.kind = AUTH_EDIT_USER_QUOTA;
	op.address = "bob@example.net";
	op.quota = 5 << 20;
	ck_assert_int_eq(auth_files_edit(test_cfg.data_dir, &op, err, sizeof(err)), AUTH_EDIT_OK);
	op.kind = AUTH_EDIT_USER_HASH;
	op.address = "alice@example.org";
	op.hash = "$y$j9T$other$hash";
	ck_assert_int_eq(auth_files_edit(test_cfg.data_dir, &op, err, sizeof(err)), AUTH_EDIT_OK);

	ck_assert_int_eq(auth_users_load(path, NULL, &users, NULL, err, sizeof(err)), 0);
	ck_assert_uint_eq(users.n, 2);
	ck_assert_str_eq(users.v[0].address, "alice@example.org");
	ck_assert_str_eq(users.v[0].hash, "$y$j9T$other$hash");
	ck_assert_uint_eq(users.v[0].quota, 1ULL << 30); /* kept by passwd */
	ck_assert_str_eq(users.v[1].address, "bob@example.net");
	ck_assert_uint_eq(users.v[1].quota, 5 << 20);
	auth_users_free(&users);

	op.kind = AUTH_EDIT_USER_DEL;
	ck_assert_int_eq(auth_files_edit(test_cfg.data_dir, &op, err, sizeof(err)), AUTH_EDIT_OK);
	ck_assert_int_eq(auth_files_edit(test_cfg.data_dir, &op, err, sizeof(err)), AUTH_EDIT_NOT_FOUND);
	text = get_file(path);
	{
		char want[2048];
		snprintf(want, sizeof(want), "# our users\n\nbob@example.net %s quota=5242880\n",
			 secret_hash());
		ck_assert_str_eq(text, want);
	}
	free(text);

	/* Uppercase in the file is canonicalised; K/M/G quotas parse. */
	put_file("users", "Carol@Example.ORG $y$x quota=2M\r\n");
	ck_assert_int_eq(auth_users_load(path, NULL, &users, NULL, err, sizeof(err)), 0);
	ck_assert_str_eq(users.v[0].address, "carol@example.org");
	ck_assert_uint_eq(users.v[0].quota, 2 << 20);
	auth_users_free(&users);
}
END_TEST

static void expect_users_error_len(const char *text, size_t len, const char *want_suffix)
{
	char path[PATH_MAX], err[512] = "", want[PATH_MAX + 256];
	struct auth_users users;

	data_path(path, "users");
	ck_assert_int_eq(write_file_atomic(path, text, len, 0600), 0);
	ck_assert_int_eq(auth_users_load(path, NULL, &users, NULL, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:%s", path, want_suffix);
	ck_assert_str_eq(err, want);
}

static void expect_users_error(const char *text, const char *want_suffix)
{
	expect_users_error_len(text, strlen(text), want_suffix);
}

START_TEST(test_auth_users_malformed)
{
	char path[PATH_MAX], err[512] = "", users[1024];
	struct auth *auth;

	expect_users_error("# ok\na@example.org $y$x\nnot-an-address $y$x\n",
			   "3: invalid address 'not-an-address'");
	expect_users_error("a@example.org\n", "1: missing password hash");
	expect_users_error("a@example.org $y$x\nA@example.org $y$y\n",
			   "2: duplicate user a@example.org (first on line 1)");
	expect_users_error("a@example.org $y$x colour=blue\n",
			   "1: unknown attribute 'colour=blue'");
	expect_users_error("a@example.org $y$x quota=lots\n", "1: invalid quota 'lots'");
	expect_users_error("a@exa:mple.org $y$x\n", "1: invalid address 'a@exa:mple.org'");
	{
		static const char nul[] = "a@example.org $y$x\nb@ex\0ample.org $y$x\n";
		expect_users_error_len(nul, sizeof(nul) - 1, "2: NUL byte");
	}
	expect_users_error("\"a b\"@example.org $y$x\n", "1: invalid address '\"a'");

	/* The daemon: a broken file at start is an error; a broken file
	 * later keeps the good data until it is fixed. */
	data_path(path, "users");
	ck_assert_ptr_null(auth_open(&test_cfg, err, sizeof(err)));
	ck_assert(strstr(err, ":1: invalid address") != NULL);

	snprintf(users, sizeof(users), "alice@example.org %s\n", secret_hash());
	put_file("users", users);
	auth = open_auth();
	put_file("users", "alice@example.org\n");
	ck_assert_int_eq(auth_refresh(auth), -1);
	ck_assert_int_eq(auth_refresh(auth), -1);
	ck_assert(auth_user_exists(auth, "alice@example.org"));
	ck_assert_int_eq(auth_verify_password(auth, "alice@example.org", "secret", NULL, 0), 0);
	snprintf(users, sizeof(users), "bob@example.org %s\n", secret_hash());
	put_file("users", users);
	ck_assert_int_eq(auth_refresh(auth), 0);
	ck_assert(!auth_user_exists(auth, "alice@example.org"));
	ck_assert(auth_user_exists(auth, "BOB@example.org"));
	auth_close(auth);
}
END_TEST

#define KILL_ROUNDS 30
#define KILL_BASE_USERS 40

/* A child adds and deletes users in a loop through auth_files_edit; it is
 * SIGKILLed at random moments.  After each kill the file must load whole. */
START_TEST(test_auth_users_survive_kill)
{
	char path[PATH_MAX], err[512], name[64];
	struct auth_edit_op op = { .kind = AUTH_EDIT_USER_ADD };
	unsigned seed = (unsigned)time(NULL), progressed = 0;
	DIR *d;
	struct dirent *de;

	data_path(path, "users");
	op.hash = secret_hash();
	for (int i = 0; i < KILL_BASE_USERS; i++) {
		snprintf(name, sizeof(name), "base%02d@example.org", i);
		op.address = name;
		ck_assert_int_eq(auth_files_edit(test_cfg.data_dir, &op, err, sizeof(err)), AUTH_EDIT_OK);
	}
	for (int round = 0; round < KILL_ROUNDS; round++) {
		struct auth_users users;
		unsigned ours = 0;
		pid_t pid = fork();

		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			for (int i = 0;; i++) {
				struct auth_edit_op c = { .hash = op.hash };
				char a[64], prev[64];

				snprintf(a, sizeof(a), "k%d-%d@example.org", round, i);
				c.kind = AUTH_EDIT_USER_ADD;
				c.address = a;
				if (auth_files_edit(test_cfg.data_dir, &c, err, sizeof(err)) != AUTH_EDIT_OK)
					_exit(2);
				if (i > 0) {
					snprintf(prev, sizeof(prev), "k%d-%d@example.org", round, i - 1);
					c.kind = AUTH_EDIT_USER_DEL;
					c.address = prev;
					if (auth_files_edit(test_cfg.data_dir, &c, err, sizeof(err)) != AUTH_EDIT_OK)
						_exit(3);
				}
			}
		}
		usleep(1000 + rand_r(&seed) % 25000);
		ck_assert_int_eq(kill(pid, SIGKILL), 0);
		{
			int status;
			ck_assert_int_eq(waitpid(pid, &status, 0), pid);
			ck_assert_msg(WIFSIGNALED(status), "writer failed: status %d", status);
		}
		ck_assert_msg(auth_users_load(path, NULL, &users, NULL, err, sizeof(err)) == 0,
			      "round %d: %s", round, err);
		for (int i = 0; i < KILL_BASE_USERS; i++) {
			snprintf(name, sizeof(name), "base%02d@example.org", i);
			ck_assert_ptr_nonnull(auth_users_find(&users, name));
		}
		snprintf(name, sizeof(name), "k%d-", round);
		for (size_t i = 0; i < users.n; i++) {
			ck_assert_str_eq(users.v[i].hash, op.hash);
			if (strncmp(users.v[i].address, name, strlen(name)) == 0)
				ours++;
		}
		ck_assert_uint_le(ours, 2); /* add then delete: never more */
		progressed += ours > 0;
		auth_users_free(&users);
	}
	ck_assert_uint_gt(progressed, 0);

	/* The next edit sweeps the temp files that killed writers left. */
	op.address = "last@example.org";
	ck_assert_int_eq(auth_files_edit(test_cfg.data_dir, &op, err, sizeof(err)), AUTH_EDIT_OK);
	d = opendir(test_cfg.data_dir);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		ck_assert_msg(strstr(de->d_name, ".tmp.") == NULL, "left: %s", de->d_name);
	closedir(d);
}
END_TEST

/* ---- aliases and resolution --------------------------------------- */

static void setup_aliases(void)
{
	char users[4096];

	snprintf(users, sizeof(users),
		 "alice@example.org %1$s\n"
		 "bob@example.org %1$s\n"
		 "carol@example.net %1$s quota=1G quota_messages=500\n"
		 "alice+x@example.org %1$s\n"
		 "dave@example.org %1$s\n", secret_hash());
	put_file("users", users);
	put_file("aliases",
		 "# aliases\n"
		 "info@example.org alice@example.org\n"
		 "Sales@Example.org info@example.org bob@example.org partner@Elsewhere.example\n"
		 "loop1@example.org loop2@example.org\n"
		 "loop2@example.org loop1@example.org carol@example.net\n"
		 "self@example.org self@example.org\n"
		 "c1@example.org c2@example.org\n"
		 "c2@example.org c3@example.org\n"
		 "c3@example.org c4@example.org\n"
		 "c4@example.org c5@example.org\n"
		 "c5@example.org c6@example.org\n"
		 "c6@example.org c7@example.org\n"
		 "c7@example.org c8@example.org\n"
		 "c8@example.org c9@example.org alice@example.org\n"
		 "c9@example.org bob@example.org\n"
		 "typo@example.org alice@example.org nobodyhere@example.org\n"
		 "@example.net carol@example.net\n"
		 "fwd@example.net someone@elsewhere.example\n"
		 "ext@example.org x@example.com\n");
}

/* Resolve and return the targets joined by ' ' (outside ones marked '>'). */
static enum auth_rcpt resolve(struct auth *auth, const char *address, char *out, size_t size)
{
	struct auth_target t[AUTH_RESOLVE_MAX];
	size_t n;
	enum auth_rcpt r = auth_resolve_recipient(auth, address, t, AUTH_RESOLVE_MAX, &n);

	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			strncat(out, " ", size - strlen(out) - 1);
		if (!t[i].local)
			strncat(out, ">", size - strlen(out) - 1);
		strncat(out, t[i].address, size - strlen(out) - 1);
	}
	return r;
}

#define ck_resolve(auth, addr, want_r, want_s) do { \
	char got_[4096]; \
	ck_assert_int_eq(resolve(auth, addr, got_, sizeof(got_)), want_r); \
	ck_assert_str_eq(got_, want_s); \
} while (0)

START_TEST(test_auth_alias_resolution)
{
	struct auth *auth;
	struct auth_target t[3];
	size_t n;

	setup_aliases();
	auth = open_auth();
	/* users, any case */
	ck_resolve(auth, "alice@example.org", AUTH_RCPT_LOCAL, "alice@example.org");
	ck_resolve(auth, "ALICE@EXAMPLE.ORG", AUTH_RCPT_LOCAL, "alice@example.org");
	/* plain alias, chain, outside target kept as written */
	ck_resolve(auth, "Info@example.org", AUTH_RCPT_LOCAL, "alice@example.org");
	ck_resolve(auth, "sales@example.org", AUTH_RCPT_LOCAL,
		   "alice@example.org bob@example.org >partner@Elsewhere.example");
	ck_resolve(auth, "fwd@example.net", AUTH_RCPT_LOCAL, ">someone@elsewhere.example");
	/* loops end; what they reach is kept */
	ck_resolve(auth, "loop1@example.org", AUTH_RCPT_LOCAL, "carol@example.net");
	ck_resolve(auth, "self@example.org", AUTH_RCPT_UNKNOWN, "");
	/* depth: c1..c8 are 8 expansions; c9 would be the ninth */
	ck_resolve(auth, "c1@example.org", AUTH_RCPT_LOCAL, "alice@example.org");
	ck_resolve(auth, "c2@example.org", AUTH_RCPT_LOCAL, "bob@example.org alice@example.org");
	/* unknown targets dropped */
	ck_resolve(auth, "typo@example.org", AUTH_RCPT_LOCAL, "alice@example.org");
	/* +detail: the user, unless the detailed form exists itself */
	ck_resolve(auth, "bob+lists@example.org", AUTH_RCPT_LOCAL, "bob@example.org");
	ck_resolve(auth, "alice+x@example.org", AUTH_RCPT_LOCAL, "alice+x@example.org");
	ck_resolve(auth, "alice+y@example.org", AUTH_RCPT_LOCAL, "alice@example.org");
	ck_resolve(auth, "info+z@example.org", AUTH_RCPT_LOCAL, "alice@example.org");
	ck_resolve(auth, "+z@example.org", AUTH_RCPT_UNKNOWN, "");
	ck_resolve(auth, "nobody+z@example.org", AUTH_RCPT_UNKNOWN, "");
	/* postmaster defaults: first user of the domain, else of the file */
	ck_resolve(auth, "postmaster@example.org", AUTH_RCPT_LOCAL, "alice@example.org");
	ck_resolve(auth, "PostMaster@example.net", AUTH_RCPT_LOCAL, "carol@example.net");
	/* catch-all only when nothing else matches */
	ck_resolve(auth, "anything@example.net", AUTH_RCPT_LOCAL, "carol@example.net");
	ck_resolve(auth, "fwd@example.net", AUTH_RCPT_LOCAL, ">someone@elsewhere.example");
	ck_resolve(auth, "anything@example.org", AUTH_RCPT_UNKNOWN, "");
	/* not ours */
	ck_resolve(auth, "alice@example.com", AUTH_RCPT_NOT_LOCAL_DOMAIN, "");
	ck_resolve(auth, "not an address", AUTH_RCPT_UNKNOWN, "");
	/* more targets than room: an error, not a silent cut */
	ck_assert_int_eq(auth_resolve_recipient(auth, "sales@example.org", t, 2, &n),
			 AUTH_RCPT_ERROR);
	ck_assert_int_eq(auth_resolve_recipient(auth, "sales@example.org", t, 3, &n),
			 AUTH_RCPT_LOCAL);

	/* submission: who may send as what */
	ck_assert(auth_user_owns_address(auth, "alice@example.org", "alice@example.org"));
	ck_assert(auth_user_owns_address(auth, "ALICE@example.org", "Alice+news@Example.org"));
	ck_assert(auth_user_owns_address(auth, "alice@example.org", "info@example.org"));
	ck_assert(auth_user_owns_address(auth, "bob@example.org", "sales@example.org"));
	ck_assert(auth_user_owns_address(auth, "alice@example.org", "postmaster@example.org"));
	ck_assert(auth_user_owns_address(auth, "carol@example.net", "whatever@example.net"));
	ck_assert(!auth_user_owns_address(auth, "bob@example.org", "info@example.org"));
	ck_assert(!auth_user_owns_address(auth, "bob@example.org", "alice@example.org"));
	ck_assert(!auth_user_owns_address(auth, "alice@example.org", "alice+x@example.org"));
	ck_assert(!auth_user_owns_address(auth, "alice@example.org", "alice@example.com"));
	ck_assert(!auth_user_owns_address(auth, "ghost@example.org", "ghost@example.org"));

	{
		uint64_t q = 1, qm = 1;
		ck_assert_int_eq(auth_user_quota(auth, "Carol@example.net", &q, &qm), 0);
		ck_assert_uint_eq(q, 1ULL << 30);
		ck_assert_uint_eq(qm, 500);
		ck_assert_int_eq(auth_user_quota(auth, "alice@example.org", &q, &qm), 0);
		ck_assert_uint_eq(q, 0);
		ck_assert_uint_eq(qm, 0);
		ck_assert_int_eq(auth_user_quota(auth, "info@example.org", &q, NULL), -1);
		ck_assert(!auth_user_exists(auth, "info@example.org"));
	}
	auth_close(auth);
}
END_TEST

START_TEST(test_auth_alias_limits)
{
	char aliases[32768], users[1024], *p = aliases;
	struct auth *auth;
	struct auth_target *t = calloc(AUTH_RESOLVE_MAX, sizeof(*t));
	size_t n;

	/* 101 distinct outside targets through two aliases: over the limit. */
	snprintf(users, sizeof(users), "alice@example.org %s\n", secret_hash());
	put_file("users", users);
	p += sprintf(p, "big@example.org");
	for (int i = 0; i < 100; i++)
		p += sprintf(p, " t%d@elsewhere.example", i);
	p += sprintf(p, "\nbigger@example.org big@example.org extra@elsewhere.example\n");
	/* no catch-all without postmaster: postmaster goes to the first user
	 * of the file when its domain has none */
	put_file("aliases", aliases);
	auth = open_auth();
	ck_assert_int_eq(auth_resolve_recipient(auth, "big@example.org", t, AUTH_RESOLVE_MAX, &n),
			 AUTH_RCPT_LOCAL);
	ck_assert_uint_eq(n, 100);
	ck_assert_int_eq(auth_resolve_recipient(auth, "bigger@example.org", t, AUTH_RESOLVE_MAX, &n),
			 AUTH_RCPT_ERROR);
	ck_assert_int_eq(auth_resolve_recipient(auth, "postmaster@example.net", t, AUTH_RESOLVE_MAX, &n),
			 AUTH_RCPT_LOCAL);
	ck_assert_str_eq(t[0].address, "alice@example.org");
	auth_close(auth);

	/* 101 targets on one line is a file error */
	p = aliases;
	p += sprintf(p, "big@example.org");
	for (int i = 0; i < 101; i++)
		p += sprintf(p, " t%d@elsewhere.example", i);
	p += sprintf(p, "\n");
	put_file("aliases", aliases);
	{
		char err[512];
		ck_assert_ptr_null(auth_open(&test_cfg, err, sizeof(err)));
		ck_assert(strstr(err, "aliases:1: more than 100 targets") != NULL);
		put_file("aliases", "x@example.org\n");
		ck_assert_ptr_null(auth_open(&test_cfg, err, sizeof(err)));
		ck_assert(strstr(err, "aliases:1: alias x@example.org has no target") != NULL);
		put_file("aliases", "@ alice@example.org\n");
		ck_assert_ptr_null(auth_open(&test_cfg, err, sizeof(err)));
		ck_assert(strstr(err, "aliases:1: invalid alias '@'") != NULL);
	}
	free(t);
}
END_TEST

/* A change by another process is seen by the next lookup, with no signal,
 * even when made within the same timestamp tick and with the same size. */
START_TEST(test_auth_refresh_other_writer)
{
	char users[1024], err[512];
	struct auth *auth;
	pid_t pid;
	int status;

	snprintf(users, sizeof(users), "aaaa@example.org %s\n", secret_hash());
	put_file("users", users);
	auth = open_auth();
	ck_assert(auth_user_exists(auth, "aaaa@example.org"));
	ck_assert(!auth_user_exists(auth, "newbie@example.org"));

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct auth_edit_op op = { .kind = AUTH_EDIT_USER_ADD,
					   .address = "newbie@example.org",
					   .hash = secret_hash() };
		_exit(auth_files_edit(test_cfg.data_dir, &op, err, sizeof(err)) == AUTH_EDIT_OK ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(status, 0);
	ck_assert(auth_user_exists(auth, "newbie@example.org"));

	/* Same size, rewritten in place (same inode) immediately. */
	for (int i = 0; i < 20; i++) {
		char path[PATH_MAX];
		int fd;

		snprintf(users, sizeof(users), "u%03d@example.org %s\n", i, secret_hash());
		data_path(path, "users");
		fd = open(path, O_WRONLY | O_TRUNC);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write_full(fd, users, strlen(users)), 0);
		close(fd);
		snprintf(users, sizeof(users), "u%03d@example.org", i);
		ck_assert_msg(auth_user_exists(auth, users), "round %d", i);
	}
	/* The aliases file appearing later is picked up as well. */
	put_file("aliases", "team@example.org u019@example.org\n");
	{
		char got[256];
		ck_assert_int_eq(resolve(auth, "team@example.org", got, sizeof(got)), AUTH_RCPT_LOCAL);
		ck_assert_str_eq(got, "u019@example.org");
	}
	auth_close(auth);
}
END_TEST

struct reader_arg {
	struct auth *auth;
	atomic_int *stop;
	unsigned lookups;
};

static void *reader_thread(void *p)
{
	struct reader_arg *r = p;
	struct auth_target t[4];
	size_t n;

	while (!atomic_load(r->stop)) {
		/* keep0 is in every version the writer makes */
		if (!auth_user_exists(r->auth, "keep0@example.org") ||
		    auth_resolve_recipient(r->auth, "team@example.org", t, 4, &n) != AUTH_RCPT_LOCAL)
			return (void *)1;
		r->lookups++;
	}
	return NULL;
}

/* Lookups on several threads while the files change under them: every
 * lookup sees a whole version (ASan checks the swap frees nothing in use). */
START_TEST(test_auth_concurrent_refresh)
{
	struct reader_arg r[4];
	pthread_t th[4];
	atomic_int stop = 0;
	struct auth *auth;
	char users[8192];

	snprintf(users, sizeof(users), "keep0@example.org %s\n", secret_hash());
	put_file("users", users);
	put_file("aliases", "team@example.org keep0@example.org\n");
	auth = open_auth();
	for (int i = 0; i < 4; i++) {
		r[i] = (struct reader_arg){ .auth = auth, .stop = &stop };
		ck_assert_int_eq(pthread_create(&th[i], NULL, reader_thread, &r[i]), 0);
	}
	for (int v = 0; v < 200; v++) {
		int len = snprintf(users, sizeof(users), "keep0@example.org %s\n", secret_hash());
		for (int k = 0; k < v % 20; k++)
			len += snprintf(users + len, sizeof(users) - (size_t)len,
					"v%d-%d@example.org $y$x\n", v, k);
		put_file("users", users);
		put_file("aliases", v % 2 ? "team@example.org keep0@example.org\n" :
			 "# odd\nteam@example.org keep0@example.org x@elsewhere.example\n");
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 4; i++) {
		void *res;
		ck_assert_int_eq(pthread_join(th[i], &res), 0);
		ck_assert_ptr_null(res);
		ck_assert_uint_gt(r[i].lookups, 0);
	}
	ck_assert(auth_user_exists(auth, "v199-18@example.org"));
	auth_close(auth);
}
END_TEST

/* ---- SASL ------------------------------------------------------------ */

static char *b64(const void *data, size_t len)
{
	char *out = malloc(base64_encoded_len(len) + 1);

	base64_encode(data, len, out);
	return out;
}

static enum sasl_result plain_ir(struct sasl_exchange *x, const void *msg, size_t len)
{
	const char *ch;
	char *e = b64(msg, len);
	enum sasl_result r = sasl_start(x, "PLAIN", e, strlen(e), &ch);

	free(e);
	return r;
}

#define PLAIN(s) plain_ir(x, s, sizeof(s) - 1)

START_TEST(test_auth_sasl_plain)
{
	struct sasl_exchange *x = sasl_new();
	const char *ch = NULL;
	char *e;

	ck_assert_int_eq(PLAIN("\0alice@example.org\0secret"), SASL_DONE);
	ck_assert_str_eq(sasl_authcid(x), "alice@example.org");
	ck_assert_str_eq(sasl_password(x), "secret");
	ck_assert_int_eq(sasl_error(x), SASL_ERR_NONE);
	/* authzid equal to authcid (any case) is fine; another is not */
	ck_assert_int_eq(PLAIN("Alice@example.org\0alice@example.org\0pw"), SASL_DONE);
	ck_assert_int_eq(PLAIN("bob@example.org\0alice@example.org\0pw"), SASL_FAIL);
	ck_assert_int_eq(sasl_error(x), SASL_ERR_AUTHZID);
	ck_assert_str_eq(sasl_password(x), "");
	/* NULs: too few, too many, empty fields */
	ck_assert_int_eq(PLAIN("alice\0secret"), SASL_FAIL);
	ck_assert_int_eq(sasl_error(x), SASL_ERR_SYNTAX);
	ck_assert_int_eq(PLAIN("alicesecret"), SASL_FAIL);
	ck_assert_int_eq(PLAIN("\0alice\0sec\0ret"), SASL_FAIL);
	ck_assert_int_eq(PLAIN("\0al\0ice\0secret"), SASL_FAIL);
	ck_assert_int_eq(PLAIN("\0\0secret"), SASL_FAIL);
	ck_assert_int_eq(PLAIN("\0alice\0"), SASL_FAIL);
	ck_assert_int_eq(PLAIN("\0\0"), SASL_FAIL);
	ck_assert_int_eq(sasl_error(x), SASL_ERR_SYNTAX);
	/* control characters or bad UTF-8 in the user name */
	ck_assert_int_eq(PLAIN("\0ali\rce\0secret"), SASL_FAIL);
	ck_assert_int_eq(PLAIN("\0ali\xc3(\0secret"), SASL_FAIL);
	ck_assert_int_eq(PLAIN("\0ali\xc0\xaf" "ce\0secret"), SASL_FAIL); /* overlong */
	ck_assert_int_eq(PLAIN("\0j\xc3\xb6rg\0s\xe9" "cret"), SASL_DONE); /* UTF-8 name, Latin-1 pw */
	ck_assert_str_eq(sasl_password(x), "s\xe9" "cret");
	/* malformed base64 */
	ck_assert_int_eq(sasl_start(x, "PLAIN", "AGFsaWNlAHNlY3JldA", 18, &ch), SASL_FAIL);
	ck_assert_int_eq(sasl_error(x), SASL_ERR_BASE64);
	ck_assert_int_eq(sasl_start(x, "PLAIN", "AGFsaWNl AHNlY3JldA==", 21, &ch), SASL_FAIL);
	ck_assert_int_eq(sasl_start(x, "PLAIN", "AGFsaWNlAHNlY3JldA=\0", 20, &ch), SASL_FAIL);
	ck_assert_int_eq(sasl_error(x), SASL_ERR_BASE64);
	ck_assert_int_eq(sasl_start(x, "PLAIN", "AGFsaWNlAHNlY3JldA==", 20, &ch), SASL_DONE);
	/* "=" is an empty initial response: an empty PLAIN message fails */
	ck_assert_int_eq(sasl_start(x, "PLAIN", "=", 1, &ch), SASL_FAIL);
	ck_assert_int_eq(sasl_error(x), SASL_ERR_SYNTAX);
	/* no initial response: empty challenge, then the message */
	ck_assert_int_eq(sasl_start(x, "plain", NULL, 0, &ch), SASL_CONTINUE);
	ck_assert_str_eq(ch, "");
	e = b64("\0bob@example.org\0pw", 19);
	ck_assert_int_eq(sasl_step(x, e, strlen(e), &ch), SASL_DONE);
	ck_assert_str_eq(sasl_authcid(x), "bob@example.org");
	ck_assert_int_eq(sasl_step(x, e, strlen(e), &ch), SASL_FAIL);
	ck_assert_int_eq(sasl_error(x), SASL_ERR_STATE);
	free(e);
	/* mechanisms */
	ck_assert_int_eq(sasl_start(x, "CRAM-MD5", NULL, 0, &ch), SASL_FAIL);
	ck_assert_int_eq(sasl_error(x), SASL_ERR_MECH);
	ck_assert(sasl_mech_supported("login"));
	ck_assert(!sasl_mech_supported("XOAUTH2"));
	ck_assert(sasl_is_cancel("*", 1));
	ck_assert(!sasl_is_cancel("*x", 2));
	ck_assert(!sasl_is_cancel("", 0));
	ck_assert_str_eq(sasl_error_text(SASL_ERR_AUTHZID), "authorization identity not permitted");
	sasl_free(x);
}
END_TEST

START_TEST(test_auth_sasl_limits)
{
	struct sasl_exchange *x = sasl_new();
	char *msg = malloc(AUTH_SASL_MAX + 2);
	const char *ch;
	char *e;

	/* exactly AUTH_SASL_MAX decoded bytes: accepted */
	memset(msg, 'p', AUTH_SASL_MAX + 1);
	msg[0] = '\0';
	memcpy(msg + 1, "alice", 5);
	msg[6] = '\0';
	e = b64(msg, AUTH_SASL_MAX);
	ck_assert_int_eq(sasl_start(x, "PLAIN", e, strlen(e), &ch), SASL_DONE);
	ck_assert_uint_eq(strlen(sasl_password(x)), AUTH_SASL_MAX - 7);
	free(e);
	/* one more: refused */
	e = b64(msg, AUTH_SASL_MAX + 1);
	ck_assert_int_eq(sasl_start(x, "PLAIN", e, strlen(e), &ch), SASL_FAIL);
	ck_assert_int_eq(sasl_error(x), SASL_ERR_TOO_LONG);
	free(e);
	/* a huge line is refused before decoding */
	e = malloc(100001);
	memset(e, 'A', 100000);
	e[100000] = '\0';
	ck_assert_int_eq(sasl_start(x, "LOGIN", e, 100000, &ch), SASL_FAIL);
	ck_assert_int_eq(sasl_error(x), SASL_ERR_TOO_LONG);
	free(e);
	free(msg);
	sasl_free(x);
}
END_TEST

START_TEST(test_auth_sasl_login)
{
	struct sasl_exchange *x = sasl_new();
	const char *ch;
	unsigned char dec[64];
	long n;

	ck_assert_int_eq(sasl_start(x, "LOGIN", NULL, 0, &ch), SASL_CONTINUE);
	n = base64_decode(ch, strlen(ch), dec);
	ck_assert_int_eq(n, 9);
	ck_assert(memcmp(dec, "Username:", 9) == 0);
	ck_assert_int_eq(sasl_step(x, "YWxpY2VAZXhhbXBsZS5vcmc=", 24, &ch), SASL_CONTINUE);
	n = base64_decode(ch, strlen(ch), dec);
	ck_assert_int_eq(n, 9);
	ck_assert(memcmp(dec, "Password:", 9) == 0);
	ck_assert_int_eq(sasl_step(x, "c2VjcmV0", 8, &ch), SASL_DONE);
	ck_assert_str_eq(sasl_authcid(x), "alice@example.org");
	ck_assert_str_eq(sasl_password(x), "secret");

	/* user name as initial response */
	ck_assert_int_eq(sasl_start(x, "login", "Ym9i", 4, &ch), SASL_CONTINUE);
	ck_assert_str_eq(ch, "UGFzc3dvcmQ6");
	ck_assert_int_eq(sasl_step(x, "cHc=", 4, &ch), SASL_DONE);
	ck_assert_str_eq(sasl_authcid(x), "bob");
	ck_assert_str_eq(sasl_password(x), "pw");

	/* empty fields ("=" or an empty line), NULs, bad base64 */
	ck_assert_int_eq(sasl_start(x, "LOGIN", "=", 1, &ch), SASL_FAIL);
	ck_assert_int_eq(sasl_error(x), SASL_ERR_SYNTAX);
	ck_assert_int_eq(sasl_start(x, "LOGIN", "Ym9i", 4, &ch), SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(x, "", 0, &ch), SASL_FAIL);
	ck_assert_int_eq(sasl_start(x, "LOGIN", "Ym9i", 4, &ch), SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(x, "cA==", 4, &ch), SASL_DONE); /* "p" */
	ck_assert_int_eq(sasl_start(x, "LOGIN", "AGJvYg==", 8, &ch), SASL_FAIL); /* "\0bob" */
	ck_assert_int_eq(sasl_error(x), SASL_ERR_SYNTAX);
	ck_assert_int_eq(sasl_start(x, "LOGIN", NULL, 0, &ch), SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(x, "Ym9i", 4, &ch), SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(x, "cABx", 4, &ch), SASL_FAIL); /* "p\0q" */
	ck_assert_int_eq(sasl_error(x), SASL_ERR_SYNTAX);
	ck_assert_int_eq(sasl_start(x, "LOGIN", NULL, 0, &ch), SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(x, "Ym9", 3, &ch), SASL_FAIL);
	ck_assert_int_eq(sasl_error(x), SASL_ERR_BASE64);
	ck_assert_int_eq(sasl_start(x, "LOGIN", NULL, 0, &ch), SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(x, "Ym9j", 4, &ch), SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(x, "cHc", 3, &ch), SASL_FAIL);
	ck_assert_str_eq(sasl_password(x), "");
	sasl_free(x);
	sasl_free(NULL);
}
END_TEST

/* ---- throttling -------------------------------------------------------- */

START_TEST(test_auth_throttle_counts)
{
	struct auth *auth;
	unsigned delay = 99;
	const time_t t0 = 1000000;
	static const unsigned want[] = { 1000, 2000, 4000, 8000, 16000, 16000 };

	put_file("users", "");
	auth = open_auth();
	for (int i = 0; i < AUTH_THROTTLE_FREE; i++) {
		ck_assert_int_eq(auth_throttle_check(auth, "192.0.2.1", "alice@example.org", t0, &delay),
				 AUTH_THROTTLE_ALLOW);
		ck_assert_uint_eq(delay, 0);
		auth_throttle_failure(auth, "imap", "192.0.2.1", "alice@example.org", t0 + i);
	}
	/* delays grow, capped */
	for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		ck_assert_int_eq(auth_throttle_check(auth, "192.0.2.1", NULL, t0 + 10, &delay),
				 AUTH_THROTTLE_DELAY);
		ck_assert_uint_eq(delay, want[i]);
		/* the account alone is throttled from another address too */
		ck_assert_int_eq(auth_throttle_check(auth, "198.51.100.9", "ALICE@example.org",
						     t0 + 10, &delay), AUTH_THROTTLE_DELAY);
		ck_assert_uint_eq(delay, want[i]);
		auth_throttle_failure(auth, "imap", "192.0.2.1", "alice@example.org", t0 + 10);
	}
	ck_assert_int_eq(auth_throttle_check(auth, "198.51.100.9", "bob@example.org", t0 + 10, &delay),
			 AUTH_THROTTLE_ALLOW);
	/* 20 failures: refused, for 15 minutes */
	for (int i = 5 + 6; i < AUTH_THROTTLE_REFUSE_AFTER - 1; i++) {
		auth_throttle_failure(auth, "imap", "192.0.2.1", "alice@example.org", t0 + 20);
		ck_assert_int_eq(auth_throttle_check(auth, "192.0.2.1", NULL, t0 + 20, &delay),
				 AUTH_THROTTLE_DELAY);
	}
	auth_throttle_failure(auth, "imap", "192.0.2.1", "alice@example.org", t0 + 20);
	ck_assert_int_eq(auth_throttle_check(auth, "192.0.2.1", NULL, t0 + 20, &delay),
			 AUTH_THROTTLE_REFUSE);
	ck_assert_int_eq(auth_throttle_check(auth, NULL, "alice@example.org", t0 + 20, &delay),
			 AUTH_THROTTLE_REFUSE);
	ck_assert_int_eq(auth_throttle_check(auth, "192.0.2.1", "x", t0 + 20 + 899, &delay),
			 AUTH_THROTTLE_REFUSE);
	/* refused attempts still reported do not extend the refusal */
	auth_throttle_failure(auth, "imap", "192.0.2.1", "alice@example.org", t0 + 500);
	ck_assert_int_eq(auth_throttle_check(auth, "192.0.2.1", "alice@example.org",
					     t0 + 20 + 900, &delay), AUTH_THROTTLE_ALLOW);
	/* expiry: 5 failures, then a quiet window */
	for (int i = 0; i < 5; i++)
		auth_throttle_failure(auth, "pop3", "192.0.2.7", NULL, t0 + 5000);
	ck_assert_int_eq(auth_throttle_check(auth, "192.0.2.7", NULL, t0 + 5000 + 599, &delay),
			 AUTH_THROTTLE_DELAY);
	ck_assert_int_eq(auth_throttle_check(auth, "192.0.2.7", NULL, t0 + 5000 + 600, &delay),
			 AUTH_THROTTLE_ALLOW);
	auth_throttle_failure(auth, "pop3", "192.0.2.7", NULL, t0 + 5000 + 600);
	ck_assert_int_eq(auth_throttle_check(auth, "192.0.2.7", NULL, t0 + 5000 + 600, &delay),
			 AUTH_THROTTLE_ALLOW); /* counting starts again at 1 */
	auth_close(auth);
}
END_TEST

START_TEST(test_auth_throttle_success)
{
	struct auth *auth;
	unsigned delay;
	const time_t t = 2000000;

	put_file("users", "");
	auth = open_auth();
	/* a user who mistyped: success clears the account and the address */
	for (int i = 0; i < 6; i++)
		auth_throttle_failure(auth, "smtp", "192.0.2.1", "alice@example.org", t);
	ck_assert_int_eq(auth_throttle_check(auth, "192.0.2.1", "alice@example.org", t, &delay),
			 AUTH_THROTTLE_DELAY);
	auth_throttle_success(auth, "192.0.2.1", "Alice@example.org");
	ck_assert_int_eq(auth_throttle_check(auth, "192.0.2.1", "alice@example.org", t, &delay),
			 AUTH_THROTTLE_ALLOW);
	/* an address that tried several accounts keeps its count */
	for (int i = 0; i < 6; i++)
		auth_throttle_failure(auth, "smtp", "192.0.2.2", i % 2 ? "bob@example.org" :
				      "carol@example.org", t);
	auth_throttle_failure(auth, "smtp", "192.0.2.2", "mallory@example.org", t);
	auth_throttle_success(auth, "192.0.2.2", "mallory@example.org");
	ck_assert_int_eq(auth_throttle_check(auth, "192.0.2.2", "mallory@example.org", t, &delay),
			 AUTH_THROTTLE_DELAY);
	ck_assert_int_eq(auth_throttle_check(auth, "203.0.113.5", "mallory@example.org", t, &delay),
			 AUTH_THROTTLE_ALLOW);
	auth_close(auth);
}
END_TEST

/* An attack on an account refuses new places but never the owner's own
 * devices: where the account logged in recently (same IPv4 address, same
 * IPv6 /64) its count neither applies nor grows. */
START_TEST(test_auth_throttle_known_device)
{
	struct auth *auth;
	unsigned delay;
	const time_t t = 3000000;

	put_file("users", "");
	auth = open_auth();
	auth_throttle_success_at(auth, "198.51.100.7", "alice@example.org", t);
	auth_throttle_success_at(auth, "2001:db8:1:2::10", "alice@example.org", t);
	for (int i = 0; i < AUTH_THROTTLE_REFUSE_AFTER; i++)
		auth_throttle_failure(auth, "imap", i % 2 ? "192.0.2.1" : "192.0.2.2",
				      "alice@example.org", t + 1);
	/* a new place is refused; the phone and the laptop are not */
	ck_assert_int_eq(auth_throttle_check(auth, "203.0.113.9", "alice@example.org", t + 2, &delay),
			 AUTH_THROTTLE_REFUSE);
	ck_assert_int_eq(auth_throttle_check(auth, "198.51.100.7", "ALICE@example.org", t + 2, &delay),
			 AUTH_THROTTLE_ALLOW);
	ck_assert_int_eq(auth_throttle_check(auth, "2001:db8:1:2:aaaa::1", "alice@example.org",
					     t + 2, &delay),
			 AUTH_THROTTLE_ALLOW);
	ck_assert_int_eq(auth_throttle_check(auth, "2001:db8:1:3::10", "alice@example.org", t + 2, &delay),
			 AUTH_THROTTLE_REFUSE);
	/* the phone's next login does not wipe the attacker's count */
	auth_throttle_success_at(auth, "198.51.100.7", "alice@example.org", t + 2);
	ck_assert_int_eq(auth_throttle_check(auth, "203.0.113.9", "alice@example.org", t + 2, &delay),
			 AUTH_THROTTLE_REFUSE);
	/* another account's success at the same place does not help alice */
	auth_throttle_success_at(auth, "203.0.113.9", "bob@example.org", t + 2);
	ck_assert_int_eq(auth_throttle_check(auth, "203.0.113.9", "alice@example.org", t + 2, &delay),
			 AUTH_THROTTLE_REFUSE);
	/* the known device's own typos count for its address only */
	for (int i = 0; i < AUTH_THROTTLE_FREE + 1; i++)
		auth_throttle_failure(auth, "imap", "198.51.100.7", "carol@example.org", t + 3);
	auth_throttle_success_at(auth, "198.51.100.7", "carol@example.org", t + 3);
	for (int i = 0; i < AUTH_THROTTLE_REFUSE_AFTER; i++)
		auth_throttle_failure(auth, "imap", "198.51.100.7", "carol@example.org", t + 4);
	ck_assert_int_eq(auth_throttle_check(auth, "203.0.113.10", "carol@example.org", t + 5, &delay),
			 AUTH_THROTTLE_ALLOW);
	ck_assert_int_eq(auth_throttle_check(auth, "198.51.100.7", "carol@example.org", t + 5, &delay),
			 AUTH_THROTTLE_REFUSE);
	/* a place is forgotten after AUTH_THROTTLE_KNOWN_SECONDS */
	for (int i = 0; i < AUTH_THROTTLE_REFUSE_AFTER; i++)
		auth_throttle_failure(auth, "imap", "192.0.2.3", "alice@example.org",
				      t + 2 + AUTH_THROTTLE_KNOWN_SECONDS);
	ck_assert_int_eq(auth_throttle_check(auth, "198.51.100.7", "alice@example.org",
					     t + 2 + AUTH_THROTTLE_KNOWN_SECONDS, &delay),
			 AUTH_THROTTLE_REFUSE);
	auth_close(auth);
}
END_TEST

START_TEST(test_auth_throttle_bounded)
{
	struct auth *auth;
	struct auth_throttle_table *t;
	unsigned delay;
	char ip[64];

	put_file("users", "");
	auth = open_auth();
	t = auth_throttle_table_of(auth);
	log_level_current = LOG_LEVEL_ERROR; /* 50,000 log lines otherwise */
	for (int i = 0; i < 5; i++)
		auth_throttle_failure(auth, "imap", "192.0.2.99", "victim@example.org", 10);
	for (unsigned i = 0; i < 50000; i++) {
		snprintf(ip, sizeof(ip), "2001:db8::%x:%x", i >> 16, i & 0xffff);
		auth_throttle_failure(auth, "imap", ip, NULL, 20 + i / 1000);
		/* the account under attack stays: it keeps failing too */
		if (i % 1000 == 0)
			auth_throttle_failure(auth, "imap", NULL, "victim@example.org", 20 + i / 1000);
	}
	ck_assert_uint_le(auth_throttle_table_size(t), AUTH_THROTTLE_ENTRIES_MAX);
	ck_assert_uint_ge(auth_throttle_table_size(t), AUTH_THROTTLE_ENTRIES_MAX - 1);
	/* newest kept, oldest gone */
	auth_throttle_failure(auth, "imap", "2001:db8::0:c34f", NULL, 70);
	ck_assert_int_eq(auth_throttle_check(auth, "2001:db8::0:c34f", NULL, 70, &delay),
			 AUTH_THROTTLE_ALLOW);
	ck_assert_int_eq(auth_throttle_check(auth, NULL, "victim@example.org", 70, &delay),
			 AUTH_THROTTLE_REFUSE); /* 5 + 50 failures, never evicted */
	ck_assert_int_eq(auth_throttle_check(auth, "192.0.2.99", NULL, 70, &delay),
			 AUTH_THROTTLE_ALLOW);
	auth_close(auth);
}
END_TEST

START_TEST(test_auth_throttle_log_line)
{
	char path[PATH_MAX], *text;
	struct auth *auth;
	int saved;

	put_file("users", "");
	auth = open_auth();
	log_level_current = LOG_LEVEL_INFO;
	capture_path(2, path);
	saved = redirect(STDERR_FILENO, path, O_WRONLY | O_CREAT | O_TRUNC);
	auth_throttle_failure(auth, "imap", "192.0.2.1", "alice@example.org", 1);
	auth_throttle_failure(auth, "smtp", "2001:db8::1", "x rip=203.0.113.1\n", 1);
	auth_throttle_failure(auth, "pop3", "192.0.2.1", NULL, 1);
	restore(STDERR_FILENO, saved);
	text = get_file(path);
	ck_assert_str_eq(text,
		"postern: level=warn auth failed: proto=imap rip=192.0.2.1 user=alice@example.org\n"
		"postern: level=warn auth failed: proto=smtp rip=2001:db8::1 user=x?rip=203.0.113.1?\n"
		"postern: level=warn auth failed: proto=pop3 rip=192.0.2.1 user=-\n");
	free(text);
	auth_close(auth);
}
END_TEST

/* ---- CLI --------------------------------------------------------------- */

/* Run a CLI function with stdin from `input`; stdout into out (may be
 * NULL).  Returns its exit code. */
static int run_cli(int (*fn)(const struct config *, int, char **), const char *input,
		   char *out, size_t outsize, int argc, ...)
{
	char in_path[PATH_MAX], out_path[PATH_MAX], err_path[PATH_MAX], *argv[16];
	int saved_in, saved_out, saved_err, rc;
	va_list ap;

	ck_assert_int_lt(argc, 16);
	va_start(ap, argc);
	for (int i = 0; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	argv[argc] = NULL;
	PATHF(in_path, sizeof(in_path), "%s/stdin", test_dir);
	ck_assert_int_eq(write_file_atomic(in_path, input, strlen(input), 0600), 0);
	capture_path(1, out_path);
	capture_path(2, err_path);
	saved_in = redirect(STDIN_FILENO, in_path, O_RDONLY);
	saved_out = redirect(STDOUT_FILENO, out_path, O_WRONLY | O_CREAT | O_TRUNC);
	saved_err = redirect(STDERR_FILENO, err_path, O_WRONLY | O_CREAT | O_TRUNC);
	rc = fn(&test_cfg, argc, argv);
	restore(STDIN_FILENO, saved_in);
	restore(STDOUT_FILENO, saved_out);
	restore(STDERR_FILENO, saved_err);
	if (out != NULL) {
		char *text = get_file(out_path);
		str_copy(out, text, outsize);
		free(text);
	}
	return rc;
}

START_TEST(test_auth_cli_user)
{
	char out[4096], path[PATH_MAX];
	struct auth *auth;
	struct stat st;

	/* DATA_DIR is created, 0700 */
	PATHF(test_cfg.data_dir, sizeof(test_cfg.data_dir), "%s/new/data", test_dir);
	ck_assert_int_eq(run_cli(auth_cli_user, "pw-one\n", out, sizeof(out), 3,
				 "add", "Alice@Example.org", "--password-stdin"), 0);
	ck_assert_str_eq(out, "added alice@example.org\n");
	ck_assert_int_eq(stat(test_cfg.data_dir, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	ck_assert_int_eq(run_cli(auth_cli_user, "pw\n", NULL, 0, 5,
				 "add", "bob@example.net", "--password-stdin", "--quota", "1G"), 0);
	/* duplicate, bad domain, bad address, empty password, usage */
	ck_assert_int_eq(run_cli(auth_cli_user, "pw\n", NULL, 0, 3,
				 "add", "alice@example.org", "--password-stdin"), 73);
	ck_assert_int_eq(run_cli(auth_cli_user, "pw\n", NULL, 0, 3,
				 "add", "alice@example.com", "--password-stdin"), 65);
	ck_assert_int_eq(run_cli(auth_cli_user, "pw\n", NULL, 0, 3,
				 "add", "alice:x@example.org", "--password-stdin"), 65);
	ck_assert_int_eq(run_cli(auth_cli_user, "\n", NULL, 0, 3,
				 "add", "carol@example.org", "--password-stdin"), 65);
	ck_assert_int_eq(run_cli(auth_cli_user, "", NULL, 0, 3,
				 "add", "carol@example.org", "--password-stdin"), 65);
	ck_assert_int_eq(run_cli(auth_cli_user, "pw\n", NULL, 0, 2, "add", "carol@example.org"), 64);
	ck_assert_int_eq(run_cli(auth_cli_user, "", NULL, 0, 1, "frobnicate"), 64);
	ck_assert_int_eq(run_cli(auth_cli_user, "", NULL, 0, 0), 64);
	ck_assert_int_eq(run_cli(auth_cli_user, "", NULL, 0, 2, "list", "extra"), 64);

	ck_assert_int_eq(run_cli(auth_cli_user, "", out, sizeof(out), 1, "list"), 0);
	ck_assert_str_eq(out, "alice@example.org\nbob@example.net quota=1073741824\n");

	/* passwd: the new password works at once in an open auth */
	auth = open_auth();
	ck_assert_int_eq(auth_verify_password(auth, "alice@example.org", "pw-one", NULL, 0), 0);
	ck_assert_int_eq(run_cli(auth_cli_user, "pw-two\r\n", NULL, 0, 3,
				 "passwd", "alice@example.org", "--password-stdin"), 0);
	ck_assert_int_eq(auth_verify_password(auth, "alice@example.org", "pw-one", NULL, 0), -1);
	ck_assert_int_eq(auth_verify_password(auth, "alice@example.org", "pw-two", NULL, 0), 0);
	ck_assert_int_eq(run_cli(auth_cli_user, "x\n", NULL, 0, 3,
				 "passwd", "nobody@example.org", "--password-stdin"), 67);
	ck_assert_int_eq(run_cli(auth_cli_user, "", NULL, 0, 3, "quota", "alice@example.org", "10M"), 0);
	ck_assert_int_eq(run_cli(auth_cli_user, "", NULL, 0, 3, "quota", "alice@example.org", "ten"), 65);

	/* del */
	ck_assert_int_eq(run_cli(auth_cli_user, "", out, sizeof(out), 2, "del", "BOB@example.net"), 0);
	ck_assert_str_eq(out, "deleted bob@example.net\n");
	ck_assert_int_eq(run_cli(auth_cli_user, "", NULL, 0, 2, "del", "bob@example.net"), 67);
	ck_assert(!auth_user_exists(auth, "bob@example.net"));
	ck_assert_int_eq(run_cli(auth_cli_user, "", out, sizeof(out), 1, "list"), 0);
	ck_assert_str_eq(out, "alice@example.org quota=10485760\n");
	auth_close(auth);

	/* a broken users file: 78 */
	data_path(path, "users");
	ck_assert_int_eq(write_file_atomic(path, "junk\n", 5, 0600), 0);
	ck_assert_int_eq(run_cli(auth_cli_user, "", NULL, 0, 1, "list"), 78);
	ck_assert_int_eq(run_cli(auth_cli_user, "pw\n", NULL, 0, 3,
				 "add", "dave@example.org", "--password-stdin"), 78);
	{
		char err[PATH_MAX + 64], *text;
		PATHF(err, sizeof(err), "%s/capture-2", test_dir);
		text = get_file(err);
		ck_assert(strstr(text, "users:1: invalid address 'junk'") != NULL);
		free(text);
	}
}
END_TEST

START_TEST(test_auth_cli_alias)
{
	char out[4096], err[256];

	ck_assert_int_eq(auth_user_add_with_password(&test_cfg, "demo@example.org", "pw",
						     err, sizeof(err)), 0);
	ck_assert_int_eq(auth_user_add_with_password(&test_cfg, "demo@example.org", "pw",
						     err, sizeof(err)), -1);
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_int_eq(auth_user_add_with_password(&test_cfg, "demo@example.test", "pw",
						     err, sizeof(err)), -1);

	ck_assert_int_eq(run_cli(auth_cli_alias, "", NULL, 0, 3, "add", "Info@example.org",
				 "demo@example.org"), 0);
	ck_assert_int_eq(run_cli(auth_cli_alias, "", NULL, 0, 4, "add", "info@example.org",
				 "Demo@example.org", "out@elsewhere.example"), 0);
	ck_assert_int_eq(run_cli(auth_cli_alias, "", NULL, 0, 3, "add", "@example.net",
				 "demo@example.org"), 0);
	ck_assert_int_eq(run_cli(auth_cli_alias, "", out, sizeof(out), 1, "list"), 0);
	ck_assert_str_eq(out, "info@example.org demo@example.org out@elsewhere.example\n"
			 "@example.net demo@example.org\n");
	/* refused: alias over a user, foreign domain, bad target, usage */
	ck_assert_int_eq(run_cli(auth_cli_alias, "", NULL, 0, 3, "add", "demo@example.org",
				 "x@example.org"), 73);
	ck_assert_int_eq(run_cli(auth_cli_alias, "", NULL, 0, 3, "add", "a@example.com",
				 "demo@example.org"), 65);
	ck_assert_int_eq(run_cli(auth_cli_alias, "", NULL, 0, 3, "add", "a@example.org",
				 "not-an-address"), 65);
	ck_assert_int_eq(run_cli(auth_cli_alias, "", NULL, 0, 2, "add", "a@example.org"), 64);
	/* and a user over an alias */
	ck_assert_int_eq(run_cli(auth_cli_user, "pw\n", NULL, 0, 3, "add", "info@example.org",
				 "--password-stdin"), 73);
	/* del one target, then the alias */
	ck_assert_int_eq(run_cli(auth_cli_alias, "", NULL, 0, 3, "del", "info@example.org",
				 "OUT@elsewhere.example"), 0);
	ck_assert_int_eq(run_cli(auth_cli_alias, "", NULL, 0, 3, "del", "info@example.org",
				 "zz@elsewhere.example"), 67);
	ck_assert_int_eq(run_cli(auth_cli_alias, "", out, sizeof(out), 1, "list"), 0);
	ck_assert_str_eq(out, "info@example.org demo@example.org\n@example.net demo@example.org\n");
	ck_assert_int_eq(run_cli(auth_cli_alias, "", NULL, 0, 2, "del", "@example.net"), 0);
	ck_assert_int_eq(run_cli(auth_cli_alias, "", NULL, 0, 2, "del", "@example.net"), 67);
	ck_assert_int_eq(run_cli(auth_cli_alias, "", out, sizeof(out), 1, "list"), 0);
	ck_assert_str_eq(out, "info@example.org demo@example.org\n");
}
END_TEST

static Suite *auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("auth");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_auth_hash_verify);
	tcase_add_test(tc, test_auth_verify_password);
	tcase_add_test(tc, test_auth_cache_table);
	tcase_add_test(tc, test_auth_cache_verify);
	tcase_add_test(tc, test_auth_users_roundtrip);
	tcase_add_test(tc, test_auth_users_malformed);
	tcase_add_test(tc, test_auth_users_survive_kill);
	tcase_add_test(tc, test_auth_alias_resolution);
	tcase_add_test(tc, test_auth_alias_limits);
	tcase_add_test(tc, test_auth_refresh_other_writer);
	tcase_add_test(tc, test_auth_concurrent_refresh);
	tcase_add_test(tc, test_auth_sasl_plain);
	tcase_add_test(tc, test_auth_sasl_limits);
	tcase_add_test(tc, test_auth_sasl_login);
	tcase_add_test(tc, test_auth_throttle_counts);
	tcase_add_test(tc, test_auth_throttle_success);
	tcase_add_test(tc, test_auth_throttle_known_device);
	tcase_add_test(tc, test_auth_throttle_bounded);
	tcase_add_test(tc, test_auth_throttle_log_line);
	tcase_add_test(tc, test_auth_cli_user);
	tcase_add_test(tc, test_auth_cli_alias);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(auth_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
