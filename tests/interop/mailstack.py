#!/usr/bin/python3
"""A throwaway Postfix + Dovecot (+ HAProxy helper) on loopback, for mailedge's
interop tests and for `make demo`. Standard library only.

Everything lives under one temporary directory; nothing under /etc is changed
and no system service is touched. Daemons are started without systemd and
stopped by the PIDs recorded at start-up (Postfix: queue_directory/pid/
master.pid; Dovecot: base_dir/master.pid; HAProxy: the Popen child).

Postfix 3.7 (one instance, `postfix -c DIR`):
  postscreen    127.0.0.1:P   postscreen_upstream_proxy_protocol = haproxy
  postscreen_stock 127.0.0.1:P the same with Postfix's default greet wait (6 s)
                              and no cache (postscreen_cache_map empty), as
                              in the field: every client waits the 6 s
  submission    127.0.0.1:P   smtpd_upstream_proxy_protocol = haproxy
  submission6   [::1]:P       the same on IPv6 loopback
  plain         127.0.0.1:P   smtpd without PROXY
  victim        127.0.0.1:P   a second PROXY smtpd, only for the probe test that
                              crashes/throttles smtpd (so no other port suffers)
  subauth       127.0.0.1:P   submission as in production: STARTTLS required,
                              AUTH (Dovecot SASL) required, no PROXY
  subauth_proxy 127.0.0.1:P   the same behind smtpd_upstream_proxy_protocol
  smtps         127.0.0.1:P   implicit TLS (wrapper mode), AUTH required
  logs to maillog_file (postlogd), delivers test@example.test to a Maildir
  (virtual(8), uid/gid of the Debian `mail` user).
Dovecot 2.3 (`dovecot -c FILE`):
  imap_proxy / pop3_proxy  127.0.0.1 and ::1, haproxy = yes,
                           haproxy_trusted_networks = 127.0.0.0/8 ::1
  imap / pop3              127.0.0.1, plain (STARTTLS offered, not required)
  imaps                    127.0.0.1, implicit TLS
  user test / password "secret", the same Maildir; an auth socket for
  Postfix's SASL.
TLS: a self-signed certificate made with openssl at start-up (tls/cert.pem,
  CN and subjectAltName mx.example.test, localhost, 127.0.0.1, ::1);
  `tls_cert` in info() is the file to give clients as their CA.

CLI (what scripts/demo.sh uses):
  /usr/bin/python3 tests/interop/mailstack.py install
  /usr/bin/python3 tests/interop/mailstack.py up [--dir D]   # prints JSON, leaves it running
  /usr/bin/python3 tests/interop/mailstack.py down --dir D
  /usr/bin/python3 tests/interop/mailstack.py run [--dir D]  # up, wait for SIGINT/SIGTERM, down
  /usr/bin/python3 tests/interop/mailstack.py free-ports --count N [--ip 127.0.0.1]
"""

import argparse
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

# --------------------------------------------------------------------------
# constants

PACKAGES = ["postfix", "dovecot-imapd", "dovecot-pop3d", "swaks", "haproxy",
            "libio-socket-inet6-perl", "openssl"]  # swaks needs libio-socket-inet6-perl for IPv6
DOMAIN = "example.test"
HOSTNAME = "mx.example.test"
USER = "test"
PASSWORD = "secret"
ADDRESS = USER + "@" + DOMAIN
MAIL_UID_NAME = "mail"          # Debian base-passwd: uid 8, gid 8
STATE_FILE = "mailstack.json"

SAN = os.environ.get("MAILEDGE_SAN", "0") not in ("", "0")
SCALE = 3.0 if SAN else 1.0


class StackError(RuntimeError):
    pass


