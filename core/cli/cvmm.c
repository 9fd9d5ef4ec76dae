/*
 * cvmm: the command-line client of cvmmd, a thin layer over the REST API
 * (README "API (v1)" and "CLI"). It parses the global options and one
 * command, checks what can be checked locally (numbers, --net and --port
 * syntax), sends one or two requests and prints the reply as a table or, with
 * --json, as the daemon's JSON. Every failure is reported once, here, and
 * becomes the exit code the README lists.
 */
#include "envcrypt.h"
#include "http.h"
#include "print.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>
#include <time.h>

#define DEFAULT_SOCKET "/run/cvmm/cvmm.sock"

enum {
	EXIT_REFUSED = 1,
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3,
	EXIT_NOT_FOUND = 4,
	EXIT_CONFLICT = 5,
};

struct cli {
	struct http_client *http;
	int json;
	int tcp; /* --url rather than a unix socket */
	int have_token;
};

struct command {
	const char *name;
	int (*run)(struct cli *cli, const struct command *cmd, int argc, char **argv);
	const char *args; /* its grammar after the name, for usage lines */
	const char *what;
};

static const struct command commands[];

/* main()'s argv as it came, for exec_full(). */
static char **orig_argv;

#ifdef CVMM_CLI_STATIC
/* This cvmm is linked statically (no loader, no shared objects to map: a
 * fifth of a short command's time; README "A fast CLI"), so it cannot
 * load GnuTLS or libcrypto, nor resolve host names through NSS. What needs
 * them (--url, --env-file) runs the same CLI linked with shared libraries,
 * cvmm-full, with the same arguments. Returns only when it could not be run. */
static int exec_full(const char *what)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self));
	char *slash = n > 0 && (size_t)n < sizeof(self) ? memrchr(self, '/', (size_t)n) : NULL;

	/* Run as cvmm-full, this is a static cvmm again (a copy, or a link an
	 * operator made for a missing cvmm-full): exec'ing on would never end. */
	if (getenv("CVMM_EXEC_FULL")) {
		if (n > 0 && (size_t)n < sizeof(self))
			self[n] = 0;
		else
			snprintf(self, sizeof(self), "it");
		fprintf(
		    stderr,
		    "cvmm: %s needs cvmm-full, the CLI with shared libraries; %s ran as cvmm-full "
		    "but is a static cvmm (install cvmm-full from the same build)\n",
		    what, self);
		return EXIT_REFUSED;
	}
	setenv("CVMM_EXEC_FULL", "1", 1);

	static const char *const rel[] = {"/cvmm-full", "/" CVMM_CLI_FULL_REL};

	/* Beside this program (the build tree), then where an install under
	 * any prefix puts it (bin/../libexec/cvmm), then the configured path. */
	for (size_t i = 0; slash && i < sizeof(rel) / sizeof(rel[0]); i++) {
		if ((size_t)(slash - self) + strlen(rel[i]) < sizeof(self)) {
			strcpy(slash, rel[i]);
			execv(self, orig_argv);
		}
	}
	execv(CVMM_CLI_FULL, orig_argv);
	fprintf(stderr, "cvmm: %s needs %s: %s\n", what, CVMM_CLI_FULL, strerror(errno));
	return EXIT_REFUSED;
}
#endif

static const char global_usage[] =
    "usage: cvmm [--socket PATH | --url URL [--cacert FILE]] [--token T] [--json] [--timeout S]\n"
    "            COMMAND ...";

/* ---- usage ------------------------------------------------------------------ */

static void print_help(void)
{
	printf("%s\n\nCommands:\n", global_usage);
	for (const struct command *c = commands; c->name; c++)
		printf("  %s%s%s\n      %s\n", c->name, *c->args ? " " : "", c->args, c->what);
	printf("\nGlobal options (before the command):\n"
	       "  --socket PATH  the daemon's unix socket (else $CVMM_SOCKET, else " DEFAULT_SOCKET
	       ")\n"
	       "  --url URL      reach the daemon over TCP instead, e.g. http://127.0.0.1:8080\n"
	       "  --token T      bearer token (else $CVMM_TOKEN)\n"
	       "  --json         print the daemon's JSON instead of tables\n"
	       "  --timeout S    give up when the daemon has not answered in S seconds\n"
	       "                 (default 60; 0: wait forever; logs -f: for the reply to\n"
	       "                 start); connecting is given 5 s\n"
	       "  -h, --help     this text; COMMAND --help shows one command\n"
	       "  -V, --version  the version of this client\n"
	       "\nExit codes: 0 success, 1 the daemon refused the request, 2 usage error,\n"
	       "3 daemon unreachable or not answering in time, 4 not found, 5 conflict.\n");
}

static void print_command_usage(FILE *f, const struct command *cmd)
{
	fprintf(f, "usage: cvmm %s%s%s\n", cmd->name, *cmd->args ? " " : "", cmd->args);
}

/* Reports a usage error (cmd may be NULL) and returns its exit code. */
__attribute__((format(printf, 2, 3))) static int usage_error(const struct command *cmd,
                                                             const char *fmt, ...)
{
	va_list ap;

	fputs("cvmm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (cmd)
		print_command_usage(stderr, cmd);
	else
		fputs("Try 'cvmm --help'.\n", stderr);
	return EXIT_USAGE;
}

/* The getopt error for the option just seen; optstrings start with ':'. */
static int option_error(const struct command *cmd, int c, char **argv)
{
	static const char *const global[] = {"--json", "--socket", "--url", "--token", NULL};
	const char *arg = argv[optind - 1];

	if (c == ':')
		return usage_error(cmd, "option '%s' needs a value", arg);
	for (size_t i = 0; cmd && !optopt && global[i]; i++)
		if (!strncmp(arg, global[i], strlen(global[i])))
			return usage_error(cmd, "'%s' is a global option: put it before '%s'",
			                   global[i], cmd->name);
	if (optopt)
		return usage_error(cmd, "unknown option '-%c'", optopt);
	return usage_error(cmd, "unknown option '%s'", arg);
}

static int parse_number(const struct command *cmd, const char *opt, const char *s, long long min,
                        long long max, long long *out)
{
	char *end = NULL;
	long long v;

	/* Written on every path: callers test only the return code, and gcc's
	 * maybe-uninitialized cannot see that a usage error is never 0. */
	*out = 0;
	errno = 0;
	v = (*s >= '0' && *s <= '9') ? strtoll(s, &end, 10) : 0;
	if (!end || *end || errno || v < min || v > max)
		return usage_error(cmd, "%s: '%s' is not a whole number from %lld to %lld", opt, s,
		                   min, max);
	*out = v;
	return 0;
}

/* Exactly one positional argument (the VM) after the options. */
static const char *one_vm(const struct command *cmd, int argc, char **argv)
{
	if (optind >= argc) {
		usage_error(cmd, "which VM? give its name or id");
		return NULL;
	}
	if (optind + 1 < argc) {
		usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
		return NULL;
	}
	return argv[optind];
}

/* clang-format off */
#define HELP_OPTION {"help", no_argument, NULL, 'h'}
/* clang-format on */

/* For the commands whose only argument is the VM, or nothing at all. */
static int simple_args(const struct command *cmd, int argc, char **argv, int want_vm,
                       const char **vm)
{
	static const struct option opts[] = {HELP_OPTION, {0}};
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c != 'h')
			return option_error(cmd, c, argv);
		print_command_usage(stdout, cmd);
		return -1;
	}
	if (want_vm)
		return (*vm = one_vm(cmd, argc, argv)) ? 0 : EXIT_USAGE;
	if (optind < argc)
		return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	return 0;
}

/* ---- requests ----------------------------------------------------------------- */

