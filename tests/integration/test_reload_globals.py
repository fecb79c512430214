"""Global settings changed by a reload (issue 21), as docs/operations.md
(Reload) says: `log` (format, level, file), `grace`, `splice` (new
sessions), the global timeouts and `resolvers` take effect; `admin`,
`user` and `group` keep their running values and the reload logs a warning."""

import os
import signal

import pytest

import harness as h
from dnsserver import DnsServer
from test_admin import http, metric
from test_reload import scrape
from test_workers import children

GREETING = b"220 test ESMTP\r\n"
RESTART_WARNING = {"admin": "the admin address changes only with a restart",
                   "user": "user and group change only with a restart"}


class Globals:
    """One mailedge whose global block is rewritten between reloads."""

    def __init__(self, rig, body, admin=None, path=None, workdir=None):
        self.rig = rig
        self.body = body
        self.admin = admin or rig.endpoint(5)
        self.path = path or str(rig.tmp / "globals.conf")
        self.workdir = workdir
        self.me = None

    def text(self, grace="5s", splice="on", log="stderr", extra=(), admin=None):
        adm = ["admin %s" % h.fmt_addr(*(admin or self.admin))]
        return h.global_block(splice=splice, grace=grace, log=log, extra=adm + list(extra)) + self.body

    def start(self, **kw):
        with open(self.path, "w") as f:
            f.write(self.text(**kw))
        os.chmod(self.path, 0o644)
        work = self.workdir or self.rig.tmp / "run-globals"
        os.makedirs(work, exist_ok=True)
        self.me = h.Mailedge(self.rig.binary, self.path, work)
        self.rig.daemons.append(self.me)
        self.me.start()
        return self.me

    def reload(self, log_file=None, **kw):
        """Rewrites the file, SIGHUP, waits for the reload's lines (success),
        in <log_file> when the new config logs there."""
        tmp = self.path + ".new"
        with open(tmp, "w") as f:
            f.write(self.text(**kw))
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.path)
        # With several workers, each one's line: a client may meet any of them.
        k = self.me.nworkers()
        if log_file is not None:
            self.me.signal(signal.SIGHUP)
            return h.wait_until(lambda: len(events_in(log_file, "reload")) >= k and
                                events_in(log_file, "reload"),
                                what="the reload lines in %s" % log_file, info=self.me.describe)[0]
        n = len(self.me.events("reload"))
        self.me.signal(signal.SIGHUP)
        lines = self.me.wait_log("reload", count=n + k)[n:]
        assert all(ln["result"] == "success" for ln in lines), lines
        return lines[0]


def events_in(path, event):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [h.parse_log_line(ln) for ln in f.read().splitlines()]
    return [d for d in lines if d and d.get("event") == event]


def simple_body(rig, backend_extra=(), listener_extra=(), accept_proxy=None, protocol="smtp"):
    b = rig.backend(2, greeting=GREETING, echo=True)
    lip, lport = rig.endpoint(1)
    body = (h.backend_block("mail", [("srv1", b.addr)], extra=backend_extra)
            + h.listener_block("front", h.fmt_addr(lip, lport), protocol, "mail",
                               accept_proxy=accept_proxy, extra=listener_extra))
    return body, b, lip, lport


def served(rig, lip, lport, source_host, name):
    c = rig.client(lip, lport, source=rig.ip(source_host), name=name)
    c.wait_endswith(GREETING)
    c.close()
    return c


def warnings(me, text):
    return [ln for ln in me.events("warning") if text in ln.get("msg", "")]


# -- take effect -------------------------------------------------------------


def test_log_format_and_level_take_effect(rig):
    body, _, lip, lport = simple_body(rig)
    g = Globals(rig, body)
    me = g.start()
    g.reload(log="stderr format json level debug")
    served(rig, lip, lport, 11, "after")
    me.wait_session()
    # After the last worker's reload_start (each worker switches after its own).
    after = me.stderr().rsplit("event=reload_start", 1)[1].splitlines()[1:]
    assert after and all(ln.startswith("{") for ln in after if ln), after
    assert me.events("reload")[0]["result"] == "success"
    assert any('"level":"debug"' in ln for ln in after), after


def test_log_file_takes_effect(rig, tmp_path):
    body, _, lip, lport = simple_body(rig)
    g = Globals(rig, body)
    me = g.start()
    path = tmp_path / "after-reload.log"
    assert g.reload(log=str(path), log_file=str(path))["result"] == "success"
    c = served(rig, lip, lport, 11, "after")
    line = h.wait_until(lambda: events_in(str(path), "session"),
                        what="the session line in %s" % path, info=me.describe)[0]
    h.assert_session(line, client=h.fmt_addr(*c.local))
    assert not me.sessions(), "the session line also went to stderr"


def test_grace_takes_effect(rig):
    body, b, lip, lport = simple_body(rig)
    g = Globals(rig, body)
    me = g.start(grace="60s")
    g.reload(grace="300ms")
    c = rig.client(lip, lport, source=rig.ip(11))
    c.wait_endswith(GREETING)
    me.signal(signal.SIGTERM)
    drain = me.wait_log("drain")[0]
    assert drain["grace_ms"] == "300", drain
    assert c.wait_end() in ("eof", "reset")
    assert me.wait_exit() == 0
    h.assert_session(me.sessions()[0], reason="shutdown")


