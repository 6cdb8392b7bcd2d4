/* core/privsep.c, the privileged file reader: without root or run_as_user
 * there is no helper and files are read directly; as root, after a real
 * privilege drop (in a forked child), a root-only file of the list comes
 * back whole from the helper, a root-only file not in the list does not,
 * the caller's size bound holds, a DATA_DIR file swapped for a symlink or
 * a hard link to a secret is refused, and the helper exits when freed.  The
 * root-only part passes with a note when the tests do not run as root. */
#include <check.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "privsep.h"
#include "util.h"

#define TEST_RUN_AS "nobody"
#define TEST_KEY_TEXT "-----BEGIN PRIVATE KEY-----\nnot really a key\n-----END PRIVATE KEY-----\n"
#define TEST_USERS_TEXT "alice@example.test $y$j9T$x$y\n"

static char test_dir[64];
static char test_key[PATH_MAX], test_cert[PATH_MAX], test_users[PATH_MAX], test_other[PATH_MAX];
/* In the list as DATA_DIR files, but links to test_other: what a
 * compromised daemon could make of DATA_DIR/users. */
static char test_symlink[PATH_MAX], test_hardlink[PATH_MAX];

static void test_write(const char *path, const char *text, mode_t mode)
{
	ck_assert_int_eq(write_file_atomic(path, text, strlen(text), mode), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
}

static void test_setup(void)
{
	str_copy(test_dir, "/tmp/check-privsep-XXXXXX", sizeof(test_dir));
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
	ck_assert_int_eq(chmod(test_dir, 0755), 0);
	snprintf(test_key, sizeof(test_key), "%s/key.pem", test_dir);
	snprintf(test_cert, sizeof(test_cert), "%s/cert.pem", test_dir);
	snprintf(test_users, sizeof(test_users), "%s/users", test_dir);
	snprintf(test_other, sizeof(test_other), "%s/other", test_dir);
	test_write(test_key, TEST_KEY_TEXT, 0600);
	test_write(test_cert, "cert\n", 0644);
	test_write(test_users, TEST_USERS_TEXT, 0600);
	test_write(test_other, "secret\n", 0600);
	snprintf(test_symlink, sizeof(test_symlink), "%s/symlink", test_dir);
	snprintf(test_hardlink, sizeof(test_hardlink), "%s/hardlink", test_dir);
	ck_assert_int_eq(symlink(test_other, test_symlink), 0);
	ck_assert_int_eq(link(test_other, test_hardlink), 0);
}

static void test_teardown(void)
{
	unlink(test_key);
	unlink(test_cert);
	unlink(test_users);
	unlink(test_other);
	unlink(test_symlink);
	unlink(test_hardlink);
	rmdir(test_dir);
}

static void test_config(struct config *cfg, const char *run_as)
{
	memset(cfg, 0, sizeof(*cfg));
	config_defaults(cfg);
	str_copy(cfg->run_as_user, run_as, sizeof(cfg->run_as_user));
	cfg->n_certs = 1;
	str_copy(cfg->certs[0].cert_file, test_cert, sizeof(cfg->certs[0].cert_file));
	str_copy(cfg->certs[0].key_file, test_key, sizeof(cfg->certs[0].key_file));
}

START_TEST(test_privsep_none_without_run_as_user)
{
	struct config cfg;
	struct privsep *ps = (struct privsep *)&cfg; /* must be overwritten */
	const char *extra[] = { test_users };
	char err[256], *data;
	size_t len;

	test_setup();
	test_config(&cfg, "");
	ck_assert_int_eq(privsep_start(&cfg, extra, 1, &ps, err, sizeof(err)), 0);
	ck_assert_ptr_null(ps);
	ck_assert_int_eq(privsep_read_file(NULL, test_cert, 1024, &data, &len), 0);
	ck_assert_str_eq(data, "cert\n");
	free(data);
	errno = 0;
	ck_assert_int_eq(privsep_read_file(NULL, test_cert, 2, &data, &len), -1);
	ck_assert_int_eq(errno, EFBIG);
	test_teardown();
}
END_TEST

/* In the child, after the drop: 0, or the number of the failed check. */
static int test_child_checks(struct privsep *ps)
{
	char *data;
	size_t len;

	if (privsep_read_file(ps, test_key, 1024, &data, &len) < 0 ||
	    len != strlen(TEST_KEY_TEXT) || memcmp(data, TEST_KEY_TEXT, len) != 0)
		return 1;
	free(data);
	if (privsep_read_file(ps, test_users, 1024, &data, &len) < 0 ||
	    strcmp(data, TEST_USERS_TEXT) != 0)
		return 2;
	free(data);
	/* Root-only but not in the list: refused, the helper is not asked. */
	errno = 0;
	if (privsep_read_file(ps, test_other, 1024, &data, &len) == 0 || errno != EACCES)
		return 3;
	/* The caller's bound holds on the helper's side too. */
	errno = 0;
	if (privsep_read_file(ps, test_key, 8, &data, &len) == 0 || errno != EFBIG)
		return 4;
	/* After an error reply the stream is still in step. */
	if (privsep_read_file(ps, test_key, 1024, &data, &len) < 0)
		return 5;
	free(data);
	/* DATA_DIR files swapped for links to a secret are not followed. */
	errno = 0;
	if (privsep_read_file(ps, test_symlink, 1024, &data, &len) == 0 || errno != ELOOP)
		return 6;
	errno = 0;
	if (privsep_read_file(ps, test_hardlink, 1024, &data, &len) == 0 || errno != EPERM)
		return 7;
	return 0;
}

static int test_child(void)
{
	struct config cfg;
	struct privsep *ps;
	const char *extra[] = { test_users, test_symlink, test_hardlink };
	struct passwd *pw = getpwnam(TEST_RUN_AS);
	char err[256], *data;
	size_t len;
	int rc;

	test_config(&cfg, TEST_RUN_AS);
	if (pw == NULL || privsep_start(&cfg, extra, sizeof(extra) / sizeof(extra[0]), &ps,
					err, sizeof(err)) < 0 || ps == NULL)
		return 10;
	if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
		return 11;
	/* Really unprivileged: the key cannot be opened directly. */
	if (read_small_file(test_key, 1024, &data, &len) == 0 || errno != EACCES)
		return 12;
	rc = test_child_checks(ps);
	privsep_free(ps); /* returns once the helper has exited */
	return rc;
}

START_TEST(test_privsep_root_only_files)
{
	int status;
	pid_t pid;

	if (geteuid() != 0 || getpwnam(TEST_RUN_AS) == NULL) {
		printf("skipped: needs root and a user %s\n", TEST_RUN_AS);
		return;
	}
	test_setup();
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(test_child());
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	test_teardown();
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child failed check %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("privsep");
	TCase *tc = tcase_create("privsep");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_privsep_none_without_run_as_user);
	tcase_add_test(tc, test_privsep_root_only_files);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
