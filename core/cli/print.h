/*
 * print: the CLI's human renderings of the daemon's JSON (the VM table, a
 * VM's key: value block, generic listings and objects) and the --json form.
 */
#ifndef CVMM_CLI_PRINT_H
#define CVMM_CLI_PRINT_H

#include <json-c/json.h>

/* The server's JSON, pretty-printed, for --json. */
void print_json(json_object *o);

/* NAME ID STATE VCPU MEM(MB) BACKEND PORTS, one row per VM of the array. */
void print_vm_table(json_object *vms);
/* The same table from the text of GET /v1/vms (jscan, no json-c tree),
 * which it modifies; -1 when the text is not a {"vms": [...]} this reader
 * takes (the text is then unusable). */
int print_vm_table_text(char *body, size_t len);

/* One VM as aligned "Key: value" lines. */
void print_vm_info(json_object *vm);

/* A reply holding one array of objects ({"plugins": [...]}) as a table;
 * anything else as an object. */
void print_listing(json_object *reply);

/* Any object as aligned "key: value" lines, nested objects indented. */
void print_object(json_object *o);

#endif
