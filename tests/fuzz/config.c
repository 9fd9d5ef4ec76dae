/*
 * Fuzz target: the daemon's configuration reader (config_load_string in
 * core/config.c), the text a `cvmmd --check-config` reads, with the
 * plugin.<name> section of every plugin in the tree. A refused text must
 * leave a message and a zeroed config; an accepted one must have every
 * default filled in, and each plugin's section is walked the way the
 * plugins read it (lookups by name and type).
 *
 * TODO(config branch): once plugin section validation lands, run it here on
 * each accepted config (load every plugin's validation and feed it its
 * section) so that --check-config's whole path is fuzzed.
 *
 * Inputs with "@include" are skipped: an include reads other files of the
 * host (any path), which makes runs depend on the machine, and the file is
 * the administrator's own, not untrusted input.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static const char *const plugins[] = {"backend-qemu", "backend-libvirt", "net-user",
                                      "net-passt",    "net-bridge",      "net-host",
                                      "net-overlay",  NULL};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* Computed defaults must not depend on the machine running the fuzzer. */
	static const struct config_host h = {.ncpus = 16, .mem_mb = 65536};
	config_set_host_override(&h);
	return 0;
}

/* Reads a setting as the plugins' host API does (cfg_string, cfg_int, ...). */
static void walk(const config_setting_t *s, int depth)
{
	if (!s || depth > 16)
		return;
	(void)config_setting_name(s);
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_STRING:
		CHECK(config_setting_get_string(s) != NULL);
		break;
	case CONFIG_TYPE_INT:
		(void)config_setting_get_int(s);
		break;
	case CONFIG_TYPE_INT64:
		(void)config_setting_get_int64(s);
		break;
	case CONFIG_TYPE_FLOAT:
		(void)config_setting_get_float(s);
		break;
	case CONFIG_TYPE_BOOL:
		(void)config_setting_get_bool(s);
		break;
	case CONFIG_TYPE_GROUP:
	case CONFIG_TYPE_ARRAY:
	case CONFIG_TYPE_LIST:
		for (int i = 0; i < config_setting_length(s); i++)
			walk(config_setting_get_elem(s, (unsigned)i), depth + 1);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return -1;
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = 0;
	if (strstr(text, "@include")) {
		free(text);
		return -1;
	}
	struct cvmm_config c;
	char err[1024];
	err[0] = 0;
	int r = config_load_string(&c, text, err, sizeof(err));
	free(text);
	if (r < 0) {
		static const struct cvmm_config zero;
		CHECK(err[0] != 0);
		CHECK(!memcmp(&c, &zero, sizeof(zero)));
		return 0;
	}
	CHECK(c.address && c.run_path && c.data_dir && c.image_path && c.plugin_dir);
	CHECK(c.default_backend && c.net_mode && c.pm_address);
	CHECK(c.max_allocable_vcpu >= 1 && c.cid_pool_size >= 1 && c.workers >= 1);
	CHECK(c.n_plugins >= 0 && c.n_plugins <= CVMM_MAX_PLUGINS);
	for (int i = 0; i < c.n_plugins; i++)
		CHECK(c.plugins[i] && c.plugins[i][0]);
	CHECK(c.n_tokens >= 0 && c.n_tokens <= CVMM_MAX_TOKENS);
	for (int i = 0; i < c.n_pm_ranges; i++)
		CHECK(c.pm_ranges[i].from <= c.pm_ranges[i].to);
	for (int i = 0; plugins[i]; i++)
		walk(config_plugin_section(&c, plugins[i]), 0);
	for (int i = 0; i < c.n_plugins; i++)
		walk(config_plugin_section(&c, c.plugins[i]), 0);
	config_free(&c);
	return 0;
}
