import PortcullisIR
import PortcullisNet

/// Turns a host that Docker has been managing into a policy that describes it: networks with
/// their bridges, subnets and options, containers with addresses and publishes, host settings,
/// and the rules users added in `DOCKER-USER` (Portcullis' `PORTCULLIS-FORWARD` on docker-1.5)
/// as `allow`, `deny` and `egress` statements where the language can say them.
///
/// Reads Docker's iptables rules of every era Portcullis has a layout for (docker-1.5,
/// docker-20.10, docker-28, docker-29 on iptables), from `iptables-save` text or from the same
/// tables listed as nft JSON. What a ruleset cannot tell (container names, containers that left
/// no rule, subnets of networks that neither masquerade nor are internal) is named
/// deterministically or reported, never guessed silently; so is every user rule the language
/// cannot say.
public struct DockerImporter: Sendable {
    public let ruleset: Ruleset
    /// The firewaller that wrote the rules: Docker 29's own nftables tables (`docker-bridges`)
    /// are read as the iptables chains it writes for the same host, and imported for the
    /// nftables backend.
    public let firewaller: Firewall

    /// Rules read from nft JSON list interfaces before addresses; the import reads matches in
    /// `iptables-save` order (addresses, interfaces, protocol, then the modules), so both
    /// sources are put in that order first.
    public init(ruleset: Ruleset) {
        let nftables = DockerBridgesImport.iptablesForm(of: ruleset)
        firewaller = nftables == nil ? .iptables : .nftables
        var ordered = nftables ?? ruleset
        for t in ordered.tables.indices {
            for c in ordered.tables[t].chains.indices {
                for r in ordered.tables[t].chains[c].rules.indices {
                    let matches = ordered.tables[t].chains[c].rules[r].matches
                    let core = matches.filter { $0.iptablesCoreOrder != nil }.sorted {
                        $0.iptablesCoreOrder! < $1.iptablesCoreOrder!
                    }
                    ordered.tables[t].chains[c].rules[r].matches = core + matches.filter { $0.iptablesCoreOrder == nil }
                }
            }
        }
        self.ruleset = ordered
    }

    public enum Layout: String, Sendable, CaseIterable {
        case docker15 = "docker-1.5"
        case docker2010 = "docker-20.10"
        case docker28 = "docker-28"
        case docker29 = "docker-29"

        var modern: Bool { self == .docker28 || self == .docker29 }
    }

    /// Which Docker era wrote the ruleset, from the chains it has.
    public var detectedLayout: Layout? {
        guard let filter, filter.chain("DOCKER") != nil else { return nil }
        if filter.chain("DOCKER-FORWARD") != nil {
            return filter.chain("DOCKER-ISOLATION-STAGE-1") != nil ? .docker28 : .docker29
        }
        if filter.chain("DOCKER-ISOLATION-STAGE-1") != nil { return .docker2010 }
        return .docker15
    }

    public struct Result: Sendable {
        /// What the rules say, to be written as the policy.
        public let host: ImportedHost
        /// User rules the language cannot say, with their chain and family, for the caller to print.
        public let notImportedRules: [(chain: String, family: TableFamily, rule: Rule)]
    }

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

