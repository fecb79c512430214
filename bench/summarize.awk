# bench/summarize.awk: medians over rounds, the table, and the issue's targets.
#
#   awk -v targets="direct mailedge hapauto hapsplice nginx mebusy" -v phase=pinned \
#       -f bench/summarize.awk raw.txt
#
# Input: one line per measurement, "round=R target=T test=X key=value ...",
# as bench/run.sh writes them (the loadgen's line with the first three
# keys prepended; lines with rc other than 0 are left out). Output: the table of medians with ratios, then the
# targets of issue 19 for the phase (pinned: one worker each, pinned to one
# core; multi: N workers or threads each, nothing pinned), each with ✓ or ✗.
#
# HAProxy runs twice, with `option splice-auto` (hapauto) and with forced
# splice both ways (hapsplice); "hap best" is the better of the two per
# figure (a or s says which), and the ratios are against it. "base" is an
# optional second mailedge binary (an A/B); "mebusy" is mailedge with
# busy-poll, measured in the latency test only.

function med(t, x, k,    n, i, j, v, a, tmp) {
    n = 0
    for (i = 1; i <= nr; i++) {
        v = (t SUBSEP x SUBSEP k SUBSEP rounds[i])
        if (v in val && val[v] != "")
            a[++n] = val[v] + 0
    }
    if (n == 0)
        return ""
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
            tmp = a[j]; a[j] = a[j - 1]; a[j - 1] = tmp
        }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}

function fmt(v, f) {
    return v == "" ? "-" : sprintf(f, v)
}

function ratio(a, b) {
    return (a == "" || b == "" || b + 0 == 0) ? "-" : sprintf("%.2fx", a / b)
}

# The better of two medians: "lo" wants the smaller, "hi" the larger.
function better(a, b, dir) {
    if (a == "") return b
    if (b == "") return a
    return (dir == "lo") == (a + 0 <= b + 0) ? a : b
}

function get(t, x, k) {
    return have[t] ? med(t, x, k) : ""
}

BEGIN {
    nt = split(targets, T, " ")
    for (i = 1; i <= nt; i++)
        have[T[i]] = 1
}

{
    r = t = x = ""
    for (i = 1; i <= NF; i++) {
        eq = index($i, "=")
        if (eq == 0)
            continue
        k = substr($i, 1, eq - 1)
        v = substr($i, eq + 1)
        if (k == "round") r = v
        else if (k == "target") t = v
        else if (k == "test") x = v
        else if (k == "rc" && v != "0") {
            if (phase != "hold") break           # a failed measurement counts for nothing
            bad[t] = 1                           # hold: its counts say what failed
        }
        else if (k == "pid_fds") pidfds[t] = v
        else if (r != "" && t != "" && x != "" && v ~ /^-?[0-9.]+$/)
            val[t, x, k, r] = v
    }
    if (r != "" && !(r in seen)) {
        seen[r] = 1
        rounds[++nr] = r
    }
}