/* A non-2xx reply: the daemon's own message, then its exit code. */
static int report_refusal(const struct cli *cli, const struct http_response *r)
{
	json_object *reply = json_tokener_parse(r->body), *err = NULL, *msg = NULL;
	const char *text = NULL;

	if (json_object_object_get_ex(reply, "error", &err) &&
	    json_object_object_get_ex(err, "message", &msg))
		text = json_object_get_string(msg);
	if (text && *text) {
		fprintf(stderr, "cvmm: %s\n", text);
	} else {
		/* Not the daemon's error shape (a proxy, another server): its
		 * first line is the best clue there is. */
		const char *line = r->body + strspn(r->body, " \t\r\n");
		int n = (int)strcspn(line, "\r\n");

		fprintf(stderr, "cvmm: the daemon answered HTTP %ld%s%.*s\n", r->status,
		        n ? ": " : "", n < 200 ? n : 200, line);
	}
	json_object_put(reply);

	switch (r->status) {
	case 401:
		fprintf(stderr,
		        cli->have_token
		            ? "cvmm: hint: the daemon did not accept the token given with "
		              "--token or CVMM_TOKEN\n"
		            : "cvmm: hint: this daemon wants a token: pass --token T or set "
		              "CVMM_TOKEN\n");
		return EXIT_REFUSED;
	case 404:
		return EXIT_NOT_FOUND;
	case 409:
		return EXIT_CONFLICT;
	default:
		return EXIT_REFUSED;
	}
}

static int transport_exit(const struct cli *cli, int r)
{
	fprintf(stderr, "cvmm: %s\n", http_error(cli->http));
	if (r == -ECONNREFUSED && !cli->tcp)
		fputs("cvmm: hint: is cvmmd running? --socket PATH or CVMM_SOCKET name another "
		      "socket\n",
		      stderr);
	return r == -EPIPE || r == -ENOMEM ? EXIT_REFUSED : EXIT_UNREACHABLE;
}

/* One request with a JSON reply. body may be NULL; on success *out is the
 * parsed reply (NULL if it was empty) and the caller puts it. */
static int call(struct cli *cli, const char *method, const char *path, json_object *body,
                json_object **out)
{
	struct http_response resp;
	const char *text =
	    body ? json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN) : NULL;
	int r = http_request(cli->http, method, path, text, NULL, NULL, &resp);

	*out = NULL;
	if (r < 0)
		return transport_exit(cli, r);
	if (resp.status < 200 || resp.status > 299) {
		r = report_refusal(cli, &resp);
	} else if (resp.len) {
		*out = json_tokener_parse(resp.body);
		r = 0;
		if (!*out) {
			fprintf(stderr, "cvmm: the daemon's reply to %s %s is not JSON\n", method,
			        path);
			r = EXIT_REFUSED;
		}
	}
	http_response_free(&resp);
	return r;
}

/* "/v1/vms/<vm><suffix>" with the VM escaped, or NULL. */
static char *vm_path(struct cli *cli, const char *vm, const char *suffix)
{
	char *escaped = http_escape(cli->http, vm), *path = NULL;

	if (escaped && asprintf(&path, "/v1/vms/%s%s", escaped, suffix) < 0)
		path = NULL;
	free(escaped);
	return path;
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v = NULL;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
	           ? json_object_get_string(v)
	           : NULL;
}

static int out_of_memory(void)
{
	fputs("cvmm: out of memory\n", stderr);
	return EXIT_REFUSED;
}

/* The README names the action routes by {id} (only GET and DELETE say
 * {id-or-name}), so a name is looked up first. *id is the VM's id. */
static int resolve(struct cli *cli, const char *vm, char **id)
{
	char *path = vm_path(cli, vm, "");
	json_object *reply = NULL;
	int r;

	*id = NULL;
	if (!path)
		return out_of_memory();
	r = call(cli, "GET", path, NULL, &reply);
	if (r == 0 && !get_str(reply, "id")) {
		fprintf(stderr, "cvmm: the daemon's reply for VM '%s' has no id\n", vm);
		r = EXIT_REFUSED;
	}
	if (r == 0 && !(*id = strdup(get_str(reply, "id"))))
		r = out_of_memory();
	json_object_put(reply);
	free(path);
	return r;
}

/* Prints an action's reply: the JSON, or "<name>: <state>". */
static void print_done(const struct cli *cli, json_object *reply, const char *vm,
                       const char *fallback)
{
	const char *name = get_str(reply, "name"), *state = get_str(reply, "state");

	if (cli->json) {
		if (reply)
			print_json(reply);
		return;
	}
	printf("%s: %s\n", name ? name : vm, state ? state : fallback);
}

/* POST /v1/vms/{id}/<action> with body (may be NULL: "{}" is sent). */
static int vm_action(struct cli *cli, const char *vm, const char *action, json_object *body,
                     const char *fallback)
{
	char *id = NULL, *path = NULL, *suffix = NULL;
	json_object *empty = NULL, *reply = NULL;
	int r = resolve(cli, vm, &id);

	if (r)
		return r;
	if (asprintf(&suffix, "/%s", action) < 0)
		suffix = NULL; /* asprintf leaves it undefined */
	if (!suffix || !(path = vm_path(cli, id, suffix))) {
		r = out_of_memory();
		goto cleanup;
	}
	if (!body)
		body = empty = json_object_new_object();
	r = call(cli, "POST", path, body, &reply);
	if (r == 0)
		print_done(cli, reply, vm, fallback);

cleanup:
	json_object_put(reply);
	json_object_put(empty);
	free(path);
	free(suffix);
	free(id);
	return r;
}

/* ---- --net and --port ------------------------------------------------------- */

/* MODE[,key=value...] -> {"mode": MODE, key: value...}; values stay strings. */
static int parse_net(const struct command *cmd, const char *spec, json_object **out)
{
	char *copy = strdup(spec), *rest = copy, *item;
	json_object *net = json_object_new_object();
	int r = 0;

	if (!copy || !net) {
		r = out_of_memory();
		goto cleanup;
	}
	item = strsep(&rest, ",");
	if (!*item || strchr(item, '=')) {
		r = usage_error(cmd, "--net '%s': expected MODE[,key=value...], MODE first", spec);
		goto cleanup;
	}
	json_object_object_add(net, "mode", json_object_new_string(item));
	while (rest) {
		char *eq;

		item = strsep(&rest, ",");
		eq = strchr(item, '=');
		if (!eq || eq == item) {
			r = usage_error(cmd, "--net '%s': '%s' is not key=value", spec, item);
			goto cleanup;
		}
		*eq = '\0';
		if (json_object_object_get_ex(net, item, NULL)) {
			r = usage_error(cmd, "--net '%s': '%s' given twice", spec, item);
			goto cleanup;
		}
		json_object_object_add(net, item, json_object_new_string(eq + 1));
	}
	*out = net;
	net = NULL;

cleanup:
	json_object_put(net);
	free(copy);
	return r;
}

/* [PROTO:][ADDR:]HOSTPORT:VMPORT, counted from the right so that an IPv6
 * address may be written bare (::1:80:80) or bracketed ([::1]:80:80). */
