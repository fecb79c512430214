"""busy-poll: with it set, sessions relay as before (ping-pong, with splice
and with copy), and the worker still goes to sleep once traffic stops:
the polling is bounded, not a spin."""

import harness as h


def proc_state(pid: int) -> str:
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_busy_poll_relays_and_sleeps(rig, splice):
    s = rig.simple(protocol="imap", send_proxy="v1", splice=splice, greeting=b"* OK\r\n",
                   echo=True, global_extra=("busy-poll 200us",))
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"* OK\r\n")
    lines = [b"a%d NOOP\r\n" % i for i in range(100)]
    for line in lines:  # one at a time: each echo comes back before the next
        c.send(line)
        c.wait_endswith(line)
    expect = b"* OK\r\n" + b"".join(lines)
    assert c.snapshot() == expect
    # Idle now: after at most 200us of polling the worker blocks in epoll_wait.
    # A loop that never stops polling stays runnable ("R") for good.
    h.wait_until(lambda: proc_state(s.me.proc.pid) == "S", what="the worker asleep")
    c.close()
    h.assert_session(s.me.wait_session(), bytes_in=len(expect) - 6, bytes_out=len(expect))