def log(msg):
    print("mailstack: " + msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# packages


def _installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return r.returncode == 0 and "install ok installed" in r.stdout


def missing_packages(packages=PACKAGES):
    return [p for p in packages if not _installed(p)]


def ensure_packages(packages=PACKAGES, quiet=True):
    """Installs the missing Debian packages (root only). Returns the list that
    was missing. Raises StackError when packages are missing and we are not
    root, or apt-get fails.

    While apt-get runs, a temporary /usr/sbin/policy-rc.d (exit 101) keeps
    the packages' maintainer scripts from starting the system-wide Postfix,
    Dovecot and HAProxy services; it is only created when none exists, and
    removed afterwards."""
    missing = missing_packages(packages)
    if not missing:
        return []
    if os.geteuid() != 0:
        raise StackError("missing Debian packages: %s (run as root, or: apt-get install %s)"
                         % (" ".join(missing), " ".join(missing)))
    log("installing " + " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sel = ("postfix postfix/main_mailer_type select No configuration\n"
           "postfix postfix/mailname string %s\n" % HOSTNAME)
    subprocess.run(["debconf-set-selections"], input=sel, text=True, check=True, env=env)
    policy = "/usr/sbin/policy-rc.d"
    made_policy = False
    if not os.path.exists(policy):
        with open(policy, "w") as f:
            f.write("#!/bin/sh\n# temporary, from mailedge tests/interop/mailstack.py\nexit 101\n")
        os.chmod(policy, 0o755)
        made_policy = True
    out = subprocess.DEVNULL if quiet else None
    try:
        for attempt in range(2):
            subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=out, check=False)
            r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                                "-o", "Dpkg::Options::=--force-confdef",
                                "-o", "Dpkg::Options::=--force-confold"] + missing,
                               env=env, stdout=out)
            if r.returncode == 0:
                break
        else:
            raise StackError("apt-get install %s failed" % " ".join(missing))
    finally:
        if made_policy:
            os.unlink(policy)
    still = missing_packages(packages)
    if still:
        raise StackError("still missing after apt-get: " + " ".join(still))
    return missing


# --------------------------------------------------------------------------
# small helpers


def tool(name):
    """Absolute path of a Debian tool: root's PATH may lack /usr/sbin."""
    for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return shutil.which(name) or name


def check_loopback(ip):
    a = ipaddress.ip_address(ip)
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    if not a.is_loopback:
        raise StackError("refusing non-loopback address %s" % ip)


def fmt_addr(ip, port):
    return "[%s]:%d" % (ip, port) if ":" in ip else "%s:%d" % (ip, port)


def free_port(ip="127.0.0.1", avoid=()):
    """A TCP port that is free on ip right now (bind port 0, release)."""
    check_loopback(ip)
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    for _ in range(50):
        s = socket.socket(fam, socket.SOCK_STREAM)
        try:
            s.bind((ip, 0))
            p = s.getsockname()[1]
        finally:
            s.close()
        if p not in avoid:
            return p
    raise StackError("no free port on %s" % ip)


