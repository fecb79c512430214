"""user/group in global (issue 6): mailedge binds as root, then runs as the
configured user for good (/proc/PID/status), still serves, cannot bind a
new privileged port on reload (a clear failure, the old config stays), and
refuses to run as root without `user` (`user root` keeps root by choice). Needs root (CI runs as root)."""

import os
import pwd
import shutil
import signal
import socket
import tempfile

import pytest

import harness as h
from test_workers import children

GREETING = b"220 test ESMTP\r\n"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def ids(pid):
    """{'Uid': [real, effective, saved, fs], 'Gid': [...], 'Groups': [...]}."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups"):
                out[k] = [int(x) for x in v.split()]
    return out


@pytest.fixture
def public_dir():
    """A directory the dropped user can read (pytest's tmp_path is root-only),
    for the config a reload reads again."""
    d = tempfile.mkdtemp(prefix="mailedge-privs-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start_as(rig, public_dir, body_extra="", user="nobody", group=None):
    b = rig.backend(2, greeting=GREETING)
    lip = rig.ip(1)
    lport = h.free_port(lip)
    g = ["user %s" % user] + (["group %s" % group] if group else [])
    body = (h.backend_block("mail", [("srv1", b.addr)], send_proxy="v2")
            + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail") + body_extra)
    path = os.path.join(public_dir, "mailedge.conf")
    with open(path, "w") as f:
        f.write(h.global_block(extra=g) + body)
    os.chmod(path, 0o644)
    work = rig.tmp / "run-privs"
    work.mkdir()
    me = h.Mailedge(rig.binary, path, work)
    rig.daemons.append(me)
    me.start()
    return me, b, lip, lport, path


def serve_one(rig, lip, lport):
    c = rig.client(lip, lport)
    c.wait_endswith(GREETING)
    c.close()


def serving(me):
    """The processes that serve: the workers (the supervisor keeps root to
    start one again: docs/scaling.md), or mailedge itself with workers 1."""
    return children(me.pid) or [me.pid]


def test_runs_as_nobody(rig, public_dir):
    nobody = pwd.getpwnam("nobody")
    me, _, lip, lport, _ = start_as(rig, public_dir)
    for pid in serving(me):
        st = ids(pid)
        assert st["Uid"] == [nobody.pw_uid] * 4, st
        assert st["Gid"] == [nobody.pw_gid] * 4, st
        assert 0 not in st["Groups"], st
    assert me.events("privileges_dropped", user="nobody")
    serve_one(rig, lip, lport)
    h.assert_session(me.wait_session(), reason="client_closed")


def test_group_option(rig, public_dir):
    me, _, lip, lport, _ = start_as(rig, public_dir, group="nogroup")
    import grp
    gid = grp.getgrnam("nogroup").gr_gid
    for pid in serving(me):
        st = ids(pid)
        assert st["Gid"] == [gid] * 4 and st["Groups"] == [gid], st
    serve_one(rig, lip, lport)


def _free_privileged_port(ip):
    for port in range(700, 1024):
        s = socket.socket()
        try:
            s.bind((ip, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    pytest.skip("no free privileged port on %s" % ip)


def test_reload_cannot_bind_privileged_port(rig, public_dir):
    me, b, lip, lport, path = start_as(rig, public_dir)
    low = _free_privileged_port(lip)
    with open(path, "a") as f:
        f.write(h.listener_block("low", h.fmt_addr(lip, low), "smtp", "mail"))
    me.signal(signal.SIGHUP)
    line = me.wait_log("reload", result="failure")[0]
    assert "privileges were dropped" in line["error"] and "low" in line["error"], line
    assert h.connect_refused(lip, low)
    serve_one(rig, lip, lport)


def test_root_without_user_is_refused(rig, binary):
    """Started as root with no `user`, mailedge refuses before it binds
    anything (issue 9): the port stays free and the reason is logged."""
    b = rig.backend(2, greeting=GREETING)
    lip = rig.ip(1)
    lport = h.free_port(lip)
    text = (h.block("global", None, ["log stderr"])
            + h.backend_block("mail", [("srv1", b.addr)], send_proxy="v2")
            + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail"))
    r = h.run_mailedge(binary, ["-c", rig.write_config(text)])
    assert r.returncode == 1, r
    assert "refusing to run as root" in r.stderr and "user NAME" in r.stderr, r.stderr
    assert "event=ready" not in r.stderr
    assert h.connect_refused(lip, lport)
    # -t only reads the file: no refusal there.
    assert h.run_mailedge(binary, ["-t", "-c", rig.write_config(text)]).returncode == 0


def test_user_root_keeps_root_by_choice(rig):
    s = rig.simple(global_extra=["user root"])
    assert ids(s.me.pid)["Uid"] == [0] * 4
    serve_one(rig, s.ip, s.port)
