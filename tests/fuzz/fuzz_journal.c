/* fuzz_journal.c -- libFuzzer target: replaying a journal of arbitrary bytes
 * (a torn, corrupt or hostile file must be cut or refused, never crash the
 * server at start-up), with the money invariants checked after every replay.
 *
 * Mutated bytes would nearly always die at the CRC check of their entry and
 * never reach replay, so the harness first rewrites the CRC of every whole
 * entry (varint length | body | CRC32C): the fuzzer's records, however odd,
 * are replayed.  (The CRC check itself is covered by tests/e2e/journal.sh
 * and tests/unit.)
 *
 * Oracles (abort() on violation, whatever replay logged): from the records
 * as they are in the journal, with the journal's own rules (shake packets
 * are created with ids 1, 2, 3 ... in order; a CREATE out of order is not a
 * packet), the state replay rebuilt must hold that
 *   - a shake packet is granted at most once, only if it was created, and
 *     for its created amount;
 *   - every created packet is either won or dealt again (unwon), never
 *     both, never twice: wins + unwon = made, and the cents add up;
 *   - a send packet pays at most its amount in opened shares, each opened
 *     share is the one it was created with, only to its recipients;
 *   - replay's totals (wins, shares and their cents) are what its registry
 *     holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "jfile.h"
#include "replay.h"

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "fuzz_journal: money invariant violated: " __VA_ARGS__);                                   \
            fprintf(stderr, "\n");                                                                                     \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

/* Rewrite the CRC of every whole entry, stopping at the first entry that
 * does not frame (a bad length or a torn tail stays as it is). */
static void fix_crcs(uint8_t *d, size_t size)
{
    size_t off = 0, prefix, body;
    while (off < size && hb_frame_scan(d + off, size - off, HB_JREC_MAX, &prefix, &body) == HB_SCAN_FRAME &&
           size - off >= prefix + body + 4) {
        uint32_t c = hb_crc32c(0, d + off + prefix, body);
        uint8_t *t = d + off + prefix + body;
        t[0] = (uint8_t)c;
        t[1] = (uint8_t)(c >> 8);
        t[2] = (uint8_t)(c >> 16);
        t[3] = (uint8_t)(c >> 24);
        off += prefix + body + 4;
    }
}

