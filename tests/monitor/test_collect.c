/* test_collect.c -- the monitor's merge rules (monitor/collect.h): in order,
 * out of order, late, duplicate, missing, restarts, gaps, monitor start,
 * merged latency percentiles.  Reports are built by hand; "now" is passed
 * explicitly, so every case is deterministic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "collect.h"

#define T0 1700000000
#define MAXROWS 256

static mon_row rows[MAXROWS];
static int nrows;

static void on_row(void *ctx, const mon_row *r, const hb_hist *lat)
{
    (void)ctx;
    (void)lat;
    assert_true(nrows < MAXROWS);
    if (nrows)
        assert_true(r->second > rows[nrows - 1].second); /* strictly increasing */
    rows[nrows++] = *r;
}

static mon_collect *new_collect(int settle, int max_gap)
{
    nrows = 0;
    mon_config cfg = {.settle = settle, .max_gap = max_gap, .max_future = 5, .evict = 60, .max_sources = 16};
    char err[128];
    mon_collect *c = mon_collect_new(&cfg, on_row, NULL, err, sizeof err);
    assert_non_null(c);
    return c;
}

/* A report whose cumulative counters are all derived from `base`: requests =
 * base, replies = base, wins = base / 10, created = base / 5. */
static void add(mon_collect *c, int role, const char *inst, uint64_t boot, int64_t sec, uint64_t base, uint64_t conns,
                int64_t now)
{
    mon_report r;
    memset(&r, 0, sizeof r);
    r.role = role;
    r.instance = inst;
    r.boot_id = boot;
    r.second = sec;
    r.c[MON_requests] = base;
    r.c[MON_replies] = base;
    r.c[MON_wins] = base / 10;
    r.c[MON_created] = base / 5;
    r.conns = conns;
    r.target_qps = role == MON_CLIENT ? conns * 10 : 0; /* each client reports its share */
    mon_collect_add(c, &r, now);
}

static const mon_row *row_at(int64_t sec)
{
    for (int i = 0; i < nrows; i++)
        if (rows[i].second == sec)
            return &rows[i];
    return NULL;
}

static uint64_t sum_col(int role, int ctr)
{
    uint64_t s = 0;
    for (int i = 0; i < nrows; i++)
        s += rows[i].d[role][ctr];
    return s;
}

/* Two clients at 100/s and 50/s and a server, reports in order. */
static void test_in_order(void **state)
{
    (void)state;
    mon_collect *c = new_collect(2, 10);
    for (int k = 0; k <= 5; k++) {
        add(c, MON_CLIENT, "a", 1, T0 + k, 1000 + 100u * k, 10, T0 + k);
        add(c, MON_CLIENT, "b", 2, T0 + k, 500 + 50u * k, 20, T0 + k);
        add(c, MON_SERVER, "srv", 3, T0 + k, 7000 + 150u * k, 30, T0 + k);
        mon_collect_advance(c, T0 + k);
    }
    /* settle 2: at now = T0+5 seconds up to T0+3 are out; T0 itself is only
     * the base of every instance (the monitor just started) and is skipped */
    assert_int_equal(nrows, 3);
    assert_null(row_at(T0));
    for (int k = 1; k <= 3; k++) {
        const mon_row *r = row_at(T0 + k);
        assert_non_null(r);
        assert_int_equal(r->d[MON_CLIENT][MON_requests], 150);
        assert_int_equal(r->d[MON_CLIENT][MON_wins], 15);
        assert_int_equal(r->d[MON_SERVER][MON_replies], 150);
        assert_int_equal(r->d[MON_SERVER][MON_created], 30);
        assert_int_equal(r->reported[MON_CLIENT], 2);
        assert_int_equal(r->reported[MON_SERVER], 1);
        assert_int_equal(r->conns[MON_CLIENT], 30);
        assert_int_equal(r->conns[MON_SERVER], 30);
        assert_int_equal(r->target_qps, 300); /* 100 + 200: the clients' shares add up */
        assert_int_equal(r->filled[MON_CLIENT], 0);
    }
    mon_collect_flush(c);
    assert_int_equal(nrows, 5);
    assert_int_equal(sum_col(MON_CLIENT, MON_requests), 750);
    assert_int_equal(mon_collect_totals(c, MON_CLIENT)[MON_requests], 750);
    assert_int_equal(mon_collect_events(c)->baselines, 3);
    mon_collect_free(c);
}

