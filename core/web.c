/*
 * web: see web.h.
 */
#include "web.h"
#include "api.h"

#include <stdio.h>
#include <string.h>

/* The page loads only its own files and talks only to its own origin
 * (fetch, EventSource and, by CSP level 3, the same host's ws:/wss:): no
 * inline script or style, no frames, no forms posted elsewhere. */
#define WEB_CSP                                                                                    \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "           \
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const struct web_asset *web_find(const char *url)
{
	if (!strcmp(url, "/") || !strcmp(url, "/ui") || !strcmp(url, "/ui/"))
		url = "/ui/index.html";
	for (const struct web_asset *a = web_assets; a->path; a++)
		if (!strcmp(a->path, url))
			return a;
	return NULL;
}

bool web_public(const char *url, const char *method)
{
	return (!strcmp(method, "GET") || !strcmp(method, "HEAD")) && web_find(url);
}

static bool console_route(const char *url)
{
	const char *p = url + strlen("/v1/vms/"), *slash;

	if (strncmp(url, "/v1/vms/", 8))
		return false;
	slash = strchr(p, '/');
	return slash && slash > p && !strcmp(slash, "/console");
}

bool web_query_token_ok(struct cvmm_daemon *d, struct MHD_Connection *c, const char *url,
			const char *method)
{
	const char *tok;
	char hdr[600];

	if (strcmp(method, "GET") || (strcmp(url, "/v1/events") && !console_route(url)))
		return false;
	size_t tl = 0;
	/* The decoded length too: "?access_token=TOKEN%00junk" must not pass
	 * as TOKEN (as a header with a NUL does not). */
	if (MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, "access_token",
					  strlen("access_token"), &tok, &tl) != MHD_YES ||
	    !tok || !*tok || strlen(tok) != tl || tl >= sizeof(hdr) - 8)
		return false;
	snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
	return api_token_ok(d, hdr);
}

enum MHD_Result web_serve(struct MHD_Connection *c, const char *url, const char *method)
{
	const struct web_asset *a = web_find(url);
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!a || (strcmp(method, "GET") && strcmp(method, "HEAD")))
		return MHD_NO; /* web_public said yes: not reached */
	r = MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(r, "Content-Type", a->type);
	MHD_add_response_header(r, "Content-Security-Policy", WEB_CSP);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	/* The first load may carry ?token=: never sent on as a Referer. */
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	/* Small files that change with the daemon: revalidated each load. */
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}
