/*
 * fuzz_env: the small world the core's fuzz targets run in: a temporary
 * folder on tmpfs (fsync is free there) holding an image catalog with one
 * image `tiny` whose files all exist, and a daemon configuration rooted in
 * that folder, with the real plugins of the build tree. Header-only: each
 * target is one executable.
 */
#ifndef CVMM_FUZZ_ENV_H
#define CVMM_FUZZ_ENV_H

#include "config.h"

#include <stdint.h>
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CVMM_PLUGIN_BUILD_DIR
#define CVMM_PLUGIN_BUILD_DIR "."
#endif

#define FUZZ_TOKEN "fuzz-token-0123456789"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static char fuzz_dir[] = "/dev/shm/cvmm-fuzz.XXXXXX";

static inline void fuzz_write(const char *dir, const char *name, const char *text)
{
	char *p = xasprintf("%s/%s", dir, name);
	if (write_file_atomic(p, text, strlen(text), 0644) < 0)
		abort();
	free(p);
}

/* The image catalog: <fuzz_dir>/images/tiny with kernel, initrd, disk, bios. */
static inline void fuzz_env_images(void)
{
	if (!mkdtemp(fuzz_dir))
		abort();
	char *img = xasprintf("%s/images/tiny", fuzz_dir);
	if (mkdir_p(img, 0755) < 0)
		abort();
	fuzz_write(img, "vmlinuz", "kernel");
	fuzz_write(img, "initrd.img", "initrd");
	fuzz_write(img, "disk.qcow2", "disk");
	fuzz_write(img, "bios.bin", "bios");
	fuzz_write(img, "metadata.json",
	           "{\"kernel\": \"vmlinuz\", \"initrd\": \"initrd.img\", "
	           "\"cmdline\": \"console=ttyS0\"}");
	free(img);
}

/*
 * The daemon's configuration. No VM can ever boot under it: backend-qemu's
 * binary does not exist, and max_allocable_memory_in_mb is below the
 * smallest VM (16 MiB), so every create is refused at reservation, after
 * the whole validation ran.
 */
static inline int fuzz_env_config(struct cvmm_config *cfg, const char *address)
{
	char *text = xasprintf(
	    "address = \"%s\";\n"
	    "run_path = \"%s/run\";\n"
	    "data_dir = \"%s/data\";\n"
	    "image = { path = \"%s/images\"; };\n"
	    "plugin_dir = \"%s\";\n"
	    "log_level = \"error\";\n"
	    "plugins = [ \"backend-qemu\", \"net-user\" ];\n"
	    "plugin = { backend-qemu = { accel = \"tcg\"; sandbox = false; vsock = false;\n"
	    "  qemu = \"/nonexistent/cvmm-fuzz-no-qemu\"; }; };\n"
	    "workers = 2;\n"
	    "cvm = {\n"
	    "  max_allocable_vcpu = 4;\n"
	    "  max_allocable_memory_in_mb = 8;\n"
	    "  cid_start = 1000;\n"
	    "  cid_pool_size = 16;\n"
	    "  port_mapping = { enabled = true; address = \"127.0.0.1\";\n"
	    "    range = ( { protocol = \"tcp\"; from = 10000; to = 10010; },\n"
	    "              { protocol = \"udp\"; from = 5300; to = 5400; } ); };\n"
	    "  auto_restart = { enabled = false; };\n"
	    "};\n"
	    "auth = { enabled = true; tokens = [ \"" FUZZ_TOKEN "\" ]; };\n",
	    address, fuzz_dir, fuzz_dir, fuzz_dir, CVMM_PLUGIN_BUILD_DIR);
	char err[1024] = "";
	int r = config_load_string(cfg, text, err, sizeof(err));
	free(text);
	if (r < 0)
		fprintf(stderr, "fuzz config: %s\n", err);
	return r;
}

#endif
