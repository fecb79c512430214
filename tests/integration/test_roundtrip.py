"""`mailedge roundtrip` (issue 10) without a mail stack: usage errors
(exit 3, nothing sent or pushed), a dead SMTP port (exit 1, the failure
still pushed), and the push retries against a local HTTP receiver. The
full round trip against real Postfix and Dovecot, every exit status
included, is tests/interop/test_interop_roundtrip.py.

Loopback only; each test has its own 127.X.Y.0/24."""

import os
import re
import subprocess

import pytest

import harness as h
from pushreceiver import Receiver


@pytest.fixture
def receivers(net):
    made = []

    def make(host, script=(), default=200):
        r = Receiver(net.ip(host), script, default)
        made.append(r)
        return r
    yield make
    for r in made:
        r.close()


def run(binary, args, password="pw", env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("MAILEDGE_ROUNDTRIP_")}
    if password is not None:
        e["MAILEDGE_ROUNDTRIP_PASSWORD"] = password
    e.update(env or {})
    p = subprocess.run([binary, "roundtrip"] + list(args), capture_output=True, text=True,
                       env=e, timeout=h.DEADLINE * 4)
    for m in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert m not in p.stderr, p.stderr
    return p.returncode, p.stdout, p.stderr


def dead_smtp(net):
    ip, port = net.endpoint(3)      # nothing listens there
    return ["--smtp", "smtp://%s:%d" % (ip, port), "--imap", "imap://%s:%d" % (ip, port),
            "--user", "mon@example.test", "--timeout", "2s", "--backoff", "10ms"]


def fields(out):
    lines = out.splitlines()
    assert len(lines) == 1, out
    return dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', lines[0]))


def test_roundtrip_smtp_dead_pushes_failure(binary, net, receivers):
    pg, pu = receivers(1), receivers(2)
    rc, out, err = run(binary, dead_smtp(net) + [
        "--pushgateway", pg.url(), "--push-url", pu.url("/api/push/t0k"), "--job", "j1",
        "--instance", "i1"])
    assert rc == 1, out + err
    f = fields(out)
    assert f["roundtrip"] == "failed" and f["stage"] == "smtp" and f["push"] == "ok", out
    assert re.fullmatch(r"[0-9a-f]{32}", f["token"])
    assert len(pg.requests) == 1 and len(pu.requests) == 1
    m, path, body, _ = pg.requests[0]
    assert (m, path) == ("PUT", "/metrics/job/j1/instance/i1")
    assert "\nmailedge_roundtrip_success 0\n" in body and "duration" not in body
    m, path, _, _ = pu.requests[0]
    assert m == "GET" and path.startswith("/api/push/t0k?status=down&msg=smtp%3A%20"), path


def test_roundtrip_push_retries_then_ok(binary, net, receivers):
    """500, 500, 200: exactly 3 requests. The round trip failed, so exit 1
    whatever the pushes did."""
    pg = receivers(1, script=[500, 500])
    rc, out, err = run(binary, dead_smtp(net),
                       env={"MAILEDGE_ROUNDTRIP_PUSHGATEWAY": pg.url()})
    assert rc == 1, out + err
    assert fields(out)["pushgateway"] == "ok"
    assert len(pg.requests) == 3
    assert "attempt 1/3: HTTP 500" in err and "attempt 2/3: HTTP 500" in err


def test_roundtrip_push_all_fail(binary, net, receivers):
    pg = receivers(1, default=500)
    refused_ip, refused_port = net.endpoint(4)
    rc, out, err = run(binary, dead_smtp(net) + [
        "--pushgateway", pg.url(),
        "--push-url", "http://%s:%d/api/push/secret-token" % (refused_ip, refused_port)])
    assert rc == 1, out + err
    f = fields(out)
    assert f["pushgateway"] == "failed" and f["push_url"] == "failed" and f["push"] == "failed"
    assert len(pg.requests) == 3
    assert err.count("push push-url attempt") == 3
    assert "secret-token" not in err + out


@pytest.mark.parametrize("args,password,msg", [
    (["--password", "hunter2"], "pw", "refusing a password on the command line"),
    (["--pass=hunter2"], "pw", "refusing a password on the command line"),
    (["-phunter2"], "pw", "refusing a password on the command line"),
    ([], None, "no password"),
    (["--password-file", "/nonexistent/pwfile"], None, "No such file"),
    (["--smtp", "smtp://u:hunter2@127.0.0.1:1"], "pw", "refusing credentials"),
    (["--pushgateway", "http://u:hunter2@127.0.0.1:1"], "pw", "refusing credentials"),
    (["--timeout", "10"], "pw", "not a duration"),
    (["--starttls", "maybe"], "pw", "--starttls"),
    (["--poll-attempts", "x"], "pw", "--poll-attempts"),
    (["--instance", "a", "b"], "pw", "unexpected argument 'b'"),
    (["--to", "a@b>"], "pw", "not a plain address"),
], ids=["password", "pass=", "p", "none", "file", "smtp-cred", "pg-cred", "timeout",
        "starttls", "poll", "extra", "to"])
def test_roundtrip_usage_exit3(binary, net, receivers, args, password, msg):
    pg = receivers(1)
    base = dead_smtp(net) + ["--pushgateway", pg.url()]
    for a in args:
        if a.startswith("--smtp") and "--smtp" in base:
            i = base.index("--smtp")
            del base[i:i + 2]
    rc, out, err = run(binary, base + args, password=password)
    assert rc == 3, out + err
    assert msg in err, err
    assert out == "" and not pg.requests
    assert "hunter2" not in err


def test_roundtrip_empty_password_file(binary, net, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("\n")
    rc, out, err = run(binary, dead_smtp(net) + ["--password-file", str(pw)], password=None)
    assert rc == 3 and "empty" in err, err


def test_roundtrip_help(binary):
    rc, out, err = run(binary, ["--help"], password=None)
    assert rc == 0 and out.startswith("usage: mailedge roundtrip"), out + err
