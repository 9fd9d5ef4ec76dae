/*
 * jscan: a small JSON reader for the one reply that can be large, the list
 * of VMs. It tokenizes a buffer in place (strings decoded where they lie)
 * into one array, without an allocation per value: json-c's tree for 1000
 * VMs was two thirds of `cvmm list`. Anything it does not take falls back
 * to json-c.
 */
#ifndef CVMM_CLI_JSCAN_H
#define CVMM_CLI_JSCAN_H

#include <stddef.h>

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jtok {
	unsigned type : 8;
	unsigned count : 24; /* J_ARR, J_OBJ: members (an object's are key, value pairs) */
	int next;            /* index of the token after this value (and its children) */
	char *s;             /* J_STR: decoded, NUL-terminated; J_NUM, J_BOOL: its text */
};

/* Tokenizes text (modified in place: strings are decoded where they are).
 * Returns the number of tokens (*out: the array, free() it), or -1 when the
 * text is not JSON this reader takes (then text is unusable). */
int jscan(char *text, size_t len, struct jtok **out);

/* The value of key in the object at index obj, or -1. */
int jscan_get(const struct jtok *t, int obj, const char *key);

#endif
