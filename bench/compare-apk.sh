#!/usr/bin/env bash
# compare-apk.sh -- time sysroot-mk against real apk-tools 2.14.4, interleaved (A B A B),
# and print per-pair wall-time ratios. Needs root and ../shared (the oracle and the data).
#
# Usage: bench/compare-apk.sh [-n RUNS] [-o OUTDIR] [install|http|resolve|all]
#   -o OUTDIR  where bench-apk.sh keeps its targets and results (default: its own,
#              $ORACLE_WORK/bench); give each concurrent user its own
#   install  alpine-base from ../shared/alpine/v3.19/main into an absent target
#            (bench-apk.sh --candidate, local group), on the disk and on tmpfs
#   http     the same over HTTP on 127.0.0.1 (bench-apk.sh --candidate-http)
#   resolve  --simulate of gcc (main) and gnome (main+community) against apk add --simulate
#   foreign  alpine-base for aarch64 from ../shared/alpine/v3.13/main with its scripts run
#            under qemu: apk through a temporary global handler (flag F, removed at the
#            end), sysroot-mk through its own private binfmt_misc instance
# Absolute times on shared machines vary 3-5x with load: read the ratios.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
shared="$(cd "$here/../shared" && pwd)"
oracle="$shared/tools/oracle"
runs=10
out=()
[ "${1:-}" = "-n" ] && { runs="$2"; shift 2; }
[ "${1:-}" = "-o" ] && { out=(--out "$2"); shift 2; }
what="${1:-all}"
case "$what" in install|http|resolve|foreign|all) ;; *) echo "usage: $0 [-n RUNS] [-o OUTDIR] [install|http|resolve|foreign|all]" >&2; exit 2 ;; esac

cargo build --release --manifest-path "$here/Cargo.toml" >&2
bin="${CARGO_TARGET_DIR:-$here/target}/release/sysroot-mk"
keys="$shared/alpine/keys/x86_64"
build="$bin -q --arch x86_64 --no-cache --keys-dir $keys"

if [ "$what" = install ] || [ "$what" = all ]; then
    "$oracle/bench-apk.sh" -n "$runs" ${out[@]+"${out[@]}"} --groups local \
        --candidate "$build --repo $shared/alpine/v3.19/main {target} alpine-base"
    "$oracle/bench-apk.sh" -n "$runs" ${out[@]+"${out[@]}"} --groups local --tmpfs \
        --candidate "$build --repo $shared/alpine/v3.19/main {target} alpine-base"
fi
if [ "$what" = http ] || [ "$what" = all ]; then
    "$oracle/bench-apk.sh" -n "$runs" ${out[@]+"${out[@]}"} --groups http \
        --candidate-http "$build --repo {url} {target} alpine-base"
fi
if [ "$what" = resolve ] || [ "$what" = all ]; then
    . "$oracle/oracle-env.sh"
    ensure_apkroot; ensure_idxtree
    empty="$ORACLE_WORK/bench-emptyroot"
    if [ ! -f "$empty/lib/apk/db/installed" ]; then
        rm -rf "$empty"; mkdir -p "$empty"
        "$oracle/apk-chroot.sh" -b "$empty:/target" -- /sbin/apk add -q --initdb --root /target --arch x86_64 >/dev/null
    fi
    # apk runs in the chroot with the index tree bound at /idx; one private namespace for all runs.
    APKROOT="$APKROOT" IDXTREE="$IDXTREE" EMPTY="$empty" ORACLE="$oracle" RUNS="$runs" BUILD="$build" \
        unshare -m --propagation private bash -c '
        set -e
        mkdir -p "$APKROOT/idx" "$APKROOT/target"
        mount --bind "$IDXTREE" "$APKROOT/idx"
        mount --bind "$EMPTY" "$APKROOT/target"
        A="env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot $APKROOT /sbin/apk --root /target --arch x86_64 --keys-dir /etc/apk/keys --no-cache"
        S="$BUILD --simulate"
        for req in gcc gnome; do
            python3 "$ORACLE/benchrun.py" -n "$RUNS" --title "simulate $req" \
                --case apk "$A --repository /idx/v3.19/main --repository /idx/v3.19/community add --simulate $req" \
                --case sysroot-mk "$S --repo $IDXTREE/v3.19/main --repo $IDXTREE/v3.19/community /tmp/unused-target $req"
        done'
fi
if [ "$what" = foreign ] || [ "$what" = all ]; then
    . "$oracle/oracle-env.sh"
    ensure_apkroot
    qemu="$(command -v qemu-aarch64-static)" || { echo "foreign: qemu-aarch64-static is missing" >&2; exit 1; }
    work="$(mktemp -d)"
    # The host's table keeps entries only while mounted: a private mount namespace holds
    # the mount for the benchmark, and the entry is removed at the end either way.
    APKROOT="$APKROOT" SHARED="$shared" ORACLE="$oracle" RUNS="$runs" BIN="$bin" QEMU="$qemu" W="$work" \
        unshare -m --propagation private bash -c '
        set -e
        mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
        echo ":sysroot-mk-bench-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:$QEMU:F" > /proc/sys/fs/binfmt_misc/register
        trap "echo -1 > /proc/sys/fs/binfmt_misc/sysroot-mk-bench-aarch64" EXIT
        mkdir -p "$APKROOT/repo" "$APKROOT/bench"
        mount --bind "$SHARED/alpine" "$APKROOT/repo"
        mount --bind "$W" "$APKROOT/bench"
        A="env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot $APKROOT /sbin/apk add -q --initdb --arch aarch64 --keys-dir /usr/share/apk/keys/aarch64 --no-cache --repository /repo/v3.13/main"
        S="$BIN -q --arch aarch64 --no-cache --keys-dir $SHARED/alpine/keys/aarch64 --repo $SHARED/alpine/v3.13/main"
        python3 "$ORACLE/benchrun.py" -n "$RUNS" --title "aarch64 alpine-base with scripts under qemu" \
            --prepare "rm -rf $W/{case}" \
            --case apk "$A --root /bench/{case} alpine-base" \
            --case sysroot-mk "$S $W/{case} alpine-base"'
    rm -rf "$work"
fi
