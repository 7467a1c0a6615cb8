/* fuzz_journal.c -- libFuzzer target: replaying a journal of arbitrary bytes
 * (a torn, corrupt or hostile file must be cut or refused, never crash the
 * server at start-up). */
#include <stdlib.h>
#include <string.h>
#include "jfile.h"
#include "replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hb_registry reg;
    hb_prog = "fuzz_journal";
    hb_log_quiet = true;
    if (hb_registry_init(&reg) < 0)
        abort();
    hb_jfile jf;
    hb_jfile_open_mem(&jf, data, size);
    hb_replay_t rp;
    char err[256];
    if (hb_replay_jfile(&reg, &jf, &rp, err, sizeof err) == 0) {
        if (rp.valid > size)
            abort();
        hb_replay_free(&rp);
    }
    hb_registry_free(&reg);
    return 0;
}
