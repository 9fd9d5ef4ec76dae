/*
 * Unit tests of core/routes.c: the route list is well-formed (no route
 * twice, templates under /v1 or /metrics), each route gets a metrics label
 * of its own (never "other", so the request histogram tells them apart,
 * and never holding a name from the path),
 * GET /v1/routes lists them, and the description built into the binary is
 * doc/openapi.json byte for byte, with a path entry for each route.
 * (integration.openapi checks the routes against the description in full.)
 */
#include "metrics.h"
#include "routes.h"
#include "util.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "unit.h"

#define DOC CVMM_SOURCE_DIR "/doc/openapi.json"

/* The template with sample values: /v1/vms/{id}/start -> /v1/vms/web1/start */
static void instantiate(const char *tpl, char *out, size_t len)
{
	size_t n = 0;
	for (const char *p = tpl; *p && n + 8 < len;) {
		if (*p == '{') {
			n += (size_t)snprintf(out + n, len - n, "web1");
			p = strchr(p, '}') + 1;
		} else {
			out[n++] = *p++;
		}
	}
	out[n] = 0;
}

static void test_list_well_formed(void)
{
	int n = 0;
	for (int i = 0; api_routes[i].method; i++, n++) {
		const struct api_route *r = &api_routes[i];
		CU_ASSERT(!strcmp(r->method, "GET") || !strcmp(r->method, "POST") ||
			  !strcmp(r->method, "DELETE"));
		CU_ASSERT(!strncmp(r->path, "/v1/", 4) || !strcmp(r->path, "/metrics") ||
			  !strcmp(r->path, "/") || !strncmp(r->path, "/ui/", 4)); /* the web console */
		for (int k = 0; k < i; k++)
			CU_ASSERT(strcmp(api_routes[k].method, r->method) ||
				  strcmp(api_routes[k].path, r->path));
		char path[256], label[128];
		instantiate(r->path, path, sizeof(path));
		metrics_route(path, 200, label, sizeof(label));
		if (!strcmp(label, "other") || strstr(label, "{other}"))
			fprintf(stderr, "%s %s: metrics label %s\n", r->method, r->path, label);
		CU_ASSERT(strcmp(label, "other") && !strstr(label, "{other}"));
		CU_ASSERT(!strstr(label, "web1")); /* a name never becomes a label */
	}
	CU_ASSERT(n >= 28);
}

static void test_routes_json(void)
{
	json_object *o = routes_json(NULL), *a;
	CU_ASSERT_FATAL(json_object_object_get_ex(o, "routes", &a));
	int n = 0;
	while (api_routes[n].method)
		n++;
	CU_ASSERT_EQUAL((int)json_object_array_length(a), n);
	json_object *first = json_object_array_get_idx(a, 0), *v;
	CU_ASSERT(json_object_object_get_ex(first, "method", &v) &&
		  !strcmp(json_object_get_string(v), api_routes[0].method));
	CU_ASSERT(!json_object_object_get_ex(first, "plugin", &v));
	json_object_put(o);
}

static void test_embedded_is_the_file(void)
{
	char *text = NULL;
	size_t len = 0;
	CU_ASSERT_FATAL(read_file(DOC, &text, &len, 16 << 20) == 0);
	CU_ASSERT_EQUAL(len, routes_openapi_len);
	CU_ASSERT(len == routes_openapi_len && !memcmp(text, routes_openapi, len));
	CU_ASSERT_EQUAL(routes_openapi[routes_openapi_len], 0);
	json_object *doc = json_tokener_parse(routes_openapi), *paths, *item;
	CU_ASSERT_FATAL(json_object_object_get_ex(doc, "paths", &paths));
	for (int i = 0; api_routes[i].method; i++) {
		char m[8];
		str_copy(m, sizeof(m), api_routes[i].method);
		for (char *c = m; *c; c++)
			*c = (char)(*c | 0x20);
		bool ok = json_object_object_get_ex(paths, api_routes[i].path, &item) &&
			  json_object_object_get_ex(item, m, NULL);
		if (!ok)
			fprintf(stderr, "%s %s: not in doc/openapi.json\n", api_routes[i].method,
				api_routes[i].path);
		CU_ASSERT(ok);
	}
	json_object_put(doc);
	free(text);
}

static const struct unit_test tests[] = {
	{"the list is well-formed, each route its metrics label", test_list_well_formed},
	{"GET /v1/routes lists it", test_routes_json},
	{"the built-in description is doc/openapi.json", test_embedded_is_the_file},
};

int main(void)
{
	log_set_level(0);
	return unit_main("routes", NULL, NULL, tests, sizeof(tests) / sizeof(tests[0]));
}
