#!/bin/sh
# make lint: static checks.
#  - src/ has one folder per layer, lowest first below; a file includes
#    headers of its own layer and of the layers below only, and modules do
#    not include each other in a cycle (scripts/includes.py).
#  - Pure modules (every file of codecs/ and conf/, and those listed) touch
#    no socket and no epoll.
#  - cppcheck and clang-tidy, when installed.
set -eu
status=0

# base    util, addresses, log, the loop, sockets, relaying bytes
# codecs  pure parsers and encoders of what comes from outside
# conf    the configuration language: text to an immutable struct conf
# edge    the proxy: listeners, sessions, backends, checks, DNS, reload
# ops     running it: admin endpoint, service manager, privileges
# cmd     the commands: mailedge, mailedge probe, mailedge roundtrip
layers="base codecs conf edge ops cmd"
${PYTHON:-/usr/bin/python3} scripts/includes.py --layers "$layers" || status=1

inc=$(for d in src/*/; do printf ' -I%s' "${d%/}"; done)
pure="$(ls src/codecs/*.c src/conf/*.c) src/base/util.c src/base/cidr.c src/base/addr.c
      src/edge/metrics.c src/edge/abuse.c src/edge/dominant.c src/edge/fdbudget.c src/edge/banset.c"
for f in $pure; do
    if grep -nE '#include <sys/(epoll|signalfd)\.h>|\b(accept4?|connect|bind|listen|epoll_[a-z]+|splice|recv|send)\(' "$f"; then
        echo "lint: $f is a pure module but does I/O" >&2
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
