/* image: see image.h. Clients name images; they never pass host paths. */
#include "image.h"
#include "util.h"
#include "cvmm/plugin.h"
#include "vm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
	int r = 0;
	img->firmware = CVMM_FW_NONE;
	if (json_object_object_get_ex(o, "firmware", &v)) {
		const char *fw = json_object_get_string(v);
		if (json_object_is_type(v, json_type_string) && !strcmp(fw, "bios"))
			img->firmware = CVMM_FW_BIOS;
		else if (json_object_is_type(v, json_type_string) && !strcmp(fw, "uefi"))
			img->firmware = CVMM_FW_UEFI;
		else {
			snprintf(err, errlen,
				 "image '%s': metadata.json: firmware: must be \"bios\" or \"uefi\"",
				 name);
			r = -EINVAL;
			goto out;
		}
	}
	if (json_object_object_get_ex(o, "cloud_init", &v)) {
		if (!json_object_is_type(v, json_type_boolean)) {
			snprintf(err, errlen, "image '%s': metadata.json: cloud_init: must be true or false",
				 name);
			r = -EINVAL;
			goto out;
		}
		img->cloud_init = json_object_get_boolean(v);
	}
	/* A disk with firmware boots by itself; without, the kernel is how. */
	bool need_kernel = img->firmware == CVMM_FW_NONE;
	if ((r = resolve(dir, name, o, "kernel", need_kernel, img->kernel, sizeof(img->kernel), err,
			 errlen)) ||
	    (r = resolve(dir, name, o, "initrd", false, img->initrd, sizeof(img->initrd), err, errlen)) ||
	    (r = resolve(dir, name, o, "hda", false, img->hda, sizeof(img->hda), err, errlen)) ||
	    (r = resolve(dir, name, o, "bios", false, img->bios, sizeof(img->bios), err, errlen)))
		goto out;
	if (img->firmware != CVMM_FW_NONE && !img->hda[0] && !img->kernel[0]) {
		snprintf(err, errlen, "image '%s': metadata.json: firmware without hda: nothing to boot",
			 name);
		r = -EINVAL;
		goto out;
	}
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
			if (img.firmware != CVMM_FW_NONE)
				json_object_object_add(
				    o, "firmware",
				    json_object_new_string(img.firmware == CVMM_FW_UEFI ? "uefi" : "bios"));
			if (img.cloud_init)
				json_object_object_add(o, "cloud_init", json_object_new_boolean(1));
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

/* ---- the disk a VM's overlay is based on ---- */

#define QCOW2_HEADER_LEN 104 /* version 3's; version 2's is 72 */

