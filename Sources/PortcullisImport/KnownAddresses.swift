import PortcullisIR
import PortcullisNet

/// `unknown-containers drop` read back: the addresses its rules let through on each bridge
/// (every container's, then the gateway's) and the drops of the rest of each subnet. The
/// addresses name containers that no other rule shows (one with no published port, flow or
/// egress is in the rules only here) and the network's gateway.
struct KnownAddresses {
    /// Per family and bridge: in the rules' order where they have one (the iptables RETURNs,
    /// containers in start order and then the gateway), else sorted (a set's elements).
    var addresses: [IPFamily: [String: [IPAddress]]] = [:]
    /// Whether the order is the rules' own: then the gateway is the last address of a bridge.
    var ordered = true

    var isEmpty: Bool { addresses.isEmpty }

    /// The known addresses of a set (nft: `known-v4`, `known-addresses`), on each network of
    /// their family whose subnet holds them.
    mutating func add(set elements: [IPAddress], family: IPFamily, networks: [ImportedNetwork]) {
        ordered = false
        for network in networks {
            guard let subnet = network.subnet(of: family) else { continue }
            addresses[family, default: [:]][network.bridge] = elements.filter(subnet.contains).sorted()
        }
    }

    /// Sets each network's gateway and adds a container for every other address no container
    /// holds yet: an IPv4 address is a container of its own, placed among the others in the
    /// order the rules list them; an IPv6 address is the second address of a container on its
    /// bridge that has none.
    func declare(
        networks: inout [ImportedNetwork], containers: inout ImportedContainers, assumed: inout [String],
        notImported: inout [String]
    ) {
        for family in [IPFamily.ipv4, .ipv6] {
            for at in networks.indices {
                let network = networks[at]
                guard let subnet = network.subnet(of: family), let known = addresses[family]?[network.bridge],
                    !known.isEmpty
                else { continue }
                let gateway = self.gateway(of: network, subnet: subnet, known: known, containers: containers, &assumed)
                if family == .ipv4 { networks[at].gateway4 = gateway } else { networks[at].gateway6 = gateway }
                let members = known.filter { $0 != gateway }
                if family == .ipv4 {
                    containers = Self.placing(members, on: network.bridge, among: containers)
                } else {
                    pairIPv6(members, on: network, &containers, &assumed, &notImported)
                }
            }
        }
    }

    /// The gateway among a network's known addresses. The rules list it last; a set's elements
    /// do not say which it is: the subnet's first address when it is there (a container
    /// cannot hold the gateway's address), else the one address no other rule gives a
    /// container, said as assumed.
    func gateway(
        of network: ImportedNetwork, subnet: IPPrefix, known: [IPAddress], containers: ImportedContainers,
        _ assumed: inout [String]
    ) -> IPAddress? {
        if ordered { return known.last }
        let first = subnet.first.adding(1)
        if known.contains(first) { return first }
        let unheld = known.filter { containers.index(holding: $0) == nil }
        guard let gateway = unheld.last else { return nil }
        if unheld.count > 1 {
            assumed.append(
                "network on bridge \(network.bridge): \(unheld.count) of its known addresses are in no other rule and \(first) is not among them; \(gateway) is written as its gateway"
            )
        }
        return gateway
    }

    /// The containers with one for each address no container holds, placed after the container
    /// of the address before it on the bridge (the rules' order is the containers' start order),
    /// or before every container when none comes before it.
    static func placing(_ addresses: [IPAddress], on bridge: String, among containers: ImportedContainers)
        -> ImportedContainers
    {
        var items = Array(containers)
        var previous: IPAddress?
        for address in addresses {
            defer { previous = address }
            guard !items.contains(where: { $0.holds(address) }) else { continue }
            var added = ImportedContainer(address: address)
            added.bridge = bridge
            let after = previous.flatMap { before in items.firstIndex { $0.holds(before) } }
            items.insert(added, at: after.map { $0 + 1 } ?? 0)
        }
        return ImportedContainers(items)
    }

    /// IPv6 addresses no container holds, given in order to the containers on the bridge that
    /// have none (in the order of their IPv4 addresses in the rules, or sorted for a set).
    func pairIPv6(
        _ addresses: [IPAddress], on network: ImportedNetwork, _ containers: inout ImportedContainers,
        _ assumed: inout [String], _ notImported: inout [String]
    ) {
        let unpaired = addresses.filter { containers.index(holding: $0) == nil }
        guard !unpaired.isEmpty else { return }
        let order = list(.ipv4, on: network.bridge)
        let candidates = containers.indices.filter { at in
            containers[at].bridge == network.bridge && containers[at].address6 == nil
        }.sorted { a, b in
            (order.firstIndex(of: containers[a].address) ?? .max, containers[a].address)
                < (order.firstIndex(of: containers[b].address) ?? .max, containers[b].address)
        }
        for (address, at) in zip(unpaired, candidates) { containers[at].address6 = address }
        if unpaired.count > candidates.count {
            for address in unpaired.dropFirst(candidates.count) {
                notImported.append(
                    "IPv6 address \(address) is known on bridge \(network.bridge), but no container there is without one (every container has an IPv4 address)"
                )
            }
        }
        if min(unpaired.count, candidates.count) > 1 {
            assumed.append(
                "network on bridge \(network.bridge): the rules do not say which container holds which known IPv6 address; they are given in the order of the containers' IPv4 addresses"
            )
        }
    }

    func list(_ family: IPFamily, on bridge: String) -> [IPAddress] { addresses[family]?[bridge] ?? [] }
}
