/*
 * routes: see routes.h. The list is what a client (and the API's test) can
 * ask the daemon for: the router itself stays a chain of string matches,
 * and integration.openapi holds the two together by requesting every route
 * of the description and checking that none comes back as "no such
 * endpoint".
 */
#include "routes.h"
#include "registry.h"

#include <stdio.h>

const struct api_route api_routes[] = {
	{"GET", "/"},
	{"GET", "/ui/{file}"},
	{"GET", "/metrics"},
	{"GET", "/v1/events"},
	{"GET", "/v1/host"},
	{"GET", "/v1/host/check"},
	{"GET", "/v1/plugins"},
	{"GET", "/v1/openapi.json"},
	{"GET", "/v1/routes"},
	{"GET", "/v1/images"},
	{"POST", "/v1/images"},
	{"DELETE", "/v1/images/{name}"},
	{"GET", "/v1/vms"},
	{"POST", "/v1/vms"},
	{"GET", "/v1/vms/{id}"},
	{"DELETE", "/v1/vms/{id}"},
	{"GET", "/v1/vms/{id}/events"},
	{"GET", "/v1/vms/{id}/logs"},
	{"GET", "/v1/vms/{id}/console"},
	{"POST", "/v1/vms/{id}/start"},
	{"POST", "/v1/vms/{id}/stop"},
	{"POST", "/v1/vms/{id}/restart"},
	{"POST", "/v1/vms/{id}/kill"},
	{"POST", "/v1/vms/{id}/pause"},
	{"POST", "/v1/vms/{id}/resume"},
	{"POST", "/v1/vms/{id}/resize"},
	{"GET", "/v1/vms/{id}/snapshots"},
	{"POST", "/v1/vms/{id}/snapshots"},
	{"DELETE", "/v1/vms/{id}/snapshots/{snapshot}"},
	{"POST", "/v1/vms/{id}/snapshots/{snapshot}/revert"},
	{NULL, NULL},
};

static void add(json_object *a, const char *method, const char *path, const char *plugin)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "method", json_object_new_string(method));
	json_object_object_add(o, "path", json_object_new_string(path));
	if (plugin)
		json_object_object_add(o, "plugin", json_object_new_string(plugin));
	json_object_array_add(a, o);
}

json_object *routes_json(struct registry *reg)
{
	json_object *a = json_object_new_array();
	for (int i = 0; api_routes[i].method; i++)
		add(a, api_routes[i].method, api_routes[i].path, NULL);
	for (int i = 0; reg && i < reg->n_routes; i++) {
		struct reg_route *rt = &reg->routes[i];
		char path[128];
		snprintf(path, sizeof(path), rt->vmfn ? "/v1/vms/{id}/%s" : "/v1/%s", rt->path);
		add(a, rt->method, path, rt->plugin->name);
	}
	json_object *o = json_object_new_object();
	json_object_object_add(o, "routes", a);
	return o;
}
