"""Socket activation (issue 6): listening sockets passed as by systemd
(fd 3 and up, LISTEN_FDS, LISTEN_PID of mailedge itself) are taken by the
bind of the same address; one that matches no bind stops the start."""

import os
import socket
import subprocess

import harness as h

GREETING = b"220 test ESMTP\r\n"

# The child gets the socket as fd 3 (dup2 before exec); the shell sets
# LISTEN_PID to its own pid, which exec keeps for mailedge.
WRAPPER = 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -c "$1"'


class Activated(h.Mailedge):
    """mailedge started through the wrapper with <socks> as fds 3, 4, ..."""

    def __init__(self, *a, socks=(), **kw):
        super().__init__(*a, **kw)
        self.socks = list(socks)

    def start(self, wait_ready=True):
        # Only one socket in these tests: fd 3.
        (sock,) = self.socks
        fd = sock.fileno()
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(["sh", "-c", WRAPPER, self.binary, self.conf_path],
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, cwd=self.workdir, env=env,
                                     pass_fds=(3,), preexec_fn=lambda: os.dup2(fd, 3))
        h._running.add(self.proc)
        if wait_ready:
            self.wait_ready()
        return self


def prebound(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen(16)
    return s


def start(rig, sock, listen_addr, wait_ready=True):
    b = rig.backend(2, greeting=GREETING)
    body = (h.backend_block("mail", [("srv1", b.addr)], send_proxy="v2")
            + h.listener_block("front", listen_addr, "smtp", "mail"))
    path = rig.write_config(h.global_block() + body)
    work = rig.tmp / "run-activated"
    work.mkdir()
    me = Activated(rig.binary, path, work, socks=[sock])
    rig.daemons.append(me)
    me.start(wait_ready=wait_ready)
    return me


def test_inherited_socket_serves(rig):
    lip = rig.ip(1)
    lport = h.free_port(lip)
    sock = prebound(lip, lport)
    try:
        # The test keeps its copy open while mailedge starts: a bind of its
        # own would fail (EADDRINUSE), so serving proves it took fd 3.
        me = start(rig, sock, h.fmt_addr(lip, lport))
    finally:
        sock.close()
    c = rig.client(lip, lport)
    c.wait_endswith(GREETING)
    c.close()
    h.assert_session(me.wait_session(), reason="client_closed", listener="front")
    assert me.events("listen", listener="front")


def test_unmatched_inherited_socket_is_an_error(rig):
    lip = rig.ip(1)
    other = h.free_port(lip)
    sock = prebound(lip, other)
    try:
        me = start(rig, sock, h.fmt_addr(lip, h.free_port(lip)), wait_ready=False)
        assert me.wait_exit() == 1
    finally:
        sock.close()
    err = me.events("socket_activation")
    assert err and err[0]["addr"] == h.fmt_addr(lip, other), me.log_text()
    assert "matches no bind" in err[0]["error"]
    # An expected exit 1: the teardown (which requires 0) does not own it.
    assert me.sanitizer_report() is None, me.stderr()
    rig.daemons.remove(me)
    me._out.close()
    me._err.close()
