"""Command line: -t (configuration check) and -V."""

import re

import pytest

import harness as h

GOOD = """\
global {
    log stderr format logfmt level info
    grace 10s
    splice off
    timeout connect 2s
    timeout proxy 3s
    timeout idle 30m
}

backend mailbox {
    server one 127.0.0.2:2525
    server two [::1]:2525
    send-proxy v2
    balance first
    timeout connect 500ms
}

listener smtp {
    bind 127.0.0.3:2525 [::1]:2526
    protocol smtp
    accept-proxy v2 from 127.0.0.0/8 ::1/128
    route -> mailbox
    timeout proxy 1s
    timeout idle 1h
}

listener direct {
    bind 127.0.0.3:2527
    protocol tcp
    route -> 127.0.0.2:2528
}
"""


def _write(tmp_path, text, name="t.conf"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def _check(binary, path):
    return h.run_mailedge(binary, ["-t", "-c", path])


def _no_sanitizer(r):
    for m in h.SANITIZER_MARKERS:
        assert m not in r.stderr, "sanitizer report:\n" + r.stderr


def test_check_good_config(binary, tmp_path):
    path = _write(tmp_path, GOOD)
    r = _check(binary, path)
    _no_sanitizer(r)
    assert r.returncode == 0, "valid config rejected:\n%s%s" % (r.stdout, r.stderr)
    out = r.stdout + r.stderr
    assert "ok" in out.lower(), "no confirmation printed: %r" % out
    assert path in out, "the file name is not in the confirmation: %r" % out


@pytest.mark.parametrize("protocol", ["smtp", "submission", "imap", "pop3", "tls", "tcp"])
def test_check_every_protocol(binary, tmp_path, protocol):
    text = "listener l {\n    bind 127.0.0.3:1\n    protocol %s\n    route -> 127.0.0.2:2\n}\n" \
        % protocol
    r = _check(binary, _write(tmp_path, text))
    assert r.returncode == 0, r.stderr


def _line_of(text, needle):
    for i, ln in enumerate(text.splitlines(), 1):
        if needle in ln:
            return i, ln.index(needle) + 1
    raise AssertionError(needle)


def _diags(r, path):
    """[(line, col, msg)] of FILE:LINE:COL: message lines on stderr."""
    out = []
    for ln in r.stderr.splitlines():
        m = re.match(r"^%s:(\d+):(\d+): (.+)$" % re.escape(path), ln)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return out


def _bad(binary, tmp_path, text, name="bad.conf"):
    path = _write(tmp_path, text, name)
    r = _check(binary, path)
    _no_sanitizer(r)
    assert r.returncode == 1, "invalid config: expected exit 1, got %d\n%s%s" % (
        r.returncode, r.stdout, r.stderr)
    d = _diags(r, path)
    assert d, "no FILE:LINE:COL: message on stderr:\n%s" % r.stderr
    return d, r


def test_check_unknown_directive(binary, tmp_path):
    text = GOOD.replace("    balance first\n", "    balance first\n    frobnicate yes\n")
    line, col = _line_of(text, "frobnicate")
    d, r = _bad(binary, tmp_path, text)
    assert (line, col) in [(ln, c) for ln, c, _ in d], \
        "expected %d:%d (1-based, start of the word) in:\n%s" % (line, col, r.stderr)


def test_check_route_to_unknown_backend(binary, tmp_path):
    text = GOOD.replace("route -> mailbox", "route -> nosuch")
    line, col_route = _line_of(text, "route -> nosuch")
    col_name = col_route + len("route -> ")
    d, r = _bad(binary, tmp_path, text)
    assert any(ln == line and c in (col_route, col_name) for ln, c, _ in d), \
        "expected line %d col %d or %d:\n%s" % (line, col_route, col_name, r.stderr)
    assert any("nosuch" in m for _, _, m in d), "message does not name the backend"


BAD_CASES = {
    "unknown-protocol": ("protocol smtp", "protocol http"),
    "duration-without-unit": ("timeout idle 1h", "timeout idle 45"),
    "bad-cidr": ("127.0.0.0/8 ::1/128", "127.0.0.0/33 ::1/128"),
    "bad-send-proxy": ("send-proxy v2", "send-proxy v3"),
    "bad-bind": ("bind 127.0.0.3:2525", "bind 127.0.0.3:99999"),
    "bad-balance": ("balance first", "balance random-ish"),
    "bad-splice": ("splice off", "splice maybe"),
    "bad-server-address": ("server one 127.0.0.2:2525", "server one 127.0.0.256:2525"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_check_bad_values(binary, tmp_path, case):
    old, new = BAD_CASES[case]
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    line, _ = _line_of(text, new)
    d, r = _bad(binary, tmp_path, text)
    assert line in [ln for ln, _, _ in d], "expected line %d:\n%s" % (line, r.stderr)


def test_check_missing_protocol(binary, tmp_path):
    text = GOOD.replace("    protocol tcp\n", "")
    d, r = _bad(binary, tmp_path, text)
    start, _ = _line_of(text, "listener direct")
    assert any(ln >= start for ln, _, _ in d), r.stderr


def test_check_unterminated_block(binary, tmp_path):
    _bad(binary, tmp_path, GOOD.rstrip().rstrip("}") + "\n")


def test_check_reports_every_error(binary, tmp_path):
    text = GOOD.replace("protocol smtp", "protocol http").replace("balance first",
                                                                   "balance sideways")
    d, r = _bad(binary, tmp_path, text)
    lines = {ln for ln, _, _ in d}
    assert {_line_of(text, "protocol http")[0], _line_of(text, "balance sideways")[0]} <= lines, \
        r.stderr


def test_check_missing_file(binary, tmp_path):
    r = _check(binary, str(tmp_path / "nope.conf"))
    assert r.returncode == 1
    assert "nope.conf" in r.stderr


def test_run_with_bad_config_fails(binary, tmp_path):
    """Without -t, an invalid config still stops the start, non-zero exit."""
    path = _write(tmp_path, GOOD.replace("route -> mailbox", "route -> nosuch"))
    r = h.run_mailedge(binary, ["-c", path])
    _no_sanitizer(r)
    assert r.returncode != 0
    assert _diags(r, path), r.stderr


def test_version(binary):
    r = h.run_mailedge(binary, ["-V"])
    _no_sanitizer(r)
    assert r.returncode == 0
    out = r.stdout + r.stderr
    assert "mailedge" in out
    assert re.search(r"\d+\.\d+(\.\d+)?", out), "no version number in %r" % out


ENV_CONF = """\
backend b {
    server s1 ${MAILEDGE_TEST_SERVER}
    server s2 ${MAILEDGE_TEST_UNSET_VAR:-127.0.0.2:2526}
}
listener l {
    bind 127.0.0.3:2525
    protocol smtp
    route -> b
}
"""


def test_check_environment_expansion(binary, tmp_path, monkeypatch):
    path = _write(tmp_path, ENV_CONF)
    monkeypatch.delenv("MAILEDGE_TEST_UNSET_VAR", raising=False)
    monkeypatch.setenv("MAILEDGE_TEST_SERVER", "127.0.0.2:2525")
    r = _check(binary, path)
    assert r.returncode == 0, r.stderr
    monkeypatch.delenv("MAILEDGE_TEST_SERVER")
    d, r = _bad(binary, tmp_path, ENV_CONF, "env.conf")
    assert 2 in [ln for ln, _, _ in d], r.stderr
    assert any("MAILEDGE_TEST_SERVER" in m for _, _, m in d), r.stderr


MINI = """\
backend b {
    server s1 127.0.0.2:2525
}
listener l {
    bind 127.0.0.3:2525
    protocol smtp
    route -> b
}
"""

STRUCTURE_CASES = {
    # name: (text, line expected in a diagnostic)
    "duplicate-backend": (MINI + MINI.split("listener")[0], 9),
    "duplicate-listener": (MINI + "listener" + MINI.split("listener")[1].replace("2525", "2526"),
                           9),
    "no-route": (MINI.replace("    route -> b\n", ""), 4),
    "no-server": (MINI.replace("    server s1 127.0.0.2:2525\n", ""), 1),
    "same-bind-in-two-listeners": (MINI + "listener l2" + MINI.split("listener l")[1], 10),
    "missing-open-brace": (MINI.replace("listener l {", "listener l"), 4),
    "stray-close-brace": (MINI + "}\n", 9),
    "fractional-duration": ("global {\n    grace 1.5s\n}\n" + MINI, 2),
    "unknown-unit": ("global {\n    grace 3d\n}\n" + MINI, 2),
    "timeout-proxy-in-backend": (MINI.replace("2525\n}", "2525\n    timeout proxy 1s\n}", 1), 3),
    "accept-proxy-without-from": (MINI.replace("protocol smtp", "protocol smtp\n    accept-proxy v2"),
                                  7),
    "route-address-without-port": (MINI.replace("route -> b", "route -> 127.0.0.2"), 7),
}


@pytest.mark.parametrize("case", sorted(STRUCTURE_CASES))
def test_check_structure_errors(binary, tmp_path, case):
    text, line = STRUCTURE_CASES[case]
    d, r = _bad(binary, tmp_path, text)
    assert line in [ln for ln, _, _ in d], "expected line %d:\n%s\n%s" % (line, text, r.stderr)


MORE_BAD = {
    "zero-timeout": ("global {\n    timeout idle 0s\n}\n" + MINI, 2),
    "timeout-over-24h": ("global {\n    timeout proxy 25h\n}\n" + MINI, 2),
    "relative-log-path": ("global {\n    log relative.log\n}\n" + MINI, 2),
    "cidr-host-bits": (MINI.replace("protocol smtp", "protocol smtp\n    accept-proxy v2 from 127.0.0.1/8"), 7),
    "unterminated-quote": (MINI.replace("route -> b", 'route -> "b'), 7),
    "accept-proxy-version-change": (MINI.replace(
        "protocol smtp", "protocol smtp\n    accept-proxy v2 from 127.0.0.0/8\n"
                         "    accept-proxy v1 from ::1/128"), 8),
}


@pytest.mark.parametrize("case", sorted(MORE_BAD))
def test_check_more_bad_values(binary, tmp_path, case):
    text, line = MORE_BAD[case]
    d, r = _bad(binary, tmp_path, text)
    assert line in [ln for ln, _, _ in d], "expected line %d:\n%s\n%s" % (line, text, r.stderr)


def test_check_include_loop(binary, tmp_path):
    (tmp_path / "b.conf").write_text("include a.conf\n")
    path = _write(tmp_path, "include b.conf\n" + MINI, "a.conf")
    r = _check(binary, path)
    assert r.returncode == 1
    assert re.search(r"b\.conf:1:\d+: ", r.stderr), r.stderr


def test_check_gives_up_after_50_errors(binary, tmp_path):
    path = _write(tmp_path, "".join("frob%d x\n" % i for i in range(80)))
    r = _check(binary, path)
    assert r.returncode == 1
    assert 45 <= len(_diags(r, path)) <= 52, r.stderr
    assert "too many errors" in r.stderr
