/* command.h -- commands on a pipe from the fleet agent (agent.c) to the
 * hb-client process it started for one task (--commands-fd N):
 *   qps N T     aggregate rate N from schedule second T (cl_set_qps: every
 *               process given the same line switches at the same second)
 *   pause       stop shaking (what falls due meanwhile is skipped)
 *   resume      shake again
 *   stop        end the run now (stop sending, drain, summary)
 * One command a line.  End of file (the agent is gone) ends the run too: a
 * process whose agent died must not go on playing uids another agent may
 * claim.  Runs on main's loop. */
#ifndef CL_COMMAND_H
#define CL_COMMAND_H

#include <ev.h>
#include "client.h"

/* Watch fd on loop; on_stop(loop) is called for "stop" and at end of file. */
void cl_command_start(cl_client *cl, struct ev_loop *loop, int fd, void (*on_stop)(struct ev_loop *loop));

#endif
