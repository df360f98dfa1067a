#!/usr/bin/env python3
"""Randomized oracle: Portcullis' classic Docker layouts against a real Docker (20.10, or 26.1).

    python3 scripts/docker-oracle.py [--seed N] [--count N] [--only I[,J...]]
                                     [--jobs N] [--keep-going] [--binary PATH]
                                     [--dockerd PATH --docker PATH] [--save DIR]

Each scenario is generated from a sub-seed derived from (seed, index): daemon
flags, user networks, containers, their addresses, networks and published
ports.  The scenario is played against a fresh dockerd running inside a
fresh network namespace (private data-root, exec-root and socket), and the
namespace's `iptables-save` and `ip6tables-save` (`#` lines dropped, chain
counters set to [0:0]) are compared byte for byte with `portcullis compile
POLICY --layout LAYOUT --backend iptables` for the equivalent policy, LAYOUT
the daemon version's (docker-20.10, docker-25 for 26.1)
(its IPv6 part follows a `#### ip6tables` line).  Some scenarios run the daemon
with `--experimental --ip6tables` (and `--ipv6 --fixed-cidr-v6`) and give some
networks an IPv6 subnet; those draws come from a second generator seeded from
the sub-seed, so the IPv4 part of every scenario is what it was before.  Some
then get history (stop, rm, network rm, a late connect) from a third.

Needs root, dockerd 20.10.x (or --dockerd, e.g. Docker 26.1 from
scripts/fetch-docker-26.sh) and its client (/usr/bin/docker, or --docker), iptables,
nsenter, ip, /bin/busybox (static).  Python standard library only.

Safety: dockerd only ever runs inside namespaces this script creates with
`ip netns add`; every namespace is deleted and every process started for it
is stopped (by PID) on every path, including failures and Ctrl-C.  All chosen
subnets and host addresses come from 198.18.0.0/15 (docker0 keeps
172.17.0.0/16 unless --bip 198.18.X.1/24 is drawn), IPv6 ones from the ULA
prefix fd98:18::/31 (docker0: fd98:19::/64).
See docs/oracle.md.
"""

import argparse
import difflib
import functools
import hashlib
import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_BINARY = os.path.join(REPO, ".build", "debug", "portcullis")
NS_PREFIX = "pcoracle-"
IMAGE = "tiny:1"
EPHEMERAL_LOW = 32768

NET_NAMES = ["alpha", "apps", "back", "bravo", "cache", "delta", "front", "mgmt",
             "store", "zulu"]
CONT_NAMES = ["web", "api", "db", "proxy", "worker", "queue", "c1", "c2", "edge",
              "ldap", "mail", "dns"]


# ------------------------------------------------------------------ model ----

class Net:
    def __init__(self, name, bridge, octet, internal=False, icc_off=False,
                 masq_off=False, host_binding=None, default=False):
        self.name, self.bridge, self.octet = name, bridge, octet
        self.internal, self.icc_off, self.masq_off = internal, icc_off, masq_off
        self.host_binding, self.default = host_binding, default
        self.v6 = False     # has an IPv6 subnet
        self.used = set()   # host numbers taken on a user network
        self.next_host = 2  # sequential allocation on the default bridge

    @property
    def subnet6(self):
        return "fd98:19::/64" if self.default else "fd98:18:%d::/64" % self.octet

    def addr6(self, addr4):
        """The container's IPv6 address beside IPv4 address addr4: on docker0 Docker
        derives it from the MAC address, itself 02:42 + the IPv4 address; on a user
        network the scenario gives it (--ip6) with the IPv4 host number."""
        a = [int(x) for x in addr4.split(".")]
        if self.default:
            return "fd98:19::242:%x:%x" % (a[0] << 8 | a[1], a[2] << 8 | a[3])
        return "fd98:18:%d::%x" % (self.octet, a[3])

    @property
    def subnet(self):
        if self.default and self.octet is None:
            return "172.17.0.0/16"
        return "198.18.%d.0/24" % self.octet

    def addr(self, host):
        if self.default and self.octet is None:
            return "172.17.0.%d" % host
        return "198.18.%d.%d" % (self.octet, host)


class Pub:
    """One -p spec.  hp is None for a daemon-chosen host port (-p CP)."""

    def __init__(self, hostip, hp, cp, length, proto):
        self.hostip, self.hp, self.cp, self.length, self.proto = hostip, hp, cp, length, proto
        self.chosen = None  # the daemon's port, written `chosen PORT` (history scenarios)

    def docker(self):
        cps = str(self.cp) if self.length == 1 else "%d-%d" % (self.cp, self.cp + self.length - 1)
        suffix = "/udp" if self.proto == "udp" else ""
        if self.hp is None:
            return (self.host_prefix() + ":" if self.hostip else "") + cps + suffix
        hps = str(self.hp) if self.length == 1 else "%d-%d" % (self.hp, self.hp + self.length - 1)
        return self.host_prefix() + hps + ":" + cps + suffix

    def host_prefix(self):
        if not self.hostip:
            return ""
        return ("[%s]:" if ":" in self.hostip else "%s:") % self.hostip

    def policy(self):
        cps = str(self.cp) if self.length == 1 else "%d-%d" % (self.cp, self.cp + self.length - 1)
        chosen = "" if self.chosen is None else " chosen %d" % self.chosen
        if self.hp is None and self.hostip:
            host = "[%s]" % self.hostip if ":" in self.hostip else self.hostip
            return "publish %s -> %s/%s%s" % (host, cps, self.proto, chosen)
        if self.hp is None:
            return "publish %s/%s%s" % (cps, self.proto, chosen)
        hps = str(self.hp) if self.length == 1 else "%d-%d" % (self.hp, self.hp + self.length - 1)
        return "publish %s%s -> %s/%s" % (self.host_prefix(), hps, cps, self.proto)


class Cont:
    def __init__(self, name):
        self.name = name
        self.attaches = []      # [(Net, address)], run network first
        self.pubs = []          # [Pub]
        self.publish_all = False
        self.expose = []        # [(port, length, proto)] from --expose
        self.orders = {}        # binding_orders(): {order Docker may program: first port}
        self.pinned = False     # history: its daemon-chosen ports are written `chosen PORT`
        self.all_chosen = []    # pinned with publish-all: [Pub] for its -P ports


class Scenario:
    def __init__(self):
        self.flags = []         # daemon flags
        self.host_addrs = []    # addresses added to lo inside the namespace
        self.steps = []         # [(kind, obj, ...)] in order
        self.nets = []          # user networks, creation order
        self.bridge = None      # the default network
        self.proxy_off = False
        self.ip6tables = False  # --experimental --ip6tables
        self.history = False    # stop, rm, network rm or a late connect among the steps
        self.observed = {}      # history: {container: {network: (IPv4, IPv6 or None)}} from docker inspect


