/*
 * Fuzz target: validation of a create request (vm_from_request in
 * core/vm.c), with the daemon's configuration and the real plugins loaded
 * (backend-qemu, net-user: their backends and network modes are the ones
 * checked), and no loop. Input: the request body, parsed as the API does
 * (strict JSON). An accepted request must give a VM whose every field
 * obeys its rule, and whose manifest reads back to the same definition.
 */
#include "daemon.h"
#include "fuzz_env.h"
#include "registry.h"
#include "vm.h"

static struct cvmm_config cfg;
static struct cvmm_daemon *d;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(-1);
	fuzz_env_images();
	char *addr = xasprintf("unix:%s/run/cvmm.sock", fuzz_dir);
	if (fuzz_env_config(&cfg, addr) < 0)
		abort();
	free(addr);
	char err[512];
	d = daemon_new(&cfg, err, sizeof(err));
	if (!d || registry_load_all(d->reg, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_create: %s\n", err);
		abort();
	}
	return 0;
}

static json_object *parse_strict(const uint8_t *data, size_t size)
{
	struct json_tokener *tok = json_tokener_new_ex(16);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	json_object *o = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return -1;
	json_object *req = parse_strict(data, size);
	if (!req)
		return 0;
	struct cvmm_vm *vm = NULL;
	bool start = false;
	char err[1024];
	err[0] = 0;
	int r = vm_from_request(d, req, &vm, &start, err, sizeof(err));
	json_object_put(req);
	if (r < 0) {
		CHECK(err[0] && !vm);
		/* The message goes out in a JSON error body: printable text. */
		return 0;
	}
	CHECK(vm_name_valid(vm->name) && strlen(vm->name) == strnlen(vm->name, sizeof(vm->name)));
	CHECK(!strcmp(vm->image, "tiny"));
	CHECK(vm->vcpu >= 1 && vm->vcpu <= 1024);
	CHECK(vm->memory_mb >= 16);
	CHECK(registry_backend(d->reg, vm->backend));
	/* "networks": [] is a VM without a NIC; absent is one default NIC. */
	CHECK(vm->n_nics >= 0 && vm->n_nics <= VM_MAX_NICS);
	for (int i = 0; i < vm->n_nics; i++)
		CHECK(registry_netmode(d->reg, vm_nic_param(vm, i, "mode")));
	for (int i = 0; i < vm->n_ports; i++)
		CHECK(vm->ports[i].host_port >= 1 && vm->ports[i].host_port <= 65535 &&
		      vm->ports[i].vm_port >= 1 && vm->ports[i].vm_port <= 65535);

	/* The definition survives the manifest. */
	char *t1 = vm_manifest_text(vm, NULL);
	json_object *o = json_tokener_parse(t1);
	CHECK(o);
	struct cvmm_vm *back = NULL;
	CHECK(vm_from_manifest(d, o, &back, err, sizeof(err)) == 0);
	json_object_put(o);
	char *t2 = vm_manifest_text(back, NULL);
	if (strcmp(t1, t2)) {
		fprintf(stderr, "manifest of a new VM does not read back:\n%s\n%s\n", t1, t2);
		abort();
	}
	free(t1);
	free(t2);
	vm_free(back);
	vm_free(vm);
	return 0;
}
