"""`mailedge roundtrip` (issue 10) against the real stack: submission with
STARTTLS and AUTH (Dovecot SASL) or plain port-25-style smtpd, IMAP with
STARTTLS or implicit TLS, directly and through mailedge (PROXY v2 to
Postfix's and Dovecot's PROXY listeners). Pushes go to a small HTTP
receiver in the test that records every request. Covers every row of the
exit matrix (0, 1, 2, 3), the retry/backoff path and the cleanup of
leftovers from earlier runs."""

import imaplib
import os
import re
import subprocess
import sys
import time

import pytest

import interop_kit as k
from interop_kit import EDGE_IP, SCALE, backend_block, fmt_addr, free_port, global_block, \
    listener_block, parse_logfmt

# The push receiver is shared with tests/integration/test_roundtrip.py.
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from pushreceiver import Receiver  # noqa: E402

RECEIVER_IP = "127.0.102.1"
TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")


# --------------------------------------------------------------------------
# the push receiver


@pytest.fixture
def receiver():
    made = []

    def make(script=(), default=200):
        r = Receiver(RECEIVER_IP, script, default)
        made.append(r)
        return r
    yield make
    for r in made:
        r.close()


# --------------------------------------------------------------------------
# helpers


def run(args, password="secret", env=None, timeout=90):
    binary = k.mailedge_binary()
    e = {k_: v for k_, v in os.environ.items() if not k_.startswith("MAILEDGE_ROUNDTRIP_")}
    e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    if password is not None:
        e["MAILEDGE_ROUNDTRIP_PASSWORD"] = password
    if env:
        e.update(env)
    p = subprocess.run([binary, "roundtrip"] + list(args), capture_output=True, text=True,
                       env=e, timeout=timeout * SCALE)
    for m in k.SANITIZER_MARKERS:
        assert m not in p.stderr, p.stderr
    return p.returncode, p.stdout, p.stderr


def result(out):
    lines = out.splitlines()
    assert len(lines) == 1, out
    return parse_logfmt(lines[0])


def common(job, poll_attempts=40):
    return ["--user", "test", "--from", "monitor@client.test", "--to", "test@example.test",
            "--job", job, "--timeout", "%ds" % int(10 * SCALE),
            "--poll-attempts", str(poll_attempts), "--poll-interval", "250ms",
            "--backoff", "20ms"]


def marked(stack, token=None, job=None):
    """Maildir files carrying the marker (of a token, or of a job)."""
    out = []
    for p in stack.messages():
        try:
            with open(p, "rb") as f:
                head = f.read(8192).split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        except OSError:
            continue
        for ln in head.splitlines():
            if not ln.lower().startswith(b"x-mailedge-roundtrip:"):
                continue
            v = ln.decode("ascii", "replace")
            if (token is None or "token=%s" % token in v) and (job is None or "job=%s;" % job in v):
                out.append(p)
    return out


def drop_marked(stack, job, token):
    """A message of an earlier run, straight into the Maildir."""
    msg = ("From: <monitor@client.test>\r\nTo: <test@example.test>\r\n"
           "Subject: mailedge roundtrip %s\r\nX-Mailedge-Roundtrip: job=%s; token=%s\r\n"
           "\r\nleft over\r\n" % (token, job, token))
    name = "%d.M%dP%d.rtstale" % (time.time(), time.monotonic_ns() % 1000000, os.getpid())
    tmp = os.path.join(stack.maildir, "tmp", name)
    with open(tmp, "w", newline="") as f:
        f.write(msg)
    uid, gid = stack._mail_ids()
    os.chown(tmp, uid, gid)
    os.rename(tmp, os.path.join(stack.maildir, "new", name))


def push_checks(pg, pu, ok, job, instance=None):
    """The Pushgateway PUT and the push-monitor GET look as documented."""
    m, path, body, headers = pg.requests[-1]
    assert m == "PUT"
    want = "/metrics/job/%s" % job + ("/instance/%s" % instance if instance else "")
    assert path == want
    assert headers.get("Content-Type", "").startswith("text/plain")
    assert ("\nmailedge_roundtrip_success %d\n" % (1 if ok else 0)) in body
    assert re.search(r"\nmailedge_roundtrip_last_run_timestamp_seconds \d+\n", body)
    if ok:
        assert re.search(r"\nmailedge_roundtrip_duration_seconds \d+\.\d{3}\n", body)
    else:
        assert "duration_seconds" not in body
    m, path, body, _ = pu.requests[-1]
    assert m == "GET"
    if ok:
        assert re.fullmatch(r"/api/push/tok\?status=up&msg=OK&ping=\d+", path), path
    else:
        assert re.fullmatch(r"/api/push/tok\?status=down&msg=[A-Za-z0-9%._~-]+", path), path