END {
    if (phase == "hold") {
        hold_table()
        exit
    }
    # Per-round differences against the direct connection of the same round.
    for (i = 1; i <= nr; i++) {
        r = rounds[i]
        # CPU of client, server and proxy together, and what the proxy added
        # to the direct connection's: on loopback, the kernel's work for a
        # packet runs in the sender's or the receiver's context depending on
        # timing, so some of a proxy's work can land on its peers, and back.
        split("short cpu_us_per_session lg_cpu_us_per_session be_cpu_us_per_session;" \
              "up cpu_ms_per_gb lg_cpu_ms_per_gb be_cpu_ms_per_gb;" \
              "both cpu_ms_per_gb lg_cpu_ms_per_gb be_cpu_ms_per_gb", tot, ";")
        for (j = 1; j <= nt; j++) {
            t = T[j]
            for (q = 1; q <= 3; q++) {
                split(tot[q], f, " ")
                if (!((t SUBSEP f[1] SUBSEP f[3] SUBSEP r) in val) || \
                    !((t SUBSEP f[1] SUBSEP f[4] SUBSEP r) in val))
                    continue
                v = val[t, f[1], f[3], r] + val[t, f[1], f[4], r]
                if (t != "direct") {
                    if (!((t SUBSEP f[1] SUBSEP f[2] SUBSEP r) in val))
                        continue
                    v += val[t, f[1], f[2], r]
                }
                val[t, f[1], "all_cpu", r] = v
            }
        }
        for (j = 1; j <= nt; j++) {
            t = T[j]
            for (q = 1; q <= 3; q++) {
                split(tot[q], f, " ")
                if (t != "direct" && (t SUBSEP f[1] SUBSEP "all_cpu" SUBSEP r) in val && \
                    ("direct" SUBSEP f[1] SUBSEP "all_cpu" SUBSEP r) in val)
                    val[t, f[1], "added_cpu", r] = val[t, f[1], "all_cpu", r] - \
                        val["direct", f[1], "all_cpu", r]
            }
        }
        for (j = 1; j <= nt; j++) {
            t = T[j]
            if (t == "direct")
                continue
            if (("direct" SUBSEP "idle" SUBSEP "kernel_b_per_session" SUBSEP r) in val && \
                (t SUBSEP "idle" SUBSEP "kernel_b_per_session" SUBSEP r) in val)
                val[t, "idle", "kernel_proxy_b", r] = val[t, "idle", "kernel_b_per_session", r] - \
                    val["direct", "idle", "kernel_b_per_session", r]
            if (("direct" SUBSEP "lat" SUBSEP "p50_us" SUBSEP r) in val && \
                (t SUBSEP "lat" SUBSEP "p50_us" SUBSEP r) in val)
                val[t, "lat", "added_us", r] = val[t, "lat", "p50_us", r] - \
                    val["direct", "lat", "p50_us", r]
        }
    }

    # label | test | key | printf format | does "direct" have a value | better
    # ("i": no ratios, it explains the row above) | the target shown in the
    # mailedge column (default mailedge)
    nrow = split("short sessions/s (c=" conc ")|short|rate|%.0f|y|hi;" \
                 "  session p50 us|short|p50_us|%.0f|y|lo;" \
                 "  session p99 us|short|p99_us|%.0f|y|lo;" \
                 "  proxy CPU us/session|short|cpu_us_per_session|%.1f|n|lo;" \
                 "    of it in the kernel %|short|sys_pct|%.0f|n|i;" \
                 "  proxy run-queue wait us/session|short|wait_cpu_us_per_session|%.1f|n|i;" \
                 "  proxy core busy us/session|short|core_us_per_session|%.1f|n|lo;" \
                 "  load generator CPU us/session|short|lg_cpu_us_per_session|%.1f|y|i;" \
                 "  backend CPU us/session|short|be_cpu_us_per_session|%.1f|y|i;" \
                 "  client+server+proxy CPU us/session|short|all_cpu|%.1f|y|lo;" \
                 "  added to direct's us/session|short|added_cpu|%.1f|n|lo;" \
                 "  machine busy % (all CPUs)|short|machine_busy_pct|%.0f|y|i;" \
                 "bulk one way Gbit/s|up|gbps|%.2f|y|hi;" \
                 "  proxy CPU ms/GB|up|cpu_ms_per_gb|%.0f|n|lo;" \
                 "    of it in the kernel %|up|sys_pct|%.1f|n|i;" \
                 "  proxy core busy ms/GB|up|core_ms_per_gb|%.0f|n|lo;" \
                 "  load generator CPU ms/GB|up|lg_cpu_ms_per_gb|%.0f|y|i;" \
                 "  backend CPU ms/GB|up|be_cpu_ms_per_gb|%.0f|y|i;" \
                 "  client+server+proxy CPU ms/GB|up|all_cpu|%.0f|y|lo;" \
                 "  added to direct's ms/GB|up|added_cpu|%.0f|n|lo;" \
                 "bulk both ways Gbit/s (sum)|both|gbps|%.2f|y|hi;" \
                 "  proxy CPU ms/GB|both|cpu_ms_per_gb|%.0f|n|lo;" \
                 "    of it in the kernel %|both|sys_pct|%.1f|n|i;" \
                 "  proxy core busy ms/GB|both|core_ms_per_gb|%.0f|n|lo;" \
                 "  load generator CPU ms/GB|both|lg_cpu_ms_per_gb|%.0f|y|i;" \
                 "  backend CPU ms/GB|both|be_cpu_ms_per_gb|%.0f|y|i;" \
                 "  client+server+proxy CPU ms/GB|both|all_cpu|%.0f|y|lo;" \
                 "  added to direct's ms/GB|both|added_cpu|%.0f|n|lo;" \
                 "idle: proxy RSS B/session|idle|rss_b_per_session|%.0f|n|lo;" \
                 "idle: kernel B/session, all|idle|kernel_b_per_session|%.0f|y|lo;" \
                 "idle: kernel B/session, proxy|idle|kernel_proxy_b|%.0f|n|lo;" \
                 "unloaded session p50 us (c=1)|lat|p50_us|%.0f|y|lo;" \
                 "  p99 us (c=1)|lat|p99_us|%.0f|y|lo;" \
                 "  cross-CPU wake-ups/session|lat|ipi_per_session|%.1f|y|lo;" \
                 "  proxy CPU us/session (c=1)|lat|cpu_us_per_session|%.1f|n|lo;" \
                 "  latency added us (p50 - direct)|lat|added_us|%.0f|n|lo;" \
                 "busy-poll: latency added us|lat|added_us|%.0f|n|lo|mebusy;" \
                 "  busy-poll: proxy CPU us/session|lat|cpu_us_per_session|%.1f|n|lo|mebusy;" \
                 "  busy-poll: wake-ups/session|lat|ipi_per_session|%.1f|n|lo|mebusy", rows, ";")

    hb = have["base"]
    hdr = sprintf("%-34s %8s %8s", "median of " nr " round(s)", "direct", "mailedge")
    if (hb) hdr = hdr sprintf(" %8s", "base")
    hdr = hdr sprintf(" %8s %8s %8s %10s %7s %7s %7s", "hap-auto", "hap-splc", "nginx", \
                      "hap best", "me/hap", "me/ngx", "me/dir")
    if (hb) hdr = hdr sprintf(" %7s", "me/base")
    print hdr
    for (i = 1; i <= nrow; i++) {
        split(rows[i], c, "|")
        mt = c[7] != "" ? c[7] : "mailedge"
        if (!have[mt])
            continue
        if (phase == "multi" && c[3] ~ /^core_/)
            continue    # nothing pinned: no core of its own to sample
        d = (c[5] == "y") ? get("direct", c[2], c[3]) : ""
        m = get(mt, c[2], c[3])
        b = mt == "mailedge" ? get("base", c[2], c[3]) : ""
        ha = get("hapauto", c[2], c[3])
        hs = get("hapsplice", c[2], c[3])
        g = get("nginx", c[2], c[3])
        if (d == "" && m == "" && ha == "" && hs == "" && g == "")
            continue    # a test this run left out
        if (c[6] == "i") {
            # A figure that explains the row above it: HAProxy's value from
            # the variant that row chose, and no ratios.
            h = which == " a" ? ha : which == " s" ? hs : ""
            line = sprintf("%-34s %8s %8s", c[1], fmt(d, c[4]), fmt(m, c[4]))
            if (hb) line = line sprintf(" %8s", fmt(b, c[4]))
            line = line sprintf(" %8s %8s %8s %10s", fmt(ha, c[4]), fmt(hs, c[4]), fmt(g, c[4]), \
                                fmt(h, c[4]) (h == "" ? "" : which))
            print line
            continue
        }
        h = better(ha, hs, c[6])
        which = h == "" ? "" : (ha != "" && h == ha) ? " a" : " s"
        line = sprintf("%-34s %8s %8s", c[1], fmt(d, c[4]), fmt(m, c[4]))
        if (hb) line = line sprintf(" %8s", fmt(b, c[4]))
        line = line sprintf(" %8s %8s %8s %10s %7s %7s %7s", fmt(ha, c[4]), fmt(hs, c[4]), \
                            fmt(g, c[4]), fmt(h, c[4]) which, ratio(m, h), ratio(m, g), ratio(m, d))
        if (hb) line = line sprintf(" %7s", ratio(m, b))
        print line
        M[mt, c[2], c[3]] = m; H[c[2], c[3]] = h; G[c[2], c[3]] = g
        W[c[2], c[3]] = which == " a" ? "splice-auto" : "forced splice"
    }
    print "  (hap best: the better of HAProxy with splice-auto (a) and with forced splice (s), per figure)"

    print ""
    if (phase == "multi") {
        print "targets (issue 19), N workers/threads, unpinned, against HAProxy at its best:"
        check("sessions/s vs HAProxy, same threads", M["mailedge", "short", "rate"], \
              H["short", "rate"], W["short", "rate"], "ge", 1.1, "/s", "mailedge", "short", "rate")
    } else
        pinned_targets()
}

