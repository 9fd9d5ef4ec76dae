/*
 * Unit tests for core/check.c: the core's readiness items, read from fake
 * host trees (proc/cpuinfo, sys/class/iommu, sys/kernel/iommu_groups,
 * sys/module/...) built here, so every status is reached whatever this
 * machine is. What a tree cannot fake is /dev/kvm: under a tree it is a
 * missing file or a regular one, and both must fail.
 */
#include "check.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char base[64];

static void put(const char *root, const char *rel, const char *text)
{
	char p[512], cmd[600];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", p);
	CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
	FILE *f = fopen(p, "we");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

static void dir(const char *root, const char *rel)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/%s'", root, rel);
	CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
}

/* The item called name: its status, and its detail and fix copied out. */
static const char *status_of(json_object *items, const char *name, const char **detail,
			     const char **fix)
{
	for (size_t i = 0; i < json_object_array_length(items); i++) {
		json_object *it = json_object_array_get_idx(items, i), *v;
		json_object_object_get_ex(it, "name", &v);
		if (strcmp(json_object_get_string(v), name))
			continue;
		if (detail && json_object_object_get_ex(it, "detail", &v))
			*detail = json_object_get_string(v);
		if (fix && json_object_object_get_ex(it, "fix", &v))
			*fix = json_object_get_string(v);
		json_object_object_get_ex(it, "status", &v);
		return json_object_get_string(v);
	}
	return "(missing)";
}

static void test_ready_host(void)
{
	char root[128];
	snprintf(root, sizeof(root), "%s/ready", base);
	put(root, "proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu vme vmx sse2\n\nprocessor\t: 1\n"
				  "flags\t\t: fpu vme vmx sse2\n");
	dir(root, "sys/class/iommu/dmar0");
	dir(root, "sys/kernel/iommu_groups/0/devices");
	dir(root, "sys/kernel/iommu_groups/1/devices");
	dir(root, "sys/module/vfio");
	dir(root, "sys/module/vfio_pci");
	put(root, "sys/module/nvidia_drm/parameters/modeset", "Y\n");
	json_object *items = json_object_new_array();
	const char *detail = "", *fix = "";
	check_core(root, items);
	CU_ASSERT_STRING_EQUAL(status_of(items, "cpu_virtualization", &detail, NULL), "ok");
	CU_ASSERT_PTR_NOT_NULL(strstr(detail, "vmx"));
	CU_ASSERT_STRING_EQUAL(status_of(items, "iommu", &detail, &fix), "ok");
	CU_ASSERT_STRING_EQUAL(fix, "");
	CU_ASSERT_STRING_EQUAL(status_of(items, "iommu_groups", &detail, NULL), "ok");
	CU_ASSERT_STRING_EQUAL(detail, "2 IOMMU groups");
	CU_ASSERT_STRING_EQUAL(status_of(items, "vfio", NULL, NULL), "ok");
	CU_ASSERT_STRING_EQUAL(status_of(items, "nvidia_drm", &detail, &fix), "warn");
	CU_ASSERT_PTR_NOT_NULL(strstr(detail, "hangs"));
	CU_ASSERT_PTR_NOT_NULL(strstr(fix, "modeset=0"));
	/* a tree has no KVM device: missing is a failure with a fix */
	CU_ASSERT_STRING_EQUAL(status_of(items, "kvm", &detail, &fix), "fail");
	CU_ASSERT_PTR_NOT_NULL(strstr(fix, "kvm_intel"));
	json_object_put(items);

	/* /dev/kvm that is no KVM device (a regular file) fails too */
	put(root, "dev/kvm", "");
	items = json_object_new_array();
	check_core(root, items);
	CU_ASSERT_STRING_EQUAL(status_of(items, "kvm", &detail, NULL), "fail");
	CU_ASSERT_PTR_NOT_NULL(strstr(detail, "KVM_GET_API_VERSION"));
	json_object_put(items);
}

static void test_bare_host(void)
{
	char root[128];
	snprintf(root, sizeof(root), "%s/bare", base);
	/* a guest without nested virtualization and without an IOMMU, as CI
	 * machines are */
	put(root, "proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu sse2 hypervisor\n");
	dir(root, "sys/class/iommu");
	json_object *items = json_object_new_array();
	const char *detail = "", *fix = "";
	check_core(root, items);
	CU_ASSERT_STRING_EQUAL(status_of(items, "cpu_virtualization", &detail, &fix), "fail");
	CU_ASSERT_PTR_NOT_NULL(strstr(detail, "itself a guest"));
	CU_ASSERT_PTR_NOT_NULL(strstr(fix, "nested"));
	CU_ASSERT_STRING_EQUAL(status_of(items, "iommu", &detail, &fix), "fail");
	CU_ASSERT_PTR_NOT_NULL(strstr(detail, "empty"));
	CU_ASSERT_PTR_NOT_NULL(strstr(fix, "intel_iommu=on"));
	CU_ASSERT_STRING_EQUAL(status_of(items, "iommu_groups", NULL, NULL), "fail");
	CU_ASSERT_STRING_EQUAL(status_of(items, "vfio", &detail, &fix), "fail");
	CU_ASSERT_STRING_EQUAL(detail, "not loaded: vfio, vfio_pci");
	CU_ASSERT_PTR_NOT_NULL(strstr(fix, "modprobe vfio-pci"));
	CU_ASSERT_STRING_EQUAL(status_of(items, "nvidia_drm", NULL, NULL), "ok");
	/* every item has the four fields, and a fix exactly when not ok */
	for (size_t i = 0; i < json_object_array_length(items); i++) {
		json_object *it = json_object_array_get_idx(items, i), *v;
		const char *st = json_object_object_get_ex(it, "status", &v) ? json_object_get_string(v) : "";
		CU_ASSERT_TRUE(!strcmp(st, "ok") || !strcmp(st, "warn") || !strcmp(st, "fail"));
		CU_ASSERT_TRUE(json_object_object_get_ex(it, "detail", &v));
		CU_ASSERT_TRUE(json_object_object_get_ex(it, "fix", &v));
		CU_ASSERT_EQUAL(strcmp(st, "ok") != 0, json_object_get_string_len(v) > 0);
	}
	json_object_put(items);
}

int main(void)
{
	snprintf(base, sizeof(base), "/tmp/cvmm-check-test.XXXXXX");
	if (!mkdtemp(base))
		return 1;
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("check", NULL, NULL);
	CU_add_test(s, "ready_host", test_ready_host);
	CU_add_test(s, "bare_host", test_bare_host);
	int failed = unit_run();
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	if (system(cmd) != 0)
		return 1;
	return failed ? 1 : 0;
}
