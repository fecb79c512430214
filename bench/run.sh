#!/bin/sh
# bench/run.sh: mailedge side by side with HAProxy, nginx stream and a direct
# connection, in one run with interleaved rounds (`make bench`), twice: one
# worker per proxy pinned to one core ("pinned"), then N workers or threads
# per proxy with nothing pinned ("multi"); then 50,000 idle sessions held at
# once by one mailedge of several workers ("hold").
#
#   sh bench/run.sh                 full run (about 12 minutes), results in
#                                   bench/results/<date>.txt and latest.txt
#   BENCH_QUICK=1 sh bench/run.sh   CI smoke: one small round of each run, about 20 seconds,
#                                   results in build/bench/quick.txt
#
# Environment (all optional):
#   MAILEDGE_BIN     the binary (default build/mailedge; built with make if missing)
#   BENCH_ROUNDS     rounds (default 5, quick 1)
#   BENCH_TARGETS    subset of "direct mailedge hapauto hapsplice nginx mebusy"
#                    (hapauto: HAProxy with option splice-auto; hapsplice: with
#                    splice forced both ways; mebusy: mailedge with busy-poll,
#                    latency test only); "base" is added by BENCH_BASE_BIN
#   BENCH_BASE_BIN   a second mailedge binary measured alongside (an A/B)
#   BENCH_SPLICE, BENCH_BASE_SPLICE  `splice` of mailedge and base (default: not
#                                   written, the binary's own default)
#   BENCH_BUSY_POLL  busy-poll value of mebusy (default 100us)
#   BENCH_RUNS       subset of "pinned multi hold" (default all three)
#   BENCH_WORKERS    N of the multi run (default: the number of CPUs)
#   BENCH_MULTI_TESTS, BENCH_MULTI_ROUNDS  tests and rounds of the multi run
#                    (default "short up both", 3; quick: "short", 1)
#   BENCH_TESTS      subset of "idle lat short up both" (the table shows "-" for the rest)
#   BENCH_IDLE       idle sessions held at once (default 9600: under mailedge's derived maxconn of 9,650 at a 20,000 limit; quick 300)
#   BENCH_HOLD       sessions of the hold run (default 50000, quick 2000), held at
#                    once by mailedge with W workers and by nginx with W
#                    worker_processes, unpinned. Every process stays under 85% of
#                    the hard fd limit: W = 2 descriptors per session over that
#                    (6 at 20,000), the sessions opened by several load-generator
#                    processes (loadgen idle -j) and served by several backends
#                    (round robin, each also under 85% of half the ephemeral ports
#                    of one source/destination pair: connect() tries the even
#                    ports first, and past them each connect() walks all of
#                    them); at least 2 of each
#   BENCH_SECS       seconds per throughput measurement (default 3, quick 0.5)
#   BENCH_TURN       short and latency tests: seconds per turn of a target
#                    (default 0.25, quick 0.1); the targets take turns
#   BENCH_CONC       concurrency of the short sessions (default 50)
#   BENCH_STREAMS    bulk streams (default 4)
#   BENCH_LAT_N      sessions of the unloaded latency test (default 2000, quick 200)
#   BENCH_OUT        results file (default as above)
#   BENCH_KEEP=1     keep the temporary directory (configs and logs)
#   LOAD_CPU, PROXY_CPU  cores for load generator + backend, and for the proxy (0, 1)
#
# Everything listens on 127.77.0.1; clients come from 127.77.1.1-16. Each
# proxy runs from a throwaway config in a temporary directory, pinned to
# PROXY_CPU, and is stopped by its PID. Exit status 1 if any measurement of
# mailedge or of the direct connection failed (errors in the load generator),
# or a proxy did not start. A failed measurement of HAProxy or nginx is
# reported and left out of the medians, but does not fail the run: it is the
# peer's behaviour, not the harness's.
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)
QUICK=${BENCH_QUICK:-0}
[ "$QUICK" = 1 ] || QUICK=0
if [ $QUICK = 1 ]; then
    ROUNDS=${BENCH_ROUNDS:-1}; IDLE=${BENCH_IDLE:-300}; SECS=${BENCH_SECS:-0.3}; TURN=${BENCH_TURN:-0.1}
    LAT_N=${BENCH_LAT_N:-200}; WARM=0.1; SETTLE=0.2; HOLD=${BENCH_HOLD:-2000}
else
    ROUNDS=${BENCH_ROUNDS:-5}; IDLE=${BENCH_IDLE:-9600}; SECS=${BENCH_SECS:-3}; TURN=${BENCH_TURN:-0.25}
    LAT_N=${BENCH_LAT_N:-2000}; WARM=0.3; SETTLE=1; HOLD=${BENCH_HOLD:-50000}
