"""Happy Eyeballs against the real servers: a backend written as a DNS name
(answered by the integration suite's loopback DNS responder) with an AAAA
and an A record.

- Postfix postscreen listens on 127.0.0.1 only: the IPv6 attempt is refused,
  the IPv4 one delivers at once, and Postfix logs nothing wrong.
- Dovecot listens on both: the IPv6 attempt wins, the IPv4 one is never
  started."""

import os
import sys

import pytest

from interop_kit import (DEADLINE, EDGE_IP, backend_block, fmt_addr, free_port, global_block,
                         imap_fetch_marker, listener_block, parse_logfmt)
from mailstack import wait_until
from test_interop_smtp import assert_clean, deliver

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from dnsserver import DnsServer  # noqa: E402

NAME = "mailbox.interop.test"


@pytest.fixture
def dns():
    d = DnsServer("127.0.0.53")
    yield d
    d.close()


def front(edge, dns, port, protocol):
    lport = free_port(EDGE_IP)
    # The debug level shows the connect_attempt lines.
    text = (global_block(extra=["resolvers %s" % dns.addr]).replace("level info", "level debug")
            + backend_block("mail", [("s1", "%s:%d" % (NAME, port))], send_proxy="v2")
            + listener_block("front", fmt_addr(EDGE_IP, lport), protocol, "mail"))
    return edge(text), lport


def _log(me, event):
    return [d for d in (parse_logfmt(ln) for ln in me.lines()) if d.get("event") == event]


def _wait_resolved(me):
    wait_until(lambda: _log(me, "resolve"), DEADLINE, "the name resolved")


def test_postscreen_via_a_when_aaaa_refused(stack, edge, addrs, marks, dns):
    port = stack.ports["postscreen"]
    dns.set(NAME, ["127.0.0.1", "::1"], ttl=300)
    me, lport = front(edge, dns, port, "smtp")
    _wait_resolved(me)
    client = addrs.next()
    marker = "he-postscreen-%s" % client
    _msg, sess, _cport = deliver(stack, me, lport, client, marker)
    assert sess["backend_addr"] == fmt_addr("127.0.0.1", port), sess
    assert sess["attempts"] == "2", sess
    tried = [(ln["n"], ln["addr"], ln["result"]) for ln in _log(me, "connect_attempt")
             if ln.get("id") == sess["id"]]
    assert tried == [("1", fmt_addr("::1", port), "failed"),
                     ("2", fmt_addr("127.0.0.1", port), "connected")], tried
    assert_clean(stack.postfix_log.lines(marks["postfix"]))


def test_dovecot_via_aaaa_first(stack, edge, addrs, dns):
    port = stack.ports["imap_proxy"]
    dns.set(NAME, ["127.0.0.1", "::1"], ttl=300)
    me, lport = front(edge, dns, port, "imap")
    _wait_resolved(me)
    client = addrs.next()
    marker = "he-imap-%s" % client
    stack.put_message(marker)
    imap_fetch_marker(EDGE_IP, lport, client, marker)
    sess = me.wait_session(client_ip=client)
    assert sess["backend_addr"] == fmt_addr("::1", port), sess
    assert sess["attempts"] == "1", sess