# --------------------------------------------------------------------------
# exit 0


def test_roundtrip_starttls_auth_direct(stack, receiver, marks):
    """Submission with STARTTLS + AUTH, IMAP with STARTTLS, certificates
    verified against the stack's CA; both pushes land; the message is gone."""
    pg, pu = receiver(), receiver()
    p = stack.ports
    rc, out, err = run(common("rt_direct") + [
        "--smtp", "smtp://127.0.0.1:%d" % p["subauth"],
        "--imap", "imap://127.0.0.1:%d" % p["imap"],
        "--cacert", stack.tls_cert, "--instance", "lab-1",
        "--pushgateway", pg.url(), "--push-url", pu.url("/api/push/tok")])
    assert rc == 0, out + err
    r = result(out)
    assert r["roundtrip"] == "ok" and r["push"] == "ok", out
    assert r["pushgateway"] == "ok" and r["push_url"] == "ok", out
    assert TOKEN_RE.match(r["token"]) and int(r["duration_ms"]) >= 0
    assert r["stale_deleted"] == "0"
    assert len(pg.requests) == 1 and len(pu.requests) == 1
    push_checks(pg, pu, True, "rt_direct", "lab-1")
    assert int(pu.requests[0][1].rsplit("ping=", 1)[1]) == int(r["duration_ms"])
    assert not marked(stack, token=r["token"])
    # AUTH really happened, after STARTTLS, on the submission service
    stack.postfix_log.wait_for(r"postfix/subauth/smtpd\[\d+\]: \w+: client=unknown\[127\.0\.0\.1\]"
                               r":\d+, sasl_method=PLAIN, sasl_username=test$",
                               since=marks["postfix"])
    stack.postfix_log.wait_for(r"postfix/subauth/smtpd\[\d+\]: disconnect from .* starttls=1 "
                               r"auth=1 mail=1 rcpt=1 data=1 quit=1", since=marks["postfix"])
    stack.dovecot_log.wait_for(r"imap\(test\).*Logged out .*deleted=1 expunged=1",
                               since=marks["dovecot"])


def test_roundtrip_imaps_plain_smtp(stack):
    """Port-25 style SMTP (no TLS, no AUTH) and implicit-TLS IMAP; no push
    configured, which is still exit 0."""
    p = stack.ports
    rc, out, err = run(common("rt_imaps") + [
        "--smtp", "smtp://127.0.0.1:%d" % p["plain"], "--no-smtp-auth", "--starttls", "try",
        "--imap", "imaps://127.0.0.1:%d/INBOX" % p["imaps"], "--cacert", stack.tls_cert])
    assert rc == 0, out + err
    r = result(out)
    assert r["roundtrip"] == "ok" and r["push"] == "none", out
    assert r["pushgateway"] == "none" and r["push_url"] == "none"
    assert not marked(stack, token=r["token"])


def test_roundtrip_smtps_imaps(stack, marks):
    """Implicit TLS on both legs (smtps with AUTH, imaps), verified."""
    p = stack.ports
    rc, out, err = run(common("rt_smtps") + [
        "--smtp", "smtps://127.0.0.1:%d" % p["smtps"],
        "--imap", "imaps://127.0.0.1:%d" % p["imaps"], "--cacert", stack.tls_cert])
    assert rc == 0, out + err
    r = result(out)
    assert r["roundtrip"] == "ok", out
    assert not marked(stack, token=r["token"])
    stack.postfix_log.wait_for(r"postfix/smtps/smtpd\[\d+\]: \w+: client=unknown\[127\.0\.0\.1\]"
                               r":\d+, sasl_method=PLAIN, sasl_username=test$",
                               since=marks["postfix"])


