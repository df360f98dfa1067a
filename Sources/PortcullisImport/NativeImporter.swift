import PortcullisIR
import PortcullisLayouts
import PortcullisNet

/// Turns a host run by Portcullis' `native` layout (one `inet portcullis` table of sets and
/// maps, docs/native.md) back into a policy: networks from `bridges`, `sites-*`, `icc`,
/// `internal` and `masquerade-*`; containers from the addresses in the publish maps, flow sets
/// and egress sets; publishes from the three map shapes with their `from` allow-lists; one
/// `allow` / `deny` statement per flow rule, from its set's elements (the rule's comment, which
/// quotes the original statement, is only shown); `egress` statements from the egress sets; and
/// the host settings the rules show.
///
/// It gives an `ImportedHost` with the declarations and naming of every import
/// (`HostDeclarations`). What the table
/// cannot tell (container names, which addresses are one container's on several networks,
/// groups, a network's `host-binding`, containers with no element) is said in the policy,
/// never invented.
struct NativeImporter: Sendable {
    typealias Names = NativeNames
    /// An `allow` / `deny` or `egress` statement: its flows, the groups they name, and the
    /// addresses of the containers they name (a statement naming one left out is left out).
    typealias Statement = (flows: [ImportedHost.Flow], groups: [ImportedHost.Group], addresses: [IPAddress])
    /// A published port's allow-list: host address (nil: every address), protocol, host
    /// ports, and the sources allowed.
    typealias AllowList = (host: IPAddress?, transport: TransportProtocol, ports: PortRange, from: [IPPrefix])

    let table: Table
    /// What the import has read so far, phase by phase (see `importPolicy()`).
    var networks: [ImportedNetwork] = []
    var containers: ImportedContainers = []
    var statements: [Statement] = []
    var notImported: [String] = []
    var assumed: [String] = []
    /// Each family's publish map entries (IPv4, then IPv6).
    var publishes: [[PublishEntry]] = []
    var flowRules: [FlowRule] = []
    /// The elements of each flow rule's sets, by set name.
    var flowSets: [String: [SetElement]] = [:]

    /// nil when the ruleset holds no `table inet portcullis`.
    init?(ruleset: Ruleset) {
        guard let table = ruleset.table(.inet, Names.table) else { return nil }
        self.table = table
    }

    static let families: [IPFamily] = [.ipv4, .ipv6]

    func elements(_ name: String) -> [SetElement] { table.sets.first { $0.name == name }?.elements ?? [] }

    /// What a flow or egress key names: a network (its subnet), or the container holding an address.
    enum Endpoint: Hashable {
        case network(String)
        case container(IPAddress)
    }

    /// One address of an element, or nil.
    static func prefix(_ value: SetValue?) -> IPPrefix? {
        if case .address(let prefix)? = value { return prefix }
        return nil
    }

    static func portSpec(_ key: ArraySlice<SetValue>) -> PortSpecKey? {
        guard key.count == 2, case .transport(let transport) = key.first!, case .ports(let ports) = key.last! else {
            return nil
        }
        return PortSpecKey(transport: transport, ports: ports)
    }

    struct PortSpecKey: Hashable {
        let transport: TransportProtocol
        let ports: PortRange
        var text: String { "\(ports)/\(transport.rawValue)" }
    }

    static func hostText(_ prefix: IPPrefix) -> String {
        prefix.isHost ? prefix.address.description : prefix.description
    }

    // MARK: Import

    /// The host, read phase by phase in the order its notes are written: networks, host
    /// settings, containers, publishes, flows, egress, then what the layout does not write.
    func importPolicy() -> ImportResult {
        var run = self
        run.readNetworks()
        let settings = run.hostSettings()
        run.publishes = Self.families.map { publishEntries($0) }
        run.flowRules = flowRules(forward)
        for index in run.flowRules.map(\.index) {
            for family in Self.families {
                let name = Names.named(Names.flow(index), family)
                run.flowSets[name] = elements(name)
            }
        }
        run.readContainers()
        run.pairIPv6Addresses()
        run.readKnownAddresses()
        run.readPublishes()
        for flow in run.flowRules {
            if let statement = run.statement(for: flow) { run.statements.append(statement) }
        }
        run.readEgress()
        run.reportWhatTheLayoutDoesNotWrite()
        return run.result(settings)
    }

    var forward: Chain? { table.chain(Names.forward) }

    // MARK: Networks and settings

    /// The network of a bridge, added in the order first named.
    mutating func network(_ bridge: String) -> Int {
        if let at = networks.firstIndex(where: { $0.bridge == bridge }) { return at }
        var added = ImportedNetwork(bridge: bridge)
        added.name = HostDeclarations.networkName(bridge)
        networks.append(added)
        return networks.count - 1
    }