def free_port_both(avoid=()):
    """A port free on both 127.0.0.1 and ::1."""
    for _ in range(50):
        p = free_port("127.0.0.1", avoid)
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.bind(("::1", p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise StackError("no port free on both 127.0.0.1 and ::1")


def wait_until(pred, timeout, what, interval=0.05):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            raise StackError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def _proc_net_addr(hexaddr):
    raw = bytes.fromhex(hexaddr)
    # /proc/net/tcp{,6} prints each 32-bit word in host (little-endian) order
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)


def listening(ip, port):
    """True when a TCP socket listens on ip:port (from /proc/net/tcp{,6}:
    unlike a test connection, it leaves no trace in the servers' logs)."""
    want = ipaddress.ip_address(ip)
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 4 or fields[3] != "0A":
                continue
            addr, _, hport = fields[1].partition(":")
            if int(hport, 16) != port:
                continue
            a = ipaddress.ip_address(_proc_net_addr(addr))
            if a == want or a.is_unspecified:
                return True
    return False


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as dead
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def pid_environ_has(pid, needle):
    """True when /proc/PID/environ or cmdline contains needle: how we make sure
    a PID read from a file is still the process we started."""
    for name in ("environ", "cmdline"):
        try:
            with open("/proc/%d/%s" % (pid, name), "rb") as f:
                if needle.encode() in f.read():
                    return True
        except OSError:
            pass
    return False


def run_to_file(argv, outpath, env=None, timeout=60):
    """Runs a command that may leave a daemon behind, with stdout/stderr in a
    file; returns (exit status, output)."""
    with open(outpath, "wb") as out:
        try:
            rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = -1
    with open(outpath, "rb") as f:
        return rc, f.read().decode("utf-8", "replace")


def read_pidfile(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def kill_pid(pid, marker, timeout=10.0):
    """SIGTERM to pid (only if it still carries marker), wait, then SIGKILL."""
    if pid is None or not pid_alive(pid):
        return
    if marker and not pid_environ_has(pid, marker):
        log("pid %d no longer looks like ours (%s); not signalling it" % (pid, marker))
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    log("pid %d ignored SIGTERM for %.0fs; SIGKILL" % (pid, timeout))
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class LogFile:
    """A growing text log read by offset: mark() then since(mark)."""

    def __init__(self, path):
        self.path = path

    def size(self):
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def mark(self):
        return self.size()

    def text(self, since=0):
        try:
            with open(self.path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def lines(self, since=0):
        return self.text(since).splitlines()

    def grep(self, pattern, since=0):
        rx = re.compile(pattern)
        return [ln for ln in self.lines(since) if rx.search(ln)]

    def wait_for(self, pattern, since=0, timeout=10.0, count=1):
        """Polls until at least count lines match pattern (a regex); returns them."""
        timeout *= SCALE
        end = time.monotonic() + timeout
        while True:
            got = self.grep(pattern, since)
            if len(got) >= count:
                return got
            if time.monotonic() >= end:
                tail = "\n".join(self.lines(since)[-40:])
                raise AssertionError("%s: no %d line(s) matching %r within %.1fs; log since mark:\n%s"
                                     % (self.path, count, pattern, timeout, tail))
            time.sleep(0.05)


# --------------------------------------------------------------------------
# the stack


MASTER_CF = """\
# mailedge interop Postfix instance (generated). chroot is off everywhere.
# service        type  private unpriv chroot wakeup maxproc command
{ps_addr}  inet  n       -      n      -      1       postscreen
{ps_stock_addr}  inet  n       -      n      -      1       postscreen
  -o syslog_name=postfix/postscreen_stock
  -o postscreen_greet_wait=6s
  -o postscreen_cache_map=
smtpd            pass  -       -      n      -      -       smtpd
{sub_addr}  inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_upstream_proxy_protocol=haproxy
{sub6_addr}  inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix/submission6
  -o smtpd_upstream_proxy_protocol=haproxy
{plain_addr}  inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix/plain
{victim_addr}  inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix/victim
  -o smtpd_upstream_proxy_protocol=haproxy
{subauth_addr}  inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix/subauth
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
{subauth_proxy_addr}  inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix/subauth_proxy
  -o smtpd_upstream_proxy_protocol=haproxy
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
{smtps_addr}  inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
tlsmgr           unix  -       -      n      1000?  1       tlsmgr
pickup           unix  n       -      n      60     1       pickup
cleanup          unix  n       -      n      -      0       cleanup
qmgr             unix  n       -      n      300    1       qmgr
rewrite          unix  -       -      n      -      -       trivial-rewrite
bounce           unix  -       -      n      -      0       bounce
defer            unix  -       -      n      -      0       bounce
trace            unix  -       -      n      -      0       bounce
verify           unix  -       -      n      -      1       verify
flush            unix  n       -      n      1000?  0       flush
proxymap         unix  -       -      n      -      -       proxymap
proxywrite       unix  -       -      n      -      1       proxymap
smtp             unix  -       -      n      -      -       smtp
relay            unix  -       -      n      -      -       smtp
showq            unix  n       -      n      -      -       showq
error            unix  -       -      n      -      -       error
retry            unix  -       -      n      -      -       error
discard          unix  -       -      n      -      -       discard
local            unix  -       n      n      -      -       local
virtual          unix  -       n      n      -      -       virtual
lmtp             unix  -       -      n      -      -       lmtp
anvil            unix  -       -      n      -      1       anvil
scache           unix  -       -      n      -      1       scache
postlog          unix-dgram n  -      n      -      1       postlogd
"""

MAIN_CF = """\
# mailedge interop Postfix instance (generated)
compatibility_level = 3.6
queue_directory = {spool}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = {hostname}
mydomain = {domain}
myorigin = $myhostname
mydestination = localhost
inet_interfaces = loopback-only
inet_protocols = all
mynetworks = 127.0.0.0/8 [::1]/128
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_banner = $myhostname ESMTP mailedge-interop
smtpd_peername_lookup = no
smtpd_client_port_logging = yes
biff = no
alias_maps =
alias_database =
local_recipient_maps =
relayhost =
default_transport = error:outbound mail is disabled in this test instance
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {mailbase}
virtual_mailbox_maps = texthash:{etc}/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = {uid}
maillog_file = {maillog}
maillog_file_prefixes = {base}
postscreen_greet_wait = {greet_wait}
postscreen_dnsbl_sites =
# not permit_mynetworks: loopback clients must really be screened (PASS NEW)
postscreen_access_list =
postscreen_upstream_proxy_protocol = haproxy
postscreen_cache_map = btree:$data_directory/postscreen_cache
# TLS and SASL are only switched on by the subauth services (master.cf)
smtpd_tls_cert_file = {tls_cert}
smtpd_tls_key_file = {tls_key}
smtpd_sasl_type = dovecot
smtpd_sasl_path = {auth_socket}
"""

DOVECOT_CONF = """\
# mailedge interop Dovecot instance (generated; no include of /etc/dovecot)
instance_name = {instance}
base_dir = {run}
state_dir = {state}
log_path = {log}
protocols = imap pop3
listen = 127.0.0.1, ::1
ssl = yes
ssl_cert = <{tls_cert}
ssl_key = <{tls_key}
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{maildir}
haproxy_trusted_networks = 127.0.0.0/8 ::1
login_greeting = Dovecot ready (mailedge interop).
# Dovecot's default, plus the ports at the end (the tests match exact ports)
login_log_format_elements = user=<%u> method=%m rip=%r lip=%l mpid=%e %c session=<%{{session}}> rport=%{{rport}} lport=%{{lport}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {users}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imap_proxy {{
    address = 127.0.0.1, ::1
    port = {imap_proxy}
    haproxy = yes
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3_proxy {{
    address = 127.0.0.1, ::1
    port = {pop3_proxy}
    haproxy = yes
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service auth {{
  # Postfix's SASL (the subauth services)
  unix_listener auth-postfix {{
    mode = 0666
  }}
}}
"""


class MailStack:
    """Postfix + Dovecot in base_dir. Use up()/down(), or as a context manager.

    ports: dict with postscreen, submission, submission6 (on ::1), plain,
    victim, subauth, subauth_proxy, smtps, imap, imaps, imap_proxy, pop3,
    pop3_proxy. imap_proxy and pop3_proxy
    listen on 127.0.0.1 and ::1 with the same port."""

    def __init__(self, base_dir=None, greet_wait="1s", ports=None, extra_master_cf="",
                 extra_dovecot_conf=""):
        # extra_*: text appended to master.cf and dovecot.conf (settings under test)
        self.extra_master_cf = extra_master_cf
        self.extra_dovecot_conf = extra_dovecot_conf
        self.own_dir = base_dir is None
        if base_dir is None:
            # /tmp, not $TMPDIR: the postfix, dovecot and mail users must be
            # able to traverse every parent directory
            base_dir = tempfile.mkdtemp(prefix="mailedge-stack-", dir="/tmp")
        self.base = os.path.abspath(base_dir)
        self.greet_wait = greet_wait
        self.ports = dict(ports or {})
        self.pf_etc = os.path.join(self.base, "postfix", "etc")
        self.pf_spool = os.path.join(self.base, "postfix", "spool")
        self.pf_data = os.path.join(self.base, "postfix", "data")
        self.pf_log = os.path.join(self.base, "postfix", "maillog")
        self.dc_dir = os.path.join(self.base, "dovecot")
        self.dc_conf = os.path.join(self.dc_dir, "dovecot.conf")
        self.dc_run = os.path.join(self.dc_dir, "run")
        self.dc_log = os.path.join(self.dc_dir, "dovecot.log")
        self.auth_socket = os.path.join(self.dc_run, "auth-postfix")  # relative in dovecot.conf
        self.tls_dir = os.path.join(self.base, "tls")
        self.tls_cert = os.path.join(self.tls_dir, "cert.pem")
        self.tls_key = os.path.join(self.tls_dir, "key.pem")
        self.mailbase = os.path.join(self.base, "mail")
        self.maildir = os.path.join(self.mailbase, USER, "Maildir")
        self.postfix_log = LogFile(self.pf_log)
        self.dovecot_log = LogFile(self.dc_log)
        self.pids = {}
        self.started = False

    # ---- public

    def info(self):
        return {
            "dir": self.base,
            "ports": self.ports,
            "pids": self.pids,
            "postfix_config_directory": self.pf_etc,
            "postfix_log": self.pf_log,
            "dovecot_config": self.dc_conf,
            "dovecot_log": self.dc_log,
            "maildir": self.maildir,
            "tls_cert": self.tls_cert,
            "user": USER,
            "password": PASSWORD,
            "address": ADDRESS,
        }

    def up(self):
        for name in ("postfix", "postconf", "dovecot"):
            if not os.path.isabs(tool(name)):
                raise StackError("%s not found: run `mailstack.py install` as root" % name)
        if os.geteuid() != 0:
            raise StackError("the mail stack needs root (Postfix/Dovecot drop privileges themselves)")
        os.chmod(self.base, 0o755)  # mkdtemp makes 0700; postfix/dovecot/mail users traverse it
        self._choose_ports()
        self._write_state()         # early, so `down` can clean up a half-started stack
        try:
            self._make_maildir()
            self._make_cert()
            self._postfix_setup()
            self._postfix_start()
            self._dovecot_setup()
            self._dovecot_start()
            self._wait_ready()
        except BaseException:
            self.down(remove=False)
            raise
        self.started = True
        self._write_state()
        return self

    def down(self, remove=None):
        """Stops what up() started, by PID. remove: delete the directory
        (default: only when we created it ourselves)."""
        self._postfix_stop()
        self._dovecot_stop()
        self.started = False
        if remove is None:
            remove = self.own_dir
        if remove:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.down()

    @classmethod
    def from_state(cls, base_dir):
        with open(os.path.join(base_dir, STATE_FILE)) as f:
            st = json.load(f)
        s = cls(base_dir, ports=st.get("ports"))
        s.own_dir = False
        s.pids = {k: v for k, v in (st.get("pids") or {}).items()}
        return s

    # mail helpers

    def messages(self):
        """Paths of the delivered messages (Maildir new/ and cur/)."""
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir, sub)
            try:
                out.extend(os.path.join(d, n) for n in os.listdir(d))
            except OSError:
                pass
        return out

    def find_message(self, marker):
        for p in self.messages():
            try:
                with open(p, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if marker.encode() in data:
                return data
        return None

    def wait_message(self, marker, timeout=15.0):
        return wait_until(lambda: self.find_message(marker), timeout * SCALE,
                          "a message containing %r in %s" % (marker, self.maildir))

    def put_message(self, marker, subject=None, body=None):
        """Drops a message straight into the Maildir (for IMAP/POP3 tests
        that should not depend on SMTP)."""
        subject = subject or marker
        body = body or "Hello from the mailedge interop suite.\r\nmarker: %s\r\n" % marker
        msg = ("From: Interop <interop@client.test>\r\nTo: %s\r\nSubject: %s\r\n"
               "Date: %s\r\nMessage-ID: <%s@client.test>\r\n\r\n%s"
               % (ADDRESS, subject, time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
                  marker, body))
        name = "%d.M%dP%d.%s" % (time.time(), time.monotonic_ns() % 1000000, os.getpid(), "interop")
        tmp = os.path.join(self.maildir, "tmp", name)
        with open(tmp, "w", newline="") as f:
            f.write(msg)
        uid, gid = self._mail_ids()
        os.chown(tmp, uid, gid)
        os.rename(tmp, os.path.join(self.maildir, "new", name))
        return msg

    # ---- internals

    def _make_cert(self):
        """A self-signed certificate for Postfix's STARTTLS and Dovecot's TLS."""
        if os.path.exists(self.tls_cert) and os.path.exists(self.tls_key):
            return
        os.makedirs(self.tls_dir, exist_ok=True)
        os.chmod(self.tls_dir, 0o755)
        r = subprocess.run([tool("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
                            "-subj", "/CN=" + HOSTNAME, "-addext",
                            "subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1,IP:::1" % HOSTNAME,
                            "-keyout", self.tls_key, "-out", self.tls_cert],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise StackError("openssl req failed:\n" + r.stdout)
        os.chmod(self.tls_key, 0o600)
        os.chmod(self.tls_cert, 0o644)

    def _mail_ids(self):
        import pwd
        pw = pwd.getpwnam(MAIL_UID_NAME)
        return pw.pw_uid, pw.pw_gid

    def _choose_ports(self):
        used = set(self.ports.values())
        for name in ("postscreen", "postscreen_stock", "submission", "plain", "victim", "subauth", "subauth_proxy",
                     "smtps", "imap", "imaps", "pop3"):
            if name not in self.ports:
                self.ports[name] = free_port("127.0.0.1", used)
                used.add(self.ports[name])
        if "submission6" not in self.ports:
            self.ports["submission6"] = free_port("::1", used)
            used.add(self.ports["submission6"])
        for name in ("imap_proxy", "pop3_proxy"):
            if name not in self.ports:
                self.ports[name] = free_port_both(used)
                used.add(self.ports[name])

    def _write_state(self):
        st = self.info()
        st["created_by"] = os.getpid()
        tmp = os.path.join(self.base, STATE_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(st, f, indent=2)
        os.rename(tmp, os.path.join(self.base, STATE_FILE))

    def _make_maildir(self):
        uid, gid = self._mail_ids()
        for p in (self.mailbase, os.path.join(self.mailbase, USER)):
            os.makedirs(p, exist_ok=True)
            os.chown(p, uid, gid)
            os.chmod(p, 0o755)
        for sub in ("", "new", "cur", "tmp"):
            p = os.path.join(self.maildir, sub)
            os.makedirs(p, exist_ok=True)
            os.chown(p, uid, gid)
            os.chmod(p, 0o700)

    # postfix

    def _postfix_env(self):
        env = dict(os.environ)
        env["MAIL_CONFIG"] = self.pf_etc
        return env

    def _postfix_setup(self):
        uid, gid = self._mail_ids()
        for d in (self.pf_etc, self.pf_spool):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        os.makedirs(self.pf_data, exist_ok=True)
        shutil.chown(self.pf_data, "postfix", "postfix")
        os.chmod(self.pf_data, 0o700)
        p = self.ports
        with open(os.path.join(self.pf_etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(
                ps_addr=fmt_addr("127.0.0.1", p["postscreen"]),
                ps_stock_addr=fmt_addr("127.0.0.1", p["postscreen_stock"]),
                sub_addr=fmt_addr("127.0.0.1", p["submission"]),
                sub6_addr=fmt_addr("::1", p["submission6"]),
                plain_addr=fmt_addr("127.0.0.1", p["plain"]),
                victim_addr=fmt_addr("127.0.0.1", p["victim"]),
                subauth_addr=fmt_addr("127.0.0.1", p["subauth"]),
                subauth_proxy_addr=fmt_addr("127.0.0.1", p["subauth_proxy"]),
                smtps_addr=fmt_addr("127.0.0.1", p["smtps"])) + self.extra_master_cf)
        with open(os.path.join(self.pf_etc, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(
                spool=self.pf_spool, data=self.pf_data, hostname=HOSTNAME, domain=DOMAIN,
                mailbase=self.mailbase, etc=self.pf_etc, uid=uid, gid=gid,
                maillog=self.pf_log, base=self.base, greet_wait=self.greet_wait,
                tls_cert=self.tls_cert, tls_key=self.tls_key, auth_socket=self.auth_socket))
        with open(os.path.join(self.pf_etc, "vmailbox"), "w") as f:
            f.write("%s %s/Maildir/\n" % (ADDRESS, USER))
        r = subprocess.run([tool("postfix"), "-c", self.pf_etc, "check"], env=self._postfix_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise StackError("postfix check failed:\n" + r.stdout + self.postfix_log.text())

    def _postfix_pidfile(self):
        return os.path.join(self.pf_spool, "pid", "master.pid")

    def _postfix_start(self):
        r = run_to_file([tool("postfix"), "-c", self.pf_etc, "start"],
                        os.path.join(self.base, "postfix", "start.out"), env=self._postfix_env())
        if r[0] != 0:
            raise StackError("postfix start failed:\n" + r[1] + self.postfix_log.text())

        def master():
            pid = read_pidfile(self._postfix_pidfile())
            return pid if pid and pid_alive(pid) else None
        pid = wait_until(master, 15 * SCALE, "postfix master.pid")
        self.pids["postfix"] = pid
        self._write_state()

    def _postfix_stop(self):
        pid = self.pids.get("postfix") or read_pidfile(self._postfix_pidfile())
        if not pid or not pid_alive(pid):
            return
        if not pid_environ_has(pid, self.pf_etc):
            log("postfix pid %d does not belong to %s; leaving it alone" % (pid, self.pf_etc))
            return
        # `postfix stop` signals exactly the master in our pid file
        subprocess.run([tool("postfix"), "-c", self.pf_etc, "stop"], env=self._postfix_env(),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        end = time.monotonic() + 15
        while pid_alive(pid) and time.monotonic() < end:
            time.sleep(0.05)
        if pid_alive(pid):
            kill_pid(pid, self.pf_etc)
        # master's children leave on their own once master is gone (its status
        # pipe closes); wait for ours to go, bounded.
        end = time.monotonic() + 10
        while self._postfix_children() and time.monotonic() < end:
            time.sleep(0.1)

    def _postfix_children(self):
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit() and pid_environ_has(int(d), "MAIL_CONFIG=" + self.pf_etc):
                out.append(int(d))
        return [p for p in out if pid_alive(p)]

    # dovecot

    def _dovecot_setup(self):
        uid, gid = self._mail_ids()
        for d in (self.dc_dir, os.path.join(self.dc_dir, "state")):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        users = os.path.join(self.dc_dir, "users")
        with open(users, "w") as f:
            f.write("%s:{PLAIN}%s:%d:%d::%s::\n" % (USER, PASSWORD, uid, gid,
                                                    os.path.join(self.mailbase, USER)))
        os.chmod(users, 0o644)
        p = self.ports
        with open(self.dc_conf, "w") as f:
            f.write(DOVECOT_CONF.format(
                instance="mailedge-interop-%d" % os.getpid(), run=self.dc_run,
                state=os.path.join(self.dc_dir, "state"), log=self.dc_log, uid=uid, gid=gid,
                maildir=self.maildir, users=users, imap=p["imap"], imap_proxy=p["imap_proxy"],
                pop3=p["pop3"], pop3_proxy=p["pop3_proxy"], imaps=p["imaps"],
                tls_cert=self.tls_cert, tls_key=self.tls_key, auth_socket=self.auth_socket)
                + self.extra_dovecot_conf)

    def _dovecot_pidfile(self):
        return os.path.join(self.dc_run, "master.pid")

    def _dovecot_start(self):
        # The daemon keeps the stdio it inherited: a file, not a pipe (a pipe
        # would never reach EOF while dovecot runs).
        r = run_to_file([tool("dovecot"), "-c", self.dc_conf], os.path.join(self.dc_dir, "start.out"))
        if r[0] != 0:
            raise StackError("dovecot failed to start:\n" + r[1] + self.dovecot_log.text())

        def master():
            pid = read_pidfile(self._dovecot_pidfile())
            return pid if pid and pid_alive(pid) else None
        self.pids["dovecot"] = wait_until(master, 15 * SCALE, "dovecot master.pid")
        self._write_state()

    def _dovecot_stop(self):
        pid = self.pids.get("dovecot") or read_pidfile(self._dovecot_pidfile())
        if pid and pid_alive(pid):
            # dovecot's cmdline carries `-c <our conf>`
            kill_pid(pid, self.dc_conf, timeout=15)

    def _wait_ready(self):
        p = self.ports
        checks = [("127.0.0.1", p[n]) for n in ("postscreen", "postscreen_stock", "submission",
                                                "plain", "victim",
                                                "subauth", "subauth_proxy", "smtps", "imap",
                                                "imaps",
                                                "imap_proxy", "pop3", "pop3_proxy")]
        checks += [("::1", p["submission6"]), ("::1", p["imap_proxy"]), ("::1", p["pop3_proxy"])]
        for ip, port in checks:
            wait_until(lambda: listening(ip, port), 20 * SCALE,
                       "a listener on %s" % fmt_addr(ip, port))


# --------------------------------------------------------------------------
# HAProxy (started per test, in the foreground, logging to a file)


class HAProxy:
    """haproxy -db -f CFG with stdout/stderr to DIR/haproxy.log. The config
    should contain `log stdout format raw daemon` (see global_section())."""

    BIN = "/usr/sbin/haproxy"

    def __init__(self, workdir, config_text, name="haproxy"):
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.cfg = os.path.join(workdir, name + ".cfg")
        self.logpath = os.path.join(workdir, name + ".log")
        self.log = LogFile(self.logpath)
        with open(self.cfg, "w") as f:
            f.write(config_text)
        self.proc = None

    @staticmethod
    def global_section():
        return ("global\n"
                "    log stdout format raw daemon\n"
                "    maxconn 200\n"
                "defaults\n"
                "    mode tcp\n"
                "    log global\n"
                "    timeout connect 5s\n"
                "    timeout client 60s\n"
                "    timeout server 60s\n")

    def check(self):
        r = subprocess.run([self.BIN, "-c", "-f", self.cfg], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise StackError("haproxy -c failed:\n" + r.stdout)

    def start(self, wait_for=()):
        self.check()
        out = open(self.logpath, "ab")
        try:
            self.proc = subprocess.Popen([self.BIN, "-db", "-f", self.cfg], stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            out.close()
        for ip, port in wait_for:
            # not a test connection: HAProxy would forward it down the chain
            wait_until(lambda: listening(ip, port) or self.proc.poll() is not None,
                       10 * SCALE, "haproxy on %s" % fmt_addr(ip, port))
            if self.proc.poll() is not None:
                raise StackError("haproxy exited (%s):\n%s" % (self.proc.returncode,
                                                                self.log.text()))
        return self

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()   # SIGTERM to this PID: hard stop, fine for tests
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


# --------------------------------------------------------------------------
# CLI


def _cmd_install(_args):
    missing = ensure_packages(quiet=False)
    print(json.dumps({"installed": missing}))


def _cmd_up(args):
    ensure_packages()
    d = args.dir
    if d:
        os.makedirs(d, exist_ok=True)
    st = MailStack(d, greet_wait=args.greet_wait)
    if d:
        st.own_dir = False
    st.up()
    print(json.dumps(st.info(), indent=2 if args.pretty else None), flush=True)
    return st


def _cmd_down(args):
    st = MailStack.from_state(args.dir)
    st.down(remove=args.remove)
    print(json.dumps({"stopped": args.dir}))


def _cmd_run(args):
    stop = {"sig": None}

    def handler(signum, _frame):
        stop["sig"] = signum
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    st = _cmd_up(args)
    try:
        while stop["sig"] is None:
            time.sleep(0.2)
    finally:
        st.down(remove=args.remove)


def _cmd_free_ports(args):
    used = set()
    for _ in range(args.count):
        used.add(free_port(args.ip, used))
    print(" ".join(str(p) for p in sorted(used)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("install", help="apt-get install what is missing (root)")
    for name in ("up", "run"):
        p = sub.add_parser(name)
        p.add_argument("--dir", help="directory to use (default: a new temp dir)")
        p.add_argument("--greet-wait", default="1s", help="postscreen_greet_wait")
        p.add_argument("--pretty", action="store_true")
        if name == "run":
            p.add_argument("--remove", action="store_true", help="delete the directory at exit")
    p = sub.add_parser("down")
    p.add_argument("--dir", required=True)
    p.add_argument("--remove", action="store_true", help="delete the directory afterwards")
    p = sub.add_parser("free-ports", help="print COUNT ports free right now on IP")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--ip", default="127.0.0.1")
    args = ap.parse_args(argv)
    try:
        {"install": _cmd_install, "up": _cmd_up, "down": _cmd_down, "run": _cmd_run,
         "free-ports": _cmd_free_ports}[args.cmd](args)
    except StackError as e:
        log(str(e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