fi
CONC=${BENCH_CONC:-50}
NCPU=$(nproc 2>/dev/null || echo 1)
RUNS=${BENCH_RUNS:-pinned multi hold}
NWORK=${BENCH_WORKERS:-$NCPU}
BUSY=${BENCH_BUSY_POLL:-100us}
BASE_BIN=${BENCH_BASE_BIN:-}
if [ $QUICK = 1 ]; then
    MTESTS=${BENCH_MULTI_TESTS:-short}; MROUNDS=${BENCH_MULTI_ROUNDS:-1}
else
    MTESTS=${BENCH_MULTI_TESTS:-short up both}; MROUNDS=${BENCH_MULTI_ROUNDS:-3}
fi
STREAMS=${BENCH_STREAMS:-4}
TARGETS=${BENCH_TARGETS:-direct mailedge hapauto hapsplice nginx mebusy}
[ -z "$BASE_BIN" ] || TARGETS="$TARGETS base"
TESTS=${BENCH_TESTS:-idle lat short up both}
LOAD_CPU=${LOAD_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
BIN=${MAILEDGE_BIN:-build/mailedge}
CC=${CC:-cc}
OUTDIR=$ROOT/build/bench
ADDR=127.77.0.1
NGINX_STREAM_MOD=/usr/lib/nginx/modules/ngx_stream_module.so

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

# --- build ------------------------------------------------------------------
mkdir -p "$OUTDIR"
[ -x "$BIN" ] || make --no-print-directory >/dev/null || die "cannot build mailedge"
[ -x "$BIN" ] || die "no mailedge binary at $BIN"
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
if [ -n "$BASE_BIN" ]; then
    [ -x "$BASE_BIN" ] || die "no baseline binary at $BASE_BIN"
    case $BASE_BIN in /*) ;; *) BASE_BIN=$ROOT/$BASE_BIN ;; esac
fi
BFLAGS="-std=c11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wformat=2"
for t in backend loadgen; do
    # shellcheck disable=SC2086 # BFLAGS is a list of flags
    $CC $BFLAGS -o "$OUTDIR/$t" "bench/$t.c" -lm || die "cannot build bench/$t.c"
done
LG=$OUTDIR/loadgen
BE=$OUTDIR/backend
# bench/bansets.c links the pure modules from the library `make` built.
LIBME=$(dirname "$BIN")/libmailedge.a
[ -f "$LIBME" ] || LIBME=$ROOT/build/libmailedge.a
# shellcheck disable=SC2046,SC2086 # one -I per source folder; BFLAGS is a list
$CC $BFLAGS -D_GNU_SOURCE $(for d in src/*/; do printf ' -I%s' "${d%/}"; done) -o "$OUTDIR/bansets" \
    bench/bansets.c "$LIBME" $(pkg-config --libs json-c) || die "cannot build bench/bansets.c"

# --- what can run here --------------------------------------------------------
if [ "$NCPU" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    PIN_LOAD="taskset -c $LOAD_CPU"; PIN_PROXY="taskset -c $PROXY_CPU"; CORE_ARG="-k $PROXY_CPU"
else
    note "fewer than 2 CPUs or no taskset: nothing is pinned, core busy time not sampled"
    PIN_LOAD=; PIN_PROXY=; CORE_ARG=
fi
HARD_FD=$(ulimit -Hn)
if [ "$HARD_FD" != unlimited ] && [ $((IDLE * 2 + 64)) -gt "$HARD_FD" ]; then
    die "BENCH_IDLE=$IDLE needs $((IDLE * 2 + 64)) fds in a proxy; the hard limit is $HARD_FD"
fi
ulimit -n "$HARD_FD" 2>/dev/null || true

RUN=
for t in $TARGETS; do
    case $t in
    direct|mailedge|base|mebusy) RUN="$RUN $t" ;;
    hapauto|hapsplice) if command -v haproxy >/dev/null 2>&1; then RUN="$RUN $t"
             else note "haproxy not installed: skipped (scripts/deps.sh bench installs it)"; fi ;;
    nginx) if command -v nginx >/dev/null 2>&1 && [ -f $NGINX_STREAM_MOD ]; then RUN="$RUN $t"
           else note "nginx or its stream module not installed: skipped"; fi ;;
    *) die "unknown target '$t'" ;;
    esac
done
for x in $TESTS $MTESTS; do
    case $x in idle|lat|short|up|both) ;; *) die "unknown test '$x'" ;; esac
