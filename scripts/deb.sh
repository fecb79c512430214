#!/bin/sh
# Builds the Debian package (debian/) from a copy of the tree, runs lintian
# (no errors allowed), installs it on this machine, checks it, and purges
# it. Usage: scripts/deb.sh build|test       (make deb, make deb-test)
# As root for `test` (dpkg -i); the build itself needs no root.
set -eu
cd "$(dirname "$0")/.."
top=$PWD
work=$top/build/deb
rm -rf "$work"
mkdir -p "$work/src"
# The tracked and new files, not build/: dpkg-buildpackage cleans the tree.
git ls-files -z --cached --others --exclude-standard |
    (cd "$top" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) |
    tar --null -T - -cf - | tar -xf - -C "$work/src"

echo "  DEB     dpkg-buildpackage -b"
(cd "$work/src" && DEB_BUILD_OPTIONS="parallel=$(nproc)" dpkg-buildpackage -b -us -uc >"$work/build.log" 2>&1) ||
    { tail -n 40 "$work/build.log"; exit 1; }
changes=$(ls "$work"/mailedge_*.changes)
deb=$(ls "$work"/mailedge_*.deb)
echo "  LINTIAN $(basename "$deb")"
lintian --fail-on error --tag-display-limit 0 "$changes" | tee "$work/lintian.log"

[ "${1:-build}" = test ] || exit 0

fail() { echo "deb-test: $*" >&2; exit 1; }
if dpkg-query -W -f='${Status}' mailedge 2>/dev/null | grep -q "ok installed"; then
    fail "a mailedge package is installed already; not touching it"
fi
had_user=""
getent passwd mailedge >/dev/null && had_user=1
echo "  DPKG    -i $(basename "$deb")"
dpkg -i "$deb" >/dev/null
dpkg-query -L mailedge > "$work/files"

unit=$(grep '/systemd/system/mailedge.service$' "$work/files") || fail "no unit installed"
for exe in $(sed -n 's/^Exec[A-Za-z]*=-\{0,1\}\([^ ]*\).*/\1/p' "$unit"); do
    [ -x "$exe" ] || fail "$unit runs $exe, which is not there"
done
user=$(sed -n 's/^User=//p' "$unit")
[ -n "$user" ] && getent passwd "$user" >/dev/null || fail "the unit's user '$user' does not exist"
conf=$(sed -n 's/^ConditionPathExists=//p' "$unit")
[ "$conf" = /etc/mailedge/mailedge.conf ] || fail "the unit starts without a configuration"
[ -d /etc/mailedge ] && [ ! -e "$conf" ] || fail "a fresh install must leave $conf to the operator"
[ -s /usr/share/man/man8/mailedge.8.gz ] && [ -s /usr/share/man/man5/mailedge.conf.5.gz ] ||
    fail "man pages missing"
example=/usr/share/doc/mailedge/examples/mailedge.conf
MAILBOX_IP=10.0.20.5 mailedge -t -c "$example" || fail "mailedge -t fails on $example"
if command -v systemd-analyze >/dev/null; then
    out=$(systemd-analyze verify --man=no "$unit" 2>&1) || true
    [ -z "$out" ] || fail "systemd-analyze verify $unit: $out"
fi
echo "  OK      unit, user, binary, man pages, example config"

echo "  DPKG    --purge mailedge"
dpkg --purge mailedge >/dev/null
left=""
while read -r f; do
    case "$f" in /usr|/usr/*/|/etc|/.) continue ;; esac
    [ -d "$f" ] && [ "$(ls -A "$f" 2>/dev/null)" ] && continue # shared directories
    [ -e "$f" ] || [ -L "$f" ] && left="$left $f"
done < "$work/files"
for f in /etc/mailedge /var/log/mailedge /etc/systemd/system/multi-user.target.wants/mailedge.service; do
    [ -e "$f" ] || [ -L "$f" ] && left="$left $f"
done
[ -z "$left" ] || fail "left after purge:$left"
# The package keeps its system user on purge, as Debian's do; this test
# leaves the machine as it found it.
[ -n "$had_user" ] || deluser --system --quiet mailedge >/dev/null 2>&1 || true
echo "  OK      purged, nothing left"
