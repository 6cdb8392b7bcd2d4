/* postern: the subcommand table.  This is the one file that includes every
 * module's header; it only parses the command line and dispatches. */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "log.h"
#include "notify.h"
#include "privsep.h"
#include "sandbox.h"
#include "server.h"
#include "store.h"
#include "tls.h"
#include "util.h"
#ifdef POSTERN_HAVE_SMTP
#include "dkim.h"
#include "smtp.h"
#endif
#ifdef POSTERN_HAVE_IMAP
#include "imap.h"
#endif
#ifdef POSTERN_HAVE_POP3
#include "pop3.h"
#endif
#ifdef POSTERN_HAVE_HTTP
#include "http.h"
#endif
#ifdef POSTERN_HAVE_MANAGESIEVE
#include "managesieve.h"
#endif

#define MAIN_CONFIG_DEFAULT "/etc/postern/postern.conf"
#define MAIN_DEMO_DIR_DEFAULT "postern-demo"
#define MAIN_DEMO_PORT_BASE 10000
#define MAIN_DEMO_USER "demo@example.test"
#define MAIN_DEMO_PASSWORD_BYTES 12

struct main_cmd {
	const char *name;
	int (*run)(const char *config_path, int argc, char **argv);
	const char *usage;
};

static void main_usage(FILE *out);

static int main_load_config(const char *path, struct config *cfg)
{
	char err[CONFIG_ERROR_MAX];

	if (config_load(path, cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "postern: %s\n", err);
		return -1;
	}
	log_level_current = cfg->log_level;
	return 0;
}

/* Only registered protocols get their listeners bound. */
static int main_register_protocols(struct server *srv, struct auth *auth,
				   struct md_store *store, char *err, size_t errlen)
{
	(void)srv;
	(void)auth;
	(void)store;
	(void)err;
	(void)errlen;
#ifdef POSTERN_HAVE_SMTP
	if (smtp_register(srv, auth, store, err, errlen) < 0)
		return -1;
#endif
#ifdef POSTERN_HAVE_IMAP
	if (imap_register(srv, auth, store, err, errlen) < 0)
		return -1;
#endif
#ifdef POSTERN_HAVE_POP3
	if (pop3_register(srv, auth, store, err, errlen) < 0)
		return -1;
#endif
#ifdef POSTERN_HAVE_HTTP
	if (http_register(srv, auth, store, err, errlen) < 0)
		return -1;
#endif
#ifdef POSTERN_HAVE_MANAGESIEVE
	if (managesieve_register(srv, auth, store, err, errlen) < 0)
		return -1;
#endif
	return 0;
}

static bool main_role_available(enum listener_role role)
{
	switch (role) {
	case ROLE_SMTP:
	case ROLE_SUBMISSION:
	case ROLE_SUBMISSIONS:
	case ROLE_LMTP:
#ifdef POSTERN_HAVE_SMTP
		return true;
#else
		return false;
#endif
	case ROLE_IMAP:
	case ROLE_IMAPS:
#ifdef POSTERN_HAVE_IMAP
		return true;
#else
		return false;
#endif
	case ROLE_POP3:
	case ROLE_POP3S:
#ifdef POSTERN_HAVE_POP3
		return true;
#else
		return false;
#endif
	case ROLE_HTTP:
#ifdef POSTERN_HAVE_HTTP
		return true;
#else
		return false;
#endif
	case ROLE_MANAGESIEVE:
#ifdef POSTERN_HAVE_MANAGESIEVE
		return true;
#else
		return false;
#endif
	case ROLE_COUNT:
		break;
	}
	return false;
}

#define MAIN_STORE_MAINTENANCE_S 300 /* reader slots of dead processes, old spool files */

static void main_store_maintenance(void *arg)
{
	md_store_maintenance(arg);
}

/* Last step of start-up: every file outside data_dir the daemon needs
 * later is named in sandbox.c.  POSTERN_SANDBOX_PROBE (tests) names a file
 * to try to open once restricted. */
static void main_sandbox(const struct config *cfg)
{
	char err[512];

	if (!cfg->sandbox) {
		log_info("sandbox: off (sandbox = no)");
		sandbox_probe(getenv("POSTERN_SANDBOX_PROBE"));
		return;
	}
	switch (sandbox_restrict(cfg, err, sizeof(err))) {
	case SANDBOX_ON:
		log_info("sandbox: on (%s): files outside %s and the configuration are "
			 "out of reach", err, cfg->data_dir);
		break;
	case SANDBOX_UNSUPPORTED:
		log_warn("sandbox: not available, running without: %s", err);
		break;
	case SANDBOX_FAILED:
		log_warn("sandbox: not set up, running without: %s", err);
		break;
	}
	sandbox_probe(getenv("POSTERN_SANDBOX_PROBE"));
}

