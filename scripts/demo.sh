#!/bin/sh
# make demo: real Postfix and Dovecot on loopback, mailedge in front of them.
#
#   scripts/demo.sh PATH/TO/mailedge        (as root; `make demo` does this)
#
# Installs what it needs (Postfix, Dovecot, swaks, HAProxy, python3) when
# missing, starts Postfix (postscreen + submission with PROXY listeners) and
# Dovecot (IMAP/POP3 with `haproxy = yes`) in a throwaway directory, starts
# mailedge with examples/demo.conf, sends a message through mailedge with
# swaks from 127.0.0.77, reads it back over IMAP through mailedge from the
# same address, and prints the lines of Postfix's and Dovecot's own logs that
# show the real client address, then mailedge's session lines.
#
# Then it keeps running until Ctrl-C (SIGINT) or SIGTERM, and stops what it
# started, by PID. With DEMO_ONESHOT=1, or when stdin is not a terminal, it
# stops right after the demonstration (CI). DEMO_KEEP=1 keeps the directory
# with the logs. DEMO_CLIENT changes the client address (127.0.0.0/8 only).
# Everything listens on loopback only.
set -eu

BIN=${1:?usage: scripts/demo.sh path/to/mailedge}
case $BIN in /*) ;; *) BIN=$(pwd)/$BIN ;; esac
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=/usr/bin/python3
stack() { "$PY" "$ROOT/tests/interop/mailstack.py" "$@"; }
CLIENT=${DEMO_CLIENT:-127.0.0.77}
CONF=$ROOT/examples/demo.conf

if [ -t 1 ]; then B=$(printf '\033[1m'); N=$(printf '\033[0m'); else B=; N=; fi
say() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
die() { echo "demo: $*" >&2; exit 1; }
indent() { sed 's/^/    /'; }

case $CLIENT in 127.*) ;; *) die "DEMO_CLIENT must be a 127.0.0.0/8 address" ;; esac
[ "$(id -u)" = 0 ] || die "run as root: it installs Debian packages and starts Postfix and Dovecot"
[ -x "$BIN" ] || die "no mailedge binary at $BIN (run make)"

if [ ! -x "$PY" ]; then
    echo "demo: installing python3"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 >/dev/null
fi
stack install >/dev/null || die "could not install the packages"

WORK=$(mktemp -d /tmp/mailedge-demo.XXXXXX)
chmod 755 "$WORK"       # Postfix, Dovecot and the mail user traverse it
ME_PID=
TAIL_PID=
STACK_STARTED=

stop_pid() {    # stop_pid PID: SIGTERM, wait up to ~10 s, then SIGKILL
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null || return 0
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

cleanup() {
    st=$?
    trap - EXIT INT TERM
    say "stopping"
    stop_pid "$TAIL_PID"
    if [ -n "$ME_PID" ]; then
        stop_pid "$ME_PID"
        grep -E 'event=(drain|exit)' "$WORK/mailedge.log" | indent || true
    fi
    if [ -n "$STACK_STARTED" ]; then
        stack down --dir "$WORK/stack" >/dev/null || true
        echo "    Postfix and Dovecot stopped"
    fi
    if [ "${DEMO_KEEP:-0}" = 1 ]; then
        echo "    logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$st"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Postfix and Dovecot ----------------------------------------------------

say "starting Postfix and Dovecot on loopback (in $WORK/stack)"
STACK_STARTED=1
stack up --dir "$WORK/stack" >"$WORK/stack.json" || die "the mail stack did not start"
info() { $PY -c 'import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d = d[k]
print(d)' "$WORK/stack.json" "$1"; }
PF_LOG=$(info postfix_log)
DC_LOG=$(info dovecot_log)
DEMO_POSTSCREEN_PORT=$(info ports.postscreen)
DEMO_SUBMISSION_PORT=$(info ports.submission)
DEMO_IMAP_PORT=$(info ports.imap_proxy)
DEMO_POP3_PORT=$(info ports.pop3_proxy)
export DEMO_POSTSCREEN_PORT DEMO_SUBMISSION_PORT DEMO_IMAP_PORT DEMO_POP3_PORT
echo "    Postfix postscreen 127.0.0.1:$DEMO_POSTSCREEN_PORT, submission 127.0.0.1:$DEMO_SUBMISSION_PORT (PROXY required)"
echo "    Dovecot IMAP 127.0.0.1:$DEMO_IMAP_PORT, POP3 127.0.0.1:$DEMO_POP3_PORT (haproxy = yes)"
echo "    user test, password secret, address test@example.test"

# --- mailedge -----------------------------------------------------------------

# shellcheck disable=SC2046
set -- $(stack free-ports --count 4)
[ $# -eq 4 ] || die "could not find free ports"
export DEMO_EDGE_SMTP_PORT="$1" DEMO_EDGE_SUBMISSION_PORT="$2" DEMO_EDGE_IMAP_PORT="$3" DEMO_EDGE_POP3_PORT="$4"

say "starting mailedge -c examples/demo.conf"
"$BIN" -t -c "$CONF" | indent || die "examples/demo.conf does not check"
"$BIN" -c "$CONF" </dev/null 2>"$WORK/mailedge.log" &
ME_PID=$!
i=0
until grep -q 'event=ready' "$WORK/mailedge.log" 2>/dev/null; do
    kill -0 "$ME_PID" 2>/dev/null || { cat "$WORK/mailedge.log" >&2; ME_PID=; die "mailedge exited"; }
    i=$((i + 1))
    [ $i -le 200 ] || { cat "$WORK/mailedge.log" >&2; die "mailedge not ready after 20 s"; }
    sleep 0.1
done
grep -E 'event=(listen|ready)' "$WORK/mailedge.log" | indent

# --- a message in through mailedge, and back out ----------------------------

MARK="demo-$(date +%s)-$$"
say "swaks from $CLIENT -> mailedge 127.0.0.1:$DEMO_EDGE_SMTP_PORT -> postscreen"
if ! swaks --server 127.0.0.1 --port "$DEMO_EDGE_SMTP_PORT" --local-interface "$CLIENT" \
        --to test@example.test --from demo@client.test --helo client.test \
        --header "Subject: mailedge demo $MARK" \
        --body "Sent through mailedge from $CLIENT." >"$WORK/swaks.out" 2>&1; then
    indent <"$WORK/swaks.out"
    die "swaks failed"
fi
grep -E '^(<-|->|===)' "$WORK/swaks.out" | grep -vE '^ -> (Date|To|From|Subject|Message-Id|X-Mailer|$)' \
    | head -n 30 | indent

say "IMAP from $CLIENT -> mailedge 127.0.0.1:$DEMO_EDGE_IMAP_PORT -> Dovecot: LOGIN, SELECT, FETCH"
$PY - "$WORK/stack" "$DEMO_EDGE_IMAP_PORT" "$CLIENT" "$MARK" <<'EOF' | indent
import sys
sys.path.insert(0, "tests/interop")
import mailstack
from interop_kit import imap_fetch_marker
stack_dir, port, client, mark = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
mailstack.MailStack.from_state(stack_dir).wait_message(mark, timeout=20)
(ip, sport), msg = imap_fetch_marker("127.0.0.1", port, client, mark)
print("connected from %s:%d, fetched %d bytes; its headers:" % (ip, sport, len(msg)))
head = msg.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
for line in head.splitlines():
    print("  " + line)
EOF

# --- what the servers saw -----------------------------------------------------

# mailedge logs a session when it ends: wait for both (bounded)
i=0
while [ "$(grep -c "event=session.*client=$CLIENT:" "$WORK/mailedge.log" || true)" -lt 2 ] && [ $i -lt 100 ]; do
    sleep 0.1; i=$((i + 1))
done

FAILED=0
show() {    # show TITLE FILE STRING: the lines of FILE that contain STRING
    say "$1"
    if grep -F -- "$3" "$2" >"$WORK/show.out"; then
        indent <"$WORK/show.out"
    else
        echo "    NOT FOUND: no line with $3"
        FAILED=1
    fi
}
show "Postfix's own log ($PF_LOG): the client is $CLIENT, not mailedge" "$PF_LOG" "[$CLIENT]"
show "Dovecot's own log ($DC_LOG)" "$DC_LOG" "rip=$CLIENT,"
show "mailedge's session lines" "$WORK/mailedge.log" "event=session"

if [ "${DEMO_ONESHOT:-0}" = 1 ] || [ ! -t 0 ]; then
    [ "$FAILED" = 0 ] || die "the real client address is missing from a log above"
    exit 0
fi

say "running: try it yourself (any 127.x.y.z works as a client address)"
cat <<EOT
    swaks --server 127.0.0.1 --port $DEMO_EDGE_SMTP_PORT --local-interface 127.0.0.88 --to test@example.test
    swaks --server 127.0.0.1 --port $DEMO_EDGE_SUBMISSION_PORT --local-interface 127.0.0.89 --to test@example.test
    IMAP 127.0.0.1:$DEMO_EDGE_IMAP_PORT, POP3 127.0.0.1:$DEMO_EDGE_POP3_PORT (user test, password secret)
    tail -f $PF_LOG $DC_LOG
    mailedge's new session lines follow below. Ctrl-C stops mailedge, Postfix and Dovecot.
EOT
tail -n 0 -f "$WORK/mailedge.log" &
TAIL_PID=$!
while :; do
    kill -0 "$ME_PID" 2>/dev/null || { ME_PID=; die "mailedge exited unexpectedly"; }
    sleep 1
done
