"""Per-server counters belong to the server's name: a reload that changes
the backend keeps them, so a dashboard's rate() sees no reset (issue 21:
the mutation check found nothing that pinned it)."""

import harness as h
from test_reload import GREET_A, Conf, greeting_of, scrape
from test_admin import metric


def test_server_counters_continue_across_reload(rig):
    a = rig.backend(2, greeting=GREET_A)
    refusing = rig.refusing()
    lip = rig.ip(1)
    lport = h.free_port(lip)
    conf = Conf(rig, rig.endpoint(5))

    def body(servers):
        return (h.backend_block("mail", servers, extra=["balance first"])
                + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail"))

    def count(name, server):
        return metric(scrape(conf.admin), name, backend="mail", server=server) or 0

    def errors(server):
        return sum(v for (name, labels), v in scrape(conf.admin).items()
                   if name == "mailedge_server_connect_errors_total"
                   and ("server", server) in labels)

    # srv0 refuses and comes first: each session costs it one connect error
    # before srv1 serves it.
    me = conf.start(body([("srv0", refusing.addr), ("srv1", a.addr)]))
    for n in (1, 2):
        assert greeting_of(rig, lip, lport, source_host=10 + n) == GREET_A
        me.wait_session(n)
    assert count("mailedge_server_connects_total", "srv1") == 2
    assert errors("srv0") == 2
    # The backend changes (a server added), its servers' counters stay.
    conf.write(body([("srv0", refusing.addr), ("srv1", a.addr), ("srv2", a.addr)]))
    conf.reload()
    assert count("mailedge_server_connects_total", "srv1") == 2
    assert count("mailedge_server_connect_duration_seconds_count", "srv1") == 2
    assert errors("srv0") == 2
    assert count("mailedge_server_connects_total", "srv2") == 0
