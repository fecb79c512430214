"""mailedge -w: reload when the configuration file changes (issue 17), for
ConfigMaps and template renderers. A rename into place, a write in place
and Kubernetes' swap of the `..data` symlink are each seen and reloaded
the way SIGHUP reloads: new sessions take the new route while new
sessions keep arriving and a long one relays across the reloads (nothing
failed, nothing cut); an invalid file is counted as a failed reload and
the running configuration keeps serving."""

import os

import harness as h
from test_reload import (GREET_A, GREET_B, ShortSessions, greeting_of, reloads,
                         two_routes)


class Watched:
    def __init__(self, rig, confdir, path):
        self.rig, self.admin = rig, rig.endpoint(5)
        self.confdir, self.path = confdir, path

    def text(self, body):
        return h.global_block(extra=["admin %s" % h.fmt_addr(*self.admin)]) + body

    def start(self, body, args=("-w",)):
        self.write_in_place(self.text(body))
        work = self.rig.tmp / "run-watch"
        work.mkdir()
        self.me = h.Mailedge(self.rig.binary, self.path, work, grace=5.0, args=args)
        self.rig.daemons.append(self.me)
        self.me.start()
        return self.me

    def write_in_place(self, text):
        with open(self.path, "w") as f:
            f.write(text)

    def rename_into_place(self, text):
        tmp = os.path.join(self.confdir, ".mailedge.conf.tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)

    def wait_reloads(self, n, result="success"):
        h.wait_until(lambda: reloads(self.admin, result) >= n,
                     what="%d reloads counted as %s" % (n, result), info=self.me.describe)


class KubeVolume(Watched):
    """A ConfigMap volume as the kubelet writes it: the file is a symlink
    to ..data/mailedge.conf, ..data a symlink to a timestamped directory,
    and an update renames a new ..data symlink over the old one."""

    def __init__(self, rig, confdir):
        super().__init__(rig, confdir, os.path.join(confdir, "mailedge.conf"))
        self.gen = 0

    def write_in_place(self, text):
        self.gen += 1
        old = os.readlink(os.path.join(self.confdir, "..data")) if self.gen > 1 else None
        ts = "..2026_12_06_00_00_%02d.%d" % (self.gen, os.getpid())
        os.mkdir(os.path.join(self.confdir, ts))
        with open(os.path.join(self.confdir, ts, "mailedge.conf"), "w") as f:
            f.write(text)
        os.symlink(ts, os.path.join(self.confdir, "..data_tmp"))
        os.rename(os.path.join(self.confdir, "..data_tmp"), os.path.join(self.confdir, "..data"))
        if old is None:
            os.symlink("..data/mailedge.conf", self.path)
        else:
            os.unlink(os.path.join(self.confdir, old, "mailedge.conf"))
            os.rmdir(os.path.join(self.confdir, old))


def _setup(rig, kind):
    a = rig.backend(2, greeting=GREET_A, echo=True, backlog=256)
    b = rig.backend(6, greeting=GREET_B, echo=True, backlog=256)
    lip = rig.ip(1)
    lport = h.free_port(lip)
    confdir = rig.tmp / ("conf-" + kind)
    confdir.mkdir()
    w = (KubeVolume(rig, str(confdir)) if kind == "kube"
         else Watched(rig, str(confdir), str(confdir / "mailedge.conf")))
    w.start(two_routes(a, b, lip, lport, "a"))
    return w, a, b, lip, lport


def _alternate(rig, w, a, b, lip, lport, write, rounds=6):
    long_c = rig.client(lip, lport, source=rig.ip(20), name="long")
    long_c.wait_endswith(GREET_A)
    flow = ShortSessions(lip, lport, rig.ip(10))
    flow.start()
    try:
        for i in range(rounds):
            route, greet = ("b", GREET_B) if i % 2 == 0 else ("a", GREET_A)
            write(w.text(two_routes(a, b, lip, lport, route)))
            w.wait_reloads(i + 1)
            assert greeting_of(rig, lip, lport) == greet, "change %d" % (i + 1)
            msg = b"ping %d\r\n" % i
            long_c.send(msg)
            long_c.wait_endswith(msg)
    finally:
        flow.stop.set()
        flow.join(h.DEADLINE)
    assert not flow.failures, flow.failures[:5]
    assert flow.ok > 0
    assert not long_c.ended
    long_c.close()
    assert reloads(w.admin, "failure") == 0
    assert len(w.me.events("config_changed")) == rounds
    ended = w.me.wait_log("session", count=flow.ok + rounds + 1)
    cut = [s for s in ended if s["reason"] not in ("client_closed", "backend_closed")]
    assert not cut, cut[:5]


def test_rename_into_place_reloads(rig):
    w, a, b, lip, lport = _setup(rig, "rename")
    assert w.me.events("config_watch"), w.me.describe()
    _alternate(rig, w, a, b, lip, lport, w.rename_into_place)


def test_write_in_place_reloads(rig):
    w, a, b, lip, lport = _setup(rig, "inplace")
    _alternate(rig, w, a, b, lip, lport, w.write_in_place, rounds=4)


def test_kubernetes_symlink_swap_reloads(rig):
    w, a, b, lip, lport = _setup(rig, "kube")
    _alternate(rig, w, a, b, lip, lport, w.write_in_place, rounds=4)


def test_invalid_file_keeps_running_config(rig):
    w, a, b, lip, lport = _setup(rig, "invalid")
    good_b = w.text(two_routes(a, b, lip, lport, "b"))
    w.rename_into_place(good_b.replace("route -> b", "route -> nowhere"))
    w.wait_reloads(1, "failure")
    assert greeting_of(rig, lip, lport) == GREET_A
    assert reloads(w.admin) == 0
    # Fixed: the next change is reloaded.
    w.rename_into_place(good_b)
    w.wait_reloads(1)
    assert greeting_of(rig, lip, lport) == GREET_B


def test_other_files_in_the_directory_do_not_reload(rig):
    """A file written next to the configuration (an editor's swap file, a
    key) wakes the watch but is not a change: only the configuration's own
    change is reloaded, once."""
    w, a, b, lip, lport = _setup(rig, "others")
    with open(os.path.join(w.confdir, "other.txt"), "w") as f:
        f.write("x")
    w.rename_into_place(w.text(two_routes(a, b, lip, lport, "b")))
    w.wait_reloads(1)
    assert reloads(w.admin) == 1
    assert len(w.me.events("config_changed")) == 1


def test_without_w_no_watch(rig):
    a = rig.backend(2, greeting=GREET_A)
    b = rig.backend(6, greeting=GREET_B)
    lip = rig.ip(1)
    lport = h.free_port(lip)
    confdir = rig.tmp / "conf-off"
    confdir.mkdir()
    w = Watched(rig, str(confdir), str(confdir / "mailedge.conf"))
    me = w.start(two_routes(a, b, lip, lport, "a"), args=())
    assert me.events("config_watch") == []
