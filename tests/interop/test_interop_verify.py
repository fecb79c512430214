"""`mailedge verify` (issue 18) against real Postfix and Dovecot set up
rightly and wrongly in each way, and against a fake Stalwart
(fakestalwart.py). verify must name each case, and the receivers' logs
must show nothing beyond what the misconfiguration itself causes.

The wrong stack (`wrong`, one per module) is the suite's MailStack with
Postfix `inet_protocols = ipv4` and Dovecot's haproxy_trusted_networks
not covering the edge (127.0.0.1)."""

import re
import subprocess

import pytest

import fakestalwart
import interop_kit as k
import mailstack as ms
from interop_kit import SCALE

LINE = re.compile(r"^(\S+)/(\S+) (\S+) (\w+) client=(\w+): ([\w-]+): (.*)$")
BAD = re.compile(r"(: (warning|fatal|panic|error):|: (Warning|Error|Fatal|Panic):|PREGREET|"
                 r"reset by peer|throttling)")


class WrongStack(ms.MailStack):
    """Postfix without IPv6, Dovecot trusting only 192.0.2.0/24 as PROXY senders."""

    def _patched(self, name, old, new):
        text = getattr(ms, name)
        assert old in text, (name, old)
        return text.replace(old, new)

    def _postfix_setup(self):
        main, master = ms.MAIN_CF, ms.MASTER_CF
        ms.MAIN_CF = self._patched("MAIN_CF", "inet_protocols = all", "inet_protocols = ipv4")
        ms.MAIN_CF = ms.MAIN_CF.replace("mynetworks = 127.0.0.0/8 [::1]/128",
                                        "mynetworks = 127.0.0.0/8")
        ms.MASTER_CF = self._patched(
            "MASTER_CF", "{sub6_addr}  inet  n       -      n      -      -       smtpd\n"
            "  -o syslog_name=postfix/submission6\n  -o smtpd_upstream_proxy_protocol=haproxy\n",
            "")
        try:
            super()._postfix_setup()
        finally:
            ms.MAIN_CF, ms.MASTER_CF = main, master

    def _dovecot_setup(self):
        conf = ms.DOVECOT_CONF
        ms.DOVECOT_CONF = self._patched("DOVECOT_CONF", "haproxy_trusted_networks = 127.0.0.0/8 ::1",
                                        "haproxy_trusted_networks = 192.0.2.0/24")
        try:
            super()._dovecot_setup()
        finally:
            ms.DOVECOT_CONF = conf

    def _wait_ready(self):
        p = self.ports
        for name in ("submission", "imap_proxy"):
            ms.wait_until(lambda: ms.listening("127.0.0.1", p[name]), 20 * SCALE,
                          "a listener on port %d" % p[name])


@pytest.fixture(scope="module")
def wrong(stack, request):
    st = WrongStack()
    st.up()
    yield st
    st.down(remove=not (request.session.testsfailed or ms.os.environ.get("MAILEDGE_KEEP")))


def verify(tmp_path, config, *args):
    path = tmp_path / "verify.conf"
    path.write_text(config)
    p = subprocess.run([k.mailedge_binary(), "verify", "-c", str(path)] + list(args),
                       capture_output=True, text=True, timeout=120 * SCALE)
    got = {}
    for ln in p.stdout.splitlines():
        m = LINE.match(ln)
        assert m, "unparsed verify line: " + ln
        got[(m.group(2), m.group(5))] = (m.group(6), m.group(7))
    return p.returncode, got, p.stdout + p.stderr


def conf(backends, listeners):
    return k.global_block() + "".join(backends) + "".join(listeners)


def smtp_imap(smtp_backend, imap_backend=None):
    ls = [k.listener_block("smtp", "%s:%d" % (k.EDGE_IP, k.free_port(k.EDGE_IP)), "smtp",
                           smtp_backend)]
    if imap_backend:
        ls.append(k.listener_block("imap", "%s:%d" % (k.EDGE_IP, k.free_port(k.EDGE_IP)), "imap",
                                   imap_backend))
    return ls