/* The same reports delivered in a scrambled order, within the settle delay,
 * give exactly the rows of the in-order case. */
static void test_out_of_order(void **state)
{
    (void)state;
    mon_collect *c = new_collect(3, 10);
    /* second k arrives at `now`: T0+2 first, then T0 and T0+1 (2 s late),
     * T0+4 before T0+3 */
    static const int order[] = {2, 0, 1, 4, 3, 5};
    static const int now[] = {2, 2, 2, 4, 4, 5};
    for (int i = 0; i < 6; i++) {
        int k = order[i];
        add(c, MON_CLIENT, "a", 1, T0 + k, 1000 + 100u * k, 10, T0 + now[i]);
        mon_collect_advance(c, T0 + now[i]);
    }
    mon_collect_flush(c);
    assert_int_equal(nrows, 5);
    for (int k = 1; k <= 5; k++)
        assert_int_equal(row_at(T0 + k)->d[MON_CLIENT][MON_requests], 100);
    assert_int_equal(mon_collect_events(c)->late, 0);
    assert_int_equal(mon_collect_events(c)->restarts, 0);
    mon_collect_free(c);
}

/* A duplicate datagram changes nothing, histogram included. */
static void test_duplicate(void **state)
{
    (void)state;
    mon_collect *c = new_collect(2, 10);
    uint32_t idx[1] = {hb_hist_index(1000)};
    uint64_t cnt[1] = {7};
    for (int k = 0; k <= 2; k++) {
        mon_report r;
        memset(&r, 0, sizeof r);
        r.role = MON_CLIENT;
        r.instance = "a";
        r.boot_id = 9;
        r.second = T0 + k;
        r.c[MON_requests] = 100u * k;
        r.lat_index = idx;
        r.lat_count = cnt;
        r.lat_n = 1;
        mon_collect_add(c, &r, T0 + k);
        mon_collect_add(c, &r, T0 + k); /* again */
    }
    mon_collect_flush(c);
    assert_int_equal(mon_collect_events(c)->duplicate, 3);
    assert_int_equal(nrows, 2);
    assert_int_equal(row_at(T0 + 1)->d[MON_CLIENT][MON_requests], 100);
    assert_int_equal(row_at(T0 + 2)->d[MON_CLIENT][MON_requests], 100);
    assert_int_equal(row_at(T0 + 2)->lat_count, 7); /* not 14 */
    mon_collect_free(c);
}

/* A report that arrives after its second was emitted is dropped, but its
 * counts are not lost: the next report carries them (cumulative). */
/* A sender's last report at exit has the second it already reported, with
 * larger counters: it replaces the earlier snapshot and adds its latency. */
static void test_final_snapshot(void **state)
{
    (void)state;
    mon_collect *c = new_collect(2, 10);
    uint32_t idx[1] = {hb_hist_index(1000)};
    uint64_t cnt[1] = {5};
    mon_report r;
    memset(&r, 0, sizeof r);
    r.role = MON_CLIENT;
    r.instance = "a";
    r.boot_id = 9;
    r.lat_index = idx;
    r.lat_count = cnt;
    r.lat_n = 1;
    r.second = T0;
    mon_collect_add(c, &r, T0);
    r.second = T0 + 1;
    r.c[MON_requests] = 100;
    mon_collect_add(c, &r, T0 + 1);
    r.c[MON_requests] = 130; /* the same second, 30 more: the report at exit */
    mon_collect_add(c, &r, T0 + 1);
    mon_collect_flush(c);
    assert_int_equal(mon_collect_events(c)->updated, 1);
    assert_int_equal(mon_collect_events(c)->duplicate, 0);
    assert_int_equal(row_at(T0 + 1)->d[MON_CLIENT][MON_requests], 130);
    assert_int_equal(row_at(T0 + 1)->lat_count, 10);
    mon_collect_free(c);
}

