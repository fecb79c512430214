/*
 * Unit tests for metricshare and the sums of metrics.c: a worker (a child
 * process, as in the daemon) counts in its slots of the shared region and
 * worker 0 finds them by name and adds them up; a successor of a dead worker
 * continues the counters and starts its gauges at 0; health and checks are
 * not summed; gauges of a worker not running are left out; without a
 * region the slots are private.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "metrics.h"
#include "metricshare.h"
#include "procstat.h"
#include "shm.h"

/* Worker 1, in a child: takes its slots, counts, and dies without giving anything back. */
static void
run_worker1(struct shm *s, int sessions_left_open, uint64_t ended)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        shm_attach(s, 1, 2);
        struct metricshare_proc *p = metricshare_start((uint64_t)getpid(), 1000);
        struct metrics_listener *l = metricshare_listener("smtp");
        struct metrics_server *sv = metricshare_server("mail", "mx1");
        struct metrics_backend *b = metricshare_backend("mail");
        if (l == NULL || sv == NULL || b == NULL)
            _exit(2);
        /* A successor starts at 0 on the gauges, on its predecessor's counters. */
        if (l->active != 0 || sv->active != 0 || b->queued != 0)
            _exit(3);
        l->active += (uint64_t)sessions_left_open;
        l->ended[1] += ended;
        l->bytes_in += 10 * ended;
        sv->active += (uint64_t)sessions_left_open;
        metrics_connect_ok(sv, 7);
        sv->went_up = 99; /* a follower's copy of the health: never summed */
        b->queued = 4;
        p->sessions = (uint64_t)sessions_left_open;
        p->remote_refused += 1;
        /* Dies like a killed worker: nothing given back, pid left. */
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void
test_sums_over_workers_and_restart(void **state)
{
    (void)state;
    struct shm *s = shm_create(SHM_RESERVE_MIN);
    assert_non_null(s);
    run_worker1(s, 2, 5);

    /* Worker 0 takes the same names: the blocks of worker 1's slots. */
    shm_attach(s, 0, 2);
    struct metricshare_proc *me = metricshare_start((uint64_t)getpid(), 2000);
    struct metrics_listener *l0 = metricshare_listener("smtp");
    struct metrics_server *s0 = metricshare_server("mail", "mx1");
    struct metrics_backend *b0 = metricshare_backend("mail");
    assert_non_null(l0);
    assert_non_null(s0);
    assert_non_null(b0);
    l0->active = 1;
    l0->ended[1] = 3;
    s0->up = true;
    s0->went_up = 1;
    s0->checked = true;
    metrics_connect_ok(s0, 20000);
    const struct metrics_listener *l1 = metricshare_listener_of(l0, 1);
    assert_ptr_equal(metricshare_listener_of(l0, 0), l0);
    assert_int_equal(l1->ended[1], 5);

    /* Worker 1's process is gone (its pid exited): its gauges do not count. */
    assert_true(metricshare_running(0));
    assert_false(metricshare_running(1));
    struct metrics_listener sum = {.name = "smtp"};
    for (unsigned k = 0; k < 2; k++)
        metrics_listener_add(&sum, metricshare_listener_of(l0, k), metricshare_running(k));
    assert_int_equal(sum.active, 1);
    assert_int_equal(sum.ended[1], 8);
    assert_int_equal(sum.bytes_in, 50);
    /* Counted as if it ran: the gauges too. */
    struct metrics_server ss = {0};
    struct metrics_backend bs = {0};
    for (unsigned k = 0; k < 2; k++) {
        metrics_server_add(&ss, metricshare_server_of(s0, k), true);
        metrics_backend_add(&bs, metricshare_backend_of(b0, k), true);
    }
    assert_int_equal(ss.connects, 2);
    assert_int_equal(ss.active, 2);
    assert_int_equal(ss.lat_bucket[2], 1);   /* 7 ms */
    assert_int_equal(ss.lat_sum_ms, 20007);
    assert_int_equal(ss.went_up, 0);         /* health is not summed */
    assert_false(ss.up);
    assert_int_equal(bs.queued, 4);

    /* The process table: worker 1 started once, left its figures. */
    const struct metricshare_proc *p1 = metricshare_proc_of(1);
    assert_non_null(p1);
    assert_int_equal(p1->starts, 1);
    assert_int_equal(p1->started, 1000);
    assert_int_equal(p1->remote_refused, 1);
    assert_ptr_equal(metricshare_proc_of(0), me);
    assert_null(metricshare_proc_of(2));

    /* Its successor continues the counters and zeroes the gauges first. */
    run_worker1(s, 0, 1);
    assert_int_equal(l1->ended[1], 6);
    assert_int_equal(l1->bytes_in, 60);
    assert_int_equal(l1->active, 0);
    assert_int_equal(metricshare_server_of(s0, 1)->connects, 2);
    assert_int_equal(p1->starts, 2);
    assert_int_equal(p1->remote_refused, 2);
    metricshare_free();
    shm_destroy(s);
    shm_attach(NULL, 0, 1);
}

