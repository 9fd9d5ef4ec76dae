/*
 * Unit tests of the embedding API (core/embed.c, include/cvmm/cvmm.h),
 * through the public header only: a context on a temporary config with the
 * built plugins, no API listener, VMs created without starting (no QEMU
 * runs; the boot is integration.embed's). The answers must be the REST
 * API's: same refusals, same JSON, errno for status.
 */
#include <cvmm/cvmm.h>

#include "util.h"
#include "fake_image.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef CVMM_PLUGIN_BUILD_DIR
#define CVMM_PLUGIN_BUILD_DIR "."
#endif

static char tmpdir[] = "/tmp/cvmm-unit-embed-XXXXXX";
static char *conf_text;
static cvmm_ctx *ctx;

static int suite_init(void)
{
	if (!mkdtemp(tmpdir))
		return -1;
	int r = unit_fake_image(tmpdir);
	conf_text = xasprintf("address = \"unix:%s/run/cvmm.sock\";\n"
	                      "run_path = \"%s/run\";\n"
	                      "data_dir = \"%s/data\";\n"
	                      "image = { path = \"%s/images\"; };\n"
	                      "plugin_dir = \"%s\";\n"
	                      "log_level = \"error\";\n"
	                      "plugins = [ \"backend-qemu\", \"net-user\" ];\n"
	                      "plugin = { backend-qemu = { accel = \"tcg\"; }; };\n"
	                      "workers = 2;\n"
	                      "cvm = { max_allocable_vcpu = 4; max_allocable_memory_in_mb = 2048;\n"
	                      "  auto_restart = { enabled = false; }; };\n",
	                      tmpdir, tmpdir, tmpdir, tmpdir, CVMM_PLUGIN_BUILD_DIR);
	return r ? -1 : 0;
}

static int suite_clean(void)
{
	cvmm_close(ctx);
	free(conf_text);
	rm_rf(tmpdir);
	return 0;
}

static void test_bad_config(void)
{
	char err[1024] = "";
	cvmm_ctx *c = (cvmm_ctx *)1;
	int rc = cvmm_open_string(&c, "cvm = { cid_pool_size = 0; };\n", 0, err, sizeof(err));
	CU_ASSERT(rc < 0);
	CU_ASSERT_PTR_NULL(c);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "cvm.cid_pool_size: must be between 1 and 1000000"));
	rc = cvmm_open(&c, "/nonexistent/cvmm.conf", 0, err, sizeof(err));
	CU_ASSERT(rc < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/cvmm.conf"));
	CU_ASSERT_STRING_EQUAL(cvmm_version(), CVMM_VERSION);
}

static void test_before_start(void)
{
	char err[256] = "";
	CU_ASSERT_EQUAL_FATAL(cvmm_open_string(&ctx, conf_text, CVMM_OPEN_NO_API, err, sizeof(err)),
	                      0);
	CU_ASSERT_EQUAL(
	    cvmm_vm_create(ctx, "{\"name\": \"a\", \"image\": \"tiny\"}", NULL, err, sizeof(err)),
	    -ESHUTDOWN);
	CU_ASSERT_STRING_EQUAL(err, "cvmm_start was not called");
	CU_ASSERT_EQUAL_FATAL(cvmm_start(ctx, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(cvmm_start(ctx, err, sizeof(err)), -EALREADY);
	CU_ASSERT_EQUAL_FATAL(cvmm_run_thread(ctx, err, sizeof(err)), 0);
	cvmm_wait_adopted(ctx);
	char *sock = xasprintf("%s/run/cvmm.sock", tmpdir);
	CU_ASSERT(access(sock, F_OK) < 0); /* CVMM_OPEN_NO_API */
	free(sock);
}

static void test_create_refusals(void)
{
	char err[1024] = "", *out = NULL;
	CU_ASSERT_EQUAL(
	    cvmm_vm_create(ctx, "{\"name\": \"a\", \"image\": \"tiny\"", &out, err, sizeof(err)),
	    -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "body: invalid JSON"));
	CU_ASSERT_EQUAL(cvmm_vm_create(ctx,
	                               "{\"name\": \"a\", \"name\": \"b\", \"image\": \"tiny\"}",
	                               &out, err, sizeof(err)),
	                -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "name: appears twice in one object");
	CU_ASSERT_EQUAL(cvmm_vm_create(ctx, "[1]", &out, err, sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "body: must be a JSON object");
	CU_ASSERT_EQUAL(cvmm_vm_create(ctx, "{\"name\": \"a\", \"image\": \"tiny\", \"cpus\": 1}",
	                               &out, err, sizeof(err)),
	                -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "cpus: unknown field"));
	CU_ASSERT_EQUAL(cvmm_vm_create(ctx, "{\"name\": \"a\", \"image\": \"tiny\", \"vcpu\": 99}",
	                               &out, err, sizeof(err)),
	                -EBUSY); /* over the limit: the API's 409 */
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "cvm.max_allocable_vcpu"));
	CU_ASSERT_PTR_NULL(out);
}

