#!/bin/sh
# bench/profile.sh: the profiling behind docs/performance.md, repeatable.
#
#   sh bench/profile.sh [syscalls] [perf] [callgrind] [pipes] [spin]   (as root;
#                                                      none named: all of them)
#
#   syscalls   strace -c over 20,000 short sessions: syscalls per session,
#              mailedge and HAProxy
#   perf       perf record (cpu-clock) during short sessions: user/kernel
#              split and the syscalls the time goes to, mailedge and HAProxy
#   callgrind  mailedge under callgrind, 10,000 short sessions: user-space
#              instructions per session and the functions they go to
#   pipes      A/B, alternated: mailedge as is, and with 256 KiB and 1 MiB
#              pipes (bench/shim/pipesize.c), bulk one way and both ways
#   spin       A/B, alternated: mailedge as is, mailedge polling epoll for
#              100 us before sleeping (bench/shim/spin.c), HAProxy, HAProxy
#              with busy-polling; unloaded latency and short sessions
#
# (bench/shim/sharedaccept.c is built here too, run by hand: its header.)
# The shims are measurement tools (LD_PRELOAD), not proposals of code: they
# show what a change in src/ would buy before anyone writes it. Same layout
# as bench/run.sh (loopback 127.77.0.1, proxy on cpu 1, load on cpu 0),
# everything started here is stopped by PID. About 7 minutes for all.
# Output: stdout and bench/results/profile-<date>.txt (PROFILE_OUT to change).
# PROFILE_SPLICE sets mailedge's `splice` (default: not written, the binary's default).
# mailedge runs `workers 1`: the profile is of one worker process.
set -eu

die() { echo "profile: $*" >&2; exit 1; }
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WHAT=${*:-all}
for w in $WHAT; do
    case $w in all|syscalls|perf|callgrind|pipes|spin) ;; *) die "unknown part '$w'" ;; esac
done
BIN=${MAILEDGE_BIN:-build/mailedge}
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
CC=${CC:-cc}
OUTDIR=$ROOT/build/bench
ADDR=127.77.0.1
P0="taskset -c 0"
P1="taskset -c 1"

[ -x "$BIN" ] || die "no mailedge binary at $BIN (run make)"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs"
mkdir -p "$OUTDIR"
BFLAGS="-std=c11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wformat=2"
for t in backend loadgen; do
    # shellcheck disable=SC2086
    $CC $BFLAGS -o "$OUTDIR/$t" "bench/$t.c" -lm || die "cannot build bench/$t.c"
done
for t in pipesize spin sharedaccept; do
    # shellcheck disable=SC2086
    $CC $BFLAGS -shared -fPIC -o "$OUTDIR/shim-$t.so" "bench/shim/$t.c" -ldl || die "cannot build shim $t"
