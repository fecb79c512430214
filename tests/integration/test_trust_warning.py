"""accept-proxy from a wide range (issue 18): `mailedge -t`, the start and a
reload warn with FILE:LINE:COL, and the configuration still loads. The rule
(docs/config.md, accept-proxy): IPv4 shorter than /8, IPv6 shorter than /32
outside fc00::/7 and fe80::/10, or covering IPv4 (::ffff:0:0/96)."""

import os
import signal

import harness as h


def _body(rig, trusted):
    b = rig.backend()
    return ("listener in {\n"
            "    bind %s\n"
            "    protocol smtp\n"
            "    accept-proxy v2 from %s\n"
            "    route -> %s\n"
            "}\n" % (h.fmt_addr(*rig.endpoint()), trusted, b.addr))


def _msg(net):
    return ("warning: accept-proxy from %s trusts a wide range: any host in it can claim any "
            "client address; list only your proxies" % net)


def test_check_warns_and_passes(rig):
    path = rig.write_config(_body(rig, "127.0.0.0/8 0.0.0.0/0 ::/0 2001:db8::/32"))
    r = h.run_mailedge(rig.binary, ["-t", "-c", path])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("%s: configuration ok" % path)
    assert r.stderr.splitlines() == ["%s:4:38: %s" % (path, _msg("0.0.0.0/0")),
                                     "%s:4:48: %s" % (path, _msg("::/0"))]


def test_check_quiet_for_narrow_ranges(rig):
    path = rig.write_config(_body(rig, "10.0.0.0/8 fc00::/7 2001:db8::/32 127.0.0.1"))
    r = h.run_mailedge(rig.binary, ["-t", "-c", path])
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_warning_with_an_error_still_fails(rig):
    path = rig.write_config(_body(rig, "0.0.0.0/0 10.0.0.1/8"))
    r = h.run_mailedge(rig.binary, ["-t", "-c", path])
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("%s:4:36: bad network '10.0.0.1/8'" % path)
    assert lines[1] == "%s:4:26: %s" % (path, _msg("0.0.0.0/0"))


def test_start_and_reload_log_the_warning(rig):
    me = rig.start(_body(rig, "0.0.0.0/1"))
    line = open(me.conf_path).read().splitlines().index("    accept-proxy v2 from 0.0.0.0/1") + 1
    w = me.events("config_warning")
    assert [d["warning"] for d in w] == ["%s:%d:26: %s" % (me.conf_path, line, _msg("0.0.0.0/1"))]
    assert w[0]["level"] == "warn"
    # A reload to a file that still trusts too much: warned again, and it succeeds.
    text = open(me.conf_path).read().replace("0.0.0.0/1", "::ffff:0:0/96")
    with open(me.conf_path + ".tmp", "w") as f:
        f.write(text)
    os.rename(me.conf_path + ".tmp", me.conf_path)
    me.signal(signal.SIGHUP)
    rel = me.wait_log("reload")[0]
    assert rel["result"] == "success", me.describe()
    w = me.events("config_warning")
    assert len(w) == 2 and _msg("::ffff:0:0/96") in w[1]["warning"]
