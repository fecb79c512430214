"""Log rotation with `user` (issue 14): the log file, opened as root, becomes
the user's, so SIGUSR1 reopens it after mailedge dropped root: in place, a
new file the rotation created for the user, or a new file in a directory
the user may write. A directory the user cannot write is said at start, and
a reopen that fails is said on stderr too (the old file may be gone from
view). Needs root."""

import os
import pwd
import shutil
import signal
import tempfile

import pytest

import harness as h

GREETING = b"220 test ESMTP\r\n"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def logdir():
    """(config dir readable by nobody, log dir: root's, 0755)."""
    d = tempfile.mkdtemp(prefix="mailedge-logrot-", dir="/tmp")
    os.chmod(d, 0o755)
    logs = os.path.join(d, "log")
    os.mkdir(logs, 0o755)
    yield d, logs
    shutil.rmtree(d, ignore_errors=True)


def start(rig, confdir, logpath):
    b = rig.backend(2, greeting=GREETING)
    lip, lport = rig.endpoint(1)
    body = (h.backend_block("mail", [("srv1", b.addr)])
            + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail"))
    path = os.path.join(confdir, "mailedge.conf")
    with open(path, "w") as f:
        f.write(h.global_block(log=logpath, extra=["user nobody"]) + body)
    os.chmod(path, 0o644)
    work = rig.tmp / "run-logrot"
    work.mkdir()
    me = h.Mailedge(rig.binary, path, work, log_path=logpath)
    rig.daemons.append(me)
    me.start()
    return me, lip, lport


def events_in(path, event, **match):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    out = []
    for ln in text.splitlines():
        d = h.parse_log_line(ln)
        if d and d.get("event") == event and all(d.get(k) == v for k, v in match.items()):
            out.append(d)
    return out


def session_lands_in(rig, me, lip, lport, path, source_host):
    c = rig.client(lip, lport, source=rig.ip(source_host), name="c%d" % source_host)
    c.wait_endswith(GREETING)
    c.close()
    line = h.wait_until(lambda: events_in(path, "session", client=h.fmt_addr(*c.local)),
                        what="the session line in %s" % path, info=me.describe)
    return line[0]


def reopen(me, path):
    n = len(events_in(path, "log_reopen", result="success"))
    me.signal(signal.SIGUSR1)
    h.wait_until(lambda: len(events_in(path, "log_reopen", result="success")) > n,
                 what="log_reopen result=success in %s" % path, info=me.describe)


def test_log_file_is_the_users_and_reopens_in_place(rig, logdir):
    confdir, logs = logdir
    path = os.path.join(logs, "edge.log")
    me, lip, lport = start(rig, confdir, path)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (NOBODY.pw_uid, NOBODY.pw_gid), st
    # copytruncate-style rotation: the same file, reopened.
    reopen(me, path)
    session_lands_in(rig, me, lip, lport, path, 11)


def test_rotate_by_rename_in_a_directory_of_the_user(rig, logdir):
    confdir, logs = logdir
    os.chown(logs, NOBODY.pw_uid, NOBODY.pw_gid)
    path = os.path.join(logs, "edge.log")
    me, lip, lport = start(rig, confdir, path)
    assert not events_in(path, "log_dir"), me.describe()
    session_lands_in(rig, me, lip, lport, path, 11)
    os.rename(path, path + ".1")
    reopen(me, path)
    line = session_lands_in(rig, me, lip, lport, path, 12)
    assert line and len(events_in(path + ".1", "session")) == 1
    assert os.stat(path).st_uid == NOBODY.pw_uid


def test_rotate_with_create_in_a_directory_of_root(rig, logdir):
    """The directory is root's: said at start; a rotation that creates the
    new file for the user (logrotate's create) works."""
    confdir, logs = logdir
    path = os.path.join(logs, "edge.log")
    me, lip, lport = start(rig, confdir, path)
    warn = events_in(path, "log_dir")
    assert warn and warn[0]["path"] == logs and warn[0]["user"] == "nobody", me.describe()
    os.rename(path, path + ".1")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    os.fchown(fd, NOBODY.pw_uid, NOBODY.pw_gid)
    os.close(fd)
    reopen(me, path)
    session_lands_in(rig, me, lip, lport, path, 12)


def test_failed_reopen_said_on_stderr_too(rig, logdir):
    """Renamed in a root directory with no new file: the reopen fails; the
    warning goes to the old file and to stderr, and logging goes on there."""
    confdir, logs = logdir
    path = os.path.join(logs, "edge.log")
    me, lip, lport = start(rig, confdir, path)
    old = path + ".1"
    os.rename(path, old)
    me.signal(signal.SIGUSR1)
    h.wait_until(lambda: events_in(old, "log_reopen", result="failure"),
                 what="the failure in the old file", info=me.describe)
    err = [h.parse_log_line(ln) for ln in me.stderr().splitlines()]
    fail = [d for d in err if d and d.get("event") == "log_reopen"]
    assert fail and fail[0]["result"] == "failure" and fail[0]["path"] == path, me.stderr()
    assert "Permission denied" in fail[0]["error"], fail
    session_lands_in(rig, me, lip, lport, old, 12)