done
TARGETS=${RUN# }
[ -n "$TARGETS" ] || die "nothing to measure"

# --- temporary directory, ports, cleanup ------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mailedge-bench.XXXXXX")
STARTED=""
stop_pid() {
    p=$1
    kill -TERM "$p" 2>/dev/null || return 0
    i=0
    while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}
cleanup() {
    for p in $STARTED; do stop_pid "$p"; done
    STARTED=""
    if [ "${BENCH_KEEP:-0}" = 1 ]; then note "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BASE=$((20000 + ($$ % 700) * 16))
P_BPROXY=$BASE; P_BDIRECT=$((BASE + 1))
P_mailedge=$((BASE + 2)); P_hapauto=$((BASE + 3)); P_nginx=$((BASE + 4))
P_hapsplice=$((BASE + 5)); P_base=$((BASE + 6)); P_mebusy=$((BASE + 7))

# --- configurations ---------------------------------------------------------
# write_configs N: the configs for N workers or threads per proxy (1 in the
# pinned run). Every proxy sends a PROXY header and writes one log line per
# session to a file, as a production edge does.
MAILEDGE_WORKERS_NOTE=""
SERVER_PORTS=""  # the hold run's backends; the others have one, $P_BPROXY
NGX_CONNS=""     # nginx worker_connections (default: for the idle test)
write_configs() {
    n=$1
    wl=""
    me_servers="" ngx_up="" i=0
    for p in ${SERVER_PORTS:-$P_BPROXY}; do
        i=$((i + 1))
        me_servers="$me_servers    server b$i $ADDR:$p
"
        ngx_up="$ngx_up        server $ADDR:$p;
"
    done
    if [ $i = 1 ]; then ngx_pass=$ADDR:${SERVER_PORTS:-$P_BPROXY} ngx_up=""
    else ngx_pass=bench ngx_up="    upstream bench {
$ngx_up    }
"; fi
    MAILEDGE_WORKERS=1
    MAILEDGE_WORKERS_NOTE="one worker"
    # `workers N` is written out, 1 too (the default may be the number of
    # CPUs); a binary without it runs its one worker and the table says so.
    printf 'global {\n    workers %s\n}\n%s\n' "$n" "$PROBE_BODY" >"$TMP/workers-probe.conf"
    if "$BIN" -t -c "$TMP/workers-probe.conf" >/dev/null 2>&1 &&
        { [ -z "$BASE_BIN" ] || "$BASE_BIN" -t -c "$TMP/workers-probe.conf" >/dev/null 2>&1; }; then
        wl="    workers $n"; MAILEDGE_WORKERS=$n
        [ "$n" = 1 ] || MAILEDGE_WORKERS_NOTE="workers $n"
    elif [ "$n" -gt 1 ]; then
        MAILEDGE_WORKERS_NOTE="one worker: this binary refuses 'workers $n'"
        note "mailedge -t refuses 'workers $n': mailedge runs one worker in this run"
    fi
    for t in mailedge base mebusy; do
        extra=""
        [ $t != mebusy ] || extra="    busy-poll $BUSY"
        splice=${BENCH_SPLICE:-}
        [ $t != base ] || splice=${BENCH_BASE_SPLICE:-}
        [ -z "$splice" ] || splice="    splice $splice"
        eval "port=\$P_$t"
        cat >"$TMP/$t.conf" <<EOF
global {
    log $TMP/$t.log format logfmt level info
$splice
    grace 1s
    user $(id -un)
$wl
$extra
}
backend bench {
${me_servers}    send-proxy v2
}
listener smtp {
    bind $ADDR:$port
    protocol smtp
    route -> bench
    timeout idle 30m
}
EOF
    done

    # HAProxy, twice: with splice-auto (its heuristics copy small reads and
    # splice bulk) and with splice forced both ways; the table takes the
    # better of the two per figure. Both ask for 1 MiB pipes, as mailedge
    # does (tune.pipesize). The fd limit cannot be raised here, so say it
    # rather than let HAProxy refuse to start.
    for t in hapauto hapsplice; do
        if [ $t = hapauto ]; then opts="    option splice-auto"
        else opts="    option splice-request
    option splice-response"; fi
        eval "port=\$P_$t"
        cat >"$TMP/$t.cfg" <<EOF
global
    nbthread $n
    maxconn $((IDLE + 100))
    ulimit-n $HARD_FD
    no strict-limits
    maxpipes 256
    tune.pipesize 1048576
    log stdout format raw local0 info
defaults
    mode tcp
    log global
    option tcplog
$opts
    maxconn $((IDLE + 100))
    timeout connect 5s
    timeout client 30m
    timeout server 30m
listen smtp
    bind $ADDR:$port
    server b1 $ADDR:$P_BPROXY send-proxy-v2
EOF
    done

    # nginx as its docs advise for this: reuseport (one listening socket per
    # worker; no accept_mutex needed then, and it is off by default since
    # 1.11.3), multi_accept, tcp_nodelay (the default), worker_connections
    # sized for the idle test, the default 16k proxy_buffer_size. nginx 1.22
    # sends PROXY v1 only. The master is counted with the workers.
    mkdir -p "$TMP/nginx"
    cat >"$TMP/nginx.conf" <<EOF
load_module $NGINX_STREAM_MOD;
worker_processes $n;
worker_rlimit_nofile $HARD_FD;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events {
    worker_connections ${NGX_CONNS:-$((IDLE * 2 + 100))};
    multi_accept on;
    accept_mutex off;
}
stream {
    log_format basic '\$remote_addr [\$time_local] \$protocol \$status \$bytes_sent \$bytes_received \$session_time';
    access_log $TMP/nginx/access.log basic;
    tcp_nodelay on;
${ngx_up}    server {
        listen $ADDR:$P_nginx backlog=1024 reuseport;
        proxy_pass $ngx_pass;
        proxy_protocol on;
        proxy_buffer_size 16k;
        proxy_connect_timeout 5s;
        proxy_timeout 30m;
        proxy_half_close on;
    }
}
EOF
}

# --- processes ----------------------------------------------------------------
# Children of a PID (nginx's worker), from /proc.
children_of() {
    if [ -r "/proc/$1/task/$1/children" ]; then
        cat "/proc/$1/task/$1/children"
    else
        for s in /proc/[0-9]*/stat; do
            awk -v p="$1" '{ sub(/.*\) /, ""); if ($2 == p) { split(FILENAME, f, "/"); print f[3] } }' \
                "$s" 2>/dev/null
        done
    fi
}

# wait_listeners PORT N: up to 5 s for N sockets listening on $ADDR:PORT
# (/proc/net/tcp, state 0A).
wait_listeners() {
    want=$(echo "$ADDR $1" | awk '{ split($1, a, "."); printf "%02X%02X%02X%02X:%04X", a[4], a[3], a[2], a[1], $2 }')
    i=0
    while [ "$(awk -v a="$want" '$2 == a && $4 == "0A"' /proc/net/tcp | wc -l)" -lt "$2" ]; do
        [ $i -lt 50 ] || die "fewer than $2 workers listen on $ADDR:$1"
        sleep 0.1; i=$((i + 1))
    done
}

probe() { # addr:port
    $PIN_LOAD "$LG" probe -a "$1" -t 5 >/dev/null 2>&1
}

start_proxy() { # target -> sets PIDS_<target>
    t=$1
    case $t in
    mailedge|base|mebusy)
        b=$BIN
        [ $t != base ] || b=$BASE_BIN
        "$b" -t -c "$TMP/$t.conf" >/dev/null || die "$t refuses its bench config"
        $PIN_PROXY "$b" -c "$TMP/$t.conf" 2>>"$TMP/$t.stderr" &
        ;;
    hapauto|hapsplice)
        haproxy -c -f "$TMP/$t.cfg" >>"$TMP/$t.check" 2>&1 || \
            { cat "$TMP/$t.check" >&2; die "haproxy refuses its bench config $t"; }
        $PIN_PROXY haproxy -db -f "$TMP/$t.cfg" >>"$TMP/$t.log" 2>&1 &
        ;;
    nginx)
        nginx -t -q -c "$TMP/nginx.conf" -e "$TMP/nginx/error.log" -p "$TMP/nginx" 2>>"$TMP/nginx.check" || \
            { cat "$TMP/nginx.check" >&2; die "nginx refuses its bench config"; }
        $PIN_PROXY nginx -c "$TMP/nginx.conf" -e "$TMP/nginx/error.log" -p "$TMP/nginx" \
            2>>"$TMP/nginx/stderr" &
        ;;
    esac
    pid=$!
    STARTED="$STARTED $pid"
    eval "P=\$P_$t"
    probe "$ADDR:$P" || die "$t did not come up on $ADDR:$P (logs in $TMP, BENCH_KEEP=1 keeps them)"
    # Several workers: measure once every one of them listens (SO_REUSEPORT
    # spreads clients only over the sockets bound so far).
    case $t in mailedge|base|mebusy) wait_listeners "$P" "$MAILEDGE_WORKERS" ;; esac
    pids=$pid
    for c in $(children_of "$pid"); do pids="$pids,$c"; done
    eval "PIDS_$t=\$pids MAIN_$t=\$pid"
}

