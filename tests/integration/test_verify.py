"""`mailedge verify` (issue 18) without the real mail servers: the fake
Stalwart of the interop suite (tests/interop/fakestalwart.py: PROXY read
from trusted networks only, otherwise the header is SMTP input), a refusing
port, a tls-only backend, and the usage errors. The real Postfix and
Dovecot cases are tests/interop/test_interop_verify.py.

Loopback only, each test its own 127.X.Y.0/24. verify's headers carry the
documentation clients 192.0.2.10 and 2001:db8::10 (never connected to)."""

import os
import re
import subprocess
import sys

import harness as h

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
import fakestalwart  # noqa: E402

LINE = re.compile(r"^(\S+)/(\S+) (\S+) (\w+) client=(\w+): ([\w-]+): (.*)$")


def run_verify(binary, tmp_path, config, *args):
    path = tmp_path / "verify.conf"
    path.write_text(config)
    p = subprocess.run([binary, "verify", "-c", str(path)] + list(args), capture_output=True,
                       text=True, timeout=h.DEADLINE * 6)
    got = {}
    for ln in p.stdout.splitlines():
        m = LINE.match(ln)
        if m:
            got[(m.group(2), m.group(5))] = m.group(6)
    return p.returncode, got, p.stdout + p.stderr


def config(net, backends, protocol="smtp", route="mx"):
    return (h.global_block() + "".join(backends) +
            h.listener_block("l", "%s:%d" % net.endpoint(1), protocol, route))


def test_verify_agrees_and_not_expecting(binary, net, tmp_path):
    good = fakestalwart.FakeStalwart(["127.0.0.0/8"], host=net.ip(2))
    bad = fakestalwart.FakeStalwart(["192.0.2.0/24"], host=net.ip(3))
    try:
        for version in ("v1", "v2"):
            cfg = config(net, [h.backend_block("mx", [("good", "%s:%d" % (net.ip(2), good.port)),
                                                      ("bad", "%s:%d" % (net.ip(3), bad.port))],
                                               send_proxy=version)])
            rc, got, out = run_verify(binary, tmp_path, cfg)
            assert rc == 1, out
            assert got == {("good", "ipv4"): "agrees", ("good", "ipv6"): "agrees",
                           ("bad", "ipv4"): "not-expecting-proxy",
                           ("bad", "ipv6"): "not-expecting-proxy"}, out
            assert "500 5.5.1 Invalid command." in out
        h.wait_until(lambda: len(good.sessions) == 4 and len(bad.sessions) == 4,
                     what="the fakes' sessions")
        assert sorted(s["client"] for s in good.sessions) == ["192.0.2.10"] * 2 + \
            ["2001:db8::10"] * 2
        assert not any(s["tls"] for s in good.sessions)
        # Only the good server: exit 0.
        cfg = config(net, [h.backend_block("mx", [("good", "%s:%d" % (net.ip(2), good.port))],
                                           send_proxy="v2")])
        rc, got, out = run_verify(binary, tmp_path, cfg)
        assert rc == 0 and set(got.values()) == {"agrees"}, out
    finally:
        good.stop()
        bad.stop()


def test_verify_no_answer_and_skipped(binary, net, tmp_path):
    refusing = h.RefusingPort(net.ip(4))
    try:
        cfg = (h.global_block() +
               h.backend_block("mx", [("gone", refusing.addr)], send_proxy="v2") +
               h.backend_block("tlsonly", [("t", refusing.addr)]) +
               h.listener_block("l", "%s:%d" % net.endpoint(1), "smtp", "mx") +
               h.listener_block("t", "%s:%d" % net.endpoint(1), "tls", "tlsonly"))
        rc, got, out = run_verify(binary, tmp_path, cfg)
        assert rc == 1, out
        assert got == {("gone", "ipv4"): "no-answer", ("gone", "ipv6"): "no-answer"}, out
        assert "connect: connection refused" in out
        assert "tlsonly: skipped" in out
        rc, got, out = run_verify(binary, tmp_path, cfg, "tlsonly")
        assert rc == 0 and got == {}, out
    finally:
        refusing.close()


def test_verify_usage_errors(binary, net, tmp_path):
    cfg = config(net, [h.backend_block("mx", [("a", "%s:25" % net.ip(4))])])
    rc, _, out = run_verify(binary, tmp_path, cfg, "nosuch")
    assert rc == 2 and "no backend 'nosuch'" in out, out
    rc, _, out = run_verify(binary, tmp_path, "backend {\n", "mx")
    assert rc == 2 and "verify.conf:1:" in out, out
    p = subprocess.run([binary, "verify", "-x"], capture_output=True, text=True,
                       timeout=h.DEADLINE)
    assert p.returncode == 2 and "usage: mailedge verify" in p.stderr
    p = subprocess.run([binary, "verify", "-h"], capture_output=True, text=True,
                       timeout=h.DEADLINE)
    assert p.returncode == 0 and p.stdout.startswith("usage: mailedge verify")
