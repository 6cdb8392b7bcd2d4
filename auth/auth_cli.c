/* `postern user ...` and `postern alias ...` (usage in auth.h), and the
 * demo's user creation.  Exit codes are sysexits(3).
 *
 * Run as root, the commands write as the owner of DATA_DIR (creating it
 * for run_as_user when missing), so the unprivileged daemon can read the
 * files they write.
 */
#include "auth.h"
#include "auth_private.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <termios.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

#define CLI_ERR_MAX (PATH_MAX + 512)

static const char cli_user_usage[] =
	"usage: postern user add ADDRESS [--password-stdin] [--quota SIZE]\n"
	"       postern user passwd ADDRESS [--password-stdin]\n"
	"       postern user quota ADDRESS SIZE [MESSAGES]\n"
	"       postern user del ADDRESS\n"
	"       postern user list\n";

static const char cli_alias_usage[] =
	"usage: postern alias add ALIAS TARGET...\n"
	"       postern alias del ALIAS [TARGET...]\n"
	"       postern alias list\n";

static int usage(const char *text)
{
	fputs(text, stderr);
	return EX_USAGE;
}

static bool domain_configured(const struct config *cfg, const char *domain)
{
	for (size_t i = 0; i < cfg->n_domains; i++)
		if (str_ieq(cfg->domains[i], domain))
			return true;
	return false;
}

/* DATA_DIR 0700, its missing parents 0755 (so that the daemon's user can
 * reach it). */