# stop_started PID...: stops each and forgets it (cleanup() stops the rest).
stop_started() {
    for p in "$@"; do stop_pid "$p"; done
    rest=""
    for p in $STARTED; do case " $* " in *" $p "*) ;; *) rest="$rest $p" ;; esac; done
    STARTED=$rest
}

stop_proxy() {
    eval "pid=\${MAIN_$1:-}"
    [ -n "$pid" ] || return 0
    stop_started "$pid"
    eval "MAIN_$1="
}

BE_PID=""
start_backend() {
    $PIN_LOAD "$BE" -p "$ADDR:$P_BPROXY" -d "$ADDR:$P_BDIRECT" 2>>"$TMP/backend.stderr" &
    BE_PID=$!
    STARTED="$STARTED $BE_PID"
    probe "$ADDR:$P_BDIRECT" || die "the bench backend did not come up"
}
stop_backend() {
    [ -n "$BE_PID" ] || return 0
    stop_started "$BE_PID"
    BE_PID=""
}

# busy-poll is measured only where the binary knows it (mailedge -t needs a listener).
PROBE_BODY="listener probe {
    bind $ADDR:$P_mebusy
    protocol smtp
    route -> $ADDR:$P_BPROXY
}"
case " $TARGETS " in *" mebusy "*)
    printf 'global {\n    busy-poll %s\n}\n%s\n' "$BUSY" "$PROBE_BODY" >"$TMP/busy-probe.conf"
    if ! "$BIN" -t -c "$TMP/busy-probe.conf" >/dev/null 2>&1; then
        note "mailedge -t refuses 'busy-poll $BUSY': mebusy skipped"
        TARGETS=$(echo " $TARGETS " | sed 's/ mebusy / /; s/^ //; s/ $//')
    fi ;;
