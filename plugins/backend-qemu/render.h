/*
 * render: the QEMU argv for a launch spec. A pure function of the spec and
 * the backend's options, so that golden files pin it down.
 */
#ifndef CVMM_QEMU_RENDER_H
#define CVMM_QEMU_RENDER_H

#include <cvmm/plugin.h>

struct qemu_opts {
	const char *binary; /* "qemu-system-x86_64" */
	const char *accel;  /* "kvm" or "tcg" */
	int vsock;          /* render a vhost-vsock device when the spec has a CID */
	int sandbox;        /* -sandbox on with the deny options */
};

/*
 * A macvtap NIC reaches QEMU as an open file descriptor of its character
 * device (/dev/tap<ifindex>): QEMU cannot open it by name. The k-th
 * CVMM_NIC_MACVTAP NIC of a spec (k = 0, 1, ... in NIC order) is rendered
 * as "-netdev tap,fd=<QEMU_MACVTAP_FD_BASE + k>", and the backend's spawner
 * places the device's descriptor at exactly that number in QEMU's process.
 * 10 is past stdin/out/err and whatever a libc might open early.
 */
#define QEMU_MACVTAP_FD_BASE 10
#define QEMU_MACVTAP_MAX 16

struct argv {
	char **v;
	int n, cap;
};

/* Fills a (NULL-terminated). Returns 0, or -EINVAL with the reason in err
 * (e.g. a value QEMU's option parser would misread). */
int qemu_render(const struct cvmm_launch_spec *spec, const struct qemu_opts *o, struct argv *a,
		char *err, size_t errlen);
void argv_free(struct argv *a);
/* 1 when the spec pins vCPUs or emulator threads: the argv then has -S and
 * the backend pins (pin.c) before it lets the guest run. */
int qemu_needs_pinning(const struct cvmm_launch_spec *spec);
/* The spec's confidential part, NULL when none (or an older spec). */
const struct cvmm_spec_confidential *qemu_confidential(const struct cvmm_launch_spec *spec);

#endif