        func subnet(of family: IPFamily) -> IPPrefix? { family == .ipv4 ? subnet : subnet6 }
    }

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
    }

    struct ImportedContainer {
        let address: IPAddress
        var address6: IPAddress?
        var bridge: String?
        var publishes: [ImportedPublish] = []
        var name: String { DockerImporter.containerName(address) }

        func holds(_ other: IPAddress) -> Bool { address == other || address6 == other }
    }

    static let ephemeral = PortRange(32768, 60999)

    var filter: Table? { ruleset.table(.ip, "filter") }
    var nat: Table? { ruleset.table(.ip, "nat") }
    var raw: Table? { ruleset.table(.ip, "raw") }
    /// Docker 20.10 ran with `--ip6tables`: its chains are in ip6tables.
    var ip6tables: Bool { ruleset.table(.ip6, "filter")?.chain("DOCKER") != nil }

    /// The containers one family's rules show, in creation order: raw direct-access drops,
    /// DNAT rules (publishes) and, on routed networks, the per-port ACCEPTs (no DNAT there).
    func containers(_ family: TableFamily, networks: [ImportedNetwork], notImported: inout [String])
        -> [ImportedContainer]
    {
        var containers: [ImportedContainer] = []
        func container(_ address: IPAddress) -> Int {
            if let at = containers.firstIndex(where: { $0.address == address }) { return at }
            containers.append(ImportedContainer(address: address))
            return containers.count - 1
        }
        for rule in ruleset.table(family, "raw")?.chain("PREROUTING")?.rules ?? []
        where rule.action == .drop && rule.matches.count == 2 {
            if case .address(.destination, let prefix, false) = rule.matches[0], prefix.isHost,
                case .interface(.source, let bridge, true) = rule.matches[1], bridge != "lo",
                networks.contains(where: { $0.bridge == bridge })
            {
                containers[container(prefix.address)].bridge = bridge
            }
        }
        for rule in ruleset.table(family, "nat")?.chain("DOCKER")?.rules ?? [] {
            guard case .dnat(let address, let ports)? = rule.action, let containerPort = ports?.first else { continue }
            var hostAddress: IPAddress?
            var hostPort: UInt16?
            var transport: TransportProtocol?
            for match in rule.matches {
                switch match {
                case .address(.destination, let prefix, false): hostAddress = prefix.address
                case .port(.destination, let range): hostPort = range.first
                case .transport(let t, false): transport = t
                default: break
                }
            }
            guard let hostPort, let transport else {
                notImported.append("nat DOCKER: a DNAT rule without a port")
                continue
            }
            containers[container(address)].publishes.append(
                ImportedPublish(
                    hostAddress: hostAddress, hostPort: hostPort, containerPort: containerPort, transport: transport))
        }
        // Routed networks: each published port's ACCEPT is inserted at the top of DOCKER.
        let routed = Set(networks.filter { $0.gatewayMode == "routed" }.map(\.bridge))
        for rule in (ruleset.table(family, "filter")?.chain("DOCKER")?.rules ?? []).reversed()
        where rule.action == .accept && rule.matches.count == 5 {
            guard case .address(.destination, let prefix, false) = rule.matches[0], prefix.isHost,
                case .interface(.source, let input, true) = rule.matches[1],
                case .interface(.destination, let bridge, false) = rule.matches[2], input == bridge,
                case .transport(let transport, false) = rule.matches[3],
                case .port(.destination, let ports) = rule.matches[4]
            else { continue }
            guard routed.contains(bridge) else {
                // Elsewhere the ACCEPT of a published port names the bridge of the container its
                // DNAT maps to (Docker 20.10 writes no raw drops that would).
                if let at = containers.firstIndex(where: { $0.address == prefix.address }), containers[at].bridge == nil
                {
                    containers[at].bridge = bridge
                }
                continue
            }
            let at = container(prefix.address)
            containers[at].bridge = bridge
            containers[at].publishes.append(
                ImportedPublish(hostAddress: nil, hostPort: nil, containerPort: ports.first, transport: transport))
        }
        return containers
    }

    public func importPolicy(as layout: Layout) -> Result {
        // Docker 28 and 29 write ip6tables rules for networks with an IPv6 subnet, Docker 20.10
        // with its experimental --ip6tables (its chains are there); Docker 1.5 writes none, so
        // ip6tables tables are not imported for it.
        var ruleset = self.ruleset
        if !layout.modern && !(layout == .docker2010 && ip6tables) { ruleset.tables.removeAll { $0.family == .ip6 } }
        return DockerImporter(ordered: ruleset, firewaller: firewaller).importPolicy(layout)
    }

    init(ordered ruleset: Ruleset, firewaller: Firewall) {
        self.ruleset = ruleset
        self.firewaller = firewaller
    }

    func importPolicy(_ layout: Layout) -> Result {
        var notImported: [String] = []
        var assumed: [String] = []
        var networks: [ImportedNetwork] = []
        func index(_ bridge: String) -> Int {
            if let existing = networks.firstIndex(where: { $0.bridge == bridge }) { return existing }
            networks.append(ImportedNetwork(bridge: bridge))
            return networks.count - 1
        }
        // Networks in creation order.
        switch layout {
        case .docker15:
            for rule in filter?.chain("FORWARD")?.rules ?? [] {
                if rule.action == .jump("DOCKER"),
                    case .interface(.destination, let bridge, false)? = rule.matches.first
                {
                    _ = index(bridge)
                }
            }
        case .docker2010:
            // Docker inserts each network's isolation rules at the top of STAGE-1.
            for rule in (filter?.chain("DOCKER-ISOLATION-STAGE-1")?.rules ?? []).reversed() {
                if rule.action == .jump("DOCKER-ISOLATION-STAGE-2"),
                    case .interface(.source, let bridge, false)? = rule.matches.first
                {
                    _ = index(bridge)
                }
                if let (_, bridge) = Self.internalDrop(rule) { _ = index(bridge) }
            }
        case .docker28, .docker29:
            // DOCKER-FORWARD gets each network's ICC / outgoing rules appended (ip6tables holds
            // the networks with an IPv6 subnet, in the same order).
            for family in [TableFamily.ip, .ip6] {
                for rule in ruleset.table(family, "filter")?.chain("DOCKER-FORWARD")?.rules ?? [] {
                    if case .interface(.source, let bridge, false)? = rule.matches.first { _ = index(bridge) }
                }
            }
        }
        for family in [TableFamily.ip, .ip6] {
            let filter = ruleset.table(family, "filter")
            for chain in ["DOCKER-ISOLATION-STAGE-1", "DOCKER-INTERNAL"] {
                for rule in filter?.chain(chain)?.rules ?? [] {
                    if rule.action == .drop,
                        rule.matches.count == 2,
                        case .interface(.source, let input, true) = rule.matches[0],
                        case .interface(.destination, let bridge, false) = rule.matches[1], input == bridge
                    {
                        // Docker's nftables firewaller: internal, its subnet in no rule.
                        networks[index(bridge)].internal = true
                    }
                    if let (subnet, bridge) = Self.internalDrop(rule) {
                        let at = index(bridge)
                        networks[at].internal = true
                        if family == .ip { networks[at].subnet = subnet } else { networks[at].subnet6 = subnet }
                    }
                }
            }
            for chain in ["FORWARD", "DOCKER-FORWARD"] {
                for rule in filter?.chain(chain)?.rules ?? [] where rule.matches.count == 2 {
                    if case .interface(.source, let input, false) = rule.matches[0],
                        case .interface(.destination, let output, false) = rule.matches[1], input == output,
                        let at = networks.firstIndex(where: { $0.bridge == input })
                    {
                        networks[at].icc = rule.action == .accept
                    }
                }
            }
            for rule in ruleset.table(family, "nat")?.chain("POSTROUTING")?.rules ?? [] where rule.action == .masquerade
            {
                if case .address(.source, let subnet, false) = rule.matches.first, !subnet.isHost,
                    case .interface(.destination, let bridge, true)? = rule.matches.dropFirst().first
                {
                    let at = index(bridge)
                    if family == .ip { networks[at].subnet = subnet } else { networks[at].subnet6 = subnet }
                    networks[at].masquerade = true
                }
            }
        }
        // Gateway modes (docker-28 and 29, IPv4): routed networks accept ICMP into the bridge,
        // nat-unprotected ones accept everything from outside instead of dropping it.
        if layout.modern {
            for rule in filter?.chain("DOCKER")?.rules ?? [] where rule.action == .accept {
                if rule.matches.count == 2, case .interface(.destination, let bridge, false) = rule.matches[0],
                    rule.matches[1] == .icmp, let at = networks.firstIndex(where: { $0.bridge == bridge })
                {
                    networks[at].gatewayMode = "routed"
                }
                if rule.matches.count == 2, case .interface(.source, let input, true) = rule.matches[0],
                    case .interface(.destination, let bridge, false) = rule.matches[1], input == bridge,
                    let at = networks.firstIndex(where: { $0.bridge == bridge })
                {
                    networks[at].gatewayMode = "nat-unprotected"
                }
            }
        }
        // Docker 20.10 jumps from ip6tables' FORWARD to DOCKER for networks with an IPv6
        // subnet; one that does not masquerade names its subnet in no rule.
        if layout == .docker2010 {
            for rule in ruleset.table(.ip6, "filter")?.chain("FORWARD")?.rules ?? []
            where rule.action == .jump("DOCKER") {
                if case .interface(.destination, let bridge, false)? = rule.matches.first,
                    let at = networks.firstIndex(where: { $0.bridge == bridge }), networks[at].subnet6 == nil
                {
                    notImported.append(
                        "network on bridge \(bridge): its IPv6 subnet is not in the rules (no MASQUERADE)")
                }
            }
        }
        // The default bridge is created when the daemon starts.
        if let docker0 = networks.firstIndex(where: { $0.bridge == "docker0" }) {
            networks.insert(networks.remove(at: docker0), at: 0)
        }
        let proxyOff =
            nat?.chain("OUTPUT")?.rules.contains {
                $0.action == .jump("DOCKER") && !$0.matches.contains { if case .address = $0 { true } else { false } }
            } ?? false

        // Containers: Docker 28 and 29 drop direct access to every endpoint in raw PREROUTING,
        // in creation order; published ports come from the DNAT rules, in the order appended.
        var containers = self.containers(.ip, networks: networks, notImported: &notImported)
        // IPv6 endpoints are the second address of a container Docker gave an IPv4 one: paired
        // on their bridge with the container that publishes the same ports, else in order.
        // Docker 20.10 allocates daemon-chosen ports per family on separate counters, so these
        // may differ between the two families: they pair as one daemon-chosen publish (the
        // policy's allocator picks both again), and a port mapped in one family only is
        // bound to that family's every address (`0.0.0.0`, `[::]`).
        let perFamilyPorts = layout == .docker2010
        func shared(_ p: [ImportedPublish]) -> [ImportedPublish] {
            p.filter { $0.hostAddress == nil }.map {
                ImportedPublish(
                    hostAddress: nil,
                    hostPort: perFamilyPorts && $0.hostPort.map(Self.ephemeral.contains) == true ? nil : $0.hostPort,
                    containerPort: $0.containerPort, transport: $0.transport)
            }
        }
        for v6 in self.containers(.ip6, networks: networks, notImported: &notImported) {
            let bridge =
                v6.bridge ?? networks.first(where: { $0.subnet6?.contains(v6.address) == true })?.bridge
            if let bridge, let network = networks.first(where: { $0.bridge == bridge }), network.subnet6 == nil {
                notImported.append(
                    "container \(v6.address): the IPv6 subnet of its network (bridge \(bridge)) is not in the rules")
                continue
            }
            let candidates = containers.indices.filter { at in
                let held = containers[at]
                let heldBridge =
                    held.bridge ?? networks.first(where: { $0.subnet?.contains(held.address) == true })?.bridge
                return held.address6 == nil && bridge != nil && heldBridge == bridge
            }
            guard
                let at = candidates.first(where: { shared(containers[$0].publishes) == shared(v6.publishes) })
                    ?? candidates.first
            else {
                notImported.append(
                    "container \(v6.address): no IPv4 address of it is in the rules (Docker gives every endpoint one)")
                continue
            }
            containers[at].address6 = v6.address
            if containers[at].bridge == nil { containers[at].bridge = bridge }
            let ipv4 = shared(containers[at].publishes)
            for publish in v6.publishes {
                if publish.hostAddress != nil {
                    containers[at].publishes.append(publish)
                } else if !ipv4.contains(shared([publish])[0]) {
                    containers[at].publishes.append(
                        perFamilyPorts
                            ? ImportedPublish(
                                hostAddress: IPAddress(ipv6: 0, 0), hostPort: publish.hostPort,
                                containerPort: publish.containerPort, transport: publish.transport)
                            : publish)
                }
            }
            if perFamilyPorts {
                let ipv6 = shared(v6.publishes)
                for p in containers[at].publishes.indices where containers[at].publishes[p].hostAddress == nil {
                    let publish = containers[at].publishes[p]
                    if !ipv6.contains(shared([publish])[0]) {
                        containers[at].publishes[p] = ImportedPublish(
                            hostAddress: IPAddress(ipv4: 0), hostPort: publish.hostPort,
                            containerPort: publish.containerPort, transport: publish.transport)
                    }
                }
            }
        }

        // Names: the default bridge is 'bridge', others are named after their bridge.
        for at in networks.indices { networks[at].name = Self.networkName(networks[at].bridge) }
        // Docker writes a routed network's subnet in no rule: any subnet holding its
        // containers gives the same rules. The /24 of the first container is assumed.
        for at in networks.indices where networks[at].subnet == nil && networks[at].gatewayMode == "routed" {
            let held = containers.filter { $0.bridge == networks[at].bridge }.map(\.address)
            guard let first = held.first else { continue }
            var length = 24
            while length > 0, !held.allSatisfy({ IPPrefix(address: first, length: length).contains($0) }) {
                length -= 1
            }
            let subnet = IPPrefix(address: first, length: length).network
            networks[at].subnet = subnet
            assumed.append(
                "network on bridge \(networks[at].bridge): a routed network's subnet is in no rule; \(subnet) (holding its containers) is written, which gives the same rules: check it"
            )
        }
        var users = UserRuleImport(networks: networks, containers: containers, layout: layout)
        let userChain = layout == .docker15 ? "PORTCULLIS-FORWARD" : "DOCKER-USER"
        for family in [TableFamily.ip, .ip6] {
            users.read(
                ruleset.table(family, "filter")?.chain(userChain)?.rules ?? [],
                raw: ruleset.table(family, "raw")?.chain("PREROUTING")?.rules ?? [], family: family)
        }
        containers = users.containers

        var imported = ImportedHost()
        imported.header = [
            "Imported from a host managed by Docker (\(layout.rawValue) layout\(firewaller == .nftables ? ", its nftables firewaller" : "")).",
            "Containers are named after their address (c-A-B-C-D) and networks after their bridge",
            "(net-BRIDGE; the default bridge is 'bridge'): a ruleset holds no names. Containers that",
            "left no rule are not listed; host ports in 32768-60999 (the ephemeral range) are taken",
            "as chosen by the daemon (-P).",
        ]
        imported.settings = [.layout(layout.rawValue)]
        if firewaller == .nftables { imported.settings.append(.backend("nftables")) }
        if proxyOff { imported.settings.append(.userlandProxyOff) }
        if layout == .docker2010 && ip6tables { imported.settings.append(.ip6tablesOn) }
        let forwardPolicy = filter?.chain("FORWARD")?.base?.policy
        if layout == .docker15 {
            if forwardPolicy == .drop { imported.settings.append(.forwardPolicy("drop")) }
        } else if forwardPolicy == .accept {
            imported.settings.append(.forwardPolicy("accept"))
        }
        if !users.externals.isEmpty { imported.settings.append(.external(users.externals)) }
        let known: Set<String>
        let written: Set<IPAddress>
        (imported.networks, known) = Self.networkDeclarations(
            networks, containers: containers, notImported: &notImported, assumed: &assumed)
        (imported.containers, written) = Self.containerDeclarations(
            containers, networks: networks, known: known, daemonChosenPorts: true, notImported: &notImported)
        let statements = users.statements.filter { statement in
            statement.addresses.allSatisfy { written.contains($0) }
        }
        if !statements.isEmpty {
            imported.flowsHeading = "From the rules in \(userChain):"
            imported.flows = statements.map(\.flow)
        }
        var rules = users.notImported
        for statement in users.statements where !statements.contains(where: { $0.flow == statement.flow }) {
            rules.append(contentsOf: statement.rules.map { (userChain, $0.family, $0.rule) })
        }
        for chain in Set(rules.map(\.chain)).sorted() {
            let table = chain == "PREROUTING" ? "raw " : ""
            notImported.append(
                "\(rules.filter { $0.chain == chain }.count) rule(s) in \(table)\(chain) the policy language cannot say (listed below)"
            )
        }
        imported.assumed = assumed
        imported.notImported = notImported
        return Result(host: imported, notImportedRules: rules)
    }

    // MARK: Saying the host (every import)

    /// Networks are named after their bridge; the default bridge is 'bridge'.
    static func networkName(_ bridge: String) -> String { bridge == "docker0" ? "bridge" : "net-" + bridge }

    /// Containers are named after their (IPv4) address.
    static func containerName(_ address: IPAddress) -> String {
        "c-" + address.description.map { $0 == "." || $0 == ":" ? "-" : String($0) }.joined()
    }

    /// A network per network that has an IPv4 subnet (the others are reported), and their bridges.
    static func networkDeclarations(
        _ networks: [ImportedNetwork], containers: [ImportedContainer], notImported: inout [String],
        assumed: inout [String]
    ) -> (networks: [ImportedHost.Network], known: Set<String>) {
        var declared: [ImportedHost.Network] = []
        var known: Set<String> = []
        for network in networks {
            guard let subnet = network.subnet else {
                notImported.append(
                    network.subnet6 == nil
                        ? "network on bridge \(network.bridge): its subnet is not in the rules (no MASQUERADE)"
                        : "network on bridge \(network.bridge): its IPv4 subnet is not in the rules (no MASQUERADE)")
                continue
            }
            known.insert(network.bridge)
            var written = ImportedHost.Network(
                name: network.name, bridge: network.bridge, subnets: ["\(subnet.network)"])
            if let subnet6 = network.subnet6 {
                written.subnets.append("\(subnet6.network)")
                // The gateway defaults to the subnet's first address; when a container holds
                // it, the gateway is elsewhere (no rule names it).
                let members = containers.filter { $0.bridge == network.bridge }
                if members.contains(where: { $0.address6 == subnet6.first.adding(1) }) {
                    let base = subnet6.last.masked(prefixLength: 112)
                    let gateway =
                        (1...0xFFFE).reversed().lazy.map { base.adding(UInt64($0)) }
                        .first { address in !members.contains { $0.address6 == address } } ?? base
                    written.gateway = "\(gateway)"
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
                if daemonChosenPorts && publish.hostAddress == nil && Self.ephemeral.contains(hostPort) {
                    container.publishes.append(
                        ImportedHost.Publish(containerSide: "\(publish.containerPort)/\(transport)"))
                    continue
                }
                let host =
                    publish.hostAddress.map { $0.family == .ipv6 ? "[\($0)]:" : "\($0):" } ?? ""
                let last = { (first: UInt16) in first + UInt16(publish.count - 1) }
                let hostPorts = PortRange(hostPort, last(hostPort))
                let containerPorts = PortRange(publish.containerPort, last(publish.containerPort))
                container.publishes.append(
                    ImportedHost.Publish(
                        hostSide: "\(host)\(hostPorts)", containerSide: "\(containerPorts)/\(transport)",
                        sources: publish.allowedSources.map { $0.isHost ? $0.address.description : $0.description }))
            }
            declared.append(container)
        }
        return (declared, written)
    }

    /// `! -s SUBNET -o BRIDGE -j DROP` (ip6tables: `! -s SUBNET ! -i BRIDGE -o BRIDGE -j DROP`):
    /// Docker's rule for an internal network.
    static func internalDrop(_ rule: Rule) -> (IPPrefix, String)? {
        guard rule.action == .drop, rule.matches.count == 2 || rule.matches.count == 3,
            case .address(.source, let subnet, true) = rule.matches[0],
            case .interface(.destination, let bridge, false) = rule.matches.last!
        else { return nil }
        if rule.matches.count == 3 && rule.matches[1] != .interface(.source, bridge, negated: true) { return nil }
        return (subnet, bridge)
    }
}