static void main_auth_refresh(void *arg)
{
	auth_refresh(arg);
}

/* As root with run_as_user: make sure data_dir exists and belongs to that
 * user, who then creates everything below it. */
static int main_prepare_data_dir(const struct config *cfg)
{
	struct passwd *pw;

	if (geteuid() != 0 || cfg->run_as_user[0] == '\0')
		return 0;
	pw = getpwnam(cfg->run_as_user);
	if (pw == NULL) {
		fprintf(stderr, "postern: %s: run_as_user '%s' does not exist\n", cfg->path,
			cfg->run_as_user);
		return -1;
	}
	if (mkdir_p(cfg->data_dir, 0750) < 0 || chown(cfg->data_dir, pw->pw_uid, pw->pw_gid) < 0) {
		fprintf(stderr, "postern: %s: %s\n", cfg->data_dir, strerror(errno));
		return -1;
	}
	return 0;
}

static unsigned main_role_mask(void)
{
	unsigned mask = 0;

	for (int r = 0; r < ROLE_COUNT; r++)
		if (main_role_available((enum listener_role)r))
			mask |= 1u << r;
	return mask;
}

/* As root with run_as_user: the privileged file reader for the
 * certificate, key, users and aliases files (privsep.c).  Forked before
 * anything else exists: no thread, no listener, no TLS state. */
static int main_start_privsep(const struct config *cfg, struct privsep **ps_r)
{
	char err[CONFIG_ERROR_MAX], users[PATH_MAX], aliases[PATH_MAX];
	const char *const extra[] = { users, aliases };

	if (auth_file_paths(cfg, users, aliases) < 0) {
		fprintf(stderr, "postern: %s: path too long\n", cfg->data_dir);
		return -1;
	}
	if (privsep_start(cfg, extra, sizeof(extra) / sizeof(extra[0]), ps_r,
			  err, sizeof(err)) < 0) {
		fprintf(stderr, "postern: %s\n", err);
		return -1;
	}
	return 0;
}

/* The daemon; ready_fn (may be NULL) runs once everything is up.  Order:
 * the privileged file reader, bind (needs root for ports < 1024), drop
 * privileges, then open the users and the store, so that every file they
 * create belongs to run_as_user. */
static int main_serve_config(const struct config *cfg, void (*ready_fn)(const struct config *))
{
	char err[CONFIG_ERROR_MAX];
	struct privsep *ps = NULL;
	struct server *srv;
	struct auth *auth = NULL;
	struct md_store *store = NULL;
	int rc = EX_SOFTWARE;

	if (main_start_privsep(cfg, &ps) < 0)
		return EX_OSERR;
	srv = server_new(cfg, err, sizeof(err));
	if (srv == NULL) {
		fprintf(stderr, "postern: %s\n", err);
		privsep_free(ps);
		return EX_CONFIG;
	}
	server_set_privsep(srv, ps);
	if (server_listen(srv, main_role_mask(), err, sizeof(err)) < 0) {
		fprintf(stderr, "postern: %s\n", err);
		rc = EX_OSERR;
		goto out;
	}
	if (main_prepare_data_dir(cfg) < 0) {
		rc = EX_CANTCREAT;
		goto out;
	}
	if (server_drop_privileges(srv, err, sizeof(err)) < 0) {
		fprintf(stderr, "postern: %s\n", err);
		rc = EX_NOPERM;
		goto out;
	}
	auth = auth_open_privsep(cfg, ps, err, sizeof(err));
	if (auth == NULL) {
		fprintf(stderr, "postern: %s\n", err);
		rc = EX_CONFIG;
		goto out;
	}
	if (md_store_open(cfg->data_dir, &(struct md_store_options){
			  .pop3_uidl_format = cfg->pop3_uidl_format,
			  .expunge_log_max = cfg->imap_expunge_log_max,
			  .expunge_log_age = cfg->imap_expunge_log_age }, &store, err, sizeof(err)) != MD_OK) {
		store = NULL;
		fprintf(stderr, "postern: %s\n", err);
		rc = EX_TEMPFAIL;
		goto out;
	}
	server_on_reload(srv, main_auth_refresh, auth);
	if (server_every(srv, MAIN_STORE_MAINTENANCE_S, main_store_maintenance, store) < 0)
		log_warn("cannot schedule store maintenance");
	if (main_register_protocols(srv, auth, store, err, sizeof(err)) < 0) {
		fprintf(stderr, "postern: %s\n", err);
		rc = EX_SOFTWARE;
		goto out;
	}
	main_sandbox(cfg);
	if (ready_fn != NULL)
		ready_fn(cfg);
	/* Listeners bound, store open: systemd's Type=notify may go on. */
	if (notify_systemd("READY=1") < 0)
		log_warn("NOTIFY_SOCKET: cannot send READY=1: %s", strerror(errno));
	log_info("postern %s started, pid %ld", PROJECT_VERSION_TEXT, (long)getpid());
	rc = server_run(srv) == 0 ? EX_OK : EX_SOFTWARE;
	log_info("postern stopped");
out:
	/* Connections first: their sessions may still hold the store. */
	server_free(srv);
	if (store != NULL)
		md_store_close(store);
	if (auth != NULL)
		auth_close(auth);
	privsep_free(ps);
	return rc;
}

