#!/bin/sh
# Build Postern's libFuzzer targets with clang, outside the main CMake build
# (CI builds with gcc, which has no libFuzzer).  The module sources are
# compiled here with coverage instrumentation and ASan+UBSan, then each
# tests/fuzz/fuzz_*.c is linked against them with -fsanitize=fuzzer.
#
#   tests/fuzz/build.sh [OUT_DIR]          (default /tmp/postern-fuzz)
#
# Needs clang and its runtime: apt-get install -y clang libclang-rt-14-dev
# (any clang >= 14 works; set CC to pick one).  The binaries land in
# OUT_DIR/fuzz_<name>; see tests/fuzz/README.md for running them.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
OUT=${1:-/tmp/postern-fuzz}
CC=${CC:-clang}
JOBS=${JOBS:-2}

command -v "$CC" >/dev/null 2>&1 || {
	echo "build.sh: $CC not found (apt-get install -y clang libclang-rt-14-dev)" >&2
	exit 1
}

SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
CFLAGS="-std=gnu11 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE -DFUZZING_ENGINE \
 -Wall -Wextra -Wno-unused-parameter \
 -I$SRC/core -I$SRC/auth -I$SRC/maildir -I$SRC/protocols/smtp -I$SRC/protocols/pop3 \
 -I$SRC/protocols/imap -I$SRC/protocols/sieve \
 $(pkg-config --cflags libevent_core openssl lmdb libxcrypt 2>/dev/null || true)"
LIBS="$(pkg-config --libs libevent_core libevent_extra libevent_openssl libevent_pthreads \
 openssl lmdb libxcrypt) -letpan -lresolv -lpthread"

mkdir -p "$OUT/obj"

# Every module source but main.c (the subcommand table), as CMake builds them.
SOURCES=$(ls "$SRC"/core/*.c "$SRC"/auth/*.c "$SRC"/maildir/*.c \
	"$SRC"/protocols/smtp/*.c "$SRC"/protocols/pop3/*.c "$SRC"/protocols/imap/*.c \
	"$SRC"/protocols/sieve/*.c |
	grep -v '/core/main\.c$')

echo "$SOURCES" | xargs -P "$JOBS" -I{} sh -c '
	src={}
	obj="$0/obj/$(echo "$src" | sed "s|^$1/||; s|/|_|g; s|\.c$|.o|")"
	if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ]; then
		echo "CC $src"
		'"$CC"' '"$CFLAGS"' '"$SAN"' -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
	fi' "$OUT" "$SRC"

# A header change does not show in the sources' times: rebuild the archive
# from scratch every time (the objects are cheap to re-archive).
rm -f "$OUT/libpostern_fuzz.a"
ar rcs "$OUT/libpostern_fuzz.a" "$OUT"/obj/*.o

for h in "$HERE"/fuzz_*.c; do
	name=$(basename "$h" .c)
	echo "LD $name"
	$CC $CFLAGS $SAN -fsanitize=fuzzer -Werror "$h" "$OUT/libpostern_fuzz.a" $LIBS \
		-o "$OUT/$name"
done
echo "fuzzers in $OUT: $(cd "$OUT" && ls fuzz_* | tr '\n' ' ')"
