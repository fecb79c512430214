#!/bin/sh
# make lint: static checks. Pure modules must not touch sockets or epoll.
set -eu
status=0
inc=$(for d in src/*/; do printf ' -I%s' "${d%/}"; done)
pure="base/util edge/fdbudget base/cidr base/addr codecs/proxyproto codecs/tlshello conf/conf_lex conf/conf conf/conf_global conf/conf_backend conf/conf_listener conf/conf_abuse codecs/mailreply codecs/probeurl edge/metrics codecs/roundtrip_msg edge/abuse codecs/adminreq"
for m in $pure; do
    if grep -nE '#include <sys/(epoll|signalfd)\.h>|\b(accept4?|connect|bind|listen|epoll_[a-z]+|splice|recv|send)\(' "src/$m.c"; then
        echo "lint: src/$m.c is a pure module but does I/O" >&2
        status=1
    fi
done
if command -v cppcheck >/dev/null 2>&1; then
    cppcheck -q --std=c11 --enable=warning,performance,portability --error-exitcode=1 \
        --inline-suppr -D_GNU_SOURCE $inc src || status=1
fi
if command -v clang-tidy >/dev/null 2>&1; then
    clang-tidy -quiet --warnings-as-errors='*' \
        --checks='-*,bugprone-*,clang-analyzer-*,-bugprone-easily-swappable-parameters,-bugprone-reserved-identifier,-bugprone-narrowing-conversions,-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling,-clang-analyzer-valist.Uninitialized' \
        src/*/*.c -- -std=c11 -D_GNU_SOURCE $inc -DMAILEDGE_VERSION='"lint"' 2>/dev/null || status=1
fi
exit $status
