#!/usr/bin/env bash
# compare-apk.sh -- time sysroot-mk against real apk-tools 2.14.4, interleaved (A B A B),
# and print one summary row per case: medians of wall time, total CPU and peak RSS for
# both, and the median of the per-round wall-time ratios. Needs root and ../shared (the
# apk oracle and the Alpine data).
#
# Usage: bench/compare-apk.sh [-n RUNS] [CASE...]
#   disk     alpine-base from ../shared/alpine/v3.19/main into an absent target on the
#            working disk (the filesystem of /var/tmp, with whatever history it has)
#   ext4     the same on a freshly made ext4 image on a loop device (made for the run,
#            removed afterwards)
#   tmpfs    the same on a tmpfs
#   all98    the 98 co-installable packages of that repository, on a tmpfs
#   http     alpine-base over HTTP on 127.0.0.1, both with --no-cache
#   latency  the same through bench/delay-proxy.py, which adds 25 ms each way (50 ms
#            to every round trip, and one more to open a connection; this kernel has
#            no netem)
# Both HTTP cases serve ../shared/alpine with bench/serve.py (HTTP/1.1, keep-alive, a
# thread per connection, a listen backlog of 128), as real mirrors behave, for apk and
# sysroot-mk alike. The oracle's serve-repo.sh (python's http.server: HTTP/1.0, one
# connection per request, a backlog of 5) measured itself: more than five parallel
# connects overflowed its backlog and waited for the kernel's 1 s SYN retry. After
# each HTTP case one more run of each tool is logged by the server, and
# bench/count-requests.py prints its connections, requests and the round trips
# made before the first package: the figures load does not blur.
#   resolve  `add --simulate` against `plan`: gcc on main, gnome on main+community
#            (`--no-cache`), and gnome again with the parsed-index cache warm
#   foreign  aarch64 alpine-base from ../shared/alpine/v3.13/main with its scripts under
#            qemu: apk through a temporary global handler (flag F, removed at the end),
#            sysroot-mk through its own private binfmt_misc instance
# Default: every case but foreign. Absolute times on shared machines vary 3-5x with
# load: read the ratios, and the loadavg each table prints.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
shared="$(cd "$here/../shared" && pwd)"
oracle="$shared/tools/oracle"
runs=10
[ "${1:-}" = "-n" ] && { runs="$2"; shift 2; }
cases=("$@")
[ ${#cases[@]} -eq 0 ] && cases=(disk ext4 tmpfs all98 http latency resolve)
for c in "${cases[@]}"; do
    case "$c" in disk|ext4|tmpfs|all98|http|latency|resolve|foreign) ;;
    *) echo "usage: $0 [-n RUNS] [disk|ext4|tmpfs|all98|http|latency|resolve|foreign]..." >&2; exit 2 ;;
    esac
done

# Everything runs in one private mount namespace: no mount of the benchmark outlives it.
if [ -z "${SRMK_BENCH_NS:-}" ]; then
    cargo build --release --manifest-path "$here/Cargo.toml" >&2
    exec unshare -m --propagation private env SRMK_BENCH_NS=1 bash "$0" -n "$runs" "${cases[@]}"
fi

