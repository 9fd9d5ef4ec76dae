/*
 * events: the daemon's live event feed (GET /v1/events). Every VM event
 * goes into a bounded in-memory ring under a daemon-wide increasing id;
 * subscribers read the ring at their own pace and resume by id.
 */
#ifndef CVMM_EVENTS_H
#define CVMM_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#define EVENTS_RING 4096      /* events kept for resuming subscribers */
#define EVENTS_KEEPALIVE 15.0 /* seconds of silence before a keep-alive comment */

struct events;
struct events_sub;

/* A ring of cap events whose first id is first_id (> 0). */
struct events *events_new(size_t cap, uint64_t first_id);
void events_free(struct events *ev); /* NULL is fine; no subscriber may be left */
/* The first id of a daemon run started at now (wall clock): ids grow across
 * restarts too, so that a client resuming with an id of an earlier run is
 * told it lost events rather than silently skipping the new run's first
 * ones. */
uint64_t events_first_id(double now);

/*
 * Any thread, any lock held but the ring's: O(1), copies the strings into
 * the slot of the oldest event and wakes waiting subscribers; never waits
 * for a subscriber (they hold the ring's lock only to copy one slot out).
 * Returns the event's id.
 */
uint64_t events_publish(struct events *ev, const char *vm_id, const char *vm_name, const char *type,
                        const char *message);
uint64_t events_last_id(struct events *ev);   /* 0 before the first event */
uint64_t events_published(struct events *ev); /* events since events_new */

/*
 * A subscriber. last_id: NULL for new events only; else the last id the
 * client saw (Last-Event-ID): it gets the events after it that the ring
 * still has, after a "lost" event when some are gone. vms and types:
 * NULL or comma-separated lists (a VM by name or id). -EINVAL with the
 * reason in err for a malformed argument.
 */
int events_sub_new(struct events *ev, const char *last_id, const char *vms, const char *types,
                   struct events_sub **out, char *err, size_t errlen);
void events_sub_free(struct events_sub *s);
/* Seconds of silence before a keep-alive comment (tests shorten it). */
void events_sub_set_keepalive(struct events_sub *s, double seconds);
/*
 * Writes whole Server-Sent Events into buf (at most max bytes, max >= 4096):
 * the opening comment, a "lost" event when the subscriber fell behind the
 * ring, the matching events, or a keep-alive comment after a silence.
 * Waits up to wait_ms for something to write; returns the bytes written,
 * 0 when nothing came in time.
 */
size_t events_sub_read(struct events_sub *s, char *buf, size_t max, int wait_ms);

/* One event as SSE text ("id: N\ndata: {json}\n\n") into buf; the length, or
 * 0 when it does not fit. Exposed for tests. */
size_t events_format(char *buf, size_t max, uint64_t id, double time, const char *vm_id,
                     const char *vm_name, const char *type, const char *message);

#endif
