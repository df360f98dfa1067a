import PortcullisIR
import PortcullisNet

/// A network as read from the rules, before it is declared.
struct ImportedNetwork {
    let bridge: String
    var subnet: IPPrefix?
    var subnet6: IPPrefix?
    var `internal` = false
    var icc = true
    var masquerade = false
    /// `routed` or `nat-unprotected` (IPv4's gateway mode), as Docker's rules show it.
    var gatewayMode: String?
    var name = ""
    /// The gateways `unknown-containers drop`'s rules name (`KnownAddresses`); no other rule does.
    var gateway4: IPAddress?
    var gateway6: IPAddress?

    func subnet(of family: IPFamily) -> IPPrefix? { family == .ipv4 ? subnet : subnet6 }
}

/// A published port as read from the rules (DNAT, map element or routed accept).
struct ImportedPublish: Equatable {
    let hostAddress: IPAddress?
    /// nil for a routed network's published port: no host port is mapped, only the
    /// container port opened.
    let hostPort: UInt16?
    let containerPort: UInt16
    let transport: TransportProtocol
    /// How many ports the publish maps: host and container ports run on together.
    var count = 1
    /// A `from` allow-list.
    var allowedSources: [IPPrefix] = []
    /// Written as chosen by the daemon (`publish [ADDRESS ->] PORT/PROTO`): the allocator
    /// gives it `hostPort` again (`PublishOrder` checks that it does).
    var daemonChosen = false
    /// Written as chosen by the daemon with its port (`chosen PORT`), where the allocator,
    /// from the containers the rules show, would hand out another.
    var pinned = false
}

/// A container as read from the rules: the addresses its rules name, and its publishes.
struct ImportedContainer {
    let address: IPAddress
    var address6: IPAddress?
    var bridge: String?
    var publishes: [ImportedPublish] = []
    /// The positions in `publishes` of each family's DNAT rules, in the rules' order.
    var order: [TableFamily: [Int]] = [:]
    var name: String { HostDeclarations.containerName(address) }

    func holds(_ other: IPAddress) -> Bool { address == other || address6 == other }
}

/// Imported containers in the order they were found, each found by an address it holds
/// without a walk over the others: a host has thousands, and every publish, flow and user
/// rule looks its container up.
struct ImportedContainers: RandomAccessCollection, MutableCollection, ExpressibleByArrayLiteral {
    private(set) var items: [ImportedContainer] = []
    /// The first container to hold each address: every change notes its container's addresses,
    /// so an address missing here is held by none. An entry is checked on lookup, since an IPv6
    /// address may have moved.
    private var holders: [IPAddress: Int] = [:]

    init(_ containers: [ImportedContainer]) {
        for container in containers { append(container) }
    }

    init(arrayLiteral containers: ImportedContainer...) { self.init(containers) }

    var startIndex: Int { items.startIndex }
    var endIndex: Int { items.endIndex }

    subscript(position: Int) -> ImportedContainer {
        get { items[position] }
        set {
            items[position] = newValue
            note(position)
        }
    }

    mutating func append(_ container: ImportedContainer) {
        items.append(container)
        note(items.count - 1)
    }

    /// The first container holding `address`.
    func index(holding address: IPAddress) -> Int? {
        guard let at = holders[address] else { return nil }
        return items[at].holds(address) ? at : items.firstIndex { $0.holds(address) }
    }

    func first(holding address: IPAddress) -> ImportedContainer? { index(holding: address).map { items[$0] } }

    private mutating func note(_ position: Int) {
        for address in [items[position].address] + (items[position].address6.map { [$0] } ?? []) {
            if let at = holders[address], at < position, items[at].holds(address) { continue }
            holders[address] = position
        }
    }
}

/// How every import says the host it read: names, network and container declarations.
enum HostDeclarations {
    /// Docker's default ephemeral range: the host ports it chose itself (-P, -p PORT).
    static let ephemeral = PortRange(32768, 60999)

    /// Networks are named after their bridge; the default bridge is 'bridge'.
    static func networkName(_ bridge: String) -> String { bridge == "docker0" ? "bridge" : "net-" + bridge }

    /// Containers are named after their (IPv4) address.
    static func containerName(_ address: IPAddress) -> String {
        "c-" + address.description.map { $0 == "." || $0 == ":" ? "-" : String($0) }.joined()
    }