/// The rules of the user chain as policy statements.
struct UserRuleImport {
    let networks: [DockerImporter.ImportedNetwork]
    var containers: [DockerImporter.ImportedContainer]
    let layout: DockerImporter.Layout
    var statements: [(flow: ImportedHost.Flow, addresses: [IPAddress], rules: [(family: TableFamily, rule: Rule)])] =
        []
    var notImported: [(chain: String, family: TableFamily, rule: Rule)] = []
    /// The family of the rules being read.
    var family: TableFamily = .ip
    var externals: [String] = []

    init(
        networks: [DockerImporter.ImportedNetwork], containers: [DockerImporter.ImportedContainer],
        layout: DockerImporter.Layout
    ) {
        self.networks = networks
        self.containers = containers
        self.layout = layout
    }

    /// A rule's fields, when it has only the ones flows and egress rules are made of.
    struct Fields {
        var source: IPPrefix?
        var destination: IPPrefix?
        var input: String?
        var output: String?
        var outputNegated = false
        var transport: TransportProtocol?
        var ports: PortRange?

        init?(_ rule: Rule) {
            for match in rule.matches {
                switch match {
                case .address(.source, let prefix, false) where source == nil: source = prefix
                case .address(.destination, let prefix, false) where destination == nil: destination = prefix
                case .interface(.source, let name, false) where input == nil: input = name
                case .interface(.destination, let name, let negated) where output == nil:
                    output = name
                    outputNegated = negated
                case .transport(let t, false) where transport == nil: transport = t
                case .port(.destination, let range) where ports == nil: ports = range
                default: return nil
                }
            }
            if ports != nil && transport == nil { return nil }
        }