static uint64_t be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads the size from an open file; st is its stat. */
static int disk_size_fd(int fd, const char *path, const struct stat *st, uint64_t *size,
			bool *qcow2, char *err, size_t errlen)
{
	unsigned char h[QCOW2_HEADER_LEN];
	ssize_t n;
	while ((n = pread(fd, h, sizeof(h), 0)) < 0 && errno == EINTR)
		;
	if (n < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	*qcow2 = n >= 4 && !memcmp(h, "QFI\xfb", 4);
	if (!*qcow2) {
		*size = (uint64_t)st->st_size;
		return 0;
	}
	/* Version 2 headers end after 72 bytes; the size sits at 24 in both. */
	uint32_t version = n >= 8 ? be32(h + 4) : 0;
	if (n < 72 || (version != 2 && version != 3) || (version == 3 && n < QCOW2_HEADER_LEN)) {
		snprintf(err, errlen, "%s: not a valid qcow2 file (version %u, %zd header bytes)",
			 path, version, n);
		return -EINVAL;
	}
	*size = be64(h + 24);
	return 0;
}

int image_disk_size(const char *path, uint64_t *size, bool *qcow2, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	int r = fstat(fd, &st) < 0 ? -errno : 0;
	if (r < 0)
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
	else
		r = disk_size_fd(fd, path, &st, size, qcow2, err, errlen);
	close(fd);
	return r;
}

int image_base_identify(const struct image *img, struct image_base_id *id, char *err, size_t errlen)
{
	memset(id, 0, sizeof(*id));
	if (!img->hda[0])
		return 0;
	/* One open file for stat and header: both describe the same file even
	 * if it is being replaced right now. */
	int fd = open(img->hda, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "image '%s': hda: %s: %s", img->name, img->hda, strerror(e));
		return -e;
	}
	struct stat st;
	char derr[512];
	bool qcow2;
	int r = fstat(fd, &st) < 0 ? -errno : 0;
	if (r < 0)
		snprintf(derr, sizeof(derr), "%s: %s", img->hda, strerror(-r));
	else
		r = disk_size_fd(fd, img->hda, &st, &id->virtual_size, &qcow2, derr, sizeof(derr));
	close(fd);
	if (r < 0) {
		snprintf(err, errlen, "image '%s': hda: %s", img->name, derr);
		return r;
	}
	str_copy(id->path, sizeof(id->path), img->hda);
	id->dev = (uint64_t)st.st_dev;
	id->ino = (uint64_t)st.st_ino;
	id->size = (uint64_t)st.st_size;
	id->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	id->recorded = true;
	return 0;
}

static void fmt_time_ns(int64_t ns, char *out, size_t len)
{
	time_t s = (time_t)(ns / 1000000000);
	struct tm tm;
	char day[32] = "?";
	if (gmtime_r(&s, &tm))
		strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, len, "%s.%09lldZ", day, (long long)(ns % 1000000000));
}

/* Appends ", what a -> b" (the first without the comma) to buf. */
static void add_change(char *buf, size_t len, const char *what, const char *a, const char *b)
{
	size_t l = strlen(buf);
	if (l < len)
		snprintf(buf + l, len - l, "%s%s %s -> %s", l ? ", " : "", what, a, b);
}

static void add_change_u64(char *buf, size_t len, const char *what, uint64_t a, uint64_t b)
{
	char sa[24], sb[24];
	snprintf(sa, sizeof(sa), "%llu", (unsigned long long)a);
	snprintf(sb, sizeof(sb), "%llu", (unsigned long long)b);
	add_change(buf, len, what, sa, sb);
}

int image_check_base(const struct image *img, const struct image_base_id *rec, const char *vm_name,
		     char *err, size_t errlen)
{
	static const char hint[] =
	    "; the VM's disk is an overlay on that file: restore the original file, or create "
	    "the VM again";
	if (!rec || !rec->recorded)
		return 0;
	if (!img->hda[0]) {
		snprintf(err, errlen,
			 "image '%s' no longer has a disk (hda); VM '%s' was created on %s%s",
			 img->name, vm_name, rec->path, hint);
		return -ESTALE;
	}
	struct image_base_id now;
	int r = image_base_identify(img, &now, err, errlen);
	if (r < 0)
		return r;
	bool replaced = now.dev != rec->dev || now.ino != rec->ino;
	char changes[512] = "";
	if (now.dev != rec->dev)
		add_change_u64(changes, sizeof(changes), "device", rec->dev, now.dev);
	if (now.ino != rec->ino)
		add_change_u64(changes, sizeof(changes), "inode", rec->ino, now.ino);
	if (now.size != rec->size)
		add_change_u64(changes, sizeof(changes), "size", rec->size, now.size);
	if (now.virtual_size != rec->virtual_size)
		add_change_u64(changes, sizeof(changes), "virtual size", rec->virtual_size,
			       now.virtual_size);
	if (now.mtime_ns != rec->mtime_ns) {
		char a[48], b[48];
		fmt_time_ns(rec->mtime_ns, a, sizeof(a));
		fmt_time_ns(now.mtime_ns, b, sizeof(b));
		add_change(changes, sizeof(changes), "mtime", a, b);
	}
	if (!changes[0])
		return 0; /* the same file, perhaps reached by another path now */
	snprintf(err, errlen, "image '%s': disk %s was %s since VM '%s' was created (%s)%s",
		 img->name, now.path, replaced ? "replaced" : "modified", vm_name, changes, hint);
	return -ESTALE;
}