bin="${CARGO_TARGET_DIR:-$here/target}/release/sysroot-mk"
keys="$shared/alpine/keys/x86_64"
. "$oracle/oracle-env.sh"
ensure_apkroot
ensure_idxtree
work="$(mktemp -d /var/tmp/sysroot-mk-bench.XXXXXX)"
summary="$work/summary.md"
cleanup() {
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
    [ -n "${proxy:-}" ] && kill "$proxy" 2>/dev/null || true
    umount -R "$APKROOT/bench" 2>/dev/null || true
    umount "$work/ext4" 2>/dev/null || true
    umount "$work/tmpfs" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for d in repo idx bench; do mkdir -p "$APKROOT/$d"; done
mount --bind "$shared/alpine" "$APKROOT/repo"; mount -o remount,bind,ro "$APKROOT/repo"
mount --bind "$IDXTREE" "$APKROOT/idx"; mount -o remount,bind,ro "$APKROOT/idx"
CH="env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot $APKROOT /sbin/apk"
ADD="$CH add -q --initdb --arch x86_64 --keys-dir /etc/apk/keys --no-cache"
OURS="$bin -q --arch x86_64 --no-cache --keys-dir $keys"

{
    echo "host: $(uname -r), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u +%F)"
    echo "apk: $($CH --version); sysroot-mk: $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo
    echo "| case | apk wall | sysroot-mk wall | ratio (median, min-max) | apk CPU | sysroot-mk CPU | apk RSS | sysroot-mk RSS |"
    echo "|---|---|---|---|---|---|---|---|"
} >"$summary"

# Targets of the next pair go to $1 (a directory on the filesystem under test), seen by
# the apk chroot as /bench.
use_target_dir() {
    umount "$APKROOT/bench" 2>/dev/null || true
    B="$1"
    mount --bind "$B" "$APKROOT/bench"
}

# pair TITLE APK-CMD SYSROOT-MK-CMD [benchrun options]: {t} in the commands is the case's
# target, absent before every run.
pair() {
    local title="$1" a="$2" s="$3"; shift 3
    local json="$work/$(echo "$title" | tr -c 'a-zA-Z0-9\n' '-').json"
    python3 "$oracle/benchrun.py" -n "$runs" --warmup 1 --title "$title" --json "$json" \
        --prepare "rm -rf $B/apk $B/sysroot-mk" "$@" \
        --case apk "${a//\{t\}//bench/apk}" \
        --case sysroot-mk "${s//\{t\}/$B/sysroot-mk}" >&2
    python3 - "$title" "$json" >>"$summary" <<'EOF'
import json, statistics as st, sys
title, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))["results"]
a, s = r["apk"], r["sysroot-mk"]
med = lambda rs, k: st.median(x[k] for x in rs)
ratios = [y["wall"] / x["wall"] for x, y in zip(a, s)]
print("| %s | %.3f s | %.3f s | **%.2f** (%.2f-%.2f) | %.3f s | %.3f s | %.1f MB | %.1f MB |" % (
    title, med(a, "wall"), med(s, "wall"), st.median(ratios), min(ratios), max(ratios),
    med(a, "cpu"), med(s, "cpu"), med(a, "maxrss_kib") / 1024, med(s, "maxrss_kib") / 1024))
EOF
}

has() { local c; for c in "${cases[@]}"; do [ "$c" = "$1" ] && return 0; done; return 1; }
local_base() {
    pair "$1" "$ADD --root {t} --repository /repo/v3.19/main alpine-base" \
        "$OURS --repo $shared/alpine/v3.19/main {t} alpine-base"
}

if has disk; then
    mkdir -p "$work/disk"; use_target_dir "$work/disk"
    local_base "alpine-base, working disk ($(df -T "$work" | awk 'NR==2{print $2}'))"
fi
if has ext4; then
    truncate -s 1G "$work/ext4.img"
    mkfs.ext4 -q -F "$work/ext4.img"
    mkdir -p "$work/ext4"; mount -o loop "$work/ext4.img" "$work/ext4"
    use_target_dir "$work/ext4"
    local_base "alpine-base, fresh ext4 image"
    umount "$APKROOT/bench"; umount "$work/ext4"; rm -f "$work/ext4.img"
fi
if has tmpfs || has all98; then
    mkdir -p "$work/tmpfs"; mount -t tmpfs -o size=2g,mode=0755 sysroot-mk-bench "$work/tmpfs"
    use_target_dir "$work/tmpfs"
    has tmpfs && local_base "alpine-base, tmpfs"
    if has all98; then
        world="$(tr '\n' ' ' <"$here/fixtures/db/all98/world")"
        pair "98 co-installable packages, tmpfs" \
            "$ADD --root {t} --repository /repo/v3.19/main $world" \
            "$OURS --repo $shared/alpine/v3.19/main {t} $world"
    fi
fi
# counts TITLE APK-CMD SYSROOT-MK-CMD: one logged run of each, and what it asked.
counts() {
    local title="$1" a="$2" s="$3" name cmd
    for name in apk sysroot-mk; do
        [ "$name" = apk ] && cmd="${a//\{t\}//bench/apk}" || cmd="${s//\{t\}/$B/sysroot-mk}"
        rm -rf "$B/apk" "$B/sysroot-mk"
        : >"$work/requests.log"
        bash -c "$cmd" >/dev/null
        python3 "$here/bench/count-requests.py" "$work/requests.log" "$title, $name" >>"$work/counts.txt"
    done
}