static void test_lifecycle_without_boot(void)
{
	char err[1024] = "", *out = NULL;
	CU_ASSERT_EQUAL_FATAL(
	    cvmm_vm_create(ctx, "{\"name\": \"e1\", \"image\": \"tiny\", \"start\": false}", &out,
	                   err, sizeof(err)),
	    0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"name\":\"e1\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"state\":\"defined\""));
	cvmm_free(out);
	CU_ASSERT_EQUAL(cvmm_vm_create(ctx,
	                               "{\"name\": \"e1\", \"image\": \"tiny\", \"start\": false}",
	                               NULL, err, sizeof(err)),
	                -EEXIST);
	CU_ASSERT_STRING_EQUAL(err, "name: a VM named 'e1' exists already");
	CU_ASSERT_EQUAL(cvmm_vm_get(ctx, "e1", &out, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"desired\":\"stopped\""));
	cvmm_free(out);
	CU_ASSERT_EQUAL(cvmm_vm_list(ctx, "name,state", &out, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"vms\":[{\"name\":\"e1\",\"state\":\"defined\"}]}");
	cvmm_free(out);
	CU_ASSERT_EQUAL(cvmm_vm_list(ctx, "name,colour", &out, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "colour"));
	CU_ASSERT_EQUAL(cvmm_vm_stop(ctx, "e1", 5, 0, err, sizeof(err)), -EBUSY);
	CU_ASSERT_STRING_EQUAL(err, "VM 'e1' is not running (defined)");
	CU_ASSERT_EQUAL(cvmm_vm_stop(ctx, "e1", 3601, 0, err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(cvmm_vm_wait_state(ctx, "e1", "defined", 0, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(cvmm_vm_wait_state(ctx, "e1", "running", 100, err, sizeof(err)),
	                -ETIMEDOUT);
	CU_ASSERT_STRING_EQUAL(err, "VM 'e1' is defined, not running, after 100 ms");
	CU_ASSERT_EQUAL(cvmm_vm_wait_state(ctx, "e1", "asleep", 100, err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(cvmm_vm_get(ctx, "nope", &out, err, sizeof(err)), -ENOENT);
	CU_ASSERT_STRING_EQUAL(err, "no VM with id or name 'nope'");
	CU_ASSERT_EQUAL(cvmm_vm_start(ctx, "nope", err, sizeof(err)), -ENOENT);
	CU_ASSERT_EQUAL(cvmm_vm_remove(ctx, "e1", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(cvmm_vm_wait_state(ctx, "e1", "removed", 1000, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(cvmm_vm_get(ctx, "e1", &out, err, sizeof(err)), -ENOENT);
	CU_ASSERT_EQUAL(cvmm_vm_list(ctx, NULL, &out, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"vms\":[]}");
	cvmm_free(out);
}

/* A context closes cleanly and another opens in the same process, on the
 * same data (what an appliance does across a reconfiguration). */
static void test_reopen(void)
{
	char err[1024] = "";
	CU_ASSERT_EQUAL(
	    cvmm_vm_create(ctx, "{\"name\": \"kept\", \"image\": \"tiny\", \"start\": false}", NULL,
	                   err, sizeof(err)),
	    0);
	cvmm_close(ctx);
	ctx = NULL;
	CU_ASSERT_EQUAL_FATAL(cvmm_open_string(&ctx, conf_text, CVMM_OPEN_NO_API, err, sizeof(err)),
	                      0);
	CU_ASSERT_EQUAL_FATAL(cvmm_start(ctx, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(cvmm_run_thread(ctx, err, sizeof(err)), 0);
	cvmm_wait_adopted(ctx);
	CU_ASSERT_EQUAL(cvmm_vm_wait_state(ctx, "kept", "defined", 0, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(cvmm_vm_remove(ctx, "kept", err, sizeof(err)), 0);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("embed", suite_init, suite_clean);
	if (!s || !CU_add_test(s, "a bad config is refused with its key", test_bad_config) ||
	    !CU_add_test(s, "VM calls before start; no socket", test_before_start) ||
	    !CU_add_test(s, "create refuses what the API refuses", test_create_refusals) ||
	    !CU_add_test(s, "create, get, list, wait, remove", test_lifecycle_without_boot) ||
	    !CU_add_test(s, "close and open again", test_reopen)) {
		CU_cleanup_registry();
		return 1;
	}
	return unit_run();
}