def test_roundtrip_through_mailedge(stack, edge, receiver, marks):
    """Both legs through mailedge: SMTP (STARTTLS + AUTH passed through) to
    the PROXY submission service, IMAP to Dovecot's PROXY listener."""
    p = stack.ports
    sport, iport = free_port(EDGE_IP), free_port(EDGE_IP)
    text = (global_block()
            + backend_block("sub", [("s1", fmt_addr("127.0.0.1", p["subauth_proxy"]))])
            + backend_block("imap", [("i1", fmt_addr("127.0.0.1", p["imap_proxy"]))])
            + listener_block("smtp", fmt_addr(EDGE_IP, sport), "smtp", "sub")
            + listener_block("imap", fmt_addr(EDGE_IP, iport), "imap", "imap"))
    me = edge(text)
    pg = receiver()
    rc, out, err = run(common("rt_edge") + [
        "--smtp", "smtp://%s:%d" % (EDGE_IP, sport), "--imap", "imap://%s:%d" % (EDGE_IP, iport),
        "--insecure", "--pushgateway", pg.url()])
    assert rc == 0, out + err
    r = result(out)
    assert r["roundtrip"] == "ok" and r["push"] == "ok" and r["push_url"] == "none", out
    assert len(pg.requests) == 1
    assert not marked(stack, token=r["token"])
    # Postfix saw the real client through the PROXY header, and AUTH
    stack.postfix_log.wait_for(r"postfix/subauth_proxy/smtpd\[\d+\]: \w+: client=unknown\["
                               r"127\.0\.0\.1\]:\d+, sasl_method=PLAIN, sasl_username=test$",
                               since=marks["postfix"])
    stack.dovecot_log.wait_for(r"imap-login: Info: Login: user=<test>.*rip=127\.0\.0\.1, "
                               r"lip=%s, .*lport=%d$" % (re.escape(EDGE_IP), iport),
                               since=marks["dovecot"])
    me.wait_session(client_ip="127.0.0.1")


def test_roundtrip_deletes_stale_of_its_job_only(stack):
    """Marked leftovers of the same job are deleted; another job's are not."""
    p = stack.ports
    drop_marked(stack, "rt_stale", "a" * 32)
    drop_marked(stack, "rt_stale", "b" * 32)
    drop_marked(stack, "rt_stale_other", "c" * 32)
    rc, out, err = run(common("rt_stale") + [
        "--smtp", "smtp://127.0.0.1:%d" % p["plain"], "--no-smtp-auth", "--starttls", "off",
        "--imap", "imap://127.0.0.1:%d" % p["imap"], "--starttls", "off"])
    assert rc == 0, out + err
    r = result(out)
    assert r["stale_deleted"] == "2", out
    assert not marked(stack, job="rt_stale")
    other = marked(stack, job="rt_stale_other")
    assert len(other) == 1
    os.unlink(other[0])


# --------------------------------------------------------------------------
# exit 1


def test_roundtrip_exit1_imap_login_denied_then_cleanup(stack, receiver):
    """A wrong IMAP password: exit 1 at once (no polling a password), the
    failure pushed as down. The next good run deletes the message left
    behind as stale."""
    p = stack.ports
    pg, pu = receiver(), receiver()
    pwfile = os.path.join(stack.base, "rt-wrong-password")
    with open(pwfile, "w") as f:
        f.write("wrong\n")
    args = common("rt_denied") + [
        "--smtp", "smtp://127.0.0.1:%d" % p["plain"], "--no-smtp-auth", "--starttls", "off",
        "--imap", "imap://127.0.0.1:%d" % p["imap"]]
    rc, out, err = run(args + ["--password-file", pwfile, "--pushgateway", pg.url(),
                               "--push-url", pu.url("/api/push/tok")], password=None)
    assert rc == 1, out + err
    r = result(out)
    assert r["roundtrip"] == "failed" and r["stage"] == "imap", out
    assert "login" in r["reason"].lower() or "denied" in r["reason"].lower(), out
    assert r["push"] == "ok"
    push_checks(pg, pu, False, "rt_denied")
    assert "status=down&msg=imap%3A%20" in pu.requests[0][1]
    leftover = r["token"]
    stack.wait_message(leftover)
    rc, out, err = run(args + ["--password-file", pwfile], password=None,
                       env={"MAILEDGE_ROUNDTRIP_PASSWORD": "also-ignored"})
    assert rc == 1, out + err          # --password-file wins over the environment
    stack.wait_message(result(out)["token"])
    rc, out, err = run(args)           # the password from the environment
    assert rc == 0, out + err
    assert result(out)["stale_deleted"] == "2", out
    assert not marked(stack, job="rt_denied")


