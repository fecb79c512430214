"""A real CrowdSec Local API on loopback for the tests, and a fake one.

`Lapi` runs Debian's crowdsec (`crowdsec -no-cs`: the Local API alone) in
the foreground from a throwaway config directory (sqlite, no online API,
no hub), with machine credentials for `cscli decisions add/delete` and one
bouncer key per `bouncer(name)`. Recipe and facts:
../shared/references/crowdsec-and-bans.md.

`FakeLapi` is a tiny HTTP server whose answer to /v1/decisions/stream a
test sets (a status, a body, or a callable), recording each request.
"""

import http.server
import os
import shutil
import signal
import socketserver
import subprocess
import threading
import urllib.request
from typing import Callable, List, Optional

import harness as h

CROWDSEC = shutil.which("crowdsec") or "/usr/bin/crowdsec"
CSCLI = shutil.which("cscli") or "/usr/bin/cscli"


def installed() -> bool:
    return os.path.exists(CROWDSEC) and os.path.exists(CSCLI)


CONFIG = """common:
  daemonize: false
  log_media: stdout
  log_level: info
config_paths:
  config_dir: {d}
  data_dir: {d}/data
  simulation_path: {d}/simulation.yaml
  hub_dir: {d}/hub
  index_path: {d}/hub/.index.json
  notification_dir: {d}/notifications
  plugin_dir: {d}/plugins
crowdsec_service:
  acquisition_path: {d}/acquis.yaml
  parser_routines: 1
cscli:
  output: human
db_config:
  type: sqlite
  db_path: {d}/data/crowdsec.db
  use_wal: true
  flush:
    max_items: 5000
    max_age: 7d
api:
  client:
    insecure_skip_verify: false
    credentials_path: {d}/local_api_credentials.yaml
  server:
    log_level: info
    listen_uri: {ip}:{port}
    profiles_path: {d}/profiles.yaml
    console_path: {d}/console.yaml
prometheus:
  enabled: false
"""

PROFILES = """name: default_ip_remediation
filters:
 - Alert.Remediation == true && Alert.GetScope() == "Ip"
decisions:
 - type: ban
   duration: 4h
on_success: break
"""


class Lapi:
    """crowdsec -no-cs in the foreground, on <ip>:<port> of loopback."""

    def __init__(self, tmp_path, ip: str = "127.0.0.1"):
        self.dir = os.path.join(str(tmp_path), "crowdsec")
        self.ip = ip
        self.port = h.free_port(ip)
        self.cfg = os.path.join(self.dir, "config.yaml")
        self.proc: Optional[subprocess.Popen] = None
        os.makedirs(os.path.join(self.dir, "data"))
        os.makedirs(os.path.join(self.dir, "hub"))
        for sub in ("notifications", "plugins"):
            os.makedirs(os.path.join(self.dir, sub))
        with open(os.path.join(self.dir, "hub", ".index.json"), "w") as f:
            f.write('{"parsers":{},"scenarios":{},"postoverflows":{},"collections":{}}')
        files = {"config.yaml": CONFIG.format(d=self.dir, ip=ip, port=self.port),
                 "profiles.yaml": PROFILES, "simulation.yaml": "simulation: off\n",
                 "console.yaml": "", "acquis.yaml": ""}
        for name, text in files.items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        self.log_path = os.path.join(self.dir, "crowdsec.log")
        # Machine credentials for cscli decisions add/delete (written to credentials_path).
        self.cscli("machines", "add", "tests", "--auto", "-f",
                   os.path.join(self.dir, "local_api_credentials.yaml"), "--force")

    @property
    def url(self) -> str:
        return "http://%s:%d" % (self.ip, self.port)

    def cscli(self, *args, check: bool = True) -> str:
        r = subprocess.run([CSCLI, "-c", self.cfg] + list(args), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=h.DEADLINE * 3)
        if check and r.returncode != 0:
            raise AssertionError("cscli %s: exit %d\n%s\n%s\n--- crowdsec log:\n%s"
                                 % (" ".join(args), r.returncode, r.stdout, r.stderr,
                                    self.log()[-3000:]))
        return r.stdout

    def bouncer(self, name: str) -> str:
        """A new bouncer key (cscli bouncers add NAME -o raw)."""
        return self.cscli("bouncers", "add", name, "-o", "raw").strip()

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def start(self):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([CROWDSEC, "-c", self.cfg, "-no-cs"],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=self.dir)

        def healthy():
            if self.proc.poll() is not None:
                raise AssertionError("crowdsec exited %s\n%s" % (self.proc.returncode,
                                                                 self.log()[-3000:]))
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False
        h.wait_until(healthy, h.DEADLINE * 3, "crowdsec LAPI /health",
                     info=lambda: self.log()[-3000:])
        return self

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(h.DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(h.DEADLINE)
        self.proc = None
        self._log.close()

    def add(self, *args):
        """cscli decisions add ... (e.g. "--ip", "127.0.0.66", "--duration", "1h")."""
        return self.cscli("decisions", "add", *args)

    def delete(self, *args):
        return self.cscli("decisions", "delete", *args)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        fake = self.server.fake
        with fake.lock:
            fake.requests.append((self.path, self.headers.get("X-Api-Key")))
            answer = fake.answer
        status, body = answer(self.path) if callable(answer) else answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeLapi:
    """Answers every GET with <answer>: (status, body bytes) or a callable(path)."""

    def __init__(self, ip: str = "127.0.0.1"):
        self.requests: List[tuple] = []
        self.lock = threading.Lock()
        self.answer = (200, b'{"new":null,"deleted":null}')
        self.srv = _Server((ip, 0), _Handler)
        self.srv.fake = self
        self.ip = ip
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return "http://%s:%d" % (self.ip, self.port)

    def set(self, status_or_fn, body: bytes = b""):
        with self.lock:
            self.answer = status_or_fn if callable(status_or_fn) else (status_or_fn, body)

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def decision(value: str, scope: str = "Ip", duration: str = "1h", origin: str = "cscli",
             scenario: str = "test", type_: str = "ban", id_: int = 1) -> dict:
    return {"duration": duration, "id": id_, "origin": origin, "scenario": scenario,
            "scope": scope, "type": type_, "value": value}