static int make_data_dir(const char *dir)
{
	char parent[PATH_MAX];
	char *slash;

	if (str_copy(parent, dir, sizeof(parent)) >= sizeof(parent)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	slash = strrchr(parent, '/');
	if (slash != NULL && slash != parent) {
		*slash = '\0';
		if (mkdir_p(parent, 0755) < 0)
			return -1;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* Create DATA_DIR when asked, and when root, act as its owner. */
static int cli_prepare(const struct config *cfg, bool create)
{
	struct passwd *pw = NULL;
	struct stat st;

	if (geteuid() == 0 && cfg->run_as_user[0] != '\0') {
		pw = getpwnam(cfg->run_as_user);
		if (pw == NULL) {
			fprintf(stderr, "postern: run_as_user %s: no such system user\n",
				cfg->run_as_user);
			return EX_CONFIG;
		}
	}
	if (stat(cfg->data_dir, &st) < 0) {
		if (errno != ENOENT || !create) {
			if (errno == ENOENT)
				return EX_OK; /* nothing to read: empty */
			fprintf(stderr, "postern: %s: %s\n", cfg->data_dir, strerror(errno));
			return EX_IOERR;
		}
		if (make_data_dir(cfg->data_dir) < 0 ||
		    (pw != NULL && chown(cfg->data_dir, pw->pw_uid, pw->pw_gid) < 0) ||
		    stat(cfg->data_dir, &st) < 0) {
			fprintf(stderr, "postern: cannot create %s: %s\n", cfg->data_dir,
				strerror(errno));
			return EX_CANTCREAT;
		}
	}
	if (geteuid() == 0 && st.st_uid != 0 && create) {
		if (setegid(st.st_gid) < 0 || seteuid(st.st_uid) < 0) {
			fprintf(stderr, "postern: cannot act as the owner of %s: %s\n",
				cfg->data_dir, strerror(errno));
			return EX_OSERR;
		}
	}
	return EX_OK;
}

static int edit_exit(const char *what, enum auth_edit_result res, const char *err)
{
	static const int codes[] = {
		[AUTH_EDIT_OK] = EX_OK,
		[AUTH_EDIT_EXISTS] = EX_CANTCREAT,
		[AUTH_EDIT_NOT_FOUND] = EX_NOUSER,
		[AUTH_EDIT_BAD_FILE] = EX_CONFIG,
		[AUTH_EDIT_INVALID] = EX_DATAERR,
		[AUTH_EDIT_IO] = EX_IOERR,
	};

	if (res != AUTH_EDIT_OK)
		fprintf(stderr, "postern %s: %s\n", what, err);
	return codes[res];
}

/* --- passwords --- */

/* One line from fd 0, without its line end.  0, or an exit code. */
static int read_line_fd0(char *out, size_t size)
{
	size_t n = 0;

	for (;;) {
		char c;
		ssize_t r = read(STDIN_FILENO, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "postern: reading the password: %s\n", strerror(errno));
			return EX_IOERR;
		}
		if (r == 0 || c == '\n')
			break;
		if (n + 1 >= size) {
			explicit_bzero(out, size);
			fprintf(stderr, "postern: password longer than %d bytes\n",
				AUTH_PASSWORD_MAX);
			return EX_DATAERR;
		}
		out[n++] = c;
	}
	if (n > 0 && out[n - 1] == '\r')
		n--;
	out[n] = '\0';
	if (memchr(out, '\0', n) != NULL || n == 0) {
		explicit_bzero(out, size);
		fprintf(stderr, "postern: %s password refused\n", n == 0 ? "empty" : "NUL in");
		return EX_DATAERR;
	}
	return EX_OK;
}

static int prompt_line(const char *prompt, char *out, size_t size)
{
	struct termios old, quiet;
	int rc;

	if (tcgetattr(STDIN_FILENO, &old) < 0) {
		fprintf(stderr, "postern: terminal: %s\n", strerror(errno));
		return EX_IOERR;
	}
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	fputs(prompt, stderr);
	fflush(stderr);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	rc = read_line_fd0(out, size);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	return rc;
}

static int get_password(bool from_stdin, char *out, size_t size)
{
	char again[AUTH_PASSWORD_MAX + 2];
	int rc;

	if (from_stdin)
		return read_line_fd0(out, size);
	if (!isatty(STDIN_FILENO)) {
		fprintf(stderr, "postern: stdin is not a terminal; use --password-stdin\n");
		return EX_USAGE;
	}
	if ((rc = prompt_line("New password: ", out, size)) != EX_OK)
		return rc;
	if ((rc = prompt_line("Again: ", again, sizeof(again))) != EX_OK) {
		explicit_bzero(out, size);
		return rc;
	}
	rc = strcmp(out, again) == 0 ? EX_OK : EX_DATAERR;
	explicit_bzero(again, sizeof(again));
	if (rc != EX_OK) {
		explicit_bzero(out, size);
		fprintf(stderr, "postern: the passwords differ\n");
	}
	return rc;
}

/* --- user --- */

static int user_list(const struct config *cfg)
{
	char path[PATH_MAX], err[CLI_ERR_MAX];
	struct auth_users users;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", cfg->data_dir, AUTH_USERS_FILE) >= sizeof(path)) {
		fprintf(stderr, "postern: %s: path too long\n", cfg->data_dir);
		return EX_CONFIG;
	}
	if (auth_users_load(path, NULL, &users, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "postern: %s\n", err);
		return errno == EACCES ? EX_NOPERM : EX_CONFIG;
	}
	for (size_t i = 0; i < users.n; i++) {
		printf("%s", users.v[i].address);
		if (users.v[i].quota != 0)
			printf(" quota=%llu", (unsigned long long)users.v[i].quota);
		if (users.v[i].quota_messages != 0)
			printf(" quota_messages=%llu",
			       (unsigned long long)users.v[i].quota_messages);
		printf("\n");
	}
	auth_users_free(&users);
	return fflush(stdout) == 0 ? EX_OK : EX_IOERR;
}

int auth_cli_user(const struct config *cfg, int argc, char **argv)
{
	char address[AUTH_ADDRESS_MAX + 1], err[CLI_ERR_MAX];
	char password[AUTH_PASSWORD_MAX + 2], hash[AUTH_HASH_MAX + 1];
	const char *pos[3], *verb, *quota_arg = NULL;
	struct auth_edit_op op = { .kind = AUTH_EDIT_USER_ADD };
	bool from_stdin = false;
	size_t npos = 0;
	int rc;

	if (argc < 1)
		return usage(cli_user_usage);
	verb = argv[0];
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--password-stdin") == 0)
			from_stdin = true;
		else if (strcmp(argv[i], "--quota") == 0 && i + 1 < argc)
			quota_arg = argv[++i];
		else if (argv[i][0] == '-' || npos == 3)
			return usage(cli_user_usage);
		else
			pos[npos++] = argv[i];
	}
	if (strcmp(verb, "list") == 0) {
		if (npos != 0 || from_stdin || quota_arg != NULL)
			return usage(cli_user_usage);
		rc = cli_prepare(cfg, false);
		return rc != EX_OK ? rc : user_list(cfg);
	}
	if (npos == 3 && strcmp(verb, "quota") != 0)
		return usage(cli_user_usage);
	if (strcmp(verb, "add") == 0 && npos == 1)
		op.kind = AUTH_EDIT_USER_ADD;
	else if (strcmp(verb, "passwd") == 0 && npos == 1 && quota_arg == NULL)
		op.kind = AUTH_EDIT_USER_HASH;
	else if (strcmp(verb, "quota") == 0 && npos >= 2 && !from_stdin && quota_arg == NULL)
		op.kind = AUTH_EDIT_USER_QUOTA, quota_arg = pos[1];
	else if (strcmp(verb, "del") == 0 && npos == 1 && !from_stdin && quota_arg == NULL)
		op.kind = AUTH_EDIT_USER_DEL;
	else
		return usage(cli_user_usage);

	if (auth_address_canon(pos[0], address, sizeof(address)) < 0) {
		fprintf(stderr, "postern: invalid address: %s\n", pos[0]);
		return EX_DATAERR;
	}
	op.address = address;
	if (quota_arg != NULL && auth_parse_size(quota_arg, &op.quota) < 0) {
		fprintf(stderr, "postern: invalid size: %s (bytes, or 10K, 5M, 1G, 2T)\n",
			quota_arg);
		return EX_DATAERR;
	}
	if (op.kind == AUTH_EDIT_USER_QUOTA && npos == 3) {
		op.set_messages = true;
		if (str_to_u64(pos[2], 0, AUTH_QUOTA_MESSAGES_MAX, &op.quota_messages) < 0) {
			fprintf(stderr, "postern: invalid message count: %s\n", pos[2]);
			return EX_DATAERR;
		}
	}
	if (op.kind == AUTH_EDIT_USER_ADD &&
	    !domain_configured(cfg, strrchr(address, '@') + 1)) {
		fprintf(stderr, "postern: %s is not one of the configured domains\n",
			strrchr(address, '@') + 1);
		return EX_DATAERR;
	}
	rc = cli_prepare(cfg, true);
	if (rc != EX_OK)
		return rc;
	if (op.kind == AUTH_EDIT_USER_ADD || op.kind == AUTH_EDIT_USER_HASH) {
		rc = get_password(from_stdin, password, sizeof(password));
		if (rc != EX_OK)
			return rc;
		rc = auth_hash_password(password, hash, sizeof(hash));
		explicit_bzero(password, sizeof(password));
		if (rc < 0) {
			fprintf(stderr, "postern: crypt(3) failed to hash the password\n");
			return EX_SOFTWARE;
		}
		op.hash = hash;
	}
	rc = edit_exit("user", auth_files_edit(cfg->data_dir, &op, err, sizeof(err)), err);
	if (rc == EX_OK)
		printf("%s %s\n", op.kind == AUTH_EDIT_USER_ADD ? "added" :
		       op.kind == AUTH_EDIT_USER_DEL ? "deleted" : "updated", address);
	return rc;
}

