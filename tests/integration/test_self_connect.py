"""A TCP connect to a free port on this host can meet itself: when the
kernel picks the destination port as the source port, the SYN reaches its
own socket and the connection is established with itself (simultaneous
open). mailedge checks for that after a connect to a local address, with
getsockname(2), but only when the destination port lies in
net.ipv4.ip_local_port_range: outside it the kernel never picks it, and a
short session saves the call (issue 19).

To make the kernel pick it every time, mailedge runs in a network
namespace of its own whose ephemeral range is that one port."""

import os
import subprocess

import harness as h
from test_abuse import _netns_or_skip
from test_dualstack import _inside


def _sysctl(name, key, value):
    r = subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw", "%s=%s" % (key, value)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_connect_to_itself_ends_the_session(rig, monkeypatch):
    name = "mailedge-sc-%d" % os.getpid()
    _netns_or_skip(name)
    try:
        port = 40000 + os.getpid() % 1000           # the server: nothing listens there
        _sysctl(name, "net.ipv4.ip_local_port_range", "%d %d" % (port, port))
        lport = port + 1000                         # outside the range
        monkeypatch.setenv("MAILEDGE_WRAP", "ip netns exec %s" % name)
        me = rig.start(h.backend_block("mail", [("s1", "127.0.0.1:%d" % port)], send_proxy="v2")
                       + h.listener_block("front", "127.0.0.1:%d" % lport, "smtp", "mail"),
                       global_extra=["workers 1"])  # one process: one log line to wait for
        with _inside(name):
            # The one ephemeral port is the server's: the client brings its own.
            c = rig.client("127.0.0.1", lport, source="127.0.0.1", source_port=lport + 1)
        assert c.wait_end() == "eof"
        assert c.snapshot().startswith(b"421 4.3.2 "), c.snapshot()
        warn = me.wait_log("backend_loop")[0]
        assert warn["error"] == "connected to itself", warn
        assert warn["addr"] == "127.0.0.1:%d" % port, warn
        h.assert_session(me.wait_session(), reason="backend_loop", server="-", backend="mail")
        c.close()
        me.stop()
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
