/* The guest's side of the container's network (docs/VM.md, "Networking"). */
#pragma once

#include <stddef.h>

#include <jansson.h>

/* Configures the VM's NIC from the Create request's Networking object
 * ({"Interfaces": [{Name, MacAddress, IPAddress, PrefixLength, Gateway,
 * Mtu}]}): every field is checked first; NULL (no network) does nothing.
 * Returns 0 or a negative errno with a message in errbuf. */
int guest_net_configure(json_t *networking, char *errbuf, size_t errlen);

/* The validation alone (for tests): fills the parsed interface, if any. */
struct guest_net_iface {
        char name[16];
        unsigned char mac[6];
        char address[16], gateway[16];
        unsigned prefix, mtu;
};
int guest_net_parse(json_t *networking, struct guest_net_iface *ret, int *ret_count, char *errbuf, size_t errlen);