int auth_user_add_with_password(const struct config *cfg, const char *address,
				const char *password, char *err, size_t errlen)
{
	char canon[AUTH_ADDRESS_MAX + 1], hash[AUTH_HASH_MAX + 1];
	struct auth_edit_op op = { .kind = AUTH_EDIT_USER_ADD };
	enum auth_edit_result res;

	if (auth_address_canon(address, canon, sizeof(canon)) < 0 ||
	    !domain_configured(cfg, strrchr(canon, '@') + 1)) {
		snprintf(err, errlen, "%s: invalid address or domain not configured", address);
		errno = EINVAL;
		return -1;
	}
	if (password[0] == '\0' || strlen(password) > AUTH_PASSWORD_MAX) {
		snprintf(err, errlen, "password empty or too long");
		errno = EINVAL;
		return -1;
	}
	if (make_data_dir(cfg->data_dir) < 0) {
		snprintf(err, errlen, "%s: %s", cfg->data_dir, strerror(errno));
		return -1;
	}
	if (auth_hash_password(password, hash, sizeof(hash)) < 0) {
		snprintf(err, errlen, "crypt(3) failed to hash the password");
		errno = EINVAL;
		return -1;
	}
	op.address = canon;
	op.hash = hash;
	res = auth_files_edit(cfg->data_dir, &op, err, errlen);
	if (res == AUTH_EDIT_OK)
		return 0;
	errno = res == AUTH_EDIT_EXISTS ? EEXIST : res == AUTH_EDIT_IO ? EIO : EINVAL;
	return -1;
}

/* --- alias --- */