esac

# --- machine facts --------------------------------------------------------------
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
if [ -n "${BENCH_OUT:-}" ]; then OUT=$BENCH_OUT
elif [ $QUICK = 1 ]; then OUT=$OUTDIR/quick.txt
else mkdir -p bench/results; OUT=bench/results/$STAMP.txt
fi
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src 2>/dev/null || rev="$rev+uncommitted-src"
{
    echo "mailedge bench, $STAMP$( [ $QUICK = 1 ] && echo ' (BENCH_QUICK smoke: small counts, not for quoting)')"
    echo
    echo "machine"
    echo "  cpus:        $NCPU x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "  memory:      $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "  kernel:      $(uname -sr)"
    virt=$(grep -qw hypervisor /proc/cpuinfo && echo "virtual machine (hypervisor cpu flag)" || echo "no hypervisor flag")
    cont=$(systemd-detect-virt --container 2>/dev/null) || cont=none
    echo "  virtualized: $virt; container: $cont"
    echo "  cpuidle:     $(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo unknown)"
    echo "  fd limit:    $(ulimit -n) (hard $HARD_FD)"
    echo "  net:         ip_local_port_range $(tr '\t' ' ' </proc/sys/net/ipv4/ip_local_port_range)," \
         "tcp_tw_reuse $(cat /proc/sys/net/ipv4/tcp_tw_reuse), somaxconn $(cat /proc/sys/net/core/somaxconn)"
    echo "  load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "  nice:        $(nice) (of the bench and everything it starts; 0 unless run under nice)"
    echo "  busiest other processes at start (pid %cpu elapsed command):"
    ps -eo pid=,pcpu=,etime=,comm= --sort=-pcpu 2>/dev/null | awk -v me=$$ '$1 != me' | head -3 | sed 's/^/    /'
    echo "software"
    echo "  mailedge:    $("$BIN" -V | head -1) (git $rev; binary $BIN, built $(date -u -r "$BIN" +%Y-%m-%dT%H:%M:%SZ), sha256 $(sha256sum "$BIN" | cut -c1-12))"
    command -v haproxy >/dev/null && echo "  haproxy:     $(haproxy -v 2>&1 | head -1)"
    command -v nginx >/dev/null && echo "  nginx:       $(nginx -v 2>&1)"
    echo "  cc:          $($CC --version | head -1)"
    echo "setup"
    echo "  runs: $RUNS (pinned: one worker or thread per proxy, pinned; multi: $NWORK each, unpinned)"
    echo "  rounds: pinned $ROUNDS, multi $MROUNDS, interleaved (target order rotates each round), medians;" \
         "short and latency: within a round the targets take turns of ${TURN}s (one load generator)"
    echo "  short: c=$CONC, ${SECS}s after ${WARM}s warm-up; bulk: $STREAMS streams, ${SECS}s;" \
         "idle: $IDLE sessions; latency: c=1, $LAT_N sessions"
    echo "  hold: $HOLD idle sessions at once, W workers or worker_processes from the fd limit (run 3's title)"
    echo "  HAProxy: mode tcp, send-proxy-v2, tune.pipesize 1 MiB, tcplog to a file; hap-auto:" \
         "option splice-auto; hap-splc: option splice-request + splice-response"
    echo "  nginx: workers (+ master, counted), proxy_protocol on (v1), listen reuseport, multi_accept," \
         "accept_mutex off, tcp_nodelay, proxy_buffer_size 16k, access_log to a file"
    echo "  mailedge: send-proxy v2, splice ${BENCH_SPLICE:-(its default)}, log file; mebusy: the same with busy-poll $BUSY (latency test only)"
    [ -z "$BASE_BIN" ] || echo "  base: $("$BASE_BIN" -V | head -1) (binary $BASE_BIN, sha256 $(sha256sum "$BASE_BIN" | cut -c1-12)), same config as mailedge but splice ${BENCH_BASE_SPLICE:-on}"
} >"$OUT.tmp"