static void test_late(void **state)
{
    (void)state;
    mon_collect *c = new_collect(1, 10);
    add(c, MON_CLIENT, "a", 1, T0, 0, 1, T0);
    add(c, MON_CLIENT, "a", 1, T0 + 1, 100, 1, T0 + 1);
    mon_collect_advance(c, T0 + 3); /* T0+1 and T0+2 are settled; T0+2 is missing */
    add(c, MON_CLIENT, "a", 1, T0 + 2, 200, 1, T0 + 4); /* too late */
    assert_int_equal(mon_collect_events(c)->late, 1);
    add(c, MON_CLIENT, "a", 1, T0 + 3, 300, 1, T0 + 4);
    add(c, MON_CLIENT, "a", 1, T0 + 4, 400, 1, T0 + 4);
    mon_collect_flush(c);
    /* T0+2 was emitted without "a" (no later sample to fill from yet) and
     * T0+3 carries the 200 counted meanwhile. */
    assert_null(row_at(T0 + 2));
    assert_int_equal(row_at(T0 + 3)->d[MON_CLIENT][MON_requests], 200);
    assert_int_equal(row_at(T0 + 4)->d[MON_CLIENT][MON_requests], 100);
    assert_int_equal(mon_collect_totals(c, MON_CLIENT)[MON_requests], 400);
    mon_collect_free(c);
}

/* One client's report for a second is lost: the second still has its share,
 * interpolated from the next report, no dip and no spike, totals exact. */
static void test_missing_client(void **state)
{
    (void)state;
    mon_collect *c = new_collect(3, 10);
    for (int k = 0; k <= 5; k++) {
        add(c, MON_CLIENT, "a", 1, T0 + k, 100u * k, 10, T0 + k);
        if (k != 3) /* "b" misses T0+3 */
            add(c, MON_CLIENT, "b", 2, T0 + k, 60u * k, 20 + (uint64_t)k * 2, T0 + k);
        mon_collect_advance(c, T0 + k);
    }
    mon_collect_flush(c);
    const mon_row *r = row_at(T0 + 3);
    assert_non_null(r);
    assert_int_equal(r->reported[MON_CLIENT], 1);
    assert_int_equal(r->filled[MON_CLIENT], 1);
    assert_int_equal(r->d[MON_CLIENT][MON_requests], 160);
    assert_int_equal(r->conns[MON_CLIENT], 10 + 26); /* b's gauge interpolated between 24 and 28 */
    assert_int_equal(row_at(T0 + 4)->d[MON_CLIENT][MON_requests], 160);
    assert_int_equal(mon_collect_totals(c, MON_CLIENT)[MON_requests], 500 + 300);
    assert_int_equal(mon_collect_events(c)->filled, 1);
    mon_collect_free(c);
}

/* Interpolation over two missing seconds with an uneven split keeps the sum
 * exact (integer arithmetic, rounding carried forward). */
static void test_missing_two_uneven(void **state)
{
    (void)state;
    mon_collect *c = new_collect(4, 10);
    add(c, MON_CLIENT, "a", 1, T0, 0, 0, T0);
    add(c, MON_CLIENT, "a", 1, T0 + 1, 100, 0, T0 + 1);
    add(c, MON_CLIENT, "a", 1, T0 + 4, 200, 0, T0 + 4); /* T0+2, T0+3 lost */
    mon_collect_flush(c);
    uint64_t d2 = row_at(T0 + 2)->d[MON_CLIENT][MON_requests], d3 = row_at(T0 + 3)->d[MON_CLIENT][MON_requests],
             d4 = row_at(T0 + 4)->d[MON_CLIENT][MON_requests];
    assert_int_equal(d2 + d3 + d4, 100);
    assert_true(d2 >= 33 && d2 <= 34 && d3 >= 33 && d3 <= 34 && d4 >= 33 && d4 <= 34);
    mon_collect_free(c);
}