static int parse_port(const struct command *cmd, const char *spec, json_object **out)
{
	char *copy = strdup(spec), *vm_port, *host_port, *addr = NULL;
	const char *proto = "tcp";
	unsigned char scratch[sizeof(struct in6_addr)];
	long long host, vm;
	int r = 0;

	if (!copy)
		return out_of_memory();
	vm_port = strrchr(copy, ':');
	if (!vm_port) {
		r = usage_error(cmd, "--port '%s': expected [PROTO:][ADDR:]HOSTPORT:VMPORT", spec);
		goto cleanup;
	}
	*vm_port++ = '\0';
	host_port = strrchr(copy, ':');
	if (host_port) {
		*host_port++ = '\0';
		addr = copy; /* with the protocol still in front, if any */
	} else {
		host_port = copy;
	}
	if ((r = parse_number(cmd, "--port host port", host_port, 1, 65535, &host)) ||
	    (r = parse_number(cmd, "--port VM port", vm_port, 1, 65535, &vm)))
		goto cleanup;

	if (addr && (!strncasecmp(addr, "tcp", 3) || !strncasecmp(addr, "udp", 3)) &&
	    (addr[3] == '\0' || addr[3] == ':')) {
		proto = tolower((unsigned char)addr[0]) == 't' ? "tcp" : "udp";
		addr = addr[3] ? addr + 4 : NULL;
	}
	if (addr && *addr == '[' && addr[strlen(addr) - 1] == ']') {
		addr[strlen(addr) - 1] = '\0';
		addr++;
	}
	if (addr && !*addr) {
		r = usage_error(cmd, "--port '%s': the address is empty", spec);
		goto cleanup;
	}
	if (addr && inet_pton(AF_INET, addr, scratch) != 1 &&
	    inet_pton(AF_INET6, addr, scratch) != 1) {
		r = usage_error(cmd, "--port '%s': '%s' is neither tcp, udp nor a numeric address",
		                spec, addr);
		goto cleanup;
	}

	*out = json_object_new_object();
	json_object_object_add(*out, "protocol", json_object_new_string(proto));
	if (addr)
		json_object_object_add(*out, "host_address", json_object_new_string(addr));
	json_object_object_add(*out, "host_port", json_object_new_int((int32_t)host));
	json_object_object_add(*out, "vm_port", json_object_new_int((int32_t)vm));

cleanup:
	free(copy);
	return r;
}

/* name=N,size_gb=G[,keep] or source=PATH[,name=N][,readonly] -> a volume
 * object; the daemon checks the rules (sizes, paths). */
static int parse_volume(const struct command *cmd, const char *spec, json_object **out)
{
	char *copy = strdup(spec), *save = NULL, *item;
	json_object *vol = json_object_new_object();
	long long n;
	int r = 0;

	if (!copy || !vol) {
		r = out_of_memory();
		goto cleanup;
	}
	for (item = strtok_r(copy, ",", &save); item && r == 0; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		if (eq)
			*eq++ = 0;
		if (json_object_object_get_ex(vol, item, NULL)) {
			r = usage_error(cmd, "--volume '%s': '%s' given twice", spec, item);
		} else if (!strcmp(item, "readonly") || !strcmp(item, "keep")) {
			bool on = !eq || !strcmp(eq, "true") || !strcmp(eq, "1") || !strcmp(eq, "yes");
			if (eq && !on && strcmp(eq, "false") && strcmp(eq, "0") && strcmp(eq, "no"))
				r = usage_error(cmd, "--volume '%s': %s=%s is not true or false", spec,
				                item, eq);
			else
				json_object_object_add(vol, item, json_object_new_boolean(on));
		} else if (!eq) {
			r = usage_error(cmd, "--volume '%s': '%s' is not key=value", spec, item);
		} else if (!strcmp(item, "size_gb") || !strcmp(item, "size")) {
			if (!(r = parse_number(cmd, "--volume size_gb", eq, 1, 65536, &n)))
				json_object_object_add(vol, "size_gb", json_object_new_int64(n));
		} else if (!strcmp(item, "name") || !strcmp(item, "source")) {
			json_object_object_add(vol, item, json_object_new_string(eq));
		} else {
			r = usage_error(cmd, "--volume '%s': unknown key '%s' (name, size_gb, source, "
			                     "readonly, keep)",
			                spec, item);
		}
	}
	if (r == 0 && !json_object_object_get_ex(vol, "size_gb", NULL) &&
	    !json_object_object_get_ex(vol, "source", NULL))
		r = usage_error(cmd, "--volume '%s': give size_gb=G (a new disk) or source=PATH", spec);
	if (r == 0) {
		*out = vol;
		vol = NULL;
	}

cleanup:
	json_object_put(vol);
	free(copy);
	return r;
}

/* ---- commands -------------------------------------------------------------- */

/* Appends item to body[key], creating the array on first use. */
static void append(json_object *body, const char *key, json_object *item)
{
	json_object *list = NULL;

	if (!json_object_object_get_ex(body, key, &list)) {
		list = json_object_new_array();
		json_object_object_add(body, key, list);
	}
	json_object_array_add(list, item);
}

/* --env-file: the app's env-encryption key from the daemon's KMS proxy
 * (whose signature the daemon checked against its trusted signers), the
 * file encrypted here; only app_id and the ciphertext go into the body. */
static int encrypt_env_for(struct cli *cli, json_object *body, const char *file,
			   const char *app_id)
{
	char idbuf[41], err[512];
	char *plain = NULL, *enc = NULL;
	uint8_t pub[32];
	json_object *req = json_object_new_object(), *reply = NULL, *urls;
	int r;
	if (!app_id) {
		if (env_random_hex(20, idbuf)) {
			fprintf(stderr, "cvmm: no random bytes for an app id\n");
			r = 1;
			goto out;
		}
		app_id = idbuf;
	}
	if ((r = env_file_json(file, &plain, err, sizeof(err)))) {
		fprintf(stderr, "cvmm: --env-file %s\n", err);
		r = 2;
		goto out;
	}
	json_object_object_add(req, "app_id", json_object_new_string(app_id));
	if (json_object_object_get_ex(body, "kms_urls", &urls))
		json_object_object_add(req, "kms_urls", json_object_get(urls));
	if ((r = call(cli, "POST", "/v1/kms/env-pubkey", req, &reply)))
		goto out;
	const char *pk = get_str(reply, "public_key");
	size_t pl = pk ? strlen(pk) : 0;
	for (size_t i = 0; pk && pl == 64 && i < 32; i++)
		sscanf(pk + 2 * i, "%2hhx", &pub[i]);
	if (pl != 64) {
		fprintf(stderr, "cvmm: the daemon's env-pubkey answer has no 32-byte public_key\n");
		r = 1;
		goto out;
	}
	if (env_encrypt(pub, plain, strlen(plain), &enc, err, sizeof(err))) {
		fprintf(stderr, "cvmm: %s\n", err);
		r = 1;
		goto out;
	}
	fprintf(stderr, "cvmm: environment encrypted for app %s (KMS key signed by %s)\n", app_id,
		get_str(reply, "signer") ?: "?");
	json_object_object_add(body, "app_id", json_object_new_string(app_id));
	json_object_object_add(body, "encrypted_env", json_object_new_string(enc));
out:
	if (plain) {
		memset(plain, 0, strlen(plain));
		free(plain);
	}
	free(enc);
	json_object_put(reply);
	json_object_put(req);
	return r;
}

