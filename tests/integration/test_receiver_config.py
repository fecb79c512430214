"""`mailedge receiver-config` (issue 18): the receiving side's settings for
each backend, with the edge's real source address. The text itself is
checked by tests/unit/test_receiver.c; here: the command line, and that the
address it prints is the one the receiver really sees (the kernel's pick,
127.0.0.1 toward any 127.x address)."""

import re

import harness as h


def _conf(rig, backend_addr, send_proxy="v1", smtp=None):
    return ("backend mx {\n"
            "    server a %s\n"
            "    send-proxy %s\n"
            "}\n"
            "backend box {\n"
            "    server a [::1]:10143\n"
            "    send-proxy v2\n"
            "}\n"
            "listener smtp {\n"
            "    bind %s\n"
            "    protocol smtp\n"
            "    route -> mx\n"
            "}\n"
            "listener imap {\n"
            "    bind %s\n"
            "    protocol imap\n"
            "    route -> box\n"
            "}\n" % (backend_addr, send_proxy, h.fmt_addr(*(smtp or rig.endpoint(1))),
                     h.fmt_addr(*rig.endpoint(3))))


def _run(rig, *args):
    r = h.run_mailedge(rig.binary, ["receiver-config"] + list(args))
    for m in h.SANITIZER_MARKERS:
        assert m not in r.stderr, r.stderr
    return r


def test_printed_source_is_what_the_receiver_sees(rig):
    b = rig.backend(greeting=b"220 mx ESMTP\r\n", greet_when=h.Backend.after_proxy_header)
    ip, port = rig.endpoint(1)
    me = rig.start(_conf(rig, b.addr, smtp=(ip, port)))
    r = _run(rig, "-c", me.conf_path, "mx")
    assert r.returncode == 0, r.stderr
    src = re.search(r"^# mailedge sends a PROXY v1 header, connecting from (\S+)$", r.stdout,
                    re.M).group(1)
    assert "\n%-10d inet  n       -       -       -       1       postscreen\n" % b.port in r.stdout
    assert 'proxy.trusted-networks = ["%s/32"]' % src in r.stdout
    assert "# backend box" not in r.stdout

    c = rig.client(ip, port)
    conn = b.wait_conn()
    assert conn.sock.getpeername()[0] == src
    c.wait_contains(b"220 mx ESMTP")
    c.close()
    me.wait_session()


def test_for_and_backend_filters(rig):
    path = rig.write_config(_conf(rig, "127.0.0.1:10025"))
    r = _run(rig, "-c", path, "--for", "dovecot")
    assert r.returncode == 0, r.stderr
    assert "haproxy_trusted_networks = ::1/128\n" in r.stdout
    assert "inet_listener imap_mailedge_10143 {\n    port = 10143\n    haproxy = yes\n" in r.stdout
    assert "Nothing for the chosen server software: it does not speak SMTP." in r.stdout
    assert "Stalwart" not in r.stdout and "postscreen" not in r.stdout
    r = _run(rig, "-c", path, "--for", "postfix", "--for", "stalwart", "box")
    assert r.returncode == 0 and "# backend mx" not in r.stdout
    assert '[server.listener."mailedge-imap-10143"]' in r.stdout


def test_usage_errors(rig):
    path = rig.write_config(_conf(rig, "127.0.0.1:10025"))
    r = _run(rig, "-c", path, "nope")
    assert r.returncode == 2
    assert r.stderr == "mailedge receiver-config: no backend 'nope' in %s (backends: mx, box)\n" % path
    r = _run(rig, "-c", path, "--for", "exim")
    assert r.returncode == 2 and "unknown server software 'exim'" in r.stderr
    r = _run(rig, "--bogus")
    assert r.returncode == 2 and r.stderr.startswith("mailedge receiver-config: unknown option")
    r = _run(rig, "-c")
    assert r.returncode == 2 and "-c needs a value" in r.stderr
    r = _run(rig, "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: mailedge receiver-config")


def test_invalid_config_and_warnings(rig):
    path = rig.write_config(_conf(rig, "127.0.0.1:10025", send_proxy="v3"))
    r = _run(rig, "-c", path)
    assert r.returncode == 1 and r.stdout == ""
    assert re.match(r"%s:3:16: " % re.escape(path), r.stderr), r.stderr
    # A warning is shown, and the settings are printed all the same.
    text = _conf(rig, "127.0.0.1:10025").replace("    protocol imap\n",
                                                  "    protocol imap\n"
                                                  "    accept-proxy v2 from 0.0.0.0/0\n")
    path = rig.write_config(text)
    r = _run(rig, "-c", path)
    assert r.returncode == 0
    assert ": warning: accept-proxy from 0.0.0.0/0 trusts a wide range" in r.stderr
    assert "# backend mx" in r.stdout and "# backend box" in r.stdout
