"""Health checks against real Postfix 3.7 and Dovecot 2.3 as operators met
them in the field (issue 15):

  * `check smtp` with its defaults passes against a stock postscreen
    (greet wait 6 s, cache disabled: every check waits the 6 s), where a
    2 s timeout (the old default) never passes and the log names the greet
    wait; the default imap, pop3, imaps and smtp checks pass Dovecot and a
    PROXY smtpd;
  * the field's health port: sessions to a PROXY listener, checks to a
    plain smtpd with `check smtp send-proxy none` leave no warning and no
    `improper command pipelining` in Postfix's log (the backend's header
    sent to the plain port does);
  * `check smtps` and `check imaps` every 200 ms against Postfix in wrapper
    mode and Dovecot imaps leave no error or warning line, where `check tcp`
    on the same ports makes both log a TLS error per check.

The TLS test runs 60 s (the issue's proof) in `make test`;
MAILEDGE_TLS_CHECK_SECONDS=10 shortens it while working on the tests."""

import os
import re
import time

import pytest

from interop_kit import (EDGE_IP, backend_block, fmt_addr, free_port, global_block,
                         listener_block, parse_logfmt, swaks)
from mailstack import SCALE, wait_until

TLS_SECONDS = float(os.environ.get("MAILEDGE_TLS_CHECK_SECONDS", "60"))
PROBLEM = re.compile(r"(: (warning|fatal|panic|error):|: (Warning|Error|Fatal|Panic):)")
CHECKER = r"127\.0\.0\.1"


def events(me, event, **match):
    out = []
    for ln in me.lines():
        f = parse_logfmt(ln)
        if f.get("event") == event and all(f.get(k) == v for k, v in match.items()):
            out.append(f)
    return out


def wait_event(me, event, timeout=20.0, **match):
    return wait_until(lambda: events(me, event, **match), timeout * SCALE,
                      "event=%s %s in:\n%s" % (event, match, me.text()[-3000:]))[0]


def one_backend(stack, port_name, check, send_proxy="v2", proto="smtp", server_extra=""):
    lport = free_port(EDGE_IP)
    text = (global_block()
            + backend_block("b", [("s1", fmt_addr("127.0.0.1", stack.ports[port_name])
                                   + server_extra)],
                            send_proxy=send_proxy, extra=["check " + check])
            + listener_block("l", fmt_addr(EDGE_IP, lport), proto, "b"))
    return text, lport


# --------------------------------------------------------------------------
# a stock postscreen


