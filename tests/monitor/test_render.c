/* test_render.c -- what the monitor writes: Prometheus text (cumulative `le`
 * buckets ending in +Inf = _count, escaped labels, counters that survive a
 * sender restart), the dashboard JSON (since/limit) and the TSV log (header
 * and lines with the same columns). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "buf.h"
#include "collect.h"
#include "columns.h"
#include "history.h"
#include "json.h"
#include "prom.h"
#include "tsvlog.h"

#define T0 1700000000

static mon_history hist;

static void on_row(void *ctx, const mon_row *r, const hb_hist *lat)
{
    (void)ctx;
    (void)lat;
    mon_history_push(&hist, r);
}

/* A client "we\"ird\\" with latencies 200 us x 90, 3 ms x 9, 2 s x 1 per
 * second, 100 shakes/s; a server that restarts at T0+3. */
static mon_collect *fed(void)
{
    assert_int_equal(mon_history_init(&hist, 4), 0);
    mon_config cfg = {.settle = 2, .max_gap = 10, .max_future = 5, .evict = 60, .max_sources = 8};
    char err[128];
    mon_collect *c = mon_collect_new(&cfg, on_row, NULL, err, sizeof err);
    assert_non_null(c);
    uint32_t idx[3] = {hb_hist_index(200), hb_hist_index(3000), hb_hist_index(2000000)};
    uint64_t cnt[3] = {90, 9, 1};
    for (int k = 0; k <= 6; k++) {
        mon_report r;
        memset(&r, 0, sizeof r);
        r.role = MON_CLIENT;
        r.instance = "we\"ird\\";
        r.boot_id = 1;
        r.second = T0 + k;
        r.c[MON_requests] = 100u * k;
        r.conns = 42;
        r.lat_index = idx;
        r.lat_count = cnt;
        r.lat_n = 3;
        mon_collect_add(c, &r, T0 + k);
        memset(&r, 0, sizeof r);
        r.role = MON_SERVER;
        r.instance = "server";
        r.boot_id = k < 3 ? 5 : 6;
        r.second = T0 + k;
        r.c[MON_replies] = k < 3 ? 1000 + 100u * k : 100u * (k - 2);
        r.conns = 40;
        mon_collect_add(c, &r, T0 + k);
        mon_collect_advance(c, T0 + k);
    }
    mon_collect_flush(c);
    return c;
}

static char *render_prom(const mon_collect *c)
{
    mon_buf b = {0};
    mon_prom_render(&b, c, T0 - 5);
    size_t n;
    char *p = mon_buf_take(&b, &n);
    assert_non_null(p);
    assert_int_equal(strlen(p), n);
    return p;
}

static unsigned long long value_of(const char *text, const char *series)
{
    const char *p = text;
    size_t n = strlen(series);
    while ((p = strstr(p, series))) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtoull(p + n + 1, NULL, 10);
        p += n;
    }
    fail_msg("series %s not found", series);
    return 0;
}

static void test_prom(void **state)
{
    (void)state;
    mon_collect *c = fed();
    char *t = render_prom(c);
    /* six merged seconds of 100 shakes; server replies 100/s across its restart */
    assert_int_equal(value_of(t, "hongbao_requests_total{role=\"client\"}"), 600);
    assert_int_equal(value_of(t, "hongbao_replies_total{role=\"server\"}"), 600);
    assert_int_equal(value_of(t, "hongbao_monitor_events_total{event=\"restarts\"}"), 1);
    assert_int_equal(value_of(t, "hongbao_connections{role=\"client\"}"), 42);
    assert_int_equal(value_of(t, "hongbao_instances{role=\"server\"}"), 1);
    assert_int_equal(value_of(t, "hongbao_monitor_last_second"), T0 + 6);
    assert_int_equal(value_of(t, "hongbao_monitor_datagrams_total{outcome=\"accepted\"}"), 14);
    /* label escaping */
    assert_non_null(strstr(t, "instance=\"we\\\"ird\\\\\"} 42\n"));
    /* histogram: cumulative, +Inf = _count = 6 seconds x 100 */
    unsigned long long prev = 0;
    for (int i = 0; i < mon_prom_nle; i++) {
        char s[96];
        snprintf(s, sizeof s, "hongbao_reply_latency_seconds_bucket{le=\"%g\"}", (double)mon_prom_le_us[i] / 1e6);
        unsigned long long v = value_of(t, s);
        assert_true(v >= prev);
        prev = v;
    }
    assert_int_equal(value_of(t, "hongbao_reply_latency_seconds_bucket{le=\"0.00025\"}"), 540);
    assert_int_equal(value_of(t, "hongbao_reply_latency_seconds_bucket{le=\"0.005\"}"), 594);
    assert_int_equal(value_of(t, "hongbao_reply_latency_seconds_bucket{le=\"1\"}"), 594);
    assert_int_equal(value_of(t, "hongbao_reply_latency_seconds_bucket{le=\"+Inf\"}"), 600);
    assert_int_equal(value_of(t, "hongbao_reply_latency_seconds_count"), 600);
    /* every sample line belongs to a family announced by # TYPE */
    for (char *line = t; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        if (*line != '#') {
            char name[128];
            size_t n = strcspn(line, "{ ");
            assert_true(n < sizeof name);
            memcpy(name, line, n);
            name[n] = 0;
            char *s; /* a histogram's _bucket/_sum/_count belong to its family */
            if ((s = strstr(name, "_latency_seconds_")))
                s[strlen("_latency_seconds")] = 0;
            char want[160];
            snprintf(want, sizeof want, "# TYPE %s ", name);
            assert_non_null(strstr(t, want));
        }
        line = nl + 1;
    }
    free(t);
    mon_collect_free(c);
    mon_history_free(&hist);
}

