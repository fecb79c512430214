"""A real CrowdSec (Debian's `crowdsec` 1.4.6) on loopback, for tests.

Everything lives in one throwaway directory: the configuration, the SQLite
database, the hub index, the parsers and scenarios the test installs, the
machine credentials. Nothing under /etc/crowdsec is read or changed, no
online API is contacted (there is no `online_client` section), nothing is
downloaded from the hub. The process runs in the foreground and is stopped
by its PID.

    cs = CrowdSec(tmp_path / "crowdsec", "127.0.0.1")
    cs.install("parsers/s01-parse", "contrib/crowdsec/parsers/s01-parse/x.yaml")
    cs.acquire(["/path/to/mailedge.log"], "mailedge")
    cs.start()                          # LAPI and agent in one process
    key = cs.add_bouncer("edge-a")      # a key for a bouncer
    cs.add_decision(ip="127.0.0.66")    # through the LAPI, like an operator
    cs.decisions()                      # [{"value": ..., "scenario": ...}]
    cs.stop()

`start(agent=False)` runs the LAPI alone (`-no-cs`), `start(api=False)`
the agent alone (`-no-api`, against a LAPI started before in the same
directory). Facts: ../shared/references/crowdsec-and-bans.md.
"""

import json
import os
import shutil
import signal
import subprocess
import urllib.request
from typing import Callable, List, Optional, Sequence

import harness as h

CROWDSEC = "/usr/bin/crowdsec"
CSCLI = "/usr/bin/cscli"
PATTERNS = "/etc/crowdsec/patterns"
# The hub's raw stage that names a file line's program after its acquisition
# type (crowdsecurity/non-syslog, shipped inside syslog-logs.yaml); not a
# whitelist: no address is exempted.
RAW_STAGE = "/usr/share/crowdsec/hub/parsers/s00-raw/crowdsecurity/syslog-logs.yaml"
MACHINE = "mailedge-tests"

# IP and range decisions both become bans (the package's profiles.yaml only
# covers addresses).
PROFILES = """\
name: ip_and_range_ban
filters:
  - Alert.Remediation == true && Alert.GetScope() in ["Ip", "Range"]
decisions:
  - type: ban
    duration: 4h
on_success: break
"""


def available() -> Optional[str]:
    """None when crowdsec and cscli are installed, else what is missing."""
    missing = [p for p in (CROWDSEC, CSCLI, PATTERNS, RAW_STAGE) if not os.path.exists(p)]
    return ("missing: " + " ".join(missing) + " (scripts/deps.sh test installs crowdsec)"
            if missing else None)


