#!/usr/bin/env bash
# t_libcurl_versions: llm_usage builds with libcurl 7.68.0 and later.
#  1. every libcurl name the C code uses is in test/libcurl_symbols.txt with
#     the version that introduced it; names newer than 7.68.0 appear only in
#     src/compat.h, under a version guard;
#  2. the files that use libcurl compile (-Werror) with the guards taking the
#     branches of libcurl 7.68 (LLM_USAGE_PRETEND_LIBCURL_VERSION_NUM) and
#     of the installed libcurl;
#  3. with LLM_USAGE_CURL_INCLUDE=<dir> (the include/ directory of another
#     libcurl, e.g. curl-7_68_0's from curl's git tag) they compile against
#     those headers too.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
# the checkout (test/run-all.sh runs a copy of the test directory)
SRC=${LLM_USAGE_SOURCE_DIR:-$ROOT}
[[ -f $SRC/src/http.c ]] || fail "no C sources in $SRC (set LLM_USAGE_SOURCE_DIR)"
cd "$SRC"
python3 - "$SRC" <<'PY' || fail "libcurl names"
import re, sys, glob
root = sys.argv[1]
known = {}
for line in open(root + "/test/libcurl_symbols.txt"):
    if line.strip() and not line.startswith("#"):
        f = line.split()
        known[f[0]] = tuple(int(x) for x in f[1].split("."))
def strip_comments(s):
    return re.sub(r"/\*.*?\*/", " ", s, flags=re.S)
oldest = (7, 68, 0)
used, bad = {}, []
for path in sorted(glob.glob(root + "/src/*.[ch]")):
    text = strip_comments(open(path).read())
    for name in set(re.findall(r"\b(CURL[A-Z0-9_]*|curl_[a-z_]+)\b", text)) - {"curl_initialised"}:
        used.setdefault(name, set()).add(path.rsplit("/", 1)[1])
for name, files in sorted(used.items()):
    if name not in known:
        bad.append("%s (%s) is not in test/libcurl_symbols.txt" % (name, ", ".join(sorted(files))))
    elif known[name] > oldest and files != {"compat.h"}:
        bad.append("%s needs libcurl %s but is used outside src/compat.h (%s)" % (name, ".".join(map(str, known[name])), ", ".join(sorted(files))))
newer = sorted(n for n in used if known.get(n, (0,)) > oldest)
print("%d libcurl names used; introduced by 7.68.0 at the latest, except %s (guarded in src/compat.h)" % (len(used), ", ".join(newer) or "none"))
for b in bad:
    print("BAD: " + b)
sys.exit(1 if bad else 0)
PY
PGINC=$($PGBIN/pg_config --includedir-server)
build() {   # build LABEL FLAGS...: compile the libcurl users
    local label=$1 f
    shift
    for f in http smtp; do
        gcc -std=gnu99 -Wall -Wmissing-prototypes -Werror -fPIC "$@" -I"$SRC/src" -I"$PGINC" \
            -DLLM_USAGE_VERSION='"test"' -D_GNU_SOURCE -c -o "$WORK/curlcompat.$f.o" "src/$f.c" \
            || fail "src/$f.c does not compile ($label)"
    done
    echo "compiles: $label"
}
build "installed libcurl $(curl-config --version | awk '{print $2}')"
build "guards as for libcurl 7.68.0" -DLLM_USAGE_PRETEND_LIBCURL_VERSION_NUM=0x074400 -Wno-deprecated-declarations
if [[ -n ${LLM_USAGE_CURL_INCLUDE:-} ]]; then
    build "headers of libcurl $(sed -n 's/^#define LIBCURL_VERSION "\(.*\)"/\1/p' "$LLM_USAGE_CURL_INCLUDE/curl/curlver.h") ($LLM_USAGE_CURL_INCLUDE)" -I"$LLM_USAGE_CURL_INCLUDE"
fi
echo "PASS"
