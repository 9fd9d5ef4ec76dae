/*
 * spec: the launch spec being built for one boot (struct cvmm_spec, opaque to
 * plugins), its builders behind the host API, and its JSON form, used by the
 * golden-file tests and by `cvmm info`.
 */
#ifndef CVMM_SPEC_H
#define CVMM_SPEC_H

#include <cvmm/plugin.h>
#include <json-c/json.h>

struct cvmm_spec {
	struct cvmm_launch_spec pub; /* what backends read */
	struct cvmm_spec_disk **disks;
	struct cvmm_spec_nic **nics;
	struct cvmm_port_map ***nic_ports; /* per NIC, owned copies */
	struct cvmm_spec_arg **args;
	/* 1.2 */
	struct cvmm_spec_hostdev **hostdevs;
	struct cvmm_spec_numa **numa;
	struct cvmm_spec_pin **pins;
	struct cvmm_spec_pcie **pcie;
	struct cvmm_spec_confidential *cc; /* 1.2 (trust) */
};

struct cvmm_spec *spec_new(void);
void spec_free(struct cvmm_spec *s);

int spec_add_nic(struct cvmm_spec *s, const struct cvmm_spec_nic *nic);
int spec_add_disk(struct cvmm_spec *s, const struct cvmm_spec_disk *disk);
int spec_add_arg(struct cvmm_spec *s, const char *backend, const char *value);
int spec_append_cmdline(struct cvmm_spec *s, const char *text);
/* ABI 1.2. Each checks what it can on its own (syntax, unique ids, a PCIe
 * parent defined before its child, vCPUs that exist, cells that do not
 * overlap); what needs the whole spec (cells covering every vCPU, a device's
 * bus naming a port, which may come later) is spec_check's. */
int spec_add_hostdev(struct cvmm_spec *s, const struct cvmm_spec_hostdev *dev);
int spec_set_topology(struct cvmm_spec *s, uint32_t sockets, uint32_t cores, uint32_t threads);
int spec_add_numa(struct cvmm_spec *s, const struct cvmm_spec_numa *cell);
int spec_add_pin(struct cvmm_spec *s, const struct cvmm_spec_pin *pin);
int spec_set_emulator_cpus(struct cvmm_spec *s, const char *host_cpus);
int spec_add_pcie(struct cvmm_spec *s, const struct cvmm_spec_pcie *elem);
/* 1.2 (trust): a confidential guest; a second call replaces the first. */
int spec_set_confidential(struct cvmm_spec *s, const struct cvmm_spec_confidential *cc);
/* The whole-spec rules (plugins/common/spec_check.h), once every plugin has
 * added its part: 0 or -EINVAL with the reason in err. Both renderers apply
 * them too. */
int spec_check(const struct cvmm_spec *s, char *err, size_t errlen);

/* JSON form (field names follow the C struct). from_json reports the first
 * bad field into err. */
struct json_object *spec_to_json(const struct cvmm_launch_spec *s);
int spec_from_json(struct json_object *o, struct cvmm_spec **out, char *err, size_t errlen);

#endif
