"""The log: start/listen/ready lines and one event=session line per session
with exact byte counts."""

import json

import harness as h


def test_startup_lines(rig):
    s = rig.simple()
    logs = s.me.logs()
    events = [ln.get("event") for ln in logs]
    assert "start" in events
    listen = s.me.events("listen", listener="front")
    assert listen, "no event=listen line for listener front"
    assert h.split_addr(listen[0]["addr"]) == (s.ip, s.port)
    assert events.index("ready") > events.index("listen"), "ready before listen"
    for ln in logs:
        assert "ts" in ln and "level" in ln, "line without ts/level: %r" % ln


def test_session_line_fields_and_counts(rig, splice):
    greeting = b"220 count ESMTP\r\n"
    s = rig.simple(send_proxy="v2", splice=splice, greeting=greeting)
    c = rig.client(s.ip, s.port)
    c.wait_endswith(greeting)
    conn = s.backend.wait_conn()
    up = b"x" * 1000 + b"\r\n"
    down = b"y" * 3000 + b"\r\n"
    c.send(up)
    conn.wait_endswith(up)
    conn.send(down)
    c.wait_endswith(down)
    c.close()
    conn.wait_eof()
    line = s.me.wait_session()
    h.assert_session_shape(line)
    me_addr = h.fmt_addr(*c.local)
    h.assert_session(line, listener="front", client=me_addr, peer=me_addr, backend="mail",
                     server="srv1", bytes_in=len(up), bytes_out=len(greeting + down),
                     reason="client_closed")
    assert line.get("level") == "info"
    # Exactly one line per session.
    assert len(s.me.sessions()) == 1


def test_one_line_per_session_unique_ids(rig):
    s = rig.simple(send_proxy=None)
    for i in range(5):
        c = rig.client(s.ip, s.port, source=rig.ip(40 + i), name="c%d" % i)
        c.wait_endswith(b"220 test ESMTP\r\n")
        c.send(b"Q" * (i + 1))
        s.backend.wait_conn(i + 1).wait_bytes(i + 1)
        c.close()
        line = s.me.wait_session(i + 1)
        h.assert_session(line, client=h.fmt_addr(*c.local), bytes_in=i + 1, bytes_out=16)
    lines = s.me.sessions()
    assert len(lines) == 5
    assert len({ln["id"] for ln in lines}) == 5


def test_json_log_format(rig):
    s = rig.simple(send_proxy="v2", log="stderr format json")
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"220 test ESMTP\r\n")
    c.send(b"QUIT\r\n")
    s.backend.wait_conn().wait_endswith(b"QUIT\r\n")
    c.close()
    s.me.wait_session()
    raw = [ln for ln in s.me.stderr().splitlines() if '"session"' in ln]
    assert len(raw) == 1
    d = json.loads(raw[0])
    assert d["event"] == "session"
    assert d["client"] == h.fmt_addr(*c.local)
    assert str(d["bytes_in"]) == "6" and str(d["bytes_out"]) == "16"
    assert d["reason"] == "client_closed"


def test_log_to_file(rig, tmp_path):
    path = tmp_path / "mailedge.log"
    s = rig.simple(send_proxy=None, log=str(path))
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"220 test ESMTP\r\n")
    c.close()

    def session_in_file():
        if not path.exists():
            return None
        for ln in path.read_text().splitlines():
            d = h.parse_log_line(ln)
            if d and d.get("event") == "session":
                return d
        return None
    line = h.wait_until(session_in_file, what="a session line in %s" % path)
    h.assert_session(line, client=h.fmt_addr(*c.local), reason="client_closed")


def test_debug_level_keeps_session_line(rig):
    s = rig.simple(send_proxy="v2", log="stderr level debug")
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"220 test ESMTP\r\n")
    c.close()
    line = s.me.wait_session()
    h.assert_session_shape(line)
    h.assert_session(line, reason="client_closed", bytes_out=16)