# --- measurements -------------------------------------------------------------
FAILED=0 PEER_FAILED=0
RAW=$TMP/raw.txt
# Remote bans (issue 20): CPU-bound, alone on the proxy's core, before the proxies start.
if [ $QUICK = 1 ]; then BANSETS_ARGS="-l 200000 -r 3"; else BANSETS_ARGS="-l 2000000 -r 5"; fi
# shellcheck disable=SC2086
if ! $PIN_PROXY "$OUTDIR/bansets" $BANSETS_ARGS >"$TMP/bansets.txt" 2>&1; then
    FAILED=$((FAILED + 1))
    note "remote bans FAILED: $(tail -n 1 "$TMP/bansets.txt")"
fi
# target_args TARGET: the load generator's -a (and -p) for it.
target_args() {
    if [ "$1" = direct ]; then echo "-a $ADDR:$P_BDIRECT"
    else eval "echo \"-a $ADDR:\$P_$1 -p \$PIDS_$1\""; fi
}
test_args() { # test
    case $1 in
    idle)  echo "idle -v -c 200 -n $IDLE -t 60 -w $SETTLE" ;;
    lat)   echo "short -c 1 -n $LAT_N -t $SECS -w $WARM" ;;
    short) echo "short -c $CONC -n 10000000 -t $SECS -w $WARM" ;;
    up)    echo "up -c $STREAMS -t $SECS -w $WARM" ;;
    both)  echo "both -c $STREAMS -t $SECS -w $WARM" ;;
    hold)  echo "idle -v -j $HOLD_J -c 200 -n $HOLD -t $HOLD_SECS -w $SETTLE" ;;
    esac
}
record() { # round target test rc line
    r=$1; t=$2; x=$3; rc=$4; line=$5
    echo "round=$r target=$t test=$x rc=$rc $line" >>"$RAW"
    if [ "$rc" != 0 ]; then
        case $t in hapauto|hapsplice|nginx) PEER_FAILED=$((PEER_FAILED + 1)) ;;
        *) FAILED=$((FAILED + 1)) ;; esac
        note "round $r $x $t FAILED: $line"
    else
        printf 'bench: round %s %-5s %-8s %s\n' "$r" "$x" "$t" \
            "$(echo "$line" | tr ' ' '\n' | grep -E '^(sessions|greeted|secs_to_greeted|fds_max|rate|p50_us|gbps|cpu_us_per_session|cpu_ms_per_gb|rss_b_per_session|kernel_b_per_session)=' | tr '\n' ' ')" >&2
    fi
}
measure() { # round target test
    r=$1; t=$2; x=$3
    # busy-poll is a latency setting: mebusy runs the latency test only.
    [ "$t" != mebusy ] || [ "$x" = lat ] || return 0
    # shellcheck disable=SC2046,SC2086 # word splitting of the argument lists is meant
    if line=$($PIN_LOAD "$LG" $(test_args "$x") $(target_args "$t") -b "$BE_PID" $CORE_ARG 2>"$TMP/lg.err"); then rc=0; else rc=$?; fi
    [ -n "$line" ] || line="no_output=1 $(tr '\n' ' ' <"$TMP/lg.err")"
    case $x in idle|hold) sed "s/^slab /round=$r target=$t /" "$TMP/lg.err" >>"$TMP/slab.txt" ;; esac
    record "$r" "$t" "$x" "$rc" "$line"
}
# measure_turns round test target...: one load generator measures every
# target in turns of $TURN s (loadgen -l), so that a host whose speed drifts
# over seconds slows each alike; its line for target K is target K's.
measure_turns() {
    r=$1; x=$2; shift 2
    ts="" targs=""
    for t in "$@"; do
        [ "$t" != mebusy ] || [ "$x" = lat ] || continue
        ts="$ts $t"; targs="$targs $(target_args "$t")"
    done
    # shellcheck disable=SC2046,SC2086 # word splitting of the argument lists is meant
    if $PIN_LOAD "$LG" $(test_args "$x") -l "$TURN" $targs -b "$BE_PID" $CORE_ARG \
        >"$TMP/lg.out" 2>"$TMP/lg.err"; then rc=0; else rc=$?; fi
    k=0
    for t in $ts; do
        line=$(sed -n "s/^target=$k //p" "$TMP/lg.out")
        [ -n "$line" ] || line="no_output=1 $(tr '\n' ' ' <"$TMP/lg.err")"
        trc=1
        case $line in sessions=0\ *) ;; *" errors=0 "*) trc=0 ;; esac
        record "$r" "$t" "$x" "$trc" "$line"
        k=$((k + 1))
    done
}

