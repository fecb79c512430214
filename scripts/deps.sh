#!/bin/sh
# Installs the Debian packages a make target needs, only when missing.
# Usage: scripts/deps.sh build|test|fuzz|valgrind|bench|demo|image|deb|prometheus
set -eu
want="gcc make pkg-config libsystemd-dev libcurl4-openssl-dev libmicrohttpd-dev libc-ares-dev libssl-dev libjson-c-dev"
case "${1:-build}" in
    test)  want="$want libcmocka-dev python3-pytest clang libclang-rt-14-dev socat openssl curl nginx-light redis-server postgresql systemd iproute2 python3-yaml crowdsec" ;;
    valgrind) want="$want libcmocka-dev python3-pytest clang socat openssl valgrind" ;;
    fuzz)  want="$want clang libclang-rt-14-dev" ;;
    bench) want="$want haproxy nginx-light libnginx-mod-stream" ;;
    demo)  want="$want socat" ;;
    image) want="$want python3-pytest podman runc mmdebstrap uidmap" ;;
    deb)   want="$want debhelper lintian dpkg-dev fakeroot libcmocka-dev" ;;
    prometheus) want="$want python3-pytest python3-yaml prometheus" ;;
esac
missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing Debian packages:$missing (run as root, or install them)" >&2
    exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# Packaged daemons (nginx, redis, postgresql) must not start on install:
# tests run their own copies on their own ports. policy-rc.d says no to
# every service start while we install, and goes away afterwards.
policy=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
    trap '[ -n "$made_policy" ] && rm -f "$policy"' EXIT
fi
# crowdsec (tests/integration/crowdsec.py runs its Local API alone): a
# placeholder online API credentials file, not YAML, makes its post-install
# skip registering with CrowdSec's online API (no network here).
case " $missing " in
*" crowdsec "*)
    mkdir -p /etc/crowdsec
    [ -e /etc/crowdsec/online_api_credentials.yaml ] ||
        echo '# none: no online API' > /etc/crowdsec/online_api_credentials.yaml ;;
esac
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