    /// Declares the networks and containers in `imported`, and gives the addresses of the
    /// containers written (a statement naming another is left out).
    static func declare(
        _ networks: [ImportedNetwork], _ containers: [ImportedContainer], daemonChosenPorts: Bool,
        in imported: inout ImportedHost, notImported: inout [String], assumed: inout [String]
    ) -> Set<IPAddress> {
        let known: Set<String>
        let written: Set<IPAddress>
        (imported.networks, known) = networkDeclarations(
            networks, containers: containers, notImported: &notImported, assumed: &assumed)
        (imported.containers, written) = containerDeclarations(
            containers, networks: networks, known: known, daemonChosenPorts: daemonChosenPorts,
            notImported: &notImported)
        return written
    }

    /// A network per network. One whose IPv4 subnet is in no rule (it neither masquerades nor
    /// is internal, or Docker's nftables firewaller wrote it) is kept: its subnet is taken from
    /// its containers' addresses, or assumed (`subnetInNoRule`), and said as `# assumed:`, since
    /// Docker writes no rule that depends on it.
    static func networkDeclarations(
        _ networks: [ImportedNetwork], containers: [ImportedContainer], notImported: inout [String],
        assumed: inout [String]
    ) -> (networks: [ImportedHost.Network], known: Set<String>) {
        var declared: [ImportedHost.Network] = []
        var known: Set<String> = []
        var taken = networks.compactMap(\.subnet)
        for network in networks {
            let subnet: IPPrefix
            if let read = network.subnet {
                subnet = read
            } else {
                let held = containers.filter { $0.bridge == network.bridge }.map(\.address)
                subnet = subnetInNoRule(bridge: network.bridge, holding: held, taken: taken)
                taken.append(subnet)
                assumed.append(
                    held.isEmpty
                        ? "network on bridge \(network.bridge): its subnet is in no rule (no MASQUERADE) and no container of it left one; \(subnet) is written, which gives the same rules: check it"
                        : "network on bridge \(network.bridge): its subnet is in no rule (no MASQUERADE); \(subnet), the smallest of Docker's usual sizes holding its containers, is written, which gives the same rules: check it"
                )
            }
            known.insert(network.bridge)
            var written = ImportedHost.Network(
                name: network.name, bridge: network.bridge, subnets: ["\(subnet.network)"])
            // A gateway defaults to its subnet's first address.
            if let gateway = network.gateway4, gateway != subnet.first.adding(1) {
                written.gateways.append("\(gateway)")
            }
            if let subnet6 = network.subnet6 {
                written.subnets.append("\(subnet6.network)")
                let members = containers.filter { $0.bridge == network.bridge }
                if let gateway = network.gateway6 {
                    if gateway != subnet6.first.adding(1) { written.gateways.append("\(gateway)") }
                } else if members.contains(where: { $0.address6 == subnet6.first.adding(1) }) {
                    // A container holds the first address: the gateway is elsewhere, and
                    // no rule names it.
                    let base = subnet6.last.masked(prefixLength: 112)
                    let gateway =
                        (1...0xFFFE).reversed().lazy.map { base.adding(UInt64($0)) }
                        .first { address in !members.contains { $0.address6 == address } } ?? base
                    written.gateways.append("\(gateway)")
                    assumed.append(
                        "network on bridge \(network.bridge): its IPv6 gateway is in no rule and a container holds the first address; \(gateway) is written"
                    )
                }
            }
            written.internal = network.internal
            written.iccDeny = !network.icc
            written.masqueradeOff = !network.masquerade && !network.internal && network.gatewayMode != "routed"
            written.gatewayMode = network.gatewayMode
            declared.append(written)
        }
        return (declared, known)
    }

