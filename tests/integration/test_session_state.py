"""Every change of a session's state goes through one place, which says so
at debug level: event=session_state with from= and to= (docs/logging.md)."""

import harness as h


def test_session_state_trace(rig):
    s = rig.simple(log="stderr level debug")
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"220 test ESMTP\r\n")
    c.close()
    line = s.me.wait_session()
    h.assert_session(line, reason="client_closed")
    steps = s.me.wait_log("session_state", count=3, id=line["id"])
    assert [(d["from"], d["to"]) for d in steps] == [
        ("read_proxy", "connecting"),
        ("connecting", "relaying"),
        ("relaying", "closed"),
    ], steps


def test_session_state_quiet_at_info(rig):
    s = rig.simple()
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"220 test ESMTP\r\n")
    c.close()
    s.me.wait_session()
    assert s.me.events("session_state") == []
