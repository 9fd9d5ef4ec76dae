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
};

struct cvmm_spec *spec_new(void);
void spec_free(struct cvmm_spec *s);

int spec_add_nic(struct cvmm_spec *s, const struct cvmm_spec_nic *nic);
int spec_add_disk(struct cvmm_spec *s, const struct cvmm_spec_disk *disk);
int spec_add_arg(struct cvmm_spec *s, const char *backend, const char *value);
int spec_append_cmdline(struct cvmm_spec *s, const char *text);

/* JSON form (field names follow the C struct). from_json reports the first
 * bad field into err. */
struct json_object *spec_to_json(const struct cvmm_launch_spec *s);
int spec_from_json(struct json_object *o, struct cvmm_spec **out, char *err, size_t errlen);

#endif