function pinned_targets() {
    print "targets (issue 19), one worker, pinned, against HAProxy at its best (and nginx):"
    check("proxy CPU per short session", M["mailedge", "short", "cpu_us_per_session"], \
          H["short", "cpu_us_per_session"], W["short", "cpu_us_per_session"], "le", 0.9, "us", \
          "mailedge", "short", "cpu_us_per_session")
    check("short sessions/s vs HAProxy", M["mailedge", "short", "rate"], H["short", "rate"], \
          W["short", "rate"], "ge", 1.05, "/s", "mailedge", "short", "rate")
    check("short sessions/s vs nginx", M["mailedge", "short", "rate"], G["short", "rate"], \
          "nginx", "ge", 1.05, "/s", "mailedge", "short", "rate")
    check("proxy CPU per GB, one way", M["mailedge", "up", "cpu_ms_per_gb"], \
          H["up", "cpu_ms_per_gb"], W["up", "cpu_ms_per_gb"], "le", 0.7, "ms", \
          "mailedge", "up", "cpu_ms_per_gb")
    check("proxy CPU per GB, both ways", M["mailedge", "both", "cpu_ms_per_gb"], \
          H["both", "cpu_ms_per_gb"], W["both", "cpu_ms_per_gb"], "le", 0.7, "ms", \
          "mailedge", "both", "cpu_ms_per_gb")
    check("RSS per idle session", M["mailedge", "idle", "rss_b_per_session"], \
          H["idle", "rss_b_per_session"], W["idle", "rss_b_per_session"], "le", 0.2, "B", \
          "mailedge", "idle", "rss_b_per_session")
    check("latency added at c=1", M["mailedge", "lat", "added_us"], H["lat", "added_us"], \
          W["lat", "added_us"], "le", 1.0, "us", "mailedge", "lat", "added_us")
    check("latency added at c=1, busy-poll", M["mebusy", "lat", "added_us"], \
          H["lat", "added_us"], W["lat", "added_us"], "le", 0.6, "us", "mebusy", "lat", "added_us")
    print "  (rounds: the ratio of each round, where both were measured in it, lowest-highest, and in how"
    print "   many of them the target held: the medians above hide how much a round can move)"
}