def test_roundtrip_separate_smtp_credentials(stack, marks):
    """--smtp-user and MAILEDGE_ROUNDTRIP_SMTP_PASSWORD are used for AUTH
    only: a wrong SMTP password fails at smtp (the IMAP password is right),
    the right one works while the main password is the IMAP one."""
    p = stack.ports
    args = common("rt_smtpcred") + [
        "--smtp", "smtp://127.0.0.1:%d" % p["subauth"], "--smtp-user", "test",
        "--imap", "imaps://127.0.0.1:%d" % p["imaps"], "--cacert", stack.tls_cert]
    rc, out, err = run(args, env={"MAILEDGE_ROUNDTRIP_SMTP_PASSWORD": "wrong"})
    assert rc == 1, out + err
    r = result(out)
    assert r["stage"] == "smtp", out
    stack.postfix_log.wait_for(r"postfix/subauth/smtpd\[\d+\]: disconnect from .* auth=0/1",
                               since=marks["postfix"])
    pwfile = os.path.join(stack.base, "rt-smtp-password")
    with open(pwfile, "w") as f:
        f.write("secret\n")
    rc, out, err = run(args + ["--smtp-password-file", pwfile],
                       env={"MAILEDGE_ROUNDTRIP_SMTP_PASSWORD": "wrong"})
    assert rc == 0, out + err          # the file wins over the environment
    assert not marked(stack, job="rt_smtpcred")


@pytest.mark.parametrize("case", ["starttls-required", "unverified-cert"])
def test_roundtrip_exit1_tls_policy(stack, marks, case):
    """The default --starttls require refuses a server without STARTTLS
    (no AUTH in clear), and certificates are verified unless told otherwise."""
    p = stack.ports
    smtp = p["plain"] if case == "starttls-required" else p["subauth"]
    rc, out, err = run(common("rt_tls") + [
        "--smtp", "smtp://127.0.0.1:%d" % smtp, "--imap", "imap://127.0.0.1:%d" % p["imap"]])
    assert rc == 1, out + err
    r = result(out)
    assert r["stage"] == "smtp", out
    if case == "starttls-required":
        assert "STARTTLS" in r["reason"], out
    else:
        assert "certificate" in r["reason"], out
        # Postfix's complaint about the aborted handshake stays in this test's slice
        stack.postfix_log.wait_for(r"postfix/subauth/smtpd\[\d+\]: disconnect from "
                                   r"unknown\[127\.0\.0\.1\]", since=marks["postfix"])


def test_roundtrip_exit1_smtp_dead(stack, receiver):
    """Nothing listens on the SMTP port: the message never leaves, exit 1,
    and the failure is still pushed."""
    pg, pu = receiver(), receiver()
    dead = free_port("127.0.0.1")
    rc, out, err = run(common("rt_dead") + [
        "--smtp", "smtp://127.0.0.1:%d" % dead, "--imap", "imap://127.0.0.1:%d" % stack.ports["imap"],
        "--pushgateway", pg.url(), "--push-url", pu.url("/api/push/tok")])
    assert rc == 1, out + err
    r = result(out)
    assert r["roundtrip"] == "failed" and r["stage"] == "smtp" and r["push"] == "ok", out
    assert "duration_ms" not in r
    push_checks(pg, pu, False, "rt_dead")
    assert "status=down&msg=smtp%3A%20" in pu.requests[0][1]


def test_roundtrip_exit1_not_delivered_in_time(stack):
    """The SMTP server takes the message but it never shows up in the
    mailbox polled (delivery goes to INBOX, the poll watches Monitor):
    stage=timeout after the attempts given. A later run of the job on INBOX
    deletes it as stale."""
    p = stack.ports
    im = imaplib.IMAP4("127.0.0.1", p["imap"], timeout=10 * SCALE)
    try:
        im.login("test", "secret")
        im.create("Monitor")            # NO when it exists already: fine
    finally:
        im.logout()
    rc, out, err = run(["--user", "test", "--from", "monitor@client.test",
                        "--to", "test@example.test", "--job", "rt_slow",
                        "--poll-attempts", "3", "--poll-interval", "100ms",
                        "--smtp", "smtp://127.0.0.1:%d" % p["plain"], "--no-smtp-auth",
                        "--starttls", "off",
                        "--imap", "imap://127.0.0.1:%d/Monitor" % p["imap"]])
    assert rc == 1, out + err
    r = result(out)
    assert r["roundtrip"] == "failed" and r["stage"] == "timeout", out
    assert r["reason"] == "not found after 3 searches", out
    stack.wait_message(r["token"])
    rc, out, err = run(common("rt_slow") + [
        "--smtp", "smtp://127.0.0.1:%d" % p["plain"], "--no-smtp-auth", "--starttls", "off",
        "--imap", "imap://127.0.0.1:%d" % p["imap"]])
    assert rc == 0 and result(out)["stale_deleted"] == "1", out + err
    assert not marked(stack, job="rt_slow")