done
LG=$OUTDIR/loadgen

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mailedge-profile.XXXXXX")
STARTED=""
stop_pid() {
    kill -TERM "$1" 2>/dev/null || return 0
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() {
    for p in $STARTED; do stop_pid "$p"; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BASE=$((30000 + ($$ % 100) * 16))
PB=$BASE
mconf() { # name port
    cat >"$TMP/$1.conf" <<EOF
global {
    log $TMP/$1.log format logfmt level info
    workers 1
${PROFILE_SPLICE:+    splice $PROFILE_SPLICE}
    grace 1s
    user $(id -un)
}
backend bench {
    server b1 $ADDR:$PB
    send-proxy v2
}
listener smtp {
    bind $ADDR:$2
    protocol smtp
    route -> bench
    timeout idle 30m
}
EOF
}
hconf() { # name port extra-global-line
    cat >"$TMP/$1.cfg" <<EOF
global
    nbthread 1
    maxconn 10000
    no strict-limits
    maxpipes 256
    log stdout format raw local0 info
    $3
defaults
    mode tcp
    log global
    option tcplog
    option splice-auto
    timeout connect 5s
    timeout client 30m
    timeout server 30m
listen smtp
    bind $ADDR:$2
    server b1 $ADDR:$PB send-proxy-v2
EOF
}
track() { STARTED="$STARTED $1"; }
probe() { $P0 "$LG" probe -a "$ADDR:$1" -t 5 >/dev/null || die "nothing answers on port $1"; }
field() { tr ' ' '\n' | grep -E "^($1)=" | tr '\n' ' '; }

$P0 "$OUTDIR/backend" -p "$ADDR:$PB" -d "$ADDR:$((BASE + 1))" &
track $!
probe $((BASE + 1))
mconf me $((BASE + 2)); $P1 "$BIN" -c "$TMP/me.conf" 2>"$TMP/me.err" &
ME=$!; track $ME
hconf hap $((BASE + 3)) ""; $P1 haproxy -db -f "$TMP/hap.cfg" >"$TMP/hap.log" 2>&1 &
HAP=$!; track $HAP
probe $((BASE + 2)); probe $((BASE + 3))

if [ -n "${PROFILE_OUT:-}" ]; then PROF=$PROFILE_OUT
else mkdir -p bench/results; PROF=bench/results/profile-$(date -u +%Y-%m-%dT%H%M%SZ).txt
fi
out() { tee -a "$PROF"; }
: >"$PROF"
{
    echo "bench/profile.sh $WHAT, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -r), $("$BIN" -V | head -1)," \
         "binary sha256 $(sha256sum "$BIN" | cut -c1-12), $(haproxy -v 2>&1 | head -1 | cut -d' ' -f1-3)"
} | out

want() {
    for w in $WHAT; do [ "$w" = all ] || [ "$w" = "$1" ] && return 0; done
    return 1
}

# Medians of the key=value fields of lines "  round R LABEL...: k=v ...", by label.
medians() {
    awk '{ sub(/^ *round [0-9]+ /, ""); i = index($0, ":"); lab = substr($0, 1, i - 1)
           if (!(lab in seen)) { seen[lab] = 1; order[++nl] = lab }
           n = split(substr($0, i + 1), kv, " ")
           for (j = 1; j <= n; j++) { split(kv[j], a, "="); if (!((lab, a[1]) in cnt)) keys[lab] = keys[lab] " " a[1]
               v[lab, a[1], ++cnt[lab, a[1]]] = a[2] } }
         END { for (l = 1; l <= nl; l++) { lab = order[l]; line = sprintf("  median %-32s", lab ":")
               nk = split(keys[lab], K, " ")
               for (k = 1; k <= nk; k++) { m = cnt[lab, K[k]]
                   for (x = 1; x <= m; x++) w[x] = v[lab, K[k], x] + 0
                   for (x = 2; x <= m; x++) for (y = x; y > 1 && w[y - 1] > w[y]; y--) { t = w[y]; w[y] = w[y - 1]; w[y - 1] = t }
                   line = line sprintf(" %s=%g", K[k], m % 2 ? w[(m + 1) / 2] : (w[m / 2] + w[m / 2 + 1]) / 2) }
               print line } }'
}

if want syscalls; then
    command -v strace >/dev/null || die "strace is not installed"
    for t in "mailedge $ME $((BASE + 2))" "haproxy $HAP $((BASE + 3))"; do
        set -- $t
        $P0 "$LG" short -a "$ADDR:$3" -c 50 -n 20000 -t 60 -w 0 >"$TMP/lg.out" &
        lg=$!
        sleep 0.2
        timeout 90 strace -c -p "$2" -o "$TMP/strace.txt" 2>/dev/null &
        st=$!
        wait $lg || true
        kill -INT $st 2>/dev/null || true
        wait $st 2>/dev/null || true
        # Sessions traced: one connect per session in both proxies.
        n=$(awk '$NF == "connect" { print $4 }' "$TMP/strace.txt")
        echo "== syscalls per short session, $1 (strace -c, ${n:-?} sessions traced)"
        awk -v n="${n:-1}" 'NF >= 5 && $1 ~ /^[0-9.]+$/ && $NF != "total" {
                name = $NF; calls = $4; err = (NF == 6) ? $5 : 0
                printf "  %-14s %6.2f%s\n", name, calls / n, err ? sprintf("  (%.2f returned -1: EAGAIN, EINPROGRESS...)", err / n) : ""
                tot += calls }
            END { printf "  %-14s %6.2f\n", "total", tot / n }' "$TMP/strace.txt"
    done | out
fi

if want perf; then
    command -v perf >/dev/null || die "perf is not installed"
    for t in "mailedge $ME $((BASE + 2))" "haproxy $HAP $((BASE + 3))"; do
        set -- $t
        $P0 "$LG" short -a "$ADDR:$3" -c 50 -t 6 -w 0.3 -p "$2" -k 1 >"$TMP/lg.out" &
        lg=$!
        sleep 1
        perf record -q -e cpu-clock -F 2000 -g -p "$2" -o "$TMP/perf.data" -- sleep 4 >/dev/null 2>&1
        wait $lg || true
        echo "== perf, short sessions c=50, $1: $(field 'rate|cpu_us_per_session' <"$TMP/lg.out")"
        perf report -i "$TMP/perf.data" --no-children --sort dso --stdio 2>/dev/null |
            grep -E '^ +[0-9.]+%' | head -4 | sed 's/^ */  /'
        echo "  time under each syscall (children):"
        perf report -i "$TMP/perf.data" --children --sort sym --stdio -g none 2>/dev/null |
            grep -E '\[k\] __x64_sys_' | head -12 | awk '{ printf "    %7s  %s\n", $1, $NF }'
    done | out
