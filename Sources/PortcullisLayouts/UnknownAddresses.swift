import PortcullisIR
import PortcullisNet
import PortcullisPolicy

/// `unknown-containers drop`: a container started since the rules were written has an address
/// on a managed bridge that no rule names; until its rules arrive it must get nothing the policy
/// would deny. Routed traffic from or to such an address (on a network's subnet, neither a
/// container's address the policy knows nor the gateway) is dropped, below the policy's own
/// rules, so only what they accepted (replies, flows and egress written for whole networks)
/// passes.
extension UserRules {
    /// The addresses of this family the rules know on a network: its containers', in start
    /// order, then its gateway.
    func knownAddresses(on network: Network) -> [(owner: String, address: IPAddress)] {
        var seen: Set<IPAddress> = []
        var known: [(owner: String, address: IPAddress)] = []
        for container in policy.containers {
            for attachment in container.attachments where attachment.network == network.name {
                guard let address = family == .ipv4 ? attachment.address4 : attachment.address6,
                    seen.insert(address).inserted
                else { continue }
                known.append((container.name, address))
            }
        }
        if let gateway = family == .ipv4 ? network.gateway4 : network.gateway6, seen.insert(gateway).inserted {
            known.append(("the gateway", gateway))
        }
        return known
    }

    /// The networks of this family, with their subnet.
    var managedSubnets: [(network: Network, subnet: IPPrefix)] {
        policy.networks.compactMap { network in
            (family == .ipv4 ? network.subnet4 : network.subnet6).map { (network, $0) }
        }
    }

    var unknownProvenance: Provenance {
        let statement = "unknown-containers drop"
        guard let location = policy.host.locations["unknown-containers"] else {
            return Provenance(statement: statement)
        }
        return Origin(statement, at: location).provenance
    }

    /// The rules at the end of the user chain, for iptables (no sets): for each bridge, a
    /// `RETURN` for each address it knows, then a drop of the rest of its subnet; first for
    /// sources (traffic from the bridge), then for destinations (traffic into it, published
    /// ports included). A `RETURN` ends the chain, so a known source's traffic is not looked at
    /// as a destination: traffic from a known container to an unknown one on another bridge
    /// is left to Docker's isolation, and on the same bridge to its ICC.
    func unknownAddressRules() -> [Rule] {
        guard policy.host.unknownContainersDrop else { return [] }
        let provenance = unknownProvenance
        var rules: [Rule] = []
        for direction in [Direction.source, .destination] {
            for (network, subnet) in managedSubnets {
                let bridge = Match.interface(direction, network.bridge)
                for (owner, address) in knownAddresses(on: network) {
                    rules.append(
                        Rule(
                            [.address(direction, IPPrefix(host: address)), bridge], .return,
                            comment: comment("unknown-containers drop: \(owner) is known on \(network.name)"),
                            provenance: provenance))
                }
                let text = direction == .source ? "from" : "to"
                rules += drop(
                    [.address(direction, subnet), bridge],
                    comment: comment(
                        "unknown-containers drop: \(text) addresses on \(network.name) the rules do not know"),
                    provenance: provenance)
            }
        }
        return rules
    }

    /// The same for nftables, where the known addresses are the elements of `set` (one per
    /// table family): one drop per bridge and direction, whatever the number of containers.
    func unknownAddressSetRules(set: String) -> [Rule] {
        guard policy.host.unknownContainersDrop else { return [] }
        let provenance = unknownProvenance
        return [Direction.source, .destination].flatMap { direction in
            managedSubnets.flatMap { network, subnet -> [Rule] in
                let text = direction == .source ? "from" : "to"
                return drop(
                    [
                        .address(direction, subnet), .interface(direction, network.bridge),
                        .inSet(
                            keys: [direction == .source ? .sourceAddress : .destinationAddress], set: set,
                            negated: true),
                    ],
                    comment: comment(
                        "unknown-containers drop: \(text) addresses on \(network.name) the rules do not know"),
                    provenance: provenance)
            }
        }
    }

    /// The set `unknownAddressSetRules` looks addresses up in: every known address of this
    /// family, on every network.
    func knownAddressSet(named name: String) -> NamedSet? {
        guard policy.host.unknownContainersDrop else { return nil }
        let provenance = unknownProvenance
        var seen: Set<IPAddress> = []
        let elements = managedSubnets.flatMap { network, _ in
            knownAddresses(on: network).filter { seen.insert($0.address).inserted }.map {
                SetElement(key: [.address(IPPrefix(host: $0.address))], provenance: provenance)
            }
        }
        return NamedSet(
            name: name, keyTypes: [family == .ipv4 ? .ipv4Address : .ipv6Address], interval: false, elements: elements)
    }
}