# run_phase pinned|multi: one run of every test on every target, with
# interleaved rounds; writes $TMP/raw-<phase>.txt and $TMP/table-<phase>.txt.
run_phase() {
    phase=$1
    if [ "$phase" = pinned ]; then
        n=1 rounds=$ROUNDS tests=$TESTS targets=$TARGETS
        PIN_LOAD=$PIN_LOAD_1 PIN_PROXY=$PIN_PROXY_1 CORE_ARG=$CORE_ARG_1
    else
        n=$NWORK rounds=$MROUNDS tests=$MTESTS PIN_LOAD='' PIN_PROXY='' CORE_ARG=''
        targets=$(echo " $TARGETS " | sed 's/ mebusy / /; s/^ //; s/ $//')
    fi
    RAW=$TMP/raw-$phase.txt
    : >"$RAW"
    : >"$TMP/slab.txt"
    write_configs "$n"
    start_backend
    ntarg=$(echo $targets | wc -w)
    r=1
    while [ $r -le "$rounds" ]; do
        # Rotate the order so that no target always runs first or last.
        order=$(echo $targets | tr ' ' '\n' | awk -v k=$(((r - 1) % ntarg)) -v n="$ntarg" \
            '{ a[NR - 1] = $0 } END { for (i = 0; i < n; i++) printf "%s ", a[(i + k) % n] }')
        # Fresh proxies each round: the idle-memory test runs first on each.
        for t in $order; do [ "$t" = direct ] || start_proxy "$t"; done
        for x in $tests; do
            case $x in
            # shellcheck disable=SC2086 # $order is a list
            short|lat) measure_turns "$r" "$x" $order ;;
            *) for t in $order; do measure "$r" "$t" "$x"; done ;;
            esac
        done
        for t in $order; do [ "$t" = direct ] || stop_proxy "$t"; done
        r=$((r + 1))
    done
    stop_backend
    {
        if [ "$phase" = pinned ]; then
            echo "== run 1: one worker or thread per proxy, pinned (proxy on cpu $PROXY_CPU," \
                 "load generator and backend on cpu $LOAD_CPU)"
        else
            echo "== run 2: $n workers or threads per proxy, nothing pinned (mailedge: $MAILEDGE_WORKERS_NOTE;" \
                 "HAProxy nbthread $n; nginx worker_processes $n)"
        fi
        awk -v targets="$targets" -v phase="$phase" -v conc="$CONC" -f bench/summarize.awk "$RAW"
        echo
    } >"$TMP/table-$phase.txt"
    if [ -s "$TMP/slab.txt" ]; then
        echo "kernel memory per idle session by slab cache, $phase run, last round (rise when opened, fall when closed)"
        grep "^round=$rounds " "$TMP/slab.txt" | sed 's/^round=[0-9]* /  /'
        echo
    fi >"$TMP/slab-$phase.txt"
}