    /// The subnet written for a network whose IPv4 subnet is in no rule. The default bridge
    /// gets Docker's default `--bip` network, 172.17.0.0/16, when that holds its containers and
    /// overlaps no other network. Otherwise, with containers: the longest of the prefix lengths
    /// Docker's subnets usually have (/24 as `docker network create --subnet` is mostly given,
    /// /20 and /16 as its default address pools hand out, then /12 and /8) whose prefix holds
    /// every container and overlaps no other network's subnet. Without containers: the first
    /// /16 of Docker's default pool 172.17.0.0/12 from 172.18 on (then the /20s of
    /// 192.168.0.0/16) that overlaps no other network's subnet.
    static func subnetInNoRule(bridge: String, holding addresses: [IPAddress], taken: [IPPrefix]) -> IPPrefix {
        let free = { (candidate: IPPrefix) in !taken.contains { $0.overlaps(candidate) } }
        let holds = { (candidate: IPPrefix) in addresses.allSatisfy(candidate.contains) }
        let defaultBridge = IPPrefix(address: IPAddress(ipv4: 0xAC11_0000), length: 16)
        if bridge == "docker0" && holds(defaultBridge) && free(defaultBridge) { return defaultBridge }
        if let first = addresses.first {
            for length in [24, 20, 16, 12, 8] {
                let candidate = IPPrefix(address: first, length: length).network
                if holds(candidate) && free(candidate) { return candidate }
            }
            for length in (0...32).reversed() {
                let candidate = IPPrefix(address: first, length: length).network
                if holds(candidate) { return candidate }
            }
        }
        let pool =
            (18...31).map { IPPrefix(address: IPAddress(ipv4: 0xAC00_0000 | UInt32($0) << 16), length: 16) }
            + (0..<16).map { IPPrefix(address: IPAddress(ipv4: 0xC0A8_0000 | UInt32($0) << 12), length: 20) }
        return pool.first(where: free) ?? defaultBridge
    }

    /// A container per container on a written network (the others are reported), and their
    /// addresses. With `daemonChosenPorts`, host ports in Docker's ephemeral range on every
    /// address are written as chosen by the daemon (`publish PORT/PROTO`).
    static func containerDeclarations(
        _ containers: [ImportedContainer], networks: [ImportedNetwork], known: Set<String>, daemonChosenPorts: Bool,
        notImported: inout [String]
    ) -> (containers: [ImportedHost.Container], written: Set<IPAddress>) {
        var declared: [ImportedHost.Container] = []
        var written: Set<IPAddress> = []
        for imported in containers {
            guard
                let network = networks.first(where: { $0.bridge == imported.bridge })
                    ?? networks.first(where: { $0.subnet?.contains(imported.address) == true }),
                known.contains(network.bridge)
            else {
                notImported.append("container \(imported.address): no imported network holds its address")
                continue
            }
            written.insert(imported.address)
            var container = ImportedHost.Container(
                name: imported.name, network: network.name,
                addresses: ([imported.address] + (imported.address6.map { [$0] } ?? [])).map(\.description))
            for publish in imported.publishes {
                let transport = publish.transport.rawValue
                guard let hostPort = publish.hostPort else {
                    // A routed network maps no host port: the container port is what is opened.
                    container.publishes.append(
                        ImportedHost.Publish(containerSide: "\(publish.containerPort)/\(transport)"))
                    continue
                }
                // Docker's default ephemeral range holds the ports it chose itself (-P, -p PORT):
                // imported as such, the allocator picks them again and in Docker's order.
                let host =
                    publish.hostAddress.map { $0.family == .ipv6 ? "[\($0)]:" : "\($0):" } ?? ""
                let sources = publish.allowedSources.map { $0.isHost ? $0.address.description : $0.description }
                if publish.daemonChosen
                    || (daemonChosenPorts && publish.hostAddress == nil && ephemeral.contains(hostPort))
                {
                    container.publishes.append(
                        ImportedHost.Publish(
                            hostSide: host.isEmpty ? nil : String(host.dropLast()),
                            containerSide: "\(publish.containerPort)/\(transport)", sources: sources,
                            chosen: publish.pinned ? "\(hostPort)" : nil))
                    continue
                }
                let last = { (first: UInt16) in first + UInt16(publish.count - 1) }
                let hostPorts = PortRange(hostPort, last(hostPort))
                let containerPorts = PortRange(publish.containerPort, last(publish.containerPort))
                container.publishes.append(
                    ImportedHost.Publish(
                        hostSide: "\(host)\(hostPorts)", containerSide: "\(containerPorts)/\(transport)",
                        sources: sources))
            }
            declared.append(container)
        }
        return (declared, written)
    }
}