static void
test_private_without_region(void **state)
{
    (void)state;
    shm_attach(NULL, 0, 1);
    struct metricshare_proc *p = metricshare_start(42, 7);
    assert_ptr_equal(metricshare_self(), p);
    assert_int_equal(p->starts, 1);
    struct metrics_listener *a = metricshare_listener("a");
    struct metrics_listener *b = metricshare_listener("a");
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b); /* private: a name is the caller's to keep */
    assert_ptr_equal(metricshare_listener_of(a, 0), a);
    assert_true(metricshare_running(0));
    metricshare_free(); /* ASan: nothing left */
}

/* A bucket read a connect ahead of the count never makes +Inf smaller. */
static void
test_render_clamps_histogram_and_workers(void **state)
{
    (void)state;
    struct metrics m = {.version = "t"};
    assert_int_equal(metrics_init(&m, 0, 1), 0);
    m.servers[0].backend = "mail";
    m.servers[0].name = "mx1";
    m.servers[0].lat_bucket[0] = 3;
    m.servers[0].connects = 2;
    struct metrics_worker w[2] = {{.running = true, .start_time = 5, .sessions = 3, .open_fds = 9},
                                  {.running = false, .restarts = 2}};
    m.workers = w;
    m.nworkers = 2;
    struct strbuf b = {0};
    assert_int_equal(metrics_render(&m, &b), 0);
    assert_non_null(strstr(b.p, "mailedge_server_connect_duration_seconds_bucket{backend=\"mail\","
                                "server=\"mx1\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(b.p, "mailedge_server_connect_duration_seconds_count{backend=\"mail\","
                                "server=\"mx1\"} 3\n"));
    assert_non_null(strstr(b.p, "# TYPE mailedge_workers gauge\nmailedge_workers 1\n"));
    assert_non_null(strstr(b.p, "mailedge_worker_restarts_total{worker=\"1\"} 2\n"));
    assert_non_null(strstr(b.p, "mailedge_worker_sessions_active{worker=\"0\"} 3\n"));
    assert_non_null(strstr(b.p, "mailedge_worker_open_fds{worker=\"0\"} 9\n"));
    assert_non_null(strstr(b.p, "mailedge_worker_start_time_seconds{worker=\"0\"} 5\n"));
    free(b.p);
    metrics_free(&m);
}

/* Another process's start and memory (the supervisor's, for worker 0). */
static void
test_read_other_pid(void **state)
{
    (void)state;
    struct metrics_process self, other = {0};
    assert_int_equal(procstat_read(&self), 0);
    assert_int_equal(procstat_read_pid((int)getpid(), &other), 0);
    assert_int_equal(other.start_time, self.start_time);
    assert_true(other.resident_bytes > 0);
    assert_int_equal(other.open_fds, 0); /* not read: another's may not be */
    assert_int_equal(procstat_read_pid(-1, &other), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sums_over_workers_and_restart),
        cmocka_unit_test(test_private_without_region),
        cmocka_unit_test(test_render_clamps_histogram_and_workers),
        cmocka_unit_test(test_read_other_pid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
