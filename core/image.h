/*
 * image: the catalog under image.path: <path>/<name>/metadata.json with
 * kernel, initrd, cmdline, optional hda (qcow2 base) and bios; or a disk
 * that boots by itself ("firmware": "bios"|"uefi", kernel then optional).
 * Paths in the metadata are relative to the image's folder and may not leave
 * it. Also the importer (image_import) and remover of image folders.
 */
#ifndef CVMM_IMAGE_H
#define CVMM_IMAGE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

struct image {
	char name[64];
	char kernel[512];
	char initrd[512];
	char cmdline[1024];
	char hda[512];
	char bios[512];
	int firmware;    /* CVMM_FW_* (plugin.h) */
	bool cloud_init; /* "cloud_init": true: every VM of it gets a NoCloud seed */
};

int image_load(const char *image_path, const char *name, struct image *img, char *err, size_t errlen);
/* The reader behind image_load: the text of <dir>/metadata.json of image
 * `name`; the files it names are checked under dir. */
int image_parse(const char *dir, const char *name, const char *text, struct image *img, char *err,
		size_t errlen);
json_object *image_list_json(const char *image_path);

/* The virtual size of a disk file without running qemu-img: a qcow2's
 * header says it, any other file is taken as raw (its length). qcow2 is set
 * to whether it is a qcow2. Cheap (one stat, one 104-byte read). */
int image_disk_size(const char *path, uint64_t *size, bool *qcow2, char *err, size_t errlen);

/* What a VM's disk overlay depends on: the image's hda file, which the
 * overlay names by path only. Recorded when the VM is created (or its disk
 * first made), compared before each start. */
struct image_base_id {
	bool recorded;
	char path[512];
	uint64_t dev, ino, size, virtual_size;
	int64_t mtime_ns;
};
int image_base_identify(const struct image *img, struct image_base_id *id, char *err, size_t errlen);
/* 0 when img's hda is still the file recorded; -ESTALE with what changed
 * ("image 'tiny': disk ... was replaced since VM 'x' was created (inode A ->
 * B, ...)") when it was replaced, modified or dropped; another -errno when
 * it cannot be examined. Nothing recorded: 0. */
int image_check_base(const struct image *img, const struct image_base_id *recorded,
		     const char *vm_name, char *err, size_t errlen);

/* Makes image `name` under image_path from the host file `file` (qcow2 or
 * raw, as qemu-img says, never the name): hda.qcow2 (a qcow2 copied, a raw
 * converted; one with a backing file refused) and a metadata.json with
 * firmware ("bios" or "uefi") and cloud_init. Blocks (copies the file):
 * call it on a worker or request thread. -EEXIST if the name is taken. */
int image_import(const char *image_path, const char *name, const char *file, const char *firmware,
		 bool cloud_init, char *err, size_t errlen);
/* UEFI firmware (Debian's ovmf package): the code, shared read-only, and the
 * variable store every VM gets a copy of, made at its definition. */
#define IMAGE_OVMF_CODE "/usr/share/OVMF/OVMF_CODE_4M.fd"
#define IMAGE_OVMF_VARS "/usr/share/OVMF/OVMF_VARS_4M.fd"
#define IMAGE_UEFI_VARS_NAME "uefi-vars.fd"
/* The VM's variable store in vm_dir (path), copied from the template when
 * missing. */
int image_uefi_vars(const char *vm_dir, char *path, size_t len, char *err, size_t errlen);
/* Removes image `name`'s folder; the caller checks that no VM uses it. */
int image_remove(const char *image_path, const char *name, char *err, size_t errlen);

#endif
