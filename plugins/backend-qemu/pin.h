/*
 * pin: the launch spec's vCPU and emulator pinning for a QEMU process. QEMU's
 * command line cannot say it (libvirt does it after launch too), so the
 * backend starts QEMU paused (-S), asks QMP which host thread runs which vCPU
 * (query-cpus-fast), sets each vCPU thread's affinity to its pin and every
 * other thread of the process (the emulator threads: main loop, RCU, I/O
 * workers) to emulator_cpus, then lets the guest run.
 *
 * Threads QEMU starts later inherit the affinity of the thread that starts
 * them: most come from the main loop (emulator CPUs); a worker a vCPU thread
 * spawns inherits that vCPU's CPUs. cgroups (libvirt's way) would hold them
 * all; a process of its own cannot without a cgroup manager.
 */
#ifndef CVMM_QEMU_PIN_H
#define CVMM_QEMU_PIN_H

#include <cvmm/plugin.h>
#include <sched.h>
#include <stddef.h>

struct qmp;

struct pin_step {
	int tid;
	int vcpu; /* -1: an emulator thread */
	cpu_set_t cpus;
};

struct pin_plan {
	struct pin_step *steps;
	size_t n;
};

/* vcpu_tids[v] = the host thread of vCPU v from a query-cpus-fast reply
 * ("return" array); n_vcpus gets the count (cpu-index + 1 of the highest).
 * -EPROTO with a reason when the reply is not what QEMU sends. */
int pin_parse_cpus(const char *json, int *vcpu_tids, size_t max, size_t *n_vcpus, char *err,
		   size_t errlen);

/* The steps for spec: a vCPU with a pin gets its host CPUs; with
 * emulator_cpus set, every thread of all_tids that runs no vCPU gets them.
 * A vCPU pinned but absent from vcpu_tids is -ENOENT. */
int pin_plan_make(const struct cvmm_launch_spec *spec, const int *vcpu_tids, size_t n_vcpus,
		  const int *all_tids, size_t n_all, struct pin_plan *out, char *err,
		  size_t errlen);
void pin_plan_free(struct pin_plan *p);

/* The thread ids of process pid (/proc/PID/task), malloc'd into *tids. */
int pin_list_threads(int pid, int **tids, size_t *n);

/* sched_setaffinity for each step; stops at the first failure. */
int pin_apply(const struct pin_plan *p, char *err, size_t errlen);

/* All of it for QEMU process pid, over q. */
int pin_qemu(struct qmp *q, int pid, const struct cvmm_launch_spec *spec, char *err,
	     size_t errlen);

#endif
