/*
 * routes: the one list of the REST API's routes (method and path template,
 * as doc/openapi.json names them), the core's and the loaded plugins', and
 * the API description itself, embedded in the binary at build time.
 */
#ifndef CVMM_ROUTES_H
#define CVMM_ROUTES_H

#include <json-c/json.h>
#include <stddef.h>

struct registry;

struct api_route {
	const char *method;
	const char *path; /* a template: /v1/vms/{id}/start */
};

/* The routes core/api.c serves, NULL-terminated. A route added to the
 * router goes here and into doc/openapi.json (integration.openapi checks
 * both against the running daemon). */
extern const struct api_route api_routes[];

/* {"routes": [{"method", "path", "plugin"?}]}: the core's, then those the
 * loaded plugins registered (GET /v1/routes). */
json_object *routes_json(struct registry *reg);

/* doc/openapi.json as built in (routes_openapi.c is generated). */
extern const char routes_openapi[];
extern const size_t routes_openapi_len;

#endif
