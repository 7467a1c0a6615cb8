/* jfile.h -- the grant journal's file format, shared by the server (which
 * writes and replays it) and hb-reconcile (which audits it).
 *
 * The file is a sequence of entries:
 *     varint length | hb.Record bytes (length of them) | CRC32C of those bytes, 4 bytes little-endian
 * A crash can leave a torn last entry; readers stop at the first entry that
 * is incomplete or fails its CRC and report the offset where valid data ends,
 * so the server can cut the tail off before appending again. */
#ifndef HB_JFILE_H
#define HB_JFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "frame.h"

#define HB_JREC_MAX 512 /* largest encoded record: a send packet with 8 recipients is ~100 bytes */

uint32_t hb_crc32c(uint32_t crc, const void *data, size_t n);

/* Encode one record as a journal entry into out; returns its length or 0 if
 * it does not fit. */
size_t hb_jrec_pack(const Hb__Record *r, uint8_t *out, size_t cap);

typedef struct hb_jfile {
    uint8_t *data; /* the whole file */
    size_t size;
    bool borrowed; /* data belongs to the caller */
    size_t off;    /* next entry */
    size_t valid;  /* end of the last good entry */
    hb_arena arena;
    uint8_t arena_mem[4096];
    const char *stop_reason; /* why reading stopped early, NULL at a clean end */
    bool torn;               /* ... because the last entry is short: what a crash mid-write leaves */
} hb_jfile;

/* Read the file into memory.  A missing file is an empty journal.  0, or -1
 * with a message in err. */
int hb_jfile_open(hb_jfile *j, const char *path, char *err, size_t errlen);
/* Read entries from memory the caller owns (not freed by hb_jfile_close). */
void hb_jfile_open_mem(hb_jfile *j, const uint8_t *data, size_t size);
/* Next record: 1 and *r set (valid until the next call), 0 at the end or at
 * a torn/corrupt entry (then stop_reason says which and valid says where the
 * good data ends). */
int hb_jfile_next(hb_jfile *j, Hb__Record **r);
void hb_jfile_close(hb_jfile *j);
/* After reading stopped early: the offset of the first intact entry after
 * the bad one, or 0 if there is none (a torn tail).  Intact entries after a
 * bad one mean damage in the middle of the file, not a crash mid-write. */
size_t hb_jfile_intact_after(const hb_jfile *j);

#endif