/* ---- import and removal ---- */

static void chomp(char *s)
{
	size_t l = strlen(s);
	while (l && (s[l - 1] == '\n' || s[l - 1] == ' '))
		s[--l] = 0;
}

int image_import(const char *image_path, const char *name, const char *file, const char *firmware,
		 bool cloud_init, char *err, size_t errlen)
{
	if (!vm_name_valid(name)) {
		snprintf(err, errlen, "image: '%s' is not a valid image name", name);
		return -EINVAL;
	}
	if (!firmware || !*firmware)
		firmware = "bios"; /* a disk without a kernel boots through firmware */
	if (strcmp(firmware, "bios") && strcmp(firmware, "uefi")) {
		snprintf(err, errlen, "image: firmware: must be \"bios\" or \"uefi\", got '%s'", firmware);
		return -EINVAL;
	}
	struct stat st;
	if (!file || file[0] != '/') {
		snprintf(err, errlen, "image '%s': file: must be an absolute path on the host", name);
		return -EINVAL;
	}
	if (stat(file, &st) < 0) {
		int e = errno;
		snprintf(err, errlen, "image '%s': %s: %s", name, file, strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "image '%s': %s: not a regular file", name, file);
		return -EINVAL;
	}
	char dir[600];
	snprintf(dir, sizeof(dir), "%s/%s", image_path, name);
	if (path_exists(dir)) {
		snprintf(err, errlen, "image '%s' exists already (cvmm image remove %s first)", name,
			 name);
		return -EEXIST;
	}
	/* The format as qemu-img probes it, never as the name says: a file
	 * called .qcow2 may be raw, and a raw file may hold a qcow2 header. */
	char out[8192];
	char *info[] = {"qemu-img", "info", "--output=json", "--", (char *)file, NULL};
	int rc = run_capture(info, true, out, sizeof(out));
	if (rc != 0) {
		chomp(out);
		snprintf(err, errlen, "image '%s': qemu-img info %s: %s", name, file,
			 out[0] ? out : strerror(rc < 0 ? -rc : EIO));
		return rc < 0 ? rc : -EINVAL;
	}
	json_object *o = json_tokener_parse(out), *v;
	char format[32] = "";
	bool backing = false;
	if (o && json_object_object_get_ex(o, "format", &v))
		str_copy(format, sizeof(format), json_object_get_string(v));
	if (o && (json_object_object_get_ex(o, "backing-filename", &v) ||
		  json_object_object_get_ex(o, "full-backing-filename", &v)))
		backing = true;
	json_object_put(o);
	if (strcmp(format, "qcow2") && strcmp(format, "raw")) {
		snprintf(err, errlen, "image '%s': %s is %s, not qcow2 or raw", name, file,
			 format[0] ? format : "of a format qemu-img does not name");
		return -EINVAL;
	}
	if (backing) {
		snprintf(err, errlen,
			 "image '%s': %s has a backing file: flatten it first (qemu-img convert)", name,
			 file);
		return -EINVAL;
	}
	if (!strcmp(format, "raw")) {
		/* Anything is "raw" to qemu-img: ask for what a disk that boots
		 * by itself has, whole sectors and an MBR (or GPT's protective
		 * MBR) boot signature. */
		unsigned char sig[2] = {0, 0};
		int fd = open(file, O_RDONLY | O_CLOEXEC);
		bool ok = fd >= 0 && st.st_size >= 512 && st.st_size % 512 == 0 &&
			  pread(fd, sig, 2, 510) == 2 && sig[0] == 0x55 && sig[1] == 0xaa;
		if (fd >= 0)
			close(fd);
		if (!ok) {
			snprintf(err, errlen,
				 "image '%s': %s is not qcow2, and not a raw disk either (no whole "
				 "512-byte sectors with a partition table's boot signature)",
				 name, file);
			return -EINVAL;
		}
	}
	char tmp[640], hda[700], meta[700];
	snprintf(tmp, sizeof(tmp), "%s/.import-%s", image_path, name);
	rm_rf(tmp); /* a crashed import's leftovers */
	if ((rc = mkdir_p(tmp, 0755)) < 0) {
		snprintf(err, errlen, "image '%s': %s: %s", name, tmp, strerror(-rc));
		return rc;
	}
	/* Both formats become a standalone qcow2, the base every VM overlays:
	 * a raw file converted (sparse), a qcow2 rewritten (compacted, and no
	 * feature of the source file carried over). */
	snprintf(hda, sizeof(hda), "%s/hda.qcow2", tmp);
	char *conv[] = {"qemu-img", "convert", "-f",          format, "-O", "qcow2",
			"--",       (char *)file, hda,         NULL};
	rc = run_capture(conv, true, out, sizeof(out));
	if (rc != 0) {
		chomp(out);
		snprintf(err, errlen, "image '%s': qemu-img convert %s: %s", name, file,
			 out[0] ? out : strerror(rc < 0 ? -rc : EIO));
		rm_rf(tmp);
		return rc < 0 ? rc : -EIO;
	}
	char text[256];
	int tl = snprintf(text, sizeof(text),
			  "{\"hda\": \"hda.qcow2\", \"firmware\": \"%s\", \"cloud_init\": %s}\n",
			  firmware, cloud_init ? "true" : "false");
	snprintf(meta, sizeof(meta), "%s/metadata.json", tmp);
	if ((rc = write_file_atomic(meta, text, (size_t)tl, 0644)) < 0 ||
	    (rc = rename(tmp, dir) < 0 ? -errno : 0) < 0) {
		snprintf(err, errlen, "image '%s': %s: %s", name, dir, strerror(-rc));
		rm_rf(tmp);
		return rc == -ENOTEMPTY ? -EEXIST : rc;
	}
	return 0;
}

