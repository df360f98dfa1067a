#ifndef CNFTABLES_SHIM_H
#define CNFTABLES_SHIM_H
#include <nftables/libnftables.h>
/* nfnetlink, to read the ruleset generation libnftables does not expose. */
#include <sys/socket.h>
#include <linux/netlink.h>
#endif
