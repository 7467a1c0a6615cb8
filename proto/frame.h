/* frame.h -- the one framing of hongbao: protobuf "delimited" frames.
 *
 * A frame is a varint byte length followed by that many bytes of an hb.Frame
 * message (proto/hongbao.proto).  The same framing is used on TCP
 * connections, in monitor datagrams and in the grant journal.
 *
 * Layers, smallest first:
 *   hb_frame_scan    stateless: does this buffer start with a whole frame?
 *   hb_frame_pack    Frame -> length prefix + bytes, into a caller buffer
 *   hb_frame_unpack  bytes -> Frame, allocating only from an hb_arena
 *   hb_stream        incremental decoder for callers that keep a full-size
 *                    buffer per stream (tests, monitor); the server and the
 *                    client keep a few inline bytes per connection instead
 *                    and use hb_frame_scan directly.
 */
#ifndef HB_FRAME_H
#define HB_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>
#include "hongbao.pb-c.h"

/* Hard limit on a frame body a server reads.  Every message a client
 * legitimately sends is far below it (a shake is ~4 bytes, a chat at most
 * ~120); anything longer is an attack or a bug and closes the connection. */
#define HB_FRAME_MAX 512
/* A varint for lengths up to HB_FRAME_MAX takes 2 bytes; the scanner rejects
 * any prefix longer than this, so a run of 0x80 bytes cannot keep it busy. */
#define HB_FRAME_PREFIX_MAX 3
/* Largest whole frame on the wire. */
#define HB_FRAME_WIRE_MAX (HB_FRAME_MAX + HB_FRAME_PREFIX_MAX)
/* Frames a server sends a client may be longer: a LoginOk or Redirect that
 * carries the cluster's member list (hongbao.proto Members).  Only those:
 * what a server reads stays bounded by HB_FRAME_MAX, so hostile input gains
 * nothing from this bound.  Used by the server's output path (the buffer it
 * packs into; server/conn.c asserts it fits one output chunk, SV_CHUNK =
 * 2048, with its prefix) and by whatever reads a server (hb-client's scanner,
 * receive buffer and arena; tests/e2e/peer.c).
 * Sized from the widest list, HB_PLACE_MAX = 64 members (packed arrays, one
 * tag byte and a 2-byte length each), in the longest Redirect:
 *   Members: tag 1+8; key 1+2+64*8 = 515; weight 1+2+64*8 = 515; addr
 *     1+2+64*4 = 259; port (65535: 3-byte varint) 1+2+64*3 = 195; band
 *     (<= 99: 1 byte) 1+1+64 = 66                                     = 1,559
 *   Redirect: host (63 bytes, the longest a member registers) 1+1+63,
 *     port 1+3, uid 1+5, members 1+2+1,559                            = 1,637
 *   Frame: 1+2+1,637 = 1,640 body bytes, 1,642 with the prefix
 * (a LoginOk is shorter: 1,594 body bytes).  Every band at a uint32's
 * widest (5 bytes: 1+2+320 = 323) adds 257: 1,897 body bytes, the most any
 * 64-member list can take.  tests/unit/test_members.c packs both and
 * prints these sizes.  2000 holds the widest with ~100 bytes to spare and
 * stays within SV_CHUNK - HB_FRAME_PREFIX_MAX = 2045.  A node checks every
 * list it builds against it and sends none rather than a longer frame
 * (server/cluster.c); the prefix stays 2 bytes (lengths < 16384). */
#define HB_FRAME_DOWN_MAX 2000
#define HB_FRAME_DOWN_WIRE_MAX (HB_FRAME_DOWN_MAX + HB_FRAME_PREFIX_MAX)
/* An arena for unpacking any frame up to HB_FRAME_DOWN_MAX (the client's):
 * 8 bytes per body byte, the worst case as for HB_FRAME_MAX below, plus the
 * messages' structs.  The widest member list takes about 2 KB of it. */
#define HB_FRAME_DOWN_ARENA (8 * HB_FRAME_DOWN_MAX + 1024)
/* Chat text limit (bytes). */
#define HB_CHAT_MAX 100
/* Monitor reports carry a histogram and are allowed to be larger; they travel
 * in datagrams or journal files, never on client connections. */
