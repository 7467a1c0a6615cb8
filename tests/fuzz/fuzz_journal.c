/* fuzz_journal.c -- libFuzzer target: replaying a journal of arbitrary bytes
 * (a torn, corrupt or hostile file must be cut or refused, never crash the
 * server at start-up). */
#include <stdlib.h>
#include <string.h>
#include "jfile.h"
#include "replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sv_registry reg;
    hb_prog = "fuzz_journal";
    hb_log_quiet = true;
    if (sv_registry_init(&reg) < 0)
        abort();
    hb_jfile jf;
    hb_jfile_open_mem(&jf, data, size);
    sv_replay_t rp;
    char err[256];
    if (sv_replay_jfile(&reg, &jf, &rp, err, sizeof err) == 0) {
        if (rp.valid > size)
            abort();
        sv_replay_free(&rp);
    }
    sv_registry_free(&reg);
    return 0;
}