static int alias_list(const struct config *cfg)
{
	char path[PATH_MAX], err[CLI_ERR_MAX];
	struct auth_aliases aliases;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", cfg->data_dir, AUTH_ALIASES_FILE) >= sizeof(path)) {
		fprintf(stderr, "postern: %s: path too long\n", cfg->data_dir);
		return EX_CONFIG;
	}
	if (auth_aliases_load(path, NULL, &aliases, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "postern: %s\n", err);
		return errno == EACCES ? EX_NOPERM : EX_CONFIG;
	}
	for (size_t i = 0; i < aliases.n; i++) {
		fputs(aliases.v[i].address, stdout);
		for (size_t k = 0; k < aliases.v[i].n_targets; k++)
			printf(" %s", aliases.v[i].targets[k]);
		putchar('\n');
	}
	auth_aliases_free(&aliases);
	return fflush(stdout) == 0 ? EX_OK : EX_IOERR;
}

/* Tell the admin about local targets that reach nobody (yet). */
static void alias_warn_unknown(const struct config *cfg, char **targets, size_t n)
{
	char err[CLI_ERR_MAX];
	struct auth *auth = auth_open(cfg, err, sizeof(err));
	struct auth_target *out;

	if (auth == NULL)
		return;
	out = calloc(AUTH_RESOLVE_MAX, sizeof(*out));
	for (size_t i = 0; out != NULL && i < n; i++) {
		size_t nt;
		if (auth_resolve_recipient(auth, targets[i], out, AUTH_RESOLVE_MAX, &nt) ==
		    AUTH_RCPT_UNKNOWN)
			fprintf(stderr, "postern: warning: %s is no user or alias\n", targets[i]);
	}
	free(out);
	auth_close(auth);
}

int auth_cli_alias(const struct config *cfg, int argc, char **argv)
{
	char alias[AUTH_ADDRESS_MAX + 1], err[CLI_ERR_MAX];
	struct auth_edit_op op = { .kind = AUTH_EDIT_ALIAS_ADD };
	const char *verb, *domain;
	int rc;

	if (argc < 1)
		return usage(cli_alias_usage);
	verb = argv[0];
	if (strcmp(verb, "list") == 0) {
		if (argc != 1)
			return usage(cli_alias_usage);
		rc = cli_prepare(cfg, false);
		return rc != EX_OK ? rc : alias_list(cfg);
	}
	if (strcmp(verb, "add") == 0 && argc >= 3)
		op.kind = AUTH_EDIT_ALIAS_ADD;
	else if (strcmp(verb, "del") == 0 && argc >= 2)
		op.kind = AUTH_EDIT_ALIAS_DEL;
	else
		return usage(cli_alias_usage);
	for (int i = 1; i < argc; i++)
		if (argv[i][0] == '-' && argv[i][1] != '\0')
			return usage(cli_alias_usage);

	if (strlen(argv[1]) >= sizeof(alias) ||
	    (!auth_address_valid(argv[1]) && !auth_catchall_valid(argv[1]))) {
		fprintf(stderr, "postern: invalid alias: %s (local@domain or @domain)\n",
			argv[1]);
		return EX_DATAERR;
	}
	str_copy(alias, argv[1], sizeof(alias));
	str_lower(alias);
	domain = strrchr(alias, '@') + 1;
	if (!domain_configured(cfg, domain)) {
		fprintf(stderr, "postern: %s is not one of the configured domains\n", domain);
		return EX_DATAERR;
	}
	if ((size_t)(argc - 2) > AUTH_RESOLVE_MAX) {
		fprintf(stderr, "postern: more than %d targets\n", AUTH_RESOLVE_MAX);
		return EX_DATAERR;
	}
	for (int i = 2; i < argc; i++) {
		if (!auth_address_valid(argv[i])) {
			fprintf(stderr, "postern: invalid target address: %s\n", argv[i]);
			return EX_DATAERR;
		}
	}
	op.address = alias;
	op.targets = (const char *const *)(argv + 2);
	op.n_targets = (size_t)(argc - 2);
	rc = cli_prepare(cfg, true);
	if (rc != EX_OK)
		return rc;
	rc = edit_exit("alias", auth_files_edit(cfg->data_dir, &op, err, sizeof(err)), err);
	if (rc == EX_OK && op.kind == AUTH_EDIT_ALIAS_ADD)
		alias_warn_unknown(cfg, argv + 2, op.n_targets);
	return rc;
}
