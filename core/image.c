/* image: see image.h. Clients name images; they never pass host paths. */
#include "image.h"
#include "util.h"
#include "vm.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static int resolve(const char *dir, const char *img, json_object *meta, const char *key, bool need,
		   char *out, size_t outlen, char *err, size_t errlen)
{
	json_object *v;
	out[0] = 0;
	if (!json_object_object_get_ex(meta, key, &v)) {
		if (need) {
			snprintf(err, errlen, "image '%s': metadata.json: %s: missing", img, key);
			return -EINVAL;
		}
		return 0;
	}
	const char *s = json_object_get_string(v);
	if (!json_object_is_type(v, json_type_string) || !*s || s[0] == '/' || strstr(s, "..")) {
		snprintf(err, errlen,
			 "image '%s': metadata.json: %s: must be a file name inside the image folder",
			 img, key);
		return -EINVAL;
	}
	if (str_printf(out, outlen, "%s/%s", dir, s) < 0) {
		snprintf(err, errlen, "image '%s': %s: path too long", img, key);
		return -ENAMETOOLONG;
	}
	if (!path_exists(out)) {
		snprintf(err, errlen, "image '%s': %s: %s does not exist", img, key, out);
		return -ENOENT;
	}
	return 0;
}

int image_parse(const char *dir, const char *name, const char *text, struct image *img, char *err,
		size_t errlen)
{
	memset(img, 0, sizeof(*img));
	json_object *o = json_tokener_parse(text);
	if (!o || !json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "image '%s': metadata.json is not a JSON object", name);
		json_object_put(o);
		return -EINVAL;
	}
	str_copy(img->name, sizeof(img->name), name);
	json_object *v;
	int r;
	if ((r = resolve(dir, name, o, "kernel", true, img->kernel, sizeof(img->kernel), err, errlen)) ||
	    (r = resolve(dir, name, o, "initrd", false, img->initrd, sizeof(img->initrd), err, errlen)) ||
	    (r = resolve(dir, name, o, "hda", false, img->hda, sizeof(img->hda), err, errlen)) ||
	    (r = resolve(dir, name, o, "bios", false, img->bios, sizeof(img->bios), err, errlen)))
		goto out;
	if (json_object_object_get_ex(o, "cmdline", &v))
		str_copy(img->cmdline, sizeof(img->cmdline), json_object_get_string(v));
out:
	json_object_put(o);
	return r;
}

int image_load(const char *image_path, const char *name, struct image *img, char *err, size_t errlen)
{
	memset(img, 0, sizeof(*img));
	if (!vm_name_valid(name)) {
		snprintf(err, errlen, "image: '%s' is not a valid image name", name);
		return -EINVAL;
	}
	char dir[600], meta[700];
	snprintf(dir, sizeof(dir), "%s/%s", image_path, name);
	snprintf(meta, sizeof(meta), "%s/metadata.json", dir);
	char *text = NULL;
	int r = read_file(meta, &text, NULL, 65536);
	if (r < 0) {
		snprintf(err, errlen, "image: no image '%s' under %s", name, image_path);
		return -ENOENT;
	}
	r = image_parse(dir, name, text, img, err, errlen);
	free(text);
	return r;
}

json_object *image_list_json(const char *image_path)
{
	json_object *a = json_object_new_array();
	DIR *d = opendir(image_path);
	if (!d)
		return a;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		struct image img;
		char err[512];
		json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(de->d_name));
		if (image_load(image_path, de->d_name, &img, err, sizeof(err)) < 0) {
			json_object_object_add(o, "error", json_object_new_string(err));
		} else {
			json_object_object_add(o, "kernel", json_object_new_string(img.kernel));
			if (img.initrd[0])
				json_object_object_add(o, "initrd", json_object_new_string(img.initrd));
			json_object_object_add(o, "cmdline", json_object_new_string(img.cmdline));
			json_object_object_add(o, "hda", json_object_new_boolean(img.hda[0] != 0));
			json_object_object_add(o, "bios", json_object_new_boolean(img.bios[0] != 0));
		}
		json_object_array_add(a, o);
	}
	closedir(d);
	return a;
}
