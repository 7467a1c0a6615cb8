/* fuzz_server.c -- libFuzzer target: every message handler, through the real
 * connection code.  One in-process SET (its loop is never run; we call the
 * callbacks), the journal writing to /dev/null, a few send packets and a
 * packet queue kept stocked.  Each input is written into a socketpair as the
 * bytes of one client connection, which the SET accepts and reads to the
 * end: login, shakes, opens, chats, garbage, whatever the fuzzer makes of
 * the seeds in tests/fuzz/corpus/server. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "set.h"

static sv_server srv;
static sv_set *set;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "fuzz_server: money invariant violated: " __VA_ARGS__);                                    \
            fprintf(stderr, "\n");                                                                                     \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

/* A fresh server for every input: nothing one input does (grants, opened
 * shares, rate-limit and login state, the packet counter) is seen by the
 * next, so a crashing input crashes again when run alone. */
static void server_up(void)
{
    memset(&srv, 0, sizeof srv);
    sv_config *c = &srv.cfg;
    sv_server_defaults(c);
    /* small, fast and on nothing real: one SET, few users, no disk */
    c->listen = "127.0.0.1";
    c->ports = "1";
    c->sets = 1;
    c->max_conns = 64;
    c->users = 1000;
    c->queue = 16;
    c->inbox = 64;
    c->pending_max = 1000;
    c->pending_per_uid = 4;
    c->send_total = 8;
    c->amount_max = 100;
    c->send_amount_max = 1000;
    c->login_timeout = c->frame_timeout = c->linger = 1;
    c->shake_limit = 3;
    c->journal = "/dev/null";
    c->fsync = false;
    c->seed = 1;
    char err[256];
    if (sv_server_init(&srv, err, sizeof err) < 0 ||
        sv_journal_open(&srv.journal, open("/dev/null", O_WRONLY | O_CLOEXEC), "/dev/null", false, 0, err, sizeof err) < 0 ||
        sv_journal_start(&srv.journal, 1, NULL, NULL) < 0 || sv_set_create(&srv, 0, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_server: %s\n", err);
        exit(1);
    }
    set = srv.sets[0];
    set->t0_mono = hb_mono_us();
    /* send packets 1..8 for uids 1, 2, 3 */
    for (uint64_t k = 0; k < 8; k++) {
        sv_sendpkt p = {.amount = 600, .n = 3, .uid = {1, 2, 3}, .share = {100, 200, 300}};
        sv_registry_put_send(&srv.reg, hb_send_id(k), &p);
    }
    atomic_store(&srv.event_started, true);
}

static void server_down(void)
{
    sv_journal_close(&srv.journal);
    sv_server_free(&srv);
    set = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    hb_prog = "fuzz_server";
    hb_log_quiet = true;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    server_up();
    uint64_t next_id = 1;
    while (sv_pqueue_size(&set->q) < 2) {
        sv_packet p = {.id = next_id++, .amount = 100};
        sv_pqueue_push(&set->q, &p);
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
        abort();
    int big = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    sv_conn *c = sv_conn_accepted(set, sv[0], 0x0100007f);
    uint32_t gen = c->gen;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(sv[1], data + off, size - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    shutdown(sv[1], SHUT_WR);
    uint8_t sink[65536];
    for (int i = 0; i < 256 && c->gen == gen && c->state != SV_CONN_FREE; i++) {
        while (sv_pqueue_size(&set->q) < 2) { /* kept stocked: ids 1, 2, 3 ... */
            sv_packet p = {.id = next_id++, .amount = 100};
            sv_pqueue_push(&set->q, &p);
        }
        sv_conn_io_cb(set->loop, &c->io, EV_READ | (c->outlen ? EV_WRITE : 0));
        while (read(sv[1], sink, sizeof sink) > 0) /* the client side drains replies */
            ;
        sv_msg m;
        while (sv_inbox_pop(&set->inbox, &m))
            sv_handle_msg(set, &m);
        sv_flush_deferred(set);
    }
    if (c->gen == gen && c->state != SV_CONN_FREE)
        sv_conn_close(set, c);
    close(sv[1]);

    /* Money: a packet granted at most once, only one that was dealt, for
     * its amount; opened shares within their packet. */
    uint64_t ids[64];
    size_t ng = 0;
    for (const sv_gtab *t = atomic_load(&srv.reg.grants); t; t = t->older)
    for (size_t i = 0; i < t->cap; i++) { /* every table of the chain (registry.h) */
        const sv_gslot *g = &t->slot[i];
        if (!atomic_load(&g->key) || !atomic_load(&g->ready))
            continue;
        CHECK(g->packet_id >= 1 && g->packet_id < next_id && g->amount == 100, "grant of packet %llu (%u cents)",
              (unsigned long long)g->packet_id, g->amount);
        for (size_t k = 0; k < ng && k < 64; k++)
            CHECK(ids[k] != g->packet_id, "packet %llu granted twice", (unsigned long long)g->packet_id);
        if (ng < 64)
            ids[ng] = g->packet_id;
        ng++;
    }
    for (uint64_t k = 0; k < 8; k++) {
        sv_sendpkt p;
        CHECK(sv_registry_get_send(&srv.reg, hb_send_id(k), &p), "send packet %llu lost", (unsigned long long)k);
        uint32_t paid = 0;
        for (unsigned i = 0; i < p.n; i++)
            if (p.opened & (1u << i))
                paid += p.share[i];
        CHECK(paid <= p.amount && (p.opened >> p.n) == 0, "send packet %llu paid %u of %u", (unsigned long long)k,
              paid, p.amount);
    }
    server_down();
    return 0;
}