def problems(stack, marks, allowed=()):
    lines = stack.postfix_log.lines(marks["postfix"]) + stack.dovecot_log.lines(marks["dovecot"])
    return [ln for ln in lines if BAD.search(ln) and not any(re.search(a, ln) for a in allowed)]


def test_verify_all_agree(stack, marks, tmp_path):
    p = stack.ports
    cfg = conf([k.backend_block("mx", [("sub", "127.0.0.1:%d" % p["submission"]),
                                       ("ps", "127.0.0.1:%d" % p["postscreen"])]),
                k.backend_block("mb", [("dc", "127.0.0.1:%d" % p["imap_proxy"]),
                                       ("dc6", "[::1]:%d" % p["imap_proxy"])], send_proxy="v1")],
               smtp_imap("mx", "mb"))
    rc, got, out = verify(tmp_path, cfg)
    assert rc == 0, out
    assert len(got) == 8, out
    assert all(v[0] == "agrees" for v in got.values()), out
    # The receivers saw the documentation clients, and said goodbye cleanly.
    stack.postfix_log.wait_for(r"smtpd\[\d+\]: disconnect from \S+\[2001:db8::10\]:40000 quit=1",
                               since=marks["postfix"], count=2)
    stack.dovecot_log.wait_for(r"Aborted login by logging out .*rip=2001:db8::10",
                               since=marks["dovecot"], count=2)
    assert not problems(stack, marks), problems(stack, marks)


def test_verify_receiver_not_expecting_proxy(stack, marks, tmp_path):
    """Postfix smtpd and Dovecot without PROXY read the header as commands."""
    p = stack.ports
    cfg = conf([k.backend_block("mx", [("plain", "127.0.0.1:%d" % p["plain"])], send_proxy="v1"),
                k.backend_block("mx2", [("plain2", "127.0.0.1:%d" % p["plain"])]),
                k.backend_block("mb", [("dc", "127.0.0.1:%d" % p["imap"])])],
               smtp_imap("mx", "mb") + [k.listener_block(
                   "smtp2", "%s:%d" % (k.EDGE_IP, k.free_port(k.EDGE_IP)), "smtp", "mx2")])
    rc, got, out = verify(tmp_path, cfg)
    assert rc == 1, out
    for key in (("plain", "ipv4"), ("plain", "ipv6"), ("plain2", "ipv4"), ("plain2", "ipv6"),
                ("dc", "ipv4"), ("dc", "ipv6")):
        assert got[key][0] == "not-expecting-proxy", out
    assert "502 5.5.2" in got[("plain", "ipv4")][1] or "500 5.5.2" in got[("plain", "ipv4")][1]
    assert "fix: receiver: expect PROXY" in out
    # What smtpd says about a PROXY line read as a command, and nothing else.
    assert not problems(stack, marks, allowed=(r"postfix/plain/smtpd.*(warning: non-SMTP command|"
                                               r"improper command pipelining)",)), \
        problems(stack, marks)


@pytest.mark.slow
def test_verify_receiver_expects_proxy_not_sent(stack, marks, tmp_path):
    p = stack.ports
    cfg = conf([k.backend_block("mx", [("sub", "127.0.0.1:%d" % p["submission"])], send_proxy=None),
                k.backend_block("mb", [("dc", "127.0.0.1:%d" % p["imap_proxy"])], send_proxy=None)],
               smtp_imap("mx", "mb"))
    rc, got, out = verify(tmp_path, cfg)
    assert rc == 1, out
    assert got[("sub", "none")][0] == "expects-proxy-not-sent", out
    assert "421 4.3.0" in got[("sub", "none")][1], out
    assert got[("dc", "none")][0] == "expects-proxy-not-sent", out
    assert "fix: edge: add send-proxy v2" in out
    assert len(got) == 2, out  # no header: one connection per server, not two
    assert not problems(stack, marks, allowed=(r"haproxy read: timeout error",
                                               r"haproxy: Client timed out")), \
        problems(stack, marks)