# run_hold: BENCH_HOLD idle sessions held at once by mailedge with W workers
# and by nginx with W worker_processes, one round each, nothing pinned; every
# process under 85% of the hard fd limit (see BENCH_HOLD above). Writes
# $TMP/raw-hold.txt, table-hold.txt and slab-hold.txt.
ceil() { echo $((($1 + $2 - 1) / $2)); }
atleast2() { if [ "$1" -lt 2 ]; then echo 2; else echo "$1"; fi; }
run_hold() {
    lim=$HARD_FD
    [ "$lim" != unlimited ] || lim=1048576
    budget=$((lim * 85 / 100))
    ports=$(awk '{ print int(($2 - $1 + 1) / 2 * 85 / 100) }' /proc/sys/net/ipv4/ip_local_port_range)
    per_be=$budget
    [ "$ports" -ge "$per_be" ] || per_be=$ports
    hw=$(atleast2 "$(ceil $((HOLD * 2)) "$budget")")
    HOLD_J=$(atleast2 "$(ceil "$HOLD" "$budget")")
    hb=$(atleast2 "$(ceil "$HOLD" "$per_be")")
    [ "$hb" -le 8 ] || die "BENCH_HOLD=$HOLD needs $hb backends; the bench has ports for 8"
    if [ "$QUICK" = 1 ]; then HOLD_SECS=30; else HOLD_SECS=300; fi
    RAW=$TMP/raw-hold.txt
    : >"$RAW"
    : >"$TMP/slab.txt"
    PIN_LOAD='' PIN_PROXY='' CORE_ARG='' BE_PID=''
    SERVER_PORTS="" hold_be=""
    b=0
    while [ $b -lt "$hb" ]; do
        port=$((BASE + 8 + b))
        "$BE" -p "$ADDR:$port" 2>>"$TMP/backend.stderr" &
        hold_be="$hold_be $!"
        STARTED="$STARTED $!"
        SERVER_PORTS="$SERVER_PORTS $port"
        wait_listeners "$port" 1
        b=$((b + 1))
    done
    NGX_CONNS=$((budget + 100))
    write_configs "$hw"
    targets=""
    for t in mailedge nginx; do
        case " $TARGETS " in *" $t "*)
            targets="$targets $t"
            start_proxy "$t"
            measure 1 "$t" hold
            stop_proxy "$t" ;;
        esac
    done
    # shellcheck disable=SC2086 # a list of PIDs
    stop_started $hold_be
    SERVER_PORTS="" NGX_CONNS=""
    hap=""
    case " $TARGETS " in *" hapauto "*|*" hapsplice "*)
        hap="one process (nbthread $hw: its threads share one limit of $lim descriptors, 2 per session: at most $(((lim - 64) / 2)) sessions)" ;;
    esac
    {
        echo "== run 3: $HOLD idle sessions held at once, nothing pinned (mailedge: $MAILEDGE_WORKERS_NOTE;" \
             "nginx worker_processes $hw; $hb backends, round robin; $HOLD_J load-generator processes)"
        awk -v targets="${targets# }" -v phase=hold -v hold="$HOLD" -v fdlim="$lim" -v hap="$hap" \
            -f bench/summarize.awk "$RAW"
        echo
    } >"$TMP/table-hold.txt"
    if [ -s "$TMP/slab.txt" ]; then
        echo "kernel memory per idle session by slab cache, hold run (rise when opened, fall when closed)"
        sed 's/^round=[0-9]* /  /' "$TMP/slab.txt"
        echo
    fi >"$TMP/slab-hold.txt"
}

PIN_LOAD_1=$PIN_LOAD PIN_PROXY_1=$PIN_PROXY CORE_ARG_1=$CORE_ARG
for phase in $RUNS; do
    case $phase in
    pinned|multi) run_phase "$phase" ;;
    hold) run_hold ;;
    *) die "unknown run '$phase'" ;;
    esac
done

# --- report -------------------------------------------------------------------
{
    echo
    for phase in $RUNS; do cat "$TMP/table-$phase.txt"; done
    echo
    cat "$TMP/bansets.txt"
    echo "notes"
    echo "  proxy CPU = utime+stime of the proxy's processes (/proc/PID/stat) over the window; it"
    echo "    includes the loopback packet processing the kernel runs in the proxy's context."
    echo "  proxy core busy = busy time of cpu $PROXY_CPU (/proc/stat: user+system+irq+softirq), the"
    echo "    proxy's core: also softirq work run from idle there, and any other process on it."
    echo "  cross-CPU wake-ups = rescheduling + function-call interrupts (/proc/interrupts), all CPUs."
    echo "  kernel B/session, all = slab (active objects) + TCP buffer pages, over the whole machine;"
    echo "    the proxy's share is that minus the direct connection's in the same round."
    echo "  1 GB = 10^9 bytes; both-ways throughput is the sum of the two directions."
    echo
    for phase in $RUNS; do cat "$TMP/slab-$phase.txt"; done
    for phase in $RUNS; do
        echo "raw measurements, $phase run (one line per round, target and test)"
        sed 's/^/  /' "$TMP/raw-$phase.txt"
    done
    [ $FAILED = 0 ] || echo "FAILED measurements: $FAILED"
    [ $PEER_FAILED = 0 ] || echo "failed measurements of HAProxy or nginx (left out of the medians): $PEER_FAILED"
} >>"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
[ $QUICK = 1 ] || [ -n "${BENCH_OUT:-}" ] || cp "$OUT" bench/results/latest.txt
sed -n '/^== run/,/^notes/p' "$OUT" | sed '$d'
echo "bench: results in $OUT"
[ $FAILED = 0 ] || die "$FAILED measurement(s) failed"