        /// The `port` clause's value, if the rule names ports.
        var portSpecs: [String] {
            guard let transport, let ports else { return [] }
            return ["\(ports)/\(transport.rawValue)"]
        }
    }

    func network(_ bridge: String?) -> DockerImporter.ImportedNetwork? { networks.first { $0.bridge == bridge } }

    /// The endpoint a prefix on a bridge stands for: a container's address, or a network's subnet.
    mutating func endpoint(_ prefix: IPPrefix?, bridge: String?) -> (name: String, address: IPAddress?)? {
        guard let prefix, let network = network(bridge), let subnet = network.subnet(of: prefix.family) else {
            return nil
        }
        if prefix.network == subnet.network && prefix.length == subnet.length { return (network.name, nil) }
        guard prefix.isHost, subnet.contains(prefix.address) else { return nil }
        if let known = containers.first(where: { $0.holds(prefix.address) }) {
            return (known.name, known.address)
        }
        // A container that left no rule of Docker's: its address is known now (an IPv6 one
        // alone cannot be a container: Docker gives every endpoint an IPv4 address).
        guard prefix.family == .ipv4 else { return nil }
        var added = DockerImporter.ImportedContainer(address: prefix.address)
        added.bridge = network.bridge
        containers.append(added)
        return (added.name, added.address)
    }

