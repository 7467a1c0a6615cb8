/* fuzz_frame.c -- libFuzzer target: the framing layer.
 * The input is cut into reads of varying sizes (first byte picks the cut)
 * and fed to the stream decoder; every frame it yields is unpacked into a
 * small arena and packed again, and that must frame exactly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "frame.h"

static hb_arena arena;
static uint8_t mem[4096];

static int on_frame(void *ctx, const uint8_t *body, size_t len)
{
    (void)ctx;
    Hb__Frame *f = hb_frame_unpack(&arena, body, len);
    if (!f)
        return 0;
    /* Our property: whatever protobuf-c makes of the frame, packing it again
     * gives one well-formed frame of exactly that length.  (Whether it then
     * unpacks identically is protobuf-c's business: it keeps unknown fields,
     * even field number 0, verbatim and may refuse them on the way back.) */
    static uint8_t out[HB_REPORT_MAX + 16];
    size_t n = hb_frame_pack(f, out, sizeof out);
    if (n == 0)
        return 0;
    size_t pre, body2;
    if (hb_frame_scan(out, n, HB_REPORT_MAX, &pre, &body2) != HB_SCAN_FRAME || pre + body2 != n)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hb_arena_init(&arena, mem, sizeof mem);
    if (size == 0)
        return 0;
    size_t cut = 1 + data[0] % 17;
    data++, size--;
    static hb_stream s;
    hb_stream_init(&s, HB_FRAME_MAX);
    for (size_t off = 0; off < size; off += cut) {
        size_t n = size - off < cut ? size - off : cut;
        if (hb_stream_feed(&s, data + off, n, on_frame, NULL) < 0)
            break;
    }
    size_t pre, body;
    (void)hb_frame_scan(data, size, HB_FRAME_MAX, &pre, &body);
    return 0;
}
