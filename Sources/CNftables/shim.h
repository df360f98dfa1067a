#ifndef CNFTABLES_SHIM_H
#define CNFTABLES_SHIM_H
#include <nftables/libnftables.h>
#endif