# -------------------------------------------------------------- generator ----

def docker_less(a, b):
    """go-connections nat.SortPortMap's Less; entries (hostport or 0, port, proto, ...)."""
    return a[0] > b[0] or a[1] > b[1] or (a[1] == b[1] and a[2] == "tcp")


def go_insertion_sort(entries):
    """Go 1.19's sort.Sort on 12 entries or fewer: insertion sort."""
    s = list(entries)
    for i in range(1, len(s)):
        j = i
        while j > 0 and docker_less(s[j], s[j - 1]):
            s[j], s[j - 1] = s[j - 1], s[j]
            j -= 1
    return s


def sort_is_deterministic(entries):
    """True when Docker's comparator is a strict total order on `entries`, so
    sort.Sort gives one order whatever the (map-iteration) input order."""
    n = len(entries)
    for i in range(n):
        for j in range(n):
            if i != j and docker_less(entries[i], entries[j]) == docker_less(entries[j], entries[i]):
                return False
    for i in range(n):
        for j in range(n):
            for k in range(n):
                if (docker_less(entries[i], entries[j]) and docker_less(entries[j], entries[k])
                        and not docker_less(entries[i], entries[k])):
                    return False
    return True


def binding_orders(pubs, expose, publish_all):
    """Every order in which Docker 20.10 can program a container's bindings
    (buildSandboxOptions + nat.SortPortMap), as {order: first port}, where the
    first port is the (port, proto) Go's map iteration started at, which is the
    port a policy's first publish or expose line names to make Portcullis take
    that order.  Go iterates a map of up to 8 ports, filled in the order of the
    client's JSON (keys sorted as text), from a random slot: the rotations of
    the sorted keys.  Larger maps, or more than 12 entries (where Go 1.19 uses
    pdqsort, not modelled here), return None unless the comparator is a strict
    order, when every input order gives one result."""
    bindings = {}
    for i, p in enumerate(pubs):
        for k in range(p.length):
            hp = 0 if p.hp is None else p.hp + k
            bindings.setdefault((p.cp + k, p.proto), []).append((hp, ("p", i, k)))
    ports = set(bindings)
    for port, length, proto in expose:
        ports |= {(port + k, proto) for k in range(length)}
    keys = sorted(ports, key=lambda key: "%d/%s" % key)

    def outcome(rotation):
        entries = []
        for key in rotation:
            if key in bindings:
                entries += [(hp, key[0], key[1], tag) for hp, tag in bindings[key]]
            else:
                entries.append((0, key[0], key[1], None))
        order, bound = [], {}
        for e in go_insertion_sort(entries):
            key = (e[1], e[2])
            if key not in order:
                order.append(key)
            if e[3] is not None:
                bound.setdefault(key, []).append(e[3])
        seq = []
        for key in order:
            seq += bound.get(key, [("P",) + key] if publish_all else [])
        return tuple(seq)

    n_entries = sum(len(b) for b in bindings.values()) + len(ports - set(bindings))
    if len(keys) > 8 or n_entries > 12:
        entries = [(hp, key[0], key[1]) for key, b in bindings.items() for hp, _ in b]
        entries += [(0, key[0], key[1]) for key in ports - set(bindings)]
        return {outcome(keys): keys[0]} if sort_is_deterministic(entries) else None
    orders = {}
    for r in range(len(keys)):
        orders.setdefault(outcome(keys[r:] + keys[:r]), keys[r])
    return orders


def place_blocks(rng, lengths, lo, hi):
    """Non-overlapping increasing blocks of the given lengths inside [lo, hi]."""
    total = sum(lengths)
    if total > hi - lo + 1:
        return None
    slack = hi - lo + 1 - total
    cuts = sorted(rng.randint(0, slack) for _ in lengths)
    starts, cur, prev = [], lo, 0
    for length, cut in zip(lengths, cuts):
        cur += cut - prev
        prev = cut
        starts.append(cur)
        cur += length
    return starts


def gen_scenario(rng, rng6=None, rngh=None):
    """rng draws the IPv4 scenario; rng6 (optional) layers IPv6 on top of it without
    consuming rng, so a sub-seed's IPv4 scenario does not depend on it; rngh (optional)
    then layers history on top (add_history), consuming neither."""
    sc = Scenario()
    octets = rng.sample(range(1, 250), 4)
    if rng.random() < 0.25:
        sc.flags.append("--icc=false")
    if rng.random() < 0.3:
        sc.flags.append("--userland-proxy=false")
        sc.proxy_off = True
    if rng.random() < 0.2:
        sc.flags.append("--ip-masq=false")
    bip = None
    if rng.random() < 0.3:
        bip = octets.pop()
        sc.flags.append("--bip")
        sc.flags.append("198.18.%d.1/24" % bip)
    # --icc=false and --ip-masq=false reach the policy as host settings (daemon flags that
    # configure docker0 alone), never as docker0 network options
    sc.bridge = Net("bridge", "docker0", bip, default=True)
    sc.host_addrs = ["198.18.0.%d" % h for h in rng.sample(range(1, 255), rng.choice([0, 1, 1, 2, 2]))]
    if rng.random() < 0.12:
        # the daemon's default binding address: docker0's host_binding_ipv4 only
        sc.bridge.host_binding = rng.choice(sc.host_addrs) if sc.host_addrs else "127.0.0.1"
        sc.flags += ["--ip", sc.bridge.host_binding]

    n_nets = rng.choice([0, 1, 1, 2, 2, 3, 3])
    n_conts = rng.choice([0, 1, 2, 2, 3, 3, 4, 4, 4])
    net_names = rng.sample(NET_NAMES, n_nets)
    cont_names = rng.sample(CONT_NAMES, n_conts)

    claimed = []              # [(ip or None, proto, port)] fixed host ports of all containers
    state = {"variants": 1}   # how many policies the scenario's binding orders make

    nets_left, conts_left = list(net_names), list(cont_names)
    while nets_left or conts_left:
        if nets_left and (not conts_left or rng.random() < 0.45):
            name = nets_left.pop(0)
            net = Net(name, "br-" + name, octets.pop())
            net.internal = rng.random() < 0.25
            net.icc_off = rng.random() < 0.3
            net.masq_off = rng.random() < 0.25
            if sc.host_addrs and rng.random() < 0.3:
                net.host_binding = rng.choice(sc.host_addrs)
            elif rng.random() < 0.05:
                net.host_binding = "127.0.0.1"
            sc.nets.append(net)
            sc.steps.append(("net", net))
        else:
            c = gen_container(rng, sc, conts_left.pop(0), claimed, state)
            sc.steps.append(("run", c))
            for net, addr in c.attaches[1:]:
                sc.steps.append(("connect", c, net, addr))
    if rng6 is not None:
        add_ipv6(rng6, sc)
    if rngh is not None:
        add_history(rngh, sc)
    return sc