    /// A statement, or one more rule of one already read (the other family's rule of a flow
    /// between dual-stack containers).
    mutating func add(_ flow: ImportedHost.Flow, _ addresses: [IPAddress], _ rule: Rule) {
        if let at = statements.firstIndex(where: { $0.flow == flow }) {
            statements[at].rules.append((family, rule))
        } else {
            statements.append((flow, addresses, [(family, rule)]))
        }
    }

    mutating func read(_ rules: [Rule], raw: [Rule], family: TableFamily) {
        self.family = family
        var egressSources: Set<String> = []
        var pending: [(Int, Rule)] = []
        let body = rules.enumerated().filter { _, rule in
            // Docker's own last rule, and the replies rule Portcullis writes with any flow.
            !(rule.matches.isEmpty && rule.action == .return)
        }
        let hasFlows = body.contains { _, rule in rule.action == .accept || rule.action == .drop }
        for (index, rule) in body {
            if hasFlows, rule.matches == [.connectionState([.established, .related])], rule.action == .accept,
                rule.effects.isEmpty
            {
                continue
            }
            guard rule.effects.isEmpty, let fields = Fields(rule) else {
                pending.append((index, rule))
                continue
            }
            let kind: ImportedHost.Flow.Kind? = rule.action == .accept ? .allow : rule.action == .drop ? .deny : nil
            // allow / deny: both ends on bridges.
            if let kind, !fields.outputNegated, network(fields.input) != nil, network(fields.output) != nil,
                let source = endpoint(fields.source, bridge: fields.input),
                let destination = endpoint(fields.destination, bridge: fields.output)
            {
                add(
                    ImportedHost.Flow(
                        kind: kind, source: source.name, destination: destination.name, ports: fields.portSpecs),
                    [source.address, destination.address].compactMap { $0 }, rule)
                continue
            }
            // egress: from a container on its bridge, out of the host.
            if rule.action == .accept, let input = fields.input, network(input) != nil,
                let source = endpoint(fields.source, bridge: input), source.address != nil,
                fields.outputNegated ? fields.output == input : fields.output.map({ network($0) == nil }) ?? false
            {
                if !fields.outputNegated, let output = fields.output, !externals.contains(output) {
                    externals.append(output)
                }
                let destination =
                    fields.destination.map { $0.isHost ? $0.address.description : $0.network.description } ?? "any"
                add(
                    ImportedHost.Flow(
                        kind: .egress, source: source.name, destination: destination, ports: fields.portSpecs),
                    [source.address!], rule)
                egressSources.insert(source.name)
                continue
            }
            pending.append((index, rule))
        }
        // What egress rules imply: returns to other bridges and the final drop of each source.
        for (_, rule) in pending {
            if let fields = Fields(rule), rule.effects.isEmpty, let input = fields.input,
                let source = containers.first(where: { container in
                    fields.source.map { container.holds($0.address) && $0.isHost } ?? false
                }),
                egressSources.contains(source.name), fields.destination == nil, fields.transport == nil,
                (rule.action == .drop && fields.outputNegated && fields.output == input)
                    || (rule.action == .return && !fields.outputNegated && network(fields.output) != nil)
            {
                continue
            }
            notImported.append((layout == .docker15 ? "PORTCULLIS-FORWARD" : "DOCKER-USER", family, rule))
        }
        // Docker 28 and 29: each allow across bridges has raw PREROUTING exceptions; other
        // raw accepts are not Docker's.
        for rule in raw where rule.action == .accept {
            let shape = rule.matches.allSatisfy { match in
                switch match {
                case .address(_, let prefix, false): prefix.isHost
                case .interface(.source, _, false), .transport(_, false), .port: true
                default: false
                }
            }
            if !shape || !statements.contains(where: { $0.flow.kind == .allow }) {
                notImported.append(("PREROUTING", family, rule))
            }
        }
    }
}

