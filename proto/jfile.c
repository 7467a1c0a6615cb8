/* jfile.c -- journal entries: framing plus CRC32C. */
#include "jfile.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
        crc_table[i] = c;
    }
}

uint32_t hb_crc32c(uint32_t crc, const void *data, size_t n)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, crc_init);
    const uint8_t *p = data;
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

size_t hb_jrec_pack(const Hb__Record *r, uint8_t *out, size_t cap)
{
    size_t body = hb__record__get_packed_size(r);
    uint8_t pre[10];
    size_t np = hb_varint_put(pre, body);
    if (body > HB_JREC_MAX || np + body + 4 > cap)
        return 0;
    memcpy(out, pre, np);
    hb__record__pack(r, out + np);
    uint32_t c = hb_crc32c(0, out + np, body);
    uint8_t *t = out + np + body;
    t[0] = (uint8_t)c;
    t[1] = (uint8_t)(c >> 8);
    t[2] = (uint8_t)(c >> 16);
    t[3] = (uint8_t)(c >> 24);
    return np + body + 4;
}

int hb_jfile_open(hb_jfile *j, const char *path, char *err, size_t errlen)
{
    memset(j, 0, sizeof *j);
    hb_arena_init(&j->arena, j->arena_mem, sizeof j->arena_mem);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "journal %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "journal %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    j->size = (size_t)st.st_size;
    j->data = malloc(j->size ? j->size : 1);
    if (!j->data) {
        snprintf(err, errlen, "journal %s: out of memory (%zu bytes)", path, j->size);
        close(fd);
        return -1;
    }
    size_t got = 0;
    while (got < j->size) {
        ssize_t n = read(fd, j->data + got, j->size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "journal %s: read: %s", path, n < 0 ? strerror(errno) : "short file");
            close(fd);
            free(j->data);
            j->data = NULL;
            return -1;
        }
        got += (size_t)n;
    }
    close(fd);
    return 0;
}

void hb_jfile_open_mem(hb_jfile *j, const uint8_t *data, size_t size)
{
    memset(j, 0, sizeof *j);
    hb_arena_init(&j->arena, j->arena_mem, sizeof j->arena_mem);
    j->data = (uint8_t *)data;
    j->size = size;
    j->borrowed = true;
}

/* Check the entry at `off`: NULL if it is whole and its CRC matches (its
 * record in data[off + *prefix, + *body)), else why not. */
static const char torn_reason[] = "torn last entry";

static const char *entry_at(const hb_jfile *j, size_t off, size_t *prefix, size_t *body)
{
    int s = hb_frame_scan(j->data + off, j->size - off, HB_JREC_MAX, prefix, body);
    if (s == HB_SCAN_MORE || (s == HB_SCAN_FRAME && j->size - off < *prefix + *body + 4))
        return torn_reason;
    if (s != HB_SCAN_FRAME)
        return "bad entry length";
    const uint8_t *b = j->data + off + *prefix, *t = b + *body;
    uint32_t want = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
    return hb_crc32c(0, b, *body) == want ? NULL : "CRC mismatch";
}

int hb_jfile_next(hb_jfile *j, Hb__Record **r)
{
    size_t prefix, body;
    if (j->off == j->size)
        return 0;
    if ((j->stop_reason = entry_at(j, j->off, &prefix, &body))) {
        j->torn = j->stop_reason == torn_reason;
        return 0;
    }
    const uint8_t *b = j->data + j->off + prefix;
    hb_arena_reset(&j->arena);
    *r = hb__record__unpack(&j->arena.pa, body, b);
    if (!*r) {
        j->stop_reason = "undecodable record";
        return 0;
    }
    j->off += prefix + body + 4;
    j->valid = j->off;
    return 1;
}

size_t hb_jfile_intact_after(const hb_jfile *j)
{
    for (size_t off = j->valid + 1; off < j->size; off++) {
        size_t prefix, body;
        if (!entry_at(j, off, &prefix, &body))
            return off;
    }
    return 0;
}

void hb_jfile_close(hb_jfile *j)
{
    if (!j->borrowed)
        free(j->data);
    j->data = NULL;
}