if has http || has latency; then
    mkdir -p "$work/http"; use_target_dir "$work/http"
    python3 "$here/bench/serve.py" 8089 "$shared/alpine" "$work/requests.log" & server=$!
    for _ in $(seq 50); do
        python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8089/v3.19/main/x86_64/APKINDEX.tar.gz', timeout=1)" 2>/dev/null && break
        sleep 0.1
    done
    base="http://127.0.0.1:8089"
    if has http; then
        a="$ADD --root {t} --repository $base/v3.19/main alpine-base"
        s="$OURS --repo $base/v3.19/main {t} alpine-base"
        pair "alpine-base over HTTP, --no-cache" "$a" "$s" --server-pid "$server"
        counts "HTTP" "$a" "$s"
    fi
    if has latency; then
        python3 "$here/bench/delay-proxy.py" 8090 8089 25 & proxy=$!
        sleep 0.5
        slow="http://127.0.0.1:8090"
        a="$ADD --root {t} --repository $slow/v3.19/main alpine-base"
        s="$OURS --repo $slow/v3.19/main {t} alpine-base"
        pair "alpine-base over HTTP +50 ms RTT, --no-cache" "$a" "$s"
        counts "HTTP +50 ms RTT" "$a" "$s"
        kill "$proxy"; proxy=
    fi
    kill "$server"; server=
fi
if has resolve; then
    mkdir -p "$work/resolve"; use_target_dir "$work/resolve"
    $ADD --root /bench/emptyroot >/dev/null
    A="$CH --root /bench/emptyroot --arch x86_64 --keys-dir /etc/apk/keys --no-cache"
    P="$bin -q plan --arch x86_64 --no-cache --keys-dir $keys"
    pair "plan gcc (main)" "$A --repository /idx/v3.19/main add --simulate gcc" \
        "$P --repo $IDXTREE/v3.19/main gcc"
    pair "plan gnome (main+community)" \
        "$A --repository /idx/v3.19/main --repository /idx/v3.19/community add --simulate gnome" \
        "$P --repo $IDXTREE/v3.19/main --repo $IDXTREE/v3.19/community gnome"
    # Warm: the parsed indexes come from a cache filled by one run beforehand (apk has
    # no such cache; its row is the same cold run again).
    W="$bin -q plan --arch x86_64 --cache-dir $work/parsed-cache --keys-dir $keys"
    $W --repo "$IDXTREE/v3.19/main" --repo "$IDXTREE/v3.19/community" gnome >/dev/null
    pair "plan gnome (main+community), parsed-index cache warm" \
        "$A --repository /idx/v3.19/main --repository /idx/v3.19/community add --simulate gnome" \
        "$W --repo $IDXTREE/v3.19/main --repo $IDXTREE/v3.19/community gnome"
fi
if has foreign; then
    qemu="$(command -v qemu-aarch64-static)" || { echo "foreign: qemu-aarch64-static is missing" >&2; exit 1; }
    # The host's table keeps entries only while mounted, and this namespace holds the
    # mount; the entry is removed at the end either way.
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    echo ":sysroot-mk-bench-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:$qemu:F" >/proc/sys/fs/binfmt_misc/register
    trap 'echo -1 >/proc/sys/fs/binfmt_misc/sysroot-mk-bench-aarch64; cleanup' EXIT
    mkdir -p "$work/foreign"; use_target_dir "$work/foreign"
    pair "aarch64 alpine-base, scripts under qemu" \
        "$CH add -q --initdb --arch aarch64 --keys-dir /usr/share/apk/keys/aarch64 --no-cache --root {t} --repository /repo/v3.13/main alpine-base" \
        "$bin -q --arch aarch64 --no-cache --keys-dir $shared/alpine/keys/aarch64 --repo $shared/alpine/v3.13/main {t} alpine-base"
fi

echo
cat "$summary"
# An `if`, not `&&`: without an HTTP case the script must still exit 0.
if [ -f "$work/counts.txt" ]; then
    echo
    cat "$work/counts.txt"
fi
