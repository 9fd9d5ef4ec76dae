/*
 * image: the catalog under image.path: <path>/<name>/metadata.json with
 * kernel, initrd, cmdline, optional hda (qcow2 base) and bios. Paths in the
 * metadata are relative to the image's folder and may not leave it.
 */
#ifndef CVMM_IMAGE_H
#define CVMM_IMAGE_H

#include <json-c/json.h>

struct image {
	char name[64];
	char kernel[512];
	char initrd[512];
	char cmdline[1024];
	char hda[512];
	char bios[512];
};

int image_load(const char *image_path, const char *name, struct image *img, char *err, size_t errlen);
/* The reader behind image_load: the text of <dir>/metadata.json of image
 * `name`; the files it names are checked under dir. */
int image_parse(const char *dir, const char *name, const char *text, struct image *img, char *err,
		size_t errlen);
json_object *image_list_json(const char *image_path);

#endif