/// Docker 29's own nftables tables (`ip docker-bridges`, `ip6 docker-bridges`, and Portcullis'
/// `portcullis-user` beside them) restated as the iptables chains Docker 29 writes for the same
/// host, so that one importer reads both firewallers: per bridge, its ICC verdict, internal
/// drops, gateway mode and MASQUERADE; the DNAT rules, raw drops, and the user rules.
enum DockerBridgesImport {
    static func iptablesForm(of ruleset: Ruleset) -> Ruleset? {
        guard ruleset.table(.ip, "docker-bridges") != nil else { return nil }
        var result = Ruleset()
        for family in [TableFamily.ip, .ip6] {
            guard let docker = ruleset.table(family, "docker-bridges") else { continue }
            let user = ruleset.table(family, "portcullis-user")
            var filter = Table(family: family, name: "filter")
            var nat = Table(family: family, name: "nat")
            var raw = Table(family: family, name: "raw")
            // Docker never sets the forward policy with nftables; the layout's default is drop.
            filter[chain: "FORWARD"] = Chain(
                name: "FORWARD", base: BaseChain(type: .filter, hook: .forward, priority: 0, policy: .drop))
            for name in ["DOCKER", "DOCKER-FORWARD", "DOCKER-INTERNAL", "DOCKER-USER"] {
                filter[chain: name] = Chain(name: name)
            }
            nat[chain: "DOCKER"] = Chain(name: "DOCKER")
            nat[chain: "POSTROUTING"] = Chain(
                name: "POSTROUTING", base: BaseChain(type: .nat, hook: .postrouting, priority: 100))
            raw[chain: "PREROUTING"] = Chain(
                name: "PREROUTING", base: BaseChain(type: .filter, hook: .prerouting, priority: -300))
            func plain(_ rule: Rule) -> Rule {
                Rule(rule.matches, rule.action, provenance: rule.provenance)
            }
            // Bridges in the order the dispatch map lists them (Docker adds each at creation).
            let bridges: [String] =
                docker.sets.first { $0.name == "filter-forward-in-jumps" }?.elements.compactMap {
                    if case .interface(let name)? = $0.key.first { return name }
                    return nil
                } ?? []
            for bridge in bridges {
                filter[chain: "DOCKER-FORWARD"].rules.append(Rule([.interface(.source, bridge)], .accept))
                for rule in docker.chain("filter-forward-in__" + bridge)?.rules ?? [] {
                    let comment = rule.comment?.text
                    if comment == "ICC", rule.action == .accept || rule.action == .drop {
                        filter[chain: "DOCKER-FORWARD"].rules.append(
                            Rule([.interface(.source, bridge), .interface(.destination, bridge)], rule.action))
                    } else if comment == "INTERNAL NETWORK INGRESS" {
                        // Internal: the subnet is in no rule of Docker's nftables firewaller.
                        filter[chain: "DOCKER-INTERNAL"].rules.append(
                            Rule([.interface(.source, bridge, negated: true), .interface(.destination, bridge)], .drop))
                    } else if comment == "UNPROTECTED" {
                        filter[chain: "DOCKER"].rules.append(
                            Rule(
                                [.interface(.source, bridge, negated: true), .interface(.destination, bridge)], .accept)
                        )
                    } else if rule.matches == [.icmp], rule.action == .accept {
                        filter[chain: "DOCKER"].rules.append(Rule([.interface(.destination, bridge), .icmp], .accept))
                    } else if rule.action == .accept, rule.matches.count == 3,
                        case .address(.destination, let address, false) = rule.matches[0],
                        case .transport(let transport, false) = rule.matches[1], case .port = rule.matches[2]
                    {
                        // A published port's accept, inserted on top as iptables' DOCKER has it.
                        filter[chain: "DOCKER"].rules.insert(
                            Rule(
                                [
                                    .address(.destination, address), .interface(.source, bridge, negated: true),
                                    .interface(.destination, bridge), .transport(transport), rule.matches[2],
                                ], .accept), at: 0)
                    }
                }
                for rule in docker.chain("nat-postrouting-out__" + bridge)?.rules ?? [] where rule.action == .masquerade
                {
                    if let subnet = rule.matches.lazy.compactMap({ match -> IPPrefix? in
                        if case .address(.source, let prefix, false) = match, !prefix.isHost { return prefix }
                        return nil
                    }).first {
                        nat[chain: "POSTROUTING"].rules.append(
                            Rule(
                                [.address(.source, subnet), .interface(.destination, bridge, negated: true)],
                                .masquerade))
                    }
                }
            }
            nat[chain: "DOCKER"].rules += (docker.chain("nat-prerouting-and-output")?.rules ?? []).map(plain)
            if let output = docker.chain("nat-OUTPUT")?.rules.first {
                let guarded = output.matches.contains { if case .address = $0 { true } else { false } }
                let loopback =
                    family == .ip
                    ? IPPrefix(address: IPAddress(ipv4: 0x7F00_0000), length: 8) : IPPrefix(host: IPAddress(ipv6: 0, 1))
                nat[chain: "OUTPUT"] = Chain(
                    name: "OUTPUT", base: BaseChain(type: .nat, hook: .output, priority: -100),
                    rules: [
                        Rule(
                            (guarded ? [.address(.destination, loopback, negated: true)] : [])
                                + [.localAddress(.destination)], .jump("DOCKER"))
                    ])
            }
            raw[chain: "PREROUTING"].rules += (docker.chain("raw-PREROUTING")?.rules ?? []).map(plain)
            // The policy's own rules: portcullis-user's forward chain is DOCKER-USER; its raw
            // chain holds the exceptions and drops DOCKER-USER's flows need.
            for rule in user?.chain("filter-FORWARD")?.rules ?? [] {
                filter[chain: "DOCKER-USER"].rules.append(plain(rule))
            }
            raw[chain: "PREROUTING"].rules += (user?.chain("raw-PREROUTING")?.rules ?? []).map(plain)
            result.tables += [raw, filter, nat]
        }
        return result
    }
}