static int main_cmd_serve(const char *config_path, int argc, char **argv)
{
	struct config cfg;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: postern [-c FILE] serve\n");
		return EX_USAGE;
	}
	if (main_load_config(config_path, &cfg) < 0)
		return EX_CONFIG;
	return main_serve_config(&cfg, NULL);
}

static int main_cmd_check(const char *config_path, int argc, char **argv)
{
	char err[CONFIG_ERROR_MAX];
	struct config cfg;
	struct tls_server *tls;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: postern [-c FILE] check\n");
		return EX_USAGE;
	}
	if (main_load_config(config_path, &cfg) < 0)
		return EX_CONFIG;
	/* Certificates are part of a valid configuration. */
	tls = tls_server_new(&cfg, NULL, NULL, err, sizeof(err));
	if (tls == NULL) {
		fprintf(stderr, "postern: %s\n", err);
		return EX_CONFIG;
	}
	tls_server_free(tls);
	printf("%s: OK (%zu listeners, %zu certificates, %zu domains)\n", cfg.path,
	       cfg.n_listeners, cfg.n_certs, cfg.n_domains);
	return EX_OK;
}

/* Run a store or auth CLI piece as run_as_user when started as root, so
 * that every file it creates belongs to the daemon's user. */
static int main_become_user(const struct config *cfg)
{
	char err[CONFIG_ERROR_MAX];

	if (geteuid() != 0 || cfg->run_as_user[0] == '\0')
		return 0;
	if (main_prepare_data_dir(cfg) < 0)
		return -1;
	if (server_drop_privileges_to(cfg->run_as_user, err, sizeof(err)) < 0) {
		fprintf(stderr, "postern: %s\n", err);
		return -1;
	}
	return 0;
}

static int main_cmd_user(const char *config_path, int argc, char **argv)
{
	struct config cfg;

	if (main_load_config(config_path, &cfg) < 0)
		return EX_CONFIG;
	if (main_become_user(&cfg) < 0)
		return EX_NOPERM;
	return auth_cli_user(&cfg, argc - 1, argv + 1);
}

static int main_cmd_alias(const char *config_path, int argc, char **argv)
{
	struct config cfg;

	if (main_load_config(config_path, &cfg) < 0)
		return EX_CONFIG;
	if (main_become_user(&cfg) < 0)
		return EX_NOPERM;
	return auth_cli_alias(&cfg, argc - 1, argv + 1);
}

/* Recipient resolution for `postern deliver`: the store knows mailboxes,
 * auth knows who an address belongs to. */
static int main_deliver_resolve(void *ctx, const char *address,
				struct md_recipient *owners, size_t max)
{
	struct auth *auth = ctx;
	struct auth_target targets[AUTH_RESOLVE_MAX];
	size_t n = 0, out = 0;

	switch (auth_resolve_recipient(auth, address, targets, AUTH_RESOLVE_MAX, &n)) {
	case AUTH_RCPT_LOCAL:
		break;
	case AUTH_RCPT_ERROR:
		return -1;
	default:
		return 0;
	}
	for (size_t i = 0; i < n && out < max; i++) {
		uint64_t quota = 0, quota_messages = 0;
		if (!targets[i].local)
			continue; /* outside addresses need the outbound queue */
		str_copy(owners[out].address, targets[i].address, sizeof(owners[out].address));
		if (auth_user_quota(auth, targets[i].address, &quota, &quota_messages) < 0)
			quota = quota_messages = 0;
		owners[out].quota_messages = quota_messages;
		owners[out++].quota_bytes = quota;
	}
	return (int)out;
}

