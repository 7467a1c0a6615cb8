/* frame.c -- delimited protobuf frames, arena unpacking, stream decoding. */
#include "frame.h"

#include <ctype.h>
#include <pthread.h>
#include <string.h>

int hb_frame_scan(const uint8_t *buf, size_t len, size_t max, size_t *prefix, size_t *body)
{
    uint64_t v = 0;
    *prefix = 0;
    *body = 0;
    for (size_t i = 0; i < HB_FRAME_PREFIX_MAX; i++) {
        if (i == len)
            return HB_SCAN_MORE;
        v |= (uint64_t)(buf[i] & 0x7f) << (7 * i);
        /* Reject as soon as the length is known to be too big, even before
         * the varint ends: a peer cannot make us wait for bytes we would
         * refuse anyway. */
        if (v > max)
            return HB_SCAN_TOO_LARGE;
        if (!(buf[i] & 0x80)) {
            if (v == 0)
                return HB_SCAN_EMPTY;
            *prefix = i + 1;
            *body = (size_t)v;
            return len - *prefix >= v ? HB_SCAN_FRAME : HB_SCAN_MORE;
        }
    }
    return HB_SCAN_TOO_LARGE; /* over-long varint */
}

size_t hb_varint_put(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

size_t hb_frame_pack(const Hb__Frame *f, uint8_t *out, size_t cap)
{
    size_t body = protobuf_c_message_get_packed_size(&f->base);
    uint8_t pre[10];
    size_t np = hb_varint_put(pre, body);
    if (np + body > cap)
        return 0;
    memcpy(out, pre, np);
    size_t w = protobuf_c_message_pack(&f->base, out + np);
    return np + w;
}

size_t hb_pack_error(uint8_t *out, size_t cap, Hb__ErrorCode code, const char *detail)
{
    Hb__Error e = HB__ERROR__INIT;
    e.code = code;
    e.detail = (char *)detail;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_ERROR;
    f.error = &e;
    return hb_frame_pack(&f, out, cap);
}

/* ---- arena ---------------------------------------------------------------- */

static void *arena_alloc(void *ud, size_t size)
{
    hb_arena *a = ud;
    size_t at = (a->used + 15) & ~(size_t)15;
    if (size > a->cap || at > a->cap - size) {
        a->failed++;
        return NULL; /* protobuf-c then fails the unpack cleanly */
    }
    a->used = at + size;
    return a->mem + at;
}

static void arena_free(void *ud, void *p)
{
    (void)ud;
    (void)p; /* everything goes at the next reset */
}

void hb_arena_init(hb_arena *a, void *mem, size_t cap)
{
    a->pa.alloc = arena_alloc;
    a->pa.free = arena_free;
    a->pa.allocator_data = a;
    a->mem = mem;
    a->cap = cap;
    a->used = 0;
    a->failed = 0;
}

Hb__Frame *hb_frame_unpack(hb_arena *a, const uint8_t *body, size_t len)
{
    hb_arena_reset(a);
    return hb__frame__unpack(&a->pa, len, body);
}

/* ---- stream ----------------------------------------------------------------- */

void hb_stream_init(hb_stream *s, size_t max)
{
    s->max = max > HB_REPORT_MAX ? HB_REPORT_MAX : max;
    s->len = 0;
}

int hb_stream_feed(hb_stream *s, const uint8_t *data, size_t n, hb_frame_cb cb, void *ctx)
{
    size_t prefix, body;
    int r;

    /* First finish the frame held from earlier reads, copying only the bytes
     * it still lacks (one at a time while its length is incomplete). */
    while (s->len > 0 && n > 0) {
        r = hb_frame_scan(s->buf, s->len, s->max, &prefix, &body);
        if (r < 0)
            return r;
        size_t want = prefix ? prefix + body - s->len : 1;
        if (want > n)
            want = n;
        memcpy(s->buf + s->len, data, want);
        s->len += want;
        data += want;
        n -= want;
        r = hb_frame_scan(s->buf, s->len, s->max, &prefix, &body);
        if (r < 0)
            return r;
        if (r == HB_SCAN_FRAME) {
            s->len = 0;
            if ((r = cb(ctx, s->buf + prefix, body)) != 0)
                return r;
        }
    }
    /* Then every whole frame in place, and keep the tail. */
    while (n > 0) {
        r = hb_frame_scan(data, n, s->max, &prefix, &body);
        if (r < 0)
            return r;
        if (r == HB_SCAN_MORE) {
            memcpy(s->buf, data, n);
            s->len = n;
            return 0;
        }
        if ((r = cb(ctx, data + prefix, body)) != 0)
            return r;
        data += prefix + body;
        n -= prefix + body;
    }
    return 0;
}

const char *hb_body_name(Hb__Frame__BodyCase c)
{
    /* The oneof's field names in hongbao.proto: the schema is the one home. */
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(&hb__frame__descriptor, (unsigned)c);
    return f ? f->name : "none";
}

/* ErrorCode names without "ERR_", in lower case, made once from the enum's
 * descriptor ("ERR_FRAME_TOO_LARGE" -> "frame_too_large"). */
static char err_names[HB_ERR_N][48];

static void err_names_init(void)
{
    for (int code = 0; code < HB_ERR_N; code++) {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&hb__error_code__descriptor, code);
        const char *n = v ? v->name : "unknown";
        if (!strncmp(n, "ERR_", 4))
            n += 4;
        size_t i = 0;
        for (; n[i] && i < sizeof err_names[code] - 1; i++)
            err_names[code][i] = (char)tolower((unsigned char)n[i]);
        err_names[code][i] = 0;
    }
}

const char *hb_error_name(int code)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, err_names_init);
    return code >= 0 && code < HB_ERR_N ? err_names[code] : "unknown";
}