    /// Networks, in the order of `bridges` (the policy's).
    mutating func readNetworks() {
        for element in elements(Names.bridges) {
            if case .interface(let bridge)? = element.key.first { _ = network(bridge) }
        }
        for family in Self.families {
            for element in elements(Names.named(Names.sites, family)) {
                guard element.key.count == 2, let subnet = Self.prefix(element.key[0]),
                    case .interface(let bridge) = element.key[1]
                else { continue }
                let at = network(bridge)
                if family == .ipv4 { networks[at].subnet = subnet } else { networks[at].subnet6 = subnet }
            }
        }
        for element in elements(Names.icc) {
            if case .interface(let bridge)? = element.key.first, case .verdict(let verdict)? = element.value {
                networks[network(bridge)].icc = verdict == .accept
            }
        }
        for element in elements(Names.internal) {
            if case .interface(let bridge)? = element.key.first { networks[network(bridge)].internal = true }
        }
        for family in Self.families {
            for element in elements(Names.named(Names.masquerade, family)) {
                guard let subnet = Self.prefix(element.key.first) else { continue }
                for at in networks.indices where networks[at].subnet(of: family) == subnet {
                    networks[at].masquerade = true
                }
            }
        }
    }

    func bridge(of address: IPAddress) -> String? {
        networks.first { $0.subnet(of: address.family)?.contains(address) == true }?.bridge
    }

    mutating func hostSettings() -> [ImportedHost.HostSetting] {
        var settings: [ImportedHost.HostSetting] = [.layout(NativeLayout.name), .backend("nftables")]
        if forward?.base?.policy == .accept { settings.append(.forwardPolicy("accept")) }
        // The output chain leaves loopback destinations to the userland proxy while it is on;
        // `proxied` (bridges whose containers the proxy would carry) exists only then.
        if let output = table.chain(Names.output), !output.rules.isEmpty {
            let proxy = output.rules.contains { rule in
                rule.matches.contains { if case .address(.destination, _, true) = $0 { true } else { false } }
            }
            if !proxy { settings.append(.userlandProxyOff) }
            if !proxy && !elements(Names.proxied).isEmpty {
                notImported.append("the output chain says the userland proxy is off, but 'proxied' lists bridges")
            }
        } else if table.sets.contains(where: { $0.name == Names.proxied }) {
            assumed.append("the output chain is empty; 'proxied' lists bridges, so the userland proxy is on")
        } else {
            notImported.append("the output chain is empty: whether the userland proxy is on is in no rule")
        }
        let externals = elements(Names.external).compactMap { element -> String? in
            if case .interface(let name)? = element.key.first { return name }
            return nil
        }
        if !externals.isEmpty { settings.append(.external(externals)) }
        let allRules = table.chains.flatMap(\.rules)
        for rule in allRules {
            guard rule.effects.contains(where: { if case .log = $0 { true } else { false } }) else { continue }
            for effect in rule.effects {
                if case .log(let prefix) = effect {
                    let rate = rule.matches.lazy.compactMap { match -> Rate? in
                        if case .limit(let rate) = match { return rate }
                        return nil
                    }.first
                    settings.append(
                        .logDrops(rate: rate.map { "\($0.count)/\($0.unit.rawValue)" }, prefix: prefix.text))
                }
            }
            break
        }
        if allRules.contains(where: { $0.action == .drop && $0.effects.contains(.counter) }) {
            settings.append(.countDropsOn)
        }
        if table.sets.contains(where: { $0.name == Names.named(Names.known, .ipv4) }) {
            settings.append(.unknownContainersDrop)
        }
        return settings
    }

    // MARK: Containers

    /// A container holding the address; a new one for an IPv4 address no container holds.
    mutating func container(_ address: IPAddress) -> Int? {
        if let at = containers.index(holding: address) { return at }
        guard address.family == .ipv4 else { return nil }
        var added = ImportedContainer(address: address)
        added.bridge = bridge(of: address)
        containers.append(added)
        return containers.count - 1
    }

    /// The host addresses of one family in the publish maps, flow sets and egress sets, in
    /// that order, each once.
    func hostAddresses(_ family: IPFamily) -> [IPAddress] {
        let egressBases = [
            Names.egressAnywhere, Names.withPorts(Names.egressAnywhere), Names.egress, Names.withPorts(Names.egress),
            Names.egressRestricted,
        ]
        var addresses = publishes[family == .ipv4 ? 0 : 1].map(\.target)
        for flow in flowRules {
            for element in flowSets[Names.named(Names.flow(flow.index), family)] ?? [] {
                addresses += element.key.prefix(2).compactMap { Self.prefix($0) }.filter(\.isHost).map(\.address)
            }
        }
        for base in egressBases {
            for element in elements(Names.named(base, family)) {
                if let source = Self.prefix(element.key.first), source.isHost { addresses.append(source.address) }
            }
        }
        var seen: Set<IPAddress> = []
        return addresses.filter { seen.insert($0).inserted }
    }

