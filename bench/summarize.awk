# bench/summarize.awk: medians over rounds, the table, and the issue's targets.
#
#   awk -v targets="direct mailedge haproxy nginx" -f bench/summarize.awk raw.txt
#
# Input: one line per measurement, "round=R target=T test=X key=value ...",
# as bench/run.sh writes them (the loadgen's line with the first three
# keys prepended). Output: the table of medians with ratios, then the
# targets of issue 7, met or not with the gap.

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
        else if (r != "" && t != "" && x != "" && v ~ /^-?[0-9.]+$/)
            val[t, x, k, r] = v
    }
    if (r != "" && !(r in seen)) {
        seen[r] = 1
        rounds[++nr] = r
    }
}

END {
    # Per-round differences against the direct connection of the same round.
    for (i = 1; i <= nr; i++) {
        r = rounds[i]
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

    # label | test | key | printf format | does "direct" have a value
    nrow = split("short sessions/s (c=50)|short|rate|%.0f|y;" \
                 "  session p50 us (c=50)|short|p50_us|%.0f|y;" \
                 "  session p99 us (c=50)|short|p99_us|%.0f|y;" \
                 "  proxy CPU us/session|short|cpu_us_per_session|%.1f|n;" \
                 "  proxy core busy us/session|short|core_us_per_session|%.1f|n;" \
                 "bulk one way Gbit/s|up|gbps|%.2f|y;" \
                 "  proxy CPU ms/GB|up|cpu_ms_per_gb|%.0f|n;" \
                 "  proxy core busy ms/GB|up|core_ms_per_gb|%.0f|n;" \
                 "bulk both ways Gbit/s (sum)|both|gbps|%.2f|y;" \
                 "  proxy CPU ms/GB|both|cpu_ms_per_gb|%.0f|n;" \
                 "  proxy core busy ms/GB|both|core_ms_per_gb|%.0f|n;" \
                 "idle: proxy RSS B/session|idle|rss_b_per_session|%.0f|n;" \
                 "idle: kernel B/session, all|idle|kernel_b_per_session|%.0f|y;" \
                 "idle: kernel B/session, proxy|idle|kernel_proxy_b|%.0f|n;" \
                 "unloaded session p50 us (c=1)|lat|p50_us|%.0f|y;" \
                 "  p99 us (c=1)|lat|p99_us|%.0f|y;" \
                 "  cross-CPU wake-ups/session|lat|ipi_per_session|%.1f|y;" \
                 "  latency added us (p50 - direct)|lat|added_us|%.0f|n", rows, ";")

    printf "%-32s %9s %9s %9s %9s %9s %9s %9s\n", "median of " nr " round(s)", "direct", \
        "mailedge", "haproxy", "nginx", "me/hap", "ngx/hap", "me/dir"
    for (i = 1; i <= nrow; i++) {
        split(rows[i], c, "|")
        d = (c[5] == "y" && have["direct"]) ? med("direct", c[2], c[3]) : ""
        m = have["mailedge"] ? med("mailedge", c[2], c[3]) : ""
        h = have["haproxy"] ? med("haproxy", c[2], c[3]) : ""
        g = have["nginx"] ? med("nginx", c[2], c[3]) : ""
        printf "%-32s %9s %9s %9s %9s %9s %9s %9s\n", c[1], fmt(d, c[4]), fmt(m, c[4]), \
            fmt(h, c[4]), fmt(g, c[4]), ratio(m, h), ratio(g, h), ratio(m, d)
        M[c[2], c[3]] = m; H[c[2], c[3]] = h; G[c[2], c[3]] = g
    }

    print ""
    print "targets (issue 7), mailedge against HAProxy in this run:"
    check("proxy CPU per short session", M["short", "cpu_us_per_session"], \
          H["short", "cpu_us_per_session"], "le", 0.6, "us")
    check("short sessions/s vs HAProxy", M["short", "rate"], H["short", "rate"], "ge", 1, "/s")
    check("short sessions/s vs nginx", M["short", "rate"], G["short", "rate"], "ge", 1, "/s")
    check("proxy CPU per GB, one way", M["up", "cpu_ms_per_gb"], H["up", "cpu_ms_per_gb"], \
          "le", 0.8, "ms")
    check("proxy CPU per GB, both ways", M["both", "cpu_ms_per_gb"], \
          H["both", "cpu_ms_per_gb"], "le", 0.8, "ms")
    check("throughput one way", M["up", "gbps"], H["up", "gbps"], "ge", 1, "Gbit/s")
    check("throughput both ways", M["both", "gbps"], H["both", "gbps"], "ge", 1, "Gbit/s")
    check("RSS per idle session", M["idle", "rss_b_per_session"], \
          H["idle", "rss_b_per_session"], "le", 0.5, "B")
    check("kernel memory per idle session", M["idle", "kernel_proxy_b"], \
          H["idle", "kernel_proxy_b"], "le", 1, "B")
    check("latency added at c=1", M["lat", "added_us"], H["lat", "added_us"], "le", 0.7, "us")
}

# Prints one target line: want "le" (at most f times ref) or "ge" (at least).
function check(what, m, h, want, f, unit,    lim, ok, gap) {
    if (m == "" || h == "" || h + 0 <= 0) {
        printf "  [n/a]     %-32s (not measured in this run)\n", what
        return
    }
    lim = f * h
    ok = want == "le" ? (m <= lim) : (m >= lim)
    if (ok)
        printf "  [met]     %-32s %.4g %s = %.2fx (target %s %.2fx)\n", what, m, unit, m / h, \
            want == "le" ? "<=" : ">=", f
    else {
        gap = want == "le" ? m - lim : lim - m
        printf "  [NOT MET] %-32s %.4g %s = %.2fx (target %s %.2fx, i.e. %.4g %s: %.4g %s (%.0f%%) to go)\n", \
            what, m, unit, m / h, want == "le" ? "<=" : ">=", f, lim, unit, gap, unit, 100 * gap / m
    }
}