static int main_cmd_deliver(const char *config_path, int argc, char **argv)
{
	char err[CONFIG_ERROR_MAX];
	struct config cfg;
	struct auth *auth;
	int rc;

	if (main_load_config(config_path, &cfg) < 0)
		return EX_CONFIG;
	if (main_become_user(&cfg) < 0)
		return EX_NOPERM;
	auth = auth_open(&cfg, err, sizeof(err));
	if (auth == NULL) {
		fprintf(stderr, "postern: %s\n", err);
		return EX_CONFIG;
	}
#ifdef POSTERN_HAVE_SMTP
	{
		/* the users' Sieve scripts, as at SMTP and LMTP delivery */
		struct md_deliver_filter sieve;
		if (smtp_cli_sieve_filter(&cfg, auth, &sieve) < 0) {
			auth_close(auth);
			return EX_TEMPFAIL;
		}
		rc = md_cli_deliver_filtered(&cfg, argc - 1, argv + 1, main_deliver_resolve, auth,
					     &sieve);
	}
#else
	rc = md_cli_deliver(&cfg, argc - 1, argv + 1, main_deliver_resolve, auth);
#endif
	auth_close(auth);
	return rc;
}

static int main_cmd_reindex(const char *config_path, int argc, char **argv)
{
	struct config cfg;

	if (main_load_config(config_path, &cfg) < 0)
		return EX_CONFIG;
	if (main_become_user(&cfg) < 0)
		return EX_NOPERM;
	return md_cli_reindex(&cfg, argc - 1, argv + 1);
}

#ifdef POSTERN_HAVE_SMTP
static int main_cmd_dkim(const char *config_path, int argc, char **argv)
{
	struct config cfg;

	if (main_load_config(config_path, &cfg) < 0)
		return EX_CONFIG;
	if (main_become_user(&cfg) < 0)
		return EX_NOPERM;
	return dkim_cli_dkim(&cfg, argc, argv);
}

static int main_cmd_dns(const char *config_path, int argc, char **argv)
{
	struct config cfg;

	if (main_load_config(config_path, &cfg) < 0)
		return EX_CONFIG;
	return dkim_cli_dns(&cfg, argc, argv);
}

static int main_cmd_queue(const char *config_path, int argc, char **argv)
{
	struct config cfg;

	if (main_load_config(config_path, &cfg) < 0)
		return EX_CONFIG;
	if (main_become_user(&cfg) < 0)
		return EX_NOPERM;
	return smtp_cli_queue(&cfg, argc - 1, argv + 1);
}
#else
/* A build without protocols/smtp has no queue, DKIM or DNS records. */
static int main_cmd_later(const char *config_path, int argc, char **argv)
{
	(void)config_path;
	(void)argc;
	fprintf(stderr, "postern: '%s' is not available in this build\n", argv[0]);
	return EX_UNAVAILABLE;
}
#define main_cmd_dkim main_cmd_later
#define main_cmd_dns main_cmd_later
#define main_cmd_queue main_cmd_later
#endif

/* ---- postern demo ------------------------------------------------------ */

struct main_demo {
	char dir[PATH_MAX];
	char conf[PATH_MAX];
	char password[64];
	unsigned port_base;
};

static struct main_demo main_demo_state;

static int main_demo_password(char *out, size_t outlen)
{
	static const char alphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	unsigned char raw[MAIN_DEMO_PASSWORD_BYTES];

	if (outlen < sizeof(raw) + 1 || random_bytes(raw, sizeof(raw)) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(raw); i++)
		out[i] = alphabet[raw[i] % (sizeof(alphabet) - 1)];
	out[sizeof(raw)] = '\0';
	return 0;
}

