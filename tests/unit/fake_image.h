/*
 * fake_image.h: files the core's unit tests make (needs cvmm-core's util.h).
 * Header only, like unit.h.
 */
#ifndef CVMM_TESTS_FAKE_IMAGE_H
#define CVMM_TESTS_FAKE_IMAGE_H

#include "util.h"

#include <stdlib.h>
#include <string.h>

static inline int unit_write_text(const char *path, const char *text)
{
	return write_file_atomic(path, text, strlen(text), 0644);
}

/* A fake image "tiny" under <dir>/images (kernel, initrd, metadata): enough
 * for a request to resolve, nothing that boots. 0 or -1. */
static inline int unit_fake_image(const char *dir)
{
	char *img = xasprintf("%s/images/tiny", dir);
	char *k = xasprintf("%s/vmlinuz", img), *i = xasprintf("%s/initrd.img", img);
	char *m = xasprintf("%s/metadata.json", img);
	int r = mkdir_p(img, 0755) || unit_write_text(k, "kernel") ||
	        unit_write_text(i, "initrd") ||
	        unit_write_text(m, "{\"kernel\": \"vmlinuz\", \"initrd\": \"initrd.img\", "
	                           "\"cmdline\": \"console=ttyS0\"}");
	free(img);
	free(k);
	free(i);
	free(m);
	return r ? -1 : 0;
}

#endif
