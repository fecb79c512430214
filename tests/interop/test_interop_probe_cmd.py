"""`mailedge probe` (issue 10) against the real stack: Postfix postscreen and
a PROXY submission smtpd, Dovecot's PROXY imap/pop3 listeners (v2 LOCAL,
and v1 with the prober's real addresses), and the plain listeners. The
probe must pass, and the servers must log a clean session and no warning:
no "haproxy read: EOF", no "Connection reset by peer", no pre-greet."""

import re
import subprocess

from interop_kit import SCALE
import interop_kit as k

SMTPD_DONE = r"postfix/(\w+/)?smtpd\[\d+\]: disconnect from \S+\[127\.0\.0\.1\]:\d+ " \
             r"quit=1 commands=1$"
IMAP_DONE = r"imap-login: Info: Disconnected: Aborted login by logging out .*rip=127\.0\.0\.1, " \
            r"lip=127\.0\.0\.1, .*lport=%d$"
POP3_DONE = r"pop3-login: Info: Disconnected: Aborted login by logging out .*rip=127\.0\.0\.1, " \
            r"lip=127\.0\.0\.1, .*lport=%d$"


def problems(lines):
    return [ln for ln in lines if re.search(r"(: (warning|fatal|panic|error):|: (Warning|Error|"
                                            r"Fatal|Panic):|pregreet|PREGREET|reset by peer)",
                                            ln)]


def run(binary, *urls):
    p = subprocess.run([binary, "probe", "--timeout", "%ds" % int(10 * SCALE)] + list(urls),
                       capture_output=True, text=True, timeout=60 * SCALE)
    return p.returncode, p.stdout, p.stderr


def check_clean(stack, marks, smtp_sessions, imap_ports, pop3_ports):
    stack.postfix_log.wait_for(SMTPD_DONE, since=marks["postfix"], count=smtp_sessions)
    for port in imap_ports:
        stack.dovecot_log.wait_for(IMAP_DONE % port, since=marks["dovecot"])
    for port in pop3_ports:
        stack.dovecot_log.wait_for(POP3_DONE % port, since=marks["dovecot"])
    bad = problems(stack.postfix_log.lines(marks["postfix"]) +
                   stack.dovecot_log.lines(marks["dovecot"]))
    assert not bad, "\n".join(bad)


def test_probe_cmd_proxy_v2(stack, marks):
    binary = k.mailedge_binary()
    p = stack.ports
    urls = ["smtp://127.0.0.1:%d?proxy=v2" % p["postscreen"],
            "smtp://127.0.0.1:%d?proxy=v2" % p["submission"],
            "imap://127.0.0.1:%d?proxy=v2" % p["imap_proxy"],
            "pop3://127.0.0.1:%d?proxy=v2" % p["pop3_proxy"]]
    rc, out, err = run(binary, *urls)
    assert rc == 0, out + err
    assert out.count("\nok ") + out.startswith("ok ") == 4, out
    check_clean(stack, marks, 2, [p["imap_proxy"]], [p["pop3_proxy"]])


def test_probe_cmd_proxy_v1_real_addresses(stack, marks):
    binary = k.mailedge_binary()
    p = stack.ports
    urls = ["smtp://127.0.0.1:%d?proxy=v1" % p["submission"],
            "imap://127.0.0.1:%d?proxy=v1" % p["imap_proxy"],
            "pop3://127.0.0.1:%d?proxy=v1" % p["pop3_proxy"]]
    rc, out, err = run(binary, *urls)
    assert rc == 0, out + err
    check_clean(stack, marks, 1, [p["imap_proxy"]], [p["pop3_proxy"]])


def test_probe_cmd_plain(stack, marks):
    binary = k.mailedge_binary()
    p = stack.ports
    urls = ["smtp://127.0.0.1:%d" % p["plain"],
            "imap://127.0.0.1:%d" % p["imap"],
            "pop3://127.0.0.1:%d" % p["pop3"],
            "tcp://127.0.0.1:%d" % p["plain"]]
    rc, out, err = run(binary, *urls)
    assert rc == 0, out + err
    check_clean(stack, marks, 1, [p["imap"]], [p["pop3"]])


def test_probe_cmd_proxy_port_without_header_fails(stack, marks):
    """A probe without the header the listener requires is not live: the
    server never greets. (The server logs its complaint; that is the
    point of ?proxy=v2.)"""
    binary = k.mailedge_binary()
    p = subprocess.run([binary, "probe", "--timeout", "1s",
                        "imap://127.0.0.1:%d" % stack.ports["imap_proxy"]],
                       capture_output=True, text=True, timeout=60 * SCALE)
    assert p.returncode == 1, p.stdout
    assert p.stdout.startswith("FAIL ")
