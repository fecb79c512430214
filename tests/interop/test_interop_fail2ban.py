"""contrib/fail2ban with real fail2ban (issue 20): Postfix and Dovecot
behind mailedge (PROXY v2) log the real client's failed AUTH; a
fail2ban-server (Debian's) reading those logs with the stock filters,
contrib's jails and contrib's action bans that client at mailedge through
/bans: it gets mailedge's 554 on every listener while another client is
served; `fail2ban-client unban` lets it in again.

fail2ban runs in the foreground from a private directory (its config,
socket, pid and database), reading only what the logs gain after it
started (`tail`), with `backend = polling`. Stopped by its PID.
"""

import imaplib
import os
import shutil
import signal
import subprocess

import pytest

import interop_kit as k
from interop_kit import (EDGE_IP, backend_block, fmt_addr, global_block, listener_block,
                         wait_until)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTRIB = os.path.join(ROOT, "contrib", "fail2ban")
STOCK = "/etc/fail2ban"
DOVECOT_SUFFIX = r"""[Definition]
prefregex = ^%(__prefix_line)s(?:%(_auth_worker)s(?:\([^\)]+\))?: )?(?:%(__pam_auth)s(?:\(dovecot:auth\))?: |(?:pop3|imap|managesieve|submission)-login: )?(?:Info: )?%(_auth_worker_info)s<F-CONTENT>.+?</F-CONTENT>(?:, rport=\d+, lport=\d+)?$
"""