def add_ipv6(rng6, sc):
    """About a third of the scenarios get IPv6: mostly with the daemon's ip6tables on
    (docker0 with --ipv6 --fixed-cidr-v6, some user networks with an IPv6 subnet, some
    publishes of dual-stack containers moved to [::1] or [::]); a few with IPv6
    networks but ip6tables off, where Docker and the layout write IPv4 only."""
    r = rng6.random()
    if r < 0.3:
        sc.ip6tables = True
        sc.flags += ["--experimental", "--ip6tables"]
    elif r > 0.4:
        return
    if rng6.random() < 0.7:
        sc.bridge.v6 = True
        sc.flags += ["--ipv6", "--fixed-cidr-v6", sc.bridge.subnet6]
    for n in sc.nets:
        n.v6 = rng6.random() < 0.6
    if not sc.ip6tables:
        return
    for step in sc.steps:
        if step[0] != "run":
            continue
        c = step[1]
        gws = sorted((n for n, _ in c.attaches if not n.internal), key=lambda n: n.name)
        if not gws or not gws[0].v6:
            continue
        for p in c.pubs:
            if p.hp is not None and p.hostip is None and rng6.random() < 0.25:
                # the binding moves from both families to one IPv6 address
                p.hostip = rng6.choice(["::1", "::"])


def gateway(nets):
    """The network that carries a container's port mappings (libnetwork's Endpoint.Less):
    non-internal ones, those with an IPv6 subnet first, then by name; None if all internal."""
    gws = [n for n in nets if not n.internal]
    return min(gws, key=lambda n: (not n.v6, n.name)) if gws else None


def daemon_chosen(c):
    """Whether the daemon chooses host ports for the container (-p CP, -P with exposed ports)."""
    return any(p.hp is None for p in c.pubs) or (c.publish_all and bool(c.expose))


def add_history(rngh, sc):
    """About two scenarios in five get history: containers stopped (`docker stop`) or
    removed (`docker rm -f`) at a later point, a network no running container is on removed
    (`docker network rm`), and a late `docker network connect` after later containers ran.
    What remains is in the policy; where the history moved the port allocator on (a
    container that held daemon-chosen ports stopped, or one whose late connect moved its
    mappings to another gateway) the daemon-chosen ports of the containers allocated since
    are written `chosen PORT` with the ports the daemon reports (docker inspect), and a
    container whose mappings moved is written where they were programmed again. Scenarios
    whose IPv6 ports may drift from the IPv4 ones (proxy off beside IPv6) keep no history."""
    if rngh.random() > 0.4 or (sc.proxy_off and any(n.v6 for n in [sc.bridge] + sc.nets)):
        return
    steps = list(sc.steps)

    def last_use(obj):
        return max(i for i, st in enumerate(steps) if obj in st[1:])

    def insert(lo, step):
        """At a random place from lo on, not between a run and the connects that follow it."""
        places = [i for i in range(lo, len(steps) + 1) if i == len(steps) or steps[i][0] != "connect"]
        steps.insert(rngh.choice(places), step)

    runs = [st[1] for st in steps if st[0] == "run"]
    for c in runs:
        if rngh.random() < 0.3:
            insert(last_use(c) + 1, ("stop" if rngh.random() < 0.5 else "rm", c))
    gone = {st[1] for st in steps if st[0] in ("stop", "rm")}
    if rngh.random() < 0.8:
        late = [c for c in runs if c not in gone and not all(n.internal for n, _ in c.attaches)
                and not any(p.hostip and ":" in p.hostip for p in c.pubs)
                and gateway([n for n, _ in c.attaches]).host_binding is None]
        rngh.shuffle(late)
        for c in late:  # the first that has a later run and a network to connect
            at = [i for i, st in enumerate(steps) if st[0] == "run" and i > last_use(c)]
            # a network created before the container: a policy declares networks first
            nets = [n for n in [sc.bridge] + sc.nets
                    if n.host_binding is None and n not in [m for m, _ in c.attaches]
                    and (n.default or steps.index(("net", n)) < steps.index(("run", c)))]
            if not at or not nets:
                continue
            net = rngh.choice(nets)
            before = gateway([n for n, _ in c.attaches])
            after = gateway([n for n, _ in c.attaches] + [net])
            addr = take_addr(rngh, net)  # docker0's is the daemon's (observe)
            moved = before is not after and (bool(c.pubs) or c.publish_all)
            insert(at[0] + 1, ("late", c, net, addr, moved))
            break
    for net in sc.nets:
        users = [c for c in runs if net in [n for n, _ in c.attaches]
                 or any(st[0] == "late" and st[1] is c and st[2] is net for st in steps)]
        if all(c in gone for c in users) and rngh.random() < 0.5:
            insert(max([last_use(net)] + [last_use(c) for c in users]) + 1, ("netrm", net))
    if len(steps) == len(sc.steps):
        return
    # what the allocator remembers of containers no longer there (the ports they held when
    # others were allocated, its counters): pin every container allocated since they started
    pinned = set()
    for i, st in enumerate(steps):
        c = st[1] if st[0] in ("stop", "rm") else None
        if c and gateway([n for n, _ in c.attaches]) and (
                daemon_chosen(c) or any(p.hp is not None and p.hp + p.length > EPHEMERAL_LOW for p in c.pubs)):
            pinned |= {s2[1] for s2 in steps[steps.index(("run", c)):] if s2[0] == "run"}
        elif st[0] == "late" and st[4]:
            pinned.add(st[1])
            if daemon_chosen(st[1]):
                pinned |= {s2[1] for s2 in steps[steps.index(("run", st[1])):i] if s2[0] == "run"}
    for c in pinned - gone:
        keys = [(p.cp, p.proto, p.hostip) for p in c.pubs if p.hp is None]
        if len(keys) != len(set(keys)):
            return  # two daemon-chosen ports of one port and address: which got which is Docker's
    for st in steps:
        if st[0] == "late":
            st[1].attaches.append((st[2], st[3]))
    for c in pinned - gone:
        c.pinned = True
    sc.steps = steps
    sc.history = True


def take_addr(rng, net):
    if net.default:
        h = net.next_host
        net.next_host += 1
        return net.addr(h)
    h = rng.choice([x for x in range(2, 255) if x not in net.used])
    net.used.add(h)
    return net.addr(h)