static int cmd_create(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {{"image", required_argument, NULL, 'i'},
	                                     {"vcpu", required_argument, NULL, 'c'},
	                                     {"memory", required_argument, NULL, 'm'},
	                                     {"disk", required_argument, NULL, 'd'},
	                                     {"net", required_argument, NULL, 'n'},
	                                     {"port", required_argument, NULL, 'p'},
	                                     {"backend", required_argument, NULL, 'b'},
	                                     {"no-start", no_argument, NULL, 'S'},
	                                     {"dry-run", no_argument, NULL, 'D'},
	                                     {"gpu", required_argument, NULL, 'g'},
	                                     {"env-file", required_argument, NULL, 'E'},
	                                     {"app-id", required_argument, NULL, 'A'},
	                                     {"kms-url", required_argument, NULL, 'K'},
	                                     {"topology", required_argument, NULL, 'T'},
	                                     {"volume", required_argument, NULL, 'V'},
	                                     HELP_OPTION,
	                                     {0}};
	/* Only what was given goes into the body: the daemon's defaults (from
	 * its config) apply to everything else. */
	json_object *body = json_object_new_object(), *item = NULL, *reply = NULL;
	const char *image = NULL, *env_file = NULL, *app_id = NULL;
	long long n;
	int c, r = 0;
	bool dry = false;

	optind = 0;
	while (r == 0 && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			image = optarg;
			break;
		case 'c':
			if (!(r = parse_number(cmd, "--vcpu", optarg, 1, INT32_MAX, &n)))
				json_object_object_add(body, "vcpu", json_object_new_int64(n));
			break;
		case 'm':
			if (!(r = parse_number(cmd, "--memory", optarg, 1, INT32_MAX, &n)))
				json_object_object_add(body, "memory_mb", json_object_new_int64(n));
			break;
		case 'd':
			if (!(r = parse_number(cmd, "--disk", optarg, 0, INT32_MAX, &n)))
				json_object_object_add(body, "disk_gb", json_object_new_int64(n));
			break;
		case 'n':
			if (!(r = parse_net(cmd, optarg, &item)))
				append(body, "networks", item);
			break;
		case 'p':
			if (!(r = parse_port(cmd, optarg, &item)))
				append(body, "ports", item);
			break;
		case 'b':
			json_object_object_add(body, "backend", json_object_new_string(optarg));
			break;
		case 'S':
			json_object_object_add(body, "start", json_object_new_boolean(0));
			break;
		case 'D':
			dry = true;
			break;
		case 'E':
#ifdef CVMM_CLI_STATIC
			json_object_put(body);
			return exec_full("--env-file");
#endif
			env_file = optarg;
			break;
		case 'A':
			app_id = optarg;
			break;
		case 'K':
			append(body, "kms_urls", json_object_new_string(optarg));
			break;
		case 'T': /* mirror | nccl | none: gpu-vfio checks the value */
			json_object_object_add(body, "topology", json_object_new_string(optarg));
			break;
		case 'g': {
			/* --gpu SLOT (repeatable), --gpu all, --gpu count=N */
			json_object *g = NULL, *list;
			if (!json_object_object_get_ex(body, "gpus", &g)) {
				g = json_object_new_object();
				json_object_object_add(body, "gpus", g);
			}
			if (!strcmp(optarg, "all")) {
				json_object_object_add(g, "attach_mode", json_object_new_string("all"));
			} else if (!strncmp(optarg, "count=", 6)) {
				if (!(r = parse_number(cmd, "--gpu count", optarg + 6, 1, 64, &n)))
					json_object_object_add(g, "count", json_object_new_int64(n));
			} else {
				json_object_object_add(g, "attach_mode", json_object_new_string("listed"));
				if (!json_object_object_get_ex(g, "gpus", &list)) {
					list = json_object_new_array();
					json_object_object_add(g, "gpus", list);
				}
				json_object *one = json_object_new_object();
				json_object_object_add(one, "slot", json_object_new_string(optarg));
				json_object_array_add(list, one);
			}
			break;
		}
		case 'V':
			if (!(r = parse_volume(cmd, optarg, &item)))
				append(body, "volumes", item);
			break;
		case 'h':
			print_command_usage(stdout, cmd);
			goto cleanup;
		default:
			r = option_error(cmd, c, argv);
		}
	}
	if (r)
		goto cleanup;
	if (optind >= argc || !*argv[optind]) {
		r = usage_error(cmd, "the new VM needs a NAME");
		goto cleanup;
	}
	if (optind + 1 < argc) {
		r = usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
		goto cleanup;
	}
	if (!image || !*image) {
		r = usage_error(cmd, "--image is required");
		goto cleanup;
	}
	json_object_object_add(body, "name", json_object_new_string(argv[optind]));
	json_object_object_add(body, "image", json_object_new_string(image));
	if (env_file && (r = encrypt_env_for(cli, body, env_file, app_id)))
		goto cleanup;
	if (!env_file && app_id)
		json_object_object_add(body, "app_id", json_object_new_string(app_id));

	r = call(cli, "POST", dry ? "/v1/vms?dry_run=1" : "/v1/vms", body, &reply);
	if (r == 0 && (cli->json || dry)) {
		json_object *render, *v;
		if (!cli->json && json_object_object_get_ex(reply, "render", &render)) {
			/* What the backend would run: one argument a line, or the XML. */
			if (json_object_object_get_ex(render, "xml", &v)) {
				fputs(json_object_get_string(v), stdout);
			} else if (json_object_object_get_ex(render, "argv", &v)) {
				for (size_t i = 0; i < json_object_array_length(v); i++)
					printf("%s\n", json_object_get_string(json_object_array_get_idx(v, i)));
			}
			if (json_object_object_get_ex(render, "missing", &v))
				fprintf(stderr, "cvmm: not in this rendering (their mode cannot dry-run): %s\n",
					json_object_get_string(v));
		} else {
			print_json(reply);
		}
	} else if (r == 0) {
		const char *id = get_str(reply, "id"), *state = get_str(reply, "state");

		printf("%s: %s%s%s%s\n", get_str(reply, "name") ?: argv[optind], state ?: "created",
		       id ? " (id " : "", id ?: "", id ? ")" : "");
	}

cleanup:
	json_object_put(reply);
	json_object_put(body);
	return r;
}

static int cmd_list(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	static const char table_path[] = "/v1/vms?fields=id,name,state,vcpu,memory_mb,backend,ports";
	json_object *reply = NULL, *vms = NULL;
	struct http_response resp;
	int r = simple_args(cmd, argc, argv, 0, NULL);

	if (r)
		return r < 0 ? 0 : r;
	if (!cli->json) {
		/* The table needs seven fields: asking for only those keeps a
		 * list of a thousand VMs cheap to send, and jscan reads it
		 * without building a json-c tree (two thirds of the command). */
		r = http_request(cli->http, "GET", table_path, NULL, NULL, NULL, &resp);
		if (r < 0)
			return transport_exit(cli, r);
		if (resp.status < 200 || resp.status > 299)
			r = report_refusal(cli, &resp);
		else if (print_vm_table_text(resp.body, resp.len) < 0)
			r = -1; /* not what jscan takes: asked again, for json-c */
		http_response_free(&resp);
		if (r >= 0)
			return r;
	}
	r = call(cli, "GET", cli->json ? "/v1/vms" : table_path, NULL, &reply);
	if (r == 0 && cli->json)
		print_json(reply);
	else if (r == 0 && json_object_object_get_ex(reply, "vms", &vms))
		print_vm_table(vms);
	else if (r == 0)
		print_json(reply); /* not the README's shape: show what came */
	json_object_put(reply);
	return r;
}

/* The GPUs gpu-vfio offers, as a table (GET /v1/gpus). */
static int cmd_gpus(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	json_object *reply = NULL, *gpus = NULL;
	int r = simple_args(cmd, argc, argv, 0, NULL);

	if (r)
		return r < 0 ? 0 : r;
	r = call(cli, "GET", "/v1/gpus", NULL, &reply);
	if (r == 0 && cli->json) {
		print_json(reply);
	} else if (r == 0 && json_object_object_get_ex(reply, "gpus", &gpus)) {
		printf("%-13s %-9s %-9s %-4s %-5s %-13s %-13s %-12s %s\n", "SLOT", "KIND", "ID", "NODE",
		       "GROUP", "SWITCH", "PEER NIC", "DRIVER", "VM");
		for (size_t i = 0; i < json_object_array_length(gpus); i++) {
			json_object *g = json_object_array_get_idx(gpus, i), *v;
			char id[16];
			snprintf(id, sizeof(id), "%s:%s", get_str(g, "vendor") ?: "?",
				 get_str(g, "device") ?: "?");
			int node = json_object_object_get_ex(g, "numa_node", &v) ? json_object_get_int(v) : -1;
			int grp = json_object_object_get_ex(g, "iommu_group", &v) ? json_object_get_int(v) : -1;
			printf("%-13s %-9s %-9s %-4d %-5d %-13s %-13s %-12s %s\n", get_str(g, "slot") ?: "?",
			       get_str(g, "kind") ?: "?", id, node, grp, get_str(g, "switch") ?: "-",
			       get_str(g, "peer_nic") ?: "-", get_str(g, "driver") ?: "-",
			       get_str(g, "vm") ?: "-");
		}
	} else if (r == 0) {
		print_json(reply);
	}
	json_object_put(reply);
	return r;
}

