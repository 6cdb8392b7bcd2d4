/* systemd's readiness protocol (sd_notify(3)), written by hand: one
 * datagram such as "READY=1" to the AF_UNIX socket named by the
 * NOTIFY_SOCKET environment variable (a path, or "@name" in the abstract
 * namespace).  Without NOTIFY_SOCKET nothing is sent.  conf/postern.service
 * runs the daemon with Type=notify. */
#ifndef CORE_NOTIFY_H
#define CORE_NOTIFY_H

/* Send state ("READY=1", "RELOADING=1", "STOPPING=1"); 0 when sent or
 * when there is no NOTIFY_SOCKET, -1 with errno otherwise. */
int notify_systemd(const char *state);

#endif
