/*
 * job: lifecycle jobs. Each VM has its own serial queue of jobs, and a
 * bounded pool of workers runs the head job of VMs that have one, different
 * VMs in parallel. A job holds a reference to its VM for its whole life. It
 * runs the VM through the paired events (DEFINE/UNDEFINE, PREPARE/CLEANUP,
 * PRE_START/POST_STOP, STARTED/STOPPING) and undoes, newest first, whatever
 * ran when a step fails or overruns cvm.hook_timeout.
 */
#ifndef CVMM_JOB_H
#define CVMM_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "vm.h"

struct cvmm_daemon;
struct cvmm_vm;

enum job_op {
	JOB_DEFINE,
	JOB_START,
	JOB_STOP,
	JOB_RESTART,
	JOB_REMOVE,
	JOB_EXITED,
	JOB_ADOPT,
	/* Issue 11: pause/resume a running VM; snapshot and resize the disk of
	 * a stopped one (job.c, "pause, snapshots, resize"). */
	JOB_PAUSE,
	JOB_RESUME,
	JOB_SNAPSHOT,
	JOB_RESIZE,
	JOB_N_OPS, /* not an op: how many there are */
};

struct job {
	enum job_op op;
	struct cvmm_vm *vm; /* a reference, dropped when the job is freed */
	uint32_t timeout;   /* graceful stop, seconds */
	bool force;         /* stop: kill at once */
	bool automatic;     /* start: an auto-restart */
	bool intent_saved;  /* the requester persisted the desired state already */
	int result;         /* 0 or -errno */
	char err[VM_ERRBUF_LEN]; /* message when result < 0 */
	/* Completion: a requester may wait for it (job_wait). */
	int refs;
	bool finished;
	struct job *next;
	/* JOB_SNAPSHOT: snap_op (CVMM_SNAP_*) on snap_name; LIST writes its
	 * JSON array into out (out_len, the requester's). JOB_RESIZE: the
	 * new root disk size. JOB_REMOVE: the kept volumes' new paths, one
	 * a line, into out when set. */
	uint32_t snap_op;
	char snap_name[65];
	uint32_t disk_gb;
	char *out;
	size_t out_len;
};

struct jobs *jobs_new(struct cvmm_daemon *d, int workers);
/* Stops accepting work, waits for running jobs, joins the workers. */
void jobs_stop(struct jobs *js);
/* After jobs_stop: answers vm's queued jobs (-ESHUTDOWN) and drops them. */
void jobs_drain(struct jobs *js, struct cvmm_vm *vm);
void jobs_free(struct jobs *js); /* jobs_stop, then frees */
/* A new job on vm (takes a reference to vm). */
struct job *job_new(enum job_op op, struct cvmm_vm *vm);
/* Queues j behind vm's other jobs; any thread. Returns 0, or -ESHUTDOWN
 * when the daemon is stopping (j is then released). */
int jobs_submit(struct cvmm_daemon *d, struct job *j);
/* Keeps j after it finishes, for job_wait; release with job_unref. */
struct job *job_ref(struct job *j);
void job_unref(struct job *j);
/* Drops vm's queued (not running) start, stop, restart and exit jobs (and
 * pause, resume, snapshot and resize ones): a removal supersedes them. Their waiters get -ECANCELED with why. Returns
 * how many. */
int jobs_cancel_queued(struct cvmm_daemon *d, struct cvmm_vm *vm, const char *why);
/* Blocks until no job runs or waits (jobs submitted meanwhile included);
 * any thread but the loop's. For embedders and tests that need the daemon
 * quiet, e.g. after a start whose adoption jobs run in the background. */
void jobs_wait_idle(struct jobs *js);
/* Blocks until j finished; any thread but the loop's. */
void job_wait(struct cvmm_daemon *d, struct job *j);
/* The watched process of vm ended (any thread). */
void jobs_process_gone(struct cvmm_daemon *d, struct cvmm_vm *vm);
/* Dry run: the spec a start of vm (not in the table) would launch, built
 * by the core and by the plugins' plan ops and PLAN hooks, changing
 * nothing. On success, missing lists the NICs whose mode cannot plan
 * ("" if none); on failure it holds the reason. */
struct cvmm_spec;
int job_plan(struct cvmm_daemon *d, struct cvmm_vm *vm, struct cvmm_spec **out, char *missing,
	     size_t missing_len);

#endif
