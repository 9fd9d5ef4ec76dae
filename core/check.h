/*
 * check: the host readiness report (GET /v1/host/check, `cvmm check`):
 * whether this host can run the VMs cvmm is for (KVM, IOMMU, VFIO, QEMU,
 * firmware, passt), each item with what to do about it; plugins add their
 * own items (gpu-vfio: each GPU and whether it can be passed through).
 */
#ifndef CVMM_CHECK_H
#define CVMM_CHECK_H

#include <json-c/json.h>

struct cvmm_daemon;

enum check_status { CHECK_OK = 0, CHECK_WARN, CHECK_FAIL };

/* Appends the core's items to items (a JSON array), reading the host under
 * root ("/": this host; a test tree elsewhere). Paths of programs (QEMU,
 * passt) are looked up in PATH, not under root. */
void check_core(const char *root, json_object *items);

/* {"items": [...], "ok": n, "warn": n, "fail": n}: the core's items and
 * every plugin's. Runs on a request thread (it reads files and runs
 * `qemu-system-x86_64 --version`). */
json_object *check_report(struct cvmm_daemon *d, const char *root);

#endif
