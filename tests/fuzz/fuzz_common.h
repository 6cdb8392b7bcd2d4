/* Shared by every harness in tests/fuzz/.
 *
 * Each harness defines LLVMFuzzerTestOneInput().  Built with clang and
 * -fsanitize=fuzzer (tests/fuzz/build.sh defines FUZZING_ENGINE), libFuzzer
 * supplies main().  Built by CMake with gcc (tests/unit/fuzz_regress.cmake),
 * the main() below replays files instead: each argument is a file or a
 * directory whose regular files are run in name order.  Every input is
 * copied into a heap block of exactly its size, so that ASan sees a read
 * one byte past the end, as libFuzzer's own buffers do.
 *
 * FUZZ_CHECK() is for the harnesses' own oracles (round trips, bounds that
 * the module promises): it prints what broke and aborts, which libFuzzer
 * reports as a crash and the replay program as a failed test.
 */
#ifndef TESTS_FUZZ_FUZZ_COMMON_H
#define TESTS_FUZZ_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: fuzz check failed: %s\n",    \
				__FILE__, __LINE__, #cond);                  \
			abort();                                             \
		}                                                            \
	} while (0)

#ifndef FUZZING_ENGINE

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

/* Replay inputs larger than this are refused: the checked-in corpus is
 * small by design (tests/fuzz/README.md). */
#define FUZZ_REPLAY_MAX (4u * 1024 * 1024)

static int fuzz_replay_file(const char *path, unsigned *count)
{
	FILE *f = fopen(path, "rb");
	unsigned char *data;
	long size;

	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
	    (unsigned long)size > FUZZ_REPLAY_MAX || fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "%s: cannot size, or larger than %u bytes\n", path,
			FUZZ_REPLAY_MAX);
		fclose(f);
		return -1;
	}
	/* malloc(0) may return NULL: keep one byte, pass size 0 */
	data = malloc(size > 0 ? (size_t)size : 1);
	if (data == NULL || (size > 0 && fread(data, 1, (size_t)size, f) != (size_t)size)) {
		fprintf(stderr, "%s: read failed\n", path);
		free(data);
		fclose(f);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(data, (size_t)size);
	free(data);
	(*count)++;
	return 0;
}

static int fuzz_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int fuzz_replay_dir(const char *dir, unsigned *count)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (d == NULL) {
		fprintf(stderr, "%s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof(*nn));
			if (nn == NULL) {
				rc = -1;
				break;
			}
			names = nn;
		}
		if ((names[n] = strdup(e->d_name)) == NULL) {
			rc = -1;
			break;
		}
		n++;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), fuzz_name_cmp);
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		struct stat st;

		if (rc == 0 && (size_t)snprintf(path, sizeof(path), "%s/%s", dir,
						names[i]) < sizeof(path) &&
		    stat(path, &st) == 0) {
			if (S_ISDIR(st.st_mode))
				rc = fuzz_replay_dir(path, count);
			else if (S_ISREG(st.st_mode))
				rc = fuzz_replay_file(path, count);
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	unsigned count = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		if ((S_ISDIR(st.st_mode) ? fuzz_replay_dir(argv[i], &count) :
		     fuzz_replay_file(argv[i], &count)) < 0)
			return 1;
	}
	if (count == 0) {
		/* a replay that ran nothing must not look like a pass */
		fprintf(stderr, "%s: no input files given\n", argv[0]);
		return 1;
	}
	printf("%s: %u inputs replayed, no failure\n", argv[0], count);
	return 0;
}

#endif /* FUZZING_ENGINE */

#endif