/* The readiness report (GET /v1/host/check) as a table; the fix of each
 * item that is not ok on the line below it. Exit status 1 when an item
 * fails (a script can gate on it), 0 otherwise. */
static int cmd_check(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	json_object *reply = NULL, *items = NULL, *v;
	int r = simple_args(cmd, argc, argv, 0, NULL);

	if (r)
		return r < 0 ? 0 : r;
	r = call(cli, "GET", "/v1/host/check", NULL, &reply);
	if (r == 0 && cli->json) {
		print_json(reply);
	} else if (r == 0 && json_object_object_get_ex(reply, "items", &items)) {
		printf("%-24s %-6s %s\n", "ITEM", "STATUS", "DETAIL");
		for (size_t i = 0; i < json_object_array_length(items); i++) {
			json_object *it = json_object_array_get_idx(items, i);
			const char *fix = get_str(it, "fix");
			printf("%-24s %-6s %s\n", get_str(it, "name") ?: "?",
			       get_str(it, "status") ?: "?", get_str(it, "detail") ?: "");
			if (fix && *fix)
				printf("%-24s %-6s fix: %s\n", "", "", fix);
		}
		int warn = json_object_object_get_ex(reply, "warn", &v) ? json_object_get_int(v) : 0;
		int fail = json_object_object_get_ex(reply, "fail", &v) ? json_object_get_int(v) : 0;
		int ok = json_object_object_get_ex(reply, "ok", &v) ? json_object_get_int(v) : 0;
		printf("\n%d ok, %d warn, %d fail\n", ok, warn, fail);
	} else if (r == 0) {
		print_json(reply);
	}
	if (r == 0 && json_object_object_get_ex(reply, "fail", &v) && json_object_get_int(v) > 0)
		r = 1;
	json_object_put(reply);
	return r;
}

static int cmd_info(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	json_object *reply = NULL;
	const char *vm = NULL;
	char *path;
	int r = simple_args(cmd, argc, argv, 1, &vm);

	if (r)
		return r < 0 ? 0 : r;
	if (!(path = vm_path(cli, vm, "")))
		return out_of_memory();
	r = call(cli, "GET", path, NULL, &reply);
	if (r == 0 && cli->json)
		print_json(reply);
	else if (r == 0)
		print_vm_info(reply);
	json_object_put(reply);
	free(path);
	return r;
}

/* start, restart, kill: no options, no body. */
static int cmd_action(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	const char *vm = NULL;
	int r = simple_args(cmd, argc, argv, 1, &vm);

	if (r)
		return r < 0 ? 0 : r;
	return vm_action(cli, vm, cmd->name, NULL, "requested");
}

static int cmd_stop(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {{"force", no_argument, NULL, 'f'},
	                                     {"timeout", required_argument, NULL, 't'},
	                                     HELP_OPTION,
	                                     {0}};
	json_object *body = json_object_new_object();
	const char *vm;
	long long n;
	int c, r = 0;

	optind = 0;
	while (r == 0 && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			json_object_object_add(body, "force", json_object_new_boolean(1));
			break;
		case 't':
			if (!(r = parse_number(cmd, "--timeout", optarg, 0, INT32_MAX, &n)))
				json_object_object_add(body, "timeout", json_object_new_int64(n));
			break;
		case 'h':
			print_command_usage(stdout, cmd);
			goto cleanup;
		default:
			r = option_error(cmd, c, argv);
		}
	}
	if (r == 0)
		r = (vm = one_vm(cmd, argc, argv)) ? vm_action(cli, vm, "stop", body, "stopping")
		                                   : EXIT_USAGE;

cleanup:
	json_object_put(body);
	return r;
}

static int cmd_remove(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	json_object *reply = NULL;
	const char *vm = NULL, *id;
	char *path;
	int r = simple_args(cmd, argc, argv, 1, &vm);

	if (r)
		return r < 0 ? 0 : r;
	if (!(path = vm_path(cli, vm, "")))
		return out_of_memory();
	r = call(cli, "DELETE", path, NULL, &reply);
	id = get_str(reply, "removed");
	if (r == 0 && cli->json)
		print_json(reply);
	else if (r == 0 && id && strcmp(id, vm))
		printf("%s: removed (id %s)\n", vm, id);
	else if (r == 0)
		printf("%s: removed\n", vm);
	json_object *kept = NULL;
	if (r == 0 && !cli->json && json_object_object_get_ex(reply, "kept_volumes", &kept))
		for (size_t i = 0; i < json_object_array_length(kept); i++)
			printf("%s: volume kept: %s\n", vm,
			       json_object_get_string(json_object_array_get_idx(kept, i)));
	json_object_put(reply);
	free(path);
	return r;
}

/* snapshot create|list|revert|delete VM [NAME] */
static int cmd_snapshot(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {HELP_OPTION, {0}};
	json_object *reply = NULL, *body = NULL, *list = NULL;
	char *id = NULL, *path = NULL, *esc = NULL, *suffix = NULL;
	const char *sub, *vm, *name = NULL;
	int c, r = 0;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c != 'h')
			return option_error(cmd, c, argv);
		print_command_usage(stdout, cmd);
		return 0;
	}
	if (argc - optind < 2)
		return usage_error(cmd, "give an operation (create, list, revert, delete) and a VM");
	sub = argv[optind];
	vm = argv[optind + 1];
	bool is_list = !strcmp(sub, "list");
	if (!is_list && strcmp(sub, "create") && strcmp(sub, "revert") && strcmp(sub, "delete"))
		return usage_error(cmd, "unknown operation '%s' (create, list, revert, delete)", sub);
	if (!is_list && argc - optind < 3)
		return usage_error(cmd, "snapshot %s needs the snapshot's NAME", sub);
	if (argc - optind > (is_list ? 2 : 3))
		return usage_error(cmd, "unexpected argument '%s'", argv[optind + (is_list ? 2 : 3)]);
	if (!is_list)
		name = argv[optind + 2];
	if ((r = resolve(cli, vm, &id)))
		return r;
	if (!strcmp(sub, "create") || is_list) {
		path = vm_path(cli, id, "/snapshots");
	} else {
		esc = http_escape(cli->http, name);
		if (esc && asprintf(&suffix, "/snapshots/%s%s", esc,
		                    !strcmp(sub, "revert") ? "/revert" : "") < 0)
			suffix = NULL;
		path = suffix ? vm_path(cli, id, suffix) : NULL;
	}
	if (!path) {
		r = out_of_memory();
		goto cleanup;
	}
	if (!strcmp(sub, "create")) {
		body = json_object_new_object();
		json_object_object_add(body, "name", json_object_new_string(name));
	}
	r = call(cli, is_list ? "GET" : !strcmp(sub, "delete") ? "DELETE" : "POST", path,
	         !strcmp(sub, "revert") ? (body = json_object_new_object()) : body, &reply);
	if (r)
		goto cleanup;
	if (cli->json) {
		print_json(reply);
	} else if (is_list && json_object_object_get_ex(reply, "snapshots", &list)) {
		printf("%-24s %s\n", "NAME", "CREATED");
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			json_object *s = json_object_array_get_idx(list, i), *v;
			time_t t = json_object_object_get_ex(s, "created", &v)
			               ? (time_t)json_object_get_int64(v)
			               : 0;
			char when[64] = "-";
			struct tm tm;
			if (t && gmtime_r(&t, &tm))
				strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
			printf("%-24s %s\n", get_str(s, "name") ?: "?", when);
		}
	} else {
		printf("%s: snapshot '%s' %s\n", vm, name ?: "",
		       !strcmp(sub, "create") ? "created" : !strcmp(sub, "revert") ? "reverted to" : "deleted");
	}

cleanup:
	json_object_put(reply);
	json_object_put(body);
	free(path);
	free(suffix);
	free(esc);
	free(id);
	return r;
}

