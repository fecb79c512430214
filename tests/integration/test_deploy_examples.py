"""examples/compose and examples/kubernetes (issue 17), checked without a
container runtime: the YAML parses, and what matters holds — host
networking, the image name `make image` produces, probes that ask real
admin endpoints on the port the config's `admin` gives, the config
mounted where the image reads it (a ConfigMap as a directory, so updates
arrive, with `-w` to reload them), and the config passes `mailedge -t`
with the environment the manifests set."""

import os
import re
import subprocess

import pytest
import yaml

import harness as h

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
COMPOSE = os.path.join(ROOT, "examples", "compose")
KUBE = os.path.join(ROOT, "examples", "kubernetes", "mailedge.yaml")
CONF_IN_IMAGE = "/etc/mailedge/mailedge.conf"


def built_image():
    """localhost/mailedge:VERSION, as scripts/image.sh tags it."""
    with open(os.path.join(ROOT, "Makefile")) as f:
        version = re.search(r"^VERSION\s*:=\s*(\S+)", f.read(), re.M).group(1)
    with open(os.path.join(ROOT, "scripts", "image.sh")) as f:
        assert "IMAGE=${IMAGE:-localhost/mailedge}" in f.read()
    return "localhost/mailedge:" + version


def admin_of(conf_text):
    m = re.search(r"^\s*admin\s+(\S+):(\d+)", conf_text, re.M)
    assert m, "the example config has no admin endpoint"
    return m.group(1), int(m.group(2))


def check_config(binary, tmp_path, text, env):
    path = tmp_path / "example.conf"
    path.write_text(text)
    r = subprocess.run([binary, "-t", "-c", str(path)], capture_output=True, text=True,
                       env=dict(os.environ, **env), timeout=h.DEADLINE)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture
def compose():
    with open(os.path.join(COMPOSE, "compose.yaml")) as f:
        return yaml.safe_load(f)


@pytest.fixture
def kube():
    with open(KUBE) as f:
        docs = list(yaml.safe_load_all(f))
    return {d["kind"]: d for d in docs}


def test_compose_invariants(compose, binary, tmp_path):
    edge = compose["services"]["mailedge"]
    assert edge["network_mode"] == "host", "published ports would hide the client address"
    assert edge["image"] == built_image()
    assert edge["stop_signal"] == "SIGTERM"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in edge["volumes"]}
    conf_file = os.path.join(COMPOSE, mounts[CONF_IN_IMAGE])
    with open(conf_file) as f:
        conf = f.read()
    ip, port = admin_of(conf)
    # The health check is mailedge probe against a real admin endpoint.
    test = edge["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1:3] == ["/usr/sbin/mailedge", "probe"]
    assert "http://%s:%d/readyz" % (ip, port) in test
    # The dependent service starts once the probe says healthy.
    web = compose["services"]["web"]
    assert web["network_mode"] == "host"
    assert web["depends_on"]["mailedge"]["condition"] == "service_healthy"
    # PROXY v2 to the mailbox by name; :443 split by SNI, the rest to the web server.
    assert re.search(r"server \w+ \$\{MAILBOX_HOST\}", conf) and "send-proxy v2" in conf
    assert re.search(r"route sni .* -> mailbox-web", conf)
    web_addr = re.search(r"route -> (127\.0\.0\.1:\d+)\s", conf).group(1)
    with open(os.path.join(COMPOSE, "web.conf")) as f:
        assert "listen %s ssl;" % web_addr in f.read()
    env = {k: "mailbox.vpn.example.org" if "HOST" in k else "example.org"
           for k in edge["environment"]}
    check_config(binary, tmp_path, conf, env)


def test_kubernetes_invariants(kube, binary, tmp_path):
    ds = kube["DaemonSet"]
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True, "host networking keeps the client address"
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    (c,) = pod["containers"]
    assert c["image"] == built_image()
    assert c["args"][:2] == ["-c", CONF_IN_IMAGE] and "-w" in c["args"], \
        "the ConfigMap's updates are reloaded only with -w"
    # The ConfigMap is mounted as a directory: a subPath mount never updates.
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == os.path.dirname(CONF_IN_IMAGE)]
    assert "subPath" not in mount
    (vol,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    cm = kube["ConfigMap"]
    assert vol["configMap"]["name"] == cm["metadata"]["name"]
    conf = cm["data"][os.path.basename(CONF_IN_IMAGE)]
    ip, port = admin_of(conf)
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        g = c[probe]["httpGet"]
        assert (g["host"], g["port"], g["path"]) == (ip, port, path), probe
    assert pod["terminationGracePeriodSeconds"] > h.parse_duration(
        re.search(r"^\s*grace\s+(\S+)", conf, re.M).group(1))
    assert "NET_BIND_SERVICE" in c["securityContext"]["capabilities"]["add"]
    assert c["securityContext"].get("allowPrivilegeEscalation", True), \
        "no_new_privs would void the binary's file capability"
    env = {e["name"]: e["value"] for e in c["env"]}
    check_config(binary, tmp_path, conf, env)


def test_probe_paths_are_real_endpoints(rig):
    """/healthz and /readyz, as the manifests ask them, answer 200 from a
    running mailedge (with mailedge probe, as the compose health check)."""
    admin = rig.endpoint(5)
    rig.simple(global_extra=["admin %s" % h.fmt_addr(*admin)])
    for path in ("/healthz", "/readyz"):
        r = h.run_mailedge(rig.binary, ["probe", "--timeout", "5s",
                                        "http://%s%s" % (h.fmt_addr(*admin), path)])
        assert r.returncode == 0, r.stdout + r.stderr


def test_image_config(binary, tmp_path):
    """The config the image ships passes `mailedge -t` with the environment
    the Containerfile sets (MAILEDGE_ADMIN) and the one it asks for, and its
    HEALTHCHECK asks that same admin endpoint."""
    with open(os.path.join(ROOT, "Containerfile")) as f:
        cf = f.read()
    admin = re.search(r"^ENV MAILEDGE_ADMIN=(\S+)$", cf, re.M).group(1)
    assert re.search(r'^  CMD /usr/sbin/mailedge probe .*"http://\$\{MAILEDGE_ADMIN\}/healthz"$',
                     cf, re.M)
    assert re.search(r"^COPY contrib/image/mailedge.conf %s$" % CONF_IN_IMAGE, cf, re.M)
    with open(os.path.join(ROOT, "contrib", "image", "mailedge.conf")) as f:
        conf = f.read()
    assert "admin ${MAILEDGE_ADMIN}" in conf
    check_config(binary, tmp_path, conf, {"MAILEDGE_ADMIN": admin, "MAILBOX_HOST": "10.0.20.5"})