def gen_container(rng, sc, name, claimed, state):
    c = Cont(name)
    candidates = [sc.bridge] + sc.nets
    first = sc.bridge if rng.random() < 0.4 else rng.choice(candidates)
    nets = [first]
    others = [n for n in candidates if n is not first]
    if others and rng.random() < 0.35:
        nets.append(others.pop(rng.randrange(len(others))))
        if others and rng.random() < 0.25:
            nets.append(rng.choice(others))
    for n in nets:
        c.attaches.append((n, take_addr(rng, n)))
    if all(n.internal for n in nets):
        # Docker accepts publishes here and maps nothing
        for _attempt in range(10):
            pubs, expose, publish_all = gen_publishes(rng, sc)
            if pubs and binding_orders(pubs, expose, publish_all) is not None:
                c.pubs, c.expose, c.publish_all = pubs, expose, publish_all
                break
        return c

    # the network that carries the port mappings: the first non-internal one
    # by name (only matters here for the host-port clash bookkeeping)
    gw = sorted((n for n in nets if not n.internal), key=lambda n: n.name)[0]

    for _attempt in range(30):
        pubs, expose, publish_all = gen_publishes(rng, sc)
        if pubs is None:
            continue
        orders = binding_orders(pubs, expose, publish_all)
        if orders is None or len(orders) * state["variants"] > 16:
            continue  # orders the oracle cannot enumerate, or too many policies to compile
        mine = []
        for p in pubs:
            if p.hp is None:
                continue
            ip = p.hostip or gw.host_binding
            if ip == "0.0.0.0":
                ip = None
            for k in range(p.length):
                mine.append((ip, p.proto, p.hp + k))
        if any(clash(a, b) for i, a in enumerate(mine) for b in mine[:i]):
            continue
        if any(clash(a, b) for a in mine for b in claimed):
            continue
        state["variants"] *= len(orders)
        c.orders = orders
        claimed.extend(mine)
        c.pubs, c.expose, c.publish_all = pubs, expose, publish_all
        break
    return c


def clash(a, b):
    return a[1] == b[1] and a[2] == b[2] and (a[0] is None or b[0] is None or a[0] == b[0])


def gen_publishes(rng, sc):
    """A container's -p specs, --expose ports and -P.  Any binding order Docker
    may produce is fine (binding_orders enumerates them): one container port
    published several times, daemon-chosen ports beside fixed ones, fixed host
    ports inside the ephemeral range (which the daemon may have handed out
    already: then Docker refuses the container, and so must Portcullis)."""
    n_fixed = rng.choice([0, 1, 1, 1, 2, 2, 3])
    publish_all = rng.random() < 0.25
    n_eph = rng.choice([0, 0, 0, 0, 1, 1, 2])
    lengths = [rng.choice([1, 1, 1, 1, 2, 3]) for _ in range(n_fixed)]
    cps = place_blocks(rng, lengths, 1 if rng.random() < 0.3 else 1000, 9999)
    if rng.random() < 0.15 and cps and cps[0] >= 1024:
        hps = list(cps)
    elif rng.random() < 0.15:
        hps = place_blocks(rng, lengths, EPHEMERAL_LOW, EPHEMERAL_LOW + 6)
    else:
        hps = place_blocks(rng, lengths, 1024, 30000)
    if cps is None or hps is None:
        return None, None, None
    pubs = []
    for hp, cp, length in zip(hps, cps, lengths):
        r = rng.random()
        hostip = None
        if r < 0.2:
            hostip = "127.0.0.1"
        elif r < 0.4 and sc.host_addrs:
            hostip = rng.choice(sc.host_addrs)
        elif r < 0.43:
            hostip = "0.0.0.0"
        proto = "udp" if rng.random() < 0.3 else "tcp"
        pubs.append(Pub(hostip, hp, cp, length, proto))
    singles = [p for p in pubs if p.length == 1]
    if singles and rng.random() < 0.3:
        # one container port published several times, fixed or daemon-chosen
        p = rng.choice(singles)
        for _ in range(rng.choice([1, 1, 2])):
            proto = p.proto if rng.random() < 0.7 else rng.choice(["tcp", "udp"])
            if rng.random() < 0.25:
                pubs.append(Pub(None, None, p.cp, 1, proto))
                continue
            hp = p.hp + rng.choice([-1, 1]) * rng.randint(1, 5)
            if hp < 1 or any(q.hp is not None and q.hp <= hp < q.hp + q.length for q in pubs):
                continue
            pubs.append(Pub(rng.choice([p.hostip, None, "127.0.0.1"] + sc.host_addrs), hp, p.cp, 1, proto))
    for _ in range(n_eph):
        # -p CP, or -p HOSTIP::CP (a host address with a daemon-chosen port)
        hostip = rng.choice([None, None, "127.0.0.1"] + sc.host_addrs)
        pubs.append(Pub(hostip, None, rng.randint(1, 9999), 1, rng.choice(["tcp", "tcp", "udp"])))
    expose = []
    if publish_all or rng.random() < 0.12:
        seen = set()
        for _ in range(rng.choice([1, 1, 2, 3])):
            length = 2 if rng.random() < 0.15 else 1
            port = rng.randint(1, 9998)
            proto = rng.choice(["tcp", "tcp", "udp"])
            if any((port + k, proto) in seen for k in range(length)):
                continue
            seen.update((port + k, proto) for k in range(length))
            expose.append((port, length, proto))
        # occasionally also --expose a port that has an explicit binding
        fixed = [p for p in pubs if p.hp is not None and p.length == 1]
        if fixed and rng.random() < 0.3:
            p = rng.choice(fixed)
            expose.append((p.cp, 1, p.proto))
    rng.shuffle(pubs)
    return pubs, expose, publish_all


# ------------------------------------------------------------ translation ----

def docker_commands(sc):
    """[(argv for docker or None, display line, kind)]; kind 'ns' = run inside the namespace."""
    cmds = []
    for a in sc.host_addrs:
        cmds.append((["ip", "addr", "add", a + "/32", "dev", "lo"], "ip addr add %s/32 dev lo    (inside the namespace)" % a, "ns"))
    for step in sc.steps:
        if step[0] == "net":
            n = step[1]
            argv = ["network", "create", "--subnet", n.subnet, "--gateway", n.addr(1),
                    "-o", "com.docker.network.bridge.name=" + n.bridge]
            if n.v6:
                argv[2:2] = ["--ipv6", "--subnet", n.subnet6, "--gateway", n.subnet6.replace("::/64", "::1")]
            if n.internal:
                argv.append("--internal")
            if n.icc_off:
                argv += ["-o", "com.docker.network.bridge.enable_icc=false"]
            if n.masq_off:
                argv += ["-o", "com.docker.network.bridge.enable_ip_masquerade=false"]
            if n.host_binding:
                argv += ["-o", "com.docker.network.bridge.host_binding_ipv4=" + n.host_binding]
            argv.append(n.name)
        elif step[0] == "run":
            c = step[1]
            net, addr = c.attaches[0]
            argv = ["run", "-d", "--name", c.name]
            if not net.default:
                argv += ["--network", net.name, "--ip", addr]
                if net.v6:
                    argv += ["--ip6", net.addr6(addr)]
            for p in c.pubs:
                argv += ["-p", p.docker()]
            if c.publish_all:
                argv.append("-P")
            for port, length, proto in c.expose:
                ps = str(port) if length == 1 else "%d-%d" % (port, port + length - 1)
                argv += ["--expose", ps + ("/udp" if proto == "udp" else "")]
            argv.append(IMAGE)
        elif step[0] == "stop":
            argv = ["stop", "-t", "0", step[1].name]
        elif step[0] == "rm":
            argv = ["rm", "-f", step[1].name]
        elif step[0] == "netrm":
            argv = ["network", "rm", step[1].name]
        else:
            c, net, addr = step[1:4]
            argv = ["network", "connect"]
            if not net.default:
                argv += ["--ip", addr]
                if net.v6:
                    argv += ["--ip6", net.addr6(addr)]
            argv += [net.name, c.name]
        cmds.append((argv, "docker " + " ".join(argv), "docker"))
    return cmds