def test_verify_dovecot_does_not_trust_the_edge(wrong, tmp_path):
    marks = {"postfix": wrong.postfix_log.mark(), "dovecot": wrong.dovecot_log.mark()}
    cfg = conf([k.backend_block("mb", [("dc", "127.0.0.1:%d" % wrong.ports["imap_proxy"])])],
               smtp_imap("mb")[:0] + [k.listener_block(
                   "imap", "%s:%d" % (k.EDGE_IP, k.free_port(k.EDGE_IP)), "imap", "mb")])
    rc, got, out = verify(tmp_path, cfg)
    assert rc == 1, out
    assert got[("dc", "ipv4")][0] == "refuses-edge-as-source", out
    assert got[("dc", "ipv6")][0] == "refuses-edge-as-source", out
    assert "haproxy_trusted_networks" in out
    wrong.dovecot_log.wait_for(r"not trusted", since=marks["dovecot"], count=2)
    assert not problems(wrong, marks, allowed=(r"not trusted",)), problems(wrong, marks)


def test_verify_postfix_without_ipv6(wrong, tmp_path):
    marks = {"postfix": wrong.postfix_log.mark(), "dovecot": wrong.dovecot_log.mark()}
    cfg = conf([k.backend_block("mx", [("sub", "127.0.0.1:%d" % wrong.ports["submission"])])],
               smtp_imap("mx"))
    rc, got, out = verify(tmp_path, cfg)
    assert rc == 1, out
    assert got[("sub", "ipv4")][0] == "agrees", out
    assert got[("sub", "ipv6")][0] == "refuses-ipv6", out
    assert "421" in got[("sub", "ipv6")][1], out
    assert "inet_protocols = all" in out
    wrong.postfix_log.wait_for(r"Postfix IPv6 support is disabled", since=marks["postfix"])
    assert not problems(wrong, marks, allowed=(r"Postfix IPv6 support is disabled",)), \
        problems(wrong, marks)


def test_verify_wrong_protocol(stack, marks, tmp_path):
    """Dovecot's IMAP port behind an smtp listener's backend."""
    cfg = conf([k.backend_block("mx", [("dc", "127.0.0.1:%d" % stack.ports["imap_proxy"])])],
               smtp_imap("mx"))
    rc, got, out = verify(tmp_path, cfg)
    assert rc == 1, out
    assert got[("dc", "ipv4")][0] == "wrong-protocol", out
    assert "an IMAP greeting where SMTP was expected" in got[("dc", "ipv4")][1]
    assert not problems(stack, marks), problems(stack, marks)


def test_verify_stalwart_fake(tmp_path):
    """Stalwart's documented behaviour (fake): from a trusted network the
    header is read and agreed; from elsewhere its bytes reach the SMTP
    parser (500 5.5.1); mailedge never sends the SSL TLV, so no session is
    marked TLS."""
    good = fakestalwart.FakeStalwart(["127.0.0.0/8"])
    bad = fakestalwart.FakeStalwart(["192.0.2.0/24"])
    try:
        cfg = conf([k.backend_block("st", [("good", "127.0.0.1:%d" % good.port),
                                           ("bad", "127.0.0.1:%d" % bad.port)])],
                   smtp_imap("st"))
        rc, got, out = verify(tmp_path, cfg)
        assert rc == 1, out
        assert got[("good", "ipv4")][0] == "agrees", out
        assert got[("good", "ipv6")][0] == "agrees", out
        assert got[("bad", "ipv4")][0] == "not-expecting-proxy", out
        assert "500 5.5.1" in got[("bad", "ipv4")][1], out
        ms.wait_until(lambda: len(good.sessions) == 2 and len(bad.sessions) == 2, 10 * SCALE,
                      "the fake's sessions")
        assert sorted(s["client"] for s in good.sessions) == ["192.0.2.10", "2001:db8::10"]
        assert not any(s["tls"] for s in good.sessions + bad.sessions)
    finally:
        good.stop()
        bad.stop()


def test_verify_usage(tmp_path):
    cfg = conf([k.backend_block("mx", [("a", "127.0.0.1:1")])], smtp_imap("mx"))
    rc, _, out = verify(tmp_path, cfg, "nosuch")
    assert rc == 2 and "no backend 'nosuch'" in out
    rc, got, out = verify(tmp_path, cfg)
    assert rc == 1 and got[("a", "ipv4")][0] == "no-answer", out
