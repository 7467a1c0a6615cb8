/* route.h -- delivering a message to a user wherever the user is connected:
 * a send-flow notice, a chat, "your session was replaced".
 *
 * Any thread may route.  The uid directory (directory.h) says which SET holds
 * the user's session; the message goes into that SET's inbox (inbox.h) and
 * the SET is woken.  A user who is offline gets it at the next login: it is
 * parked in the directory.  Nothing here blocks on a SET: a full inbox
 * refuses and the drop is counted, so a stuck SET cannot stall the producer
 * or another SET.  In a cluster, a message for a uid another node owns goes
 * to that node's stream (xmsg.h) and is routed there. */
#ifndef SV_ROUTE_H
#define SV_ROUTE_H

#include <stdbool.h>
#include <stdint.h>
#include "inbox.h"

struct sv_server;

/* Route m to m->uid.  Returns false when it was dropped (counted). */
bool sv_route(struct sv_server *s, sv_msg *m);
/* uid logged in again; its older session was at `prev` (another SET): tell
 * that SET to close it.  If the inbox is full the old session still cannot
 * act (every request checks it is still the uid's session). */
void sv_route_kick(struct sv_server *s, uint64_t prev, uint32_t uid);
/* Messages dropped by routing itself (no such uid, full inbox, bouncing). */
uint64_t sv_route_drops(const struct sv_server *s);

#endif
