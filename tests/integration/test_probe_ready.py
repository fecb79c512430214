"""`mailedge probe postgres://` judged the way pg_isready judges: a
StartupMessage and the server's first answer. Scripted servers for every
kind of answer, then a real PostgreSQL 15 in each state we can produce:
accepting (no password needed, a password asked, turned away by pg_hba.conf),
stopped (no response), and a standby without hot standby (rejecting, SQLSTATE
57P03, which the old SSLRequest probe called live)."""

import os
import pathlib
import shutil
import struct
import subprocess
import tempfile

import pytest

import harness as h
from test_probe import PG_BIN, _pg_usable, fakes, lines_by_url, run_probe  # noqa: F401


def pg_msg(t: bytes, body: bytes) -> bytes:
    return t + struct.pack("!I", len(body) + 4) + body


def pg_error(code: str, text: str) -> bytes:
    return pg_msg(b"E", b"SFATAL\0VFATAL\0C%s\0M%s\0\0" % (code.encode(), text.encode()))


AUTH_OK = pg_msg(b"R", struct.pack("!I", 0)) + pg_msg(b"Z", b"I")
AUTH_SASL = pg_msg(b"R", struct.pack("!I", 10) + b"SCRAM-SHA-256\0\0")


def read_startup(c):
    """The client's StartupMessage: (protocol, {parameter: value})."""
    n = struct.unpack("!I", c.read_exact(4)[:4])[0]
    body = c.read_exact(n)[4:n]
    proto = struct.unpack("!I", body[:4])[0]
    parts = body[4:].split(b"\0")
    params = dict(zip(parts[0::2], parts[1::2]))
    params.pop(b"", None)
    c.got = c.got[n:]
    c.startup = (proto, params)
    return c.startup


def pg_answer(answer):
    def script(c):
        read_startup(c)
        if answer is not None:
            c.send(answer)
    return script


def test_postgres_answers_scripted(binary, net, fakes):  # noqa: F811
    ok = fakes(net.ip(1), pg_answer(AUTH_OK))
    sasl = fakes(net.ip(2), pg_answer(AUTH_SASL))
    norole = fakes(net.ip(3), pg_answer(pg_error("28000", 'role "monitor" does not exist')))
    reject = fakes(net.ip(4), pg_answer(pg_error("57P03", "the database system is starting up")))
    closed = fakes(net.ip(5), pg_answer(None))
    ssl_only = fakes(net.ip(6), pg_answer(b"N"))
    urls = [ok.url("postgres", "/app?user=monitor"), sasl.url("postgres"),
            norole.url("postgres", "?user=monitor"), reject.url("postgres"), closed.url("postgres"),
            ssl_only.url("postgres")]
    rc, out, _ = run_probe(binary, "--timeout", "2s", *urls)
    assert rc == 1, out
    r = lines_by_url(out)
    assert r[urls[0]][0] == "ok" and "accepting connections (no password needed)" in r[urls[0]][1]
    assert r[urls[1]][0] == "ok" and "(authentication requested)" in r[urls[1]][1]
    assert r[urls[2]][0] == "ok" and "error 28000" in r[urls[2]][1], r[urls[2]]
    assert r[urls[3]] == ("FAIL", "rejecting connections: the database system is starting up")
    assert r[urls[4]][0] == "FAIL" and "no response" in r[urls[4]][1], r[urls[4]]
    assert r[urls[5]][0] == "FAIL" and "not a PostgreSQL reply" in r[urls[5]][1], r[urls[5]]
    c = ok.wait_done()
    assert c.startup == (196608, {b"user": b"monitor", b"database": b"app",
                                  b"application_name": b"mailedge-probe"})
    # AuthenticationOk is answered with a Terminate, then a FIN.
    assert c.got == b"X\0\0\0\x04" and c.end == "fin", (c.got, c.end)
    c = sasl.wait_done()
    assert c.startup[1][b"user"] == b"postgres" and c.startup[1][b"database"] == b"postgres"
    assert c.got == b"" and c.end == "fin"