/* resize VM --disk-gb N */
static int cmd_resize(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {{"disk-gb", required_argument, NULL, 'd'},
	                                     HELP_OPTION,
	                                     {0}};
	json_object *body = json_object_new_object();
	const char *vm;
	long long n;
	int c, r = 0;
	bool have = false;

	optind = 0;
	while (r == 0 && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (!(r = parse_number(cmd, "--disk-gb", optarg, 1, 65536, &n))) {
				json_object_object_add(body, "disk_gb", json_object_new_int64(n));
				have = true;
			}
			break;
		case 'h':
			print_command_usage(stdout, cmd);
			goto cleanup;
		default:
			r = option_error(cmd, c, argv);
		}
	}
	if (r == 0 && !have)
		r = usage_error(cmd, "--disk-gb is required");
	if (r == 0)
		r = (vm = one_vm(cmd, argc, argv)) ? vm_action(cli, vm, "resize", body, "resized")
		                                   : EXIT_USAGE;

cleanup:
	json_object_put(body);
	return r;
}

static int write_stdout(const char *buf, size_t len, void *data)
{
	(void)data;
	/* Flushed per chunk so that "logs -f" shows each line as it comes. */
	return fwrite(buf, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : -1;
}

/* The console is text/plain, so --json changes nothing here. */
static int cmd_logs(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {{"follow", no_argument, NULL, 'f'},
	                                     {"tail", required_argument, NULL, 'n'},
	                                     HELP_OPTION,
	                                     {0}};
	struct http_response resp = {0};
	char *id = NULL, *path = NULL, *suffix = NULL, query[64] = "";
	const char *vm;
	long long tail = -1;
	int c, follow = 0, r = 0;

	optind = 0;
	while (r == 0 && (c = getopt_long(argc, argv, ":fn:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			follow = 1;
			break;
		case 'n':
			r = parse_number(cmd, "-n", optarg, 0, INT32_MAX, &tail);
			break;
		case 'h':
			print_command_usage(stdout, cmd);
			return 0;
		default:
			r = option_error(cmd, c, argv);
		}
	}
	if (r)
		return r;
	if (!(vm = one_vm(cmd, argc, argv)))
		return EXIT_USAGE;
	if ((r = resolve(cli, vm, &id)))
		return r;
	if (tail >= 0)
		snprintf(query, sizeof(query), "?tail=%lld", tail);
	if (follow)
		strcat(query, tail >= 0 ? "&follow=1" : "?follow=1");
	if (asprintf(&suffix, "/logs%s", query) < 0) {
		suffix = NULL;
		r = out_of_memory();
		goto cleanup;
	}
	if (!(path = vm_path(cli, id, suffix))) {
		r = out_of_memory();
		goto cleanup;
	}
	/* Runs until the daemon ends the body; Ctrl-C simply ends the process.
	 * Following, the time limit only covers the wait for the reply. */
	if (follow)
		http_client_set_stream(cli->http, 1);
	r = http_request(cli->http, "GET", path, NULL, write_stdout, NULL, &resp);
	if (r < 0)
		r = transport_exit(cli, r);
	else if (resp.status < 200 || resp.status > 299)
		r = report_refusal(cli, &resp);

cleanup:
	http_response_free(&resp);
	free(path);
	free(suffix);
	free(id);
	return r;
}

/* ---- console ------------------------------------------------------------------ */

#define DETACH_KEY 0x1d /* Ctrl-], as virsh console */

static struct termios saved_tty;
static int tty_raw;

static void restore_tty(void)
{
	if (tty_raw)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	tty_raw = 0;
}

static int write_all(int fd, const char *buf, size_t n)
{
	while (n) {
		ssize_t w = write(fd, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};

			poll(&p, 1, -1);
			continue;
		}
		if (w <= 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Copies the stream to stdout and stdin to the stream until the detach key,
 * the end of the stream, or a write error. Returns an exit code. */
static int console_session(struct cli *cli, int readonly)
{
	struct http_client *h = cli->http;
	char out[4096], in[4096];
	size_t in_len = 0;
	int stdin_open = 1, detached = 0;

	for (;;) {
		struct pollfd p[2] = {{.fd = http_stream_fd(h)}, {.fd = STDIN_FILENO, .events = POLLIN}};
		ssize_t n;

		/* Stream first: bytes already read from the socket are not seen
		 * by poll(). */
		if (!http_stream_pending(h)) {
			p[0].events = http_stream_events(h, (short)(POLLIN | (in_len ? POLLOUT : 0)));
			if (in_len) /* TLS: wanting to write may still mean reading */
				p[0].events |= POLLIN;
			if (poll(p, stdin_open && in_len < sizeof(in) ? 2 : 1, -1) < 0) {
				if (errno == EINTR)
					continue;
				break;
			}
		} else {
			p[0].revents = POLLIN;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = http_stream_read(h, out, sizeof(out));
			if (n == 0)
				break;
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				break;
			if (n > 0 && write_all(STDOUT_FILENO, out, (size_t)n) < 0) {
				restore_tty();
				fprintf(stderr, "cvmm: cannot write output: %s\n", strerror(errno));
				return EXIT_REFUSED;
			}
		}
		if (in_len && (p[0].revents & (POLLOUT | POLLIN))) {
			n = http_stream_write(h, in, in_len);
			if (n > 0) {
				memmove(in, in + n, in_len - (size_t)n);
				in_len -= (size_t)n;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				break;
			}
		}
		if (stdin_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			char key[1024];
			char *stop;

			n = read(STDIN_FILENO, key, sizeof(key) < sizeof(in) - in_len ? sizeof(key)
			                                                               : sizeof(in) - in_len);
			if (n <= 0) {
				/* Input ended (a pipe): keep showing the console. */
				stdin_open = 0;
				continue;
			}
			stop = memchr(key, DETACH_KEY, (size_t)n);
			if (stop)
				n = stop - key;
			if (!readonly) {
				memcpy(in + in_len, key, (size_t)n);
				in_len += (size_t)n;
			}
			if (stop) {
				detached = 1;
				/* What came before the key still goes out. */
				while (in_len) {
					ssize_t w = http_stream_write(h, in, in_len);
					struct pollfd q = {.fd = http_stream_fd(h),
					                   .events = http_stream_events(h, POLLOUT)};

					if (w > 0) {
						memmove(in, in + w, in_len - (size_t)w);
						in_len -= (size_t)w;
					} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
						break;
					} else if (poll(&q, 1, 2000) <= 0) {
						break;
					}
				}
				break;
			}
		}
	}
	restore_tty();
	if (!detached)
		fputs("\r\ncvmm: the console closed (the VM stopped, or the daemon ended the "
		      "session)\r\n",
		      stderr);
	return 0;
}

static int cmd_console(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {{"readonly", no_argument, NULL, 'r'}, HELP_OPTION, {0}};
	struct http_response resp = {0};
	char *path = NULL;
	const char *vm;
	int c, readonly = 0, r = 0;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":rh", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			readonly = 1;
			break;
		case 'h':
			print_command_usage(stdout, cmd);
			return 0;
		default:
			return option_error(cmd, c, argv);
		}
	}
	if (!(vm = one_vm(cmd, argc, argv)))
		return EXIT_USAGE;
	if (!(path = vm_path(cli, vm, readonly ? "/console?readonly=1" : "/console")))
		return out_of_memory();
	r = http_upgrade(cli->http, path, "cvmm-console", &resp);
	free(path);
	if (r < 0)
		return transport_exit(cli, r);
	if (resp.status != 101) {
		r = report_refusal(cli, &resp);
		http_response_free(&resp);
		return r;
	}
	http_response_free(&resp);
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tty) == 0) {
		struct termios raw = saved_tty;

		cfmakeraw(&raw);
		if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0) {
			tty_raw = 1;
			atexit(restore_tty);
		}
	}
	fprintf(stderr, "Connected to the console of VM '%s'%s (detach: Ctrl-])\r\n", vm,
	        readonly ? ", read-only" : "");
	return console_session(cli, readonly);
}

