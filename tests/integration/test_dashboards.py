"""Every metric the Grafana dashboard (contrib/grafana) and the alert rules
(contrib/prometheus) query exists in a running mailedge's /metrics, so a
renamed metric fails here instead of leaving an empty panel or an alert
that never fires."""

import json
import os
import re

import pytest
import yaml

import harness as h
from test_admin import http, parse_exposition

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DASHBOARD = os.path.join(ROOT, "contrib", "grafana", "mailedge-dashboard.json")
RULES = os.path.join(ROOT, "contrib", "prometheus", "mailedge-rules.yml")
NAME = re.compile(r"\b((?:mailedge|process)_[a-zA-Z0-9_]+)")
# Series Prometheus makes itself, not mailedge.
SYNTHETIC = {"up"}


def _exprs_of_dashboard(path):
    with open(path) as f:
        d = json.load(f)
    out = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    out += [v["query"] for v in d["templating"]["list"] if v["type"] == "query"]
    assert len(out) > 15, "no queries found in %s" % path
    return out


def _exprs_of_rules(path):
    with open(path) as f:
        d = yaml.safe_load(f)
    out = [r["expr"] for g in d["groups"] for r in g["rules"]]
    assert len(out) >= 8, "no rules found in %s" % path
    return out


def names(exprs):
    return {n for e in exprs for n in NAME.findall(e)}


def exposed(text):
    """Sample names and family names of an exposition."""
    samples, types = parse_exposition(text)
    return {name for name, _ in samples} | set(types)


@pytest.fixture
def metrics_text(rig):
    """A mailedge with every metric family on: a checked backend, abuse
    control, inbound PROXY, the admin endpoint, a CrowdSec ban sync (to a
    port where nothing listens: the sync's metrics exist all the same)."""
    admin = rig.endpoint(5)
    lapi = rig.endpoint(6)
    key = os.path.join(str(rig.tmp), "crowdsec.key")
    with open(key, "w") as f:
        f.write("k" * 32 + "\n")
    os.chmod(key, 0o600)
    be = rig.backend(greeting=b"220 x\r\n")
    lip = rig.ip(1)
    body = (h.backend_block("mailbox", [("mx1", be.addr)],
                            extra=["check tcp interval 200ms", "queue-timeout 5s"])
            + h.listener_block("smtp", h.fmt_addr(lip, h.free_port(lip)), "smtp", "mailbox",
                               accept_proxy="v2 from 127.0.0.0/8",
                               extra=["limit per-ip 5", "ban 1m after 5", "pregreet count"]))
    rig.start(body, global_extra=["admin %s" % h.fmt_addr(*admin),
                                  "crowdsec http://%s" % h.fmt_addr(*lapi),
                                  "crowdsec-key-file %s" % key])
    status, _, text = http(admin, "/metrics")
    assert status == 200
    return text


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_queried_metrics_exist(metrics_text, source):
    exprs = (_exprs_of_dashboard(DASHBOARD) if source == "dashboard" else _exprs_of_rules(RULES))
    wanted = names(exprs) - SYNTHETIC
    assert wanted, "no metric names found"
    missing = sorted(wanted - exposed(metrics_text))
    assert not missing, "queried but not in /metrics: %s" % missing


def test_name_check_catches_a_rename(metrics_text):
    """The check above can fail: a name mailedge does not export is found."""
    exprs = ['rate(mailedge_sessions_totl{instance="x"}[5m])', "process_open_fds / process_max_fds"]
    assert names(exprs) == {"mailedge_sessions_totl", "process_open_fds", "process_max_fds"}
    assert names(exprs) - exposed(metrics_text) == {"mailedge_sessions_totl"}
