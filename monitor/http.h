/* http.h -- hb-monitor's HTTP side, served by libmicrohttpd in its own
 * thread: GET /metrics (Prometheus), GET /api/series (dashboard JSON), and
 * the dashboard's static files from the web directory. */
#ifndef MON_HTTP_H
#define MON_HTTP_H

#include <stddef.h>
#include "monitor.h"

/* addr: "HOST:PORT".  0, or -1 with err. */
int mon_http_start(mon_state *st, const char *addr, char *err, size_t errlen);
void mon_http_stop(void);

#endif