def test_roundtrip_exit1_imap_dead(stack):
    """The IMAP port is dead: every poll is tried (each connect bounded by
    --timeout) and reported on stderr, then stage=imap."""
    p = stack.ports
    dead = free_port("127.0.0.1")
    rc, out, err = run(["--user", "test", "--from", "monitor@client.test",
                        "--to", "test@example.test", "--job", "rt_imapdead",
                        "--poll-attempts", "3", "--poll-interval", "50ms",
                        "--smtp", "smtp://127.0.0.1:%d" % p["plain"], "--no-smtp-auth",
                        "--starttls", "off", "--imap", "imap://127.0.0.1:%d" % dead])
    assert rc == 1, out + err
    r = result(out)
    assert r["stage"] == "imap" and "cleanup" not in r, out
    assert err.count("imap poll ") == 3 and "imap poll 3/3" in err, err
    stack.wait_message(r["token"])
    rc, out, err = run(common("rt_imapdead") + [
        "--smtp", "smtp://127.0.0.1:%d" % p["plain"], "--no-smtp-auth", "--starttls", "off",
        "--imap", "imap://127.0.0.1:%d" % p["imap"]])
    assert rc == 0 and result(out)["stale_deleted"] == "1", out + err


def test_roundtrip_exit1_mailbox_missing(stack):
    """SELECT of a mailbox that does not exist: like a refused login (libcurl
    reports both as CURLE_LOGIN_DENIED), polling cannot fix it: stage=imap
    after one attempt."""
    p = stack.ports
    rc, out, err = run(["--user", "test", "--from", "monitor@client.test",
                        "--to", "test@example.test", "--job", "rt_nobox",
                        "--poll-attempts", "2", "--poll-interval", "50ms",
                        "--smtp", "smtp://127.0.0.1:%d" % p["plain"], "--no-smtp-auth",
                        "--starttls", "off",
                        "--imap", "imap://127.0.0.1:%d/Nonexistent" % p["imap"]])
    assert rc == 1, out + err
    r = result(out)
    assert r["stage"] == "imap" and "Select failed" in r["reason"], out
    assert "imap poll" not in err, err
    stack.wait_message(r["token"])
    rc, out, err = run(common("rt_nobox") + [
        "--smtp", "smtp://127.0.0.1:%d" % p["plain"], "--no-smtp-auth", "--starttls", "off",
        "--imap", "imap://127.0.0.1:%d" % p["imap"]])
    assert rc == 0 and result(out)["stale_deleted"] == "1", out + err


# --------------------------------------------------------------------------
# exit 2 and the retries


def test_roundtrip_exit2_every_push_fails(stack, receiver):
    """The round trip works but the Pushgateway always answers 500 and the
    push monitor refuses connections: 3 attempts each, exit 2."""
    pg = receiver(default=500)
    dead = free_port(RECEIVER_IP)
    p = stack.ports
    rc, out, err = run(common("rt_pushfail") + [
        "--smtp", "smtp://127.0.0.1:%d" % p["plain"], "--no-smtp-auth", "--starttls", "off",
        "--imap", "imap://127.0.0.1:%d" % p["imap"], "--pushgateway", pg.url(),
        "--push-url", "http://%s:%d/api/push/tok" % (RECEIVER_IP, dead)])
    assert rc == 2, out + err
    r = result(out)
    assert r["roundtrip"] == "ok" and r["push"] == "failed", out
    assert r["pushgateway"] == "failed" and r["push_url"] == "failed"
    assert len(pg.requests) == 3
    assert err.count("push pushgateway attempt") == 3 and "HTTP 500" in err
    assert err.count("push push-url attempt") == 3
    assert "/api/push/tok" not in err      # URLs may carry tokens: never printed
    assert not marked(stack, token=r["token"])


