"""contrib/prometheus/mailedge-rules.yml end to end: a real Prometheus
(Debian's package, in the foreground, a throwaway config and storage on a
loopback port, 1 s scrape and evaluation) scrapes a running mailedge; the
only server of a backend stops, and MailedgeBackendNoLiveServer fires, as
Prometheus's own /api/v1/alerts says. The rules' `for:` durations are
tested by promtool (mailedge-rules.test.yml); here they are set to 0s so
the test takes seconds. Run by `make prometheus-test`."""

import json
import os
import shutil
import subprocess
import sys
import urllib.request

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as h  # noqa: E402
from test_ops_metrics import start_checked  # noqa: E402

RULES = os.path.join(HERE, "..", "..", "contrib", "prometheus", "mailedge-rules.yml")


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())
    except OSError:
        return None


def alerts(prom, name):
    d = get("http://%s/api/v1/alerts" % prom)
    return [a for a in (d or {}).get("data", {}).get("alerts", []) if a["labels"]["alertname"] == name]


@pytest.fixture
def prometheus(tmp_path, request):
    exe = shutil.which("prometheus")
    if exe is None:
        pytest.fail("prometheus is missing (scripts/deps.sh prometheus)", pytrace=False)
    procs = []

    def start(targets):
        net = h.allocate_net(request.node.nodeid + "-prom")
        listen = "%s:%d" % (net.ip(1), h.free_port(net.ip(1)))
        with open(RULES) as f:
            rules = yaml.safe_load(f)
        for g in rules["groups"]:
            for r in g["rules"]:
                r["for"] = "0s"
        (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp_path / "rules.yml")],
            "scrape_configs": [{"job_name": "mailedge", "static_configs": [{"targets": targets}]}],
        }))
        log = open(tmp_path / "prometheus.log", "w")
        p = subprocess.Popen([exe, "--config.file=%s" % (tmp_path / "prometheus.yml"),
                              "--storage.tsdb.path=%s" % (tmp_path / "data"),
                              "--web.listen-address=%s" % listen],
                             stdout=log, stderr=subprocess.STDOUT)
        procs.append(p)
        h.wait_until(lambda: get("http://%s/api/v1/status/config" % listen), timeout=30,
                     what="prometheus to answer")
        return listen
    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=30)


def test_no_live_server_alert_fires(rig, prometheus):
    admin, be = start_checked(rig, "mailbox")
    prom = prometheus([h.fmt_addr(*admin)])

    def scraped_up():
        d = get("http://%s/api/v1/query?query=mailedge_server_up" % prom)
        res = (d or {}).get("data", {}).get("result", [])
        return res and res[0]["value"][1] == "1"
    h.wait_until(scraped_up, timeout=60, what="a scrape with the server up")
    assert alerts(prom, "MailedgeBackendNoLiveServer") == []

    be.close()
    h.wait_until(lambda: any(a["state"] == "firing" for a in
                             alerts(prom, "MailedgeBackendNoLiveServer")),
                 timeout=60, what="MailedgeBackendNoLiveServer firing")
    (a,) = alerts(prom, "MailedgeBackendNoLiveServer")
    assert a["labels"]["backend"] == "mailbox"
    assert a["labels"]["severity"] == "critical"
    assert a["labels"]["instance"] == h.fmt_addr(*admin)