/* A client that stops reporting (it exited) is not filled: no later sample. */
static void test_client_gone(void **state)
{
    (void)state;
    mon_collect *c = new_collect(2, 10);
    for (int k = 0; k <= 6; k++) {
        add(c, MON_SERVER, "s", 1, T0 + k, 10u * k, 5, T0 + k);
        if (k <= 3)
            add(c, MON_CLIENT, "a", 2, T0 + k, 10u * k, 5, T0 + k);
        mon_collect_advance(c, T0 + k);
    }
    mon_collect_flush(c);
    assert_int_equal(row_at(T0 + 3)->reported[MON_CLIENT], 1);
    assert_int_equal(row_at(T0 + 4)->reported[MON_CLIENT], 0);
    assert_int_equal(row_at(T0 + 4)->filled[MON_CLIENT], 0);
    assert_int_equal(row_at(T0 + 4)->conns[MON_CLIENT], 0);
    assert_int_equal(row_at(T0 + 4)->d[MON_SERVER][MON_requests], 10);
    mon_collect_free(c);
}

/* A client restarts (new boot_id): its counters start again from zero.  The
 * new process's first report is its delta; nothing negative, no spike. */
static void test_restart_new_boot(void **state)
{
    (void)state;
    mon_collect *c = new_collect(2, 10);
    add(c, MON_CLIENT, "a", 1, T0, 50000, 1, T0);
    add(c, MON_CLIENT, "a", 1, T0 + 1, 50100, 1, T0 + 1);
    add(c, MON_CLIENT, "a", 1, T0 + 2, 50200, 1, T0 + 2);
    /* dies, comes back 2 seconds later */
    add(c, MON_CLIENT, "a", 77, T0 + 4, 60, 1, T0 + 4);
    add(c, MON_CLIENT, "a", 77, T0 + 5, 160, 1, T0 + 5);
    mon_collect_flush(c);
    assert_int_equal(row_at(T0 + 2)->d[MON_CLIENT][MON_requests], 100);
    assert_null(row_at(T0 + 3)); /* nobody had figures for T0+3 */
    assert_int_equal(row_at(T0 + 4)->d[MON_CLIENT][MON_requests], 60);
    assert_int_equal(row_at(T0 + 5)->d[MON_CLIENT][MON_requests], 100);
    assert_int_equal(mon_collect_events(c)->restarts, 1);
    mon_source_info si;
    assert_int_equal(mon_collect_nsources(c), 1);
    mon_collect_source(c, 0, &si);
    assert_int_equal(si.restarts, 1);
    assert_int_equal(si.boot_id, 77);
    mon_collect_free(c);
}

/* Counters that go down without a new boot_id are a restart too. */
static void test_restart_counters_down(void **state)
{
    (void)state;
    mon_collect *c = new_collect(2, 10);
    add(c, MON_SERVER, "s", 5, T0, 900, 1, T0);
    add(c, MON_SERVER, "s", 5, T0 + 1, 1000, 1, T0 + 1);
    add(c, MON_SERVER, "s", 5, T0 + 2, 30, 1, T0 + 2);
    add(c, MON_SERVER, "s", 5, T0 + 3, 130, 1, T0 + 3);
    mon_collect_flush(c);
    assert_int_equal(row_at(T0 + 1)->d[MON_SERVER][MON_requests], 100);
    assert_int_equal(row_at(T0 + 2)->d[MON_SERVER][MON_requests], 30);
    assert_int_equal(row_at(T0 + 3)->d[MON_SERVER][MON_requests], 100);
    assert_int_equal(mon_collect_events(c)->restarts, 1);
    mon_collect_free(c);
}

/* A restart whose first report is lost is not "filled" from the new boot:
 * the lost second has no figures from it and the new boot counts from zero. */
static void test_restart_first_report_lost(void **state)
{
    (void)state;
    mon_collect *c = new_collect(3, 10);
    add(c, MON_CLIENT, "a", 1, T0, 1000, 1, T0);
    add(c, MON_CLIENT, "a", 1, T0 + 1, 1100, 1, T0 + 1);
    add(c, MON_CLIENT, "a", 2, T0 + 3, 150, 1, T0 + 3); /* T0+2 lost, and it restarted */
    mon_collect_flush(c);
    assert_null(row_at(T0 + 2));
    assert_int_equal(row_at(T0 + 3)->d[MON_CLIENT][MON_requests], 150);
    mon_collect_free(c);
}