class Fail2Ban:
    """fail2ban-server -f -x -c DIR, with contrib's action and jails and the
    stock filters; `local` is the jail.local that points them at the test's
    logs and mailedge."""

    def __init__(self, workdir, jail_local):
        self.dir = os.path.join(workdir, "fail2ban")
        for sub in ("action.d", "filter.d", "jail.d"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        for f in ("common.conf", "postfix.conf", "dovecot.conf"):
            shutil.copy(os.path.join(STOCK, "filter.d", f), os.path.join(self.dir, "filter.d"))
        shutil.copy(os.path.join(CONTRIB, "action.d", "mailedge.conf"),
                    os.path.join(self.dir, "action.d"))
        shutil.copy(os.path.join(CONTRIB, "jail.d", "mailedge.conf"),
                    os.path.join(self.dir, "jail.d"))
        self.sock = os.path.join(self.dir, "fail2ban.sock")
        self.logpath = os.path.join(self.dir, "fail2ban.out")
        self._write("fail2ban.conf", "[Definition]\nloglevel = INFO\nlogtarget = STDOUT\n"
                    "socket = %s\npidfile = %s\ndbfile = %s\n"
                    % (self.sock, os.path.join(self.dir, "fail2ban.pid"),
                       os.path.join(self.dir, "fail2ban.sqlite3")))
        # Self-contained: nothing from /etc/fail2ban/jail.conf (its paths and
        # iptables actions); no address ignored (the clients are loopback).
        self._write("jail.conf", "[DEFAULT]\nbackend = polling\nusedns = no\n"
                    "ignoreself = false\nignoreip =\n")
        self._write("jail.local", jail_local)
        # The stack's Dovecot appends `, rport=N, lport=N` to its login lines
        # (mailstack.py); Dovecot's own format ends with session=<...>, which
        # the stock filter expects. Only that suffix is taken off.
        self._write("filter.d/dovecot.local", DOVECOT_SUFFIX)
        self.proc = None

    def _write(self, name, text):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(text)

    def start(self, jails):
        out = open(self.logpath, "ab")
        try:
            self.proc = subprocess.Popen(["fail2ban-server", "-f", "-x", "-c", self.dir],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        finally:
            out.close()
        for jail in jails:
            wait_until(lambda: self.client("status", jail, check=False).returncode == 0
                       or self.proc.poll() is not None, k.DEADLINE, "fail2ban jail %s" % jail)
            if self.proc.poll() is not None:
                raise AssertionError("fail2ban-server exited:\n" + self.text())
        return self

    def client(self, *args, check=True):
        r = subprocess.run(["fail2ban-client", "-c", self.dir, "-s", self.sock] + list(args),
                           capture_output=True, text=True, timeout=k.DEADLINE)
        if check and r.returncode != 0:
            raise AssertionError("fail2ban-client %s: %s%s\n%s" % (
                " ".join(args), r.stdout, r.stderr, self.text()[-4000:]))
        return r

    def text(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        """SIGTERM by PID (fail2ban runs the unban actions of live bans)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10 * k.SCALE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def fail2ban(tmp_path):
    if shutil.which("fail2ban-server") is None or not os.path.exists(STOCK + "/filter.d"):
        pytest.fail("fail2ban is not installed (scripts/deps.sh test installs it)",
                    pytrace=False)
    started = []

    def start(jail_local, jails):
        f = Fail2Ban(str(tmp_path), jail_local)
        started.append(f)
        return f.start(jails)

    yield start
    for f in started:
        f.stop()


def edge_with_admin(edge, stack):
    """mailedge in front of the AUTH submission service and Dovecot's
    IMAP, both with PROXY v2, and its admin endpoint."""
    smtp_port = k.free_port(EDGE_IP)
    imap_port = k.free_port(EDGE_IP, avoid=(smtp_port,))
    admin_port = k.free_port(EDGE_IP, avoid=(smtp_port, imap_port))
    cfg = (global_block(extra=["admin %s" % fmt_addr(EDGE_IP, admin_port)])
           + backend_block("sub", [("pf", fmt_addr("127.0.0.1", stack.ports["subauth_proxy"]))])
           + backend_block("imap", [("dc", fmt_addr("127.0.0.1", stack.ports["imap_proxy"]))])
           + listener_block("submission", fmt_addr(EDGE_IP, smtp_port), "smtp", "sub")
           + listener_block("imap", fmt_addr(EDGE_IP, imap_port), "imap", "imap"))
    me = edge(cfg)
    return me, smtp_port, imap_port, "http://%s" % fmt_addr(EDGE_IP, admin_port)


def jail_local(url, headers, jail, logpath):
    return ("[DEFAULT]\nmailedge_url = %s\nmailedge_headers = %s\n\n"
            "[%s]\nenabled = true\nlogpath = %s tail\nbackend = polling\n"
            "maxretry = 2\nfindtime = 10m\nbantime = 10m\n" % (url, headers, jail, logpath))


def header_file(tmp_path):
    # Without admin-token-file the header file carries only the write header.
    path = os.path.join(str(tmp_path), "mailedge-admin.headers")
    with open(path, "w") as f:
        f.write("Mailedge-Admin: 1\n")
    os.chmod(path, 0o600)
    return path


def smtp_refused(port, source):
    """mailedge's ban answer on the submission listener."""
    c = k.LineConn.open(EDGE_IP, port, source)
    try:
        line = c.read_line()
    finally:
        c.close()
    assert line.startswith(b"554 5.7.1 "), line
    return line


def smtp_served(port, source):
    c = k.LineConn.open(EDGE_IP, port, source)
    try:
        line = c.read_line()
    finally:
        c.close()
    assert line.startswith(b"220 "), line


def failed_auth(port, source, marker):
    """swaks: STARTTLS, AUTH PLAIN with a wrong password; Postfix logs
    `SASL PLAIN authentication failed` for the real client."""
    rc, out = k.swaks(EDGE_IP, port, source, marker,
                      extra=["--tls", "--auth", "PLAIN", "--auth-user", "test",
                             "--auth-password", "wrong-%s" % marker, "--quit-after", "AUTH"])
    assert rc != 0 and "535" in out, out


def banned_at_edge(f2b, jail, ip):
    wait_until(lambda: ip in f2b.client("get", jail, "banned").stdout, 2 * k.DEADLINE,
               "fail2ban banning %s\n%s" % (ip, f2b.text()[-3000:]))


def wait_banned(me, ip):
    """The ban is in force once mailedge logged it (the action's curl ran)."""
    wait_until(lambda: any(d.get("event") == "ban" and d.get("key") == ip
                           and d.get("reason") == "admin"
                           for d in map(k.parse_logfmt, me.lines())),
               2 * k.DEADLINE, "mailedge event=ban key=%s" % ip)


def test_postfix_sasl_failures_ban_at_the_edge(stack, edge, fail2ban, addrs, tmp_path):
    me, smtp_port, imap_port, url = edge_with_admin(edge, stack)
    jail = "postfix-sasl-mailedge"
    f2b = fail2ban(jail_local(url, header_file(tmp_path), jail, stack.pf_log), [jail])
    bad, good = addrs.next(), addrs.next()
    for i in range(2):
        failed_auth(smtp_port, bad, "f2b-%d" % i)
    # The log carries the real client, not mailedge's address.
    lines = stack.postfix_log.grep(r"\[%s\]:\d+: SASL PLAIN authentication failed"
                                   % bad.replace(".", r"\."))
    assert len(lines) == 2, stack.postfix_log.text()[-3000:]
    banned_at_edge(f2b, jail, bad)
    wait_banned(me, bad)
    smtp_refused(smtp_port, bad)
    # Every listener: IMAP refuses it too.
    c = k.LineConn.open(EDGE_IP, imap_port, bad)
    try:
        assert c.read_line().startswith(b"* BYE ")
    finally:
        c.close()
    smtp_served(smtp_port, good)
    # Unbanned by fail2ban: served again.
    f2b.client("set", jail, "unbanip", bad)
    wait_until(lambda: any(d.get("event") == "ban_end" and d.get("key") == bad
                           and d.get("why") == "removed"
                           for d in map(k.parse_logfmt, me.lines())),
               k.DEADLINE, "mailedge event=ban_end key=%s" % bad)
    smtp_served(smtp_port, bad)


def test_dovecot_login_failures_ban_at_the_edge(stack, edge, fail2ban, addrs, tmp_path):
    me, smtp_port, imap_port, url = edge_with_admin(edge, stack)
    jail = "dovecot-mailedge"
    f2b = fail2ban(jail_local(url, header_file(tmp_path), jail, stack.dc_log), [jail])
    bad, good = addrs.next(), addrs.next()
    for i in range(2):
        imap = k.IMAP(EDGE_IP, imap_port, bad)
        with pytest.raises(imaplib.IMAP4.error):
            imap.login("test", "wrong-%d" % i)
        imap.logout()
    banned_at_edge(f2b, jail, bad)
    wait_banned(me, bad)
    smtp_refused(smtp_port, bad)
    smtp_served(smtp_port, good)
    f2b.client("set", jail, "unbanip", bad)
    wait_until(lambda: any(d.get("event") == "ban_end" and d.get("key") == bad
                           for d in map(k.parse_logfmt, me.lines())),
               k.DEADLINE, "mailedge event=ban_end key=%s" % bad)
    smtp_served(smtp_port, bad)
