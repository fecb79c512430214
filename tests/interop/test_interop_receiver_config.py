"""`mailedge receiver-config` against the real servers (issue 18): the
Postfix master.cf lines and the Dovecot settings it prints for a test
configuration are applied as printed to a Postfix and a Dovecot of their
own (a second mail stack: the printed haproxy_trusted_networks is global
and would narrow the shared stack's), and a session through mailedge then
works and the servers log the real client address, not the edge's, and
`mailedge verify` on the same configuration says every receiver agrees.

Postscreen gets PROXY v2, a submission smtpd v1, Dovecot IMAP v2: each
printed setting is the only thing that makes its port accept the header."""

import os
import re
import subprocess

import pytest

import mailstack as ms
from interop_kit import (EDGE_IP, backend_block, fmt_addr, free_port, global_block,
                         imap_fetch_marker, listener_block, swaks)
from test_interop_imap_pop3 import assert_dovecot_clean
from test_interop_smtp import assert_clean
from test_interop_verify import LINE


def settings(binary, conf_path, software):
    """The lines receiver-config prints for one server software, comments
    and blank lines left out, as an operator would paste them."""
    r = subprocess.run([binary, "receiver-config", "-c", conf_path, "--for", software],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
    return r.stdout, "".join(ln + "\n" for ln in lines)


@pytest.fixture
def own_stack(request):
    stacks = []

    def start(**kw):
        st = ms.MailStack(**kw)
        stacks.append(st)
        return st.up()

    yield start
    keep = request.session.testsfailed or os.environ.get("MAILEDGE_KEEP")
    for st in stacks:
        st.down(remove=not keep)
        if keep:
            print("\ninterop: logs of the receiver-config stack kept in %s" % st.base)


def test_printed_settings_work_on_real_servers(stack, mailedge_bin, edge, addrs, own_stack,
                                               tmp_path):
    # `stack`: the packages are installed. Ports for the receiving side first.
    used = set()
    ports = {}
    for name in ("recv_postscreen", "recv_submission"):
        ports[name] = ms.free_port("127.0.0.1", used)
        used.add(ports[name])
    ports["recv_imap"] = ms.free_port_both(used)
    p_smtp, p_sub = free_port(EDGE_IP), free_port(EDGE_IP)
    p_imap = free_port(EDGE_IP)
    text = (global_block()
            + backend_block("mx", [("pf", fmt_addr("127.0.0.1", ports["recv_postscreen"]))],
                            send_proxy="v2")
            + backend_block("sub", [("pf", fmt_addr("127.0.0.1", ports["recv_submission"]))],
                            send_proxy="v1")
            + backend_block("box", [("dc", fmt_addr("127.0.0.1", ports["recv_imap"]))],
                            send_proxy="v2")
            + listener_block("smtp", fmt_addr(EDGE_IP, p_smtp), "smtp", "mx")
            + listener_block("submission", fmt_addr(EDGE_IP, p_sub), "submission", "sub")
            + listener_block("imap", fmt_addr(EDGE_IP, p_imap), "imap", "box"))
    conf = tmp_path / "receiver.conf"
    conf.write_text(text)

    pf_out, master_cf = settings(mailedge_bin, str(conf), "postfix")
    dc_out, dovecot_conf = settings(mailedge_bin, str(conf), "dovecot")
    # The edge connects to 127.0.0.1 from 127.0.0.1 (the kernel's choice).
    assert "connecting from 127.0.0.1\n" in pf_out
    assert "PROXY v2: Postfix 3.5 or later is needed" in pf_out
    assert re.search(r"^%d +inet .* postscreen$" % ports["recv_postscreen"], master_cf, re.M)
    assert "haproxy_trusted_networks = 127.0.0.1/32\n" in dovecot_conf

    st = own_stack(ports=ports, extra_master_cf=master_cf, extra_dovecot_conf=dovecot_conf)
    for port in (ports["recv_postscreen"], ports["recv_submission"], ports["recv_imap"]):
        ms.wait_until(lambda: ms.listening("127.0.0.1", port), 20 * ms.SCALE,
                      "the printed service on port %d" % port)
    # The printed Dovecot line replaced the stack's own trusted networks.
    r = subprocess.run(["doveconf", "-c", st.dc_conf, "-h", "haproxy_trusted_networks"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert r.stdout.strip() == "127.0.0.1/32", r.stdout
    pf_mark, dc_mark = st.postfix_log.mark(), st.dovecot_log.mark()

    me = edge(text)
    # SMTP into postscreen (v2) and into the submission smtpd (v1).
    for port, service in ((p_smtp, "postscreen"), (p_sub, "smtpd")):
        client = addrs.next()
        marker = "recvconf-%s-%s" % (service, client)
        rc, out = swaks(EDGE_IP, port, client, marker)
        assert rc == 0, out
        st.wait_message(marker)
        sess = me.wait_session(client_ip=client)
        cport = int(sess["client"].rsplit(":", 1)[1])
        if service == "postscreen":
            st.postfix_log.wait_for(r"postfix/postscreen\[\d+\]: CONNECT from \[%s\]:%d to "
                                    r"\[%s\]:%d$" % (re.escape(client), cport,
                                                      re.escape(EDGE_IP), port), since=pf_mark)
        st.postfix_log.wait_for(r"postfix/smtpd\[\d+\]: connect from unknown\[%s\]:%d$"
                                % (re.escape(client), cport), since=pf_mark)
    assert_clean(st.postfix_log.lines(pf_mark))

    # IMAP into Dovecot (v2), trusted only because of the printed line.
    client = addrs.next()
    marker = "recvconf-imap-%s" % client
    st.put_message(marker)
    local, body = imap_fetch_marker(EDGE_IP, p_imap, client, marker)
    assert marker.encode() in body
    st.dovecot_log.wait_for(r"imap-login: Info: Login: user=<test>, method=PLAIN, rip=%s, "
                            r"lip=%s, .*rport=%d, lport=%d$"
                            % (re.escape(client), re.escape(EDGE_IP), local[1], p_imap),
                            since=dc_mark)
    assert_dovecot_clean(st.dovecot_log.lines(dc_mark))

    # verify on the same configuration: every receiver agrees, for both
    # client families. The printed lines are for the edge's IPv4 source
    # (127.0.0.1); the IPv6 client is only an address inside the header,
    # and this stack's Postfix has inet_protocols = all, so it agrees too.
    r = subprocess.run([mailedge_bin, "verify", "-c", str(conf)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=120 * ms.SCALE)
    got = {}
    for ln in r.stdout.splitlines():
        m = LINE.match(ln)
        assert m, "unparsed verify line: " + ln
        got[(m.group(1), m.group(5))] = m.group(6)
    want = {(b, fam): "agrees" for b in ("mx", "sub", "box") for fam in ("ipv4", "ipv6")}
    assert got == want, r.stdout + r.stderr
    assert r.returncode == 0 and r.stderr == "", r.stdout + r.stderr