def test_default_check_passes_stock_postscreen(stack, edge, addrs, marks):
    """Defaults only (`check smtp`): every check waits postscreen's 6 s
    (no cache), reads the whole greeting, QUITs through to smtpd, and the
    server comes up; mail then flows through it."""
    text, lport = one_backend(stack, "postscreen_stock", "smtp")
    me = edge(text)
    up = wait_event(me, "health", timeout=40, server="s1", state="up")
    assert up["reason"] == "passed", up
    assert not events(me, "health_down"), me.text()
    pf = stack.postfix_log
    # No cache: each check is screened anew (PASS NEW), never PASS OLD.
    news = pf.grep(r"postfix/postscreen_stock/postscreen\[\d+\]: PASS NEW \[%s\]" % CHECKER,
                   marks["postfix"])
    assert len(news) >= 2, pf.text(marks["postfix"])[-3000:]
    assert not pf.grep(r"postscreen_stock/postscreen\[\d+\]: PASS OLD", marks["postfix"])
    quits = pf.grep(r"postfix/smtpd\[\d+\]: disconnect from unknown\[%s\]:\d+ quit=1 commands=1$"
                    % CHECKER, marks["postfix"])
    assert len(quits) >= 2
    client = addrs.next()
    marker = "stock-postscreen-%s" % client
    rc, out = swaks(EDGE_IP, lport, client, marker)
    assert rc == 0, out
    stack.wait_message(marker)
    bad = [ln for ln in pf.lines(marks["postfix"]) if PROBLEM.search(ln)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("kind,port_name", [("imap", "imap_proxy"), ("pop3", "pop3_proxy"),
                                            ("imaps", "imaps"), ("smtp", "submission")])
def test_default_checks_pass_stock_dovecot_and_smtpd(stack, edge, marks, kind, port_name):
    """The other defaults against Dovecot (haproxy = yes, implicit TLS) and a
    PROXY smtpd: up, and nothing in the servers' logs but ordinary lines."""
    text, _ = one_backend(stack, port_name, kind, send_proxy=None if kind == "imaps" else "v2",
                          proto={"imaps": "tcp", "smtp": "submission"}.get(kind, kind))
    me = edge(text)
    wait_event(me, "health", server="s1", state="up")
    me.stop()
    lines = stack.postfix_log.lines(marks["postfix"]) + stack.dovecot_log.lines(marks["dovecot"])
    bad = [ln for ln in lines if PROBLEM.search(ln)]
    assert not bad, "\n".join(bad)


def test_short_timeout_against_stock_postscreen_names_greet_wait(stack, edge, marks):
    """The old default (a 2 s timeout) against the same postscreen: never
    up, and the warning says why (the partial 220- greeting, the greet
    wait)."""
    text, _ = one_backend(stack, "postscreen_stock", "smtp timeout 2s")
    me = edge(text)
    line = wait_event(me, "health_down", server="s1")
    assert line["level"] == "warn" and line["reason"] == "read_timeout", line
    assert "220-mx.example.test" in line["detail"], line
    assert "postscreen_greet_wait" in line["detail"], line
    # Three checks in a row gave up in the greet pause (postscreen logs the
    # hang-up), so the server was never up.
    stack.postfix_log.wait_for(r"postfix/postscreen_stock/postscreen\[\d+\]: HANGUP after \S+ "
                               r"from \[%s\]:\d+ in tests before SMTP handshake" % CHECKER,
                               since=marks["postfix"], count=3, timeout=20)
    assert not events(me, "health", state="up"), me.text()


# --------------------------------------------------------------------------
# the health port without PROXY


def health_port_config(stack, check_opts):
    """The field example: sessions to postscreen (PROXY v2), checks to a
    plain smtpd (no PROXY) with check-port."""
    return one_backend(stack, "postscreen", "smtp interval 200ms rise 1 " + check_opts,
                       server_extra=" check-port %d" % stack.ports["plain"])


def plain_lines(stack, since, pattern):
    return stack.postfix_log.grep(r"postfix/plain/smtpd\[\d+\]: " + pattern, since)


def test_check_port_without_header_leaves_plain_smtpd_clean(stack, edge, addrs, marks):
    text, lport = health_port_config(stack, "send-proxy none")
    me = edge(text)
    wait_event(me, "health", server="s1", state="up")
    wait_until(lambda: len(plain_lines(stack, marks["postfix"],
                                       r"disconnect from unknown\[%s\]:\d+ quit=1 commands=1$"
                                       % CHECKER)) >= 10,
               30 * SCALE, "ten clean checks on the plain smtpd")
    # Sessions still get their header, into postscreen.
    client = addrs.next()
    marker = "health-port-%s" % client
    rc, out = swaks(EDGE_IP, lport, client, marker)
    assert rc == 0, out
    stack.wait_message(marker)
    plain = plain_lines(stack, marks["postfix"], "")
    assert not [ln for ln in plain if "improper command pipelining" in ln or PROBLEM.search(ln)], \
        "\n".join(plain[:40])
    assert not events(me, "health_down")


def test_check_port_with_backend_header_is_the_field_failure(stack, edge, marks):
    """The contrast: the backend's v2 header sent to the plain port, as
    before the option; Postfix logs improper command pipelining."""
    text, _ = health_port_config(stack, "")
    edge(text)
    stack.postfix_log.wait_for(r"postfix/plain/smtpd\[\d+\]: improper command pipelining "
                               r"after CONNECT from unknown\[%s\]" % CHECKER,
                               since=marks["postfix"])


# --------------------------------------------------------------------------
# implicit TLS


def tls_config(stack, smtps_check, imaps_check):
    text = (global_block()
            + backend_block("smtps", [("pf", fmt_addr("127.0.0.1", stack.ports["smtps"]))],
                            send_proxy=None, extra=["check " + smtps_check])
            + backend_block("imaps", [("dc", fmt_addr("127.0.0.1", stack.ports["imaps"]))],
                            send_proxy=None, extra=["check " + imaps_check])
            + listener_block("smtps", fmt_addr(EDGE_IP, free_port(EDGE_IP)), "tcp", "smtps")
            + listener_block("imaps", fmt_addr(EDGE_IP, free_port(EDGE_IP)), "tcp", "imaps"))
    return text


def smtps_quits(stack, since):
    return stack.postfix_log.grep(r"postfix/smtps/smtpd\[\d+\]: disconnect from "
                                  r"unknown\[%s\]:\d+ quit=1 commands=1$" % CHECKER, since)


def imaps_logouts(stack, since):
    port = stack.ports["imaps"]
    return [ln for ln in stack.dovecot_log.lines(since)
            if "Aborted login by logging out" in ln and "rip=127.0.0.1," in ln
            and "lport=%d" % port in ln]


@pytest.mark.slow
def test_tls_checks_every_200ms_leave_postfix_and_dovecot_clean(stack, edge, marks):
    me = edge(tls_config(stack, "smtps interval 200ms sni mx.example.test",
                         "imaps interval 200ms"))
    wait_event(me, "health", server="pf", state="up")
    wait_event(me, "health", server="dc", state="up")
    start = time.monotonic()
    time.sleep(TLS_SECONDS)
    elapsed = time.monotonic() - start
    pf = stack.postfix_log.lines(marks["postfix"])
    dv = stack.dovecot_log.lines(marks["dovecot"])
    # The checks really ran: one per 200 ms plus the exchange, so at least
    # one a second even on a loaded machine.
    want = max(5, int(elapsed / SCALE))
    assert len(smtps_quits(stack, marks["postfix"])) >= want
    assert len(imaps_logouts(stack, marks["dovecot"])) >= want
    bad = [ln for ln in pf + dv if PROBLEM.search(ln)
           or re.search(r"SSL_accept error|TLS library problem|SSL_read|SSL_write|"
                        r"lost connection|TLS handshaking|Connection reset", ln)]
    assert not bad, "the TLS checks made the servers complain:\n" + "\n".join(bad[:40])
    assert not events(me, "health", state="down") and not events(me, "health_down")


def test_tcp_check_on_tls_ports_is_noisy(stack, edge, marks):
    """The contrast: `check tcp` on the same ports; both servers log a
    failed TLS handshake per check (Postfix SSL_accept, Dovecot
    `TLS handshaking` or `Connection closed`), which the clean test above
    would catch."""
    edge(tls_config(stack, "tcp interval 200ms", "tcp interval 200ms"))
    stack.postfix_log.wait_for(r"postfix/smtps/smtpd\[\d+\]: (SSL_accept error|lost connection)"
                               r".*\[%s\]" % CHECKER, since=marks["postfix"], count=3)
    stack.dovecot_log.wait_for(r"imap-login: .*(TLS handshaking|Connection closed|"
                               r"no auth attempts).*rip=127\.0\.0\.1,.*lport=%d"
                               % stack.ports["imaps"], since=marks["dovecot"], count=3)