def policy_variants(sc, header):
    """One policy per combination of the binding orders Docker may give the
    containers (binding_orders): Portcullis takes the order Go's map iteration
    gives when it starts at the port the container's first publish or expose
    names, so each variant starts the container with `expose FIRST-PORT`, which
    changes nothing else (the port is published or exposed anyway)."""
    conts = [c for c in running(sc) if len(c.orders) > 1]
    choices = [[(c.name, first) for first in c.orders.values()] for c in conts]
    return [policy_text(sc, header, dict(combo)) for combo in itertools.product(*choices)]


def policy_text(sc, header, first_ports=None):
    first_ports = first_ports or {}
    out = ["# " + line for line in header]
    host = ((["    icc deny"] if "--icc=false" in sc.flags else [])
            + (["    ip-masquerade off"] if "--ip-masq=false" in sc.flags else [])
            + (["    userland-proxy off"] if sc.proxy_off else []) + (["    ip6tables on"] if sc.ip6tables else []))
    if host:
        out += ["host {"] + host + ["}", ""]

    def net_block(n):
        lines = ["network %s {" % n.name, "    bridge %s" % n.bridge, "    subnet %s" % n.subnet]
        if n.v6:
            lines.append("    subnet %s" % n.subnet6)
        if n.internal:
            lines.append("    internal")
        if n.icc_off:
            lines.append("    icc deny")
        if n.masq_off:
            lines.append("    masquerade off")
        if n.host_binding:
            lines.append("    host-binding %s" % n.host_binding)
        return lines + ["}", ""]

    out += net_block(sc.bridge)
    gone = {st[1] for st in sc.steps if st[0] in ("stop", "rm", "netrm")}
    # a container whose mappings a late connect moved is programmed there
    moved = {st[1] for st in sc.steps if st[0] == "late" and st[4]}
    for step in sc.steps:
        if step[0] == "net" and step[1] not in gone:
            out += net_block(step[1])
        elif (step[0] == "run" and step[1] not in moved) or (step[0] == "late" and step[4]):
            c = step[1]
            if c in gone:
                continue
            out.append("container %s {" % c.name)
            seen = sc.observed.get(c.name, {})
            for n, addr in c.attaches:
                addr, addr6 = seen.get(n.name, (addr, n.addr6(addr) if n.v6 and addr else None))
                out.append("    attach %s %s" % (n.name, addr))
                if addr6:
                    out.append("    attach %s %s" % (n.name, addr6))
            if c.name in first_ports:
                out.append("    expose %d/%s  # one of the binding orders Docker may give" % first_ports[c.name])
            for p in c.pubs:
                out.append("    " + p.policy())
            if c.expose:
                out.append("    expose " + ", ".join(
                    (str(port) if length == 1 else "%d-%d" % (port, port + length - 1)) + "/" + proto
                    for port, length, proto in c.expose))
            out += ["    " + p.policy() for p in c.all_chosen]
            if c.publish_all and not c.all_chosen:
                out.append("    publish-all")
            out += ["}", ""]
    return "\n".join(out)


def running(sc):
    """The containers still running at the end, in start order."""
    gone = {st[1] for st in sc.steps if st[0] in ("stop", "rm")}
    return [st[1] for st in sc.steps if st[0] == "run" and st[1] not in gone]


def observe(run, sc):
    """History scenarios: the addresses Docker gave the running containers (docker0's
    depend on which were stopped) and, for pinned containers, the ports it chose, written
    `chosen PORT`; -P ports become daemon-chosen publishes with their port."""
    for c in running(sc):
        r = run.docker(["inspect", c.name])
        if r.returncode:
            raise RuntimeError("docker inspect %s failed: %s" % (c.name, r.stderr))
        info = json.loads(r.stdout)[0]["NetworkSettings"]
        sc.observed[c.name] = {name: (ep["IPAddress"], ep["GlobalIPv6Address"] or None)
                               for name, ep in info["Networks"].items()}
        if not c.pinned:
            continue
        gw = gateway([n for n, _ in c.attaches])
        ports = info["Ports"] or {}
        fixed = {(p.cp + k, p.proto, p.hp + k) for p in c.pubs if p.hp is not None for k in range(p.length)}

        def port_of(cp, proto, hostip):
            want = hostip or (gw.host_binding if gw else None) or "0.0.0.0"
            found = {int(b["HostPort"]) for b in ports.get("%d/%s" % (cp, proto)) or []
                     if b["HostIp"] in (want, "::" if want == "0.0.0.0" else want)
                     and (cp, proto, int(b["HostPort"])) not in fixed}
            if len(found) != 1:
                raise RuntimeError("history: cannot tell the port Docker chose for %s %d/%s on %s: %s"
                                   % (c.name, cp, proto, want, sorted(found)))
            return found.pop()
        for p in c.pubs:
            if p.hp is None:
                p.chosen = port_of(p.cp, p.proto, p.hostip)
        if c.publish_all:
            bound = {(p.cp + k, p.proto) for p in c.pubs for k in range(p.length)}
            for port, length, proto in c.expose:
                for k in range(length):
                    if (port + k, proto) not in bound and not any(
                            q.cp == port + k and q.proto == proto for q in c.all_chosen):
                        q = Pub(None, None, port + k, 1, proto)
                        q.chosen = port_of(port + k, proto, None)
                        c.all_chosen.append(q)


# ----------------------------------------------------------------- runner ----

ACTIVE = set()
ACTIVE_LOCK = threading.Lock()
STOP = threading.Event()