/* The monitor starts while senders have been running for hours: their first
 * reports only set a base; the first rate is a real one-second rate. */
static void test_monitor_start_no_spike(void **state)
{
    (void)state;
    mon_collect *c = new_collect(2, 10);
    add(c, MON_CLIENT, "a", 1, T0, 123456789, 1000, T0);
    add(c, MON_SERVER, "s", 2, T0, 987654321, 1000, T0);
    add(c, MON_CLIENT, "a", 1, T0 + 1, 123456789 + 30000, 1000, T0 + 1);
    add(c, MON_SERVER, "s", 2, T0 + 1, 987654321 + 30000, 1000, T0 + 1);
    mon_collect_flush(c);
    assert_int_equal(nrows, 1);
    assert_int_equal(rows[0].second, T0 + 1);
    assert_int_equal(rows[0].d[MON_CLIENT][MON_requests], 30000);
    assert_int_equal(rows[0].d[MON_SERVER][MON_requests], 30000);
    mon_collect_free(c);
}

/* A source silent for longer than max_gap comes back: its counts over the
 * gap are not dumped into one second. */
static void test_long_gap_rebases(void **state)
{
    (void)state;
    mon_collect *c = new_collect(1, 5);
    add(c, MON_SERVER, "s", 1, T0, 0, 1, T0);
    add(c, MON_CLIENT, "a", 1, T0, 0, 1, T0);
    for (int k = 1; k <= 20; k++) {
        add(c, MON_SERVER, "s", 1, T0 + k, 10u * k, 1, T0 + k);
        if (k <= 2 || k >= 15) /* "a" silent for 12 seconds */
            add(c, MON_CLIENT, "a", 1, T0 + k, 1000u * k, 1, T0 + k);
        mon_collect_advance(c, T0 + k);
    }
    mon_collect_flush(c);
    assert_int_equal(row_at(T0 + 15)->d[MON_CLIENT][MON_requests], 0);
    assert_int_equal(row_at(T0 + 15)->rebased[MON_CLIENT], 1);
    assert_int_equal(row_at(T0 + 16)->d[MON_CLIENT][MON_requests], 1000);
    assert_int_equal(mon_collect_events(c)->rebased, 1);
    for (int i = 0; i < nrows; i++)
        assert_true(rows[i].d[MON_CLIENT][MON_requests] <= 1000);
    mon_collect_free(c);
}

/* Latency: two clients' histograms for one second are merged before the
 * percentiles are taken. */
static void test_latency_merge(void **state)
{
    (void)state;
    mon_collect *c = new_collect(1, 10);
    uint32_t ia[1] = {hb_hist_index(100)}, ib[1] = {hb_hist_index(50000)};
    uint64_t ca[1] = {98}, cb[1] = {2};
    for (int k = 0; k <= 1; k++) {
        mon_report r;
        memset(&r, 0, sizeof r);
        r.role = MON_CLIENT;
        r.second = T0 + k;
        r.instance = "a";
        r.boot_id = 1;
        r.c[MON_requests] = 100u * k;
        r.lat_index = ia;
        r.lat_count = ca;
        r.lat_n = 1;
        mon_collect_add(c, &r, T0 + k);
        r.instance = "b";
        r.boot_id = 2;
        r.lat_index = ib;
        r.lat_count = cb;
        mon_collect_add(c, &r, T0 + k);
    }
    mon_collect_flush(c);
    const mon_row *r = row_at(T0 + 1);
    assert_int_equal(r->lat_count, 100);
    assert_int_equal(r->lat_p50, 100);
    assert_true(r->lat_p99 >= 50000 && r->lat_p99 <= 50000 + 50000 / 128);
    assert_int_equal(r->lat_max, hb_hist_high(hb_hist_index(50000)));
    /* the baseline second's histogram was real data but its row was skipped */
    assert_int_equal(mon_collect_hist(c)->count, 100);
    mon_collect_free(c);
}