static void test_json(void **state)
{
    (void)state;
    mon_collect *c = fed();
    /* history keeps 4 of the 6 rows */
    assert_int_equal(hist.len, 4);
    mon_buf b = {0};
    mon_json_render(&b, c, &hist, T0 + 4, 100, T0 + 7, 2);
    size_t n;
    char *j = mon_buf_take(&b, &n);
    assert_non_null(j);
    assert_non_null(strstr(j, "\"columns\":[\"second\",\"servers\",\"clients\""));
    assert_non_null(strstr(j, "[1700000005,1,1,"));
    assert_non_null(strstr(j, "[1700000006,1,1,"));
    assert_null(strstr(j, "[1700000004,"));
    assert_null(strstr(j, ",[["));
    assert_non_null(strstr(j, "\"instance\":\"we\\\"ird\\\\\""));
    assert_non_null(strstr(j, "\"restarts\":1"));
    free(j);
    /* limit: only the newest row */
    mon_json_render(&b, c, &hist, 0, 1, T0 + 7, 2);
    j = mon_buf_take(&b, &n);
    assert_non_null(j);
    assert_non_null(strstr(j, "\"rows\":[\n[1700000006,"));
    assert_null(strstr(j, "[1700000005,"));
    free(j);
    mon_collect_free(c);
    mon_history_free(&hist);
}

static void test_tsv(void **state)
{
    (void)state;
    char path[] = "/tmp/hb-test-tsv.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    mon_tsvlog l;
    char err[256];
    assert_int_equal(mon_tsvlog_open(&l, path, false, err, sizeof err), 0);
    mon_row r;
    memset(&r, 0, sizeof r);
    r.second = T0;
    r.reported[MON_CLIENT] = 2;
    r.d[MON_CLIENT][MON_requests] = 30000;
    r.lat_p99 = 1234;
    assert_int_equal(mon_tsvlog_write(&l, &r), 0);
    mon_tsvlog_close(&l);
    /* appending keeps the single header */
    assert_int_equal(mon_tsvlog_open(&l, path, true, err, sizeof err), 0);
    r.second = T0 + 1;
    assert_int_equal(mon_tsvlog_write(&l, &r), 0);
    mon_tsvlog_close(&l);

    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        int fields = 1;
        for (char *p = line; *p; p++)
            fields += *p == '\t';
        assert_int_equal(fields, MON_NCOLS);
        if (lines == 0) {
            assert_true(!strncmp(line, "second\tservers\tclients\t", 23));
            assert_non_null(strstr(line, "\tclient_send_qps\t"));
            assert_non_null(strstr(line, "\tlat_p99_us\t"));
        } else {
            char *tok = strtok(line, "\t");
            assert_int_equal(strtoll(tok, NULL, 10), T0 + lines - 1);
            for (int i = 1; i <= MON_COL_client_send_qps; i++)
                tok = strtok(NULL, "\t");
            assert_string_equal(tok, "30000");
        }
        lines++;
    }
    fclose(f);
    assert_int_equal(lines, 3);
    unlink(path);
    assert_int_equal(mon_tsvlog_open(&l, "/nonexistent-dir/x.tsv", false, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent-dir/x.tsv"));
}

/* A cluster: two server instances (nodes s0 and s1) and a client.  The
 * JSON names the nodes and gives each row, after its columns, one
 * [replies, connections] pair per node, so the dashboard can draw a line per
 * node; with one server (test_json) rows keep their columns only. */
static void test_json_nodes(void **state)
{
    (void)state;
    assert_int_equal(mon_history_init(&hist, 16), 0);
    mon_config cfg = {.settle = 2, .max_gap = 10, .max_future = 5, .evict = 60, .max_sources = 8};
    char err[128];
    mon_collect *c = mon_collect_new(&cfg, on_row, NULL, err, sizeof err);
    assert_non_null(c);
    for (int k = 0; k <= 6; k++) {
        mon_report r;
        memset(&r, 0, sizeof r);
        r.role = MON_CLIENT;
        r.instance = "c1";
        r.boot_id = 1;
        r.second = T0 + k;
        r.c[MON_requests] = 300u * k;
        r.conns = 70;
        mon_collect_add(c, &r, T0 + k);
        for (int n = 0; n < 2; n++) {
            memset(&r, 0, sizeof r);
            r.role = MON_SERVER;
            r.instance = n ? "s1" : "s0";
            r.boot_id = 10 + (uint64_t)n;
            r.second = T0 + k;
            r.c[MON_requests] = r.c[MON_replies] = (n ? 100u : 200u) * k;
            r.conns = n ? 30 : 40;
            mon_collect_add(c, &r, T0 + k);
        }
        mon_collect_advance(c, T0 + k);
    }
    mon_collect_flush(c);
    mon_buf b = {0};
    mon_json_render(&b, c, &hist, 0, 100, T0 + 7, 2);
    size_t n;
    char *j = mon_buf_take(&b, &n);
    assert_non_null(j);
    assert_non_null(strstr(j, "\"nodes\":[\"s0\",\"s1\"]"));
    /* second T0+5: s0 replied 200 and holds 40, s1 100 and 30; 2 servers */
    const char *row = strstr(j, "[1700000005,2,1,");
    assert_non_null(row);
    const char *end = strchr(row, '\n');
    assert_non_null(end);
    const char *pairs = strstr(row, ",[[200,40],[100,30]]]");
    assert_true(pairs && pairs < end);
    free(j);
    mon_collect_free(c);
    mon_history_free(&hist);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prom),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_json_nodes),
        cmocka_unit_test(test_tsv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
