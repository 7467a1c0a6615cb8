/* report.h -- once-a-second counter reports to hb-monitor over UDP.
 *
 * Server and clients call hb_reporter_send() from their stats timer.  The
 * socket is a connected, non-blocking UDP socket: a monitor that is down or
 * restarting can never stall the sender (a send that fails is counted in
 * `dropped` and forgotten), and reports resume by themselves when it comes
 * back.  With no monitor address reporting is off and costs nothing. */
#ifndef HB_REPORT_H
#define HB_REPORT_H

#include <netinet/in.h>
#include <stdbool.h>
#include "frame.h"
#include "hist.h"
#include "util.h"

typedef struct hb_reporter {
    int fd; /* -1: reporting off */
    Hb__Role role;
    uint64_t boot_id;
    char instance[64];
    hb_counter sent, dropped;
} hb_reporter;

/* monitor: "host:port" or NULL/"" for off.  0, or -1 with err. */
int hb_reporter_init(hb_reporter *r, const char *monitor, Hb__Role role, const char *instance, char *err, size_t errlen);

/* Fill role/instance/boot_id/second and the histogram of this second (may be
 * NULL), pack, send.  Returns 0 when handed to the kernel. */
int hb_reporter_send(hb_reporter *r, Hb__Report *rep, int64_t second, const hb_hist *lat);

/* Sparse histogram <-> report fields (also used by the monitor). */
void hb_report_put_hist(Hb__Report *rep, const hb_hist *h, uint32_t *idx, uint64_t *cnt, size_t cap);
void hb_report_get_hist(const Hb__Report *rep, hb_hist *h);

void hb_reporter_close(hb_reporter *r);

#endif