# The hold run (one round): idle sessions held at once by mailedge and
# nginx with several workers, and its target (all of them held and greeted).
function hold_table(    rows, c, j, t, m, g, v, line, ok, what) {
    line = sprintf("%-40s", "one round")
    for (j = 1; j <= nt; j++)
        line = line sprintf(" %10s", T[j])
    if (have["nginx"] && have["mailedge"])
        line = line sprintf(" %8s", "me/ngx")
    print line
    split("sessions held (of " hold ")|sessions;greeted|greeted;" \
          "time to all greeted, s|secs_to_greeted;" \
          "RSS B/session, all processes|rss_b_per_session;" \
          "kernel B/session, 4 sockets|kernel_b_per_session;" \
          "  kernel rise|kernel_rise_b_per_session;  kernel fall|kernel_fall_b_per_session;" \
          "descriptors, most in one process|fds_max", rows, ";")
    for (c = 1; c in rows; c++) {
        split(rows[c], f, "|")
        line = sprintf("%-40s", f[1])
        for (j = 1; j <= nt; j++) {
            v = get(T[j], "hold", f[2])
            line = line sprintf(" %10s", fmt(v, f[2] == "secs_to_greeted" ? "%.2f" : "%.0f"))
        }
        if (have["nginx"] && have["mailedge"] && f[2] ~ /^(rss|kernel)_b_per_session$/)
            line = line sprintf(" %8s", ratio(get("mailedge", "hold", f[2]), get("nginx", "hold", f[2])))
        print line
    }
    for (j = 1; j <= nt; j++)
        if (T[j] in pidfds)
            printf "  descriptors per process, %s: %s (first: the supervisor or master)%s\n", T[j], \
                pidfds[T[j]], bad[T[j]] ? "; this measurement FAILED" : ""
    print "  kernel: active slab objects of the socket, file and epoll caches plus TCP buffer pages, host-wide,"
    print "    mean of the rise when the sessions opened and the fall when they closed; a session's four"
    print "    sockets on loopback (client, the proxy's two, the server's), about half of it the proxy's"
    if (hap != "")
        print "  HAProxy: not run: " hap
    print ""
    m = get("mailedge", "hold", "sessions")
    g = get("mailedge", "hold", "greeted")
    what = sprintf("%s idle sessions", commas(hold))
    print "targets (issue 19), idle sessions held by one mailedge of several workers:"
    if (!have["mailedge"])
        printf "  [n/a] %-36s (mailedge not measured in this run)\n", what
    else {
        ok = !bad["mailedge"] && m == hold && g == hold
        printf "  [%s]   %-36s %s held, %s greeted, in %.1f s; at most %s descriptors in one process (limit %s)%s\n", \
            ok ? "✓" : "✗", what, fmt(m, "%d"), fmt(g, "%d"), get("mailedge", "hold", "secs_to_greeted"), \
            fmt(get("mailedge", "hold", "fds_max"), "%d"), fdlim, \
            hold < 50000 ? " (issue 19's target is 50,000)" : ""
    }
}