/* Reports far in the future, with no role, or from too many instances. */
static void test_rejects(void **state)
{
    (void)state;
    nrows = 0;
    mon_config cfg = {.settle = 2, .max_gap = 10, .max_future = 5, .evict = 60, .max_sources = 2};
    char err[128];
    mon_collect *c = mon_collect_new(&cfg, on_row, NULL, err, sizeof err);
    assert_non_null(c);
    add(c, MON_CLIENT, "a", 1, T0 + 100, 0, 0, T0);
    assert_int_equal(mon_collect_events(c)->future, 1);
    add(c, 7, "a", 1, T0, 0, 0, T0);
    assert_int_equal(mon_collect_events(c)->bad, 1);
    add(c, MON_CLIENT, "a", 1, T0, 0, 0, T0);
    add(c, MON_CLIENT, "b", 1, T0, 0, 0, T0);
    add(c, MON_CLIENT, "c", 1, T0, 0, 0, T0);
    assert_int_equal(mon_collect_events(c)->full, 1);
    assert_int_equal(mon_collect_nsources(c), 2);
    /* same instance, same second, another boot: a configuration error */
    add(c, MON_CLIENT, "a", 2, T0, 0, 0, T0);
    assert_int_equal(mon_collect_events(c)->conflict, 1);
    mon_collect_bad(c);
    assert_int_equal(mon_collect_events(c)->bad, 2);
    assert_int_equal(mon_collect_events(c)->received, 7);
    mon_collect_free(c);

    cfg.settle = 40;
    cfg.max_future = 30;
    assert_null(mon_collect_new(&cfg, on_row, NULL, err, sizeof err));
    assert_non_null(strstr(err, "settle"));
}

/* The clock jumps a year ahead: advance neither loops for ages nor emits
 * empty rows; a silent instance is eventually forgotten. */
static void test_clock_jump_and_evict(void **state)
{
    (void)state;
    mon_collect *c = new_collect(2, 10);
    add(c, MON_CLIENT, "a", 1, T0, 0, 0, T0);
    add(c, MON_CLIENT, "a", 1, T0 + 1, 10, 0, T0 + 1);
    mon_collect_advance(c, T0 + 365LL * 86400);
    assert_int_equal(nrows, 1);
    assert_int_equal(mon_collect_nsources(c), 0);
    assert_int_equal(mon_collect_events(c)->evicted, 1);
    /* reports resume: "a" is new again, so its first report is a base */
    add(c, MON_CLIENT, "a", 1, T0 + 365LL * 86400, 5000, 0, T0 + 365LL * 86400);
    add(c, MON_CLIENT, "a", 1, T0 + 365LL * 86400 + 1, 5010, 0, T0 + 365LL * 86400 + 1);
    mon_collect_flush(c);
    assert_int_equal(nrows, 2);
    assert_int_equal(rows[1].d[MON_CLIENT][MON_requests], 10);
    mon_collect_free(c);
}

/* Instance names are reduced to printable ASCII. */
static void test_instance_sanitized(void **state)
{
    (void)state;
    mon_collect *c = new_collect(2, 10);
    add(c, MON_CLIENT, "a\nb\x01", 1, T0, 0, 0, T0);
    add(c, MON_CLIENT, "", 1, T0, 0, 0, T0);
    mon_source_info si;
    mon_collect_source(c, 0, &si);
    assert_string_equal(si.instance, "a?b?");
    mon_collect_source(c, 1, &si);
    assert_string_equal(si.instance, "-");
    mon_collect_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_duplicate),
        cmocka_unit_test(test_final_snapshot),
        cmocka_unit_test(test_late),
        cmocka_unit_test(test_missing_client),
        cmocka_unit_test(test_missing_two_uneven),
        cmocka_unit_test(test_client_gone),
        cmocka_unit_test(test_restart_new_boot),
        cmocka_unit_test(test_restart_counters_down),
        cmocka_unit_test(test_restart_first_report_lost),
        cmocka_unit_test(test_monitor_start_no_spike),
        cmocka_unit_test(test_long_gap_rebases),
        cmocka_unit_test(test_latency_merge),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_clock_jump_and_evict),
        cmocka_unit_test(test_instance_sanitized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