def pipes(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("pipe:"):
                n += 1
        except OSError:
            pass
    return n


def relay_some(rig, lip, lport, source_host, name):
    c = rig.client(lip, lport, source=rig.ip(source_host), name=name)
    c.wait_endswith(GREETING)
    data = os.urandom(256 * 1024)
    c.send(data)
    c.wait(lambda d: len(d) >= len(GREETING) + len(data), what="the echo")
    c.close()


def test_splice_takes_effect_for_new_sessions(rig):
    """splice off -> on: a session relayed before the reload takes no pipe
    (copy mode), one after it does (the pool keeps its pipes for reuse)."""
    body, _, lip, lport = simple_body(rig)
    g = Globals(rig, body)
    me = g.start(splice="off")
    # Every process that relays: the workers, or mailedge with workers 1.
    before = sum(pipes(p) for p in children(me.pid) or [me.pid])
    relay_some(rig, lip, lport, 11, "copy")
    me.wait_session()
    assert sum(pipes(p) for p in children(me.pid) or [me.pid]) == before
    g.reload(splice="on")
    relay_some(rig, lip, lport, 12, "splice")
    me.wait_session(2)
    assert sum(pipes(p) for p in children(me.pid) or [me.pid]) > before


@pytest.mark.parametrize("kind", ["idle", "proxy", "connect", "hello"])
def test_global_timeout_takes_effect(rig, kind):
    """Each global timeout, 60s at start, 300ms after the reload: a new
    session ends with its reason."""
    accept_proxy = "v2 from 127.0.0.0/8" if kind == "proxy" else None
    protocol = "tls" if kind == "hello" else "smtp"
    listener_extra = ["sni-required"] if kind == "hello" else []
    if kind == "connect":
        hole = h.BlackholePort(rig.ip(4))
        rig.servers.append(hole)
        lip, lport = rig.endpoint(1)
        body = (h.backend_block("mail", [("srv1", hole.addr)])
                + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail"))
    else:
        body, _, lip, lport = simple_body(rig, accept_proxy=accept_proxy, protocol=protocol,
                                          listener_extra=listener_extra)
    g = Globals(rig, body)
    me = g.start(extra=["timeout %s 60s" % kind])
    g.reload(extra=["timeout %s 300ms" % kind])
    c = rig.client(lip, lport, source=rig.ip(11))
    if kind == "idle":
        c.wait_endswith(GREETING)
    line = me.wait_session()
    h.assert_session(line, reason="%s_timeout" % kind)
    c.close()


def test_resolvers_take_effect(rig):
    """The new resolvers answer with another address: new sessions go there."""
    name = "mx.globals.test"
    b1 = rig.backend(2, greeting=b"220 one\r\n")
    b2 = rig.backend(6, port=b1.port, greeting=b"220 two\r\n")
    d1, d2 = DnsServer(rig.ip(53)), DnsServer(rig.ip(54))
    try:
        d1.set(name, [b1.ip], ttl=300)
        d2.set(name, [b2.ip], ttl=300)
        lip, lport = rig.endpoint(1)
        body = (h.backend_block("mail", [("srv1", "%s:%d" % (name, b1.port))])
                + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail"))
        g = Globals(rig, body)
        me = g.start(extra=["resolvers %s" % d1.addr])
        me.wait_log("resolve", server="srv1", addrs=b1.ip)
        g.reload(extra=["resolvers %s" % d2.addr])
        me.wait_log("resolve", server="srv1", addrs=b2.ip)
        c = rig.client(lip, lport, source=rig.ip(11))
        c.wait_endswith(b"220 two\r\n")
        c.close()
    finally:
        d1.close()
        d2.close()


# -- keep their value, with a warning ----------------------------------------


def test_admin_keeps_its_address(rig):
    body, _, lip, lport = simple_body(rig)
    g = Globals(rig, body)
    me = g.start()
    new_admin = rig.endpoint(7)
    g.reload(admin=new_admin)
    assert warnings(me, RESTART_WARNING["admin"]), me.describe()
    assert http(g.admin, "/healthz")[0] == 200
    assert h.connect_refused(*new_admin)
    assert metric(scrape(g.admin), "mailedge_reloads_total", result="success") == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
@pytest.mark.parametrize("what", ["user", "group"])
def test_user_and_group_keep_their_value(rig, what):
    import tempfile
    from test_privileges import ids
    d = tempfile.mkdtemp(prefix="mailedge-globals-", dir="/tmp")
    os.chmod(d, 0o755)
    body, _, lip, lport = simple_body(rig)
    g = Globals(rig, body, path=os.path.join(d, "globals.conf"))
    me = g.start(extra=["user nobody"])
    before = ids(me.pid)
    g.reload(extra=["user daemon"] if what == "user" else ["user nobody", "group daemon"])
    assert warnings(me, RESTART_WARNING["user"]), me.describe()
    assert ids(me.pid) == before
    served(rig, lip, lport, 11, "after")
    os.unlink(g.path)
    os.rmdir(d)