static int main_demo_create(struct main_demo *d, bool fresh)
{
	char err[CONFIG_ERROR_MAX], cert[PATH_MAX], key[PATH_MAX], data[PATH_MAX];
	char pwfile[PATH_MAX];
	struct config cfg;

	if ((size_t)snprintf(cert, sizeof(cert), "%s/cert.pem", d->dir) >= sizeof(cert) ||
	    (size_t)snprintf(key, sizeof(key), "%s/key.pem", d->dir) >= sizeof(key) ||
	    (size_t)snprintf(data, sizeof(data), "%s/data", d->dir) >= sizeof(data) ||
	    (size_t)snprintf(pwfile, sizeof(pwfile), "%s/demo-password", d->dir) >= sizeof(pwfile)) {
		fprintf(stderr, "postern: %s: path too long\n", d->dir);
		return EX_USAGE;
	}
	if (mkdir_p(d->dir, 0700) < 0) {
		fprintf(stderr, "postern: %s: %s\n", d->dir, strerror(errno));
		return EX_CANTCREAT;
	}
	if (access(cert, R_OK) != 0 || access(key, R_OK) != 0) {
		if (tls_make_self_signed("localhost", cert, key, err, sizeof(err)) < 0) {
			fprintf(stderr, "postern: %s\n", err);
			return EX_CANTCREAT;
		}
	}
	if (fresh && config_write_demo(d->conf, data, cert, key, d->port_base) < 0) {
		fprintf(stderr, "postern: %s: %s\n", d->conf, strerror(errno));
		return EX_CANTCREAT;
	}
	if (main_load_config(d->conf, &cfg) < 0)
		return EX_CONFIG;
	if (access(pwfile, R_OK) != 0) {
		if (main_demo_password(d->password, sizeof(d->password)) < 0) {
			fprintf(stderr, "postern: no random numbers\n");
			return EX_OSERR;
		}
		if (auth_user_add_with_password(&cfg, MAIN_DEMO_USER, d->password, err, sizeof(err)) < 0) {
			fprintf(stderr, "postern: %s\n", err);
			return EX_CANTCREAT;
		}
		char line[80];
		int n = snprintf(line, sizeof(line), "%s\n", d->password);
		if (write_file_atomic(pwfile, line, (size_t)n, 0600) < 0) {
			fprintf(stderr, "postern: %s: %s\n", pwfile, strerror(errno));
			return EX_CANTCREAT;
		}
	} else {
		char *text;
		size_t len;
		if (read_small_file(pwfile, 1024, &text, &len) < 0) {
			fprintf(stderr, "postern: %s: %s\n", pwfile, strerror(errno));
			return EX_NOINPUT;
		}
		str_copy(d->password, str_trim(text), sizeof(d->password));
		free(text);
	}
	return EX_OK;
}

static void main_demo_ready(const struct config *cfg)
{
	const struct main_demo *d = &main_demo_state;

	printf("\nPostern demo is running (Ctrl-C stops it).\n");
	printf("  directory : %s\n", d->dir);
	printf("  user      : %s\n", MAIN_DEMO_USER);
	printf("  password  : %s   (also in %s/demo-password)\n", d->password, d->dir);
	printf("  TLS       : self-signed certificate %s/cert.pem for localhost\n\n", d->dir);
	printf("  %-12s %-16s %-6s %-9s %s\n", "service", "address", "port", "security", "state");
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		const struct config_listener *l = &cfg->listeners[i];
		printf("  %-12s %-16s %-6u %-9s %s\n", config_role_name(l->role), l->address, l->port,
		       l->tls == TLS_MODE_IMPLICIT ? "TLS" :
		       l->tls == TLS_MODE_STARTTLS ? "STARTTLS" : "none",
		       main_role_available(l->role) ? "listening" : "not yet available");
	}
	printf("\n");
	fflush(stdout);
}

