"""Fixtures for the interop suite: real Postfix, Dovecot and HAProxy around
mailedge, all on loopback.

One Postfix + Dovecot per pytest session (`stack`); each test gets fresh
client addresses (`addrs.next()`), its own mailedge (`edge(...)`) and HAProxy
(`haproxy(...)`), stopped at teardown by PID. The packages are installed on
first use when running as root (`mailstack.ensure_packages`); when they are
missing and cannot be installed, every test that needs them fails.

Run:  /usr/bin/python3 -m pytest -m interop tests/interop
      MAILEDGE_BIN=build/san/mailedge MAILEDGE_SAN=1 ... (sanitizer build)
Without a mailedge binary the probe tests still run; the others fail.
The summary line counts the tests that ran mailedge apart from the records of
server behaviour (marked `record`: test_interop_probes.py), which never start it.
"""

import os

import pytest

import interop_kit as k
import mailstack as ms


def pytest_configure(config):
    config.addinivalue_line("markers", "interop: needs real Postfix/Dovecot/HAProxy (root)")
    config.addinivalue_line("markers", "slow: takes several seconds (server timeouts)")
    config.addinivalue_line("markers", "record: records what a real server does; mailedge is "
                            "not involved")
    config.addinivalue_line("markers", "disruptive: crashes a (dedicated) Postfix service; "
                            "runs after every other test")


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.fspath).startswith(here + os.sep):
            item.add_marker(pytest.mark.interop)
    # Tests that crash a Postfix process run last: master's late lines about
    # it ("exit status 1", "throttling") name no service and would otherwise
    # land in the next test's log slice.
    items.sort(key=lambda it: 1 if it.get_closest_marker("disruptive") else 0)
    config._interop_items = [it for it in items if str(it.fspath).startswith(here + os.sep)]


def pytest_report_header(config):
    b = k.mailedge_binary()
    return "interop: mailedge binary %s (sanitizer build: %s, deadlines x%.0f)" % (
        b or "missing (mailedge tests fail)", "yes" if k.SAN else "no", k.SCALE)


_PASSED = set()


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed:
        _PASSED.add(report.nodeid)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """How many passed tests exercised mailedge and how many are records of
    what the real servers do (no mailedge started), so the count is honest."""
    items = getattr(config, "_interop_items", [])
    ran = [it for it in items if it.nodeid in _PASSED]
    records = sum(1 for it in ran if it.get_closest_marker("record"))
    if ran:
        terminalreporter.write_line(
            "interop: %d passed tests exercised mailedge, %d are records of server "
            "behaviour without mailedge" % (len(ran) - records, records))


@pytest.fixture(scope="session")
def stack(request):
    # Missing packages or a failed install fail the tests, never skip them:
    # a green run that left out the real servers would say nothing.
    if os.geteuid() != 0 and ms.missing_packages():
        pytest.fail("interop needs root or the packages: " + " ".join(ms.missing_packages()),
                    pytrace=False)
    try:
        ms.ensure_packages()
    except ms.StackError as e:
        pytest.fail(str(e), pytrace=False)
    # Not under pytest's basetemp: that is 0700 root, and the postfix, dovecot
    # and mail users must traverse the directory.
    st = ms.MailStack()
    st.up()
    yield st
    keep = request.session.testsfailed or os.environ.get("MAILEDGE_KEEP")
    st.down(remove=not keep)
    if keep:
        print("\ninterop: logs kept in %s (postfix/maillog, dovecot/dovecot.log)" % st.base)


@pytest.fixture(scope="session")
def addrs():
    return k.AddressPool()


@pytest.fixture(scope="session")
def mailedge_bin():
    b = k.mailedge_binary()
    if not b:
        pytest.fail("no mailedge binary: build it with `make` or set MAILEDGE_BIN", pytrace=False)
    return b


@pytest.fixture
def edge(mailedge_bin, tmp_path):
    """edge(config_text) -> a running interop_kit.Mailedge; stopped (clean
    exit required) at teardown."""
    started = []

    def start(config_text, name=None):
        me = k.Mailedge(mailedge_bin, str(tmp_path), config_text,
                        name=name or "mailedge%d" % (len(started) + 1))
        started.append(me)
        return me.start()

    yield start
    errors = []
    for me in started:
        try:
            me.stop()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def haproxy(tmp_path):
    """haproxy(config_text, wait_for=[(ip, port)]) -> a running mailstack.HAProxy."""
    started = []

    def start(config_text, wait_for=(), name=None):
        h = ms.HAProxy(str(tmp_path), config_text, name=name or "haproxy%d" % (len(started) + 1))
        started.append(h)
        return h.start(wait_for=wait_for)

    yield start
    for h in started:
        h.stop()


@pytest.fixture
def marks(stack):
    """Log offsets at test start: marks['postfix'], marks['dovecot']."""
    return {"postfix": stack.postfix_log.mark(), "dovecot": stack.dovecot_log.mark()}