fi

if want callgrind; then
    command -v valgrind >/dev/null || die "valgrind is not installed"
    mconf cg $((BASE + 4))
    $P1 valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" "$BIN" -c "$TMP/cg.conf" 2>"$TMP/cg.err" &
    cg=$!; track $cg
    $P0 "$LG" probe -a "$ADDR:$((BASE + 4))" -t 20 >/dev/null || die "mailedge under callgrind did not start"
    n=$($P0 "$LG" short -a "$ADDR:$((BASE + 4))" -c 20 -n 10000 -t 120 -w 0 | tr ' ' '\n' | sed -n 's/^sessions=//p')
    stop_pid "$cg"
    {
        total=$(callgrind_annotate "$TMP/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
        echo "== callgrind, mailedge user space: $total instructions for $n sessions" \
             "($((total / n)) per session, start-up included)"
        callgrind_annotate --inclusive=yes "$TMP/cg.out" 2>/dev/null |
            sed -n 's/^ *\([0-9,]*\) *( *\([0-9.]*%\)) *[^ ]*:\(relay\|session_close[.a-z0-9]*\|addr_format\|log_begin\|log_u64\|log_str\|log_fmt\|log_end\|relay_pump\|on_accept\|session_start\|connect_next\) \[.*/\1 \2 \3/p' |
            awk -v n="$n" '{ gsub(",", "", $1); printf "  %-22s %6.0f instr/session  (%s, inclusive)\n", $3, $1 / n, $2 }'
    } | out
fi

if want pipes; then
    mconf p256 $((BASE + 5)); mconf p1m $((BASE + 6))
    LD_PRELOAD=$OUTDIR/shim-pipesize.so SHIM_PIPE=262144 $P1 "$BIN" -c "$TMP/p256.conf" 2>/dev/null &
    P256=$!; track $P256
    LD_PRELOAD=$OUTDIR/shim-pipesize.so SHIM_PIPE=1048576 $P1 "$BIN" -c "$TMP/p1m.conf" 2>/dev/null &
    P1M=$!; track $P1M
    probe $((BASE + 5)); probe $((BASE + 6))
    {
        echo "== pipe size, bulk, 4 streams, 3 s, alternated (A/B, not bench figures)"
        for r in 1 2 3 4 5; do
            for m in up both; do
                for t in "64KiB $ME $((BASE + 2))" "256KiB $P256 $((BASE + 5))" "1MiB $P1M $((BASE + 6))"; do
                    set -- $t
                    echo "  round $r $m $1: $($P0 "$LG" $m -a "$ADDR:$3" -c 4 -t 3 -w 0.3 -p "$2" -k 1 |
                        field 'gbps|cpu_ms_per_gb|ipi_per_mb')"
                done
            done
        done | tee "$TMP/pipes.txt"
        medians <"$TMP/pipes.txt"
    } | out
fi

if want spin; then
    mconf spin $((BASE + 7)); hconf hbp $((BASE + 8)) "busy-polling"
    LD_PRELOAD=$OUTDIR/shim-spin.so SPIN_US=100 $P1 "$BIN" -c "$TMP/spin.conf" 2>/dev/null &
    SPIN=$!; track $SPIN
    probe $((BASE + 7))
    {
        echo "== busy-poll before sleeping, alternated (A/B, not bench figures)"
        for r in 1 2 3 4 5; do
            for t in "direct - $((BASE + 1))" "mailedge $ME $((BASE + 2))" "mailedge+spin100us $SPIN $((BASE + 7))" \
                     "haproxy $HAP $((BASE + 3))" "haproxy+busy-polling hbp $((BASE + 8))"; do
                set -- $t
                pid=$2
                if [ "$pid" = hbp ]; then
                    # It never sleeps: running only while measured, or it
                    # would take the proxy core from the others.
                    $P1 haproxy -db -f "$TMP/hbp.cfg" >>"$TMP/hbp.log" 2>&1 &
                    pid=$!; track $pid
                    probe $((BASE + 8))
                fi
                for c in 1 50; do
                    pa=""; [ "$pid" = - ] || pa="-p $pid"
                    n=3000; [ $c = 1 ] || n=10000000
                    # shellcheck disable=SC2086
                    echo "  round $r c=$c $1: $($P0 "$LG" short -a "$ADDR:$3" -c $c -n $n -t 2 -w 0.2 $pa -k 1 |
                        field 'rate|p50_us|p99_us|cpu_us_per_session|ipi_per_session')"
                done
                [ "$2" != hbp ] || stop_pid "$pid"
            done
        done | tee "$TMP/spin.txt"
        medians <"$TMP/spin.txt"
    } | out
fi
echo "profile: written to $PROF"
