/* The systemd service manager's readiness protocol (sd_notify(3)), spoken directly: one
 * datagram per state change to $NOTIFY_SOCKET, so pgwardd needs no libsystemd. Outside a
 * Type=notify unit (no NOTIFY_SOCKET) every call is a no-op. */
#ifndef PGWARD_SDNOTIFY_H
#define PGWARD_SDNOTIFY_H

/* Takes $NOTIFY_SOCKET and removes it from the environment, so that no child (the approval
 * notifier, a session's helper) can speak for pgwardd. Call first in main. */
void pw_sd_init(void);

/* Sends "KEY=value" lines (printf format), e.g. "READY=1\nSTATUS=serving". Returns 0 when
 * sent or when there is no service manager, -1 when the send failed (errno set). */
int pw_sd_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