/* host, plugins, images: GET /v1/<name>, shown generically. */
static int cmd_show(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	json_object *reply = NULL;
	char path[64];
	int r = simple_args(cmd, argc, argv, 0, NULL);

	if (r)
		return r < 0 ? 0 : r;
	snprintf(path, sizeof(path), "/v1/%s", cmd->name);
	r = call(cli, "GET", path, NULL, &reply);
	if (r == 0 && cli->json)
		print_json(reply);
	else if (r == 0 && !strcmp(cmd->name, "host"))
		print_object(reply);
	else if (r == 0)
		print_listing(reply);
	json_object_put(reply);
	return r;
}

/* image import NAME FILE [--firmware bios|uefi] [--cloud-init]; image
 * remove NAME. The daemon reads FILE: a path on its host, made absolute here. */
static int cmd_image(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {{"firmware", required_argument, NULL, 'f'},
	                                     {"cloud-init", no_argument, NULL, 'c'},
	                                     HELP_OPTION,
	                                     {0}};
	json_object *body = json_object_new_object(), *reply = NULL;
	const char *firmware = NULL;
	int cloud_init = 0, c, r = 0;
	char *path = NULL, *abs = NULL;

	optind = 0;
	while (r == 0 && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			firmware = optarg;
			break;
		case 'c':
			cloud_init = 1;
			break;
		case 'h':
			print_command_usage(stdout, cmd);
			goto cleanup;
		default:
			r = option_error(cmd, c, argv);
		}
	}
	if (r)
		goto cleanup;
	const char *verb = optind < argc ? argv[optind] : "";
	if (!strcmp(verb, "import")) {
		if (argc - optind != 3) {
			r = usage_error(cmd, "image import needs NAME and FILE");
			goto cleanup;
		}
		const char *file = argv[optind + 2];
		abs = file[0] == '/' ? strdup(file) : realpath(file, NULL);
		if (!abs) {
			fprintf(stderr, "cvmm: %s: %s\n", file, strerror(errno));
			r = EXIT_USAGE;
			goto cleanup;
		}
		json_object_object_add(body, "name", json_object_new_string(argv[optind + 1]));
		json_object_object_add(body, "file", json_object_new_string(abs));
		if (firmware)
			json_object_object_add(body, "firmware", json_object_new_string(firmware));
		json_object_object_add(body, "cloud_init", json_object_new_boolean(cloud_init));
		r = call(cli, "POST", "/v1/images", body, &reply);
		if (r == 0 && cli->json)
			print_json(reply);
		else if (r == 0)
			printf("%s: imported\n", argv[optind + 1]);
	} else if (!strcmp(verb, "remove") || !strcmp(verb, "rm")) {
		if (argc - optind != 2 || firmware || cloud_init) {
			r = usage_error(cmd, "image remove needs NAME (and no options)");
			goto cleanup;
		}
		if (asprintf(&path, "/v1/images/%s", argv[optind + 1]) < 0) {
			path = NULL;
			r = out_of_memory();
			goto cleanup;
		}
		r = call(cli, "DELETE", path, NULL, &reply);
		if (r == 0 && cli->json)
			print_json(reply);
		else if (r == 0)
			printf("%s: removed\n", argv[optind + 1]);
	} else {
		r = usage_error(cmd, "expected import or remove, got '%s'", verb);
	}
cleanup:
	json_object_put(body);
	json_object_put(reply);
	free(path);
	free(abs);
	return r;
}

/* ---- events ------------------------------------------------------------------ */

struct event_stream {
	int json;
	long long left;  /* events still to print; < 0: no limit */
	int done;        /* --count reached: the transfer is ended on purpose */
	char line[8192]; /* the line being read */
	size_t line_len;
	char data[8192]; /* the event's data lines so far */
	size_t data_len;
};

/* One event: its JSON, or a line in the manner of `virsh event --loop`. */
static int print_event(struct event_stream *es)
{
	json_object *o = json_tokener_parse(es->data), *v = NULL;
	const char *type = get_str(o, "type"), *msg = get_str(o, "message");

	if (!o || !type) {
		json_object_put(o);
		return 0; /* not ours: a stream may carry other data */
	}
	if (es->json) {
		print_json(o);
	} else if (!strcmp(type, "lost")) {
		printf("events lost: %s\n", msg ? msg : "");
	} else {
		double t = json_object_object_get_ex(o, "time", &v) ? json_object_get_double(v) : 0;
		time_t secs = (time_t)t;
		struct tm tm;
		char when[64] = "", zone[8] = "";

		if (localtime_r(&secs, &tm)) {
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
			strftime(zone, sizeof(zone), "%z", &tm);
		}
		printf("%s.%03d%s event '%s' for VM '%s': %s\n", when,
		       (int)((t - (double)secs) * 1000), zone, type, get_str(o, "name") ?: "",
		       msg ? msg : "");
	}
	json_object_put(o);
	if (fflush(stdout) != 0)
		return -1;
	if (es->left > 0 && --es->left == 0) {
		es->done = 1;
		return -1; /* ends the transfer */
	}
	return 0;
}

/* The Server-Sent Events text as it arrives: data lines are gathered, a
 * blank line ends an event, comments (the keep-alives) are skipped. */
static int on_events(const char *buf, size_t len, void *data)
{
	struct event_stream *es = data;

	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\n') {
			if (es->line_len + 1 < sizeof(es->line))
				es->line[es->line_len++] = buf[i];
			continue;
		}
		es->line[es->line_len] = 0;
		if (es->line_len && es->line[es->line_len - 1] == '\r')
			es->line[--es->line_len] = 0;
		if (!es->line_len) {
			if (es->data_len && print_event(es) < 0)
				return -1;
			es->data_len = 0;
			es->data[0] = 0;
		} else if (!strncmp(es->line, "data:", 5)) {
			const char *d = es->line + 5 + (es->line[5] == ' ');
			size_t n = strlen(d);

			if (es->data_len + n + 2 < sizeof(es->data)) {
				if (es->data_len)
					es->data[es->data_len++] = '\n';
				memcpy(es->data + es->data_len, d, n + 1);
				es->data_len += n;
			}
		}
		es->line_len = 0;
	}
	return 0;
}

/* Runs until interrupted (or --count events came), like `virsh event --loop`. */
static int cmd_events(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {{"type", required_argument, NULL, 't'},
	                                     {"count", required_argument, NULL, 'c'},
	                                     HELP_OPTION,
	                                     {0}};
	struct event_stream *es = calloc(1, sizeof(*es));
	struct http_response resp = {0};
	char *types = NULL, *path = NULL, *vm_q = NULL, *type_q = NULL;
	long long count = -1;
	int c, r = 0;

	if (!es)
		return out_of_memory();
	optind = 0;
	while (r == 0 && (c = getopt_long(argc, argv, ":t:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 't': {
			/* --type a --type b and --type a,b say the same. */
			char *t = NULL;

			if (asprintf(&t, "%s%s%s", types ? types : "", types ? "," : "", optarg) < 0)
				r = out_of_memory();
			else {
				free(types);
				types = t;
			}
			break;
		}
		case 'c':
			r = parse_number(cmd, "--count", optarg, 1, INT32_MAX, &count);
			break;
		case 'h':
			print_command_usage(stdout, cmd);
			goto cleanup;
		default:
			r = option_error(cmd, c, argv);
		}
	}
	if (r)
		goto cleanup;
	if (optind + 1 < argc) {
		r = usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
		goto cleanup;
	}
	/* The VM is not looked up: the events of one created later count too.
	 * An empty vm= or type= filters nothing. */
	if (!(vm_q = http_escape(cli->http, optind < argc ? argv[optind] : "")) ||
	    !(type_q = http_escape(cli->http, types ? types : "")) ||
	    asprintf(&path, "/v1/events?vm=%s&type=%s", vm_q, type_q) < 0) {
		path = NULL;
		r = out_of_memory();
		goto cleanup;
	}
	es->json = cli->json;
	es->left = count;
	/* The time limit covers the wait for the reply, not the stream. */
	http_client_set_stream(cli->http, 1);
	r = http_request(cli->http, "GET", path, NULL, on_events, es, &resp);
	if (r < 0 && es->done) {
		r = 0;
	} else if (r < 0) {
		r = transport_exit(cli, r);
	} else if (resp.status < 200 || resp.status > 299) {
		r = report_refusal(cli, &resp);
	} else {
		fputs("cvmm: the daemon ended the event stream (it is stopping)\n", stderr);
		r = EXIT_UNREACHABLE;
	}

cleanup:
	http_response_free(&resp);
	free(path);
	free(vm_q);
	free(type_q);
	free(types);
	free(es);
	return r;
}