static int main_cmd_demo(const char *config_path, int argc, char **argv)
{
	struct main_demo *d = &main_demo_state;
	const char *dir = MAIN_DEMO_DIR_DEFAULT;
	bool port_given = false, fresh;
	struct config cfg;
	int rc;

	(void)config_path;
	d->port_base = MAIN_DEMO_PORT_BASE;
	for (int i = 1; i < argc; i++) {
		uint64_t v;
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			dir = argv[++i];
		} else if (strcmp(argv[i], "--port-base") == 0 && i + 1 < argc) {
			if (str_to_u64(argv[++i], 0, 65535 - CONFIG_DEMO_OFFSET_MAX, &v) < 0) {
				fprintf(stderr, "postern: --port-base must be 0..%d\n",
					65535 - CONFIG_DEMO_OFFSET_MAX);
				return EX_USAGE;
			}
			d->port_base = (unsigned)v;
			port_given = true;
		} else {
			fprintf(stderr, "usage: postern demo [--dir DIR] [--port-base N]\n");
			return EX_USAGE;
		}
	}
	if (dir[0] == '/') {
		str_copy(d->dir, dir, sizeof(d->dir));
	} else {
		char cwd[PATH_MAX];
		if (getcwd(cwd, sizeof(cwd)) == NULL ||
		    (size_t)snprintf(d->dir, sizeof(d->dir), "%s/%s", cwd, dir) >= sizeof(d->dir)) {
			fprintf(stderr, "postern: %s: path too long\n", dir);
			return EX_USAGE;
		}
	}
	if ((size_t)snprintf(d->conf, sizeof(d->conf), "%s/postern.conf", d->dir) >= sizeof(d->conf)) {
		fprintf(stderr, "postern: %s: path too long\n", dir);
		return EX_USAGE;
	}
	/* A new directory gets a configuration; an old one keeps its own as
	 * the user edited it: another port base moves the listeners' ports,
	 * nothing else (README "postern demo"). */
	fresh = access(d->conf, F_OK) != 0;
	if (!fresh && port_given) {
		unsigned changed;

		if (config_demo_set_ports(d->conf, d->port_base, &changed) < 0) {
			fprintf(stderr, "postern: %s: %s\n", d->conf, errno == EINVAL ?
				"does not load (postern -c FILE check tells why)" :
				strerror(errno));
			return errno == EINVAL ? EX_CONFIG : EX_CANTCREAT;
		}
		if (changed > 0)
			printf("postern demo: %s: %u listener ports moved to base %u; "
			       "the rest of the file is kept as it was\n", d->conf,
			       changed, d->port_base);
	} else if (!fresh) {
		printf("postern demo: reusing %s as it is\n", d->conf);
	}
	rc = main_demo_create(d, fresh);
	if (rc != EX_OK)
		return rc;
	if (main_load_config(d->conf, &cfg) < 0)
		return EX_CONFIG;
	return main_serve_config(&cfg, main_demo_ready);
}

/* ---- dispatch ---------------------------------------------------------- */

static const struct main_cmd main_cmds[] = {
	{ "demo", main_cmd_demo, "demo [--dir DIR] [--port-base N]" },
	{ "serve", main_cmd_serve, "[-c FILE] serve" },
	{ "check", main_cmd_check, "[-c FILE] check" },
	{ "user", main_cmd_user, "[-c FILE] user add|passwd|del|list ADDRESS [--password-stdin]" },
	{ "alias", main_cmd_alias, "[-c FILE] alias add ALIAS TARGET... | del ALIAS | list" },
	{ "deliver", main_cmd_deliver, "[-c FILE] deliver [-f SENDER] ADDRESS < message" },
	{ "reindex", main_cmd_reindex, "[-c FILE] reindex ADDRESS" },
	{ "queue", main_cmd_queue, "[-c FILE] queue list|flush|delete ID" },
	{ "dkim", main_cmd_dkim, "[-c FILE] dkim generate DOMAIN [--selector BASE]" },
	{ "dns", main_cmd_dns, "[-c FILE] dns [--check] DOMAIN" },
};

static void main_usage(FILE *out)
{
	fprintf(out, "usage:\n");
	for (size_t i = 0; i < sizeof(main_cmds) / sizeof(main_cmds[0]); i++)
		fprintf(out, "  postern %s\n", main_cmds[i].usage);
	fprintf(out, "  postern version\n");
}

int main(int argc, char **argv)
{
	const char *config_path = MAIN_CONFIG_DEFAULT;
	int i = 1;

	if (i + 1 < argc && strcmp(argv[i], "-c") == 0) {
		config_path = argv[i + 1];
		i += 2;
	}
	if (i >= argc) {
		main_usage(stderr);
		return EX_USAGE;
	}
	if (strcmp(argv[i], "version") == 0 || strcmp(argv[i], "--version") == 0) {
		printf("postern %s\nprotocols:", PROJECT_VERSION_TEXT);
		for (int r = 0; r < ROLE_COUNT; r++)
			if (main_role_available((enum listener_role)r))
				printf(" %s", config_role_name((enum listener_role)r));
		printf("\n");
		return EX_OK;
	}
	if (strcmp(argv[i], "help") == 0 || strcmp(argv[i], "--help") == 0) {
		main_usage(stdout);
		return EX_OK;
	}
	for (size_t k = 0; k < sizeof(main_cmds) / sizeof(main_cmds[0]); k++)
		if (strcmp(argv[i], main_cmds[k].name) == 0)
			return main_cmds[k].run(config_path, argc - i, argv + i);
	fprintf(stderr, "postern: unknown command '%s'\n", argv[i]);
	main_usage(stderr);
	return EX_USAGE;
}