    /// Containers: every IPv4 address in a publish map, flow set or egress set, in that order.
    mutating func readContainers() {
        for address in hostAddresses(.ipv4) { _ = container(address) }
    }

    /// `unknown-containers drop`: its sets of known addresses hold every container's address
    /// (those no other element names among them) and each network's gateway.
    mutating func readKnownAddresses() {
        var known = KnownAddresses()
        for family in Self.families {
            let name = Names.named(Names.known, family)
            guard table.sets.contains(where: { $0.name == name }) else { continue }
            let addresses = elements(name).compactMap { element -> IPAddress? in
                guard let prefix = Self.prefix(element.key.first), prefix.isHost else { return nil }
                return prefix.address
            }
            known.add(set: addresses, family: family, networks: networks)
        }
        known.declare(networks: &networks, containers: &containers, assumed: &assumed, notImported: &notImported)
    }

    // An IPv6 address is the second address of a container on its bridge (the language
    // gives every container an IPv4 address first): paired with one that publishes the
    // same ports on every address and is named, for IPv4, in every flow it is named in.
    // Each host address's roles in the flow sets, and its publishes on every address.
    mutating func pairIPv6Addresses() {
        var roles: [IPAddress: Set<String>] = [:]
        for flow in flowRules {
            for family in Self.families {
                for element in flowSets[Names.named(Names.flow(flow.index), family)] ?? [] {
                    for (side, value) in element.key.prefix(2).enumerated() {
                        if let prefix = Self.prefix(value), prefix.isHost {
                            roles[prefix.address, default: []].insert("\(flow.index)/\(side)")
                        }
                    }
                }
            }
        }
        var everywhere: [IPAddress: Set<String>] = [:]
        for entry in publishes.joined() where entry.host == nil {
            everywhere[entry.target, default: []].insert(entry.signature)
        }
        for address6 in hostAddresses(.ipv6) {
            let bridge6 = bridge(of: address6)
            let held = roles[address6] ?? []
            let published = everywhere[address6] ?? []
            let candidates = containers.indices.filter { at in
                containers[at].address6 == nil && bridge6 != nil && containers[at].bridge == bridge6
                    && (everywhere[containers[at].address] ?? []) == published
                    && held.isSubset(of: roles[containers[at].address] ?? [])
            }
            guard
                let at = candidates.first(where: { (roles[containers[$0].address] ?? []) == held }) ?? candidates.first
            else {
                notImported.append(
                    "IPv6 address \(address6): no container with an IPv4 address on its bridge matches its elements (every container has an IPv4 address)"
                )
                continue
            }
            containers[at].address6 = address6
        }
    }

    func result(_ settings: [ImportedHost.HostSetting]) -> ImportResult {
        var notImported = notImported
        var assumed = assumed
        var imported = ImportedHost()
        imported.header = [
            "Imported from a host run by Portcullis' native layout (table inet portcullis).",
            "Containers are named after their address (c-A-B-C-D) and networks after their bridge",
            "(net-BRIDGE; the default bridge is 'bridge'): the table holds no names. It cannot tell",
            "which addresses are one container's on several networks (each is a container here),",
            "which containers a group held (a statement naming several has a group flow-N-from or",
            "flow-N-to), or a network's host-binding (its publishes name the address). Containers",
            "with no published port, flow or egress are in no set and not listed, unless the host",
            "drops unknown containers (its set of known addresses holds every container's).",
        ]
        imported.settings = settings
        let written = HostDeclarations.declare(
            networks, containers.items, daemonChosenPorts: false, in: &imported, notImported: &notImported,
            assumed: &assumed)
        for statement in statements where !statement.addresses.allSatisfy(written.contains) {
            notImported.append("\(statement.flows.last!): it names a container that no written network holds; left out")
        }
        let kept = statements.filter { $0.addresses.allSatisfy(written.contains) }
        imported.groups = kept.flatMap(\.groups)
        imported.flows = kept.flatMap(\.flows)
        if !kept.isEmpty { imported.flowsHeading = "From the flow rules (in chain order) and the egress sets:" }
        imported.assumed = assumed
        imported.notImported = notImported
        return ImportResult(host: imported, notImportedRules: [])
    }
}
