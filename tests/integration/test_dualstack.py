"""A `:PORT` bind: one dual-stack socket serving an IPv6 client (::1) and an
IPv4 one, each seen with its own family in the PROXY header and the session
line (never as IPv4-mapped IPv6).

A wildcard bind listens on every address, so mailedge, the backend and the
clients run in a network namespace of their own that has only loopback:
mailedge through `ip netns exec`, the backend and client sockets created by
this thread while it has entered the namespace (setns(2)); the sockets stay
in it afterwards."""

import contextlib
import ctypes
import os
import subprocess

import harness as h
import proxycodec as pp
from test_abuse import _netns_or_skip

CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def _inside(name):
    """This thread in network namespace <name>, then back in its own."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    there = os.open("/run/netns/%s" % name, os.O_RDONLY)
    try:
        if libc.setns(there, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns %s" % name)
        try:
            yield
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(there)
        os.close(home)


def test_dual_stack_bind_serves_ipv6_and_ipv4(rig, monkeypatch):
    name = "mailedge-ds-%d" % os.getpid()
    _netns_or_skip(name)
    try:
        with _inside(name):
            b = rig.backend("127.0.0.2", greeting=b"220 ds ESMTP\r\n",
                            greet_when=h.Backend.after_proxy_header)
            port = h.free_port("::1")
        monkeypatch.setenv("MAILEDGE_WRAP", "ip netns exec %s" % name)
        me = rig.start(h.backend_block("mail", [("srv1", b.addr)], send_proxy="v2")
                       + h.listener_block("front", ":%d" % port, "smtp", "mail"))
        with _inside(name):
            c6 = rig.client("::1", port, name="c6")
            c4 = rig.client("127.0.0.1", port, source="127.0.0.10", name="c4")
        for c in (c6, c4):
            c.wait_endswith(b"220 ds ESMTP\r\n")
        hdrs = {}
        for n in (1, 2):
            hdr = h.wait_header(b.wait_conn(n))
            hdrs[hdr.src] = hdr
        assert set(hdrs) == {c6.local, c4.local}, hdrs
        assert hdrs[c6.local].fam_byte == pp.FAM_TCP6
        assert hdrs[c6.local].dst == ("::1", port)
        assert hdrs[c4.local].fam_byte == pp.FAM_TCP4
        assert hdrs[c4.local].dst == ("127.0.0.1", port)
        c6.close()
        c4.close()
        clients = {ln["client"] for ln in me.wait_log("session", count=2)}
        assert clients == {h.fmt_addr(*c6.local), h.fmt_addr(*c4.local)}
        me.stop()
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