class CrowdSec:
    def __init__(self, workdir, ip: str = "127.0.0.1", port: Optional[int] = None):
        h.check_loopback(ip)
        self.dir = str(workdir)
        self.ip = ip
        self.port = port or h.free_port(ip)
        self.metrics_port = h.free_port(ip)
        self.config = os.path.join(self.dir, "config.yaml")
        self.confdir = os.path.join(self.dir, "etc")
        self.procs: List[subprocess.Popen] = []
        self._acquis = []
        self._write_tree()

    @property
    def url(self) -> str:
        return "http://%s/" % h.fmt_addr(self.ip, self.port)

    # -- configuration

    def _path(self, *parts) -> str:
        return os.path.join(self.dir, *parts)

    def _write_tree(self):
        for d in ("etc", "data", "hub", "etc/parsers/s00-raw", "etc/parsers/s01-parse",
                  "etc/parsers/s02-enrich", "etc/scenarios", "etc/postoverflows"):
            os.makedirs(self._path(d), exist_ok=True)
        shutil.copytree(PATTERNS, self._path("etc", "patterns"), dirs_exist_ok=True)
        shutil.copy(RAW_STAGE, self._path("etc", "parsers", "s00-raw", "syslog-logs.yaml"))
        # A bare {} crashes the agent at start.
        with open(self._path("hub", ".index.json"), "w") as f:
            json.dump({"parsers": {}, "scenarios": {}, "postoverflows": {}, "collections": {}}, f)
        with open(self._path("etc", "simulation.yaml"), "w") as f:
            f.write("simulation: off\n")
        with open(self._path("etc", "profiles.yaml"), "w") as f:
            f.write(PROFILES)
        with open(self._path("etc", "console.yaml"), "w") as f:
            f.write("share_manual_decisions: false\nshare_custom: false\n"
                    "share_tainted: false\n")
        self._write_acquis()
        # JSON is YAML: no YAML library needed.
        cfg = {
            "common": {"daemonize": False, "log_media": "stdout", "log_level": "info",
                       "working_dir": "."},
            "config_paths": {"config_dir": self.confdir, "data_dir": self._path("data"),
                             "simulation_path": self._path("etc", "simulation.yaml"),
                             "hub_dir": self._path("hub"),
                             "index_path": self._path("hub", ".index.json"),
                             "notification_dir": self._path("etc", "notifications"),
                             "plugin_dir": self._path("plugins")},
            "crowdsec_service": {"acquisition_path": self._path("etc", "acquis.yaml"),
                                 "parser_routines": 1},
            "cscli": {"output": "human", "color": "no"},
            "db_config": {"type": "sqlite", "db_path": self._path("data", "crowdsec.db"),
                          "use_wal": True, "log_level": "info"},
            "api": {"client": {"insecure_skip_verify": False,
                               "credentials_path": self._path("etc", "local_api_credentials.yaml")},
                    "server": {"log_level": "info", "listen_uri": h.fmt_addr(self.ip, self.port),
                               "profiles_path": self._path("etc", "profiles.yaml"),
                               "console_path": self._path("etc", "console.yaml"),
                               "trusted_ips": ["127.0.0.0/8", "::1"]}},
            "prometheus": {"enabled": True, "level": "full", "listen_addr": self.ip,
                           "listen_port": self.metrics_port},
        }
        with open(self.config, "w") as f:
            json.dump(cfg, f, indent=1)

    def _write_acquis(self):
        # An empty acquisition file is fine for the LAPI; the agent needs one source.
        with open(self._path("etc", "acquis.yaml"), "w") as f:
            f.write("\n---\n".join(json.dumps(a) for a in self._acquis) + "\n")

    def install(self, kind: str, path: str):
        """Copies a parser (kind "parsers/s01-parse", ...) or a scenario
        (kind "scenarios") into the config tree; files sit directly there."""
        dest = self._path("etc", kind)
        os.makedirs(dest, exist_ok=True)
        shutil.copy(path, dest)

    def acquire(self, filenames: Sequence[str], type_: str):
        """Reads these files (from their end, as they grow) as `type_`."""
        self._acquis.append({"filenames": [str(f) for f in filenames],
                             "labels": {"type": type_}})
        self._write_acquis()

    # -- cscli

    def cscli(self, *args, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([CSCLI, "-c", self.config, "--color", "no"] + list(args),
                           capture_output=True, text=True, timeout=h.DEADLINE, cwd=self.dir)
        if check and r.returncode != 0:
            raise AssertionError("cscli %s: exit %d\n%s%s" % (" ".join(args), r.returncode,
                                                               r.stdout, r.stderr))
        return r

    def add_machine(self):
        """Machine credentials the agent and `cscli decisions` use."""
        self.cscli("machines", "add", MACHINE, "--auto", "--force",
                   "-f", self._path("etc", "local_api_credentials.yaml"))
        # --auto writes the LAPI address it guesses; point it at ours.
        creds = self._path("etc", "local_api_credentials.yaml")
        with open(creds) as f:
            lines = [ln for ln in f.read().splitlines() if not ln.startswith("url:")]
        with open(creds, "w") as f:
            f.write("url: %s\n%s\n" % (self.url, "\n".join(lines)))

    def add_bouncer(self, name: str, key: Optional[str] = None) -> str:
        """Registers a bouncer; returns its API key (given, or generated)."""
        args = ["bouncers", "add", name, "-o", "raw"] + (["-k", key] if key else [])
        out = self.cscli(*args).stdout.strip()
        return key or out

    def add_decision(self, ip: Optional[str] = None, range_: Optional[str] = None,
                     duration: str = "1h", type_: str = "ban", reason: str = "test"):
        target = ["--ip", ip] if ip else ["--range", range_]
        self.cscli("decisions", "add", *target, "--duration", duration, "--type", type_,
                   "--reason", reason)

    def delete_decision(self, ip: Optional[str] = None, range_: Optional[str] = None):
        self.cscli("decisions", "delete", *(["--ip", ip] if ip else ["--range", range_]))

    def decisions(self, **filters) -> List[dict]:
        """Decisions in force, flattened out of `cscli decisions list -o json`
        (a list of alerts, each with its decisions), filters as cscli's long
        options (ip=, scenario=, origin=...)."""
        args = ["decisions", "list", "-o", "json", "--limit", "0"]
        for k, v in filters.items():
            args += ["--" + k, v]
        out = self.cscli(*args).stdout.strip()
        alerts = json.loads(out) if out and out != "null" else []
        return [d for a in (alerts or []) for d in (a.get("decisions") or [])]

    # -- the process

    def start(self, api: bool = True, agent: bool = True):
        """Starts the LAPI and/or the agent (one process each call) and waits
        until the LAPI answers /health."""
        assert api or agent
        if not os.path.exists(self._path("etc", "local_api_credentials.yaml")):
            self.add_machine()
        flags = ([] if agent else ["-no-cs"]) + ([] if api else ["-no-api"])
        n = len(self.procs)
        out = open(self._path("crowdsec%d.log" % n), "wb")
        p = subprocess.Popen([CROWDSEC, "-c", self.config] + flags, stdin=subprocess.DEVNULL,
                             stdout=out, stderr=subprocess.STDOUT, cwd=self.dir)
        out.close()
        self.procs.append(p)
        h._running.add(p)
        if api:
            h.wait_until(self.healthy, what="crowdsec LAPI on %s\n%s" % (self.url, self.log()))
        return p

    def healthy(self) -> bool:
        for p in self.procs:
            if p.poll() is not None:
                raise AssertionError("crowdsec exited with %s:\n%s" % (p.returncode, self.log()))
        try:
            with urllib.request.urlopen(self.url + "health", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def metrics(self) -> dict:
        """The agent's Prometheus metrics: {'name{labels}': value}."""
        url = "http://%s/metrics" % h.fmt_addr(self.ip, self.metrics_port)
        with urllib.request.urlopen(url, timeout=h.DEADLINE) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def lines_read(self, path) -> int:
        """Lines the agent has read from this file so far. It reads a file
        from its end, from some moment after start: a line it counts proves
        it is reading."""
        try:
            m = self.metrics()
        except OSError:
            return 0
        return int(m.get('cs_filesource_hits_total{source="%s"}' % path, 0))

    def wait_reading(self, path, poke: Callable[[], None]):
        """Waits until the agent reads `path`, calling poke() (something that
        makes the file grow by a line) until a line is counted: the agent
        starts reading at the file's end a few seconds after start."""
        def reading():
            if self.lines_read(path):
                return True
            poke()
            return False
        h.wait_until(reading, timeout=2 * h.DEADLINE, interval=0.25,
                     what="crowdsec reading %s" % path, info=self.log)

    def log(self) -> str:
        text = []
        for n in range(len(self.procs)):
            try:
                with open(self._path("crowdsec%d.log" % n), "rb") as f:
                    text.append(f.read().decode("utf-8", "replace")[-6000:])
            except FileNotFoundError:
                pass
        return "\n".join(text)

    def stop(self):
        """SIGTERM to each process this object started (by PID), then SIGKILL
        after the deadline."""
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=h.DEADLINE)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            h._running.discard(p)
