/*
 * Unit tests of core/image.c's disk part: the virtual size read from qcow2
 * headers (made by the real qemu-img, and by hand for the edge cases) and
 * raw files, and the base identity: a replaced, modified or dropped disk
 * file is refused with the image, the VM and what changed named; the same
 * file passes.
 */
#include "image.h"
#include "cvmm/plugin.h"
#include "util.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/cvmm-test-image.XXXXXX";
static char images[600];

static int write_bytes(const char *path, const void *data, size_t len)
{
	return write_file_atomic(path, data, len, 0644);
}

static int write_text(const char *path, const char *text)
{
	return write_bytes(path, text, strlen(text));
}

/* A qcow2 header by hand: magic, version, size at 24 (big-endian), len bytes. */
static int write_qcow2_header(const char *path, uint32_t version, uint64_t size, size_t len)
{
	unsigned char h[512] = {'Q', 'F', 'I', 0xfb};
	for (int i = 0; i < 4; i++)
		h[4 + i] = (unsigned char)(version >> (24 - 8 * i));
	for (int i = 0; i < 8; i++)
		h[24 + i] = (unsigned char)(size >> (56 - 8 * i));
	return write_bytes(path, h, len);
}

static int qemu_img_create(const char *path, const char *size)
{
	char *cmd = xasprintf("qemu-img create -q -f qcow2 '%s' %s", path, size);
	int r = system(cmd);
	free(cmd);
	return r;
}

/* An image folder <images>/<name> with a kernel and, if hda, that disk. */
static void make_image(const char *name, const char *hda)
{
	char *dir = xasprintf("%s/%s", images, name);
	char *k = xasprintf("%s/vmlinuz", dir), *m = xasprintf("%s/metadata.json", dir);
	char *meta = hda ? xasprintf("{\"kernel\": \"vmlinuz\", \"hda\": \"%s\"}", hda)
	                 : xstrdup("{\"kernel\": \"vmlinuz\"}");
	CU_ASSERT_EQUAL_FATAL(mkdir_p(dir, 0755), 0);
	CU_ASSERT_EQUAL_FATAL(write_text(k, "kernel"), 0);
	CU_ASSERT_EQUAL_FATAL(write_text(m, meta), 0);
	free(dir);
	free(k);
	free(m);
	free(meta);
}

static int suite_init(void)
{
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(images, sizeof(images), "%s/images", tmpdir);
	return mkdir_p(images, 0755);
}

static int suite_clean(void)
{
	return rm_rf(tmpdir);
}

