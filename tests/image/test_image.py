"""The container image (Containerfile, scripts/image.sh), run with podman.

Host networking on loopback: a client on 127.x passes an SMTP session
through the container to a backend that checks the PROXY v2 header (the
client's own address, which published ports would have hidden); the
image's HEALTHCHECK asks mailedge; `podman stop` (SIGTERM) drains: the open
session goes on until the client ends it, and the container exits 0.
Run by `make image-test` (scripts/image.sh test), not by `make test`.
"""

import json
import os
import subprocess
import sys
import threading
import urllib.request
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import harness as h  # noqa: E402
import proxycodec as pp  # noqa: E402

IMAGE = os.environ.get("MAILEDGE_IMAGE", "")
GREETING = b"220 mx.test ESMTP\r\n"

pytestmark = pytest.mark.skipif(not IMAGE, reason="MAILEDGE_IMAGE not set (make image-test)")


def podman(*args, check=True, timeout=120):
    r = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("podman %s: %d\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r


def test_image_metadata():
    img = json.loads(podman("inspect", "--type", "image", IMAGE).stdout)[0]
    cfg = img["Config"]
    assert cfg["User"] == "mailedge:mailedge"
    assert cfg["StopSignal"] == "SIGTERM"
    assert cfg["Entrypoint"] == ["/usr/sbin/mailedge"]
    assert cfg["Labels"]["org.opencontainers.image.version"] == IMAGE.rsplit(":", 1)[1]
    assert cfg["Labels"]["org.opencontainers.image.source"].startswith("https://")
    hc = img["Healthcheck"]["Test"]
    assert hc[0] == "CMD-SHELL" and "mailedge probe" in hc[1] and "/healthz" in hc[1]
    # The binary may bind the mail ports as the non-root user.
    caps = podman("run", "--rm", "--network", "none", "--entrypoint", "/usr/sbin/getcap",
                  IMAGE, "/usr/sbin/mailedge").stdout
    assert "cap_net_bind_service" in caps


def _low_port_free(ip: str, port: int) -> bool:
    import socket
    s = socket.socket()
    try:
        s.bind((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def test_image_session_health_drain(tmp_path, request):
    net = h.allocate_net(request.node.nodeid)
    edge, client_ip = net.ip(1), net.ip(10)
    # Port 25 proves the non-root user binds a mail port (file capability).
    port = 25 if _low_port_free(edge, 25) else h.free_port(edge)
    admin = "%s:%d" % (edge, h.free_port(edge))
    be = h.Backend(net.ip(2), greeting=GREETING, greet_when=h.Backend.after_proxy_header,
                   echo=True, name="mailbox")
    conf = tmp_path / "mailedge.conf"
    conf.write_text(
        "global {\n    log stderr format logfmt\n    grace 30s\n    admin ${MAILEDGE_ADMIN}\n}\n"
        "backend mailbox {\n    server mx %s\n    send-proxy v2\n}\n"
        "listener smtp {\n    bind %s:%d\n    protocol smtp\n    route -> mailbox\n}\n"
        % (be.addr, edge, port))
    conf.chmod(0o644)
    name = "mailedge-test-%s" % uuid.uuid4().hex[:8]
    c = None
    try:
        podman("run", "-d", "--name", name, "--network", "host",
               "-e", "MAILEDGE_ADMIN=" + admin,
               "-v", "%s:/etc/mailedge/mailedge.conf:ro" % conf, IMAGE)

        def healthz():
            try:
                with urllib.request.urlopen("http://%s/healthz" % admin, timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False
        h.wait_until(healthz, timeout=30, what="admin /healthz of the container")
        assert podman("healthcheck", "run", name, check=False).returncode == 0, \
            podman("logs", name).stderr

        c = h.Client(edge, port, source=client_ip)
        c.wait_endswith(GREETING)
        conn = be.wait_conn()
        hdr = pp.decode(conn.snapshot())
        assert (hdr.version, hdr.command) == (2, "PROXY")
        assert hdr.src == (client_ip, c.local[1]), "the backend does not see the client"
        assert hdr.dst == (edge, port)

        # SIGTERM drains: listeners close, the open session goes on.
        stopper = threading.Thread(target=podman, args=("stop", "-t", "60", name), daemon=True)
        stopper.start()
        h.wait_until(lambda: "event=drain " in podman("logs", name).stderr, timeout=30, what="the container to start draining")
        c.send(b"QUIT\r\n")
        c.wait(lambda d: d == GREETING + b"QUIT\r\n", what="the echo during the drain")
        c.close()
        stopper.join(90)
        assert not stopper.is_alive()
        state = json.loads(podman("inspect", name).stdout)[0]["State"]
        logs = podman("logs", name).stderr
        assert state["ExitCode"] == 0, logs
        sessions = [e for e in map(h.parse_log_line, logs.splitlines())
                    if e and e.get("event") == "session"]
        assert len(sessions) == 1, logs
        assert sessions[0]["client"].startswith(client_ip), logs
        assert sessions[0]["reason"] == "client_closed", logs  # drained, not cut
    finally:
        if c is not None:
            c.close()
        be.close()
        podman("rm", "-f", "-t", "0", name, check=False)