class Docker:
    """The daemon and client the scenarios run with: `dockerd` (found on PATH, or --dockerd)
    and a client of the same version (/usr/bin/docker, or --docker). The daemon runs with its
    own directory, and a sibling bin directory, first on its PATH, so it starts the
    containerd, shims and docker-proxy unpacked beside it (scripts/fetch-docker-26.sh) and
    the system's runc."""

    def __init__(self, dockerd, cli):
        self.dockerd, self.cli = dockerd, cli
        self.version = version_of(dockerd)
        if self.version is None:
            sys.exit("docker-oracle: cannot tell the version of %s" % dockerd)
        if version_of(cli) != self.version:
            sys.exit("docker-oracle: the client %s is not Docker %s like %s" % (cli, self.version, dockerd))
        sbin = os.path.dirname(os.path.abspath(dockerd))
        dirs = [sbin, os.path.join(os.path.dirname(sbin), "bin")]
        self.path = ":".join(dirs + [os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")])

    @property
    def name(self):
        return "docker %s" % self.version

    @property
    def layout(self):
        """The layout of the daemon's version, as an inventory import chooses it."""
        major = int(self.version.split(".")[0])
        return "docker-25" if major >= 25 else "docker-23" if major >= 23 else "docker-20.10"


def version_of(binary):
    """'20.10', '26.1', ... from `BINARY --version`, or None."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"version (\d+\.\d+)\.", out)
    return m.group(1) if m else None


def ns_inode(ns):
    try:
        return os.stat("/var/run/netns/" + ns).st_ino
    except OSError:
        return None


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class Run:
    """One scenario's namespace + daemon, torn down by cleanup() on every path."""

    def __init__(self, tag, work, docker):
        self.ns = NS_PREFIX + tag
        self.work, self.docker_, self.cli = work, docker, docker.cli
        self.dir = None
        self.proc = None
        self.lock = threading.RLock()
        self.env = None

    # -- helpers --
    def nsexec(self, argv, timeout=60):
        return subprocess.run(["nsenter", "--net=/var/run/netns/" + self.ns] + argv,
                              capture_output=True, text=True, timeout=timeout)

    def docker(self, argv, timeout=90):
        return subprocess.run([self.cli] + argv, capture_output=True, text=True,
                              timeout=timeout, env=self.env, stdin=subprocess.DEVNULL)

    def ping(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(os.path.join(self.dir, "d.sock"))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in s.recv(200)
        except OSError:
            return False
        finally:
            s.close()

    # -- lifecycle --
    def start(self, flags):
        with ACTIVE_LOCK:
            if STOP.is_set():
                raise Interrupted()
            ACTIVE.add(self)
        if ns_inode(self.ns) is not None:
            if self.our_pids():
                raise RuntimeError("namespace %s exists and has processes in it; not touching it" % self.ns)
            subprocess.run(["ip", "netns", "del", self.ns], check=True)
        with self.lock:
            if STOP.is_set():
                raise Interrupted()
            self.dir = tempfile.mkdtemp(prefix="pco.", dir="/tmp")
            subprocess.run(["ip", "netns", "add", self.ns], check=True, capture_output=True)
        for sub in ("root", "exec", "cli"):
            os.mkdir(os.path.join(self.dir, sub))
        self.env = dict(os.environ, DOCKER_HOST="unix://" + os.path.join(self.dir, "d.sock"),
                        DOCKER_CONFIG=os.path.join(self.dir, "cli"))
        r = self.nsexec(["ip", "link", "set", "lo", "up"])
        if r.returncode:
            raise RuntimeError("cannot bring lo up in %s: %s" % (self.ns, r.stderr))
        with open(os.path.join(self.dir, "daemon.json"), "w") as f:
            # 20.10 keeps its key in /etc/docker unless told; later daemons have no key
            f.write('{"deprecated-key-path": "%s"}\n' % os.path.join(self.dir, "key.json")
                    if self.docker_.version == "20.10" else "{}\n")
        argv = ["nsenter", "--net=/var/run/netns/" + self.ns, self.docker_.dockerd,
                "--data-root", os.path.join(self.dir, "root"),
                "--exec-root", os.path.join(self.dir, "exec"),
                "-H", "unix://" + os.path.join(self.dir, "d.sock"),
                "--pidfile", os.path.join(self.dir, "pid"),
                "--storage-driver", "vfs",
                "--config-file", os.path.join(self.dir, "daemon.json"),
                "--iptables=true"] + flags
        log = open(os.path.join(self.dir, "dockerd.log"), "w")
        with self.lock:
            if STOP.is_set():
                log.close()
                raise Interrupted()
            # own process group: a Ctrl-C on the terminal does not reach dockerd
            # directly; cleanup() stops it in order
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         env=dict(os.environ, PATH=self.docker_.path))
        log.close()
        deadline = time.time() + 60
        while time.time() < deadline:
            if STOP.is_set():
                raise Interrupted()
            if self.proc.poll() is not None:
                raise RuntimeError("dockerd exited during start-up:\n" + self.log_tail())
            if self.ping():
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("dockerd did not answer within 60 s:\n" + self.log_tail())
        with open(os.path.join(self.work, "rootfs.tar"), "rb") as tar:
            r = subprocess.run([self.cli, "import", "--change", 'CMD ["/bin/busybox","sleep","3600"]',
                                "-", IMAGE], stdin=tar, capture_output=True, text=True,
                               timeout=120, env=self.env)
        if r.returncode:
            raise RuntimeError("image import failed: " + r.stderr)

    def log_tail(self, n=30):
        try:
            with open(os.path.join(self.dir, "dockerd.log")) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def our_pids(self):
        """Processes this run started: everything living in our namespace
        (dockerd, containerd, shims, docker-proxy), or whose command line
        names our private directory.  Never matched by name."""
        ino = ns_inode(self.ns)
        me = os.getpid()
        pids = []
        for p in os.listdir("/proc"):
            if not p.isdigit() or int(p) == me:
                continue
            try:
                if ino is not None and os.stat("/proc/%s/ns/net" % p).st_ino == ino:
                    pids.append(int(p))
                    continue
                if self.dir:
                    with open("/proc/%s/cmdline" % p, "rb") as f:
                        if (self.dir + "/").encode() in f.read():
                            pids.append(int(p))
            except OSError:
                continue
        return pids

    def stop_daemon(self):
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            # remove containers first: busybox as PID 1 ignores SIGTERM, so a
            # plain daemon shutdown would wait 10 s per container
            try:
                ids = self.docker(["ps", "-aq"], timeout=20).stdout.split()
                if ids:
                    self.docker(["rm", "-f"] + ids, timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                pass
            cpid = None
            try:
                with open(os.path.join(self.dir, "exec", "containerd", "containerd.pid")) as f:
                    cpid = int(f.read().strip())
            except (OSError, ValueError):
                pass
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
            # dockerd stops the containerd it spawned; wait for that too
            if cpid and cpid in self.our_pids():
                deadline = time.time() + 15
                while time.time() < deadline and pid_alive(cpid):
                    time.sleep(0.1)
        else:
            proc.wait()
        self.proc = None

    def cleanup(self):
        """Idempotent, may run twice (worker and main thread on Ctrl-C):
        serialised by self.lock, which also guards creating the namespace,
        the directory and the daemon, so nothing is created behind it."""
        with self.lock:
            self._cleanup()

    def _cleanup(self):
        try:
            self.stop_daemon()
        except Exception as e:  # keep going: the namespace must go
            print("  cleanup: stopping dockerd: %s" % e, file=sys.stderr)
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
        for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
            pids = self.our_pids()
            if not pids:
                break
            print("  cleanup: %s leftover pids %s" % (sig.name, pids), file=sys.stderr)
            for p in pids:
                try:
                    os.kill(p, sig)
                except OSError:
                    pass
            time.sleep(2 if sig == signal.SIGTERM else 0.5)
        if self.dir and os.path.isdir(self.dir):
            mounts = []
            try:
                with open("/proc/self/mountinfo") as f:
                    for line in f:
                        mp = line.split()[4]
                        if mp.startswith(self.dir + "/"):
                            mounts.append(mp)
            except OSError:
                pass
            for mp in sorted(mounts, reverse=True):
                subprocess.run(["umount", "-l", mp], capture_output=True)
            subprocess.run(["rm", "-rf", "--one-file-system", self.dir], capture_output=True)
        if ns_inode(self.ns) is not None:
            subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        with ACTIVE_LOCK:
            ACTIVE.discard(self)


class Interrupted(Exception):
    pass


def norm_save(text):
    out = []
    for line in text.splitlines(True):
        if line.startswith("#"):
            continue
        if line.startswith(":"):
            line = re.sub(r"\[\d+:\d+\]$", "[0:0]", line.rstrip("\n")) + "\n"
        out.append(line)
    return "".join(out)


# Docker refuses a fixed host port it handed out: its allocator on the same address, or the
# bind of the port on another address than the one it handed it out on (all addresses, say).
REFUSED_BY_DOCKER = re.compile(r"port is already allocated|bind: address already in use")
REFUSED_BY_PORTCULLIS = "is already taken: the daemon chose it"


def subseed_of(seed, i):
    return int.from_bytes(hashlib.sha256(("%d/%d" % (seed, i)).encode()).digest()[:6], "big")


def compile_policy(binary, policy, layout=None):
    """Compiles policy text with --backend iptables, and --layout LAYOUT when given (else the
    policy's own, as an import writes it)."""
    with tempfile.NamedTemporaryFile("w", suffix=".policy", prefix="pco-", delete=False) as f:
        f.write(policy)
        path = f.name
    try:
        return subprocess.run([binary, "compile", path] + (["--layout", layout] if layout else [])
                              + ["--backend", "iptables", "--family", "both"], capture_output=True, text=True,
                              timeout=60)
    finally:
        os.unlink(path)


def run_scenario(args, seed, i, sub, work, docker):
    """Returns (status, report text, seconds); status in ok/MISMATCH/ERROR."""
    t0 = time.time()
    rng = random.Random(sub)
    sc = gen_scenario(rng, random.Random("ipv6/%d" % sub), random.Random("history/%d" % sub))
    header = ["docker-oracle seed %d scenario %d (sub-seed %d)" % (seed, i, sub),
              "daemon flags: --iptables=true" + "".join(" " + f for f in sc.flags)]
    policies = policy_variants(sc, header)
    policy = policies[0]
    cmds = docker_commands(sc)
    shown = ["dockerd --iptables=true" + "".join(" " + f for f in sc.flags) + "    (plus private roots/socket, vfs)"]
    if args.dry_run:
        text = "  commands:\n" + "".join("    $ %s\n" % c[1] for c in cmds)
        text += "  policy:\n" + "".join("    " + l + "\n" if l else "\n" for l in policy.split("\n"))
        for r in (compile_policy(args.binary, p, docker.layout) for p in policies):
            if r.returncode and REFUSED_BY_PORTCULLIS not in r.stderr:
                return "ERROR", text + "  portcullis compile failed:\n" + r.stderr, 0.0
        return "ok", text, 0.0
    run = Run("%d-%d" % (os.getpid() % 100000, i), work, docker)
    status, detail = "ok", ""
    refused = None  # the docker run that Docker refused for a port it had handed out
    try:
        run.start(sc.flags)
        for argv, display, kind in cmds:
            if STOP.is_set():
                raise Interrupted()
            shown.append(display)
            r = run.nsexec(argv) if kind == "ns" else run.docker(argv)
            if r.returncode and argv[0] == "run" and REFUSED_BY_DOCKER.search(r.stderr):
                refused = display
                break
            if r.returncode:
                raise RuntimeError("command failed: %s\n%s%s" % (display, r.stdout, r.stderr))
        captured = ""
        if refused is None:
            r = run.nsexec(["iptables-save"])
            if r.returncode:
                raise RuntimeError("iptables-save failed: " + r.stderr)
            captured = norm_save(r.stdout)
            r = run.nsexec(["ip6tables-save"])
            if r.returncode:
                raise RuntimeError("ip6tables-save failed: " + r.stderr)
            if norm_save(r.stdout):
                # portcullis compile prints the .ip6tables file after this line
                captured += "#### ip6tables\n" + norm_save(r.stdout)
        if sc.history and refused is None:
            observe(run, sc)
            policies = policy_variants(sc, header)
            policy = policies[0]
        if args.verbose:
            detail += "".join("  | " + l + "\n" for l in dump_ports(run, sc))
        if args.save and captured:
            with open(os.path.join(args.save, "%d-%d.rules" % (seed, i)), "w") as f:
                f.write(captured)
    except Interrupted:
        run.cleanup()
        raise
    except Exception as e:
        status, detail = "ERROR", "%s\n--- dockerd log (tail)\n%s" % (e, run.log_tail() if run.dir else "")
        captured = None
    finally:
        run.cleanup()
    if captured is not None:
        compiled = [compile_policy(args.binary, p, docker.layout) for p in policies]
        accepted = [r for r in compiled if r.returncode == 0]
        if refused is not None:
            # Docker refused a fixed host port it had handed out; Portcullis must refuse
            # the policy in (at least) one of the orders Docker may have taken
            if not any(REFUSED_BY_PORTCULLIS in r.stderr for r in compiled):
                status = "MISMATCH"
                detail += "Docker refused `%s` (a port it had handed out); Portcullis accepted all %d binding order(s)\n" % (
                    refused, len(policies))
        elif not any(r.stdout == captured for r in accepted):
            if not accepted:
                r = compiled[0]
                status, detail = "ERROR", "portcullis compile failed (exit %d):\n%s%s" % (r.returncode, r.stdout, r.stderr)
            else:
                status = "MISMATCH"
                if len(policies) > 1:
                    detail += "no match among %d binding orders; the diff is against the first that compiles\n" % len(policies)
                detail += "".join(difflib.unified_diff(captured.splitlines(True), accepted[0].stdout.splitlines(True),
                                                       "captured (%s; iptables-save, then ip6tables-save)" % docker.name,
                                                       "compiled (portcullis)"))
    if captured is not None and refused is None and status == "ok":
        # import round trip: the host's rules, imported, compile back to the same bytes
        imp = subprocess.run([args.binary, "import", "-"], input=captured, capture_output=True, text=True,
                             timeout=60)
        back = compile_policy(args.binary, imp.stdout) if imp.returncode == 0 else None
        if back is None or back.returncode or back.stdout != captured:
            status = "MISMATCH"
            detail += "import round trip: the imported policy does not compile back to the capture\n"
            detail += "".join("  | " + l + "\n" for l in (imp.stdout + imp.stderr).split("\n"))
            if back is not None and back.returncode == 0:
                detail += "".join(difflib.unified_diff(captured.splitlines(True), back.stdout.splitlines(True),
                                                       "captured", "import, then compile"))
            elif back is not None:
                detail += back.stderr
    secs = time.time() - t0
    text = ""
    if status != "ok" or args.verbose:
        text += "  replay: python3 scripts/docker-oracle.py --seed %d --only %d   (or --subseed %d)\n" % (seed, i, sub)
        text += "  commands:\n" + "".join("    $ %s\n" % s for s in shown)
        text += "  policy:\n" + "".join("    " + l + "\n" if l else "\n" for l in policy.split("\n"))
        text += "".join("  " + l + "\n" for l in detail.rstrip("\n").split("\n")) if detail else ""
    return status, text, secs


def dump_ports(run, sc):
    """What Docker picked (verbose mode): `docker port` of every container."""
    out = []
    for step in sc.steps:
        if step[0] == "run":
            r = run.docker(["port", step[1].name])
            out.append("%s: %s" % (step[1].name, "; ".join(r.stdout.split("\n")).strip("; ")))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=None, help="run seed (default: random)")
    ap.add_argument("--count", type=int, default=40, help="number of scenarios (default 40)")
    ap.add_argument("--only", default=None, help="run only these scenario indices (comma-separated)")
    ap.add_argument("--subseed", type=int, default=None,
                    help="run the one scenario generated from this sub-seed (as printed)")
    ap.add_argument("--keep-going", action="store_true", help="run every scenario even after a failure")
    ap.add_argument("--binary", default=DEFAULT_BINARY, help="portcullis binary (default .build/debug/portcullis)")
    ap.add_argument("--dockerd", default=shutil.which("dockerd") or "/usr/sbin/dockerd",
                    help="the daemon (default: dockerd on PATH); its containerd and docker-proxy are looked for "
                         "beside it first (scripts/fetch-docker-26.sh)")
    ap.add_argument("--docker", default="/usr/bin/docker", help="its client, of the same version (default /usr/bin/docker)")
    ap.add_argument("--jobs", type=int, default=2, help="scenarios run at once (default 2)")
    ap.add_argument("--dry-run", action="store_true",
                    help="only generate: print commands and policy, check that the policy compiles")
    ap.add_argument("--save", metavar="DIR", help="write each capture to DIR/SEED-INDEX.rules (for portcullis import)")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every scenario, with the ports Docker picked")
    args = ap.parse_args()

    if os.geteuid() != 0:
        sys.exit("docker-oracle: must run as root")
    for c in ("iptables-save", "ip6tables-save", "nsenter", "ip"):
        if not shutil.which(c):
            sys.exit("docker-oracle: missing " + c)
    if not os.access("/bin/busybox", os.X_OK):
        sys.exit("docker-oracle: missing /bin/busybox (busybox-static)")
    if not os.access(args.binary, os.X_OK):
        sys.exit("docker-oracle: portcullis binary not found: %s" % args.binary)
    docker = Docker(args.dockerd, args.docker)
    print("daemon: %s (%s), layout %s" % (docker.name, docker.dockerd, docker.layout), flush=True)

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10 ** 9)
    print("seed: %d" % seed, flush=True)
    indices = list(range(args.count))
    if args.only is not None:
        indices = [int(x) for x in args.only.split(",") if x.strip()]
    if args.subseed is not None:
        indices = indices[:1] if args.only is not None else [0]

    run_containerd_existed = os.path.exists("/run/containerd")
    work = tempfile.mkdtemp(prefix="pco-work.", dir="/tmp")
    os.makedirs(os.path.join(work, "rootfs", "bin"))
    shutil.copy2("/bin/busybox", os.path.join(work, "rootfs", "bin", "busybox"))
    subprocess.run(["tar", "-C", os.path.join(work, "rootfs"), "-cf", os.path.join(work, "rootfs.tar"), "."],
                   check=True)

    def on_signal(signum, _frame):
        STOP.set()
        raise KeyboardInterrupt()

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    results = {}
    passed = failed = 0
    t_start = time.time()
    interrupted = False
    threads = []
    cond = threading.Condition()
    pending = list(indices)

    def worker():
        while True:
            with cond:
                if not pending or STOP.is_set():
                    return
                i = pending.pop(0)
            sub = args.subseed if args.subseed is not None else subseed_of(seed, i)
            try:
                res = run_scenario(args, seed, i, sub, work, docker)
            except Interrupted:
                return
            except Exception as e:  # a bug in this script: report, do not hang
                res = ("ERROR", "  internal error: %r\n" % e, 0.0)
            with cond:
                results[i] = (sub,) + res
                if res[0] != "ok" and not args.keep_going:
                    STOP.set()
                cond.notify_all()

    try:
        for _ in range(max(1, min(args.jobs, len(indices)))):
            t = threading.Thread(target=worker, daemon=True)
            t.start()
            threads.append(t)
        # print results in index order as they complete
        for i in indices:
            with cond:
                while i not in results and any(t.is_alive() for t in threads):
                    cond.wait(0.5)
                if i not in results:
                    break
                sub, status, text, secs = results[i]
            print("scenario %d (sub-seed %d): %s (%.1f s)" % (i, sub, status, secs), flush=True)
            if text:
                print(text, end="", flush=True)
            if status == "ok":
                passed += 1
            else:
                failed += 1
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: cleaning up", file=sys.stderr, flush=True)
    finally:
        # no further interruptions until every namespace is gone
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        STOP.set()
        with ACTIVE_LOCK:
            active = list(ACTIVE)
        for r in active:
            r.cleanup()
        for t in threads:
            t.join(timeout=120)
        with ACTIVE_LOCK:
            active = list(ACTIVE)
        for r in active:
            r.cleanup()
        shutil.rmtree(work, ignore_errors=True)
        if not run_containerd_existed:
            for d in ("/run/containerd/s", "/run/containerd"):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
    if interrupted:
        print("%d passed, %d failed (interrupted)" % (passed, failed))
        sys.exit(130)
    print("time: %.0f s" % (time.time() - t_start))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
