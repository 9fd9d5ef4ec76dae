/*
 * Fuzz target: the image-metadata reader (image_parse in core/image.c, the
 * part of image_load after reading <image>/metadata.json). Input: the
 * metadata text, for an image folder where vmlinuz, initrd.img, disk.qcow2
 * and bios.bin exist. Whatever it accepts must name only files inside the
 * image's folder (no absolute path, no "..") and fit its buffers.
 */
#include "fuzz_env.h"
#include "image.h"

static char dir[600];
static size_t dir_len;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_env_images();
	snprintf(dir, sizeof(dir), "%s/images/tiny", fuzz_dir);
	dir_len = strlen(dir);
	return 0;
}

static void inside(const char *path, bool required)
{
	if (!path[0]) {
		CHECK(!required);
		return;
	}
	CHECK(!strncmp(path, dir, dir_len) && path[dir_len] == '/');
	CHECK(!strstr(path + dir_len, ".."));
	CHECK(path_exists(path));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return -1;
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = 0;
	struct image img;
	char err[512];
	err[0] = 0;
	int r = image_parse(dir, "tiny", text, &img, err, sizeof(err));
	free(text);
	if (r < 0) {
		CHECK(err[0]);
		return 0;
	}
	CHECK(!strcmp(img.name, "tiny"));
	inside(img.kernel, true);
	inside(img.initrd, false);
	inside(img.hda, false);
	inside(img.bios, false);
	CHECK(strlen(img.cmdline) < sizeof(img.cmdline));
	return 0;
}
