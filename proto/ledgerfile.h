/* ledgerfile.h -- the client ledger's line format: what a client process was
 * granted, one line per grant, written by hb-client (client/ledger.c) and
 * read back by the ledger check (tools/reconcile.c).  Defined once, here.
 *
 *     W <packet_id> <uid> <amount> <seq>   a shake (client seq) won a packet
 *     S <packet_id> <uid> <share>          an open paid a share of a send packet
 *     Q <uid> <seq>                        a shake still unanswered at exit
 *     O <packet_id> <uid>                  an open still unanswered at exit
 *     # ...                                a comment (the header)
 * Numbers are decimal; ids are 64-bit, uids, amounts and seqs 32-bit.  A
 * line that is not exactly one of these is unreadable, never guessed at. */
#ifndef HB_LEDGERFILE_H
#define HB_LEDGERFILE_H

#include <stddef.h>
#include <stdint.h>

#define HB_LEDGER_HEADER "# hongbao client ledger v2: W packet uid amount seq | S packet uid share | Q uid seq | O packet uid"

enum hb_lline_type {
    HB_LL_WIN = 'W',
    HB_LL_SHARE = 'S',
    HB_LL_UNANSWERED_SHAKE = 'Q',
    HB_LL_UNANSWERED_OPEN = 'O',
};

typedef struct hb_lline {
    char type;          /* enum hb_lline_type */
    uint64_t packet_id; /* W, S, O */
    uint32_t uid;
    uint32_t amount;    /* W: the packet; S: the share */
    uint32_t seq;       /* W, Q */
} hb_lline;

/* One line with its newline into buf; returns its length (0 if it does not
 * fit or the type is unknown). */
size_t hb_lline_format(char *buf, size_t cap, const hb_lline *l);
/* Parse one line (with or without its newline).  1: a ledger line in *out;
 * 0: a comment or a blank line; -1: unreadable. */
int hb_lline_parse(const char *line, hb_lline *out);

#endif
