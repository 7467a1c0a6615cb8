/* json.c -- the dashboard JSON. */
#include "json.h"

#include "columns.h"

void mon_json_render(mon_buf *b, const mon_collect *c, const mon_history *h, int64_t since, size_t limit,
                     int64_t now, int settle)
{
    mon_buf_printf(b, "{\"now\":%lld,\"settle\":%d,\"columns\":[", (long long)now, settle);
    for (int i = 0; i < MON_NCOLS; i++) {
        if (i)
            mon_buf_put(b, ",", 1);
        mon_buf_json_str(b, mon_col_name[i]);
    }
    /* Server instances (cluster nodes): with more than one, each row ends
     * with one [replies, connections] pair per node, in this order. */
    size_t nn = mon_collect_nnodes(c);
    mon_buf_put(b, "],\"nodes\":[", 11);
    for (size_t i = 0; i < nn; i++) {
        if (i)
            mon_buf_put(b, ",", 1);
        mon_buf_json_str(b, mon_collect_node_name(c, i));
    }
    mon_buf_put(b, "],\n\"rows\":[", 11);
    /* newest first to find where to start, then oldest first out */
    size_t from = h->len;
    while (from > 0 && h->len - from < limit && mon_history_at(h, from - 1)->second > since)
        from--;
    for (size_t i = from; i < h->len; i++) {
        uint64_t v[MON_NCOLS];
        mon_row_values(mon_history_at(h, i), v);
        mon_buf_put(b, i > from ? ",\n[" : "\n[", i > from ? 3 : 2);
        for (int k = 0; k < MON_NCOLS; k++)
            mon_buf_printf(b, k ? ",%llu" : "%llu", (unsigned long long)v[k]);
        if (nn > 1) {
            const mon_row *r = mon_history_at(h, i);
            for (size_t k = 0; k < nn; k++)
                mon_buf_printf(b, "%s[%llu,%llu]", k ? "," : ",[",
                               (unsigned long long)(k < r->nnodes && k < MON_NODES_MAX ? r->node[k].replies : 0),
                               (unsigned long long)(k < r->nnodes && k < MON_NODES_MAX ? r->node[k].conns : 0));
            mon_buf_put(b, "]", 1);
        }
        mon_buf_put(b, "]", 1);
    }
    mon_buf_put(b, "],\n\"instances\":[", 16);
    for (size_t i = 0; i < mon_collect_nsources(c); i++) {
        mon_source_info s;
        mon_collect_source(c, i, &s);
        mon_buf_printf(b, "%s{\"role\":\"%s\",\"instance\":", i ? "," : "", mon_role_name(s.role));
        mon_buf_json_str(b, s.instance);
        /* boot_id as a string: 64 bits do not survive a JavaScript number */
        mon_buf_printf(b, ",\"boot_id\":\"%016llx\",\"last_second\":%lld,\"connections\":%llu,\"restarts\":%llu}",
                       (unsigned long long)s.boot_id, (long long)s.last_second, (unsigned long long)s.conns,
                       (unsigned long long)s.restarts);
    }
    const mon_events *ev = mon_collect_events(c);
    mon_buf_put(b, "],\n\"events\":{", 13);
    int k = 0;
#define X(name, help) mon_buf_printf(b, "%s\"" #name "\":%llu", k++ ? "," : "", (unsigned long long)ev->name);
    MON_EVENTS(X)
#undef X
    const hb_hist *lat = mon_collect_hist(c);
    mon_buf_printf(b, "},\n\"latency\":{\"count\":%llu,\"p50_us\":%llu,\"p99_us\":%llu,\"max_us\":%llu}}\n",
                   (unsigned long long)lat->count, (unsigned long long)hb_hist_percentile(lat, 50),
                   (unsigned long long)hb_hist_percentile(lat, 99), (unsigned long long)lat->max);
}