function commas(n,    s) {
    s = sprintf("%d", n)
    while (s ~ /[0-9][0-9][0-9][0-9]/)
        sub(/[0-9][0-9][0-9]($|,)/, ",&", s)
    return s
}

# Prints one target line: want "le" (at most f times ref) or "ge" (at least),
# with the spread of the per-round ratios of target <mt> against the peer
# <who> names, for test <x> and key <k>.
function check(what, m, h, who, want, f, unit, mt, x, k,    lim, ok, gap) {
    if (m == "" || h == "" || h + 0 <= 0) {
        printf "  [n/a] %-36s (not measured in this run)\n", what
        return
    }
    lim = f * h
    ok = want == "le" ? (m <= lim) : (m >= lim)
    if (ok)
        printf "  [✓]   %-36s %.4g %s = %.2fx (target %s %.2fx; against %s)%s\n", what, m, unit, \
            m / h, want == "le" ? "<=" : ">=", f, who, spread(mt, x, k, who, want, f)
    else {
        gap = want == "le" ? m - lim : lim - m
        printf "  [✗]   %-36s %.4g %s = %.2fx (target %s %.2fx; against %s: %.4g %s (%.0f%%) to go)%s\n", \
            what, m, unit, m / h, want == "le" ? "<=" : ">=", f, who, gap, unit, 100 * gap / m, \
            spread(mt, x, k, who, want, f)
    }
}

# "; rounds 0.83-1.13x, met in 2 of 5", or "" with fewer than 2 rounds.
function spread(mt, x, k, who, want, f,    rt, i, r, q, lo, hi, n, met) {
    rt = who == "splice-auto" ? "hapauto" : who == "forced splice" ? "hapsplice" : who
    n = met = 0
    for (i = 1; i <= nr; i++) {
        r = rounds[i]
        if (!((mt SUBSEP x SUBSEP k SUBSEP r) in val) || !((rt SUBSEP x SUBSEP k SUBSEP r) in val) || \
            val[rt, x, k, r] + 0 <= 0)
            continue
        q = val[mt, x, k, r] / val[rt, x, k, r]
        if (n == 0 || q < lo) lo = q
        if (n == 0 || q > hi) hi = q
        n++
        if (want == "le" ? q <= f : q >= f) met++
    }
    return n < 2 ? "" : sprintf("; rounds %.2f-%.2fx, met in %d of %d", lo, hi, met, n)
}
