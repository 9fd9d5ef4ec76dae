/*
 * channel: the guest channel of each running VM, daemon side. It owns, per
 * VM, the connection to the VM's virtio-serial socket, the unprivileged
 * reader process that parses what the guest sends (cvmm-chanreader), and a
 * thread that acts on the reader's validated messages and answers requests.
 */
#ifndef CVMM_CHANNEL_H
#define CVMM_CHANNEL_H

#include <stddef.h>

struct cvmm_daemon;
struct cvmm_vm;
struct cvmm_spec;
struct jw;

/* The port's name in the guest: /dev/virtio-ports/<name>. */
#define CHANNEL_PORT_NAME "org.cvmm.channel.0"

/* Puts the channel into the spec of a boot (build_spec). */
void channel_spec(struct cvmm_daemon *d, struct cvmm_vm *vm, struct cvmm_spec *s);
/* Once the VM runs (a start, or a re-adoption after a daemon restart): starts
 * the VM's channel thread, which connects and starts the reader. Worker
 * thread; no lock held. A channel already running is kept. */
int channel_attach(struct cvmm_daemon *d, struct cvmm_vm *vm);
/* Stops the VM's channel: the thread, the reader (killed and reaped) and the
 * connection. Idempotent; any thread but the channel's own and the loop's. */
void channel_detach(struct cvmm_vm *vm);
/* The "guest" member of the VM's API object. Caller holds vm->lock. */
void channel_write_api(struct cvmm_vm *vm, struct jw *w);

#endif
