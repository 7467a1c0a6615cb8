/* renotify.h -- money notices are delivered at least once (see renotify.c). */
#ifndef SV_RENOTIFY_H
#define SV_RENOTIFY_H

#include <stdint.h>
#include "server.h"

/* Producer thread: at most once a second, tell the recipients of send
 * packets who have not opened their share again, when it is their time. */
void sv_renotify_sweep(sv_server *s, int64_t now_mono_us);

#endif
