/*
 * render_xml: the libvirt domain XML for a launch spec. A pure function of
 * the spec and the backend's options, so that golden files pin it down
 * (tests/fixtures/libvirt-xml), plus the two identity rules the backend
 * applies to domains: the name derived from the VM's, and the metadata
 * element that marks a domain as cvmm's.
 */
#ifndef CVMM_LIBVIRT_RENDER_XML_H
#define CVMM_LIBVIRT_RENDER_XML_H

#include <cvmm/plugin.h>

/* The namespace of the metadata element that marks a domain as cvmm's. */
#define LV_XMLNS "https://cvmm.dev/xmlns/1"
#define LV_DEFAULT_PREFIX "cvmm-"

struct lv_opts {
	const char *type;        /* domain type: "qemu" (TCG) or "kvm" */
	const char *emulator;    /* <emulator>; NULL or "" = libvirt's default */
	const char *name_prefix; /* prepended to the VM's name: "cvmm-" */
	const char *dac_label;   /* static DAC label "+UID:+GID", no relabelling;
	                          * NULL or "" = libvirt's default (dynamic) labels */
	int vsock;               /* render <vsock> when the spec has a CID */
};

/* Renders spec into *xml (malloc'd, NUL-terminated). Returns 0, or -EINVAL
 * with the reason in err (a value that cannot be expressed safely). */
int lv_render(const struct cvmm_launch_spec *spec, const struct lv_opts *o, char **xml, char *err,
              size_t errlen);

/* The domain name of VM name under prefix (NULL: the default prefix). */
void lv_domain_name(const char *prefix, const char *name, char *out, size_t len);

/* 1 if xml, the text virDomainGetMetadata() returns for LV_XMLNS, is the
 * element lv_render wrote for VM uuid; 0 if not. */
int lv_metadata_is_ours(const char *xml, const char *uuid);

/* The spec's confidential part, NULL when none (or an older spec), and
 * its libvirt launchSecurity type. */
const struct cvmm_spec_confidential *lv_confidential(const struct cvmm_launch_spec *s);
const char *lv_cc_type(const struct cvmm_spec_confidential *cc);

/* Whether libvirt's domain capabilities (virConnectGetDomainCapabilities'
 * XML) say it can launch confidential guests of launchSecurity type
 * `type` ("tdx", "sev-snp", "sev"): 1, or 0 with what they say in why.
 * Read: <features><launchSecurity supported='yes'> with an
 * <enum name='sectype'> listing the type (newer libvirt), else the
 * per-type element <sev supported='yes'/> (libvirt 4.5+), <sev-snp
 * .../> or <tdx .../>. A libvirt that has none of these for the type
 * (libvirt 9.0 has only <sev>) cannot launch it. */
int lv_domcaps_cc(const char *xml, const char *type, char *why, size_t len);

#endif