def test_roundtrip_one_push_ok_is_enough(stack, receiver):
    pg, pu = receiver(default=503), receiver()
    p = stack.ports
    rc, out, err = run(common("rt_onepush") + [
        "--smtp", "smtp://127.0.0.1:%d" % p["plain"], "--no-smtp-auth", "--starttls", "off",
        "--imap", "imap://127.0.0.1:%d" % p["imap"], "--pushgateway", pg.url(),
        "--push-url", pu.url("/api/push/tok?a=1")])
    assert rc == 0, out + err
    r = result(out)
    assert r["pushgateway"] == "failed" and r["push_url"] == "ok" and r["push"] == "ok", out
    assert len(pg.requests) == 3 and len(pu.requests) == 1
    assert re.fullmatch(r"/api/push/tok\?a=1&status=up&msg=OK&ping=\d+", pu.requests[0][1])


def test_roundtrip_push_retry_backoff(stack, receiver):
    """500, 500, then 200: exit 0 after exactly 3 requests; the backoff
    comes from --backoff (20ms here, doubled)."""
    pg = receiver(script=[500, 500], default=200)
    p = stack.ports
    rc, out, err = run(common("rt_retry") + [
        "--smtp", "smtp://127.0.0.1:%d" % p["plain"], "--no-smtp-auth", "--starttls", "off",
        "--imap", "imap://127.0.0.1:%d" % p["imap"]],
        env={"MAILEDGE_ROUNDTRIP_PUSHGATEWAY": pg.url()})
    assert rc == 0, out + err
    r = result(out)
    assert r["push"] == "ok" and r["pushgateway"] == "ok", out
    assert len(pg.requests) == 3
    assert [q[0] for q in pg.requests] == ["PUT"] * 3
    assert all(q[2] == pg.requests[0][2] for q in pg.requests)   # the same body each time
    assert "attempt 1/3: HTTP 500" in err and "attempt 2/3: HTTP 500" in err
    assert "attempt 3/3" not in err


# --------------------------------------------------------------------------
# exit 3


@pytest.mark.parametrize("args,env,password,msg", [
    (["--password", "secret"], {}, "secret", "refusing a password on the command line"),
    (["--password=secret"], {}, "secret", "refusing a password on the command line"),
    (["-p", "secret"], {}, "secret", "refusing a password on the command line"),
    ([], {}, None, "no password"),
    (["--password-file", "/nonexistent/pw"], {}, None, "--password-file /nonexistent/pw"),
    (["--imap", "imap://test:secret@127.0.0.1:1"], {}, "secret", "refusing credentials"),
    (["--timeout", "10"], {}, "secret", "not a duration"),
    (["--poll-attempts", "0"], {}, "secret", "--poll-attempts"),
    (["--job", "a/b"], {}, "secret", "--job"),
    (["--push-url", "ftp://x"], {}, "secret", "--push-url"),
    (["--bogus"], {}, "secret", "unknown option"),
], ids=["password", "password=", "p", "no-password", "password-file-missing",
        "url-credentials", "bare-timeout", "poll-attempts", "job", "push-scheme", "unknown"])
def test_roundtrip_exit3_usage(stack, receiver, args, env, password, msg):
    pg = receiver()
    base = ["--user", "test", "--from", "monitor@client.test", "--to", "test@example.test",
            "--smtp", "smtp://127.0.0.1:%d" % stack.ports["plain"],
            "--imap", "imap://127.0.0.1:%d" % stack.ports["imap"], "--pushgateway", pg.url()]
    if any(a.startswith("--imap") for a in args):
        i = base.index("--imap")
        del base[i:i + 2]
    before = len(stack.messages())
    rc, out, err = run(base + args, password=password, env=env, timeout=30)
    assert rc == 3, out + err
    assert msg in err, err
    assert out == ""
    assert "secret" not in err                  # never echoed
    assert not pg.requests                      # nothing pushed on a usage error
    assert len(stack.messages()) == before      # and nothing sent


def test_roundtrip_help(stack):
    rc, out, err = run(["--help"], password=None)
    assert rc == 0 and "usage: mailedge roundtrip" in out and "--password-file" in out