class Postgres:
    """A PostgreSQL 15 cluster in a temp dir, run as the postgres user on a
    loopback address; started and stopped by PID."""

    def __init__(self, ip, port):
        self.ip, self.port = ip, port
        base = tempfile.mkdtemp(prefix="mailedge-pgready-")
        os.chmod(base, 0o755)
        shutil.chown(base, "postgres", "postgres")
        self.base = pathlib.Path(base)
        self.data = self.base / "data"
        self.log = self.base / "log"
        self.p = None
        r = subprocess.run(["runuser", "-u", "postgres", "--", PG_BIN + "/initdb", "-D",
                            str(self.data), "-A", "trust", "--no-sync"],
                           capture_output=True, text=True, timeout=h.DEADLINE * 6)
        if r.returncode != 0:
            shutil.rmtree(base, ignore_errors=True)
            pytest.skip("initdb failed: %s" % r.stderr[-300:])
        # postgres itself needs no password, nobody is turned away by
        # pg_hba.conf (an ErrorResponse, still a server accepting
        # connections), everyone else needs a SCRAM password.
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host all postgres 127.0.0.0/8 trust\n"
            "host all nobody 127.0.0.0/8 reject\n"
            "host all all 127.0.0.0/8 scram-sha-256\n")

    def start(self):
        self.p = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", PG_BIN + "/postgres", "-D", str(self.data),
             "-k", str(self.base), "-p", str(self.port), "-h", self.ip],
            stdout=open(str(self.log), "a"), stderr=subprocess.STDOUT)
        h.wait_until(lambda: not h.connect_refused(self.ip, self.port) or self.p.poll() is not None,
                     what="postgres listening", timeout=h.DEADLINE * 6)
        assert self.p.poll() is None, self.log.read_text()

    def stop(self):
        if self.p is not None and self.p.poll() is None:
            self.p.terminate()  # runuser passes SIGTERM on: smart shutdown, no sessions
            self.p.wait(timeout=h.DEADLINE * 3)
        self.p = None

    def log_text(self):
        return self.log.read_text()

    def close(self):
        self.stop()
        shutil.rmtree(str(self.base), ignore_errors=True)


def test_real_postgres_states(binary, net):
    if not _pg_usable():
        pytest.skip("PostgreSQL 15 server binaries are not installed")
    if os.geteuid() != 0:
        pytest.skip("starting PostgreSQL as a separate user needs root")
    ip, port = net.endpoint(1)
    pg = Postgres(ip, port)
    try:
        pg.start()
        base = "postgres://%s:%d" % (ip, port)
        ready = base + "/postgres"
        password = base + "?user=monitor"
        nodb = base + "/nosuchdb?user=nobody"

        def accepting(url):
            return lambda: run_probe(binary, url)[0] == 0
        # Ready: PostgreSQL may still be starting up when the port opens
        # (57P03 then): wait for the probe to say it accepts.
        h.wait_until(accepting(ready), what="the probe to see postgres ready",
                     timeout=h.DEADLINE * 3)
        rc, out, _ = run_probe(binary, ready, password, nodb)
        assert rc == 0, out
        r = lines_by_url(out)
        assert "accepting connections (no password needed)" in r[ready][1]
        assert "accepting connections (authentication requested)" in r[password][1]
        assert "accepting connections (error 28000: pg_hba.conf rejects" in r[nodb][1], out

        # Stopped: no response.
        pg.stop()
        rc, out, _ = run_probe(binary, ready)
        assert rc == 1 and "connection refused" in out, out

        # A standby without hot standby: up, answering, refusing sessions.
        (pg.data / "standby.signal").write_text("")
        with open(str(pg.data / "postgresql.conf"), "a") as f:
            f.write("\nhot_standby = off\n")
        pg.start()
        h.wait_until(lambda: "not accepting connections" in pg.log_text()
                     or "entering standby mode" in pg.log_text(),
                     what="postgres in standby mode", timeout=h.DEADLINE * 3)
        rc, out, _ = run_probe(binary, ready, password)
        assert rc == 1, out
        r = lines_by_url(out)
        for u in (ready, password):
            assert r[u][0] == "FAIL" and r[u][1].startswith("rejecting connections: "), r[u]
        assert "the database system is not accepting connections" in out \
            or "the database system is starting up" in out, out
    finally:
        pg.stop()
        text = pg.log_text()
        pg.close()
    # A polite client: no broken startup packets, no connection resets.
    for bad in ("incomplete startup packet", "could not receive data", "unexpected EOF"):
        assert bad not in text, text