#define HB_REPORT_MAX 8192

enum hb_scan {
    HB_SCAN_FRAME = 0,      /* a whole frame: *prefix and *body are set */
    HB_SCAN_MORE = 1,       /* need more bytes; *prefix is 0 if the length is still incomplete */
    HB_SCAN_TOO_LARGE = -1, /* the length exceeds the limit, or the varint is malformed */
    HB_SCAN_EMPTY = -2,     /* a zero-length frame */
};

/* Look at buf[0..len).  `max` is the largest body accepted (HB_FRAME_MAX on
 * what a server reads, HB_FRAME_DOWN_MAX on what a client reads).  On HB_SCAN_FRAME the frame body is buf[*prefix .. *prefix +
 * *body).  On HB_SCAN_MORE with *prefix != 0, *body says how long the frame
 * will be, so the caller knows how many bytes are missing. */
int hb_frame_scan(const uint8_t *buf, size_t len, size_t max, size_t *prefix, size_t *body);

/* Encode v as a varint into out (at least 10 bytes); returns bytes written. */
size_t hb_varint_put(uint8_t *out, uint64_t v);

/* Pack f as prefix + body into out[0..cap).  Returns the total length, or 0
 * if it does not fit (the caller's buffer is too small: a bug). */
size_t hb_frame_pack(const Hb__Frame *f, uint8_t *out, size_t cap);

/* Pack an Error frame (code + detail) into out; returns its length or 0. */
size_t hb_pack_error(uint8_t *out, size_t cap, Hb__ErrorCode code, const char *detail);

/* ---- arena: unpacking without a malloc per message ---------------------- */

/* A bump allocator handed to protobuf-c.  Reset before each unpack; nothing
 * is freed one by one.  4 KiB is ample for a HB_FRAME_MAX body (the worst
 * case is a frame full of one-byte packed repeated fields, 8 bytes each). */
typedef struct hb_arena {
    ProtobufCAllocator pa; /* must stay first: protobuf-c gets &arena->pa */
    uint8_t *mem;
    size_t cap, used;
    size_t failed; /* allocations refused because the arena was full */
} hb_arena;

void hb_arena_init(hb_arena *a, void *mem, size_t cap);
static inline void hb_arena_reset(hb_arena *a) { a->used = 0; }

/* Unpack one frame body.  Resets the arena first; the result lives until the
 * next reset.  NULL if the bytes are not a valid hb.Frame. */
Hb__Frame *hb_frame_unpack(hb_arena *a, const uint8_t *body, size_t len);

/* ---- incremental stream decoder ----------------------------------------- */

typedef struct hb_stream {
    size_t max;            /* largest body accepted */
    size_t len;            /* bytes of an unfinished frame held in buf */
    uint8_t buf[HB_REPORT_MAX + HB_FRAME_PREFIX_MAX];
} hb_stream;

/* Called once per whole frame with its body.  Return 0 to go on, non-zero to
 * stop feeding (hb_stream_feed then returns that value). */
typedef int (*hb_frame_cb)(void *ctx, const uint8_t *body, size_t len);

void hb_stream_init(hb_stream *s, size_t max);
/* Feed bytes as they arrive, in any split.  Frames wholly inside `data` are
 * passed to cb without copying; only an unfinished tail is kept.  Returns 0,
 * the callback's non-zero value, or HB_SCAN_TOO_LARGE / HB_SCAN_EMPTY (the
 * stream is then broken and must be dropped). */
int hb_stream_feed(hb_stream *s, const uint8_t *data, size_t n, hb_frame_cb cb, void *ctx);

/* Name of an oneof case ("shake_reply"), from the schema's descriptor. */
const char *hb_body_name(Hb__Frame__BodyCase c);

/* ErrorCode values 0..HB_ERR_N-1 (a unit test checks this against the enum's
 * descriptor, so a new code in hongbao.proto cannot be forgotten here). */
#define HB_ERR_N 20
/* An ErrorCode's name from the enum descriptor, lower case without "ERR_"
 * ("frame_too_large"): the stats files' err_* counters use it. */
const char *hb_error_name(int code);

#endif