static const struct command commands[] = {
    {"create", cmd_create,
     "NAME --image IMAGE [--vcpu N] [--memory MB] [--disk GB]\n"
     "              [--net MODE[,key=value...]]... [--port [PROTO:][ADDR:]HOSTPORT:VMPORT]...\n"
     "              [--backend NAME] [--gpu SLOT|all|count=N]... [--topology mirror|nccl|none]\n"
     "              [--no-start] [--dry-run] [--env-file FILE [--app-id HEX40]] [--kms-url URL]...\n"
     "              [--volume name=N,size_gb=G[,keep] | source=PATH[,readonly]]...",
     "create a VM (and start it unless --no-start)"},
    {"list", cmd_list, "", "list the VMs"},
    {"gpus", cmd_gpus, "", "list the GPUs and NVSwitches gpu-vfio offers"},
    {"info", cmd_info, "VM", "show one VM"},
    {"start", cmd_action, "VM", "start a VM"},
    {"stop", cmd_stop, "VM [--force] [--timeout S]", "stop a VM (ACPI, then forced)"},
    {"restart", cmd_action, "VM", "restart a VM"},
    {"kill", cmd_action, "VM", "kill a VM's process at once"},
    {"remove", cmd_remove, "VM", "stop (forced) and remove a VM; alias: rm"},
    {"logs", cmd_logs, "VM [-f] [-n N]", "print the serial console (-f: keep following)"},
    {"console", cmd_console, "VM [--readonly]",
     "attach to the serial console to read and type (detach: Ctrl-])"},
    {"pause", cmd_action, "VM", "pause a running VM (its vCPUs stop)"},
    {"resume", cmd_action, "VM", "resume a paused VM"},
    {"snapshot", cmd_snapshot, "create|list|revert|delete VM [NAME]",
     "disk snapshots of a stopped VM"},
    {"resize", cmd_resize, "VM --disk-gb N", "grow a stopped VM's disk (never shrinks)"},
    {"host", cmd_show, "", "show the host: version, limits, usage, backends"},
    {"plugins", cmd_show, "", "list the loaded plugins"},
    {"check", cmd_check, "", "is this host ready for GPU VMs (exit 1 if an item fails)"},
    {"images", cmd_show, "", "list the images"},
    {"image", cmd_image, "import NAME FILE [--firmware bios|uefi] [--cloud-init] | remove NAME",
     "make an image from a qcow2 or raw disk file on the daemon's host, or remove one"},
    {"events", cmd_events, "[VM] [--type T[,T...]]... [--count N]",
     "print VM events as they happen, until interrupted (--count: stop after N)"},
    {NULL, NULL, NULL, NULL},
};

static const struct command *find_command(const char *name)
{
	if (!strcmp(name, "rm"))
		name = "remove";
	for (const struct command *c = commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
	                                     {"url", required_argument, NULL, 'u'},
	                                     {"token", required_argument, NULL, 't'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {"timeout", required_argument, NULL, 'T'},
	                                     {"cacert", required_argument, NULL, 'c'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {"version", no_argument, NULL, 'V'},
	                                     {0}};
	const char *socket_path = NULL, *url = NULL, *token = NULL, *cacert = NULL;
	long long timeout_s = HTTP_TOTAL_TIMEOUT_MS / 1000;
	const struct command *cmd;
	struct cli cli = {0};
	int c, r;
	char *argv0[argc + 1];

	/* The commands' getopt_long may permute argv, and --json is taken out
	 * of it below: exec_full() needs it as it was. */
	memcpy(argv0, argv, sizeof(char *) * (size_t)(argc + 1));
	orig_argv = argv0;
	/* "+": options end at the command; the command parses its own. */
	while ((c = getopt_long(argc, argv, "+:hV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			socket_path = optarg;
			break;
		case 'u':
			url = optarg;
			break;
		case 't':
			token = optarg;
			break;
		case 'c':
			cacert = optarg;
			break;
		case 'j':
			cli.json = 1;
			break;
		case 'T':
			if ((r = parse_number(NULL, "--timeout", optarg, 0, 86400 * 365, &timeout_s)))
				return r;
			break;
		case 'h':
			print_help();
			return 0;
		case 'V':
			printf("cvmm %s\n", CVMM_VERSION);
			return 0;
		default:
			return option_error(NULL, c, argv);
		}
	}
	if (optind >= argc)
		return usage_error(NULL, "no command given");
	if (!(cmd = find_command(argv[optind])))
		return usage_error(NULL, "unknown command '%s'", argv[optind]);
	/* `cvmm list --json` reads naturally: accept --json after the command
	 * too (before a "--"), taking it out of the command's own arguments. */
	for (int i = optind + 1; i < argc && strcmp(argv[i], "--");) {
		if (strcmp(argv[i], "--json")) {
			i++;
			continue;
		}
		cli.json = 1;
		memmove(&argv[i], &argv[i + 1], sizeof(char *) * (size_t)(argc - i)); /* with NULL */
		argc--;
	}
	if (socket_path && url)
		return usage_error(NULL, "--socket and --url exclude each other");
	if (socket_path && !*socket_path)
		return usage_error(NULL, "--socket needs a path");
	if (url && strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
		return usage_error(NULL, "--url '%s': expected http://HOST:PORT or https://HOST:PORT",
		                   url);
#ifdef CVMM_CLI_STATIC
	if (url)
		return exec_full("--url");
#endif
	if (!cacert)
		cacert = getenv("CVMM_CACERT");
	if (cacert && !*cacert)
		cacert = NULL;
	if (cacert && (!url || strncmp(url, "https://", 8)))
		return usage_error(NULL, "--cacert (or CVMM_CACERT) goes with --url https://...");
	if (!url && !socket_path)
		socket_path = getenv("CVMM_SOCKET");
	if (!url && (!socket_path || !*socket_path))
		socket_path = DEFAULT_SOCKET;
	if (!token)
		token = getenv("CVMM_TOKEN");
	if (token && !*token)
		token = NULL;
	cli.have_token = token != NULL;
	cli.tcp = url != NULL;

	/* A daemon that goes away mid-request, or a closed stdout pipe ("cvmm
	 * logs -f | head"), is an error to report, not a signal to die of. */
	signal(SIGPIPE, SIG_IGN);
	cli.http = http_client_new(socket_path, url, token);
	if (cli.http) {
		http_client_set_timeouts(cli.http, HTTP_CONNECT_TIMEOUT_MS, (long)timeout_s * 1000);
		http_client_set_cacert(cli.http, cacert);
		r = cmd->run(&cli, cmd, argc - optind, argv + optind);
	} else if (url) {
		r = usage_error(NULL, "--url '%s': expected http://HOST:PORT or https://HOST:PORT",
		                url);
	} else {
		r = out_of_memory();
	}
	http_client_free(cli.http);

	if (fflush(stdout) != 0 && r == 0) {
		fprintf(stderr, "cvmm: cannot write output: %s\n", strerror(errno));
		r = EXIT_REFUSED;
	}
	return r;
}