/// What an import read from a host's rules, in the policy language's terms: host settings,
/// networks, containers with their publishes, groups and flows, and the notes a reader needs.
/// The `portcullis` command says it as a syntax tree and prints that (no policy text is put
/// together by hand); this module cannot see PortcullisSyntax. Values are spelled as policies
/// spell them (`198.18.0.0/24`, `8080-8081`, `80/tcp`).
public struct ImportedHost: Sendable {
    /// Comment lines for the top of the policy: where it comes from, how things were named.
    public var header: [String] = []
    /// Host settings, in the order written.
    public var settings: [HostSetting] = []
    public var networks: [Network] = []
    public var containers: [Container] = []
    public var groups: [Group] = []
    /// A comment line above the flows: where they were read.
    public var flowsHeading: String?
    public var flows: [Flow] = []
    /// What the rules do not say and the policy had to assume (it changes no rule), one line each.
    public var assumed: [String] = []
    /// What could not be imported, one line each.
    public var notImported: [String] = []

    public enum HostSetting: Sendable, Hashable {
        case layout(String)
        case backend(String)
        case userlandProxyOff
        case ip6tablesOn
        /// `accept` or `drop`.
        case forwardPolicy(String)
        case external([String])
        case logDrops(rate: String?, prefix: String)
        case countDropsOn
    }

