"""Fixtures for mailedge's integration tests.

MAILEDGE_BIN names the binary under test (`make integration` sets it, and
MAILEDGE_SAN=1 for the ASan+UBSan build). Without it, every test that needs
the binary is skipped; the harness self-tests still run. When it is set (as
under `make`) but names no executable, those tests fail: a green run that
skipped them would say nothing.
"""

import os
import socket
from dataclasses import dataclass
from typing import Optional

import pytest

import harness as h


def _binary_or_fail() -> str:
    b = os.environ.get("MAILEDGE_BIN")
    if not b:
        pytest.skip("MAILEDGE_BIN is not set: run `make integration` "
                    "(or MAILEDGE_BIN=$PWD/build/mailedge python3 -m pytest tests/integration)")
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        pytest.fail("MAILEDGE_BIN=%s does not exist or is not executable "
                    "(build it with `make`)" % b, pytrace=False)
    return b


@pytest.fixture(scope="session")
def binary() -> str:
    return _binary_or_fail()


@pytest.fixture
def net(request) -> h.Net:
    """This test's own 127.X.Y.0/24 (X != 0)."""
    return h.allocate_net(request.node.nodeid)


@pytest.fixture(params=["on", "off", "auto"], ids=["splice", "copy", "auto"])
def splice(request) -> str:
    """Relay tests run with `splice on`, `splice off` and `splice auto`."""
    return request.param


@dataclass
class Simple:
    me: "h.Mailedge"
    backend: "h.Backend"
    ip: str          # listener address
    port: int        # listener port

    @property
    def addr(self):
        return h.fmt_addr(self.ip, self.port)


class Rig:
    """Everything one test starts, torn down in a safe order: clients and
    backend connections first, then mailedge (SIGTERM, exit status 0, no
    sanitizer report), then the backend listeners."""

    def __init__(self, binary: str, net: h.Net, tmp_path):
        self.binary = binary
        self.net = net
        self.tmp = tmp_path
        self.clients = []
        self.daemons = []
        self.servers = []
        self._nconf = 0

    def ip(self, n: int) -> str:
        return self.net.ip(n)

    def endpoint(self, n: int = 1):
        return self.net.endpoint(n)

    # -- peers

    def backend(self, host=2, **kw) -> h.Backend:
        ip = host if isinstance(host, str) else self.ip(host)
        b = h.Backend(ip, **kw)
        self.servers.append(b)
        return b

    def refusing(self, host=3, port: int = 0) -> h.RefusingPort:
        ip = host if isinstance(host, str) else self.ip(host)
        r = h.RefusingPort(ip, port)
        self.servers.append(r)
        return r

    def blackhole(self, host=4, port: int = 0) -> h.BlackholePort:
        ip = host if isinstance(host, str) else self.ip(host)
        b = h.BlackholePort(ip, port)
        self.servers.append(b)
        return b

    def client(self, ip: str, port: int, source=None, name: str = "client", **kw) -> h.Client:
        if source is None and not h.is_v6(ip):
            source = self.ip(10)
        c = h.Client(ip, port, source=source, name=name, **kw)
        self.clients.append(c)
        return c

    # -- the daemon

    def write_config(self, text: str, name: Optional[str] = None) -> str:
        self._nconf += 1
        path = self.tmp / (name or "mailedge%d.conf" % self._nconf)
        path.write_text(text)
        return str(path)

    def start(self, body: str, splice: Optional[str] = None, grace: str = "5s", global_extra=(),
              with_global: bool = True, wait_ready: bool = True,
              log: str = "stderr") -> h.Mailedge:
        text = (h.global_block(splice=splice, grace=grace, log=log, extra=global_extra)
                if with_global else "") + body
        path = self.write_config(text)
        work = self.tmp / ("run%d" % self._nconf)
        work.mkdir()
        g = h.parse_duration(grace) if with_global else 30.0
        log_path = None if log.split()[0] == "stderr" else log.split()[0]
        me = h.Mailedge(self.binary, path, work, grace=g, log_path=log_path)
        self.daemons.append(me)
        me.start(wait_ready=wait_ready)
        return me

    def simple(self, protocol: str = "smtp", send_proxy: Optional[str] = "v2",
               splice: Optional[str] = None, greeting: Optional[bytes] = b"220 test ESMTP\r\n",
               greet_when=None, echo: bool = False, accept_proxy: Optional[str] = None,
               listener_extra=(), backend_extra=(), global_extra=(), grace: str = "5s",
               listen_ip: Optional[str] = None, backend_ip=None,
               log: str = "stderr", close_on_eof: bool = True, **backend_kw) -> Simple:
        """One backend (recording, on host 2), one listener (host 1)."""
        b = self.backend(backend_ip if backend_ip is not None else 2, greeting=greeting,
                         greet_when=greet_when, echo=echo, close_on_eof=close_on_eof,
                         **backend_kw)
        lip = listen_ip or self.ip(1)
        lport = h.free_port(lip)
        body = (h.backend_block("mail", [("srv1", b.addr)], send_proxy=send_proxy,
                                extra=backend_extra)
                + h.listener_block("front", h.fmt_addr(lip, lport), protocol, "mail",
                                   accept_proxy=accept_proxy, extra=listener_extra))
        me = self.start(body, splice=splice, grace=grace, global_extra=global_extra, log=log)
        return Simple(me, b, lip, lport)

    def teardown(self):
        errors = []
        for c in self.clients:
            try:
                c.close()
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
        # Backend-side connections too, so no half-open session makes the
        # drain below wait for the grace period.
        for s in self.servers:
            for conn in list(getattr(s, "conns", [])):
                try:
                    conn.close()
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))
        for d in self.daemons:
            try:
                d.stop()
            except AssertionError as e:
                errors.append(str(e))
        for s in self.servers:
            try:
                s.close()
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
        if errors:
            pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def rig(binary, net, tmp_path, request):
    r = Rig(binary, net, tmp_path)
    request.node._mailedge_rig = r
    yield r
    r.teardown()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach each mailedge's config and log to the report."""
    outcome = yield
    rep = outcome.get_result()
    r = getattr(item, "_mailedge_rig", None)
    if r is None or not rep.failed or call.when != "call":
        return
    for i, d in enumerate(r.daemons):
        try:
            rep.sections.append(("mailedge %d" % (i + 1), d.describe()))
        except Exception as e:  # noqa: BLE001
            rep.sections.append(("mailedge %d" % (i + 1), "(unavailable: %r)" % e))


def pytest_report_header(config):
    b = os.environ.get("MAILEDGE_BIN")
    return "mailedge binary: %s (sanitizer build: %s, deadlines x%.0f)" % (
        b or "MAILEDGE_BIN unset, binary tests skipped", "yes" if h.SAN else "no", h.SCALE)


# systemd's notify socket, for test_systemd.py and test_reload.py

def _has_notify(binary):
    return "systemd-notify" in h.run_mailedge(binary, ["-V"]).stdout


@pytest.fixture
def notify_sock(tmp_path, monkeypatch, binary):
    if not _has_notify(binary):
        pytest.skip("built without libsystemd")
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(h.DEADLINE)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield s
    s.close()
