/*
 * job: lifecycle jobs on a bounded worker pool. One job per VM at a time,
 * different VMs in parallel. A job runs the VM through the paired events
 * (DEFINE/UNDEFINE, PREPARE/CLEANUP, PRE_START/POST_STOP, STARTED/STOPPING)
 * and undoes, newest first, whatever ran when a step fails.
 */
#ifndef CVMM_JOB_H
#define CVMM_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "vm.h"

struct cvmm_daemon;
struct cvmm_vm;

enum job_op { JOB_DEFINE, JOB_START, JOB_STOP, JOB_RESTART, JOB_REMOVE, JOB_EXITED, JOB_ADOPT };

struct job {
	enum job_op op;
	struct cvmm_vm *vm;
	uint32_t timeout; /* graceful stop, seconds */
	bool force;       /* stop: kill at once */
	bool automatic;   /* start: an auto-restart */
	int result;       /* 0 or -errno */
	char err[VM_ERRBUF_LEN]; /* message when result < 0 */
	/* Runs on the loop thread once the job is over; may be NULL. */
	void (*done)(struct cvmm_daemon *d, struct job *j);
	void *ctx;
	struct job *next;
};

struct jobs *jobs_new(struct cvmm_daemon *d, int workers);
/* Stops accepting work, waits for running jobs, joins the workers. */
void jobs_free(struct jobs *js);
/* Queues j (allocated by the caller with xzalloc; freed after done). Loop
 * thread. */
void jobs_submit(struct cvmm_daemon *d, struct job *j);
struct job *job_new(enum job_op op, struct cvmm_vm *vm);
/* The watched process of vm ended (loop thread). */
void jobs_process_gone(struct cvmm_daemon *d, struct cvmm_vm *vm);
/* Number of jobs queued or running. */
int jobs_pending(struct cvmm_daemon *d);

#endif
