/*
 * embed_boot: an appliance that embeds cvmm's core through its public API
 * only (<cvmm/cvmm.h>, `pkg-config cvmm`). tests/integration/test_embed.py
 * builds it out of tree against an installed prefix and drives it:
 *
 *   embed_boot CONFIG_FILE VM_NAME IMAGE
 *
 * It opens a context without an API listener, starts it, runs the loop on
 * the library's thread, creates and boots a VM, prints "RUNNING <vm json>"
 * and waits for a line on stdin; then stops the VM, removes it, closes the
 * context and prints "DONE". Every step's failure exits 1 with the
 * library's message.
 */
#include <cvmm/cvmm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(int rc, const char *what, const char *err)
{
	if (rc < 0) {
		fprintf(stderr, "embed_boot: %s: %s (%d)\n", what, err, rc);
		exit(1);
	}
	printf("OK %s\n", what);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: embed_boot CONFIG_FILE VM_NAME IMAGE\n");
		return 2;
	}
	char err[1024] = "", req[512], *json = NULL;
	cvmm_ctx *c = NULL;
	printf("libcvmm-core %s\n", cvmm_version());
	check(cvmm_open(&c, argv[1], CVMM_OPEN_NO_API, err, sizeof(err)), "open", err);
	check(cvmm_start(c, err, sizeof(err)), "start", err);
	check(cvmm_run_thread(c, err, sizeof(err)), "run_thread", err);
	cvmm_wait_adopted(c);
	snprintf(req, sizeof(req),
	         "{\"name\": \"%s\", \"image\": \"%s\", \"vcpu\": 1, \"memory_mb\": 256}", argv[2],
	         argv[3]);
	/* A request the API refuses is refused here the same way. */
	int rc = cvmm_vm_create(c, "{\"name\": \"x\", \"image\": \"tiny\", \"vcpu\": 0}", NULL, err,
	                        sizeof(err));
	printf("REFUSED %d %s\n", rc, err);
	check(cvmm_vm_create(c, req, &json, err, sizeof(err)), "create", err);
	printf("CREATED %s\n", json);
	cvmm_free(json);
	check(cvmm_vm_wait_state(c, argv[2], "running", 60000, err, sizeof(err)), "wait running",
	      err);
	check(cvmm_vm_get(c, argv[2], &json, err, sizeof(err)), "get", err);
	printf("RUNNING %s\n", json);
	cvmm_free(json);
	check(cvmm_vm_list(c, "name,state", &json, err, sizeof(err)), "list", err);
	printf("LIST %s\n", json);
	cvmm_free(json);
	fflush(stdout);
	char line[64];
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	rc = cvmm_vm_start(c, argv[2], err, sizeof(err));
	printf("START-AGAIN %d %s\n", rc, err); /* already running: -EBUSY, as the API's 409 */
	check(cvmm_vm_stop(c, argv[2], 5, 0, err, sizeof(err)), "stop", err);
	check(cvmm_vm_wait_state(c, argv[2], "stopped", 60000, err, sizeof(err)), "wait stopped",
	      err);
	check(cvmm_vm_remove(c, argv[2], err, sizeof(err)), "remove", err);
	check(cvmm_vm_wait_state(c, argv[2], "removed", 10000, err, sizeof(err)), "wait removed",
	      err);
	rc = cvmm_vm_get(c, argv[2], &json, err, sizeof(err));
	printf("GONE %d %s\n", rc, err);
	cvmm_close(c);
	printf("DONE\n");
	return 0;
}
