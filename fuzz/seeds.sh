#!/usr/bin/env bash
# seeds.sh -- writes starting inputs for each fuzz target to fuzz/seeds/TARGET/, from
# this repository's fixtures and, when present, packages of ../shared/alpine.
# Usage: fuzz/seeds.sh; then e.g. cargo +nightly fuzz run apkindex fuzz/corpus/apkindex fuzz/seeds/apkindex
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$HERE/.."
S="$HERE/seeds"
rm -rf "$S"
mkdir -p "$S"/{apkindex,version,dependency,pkginfo,package,installed,inflate}
for d in "$REPO"/fixtures/resolve/cases/*/; do
    cp "$d/APKINDEX" "$S/apkindex/$(basename "$d")"
done
cp "$REPO/fixtures/db/alpine-base/installed" "$S/installed/alpine-base"
# Gzip streams: one member, two members, an empty one.
printf 'P:a\nV:1\n\n' | gzip -c >"$S/inflate/one"
{ printf 'first\n' | gzip -c; printf 'second\n' | gzip -c; } >"$S/inflate/two"
printf '' | gzip -c >"$S/inflate/empty"
cp "$REPO/fixtures/db/empty/installed" "$S/installed/empty"
i=0
for v in 1.2.3-r0 1.2.3_rc1-r4 2.0a_p1 1.0_alpha2 3.11.8-r0 0.1.2.3.4 1_git20230101-r1 1.0-r0~x; do
    for w in 1.2 1.10 2.0_beta 1.2.3-r1; do
        printf '%s\0%s\0%s' "$v" "$w" 1.5 >"$S/version/v$i"
        i=$((i + 1))
    done
done
i=0
for d in so:libc.musl-x86_64.so.1 '!foo<2' 'foo@edge>=1.2-r3' cmd:sh=1.36-r0 \
    'foo><Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=' 'bar~1.2' 'a>~3' 'a b !c=1 /bin/sh'; do
    printf '%s' "$d" >"$S/dependency/d$i"
    i=$((i + 1))
done
ALPINE="$REPO/../shared/alpine/v3.19/main/x86_64"
[ -d "$ALPINE" ] || ALPINE="$REPO/../../shared/alpine/v3.19/main/x86_64"
if [ -d "$ALPINE" ]; then
    # The smallest packages: signature, control and data members in a few KiB.
    for f in $(ls -S "$ALPINE" | grep '\.apk$' | tail -4); do
        cp "$ALPINE/$f" "$S/package/$f"
        tar -xzOf "$ALPINE/$f" .PKGINFO >"$S/pkginfo/$f" 2>/dev/null || true
    done
else
    echo "seeds.sh: no ../shared/alpine; package and pkginfo seeds are empty" >&2
fi