typedef struct {
    uint32_t amount;
    uint8_t created, granted, unwon;
} pk_model;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sv_registry reg;
    hb_prog = "fuzz_journal";
    hb_log_quiet = true;
    uint8_t *d = malloc(size ? size : 1);
    if (!d)
        abort();
    memcpy(d, data, size);
    fix_crcs(d, size);

    /* The model: shake packets created in order, read from the same bytes. */
    hb_jfile jf;
    hb_jfile_open_mem(&jf, d, size);
    Hb__Record *r;
    pk_model *pk = NULL;
    uint64_t made = 0, made_amount = 0;
    while (hb_jfile_next(&jf, &r)) {
        if (r->type == HB__RECORD_TYPE__REC_CREATE && r->kind == HB__PACKET_KIND__KIND_SHAKE &&
            r->packet_id == made + 1) {
            pk_model *n = realloc(pk, (made + 1) * sizeof *pk);
            if (!n)
                abort();
            pk = n;
            pk[made] = (pk_model){.amount = r->amount, .created = 1};
            made++;
            made_amount += r->amount;
        }
    }
    size_t model_valid = jf.valid;
    hb_jfile_close(&jf);

    if (sv_registry_init(&reg) < 0)
        abort();
    hb_jfile_open_mem(&jf, d, size);
    sv_replay_t rp;
    char err[256];
    if (sv_replay_jfile(&reg, &jf, &rp, err, sizeof err) == 0) {
        CHECK(rp.valid <= size && rp.valid == model_valid, "valid %zu of %zu bytes (model %zu)", rp.valid, size,
              model_valid);
        CHECK(rp.shake_made == made, "%llu shake packets made, the journal creates %llu in order",
              (unsigned long long)rp.shake_made, (unsigned long long)made);

        /* grants: each of a created packet, for its amount, at most once */
        uint64_t *ids = malloc((rp.wins + 1) * sizeof *ids);
        if (!ids)
            abort();
        size_t ng = 0;
        uint64_t granted_amount = 0;
        for (const sv_gtab *t = atomic_load(&reg.grants); t; t = t->older)
        for (size_t i = 0; i < t->cap; i++) { /* every table of the chain (registry.h) */
            const sv_gslot *g = &t->slot[i];
            if (!atomic_load(&g->key) || !atomic_load(&g->ready))
                continue;
            CHECK(ng < rp.wins, "more grants in the registry than replay counted wins (%llu)",
                  (unsigned long long)rp.wins);
            CHECK(g->packet_id >= 1 && g->packet_id <= made && pk[g->packet_id - 1].created,
                  "packet %llu granted but never created", (unsigned long long)g->packet_id);
            CHECK(g->amount == pk[g->packet_id - 1].amount, "packet %llu granted for %u cents, created for %u",
                  (unsigned long long)g->packet_id, g->amount, pk[g->packet_id - 1].amount);
            pk[g->packet_id - 1].granted = 1;
            ids[ng++] = g->packet_id;
            granted_amount += g->amount;
        }
        qsort(ids, ng, sizeof *ids, cmp_u64);
        for (size_t i = 1; i < ng; i++)
            CHECK(ids[i] != ids[i - 1], "packet %llu granted twice", (unsigned long long)ids[i]);
        free(ids);
        /* Every win replay counted is a grant (a (uid, seq) won twice keeps
         * both; a find answers with the later one, registry.h). */
        CHECK(ng == rp.wins && granted_amount == rp.win_amount, "registry %zu grants / %llu cents, replay %llu / %llu",
              ng, (unsigned long long)granted_amount, (unsigned long long)rp.wins,
              (unsigned long long)rp.win_amount);

        /* unwon: created, not granted, each once; won + unwon = made */
        uint64_t unwon_amount = 0;
        for (size_t i = 0; i < rp.n_unwon; i++) {
            uint64_t id = rp.unwon[i].id;
            CHECK(id >= 1 && id <= made, "unwon packet %llu was never created", (unsigned long long)id);
            CHECK(!pk[id - 1].granted, "packet %llu both granted and dealt again", (unsigned long long)id);
            CHECK(!pk[id - 1].unwon, "packet %llu dealt again twice", (unsigned long long)id);
            CHECK(rp.unwon[i].amount == pk[id - 1].amount, "unwon packet %llu: %u cents, created for %u",
                  (unsigned long long)id, rp.unwon[i].amount, pk[id - 1].amount);
            pk[id - 1].unwon = 1;
            unwon_amount += rp.unwon[i].amount;
        }
        CHECK(rp.wins + rp.n_unwon == made, "%llu won + %zu unwon != %llu made", (unsigned long long)rp.wins,
              rp.n_unwon, (unsigned long long)made);
        CHECK(rp.win_amount + unwon_amount == made_amount, "%llu cents won + %llu unwon != %llu made",
              (unsigned long long)rp.win_amount, (unsigned long long)unwon_amount, (unsigned long long)made_amount);

        /* send packets: opened shares within the packet, totals */
        uint64_t nsend = atomic_load(&reg.send_count), opened = 0, paid_all = 0;
        CHECK(nsend == rp.send_made, "%llu send packets in the registry, replay made %llu",
              (unsigned long long)nsend, (unsigned long long)rp.send_made);
        for (uint64_t k = 0; k < nsend; k++) {
            sv_sendpkt p;
            CHECK(sv_registry_get_send(&reg, hb_send_id(k), &p), "send packet %llu missing",
                  (unsigned long long)hb_send_id(k));
            CHECK(p.n >= 1 && p.n <= HB_SPLIT_MAX, "send packet %llu has %u recipients",
                  (unsigned long long)hb_send_id(k), p.n);
            CHECK((p.opened >> p.n) == 0, "send packet %llu: a share opened past its %u recipients",
                  (unsigned long long)hb_send_id(k), p.n);
            uint64_t paid = 0;
            for (unsigned i = 0; i < p.n; i++)
                if (p.opened & (1u << i)) {
                    paid += p.share[i];
                    opened++;
                }
            CHECK(paid <= p.amount, "send packet %llu of %u cents paid %llu in shares",
                  (unsigned long long)hb_send_id(k), p.amount, (unsigned long long)paid);
            paid_all += paid;
        }
        CHECK(opened == rp.shares && paid_all == rp.share_amount,
              "registry: %llu shares opened / %llu cents, replay counted %llu / %llu", (unsigned long long)opened,
              (unsigned long long)paid_all, (unsigned long long)rp.shares, (unsigned long long)rp.share_amount);
        sv_replay_free(&rp);
    }
    free(pk);
    sv_registry_free(&reg);
    free(d);
    return 0;
}
