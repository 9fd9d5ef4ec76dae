/*
 * Fuzz target: the guest channel's message validation (core/chanmsg.c), which
 * the unprivileged reader runs on every line a guest writes. Beyond memory
 * errors it checks the promise the daemon relies on: what passes is one JSON
 * object, without a newline, with a known "m", and nothing a guest could use
 * to name another VM.
 */
#include "chanmsg.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char out[CHAN_OUT_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[160];
	int n = chanmsg_validate((const char *)data, size, out, sizeof(out), why, sizeof(why));
	if (n < 0) {
		if (!why[0])
			abort(); /* a refusal always says why */
		return 0;
	}
	if ((size_t)n != strlen(out) || memchr(out, '\n', (size_t)n))
		abort();
	json_object *o = json_tokener_parse(out);
	if (!o || !json_object_is_type(o, json_type_object))
		abort();
	json_object *m;
	if (!json_object_object_get_ex(o, "m", &m))
		abort();
	const char *s = json_object_get_string(m);
	if (strcmp(s, "Info") && strcmp(s, "Notify") && strcmp(s, "GetSealingKey"))
		abort();
	json_object_object_foreach(o, k, v)
	{
		(void)v;
		if (strcmp(k, "m") && strcmp(k, "id") && strcmp(k, "event") && strcmp(k, "payload") &&
		    strcmp(k, "quote"))
			abort();
	}
	json_object_put(o);
	return 0;
}