static void test_disk_size(void)
{
	char path[700], err[512] = "";
	uint64_t size = 1;
	bool qcow2 = false;

	/* What qemu-img itself writes: 2.5 GiB. */
	snprintf(path, sizeof(path), "%s/real.qcow2", tmpdir);
	CU_ASSERT_EQUAL_FATAL(qemu_img_create(path, "2560M"), 0);
	CU_ASSERT_EQUAL(image_disk_size(path, &size, &qcow2, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(size, 2560ull << 20);
	CU_ASSERT_TRUE(qcow2);

	/* Version 2's shorter header; a size above 4 GiB (all 8 bytes read). */
	snprintf(path, sizeof(path), "%s/v2.qcow2", tmpdir);
	CU_ASSERT_EQUAL_FATAL(write_qcow2_header(path, 2, 0x123456789aull, 72), 0);
	CU_ASSERT_EQUAL(image_disk_size(path, &size, &qcow2, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(size, 0x123456789aull);
	CU_ASSERT_TRUE(qcow2);

	/* Raw: the file's length, whatever it holds. */
	snprintf(path, sizeof(path), "%s/disk.raw", tmpdir);
	char raw[12345];
	memset(raw, 0xab, sizeof(raw));
	CU_ASSERT_EQUAL_FATAL(write_bytes(path, raw, sizeof(raw)), 0);
	CU_ASSERT_EQUAL(image_disk_size(path, &size, &qcow2, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(size, 12345);
	CU_ASSERT_FALSE(qcow2);
	CU_ASSERT_EQUAL_FATAL(write_bytes(path, "", 0), 0);
	CU_ASSERT_EQUAL(image_disk_size(path, &size, &qcow2, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(size, 0);

	/* A qcow2 magic with a broken header is an error, not a raw disk. */
	snprintf(path, sizeof(path), "%s/short.qcow2", tmpdir);
	CU_ASSERT_EQUAL_FATAL(write_qcow2_header(path, 3, 1 << 30, 40), 0);
	CU_ASSERT_EQUAL(image_disk_size(path, &size, &qcow2, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "short.qcow2: not a valid qcow2 file"));
	CU_ASSERT_EQUAL_FATAL(write_qcow2_header(path, 3, 1 << 30, 80), 0); /* v3 needs 104 */
	CU_ASSERT_EQUAL(image_disk_size(path, &size, &qcow2, err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL_FATAL(write_qcow2_header(path, 9, 1 << 30, 104), 0);
	CU_ASSERT_EQUAL(image_disk_size(path, &size, &qcow2, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "version 9"));

	snprintf(path, sizeof(path), "%s/missing.qcow2", tmpdir);
	CU_ASSERT_EQUAL(image_disk_size(path, &size, &qcow2, err, sizeof(err)), -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "missing.qcow2"));
}

static void test_base_identity(void)
{
	struct image img;
	struct image_base_id rec, none;
	char err[1024] = "", hda[700];
	make_image("nodisk", NULL);
	CU_ASSERT_EQUAL_FATAL(image_load(images, "nodisk", &img, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(image_base_identify(&img, &none, err, sizeof(err)), 0);
	CU_ASSERT_FALSE(none.recorded); /* nothing to depend on */

	snprintf(hda, sizeof(hda), "%s/base/hda.qcow2", images);
	make_image("base", "hda.qcow2");
	CU_ASSERT_EQUAL_FATAL(qemu_img_create(hda, "64M"), 0);
	CU_ASSERT_EQUAL_FATAL(image_load(images, "base", &img, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(image_base_identify(&img, &rec, err, sizeof(err)), 0);
	struct stat st;
	CU_ASSERT_EQUAL_FATAL(stat(hda, &st), 0);
	CU_ASSERT_TRUE(rec.recorded);
	CU_ASSERT_STRING_EQUAL(rec.path, hda);
	CU_ASSERT_EQUAL(rec.ino, st.st_ino);
	CU_ASSERT_EQUAL(rec.dev, st.st_dev);
	CU_ASSERT_EQUAL(rec.size, (uint64_t)st.st_size);
	CU_ASSERT_EQUAL(rec.virtual_size, 64ull << 20);
	CU_ASSERT_EQUAL(rec.mtime_ns, st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec);

	/* Unchanged, and nothing recorded: both pass. */
	CU_ASSERT_EQUAL(image_check_base(&img, &rec, "web1", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(image_check_base(&img, &none, "web1", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(image_check_base(&img, NULL, "web1", err, sizeof(err)), 0);

	/* Touched in place: same inode, the mtime says it may have changed. */
	struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = 1700000000, .tv_nsec = 5}};
	CU_ASSERT_EQUAL_FATAL(utimensat(AT_FDCWD, hda, ts, 0), 0);
	err[0] = 0;
	CU_ASSERT_EQUAL(image_check_base(&img, &rec, "web1", err, sizeof(err)), -ESTALE);
	printf("\n    modified: %s\n", err);
	char *want = xasprintf("image 'base': disk %s was modified since VM 'web1' was created "
	                       "(mtime ",
	                       hda);
	CU_ASSERT_EQUAL(strncmp(err, want, strlen(want)), 0);
	free(want);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "-> 2023-11-14T22:13:20.000000005Z)"));
	CU_ASSERT_PTR_NULL(strstr(err, "inode"));

	/* Replaced by another file of the same name (a new image version):
	 * what a copy or an `mv new hda.qcow2` does. */
	CU_ASSERT_EQUAL_FATAL(image_base_identify(&img, &rec, err, sizeof(err)), 0);
	char next[720];
	snprintf(next, sizeof(next), "%s.new", hda);
	CU_ASSERT_EQUAL_FATAL(qemu_img_create(next, "128M"), 0);
	CU_ASSERT_EQUAL_FATAL(rename(next, hda), 0);
	CU_ASSERT_EQUAL_FATAL(stat(hda, &st), 0);
	err[0] = 0;
	CU_ASSERT_EQUAL(image_check_base(&img, &rec, "web1", err, sizeof(err)), -ESTALE);
	printf("    replaced: %s\n", err);
	want = xasprintf("image 'base': disk %s was replaced since VM 'web1' was created (inode "
	                 "%llu -> %llu, ",
	                 hda, (unsigned long long)rec.ino, (unsigned long long)st.st_ino);
	CU_ASSERT_EQUAL(strncmp(err, want, strlen(want)), 0);
	free(want);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "virtual size 67108864 -> 134217728"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "restore the original file, or create the VM again"));

	/* The image no longer names a disk. */
	CU_ASSERT_EQUAL_FATAL(image_base_identify(&img, &rec, err, sizeof(err)), 0);
	char *meta = xasprintf("%s/base/metadata.json", images);
	CU_ASSERT_EQUAL_FATAL(write_text(meta, "{\"kernel\": \"vmlinuz\"}"), 0);
	free(meta);
	CU_ASSERT_EQUAL_FATAL(image_load(images, "base", &img, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(image_check_base(&img, &rec, "web1", err, sizeof(err)), -ESTALE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "image 'base' no longer has a disk (hda); VM 'web1' "
	                                   "was created on "));

	/* A file that cannot be read is said so, not taken as changed. */
	struct image gone = img;
	snprintf(gone.hda, sizeof(gone.hda), "%s/base/vanished.qcow2", images);
	CU_ASSERT_EQUAL(image_check_base(&gone, &rec, "web1", err, sizeof(err)), -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "vanished.qcow2"));
}

/* Firmware and cloud_init in metadata.json: a disk with firmware needs no
 * kernel; bad values are refused naming the key. */
static void test_firmware(void)
{
	char dir[700], err[512];
	struct image img;
	snprintf(dir, sizeof(dir), "%s/fw", images);
	CU_ASSERT_EQUAL_FATAL(mkdir_p(dir, 0755), 0);
	char *hda = xasprintf("%s/hda.qcow2", dir);
	CU_ASSERT_EQUAL_FATAL(qemu_img_create(hda, "1M"), 0);
	CU_ASSERT_EQUAL(image_parse(dir, "fw", "{\"hda\": \"hda.qcow2\", \"firmware\": \"uefi\", "
					    "\"cloud_init\": true}",
				    &img, err, sizeof(err)),
			0);
	CU_ASSERT_EQUAL(img.firmware, CVMM_FW_UEFI);
	CU_ASSERT(img.cloud_init);
	CU_ASSERT_STRING_EQUAL(img.kernel, "");
	CU_ASSERT_EQUAL(image_parse(dir, "fw", "{\"hda\": \"hda.qcow2\", \"firmware\": \"bios\"}",
				    &img, err, sizeof(err)),
			0);
	CU_ASSERT_EQUAL(img.firmware, CVMM_FW_BIOS);
	CU_ASSERT(!img.cloud_init);
	/* Without firmware the kernel is how it boots: required. */
	CU_ASSERT_EQUAL(image_parse(dir, "fw", "{\"hda\": \"hda.qcow2\"}", &img, err, sizeof(err)),
			-EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "kernel: missing"));
	CU_ASSERT_EQUAL(image_parse(dir, "fw", "{\"hda\": \"hda.qcow2\", \"firmware\": \"efi\"}",
				    &img, err, sizeof(err)),
			-EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "firmware: must be"));
	CU_ASSERT_EQUAL(image_parse(dir, "fw", "{\"firmware\": \"bios\"}", &img, err, sizeof(err)),
			-EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "nothing to boot"));
	CU_ASSERT_EQUAL(image_parse(dir, "fw", "{\"hda\": \"hda.qcow2\", \"firmware\": \"bios\", "
					    "\"cloud_init\": \"yes\"}",
				    &img, err, sizeof(err)),
			-EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "cloud_init: must be"));
	free(hda);
}

/* Import: the format from qemu-img, never the name; a raw file must look
 * like a disk; the name must be free; remove takes the folder away. */
static void test_import_remove(void)
{
	char err[1024], path[700], src[700];
	snprintf(src, sizeof(src), "%s/src.raw", tmpdir);
	/* A "raw" disk: whole sectors with a boot signature. */
	unsigned char sector[1024] = {0};
	sector[510] = 0x55;
	sector[511] = 0xaa;
	CU_ASSERT_EQUAL_FATAL(write_bytes(src, sector, sizeof(sector)), 0);
	CU_ASSERT_EQUAL(image_import(images, "imp", src, "uefi", true, err, sizeof(err)), 0);
	struct image img;
	CU_ASSERT_EQUAL(image_load(images, "imp", &img, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(img.firmware, CVMM_FW_UEFI);
	CU_ASSERT(img.cloud_init);
	uint64_t size = 0;
	bool qcow2 = false;
	CU_ASSERT_EQUAL(image_disk_size(img.hda, &size, &qcow2, err, sizeof(err)), 0);
	CU_ASSERT(qcow2); /* converted */
	CU_ASSERT_EQUAL(size, 1024);
	CU_ASSERT_EQUAL(image_import(images, "imp", src, NULL, false, err, sizeof(err)), -EEXIST);
	/* A text file named like a qcow2 is neither. */
	snprintf(path, sizeof(path), "%s/fake.qcow2", tmpdir);
	CU_ASSERT_EQUAL_FATAL(write_text(path, "not a disk\n"), 0);
	CU_ASSERT_EQUAL(image_import(images, "fake", path, NULL, false, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not qcow2"));
	/* A qcow2 with a backing file would tie the image to another file. */
	char *base = xasprintf("%s/base.qcow2", tmpdir), *top = xasprintf("%s/top.img", tmpdir);
	CU_ASSERT_EQUAL_FATAL(qemu_img_create(base, "1M"), 0);
	char *cmd = xasprintf("qemu-img create -q -f qcow2 -b '%s' -F qcow2 '%s'", base, top);
	CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
	CU_ASSERT_EQUAL(image_import(images, "top", top, "bios", false, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "backing file"));
	CU_ASSERT_EQUAL(image_import(images, "b", base, "bios", false, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(image_import(images, "x", "relative.qcow2", NULL, false, err, sizeof(err)),
			-EINVAL);
	CU_ASSERT_EQUAL(image_import(images, "y", base, "efi", false, err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(image_remove(images, "imp", err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/imp", images);
	CU_ASSERT(!path_exists(path));
	CU_ASSERT_EQUAL(image_remove(images, "imp", err, sizeof(err)), -ENOENT);
	free(base);
	free(top);
	free(cmd);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	log_set_level(0);
	CU_pSuite s = CU_add_suite("image", suite_init, suite_clean);
	if (!s || !CU_add_test(s, "disk size: qcow2 and raw", test_disk_size) ||
	    !CU_add_test(s, "base identity: replaced, modified, dropped", test_base_identity) ||
	    !CU_add_test(s, "firmware and cloud_init in metadata", test_firmware) ||
	    !CU_add_test(s, "import and remove", test_import_remove)) {
		CU_cleanup_registry();
		return 1;
	}
	return unit_run();
}