int image_remove(const char *image_path, const char *name, char *err, size_t errlen)
{
	if (!vm_name_valid(name)) {
		snprintf(err, errlen, "image: '%s' is not a valid image name", name);
		return -EINVAL;
	}
	char dir[600], trash[700];
	snprintf(dir, sizeof(dir), "%s/%s", image_path, name);
	snprintf(trash, sizeof(trash), "%s/.removed-%s", image_path, name);
	rm_rf(trash);
	/* Renamed first: a reader sees the whole image or none of it. */
	if (rename(dir, trash) < 0) {
		int e = errno;
		snprintf(err, errlen, "image: no image '%s' under %s%s%s", name, image_path,
			 e == ENOENT ? "" : ": ", e == ENOENT ? "" : strerror(e));
		return -e;
	}
	return rm_rf(trash);
}

int image_uefi_vars(const char *vm_dir, char *path, size_t len, char *err, size_t errlen)
{
	if (str_printf(path, len, "%s/" IMAGE_UEFI_VARS_NAME, vm_dir) < 0)
		return -ENAMETOOLONG;
	if (path_exists(path))
		return 0; /* the VM's own store: what the guest wrote in it stays */
	char *text = NULL;
	size_t n = 0;
	int r = read_file(IMAGE_OVMF_VARS, &text, &n, 64 << 20);
	if (r < 0) {
		snprintf(err, errlen, "UEFI variable store template %s: %s (package ovmf)",
			 IMAGE_OVMF_VARS, strerror(-r));
		return r;
	}
	r = write_file_atomic(path, text, n, 0600);
	free(text);
	if (r < 0)
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
	return r;
}
