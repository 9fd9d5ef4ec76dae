/*
 * sysconfig: the guest's config document, cvmm's counterpart of dstack's
 * .sys-config.json (which its VMM writes into the guest's host share at
 * every start). cvmm hands it to the guest as the fw_cfg file
 * SYSCONFIG_FW_CFG, which a Linux guest reads at
 * /sys/firmware/qemu_fw_cfg/by_name/opt/cvmm/sys-config.json/raw (module
 * qemu_fw_cfg); both backends get the two arguments "-fw_cfg
 * name=...,file=<run_dir>/sys-config.json".
 *
 * Several plugins fill it (kms: kms_urls, app_id; gateway: gateway_urls,
 * app_url, base_domain) and one of them owns it: the first of them in the
 * configuration's "plugins" list. At PRE_START the owner (hook priority
 * SYSCONFIG_PRIO_OWNER) writes the document afresh with the VM's identity
 * and its own keys and adds the fw_cfg entry to the spec; each other one
 * (SYSCONFIG_PRIO_MERGE, later) merges its keys into it. The hooks of one
 * VM run one after the other in its job, so nothing else writes the file
 * meanwhile. A dry run (CVMM_EV_PLAN) only adds the entry.
 *
 * Document: {"vm_id", "instance_id" (the id without dashes), "name",
 * "host_api": "virtio-serial:org.cvmm.channel.0", and the plugins' keys}.
 */
#ifndef CVMM_SYSCONFIG_H
#define CVMM_SYSCONFIG_H

#include <cvmm/plugin.h>
#include <json-c/json.h>

#define SYSCONFIG_FW_CFG "opt/cvmm/sys-config.json"
#define SYSCONFIG_FILE "sys-config.json"
#define SYSCONFIG_PRIO_OWNER 40
#define SYSCONFIG_PRIO_MERGE 60

/* Whether plugin `me` owns the document: it comes first among `members`
 * (NULL-terminated) in the "plugins" list (1), or not (0). */
int sysconfig_is_owner(const struct cvmm_host_api *host, cvmm_plugin *self, const char *me,
		       const char *const *members);

/* At PRE_START or PLAN: the owner writes the document with the VM's
 * identity and the keys of part (not taken) and adds the fw_cfg entry; a
 * merger adds part's keys to the written document. 0 or a negative errno
 * (reported through host->error). */
int sysconfig_put(const struct cvmm_host_api *host, cvmm_plugin *self, cvmm_vm *vm,
		  cvmm_spec *spec, uint32_t event, int owner, json_object *part);

#endif