    public struct Network: Sendable, Hashable {
        public var name: String
        public var bridge: String
        /// The IPv4 subnet, then the IPv6 one if there is one.
        public var subnets: [String]
        public var gateway: String?
        public var `internal` = false
        public var iccDeny = false
        public var masqueradeOff = false
        /// `routed` or `nat-unprotected`.
        public var gatewayMode: String?
    }

    public struct Container: Sendable, Hashable {
        public var name: String
        public var network: String
        /// Its IPv4 address on the network, then its IPv6 one if it has one.
        public var addresses: [String]
        public var publishes: [Publish] = []
    }

    public struct Publish: Sendable, Hashable {
        /// `[ADDRESS:]PORTS`; nil when the daemon chose the host port, or a routed network
        /// maps none.
        public var hostSide: String?
        /// `PORTS/PROTOCOL`.
        public var containerSide: String
        /// The `from` allow-list.
        public var sources: [String] = []
    }

    public struct Group: Sendable, Hashable {
        public var name: String
        public var members: [String]
    }

    public struct Flow: Sendable, Hashable, CustomStringConvertible {
        public enum Kind: String, Sendable, Hashable {
            case allow
            case deny
            case egress
        }

        public var kind: Kind
        public var source: String
        public var destination: String
        /// `PORTS/PROTOCOL` each.
        public var ports: [String]
        /// A comment line above the statement.
        public var comment: String?

        /// The statement as a policy says it, for messages.
        public var description: String {
            "\(kind.rawValue) \(source) -> \(destination)"
                + (ports.isEmpty ? "" : " port " + ports.joined(separator: ", "))
        }
    }
}
