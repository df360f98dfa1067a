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
/// It gives an `ImportedHost` with `DockerImporter`'s declarations and naming. What the table
/// cannot tell (container names, which addresses are one container's on several networks,
/// groups, a network's `host-binding`, containers with no element) is said in the policy,
/// never invented.
struct NativeImporter: Sendable {
    typealias Names = NativeNames

    let table: Table

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

    func importPolicy() -> ImportResult {
        var notImported: [String] = []
        var assumed: [String] = []

        // Networks, in the order of `bridges` (the policy's).
        var networks: [ImportedNetwork] = []
        func network(_ bridge: String) -> Int {
            if let at = networks.firstIndex(where: { $0.bridge == bridge }) { return at }
            var added = ImportedNetwork(bridge: bridge)
            added.name = HostDeclarations.networkName(bridge)
            networks.append(added)
            return networks.count - 1
        }
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
        func bridge(of address: IPAddress) -> String? {
            networks.first { $0.subnet(of: address.family)?.contains(address) == true }?.bridge
        }

        // Host settings.
        var settings: [ImportedHost.HostSetting] = [.layout(NativeLayout.name), .backend("nftables")]
        let forward = table.chain(Names.forward)
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

        // Containers: every address in a publish map, flow set or egress set, in that order.
        var containers: [ImportedContainer] = []
        func container(_ address: IPAddress) -> Int? {
            if let at = containers.firstIndex(where: { $0.holds(address) }) { return at }
            guard address.family == .ipv4 else { return nil }
            var added = ImportedContainer(address: address)
            added.bridge = bridge(of: address)
            containers.append(added)
            return containers.count - 1
        }
        let publishes = Self.families.map { publishEntries($0) }
        let flowRules = flowRules(forward)
        let flowSets = Dictionary(
            uniqueKeysWithValues: flowRules.map(\.index).flatMap { index in
                Self.families.map { family in
                    let name = Names.named(Names.flow(index), family)
                    return (name, elements(name))
                }
            })
        let egressBases = [
            Names.egressAnywhere, Names.withPorts(Names.egressAnywhere), Names.egress, Names.withPorts(Names.egress),
            Names.egressRestricted,
        ]
        func hostAddresses(_ family: IPFamily) -> [IPAddress] {
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
        for address in hostAddresses(.ipv4) { _ = container(address) }
        // An IPv6 address is the second address of a container on its bridge (the language
        // gives every container an IPv4 address first): paired with one that publishes the
        // same ports on every address and is named, for IPv4, in every flow it is named in.
        // Each host address's roles in the flow sets, and its publishes on every address.
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

        // Published ports, with their allow-lists.
        var restricted: [(host: IPAddress?, transport: TransportProtocol, ports: PortRange, from: [IPPrefix])] = []
        for family in Self.families {
            for element in elements(Names.named(Names.allowListPorts, family)) {
                guard element.key.count == 3, let host = Self.prefix(element.key[0]),
                    case .transport(let transport) = element.key[1], case .ports(let ports) = element.key[2]
                else { continue }
                let address = host.length == 0 ? nil : host.address
                if !restricted.contains(where: { $0.host == address && $0.transport == transport && $0.ports == ports })
                {
                    restricted.append((address, transport, ports, []))
                }
            }
            for element in elements(Names.named(Names.allowListSources, family)) {
                guard element.key.count == 4, let source = Self.prefix(element.key[0]),
                    let host = Self.prefix(element.key[1]), case .transport(let transport) = element.key[2],
                    case .ports(let ports) = element.key[3]
                else { continue }
                let address = host.length == 0 ? nil : host.address
                if let at = restricted.firstIndex(where: {
                    $0.host == address && $0.transport == transport && $0.ports == ports
                }), !restricted[at].from.contains(source) {
                    restricted[at].from.append(source)
                }
            }
        }
        for (family, entries) in zip(Self.families, publishes) {
            for publish in coalesced(entries, restricted: restricted.map { ($0.host, $0.transport, $0.ports) }) {
                guard let at = containers.firstIndex(where: { $0.holds(publish.target) }) else {
                    notImported.append("a publish to \(publish.target): no container holds the address")
                    continue
                }
                var imported = publish.publish
                if let list = restricted.first(where: {
                    $0.host == imported.hostAddress && $0.transport == imported.transport
                        && $0.ports == PortRange(imported.hostPort!, imported.hostPort! + UInt16(imported.count - 1))
                }) {
                    if list.from.isEmpty {
                        notImported.append(
                            "the allow-list of \(imported.hostPort!)/\(imported.transport.rawValue) has no source of a family the host has networks in"
                        )
                    }
                    imported.allowedSources = list.from
                }
                // A publish on every address gives both families' elements: IPv6 adds only
                // publishes on an IPv6 host address.
                if family == .ipv6 {
                    if imported.hostAddress == nil {
                        if !containers[at].publishes.contains(imported) {
                            notImported.append(
                                "publish \(imported.hostPort!)/\(imported.transport.rawValue) to \(publish.target): on every IPv6 address only, which a publish cannot say"
                            )
                        }
                        continue
                    }
                }
                containers[at].publishes.append(imported)
            }
        }
        for list in restricted
        where !containers.contains(where: { container in
            container.publishes.contains {
                $0.hostAddress == list.host && $0.transport == list.transport && $0.hostPort == list.ports.first
            }
        }) {
            notImported.append("an allow-list for \(list.ports)/\(list.transport.rawValue) with no publish in the maps")
        }

        // Endpoints of flows and egress.
        func endpoint(_ prefix: IPPrefix) -> Endpoint? {
            if let network = networks.first(where: { $0.subnet(of: prefix.family) == prefix }) {
                return .network(network.name)
            }
            guard prefix.isHost, let held = containers.first(where: { $0.holds(prefix.address) }) else { return nil }
            return .container(held.address)
        }
        func name(_ endpoint: Endpoint) -> String {
            switch endpoint {
            case .network(let name): name
            case .container(let address): HostDeclarations.containerName(address)
            }
        }
        func sites(_ endpoint: Endpoint, _ family: IPFamily) -> [IPPrefix] {
            switch endpoint {
            case .network(let name):
                return networks.first { $0.name == name }?.subnet(of: family).map { [$0] } ?? []
            case .container(let address):
                guard let held = containers.first(where: { $0.address == address }) else { return [] }
                return (family == .ipv4 ? [held.address] : held.address6.map { [$0] } ?? []).map { IPPrefix(host: $0) }
            }
        }

        // allow / deny: one statement per flow rule, from its set's elements.
        var statements: [(flows: [ImportedHost.Flow], groups: [ImportedHost.Group], addresses: [IPAddress])] = []
        for flow in flowRules {
            let perFamily = Self.families.map { family in
                (family, flowSets[Names.named(Names.flow(flow.index), family)] ?? [])
            }
            var sources: [Endpoint] = []
            var destinations: [Endpoint] = []
            var ports: [PortSpecKey] = []
            var unknown: [String] = []
            var pairs: [(Endpoint, Endpoint, PortSpecKey?)] = []
            for (_, elements) in perFamily {
                for element in elements {
                    guard element.key.count == 2 || element.key.count == 4,
                        let source = Self.prefix(element.key[0]), let destination = Self.prefix(element.key[1])
                    else {
                        unknown.append("an element of another shape")
                        continue
                    }
                    guard let from = endpoint(source), let to = endpoint(destination) else {
                        unknown.append("\(source) -> \(destination): no container or network holds it")
                        continue
                    }
                    let spec = Self.portSpec(element.key.dropFirst(2))
                    if !sources.contains(from) { sources.append(from) }
                    if !destinations.contains(to) { destinations.append(to) }
                    if let spec, !ports.contains(spec) { ports.append(spec) }
                    pairs.append((from, to, spec))
                }
            }
            let said = flow.comment.map { " (its comment: \($0))" } ?? ""
            guard unknown.isEmpty else {
                notImported.append("flow-\(flow.index)\(said): \(unknown.joined(separator: "; "))")
                continue
            }
            // The elements are one statement's when they are its sources × destinations × ports.
            var expected: [[SetElement]] = []
            for (family, _) in perFamily {
                var keys: [[SetValue]] = []
                for source in sources.flatMap({ sites($0, family) }) {
                    for destination in destinations.flatMap({ sites($0, family) }) where source != destination {
                        let addresses: [SetValue] = [.address(source), .address(destination)]
                        keys +=
                            ports.isEmpty
                            ? [addresses] : ports.map { addresses + [.transport($0.transport), .ports($0.ports)] }
                    }
                }
                expected.append(NativeLayout.uncovered(keys).map { SetElement(key: $0) })
            }
            let actual = perFamily.map { $0.1.map { SetElement(key: $0.key) } }
            let containersOnly = { (side: [Endpoint]) in
                side.count == 1 || side.allSatisfy { if case .container = $0 { true } else { false } }
            }
            let addresses = (sources + destinations).compactMap { endpoint -> IPAddress? in
                if case .container(let address) = endpoint { return address }
                return nil
            }
            var statement: (flows: [ImportedHost.Flow], groups: [ImportedHost.Group], addresses: [IPAddress]) = (
                [], [], addresses
            )
            if zip(expected, actual).allSatisfy({ Set($0) == Set($1) }) && containersOnly(sources)
                && containersOnly(destinations)
            {
                func side(_ endpoints: [Endpoint], _ suffix: String) -> String {
                    guard endpoints.count > 1 else { return name(endpoints[0]) }
                    let group = "\(Names.flow(flow.index))-\(suffix)"
                    statement.groups.append(ImportedHost.Group(name: group, members: endpoints.map(name)))
                    return group
                }
                statement.flows.append(
                    ImportedHost.Flow(
                        kind: flow.kind, source: side(sources, "from"), destination: side(destinations, "to"),
                        ports: ports.map(\.text)))
            } else {
                // Not one statement's elements: a statement per pair, in element order.
                var split: [(Endpoint, Endpoint, [PortSpecKey])] = []
                for (from, to, spec) in pairs {
                    if let at = split.firstIndex(where: { $0.0 == from && $0.1 == to }) {
                        if let spec, !split[at].2.contains(spec) { split[at].2.append(spec) }
                    } else {
                        split.append((from, to, spec.map { [$0] } ?? []))
                    }
                }
                notImported.append(
                    "flow-\(flow.index)\(said): its elements are not one statement's sources × destinations; written as \(split.count) statements (the same verdicts, \(split.count) rules instead of one)"
                )
                for (from, to, specs) in split {
                    statement.flows.append(
                        ImportedHost.Flow(
                            kind: flow.kind, source: name(from), destination: name(to), ports: specs.map(\.text)))
                }
            }
            if let comment = flow.comment, !statement.flows.isEmpty {
                statement.flows[0].comment = "flow-\(flow.index) said: \(comment)"
            }
            statements.append(statement)
        }

        // egress: a statement per source, destination (or any) and whether ports are named.
        var egress: [(source: Endpoint, destination: String, ports: [PortSpecKey]?)] = []
        var restrictedSources: [Endpoint] = []
        for family in Self.families {
            for (base, hasDestination, hasPorts) in [
                (Names.egressAnywhere, false, false), (Names.withPorts(Names.egressAnywhere), false, true),
                (Names.egress, true, false), (Names.withPorts(Names.egress), true, true),
            ] {
                for element in elements(Names.named(base, family)) {
                    guard let source = Self.prefix(element.key.first), let from = endpoint(source) else {
                        notImported.append(
                            "an element of \(Names.named(base, family)) whose source no container or network holds")
                        continue
                    }
                    var destination = "any"
                    if hasDestination {
                        guard element.key.count >= 2, let prefix = Self.prefix(element.key[1]) else { continue }
                        destination = Self.hostText(prefix)
                    }
                    let spec = hasPorts ? Self.portSpec(element.key.suffix(2)) : nil
                    if hasPorts && spec == nil { continue }
                    if let at = egress.lastIndex(where: {
                        $0.source == from && $0.destination == destination && ($0.ports == nil) == (spec == nil)
                    }) {
                        guard let spec else { continue }
                        if egress[at].ports!.contains(spec) { continue }
                        // Ports of one statement merge when they touch: those stay apart.
                        if !egress[at].ports!.contains(where: { Self.touch($0, spec) }) {
                            egress[at].ports!.append(spec)
                            continue
                        }
                    }
                    egress.append((from, destination, spec.map { [$0] }))
                }
            }
            for element in elements(Names.named(Names.egressRestricted, family)) {
                if let source = Self.prefix(element.key.first), let from = endpoint(source),
                    !restrictedSources.contains(from)
                {
                    restrictedSources.append(from)
                }
            }
        }
        for source in restrictedSources where !egress.contains(where: { $0.source == source }) {
            notImported.append(
                "\(name(source)) may not leave the host (egress-restricted) but no egress set accepts anything of it: its egress statements name only destinations of a family the host has no network in"
            )
        }
        // Egress accepts come in the order their statements first fill their sets: written so.
        var kinds: [String] = []
        for rule in forward?.rules ?? [] {
            for match in rule.matches {
                guard case .inSet(_, let set, false) = match, set.hasPrefix(Names.egress),
                    !set.hasPrefix(Names.egressRestricted)
                else { continue }
                let kind = String(set.dropLast(3))
                if !kinds.contains(kind) { kinds.append(kind) }
            }
        }
        func rank(_ statement: (source: Endpoint, destination: String, ports: [PortSpecKey]?)) -> Int {
            let kind =
                (statement.destination == "any" ? Names.egressAnywhere : Names.egress)
            return kinds.firstIndex(of: statement.ports == nil ? kind : Names.withPorts(kind)) ?? kinds.count
        }
        egress = egress.enumerated().sorted { (rank($0.element), $0.offset) < (rank($1.element), $1.offset) }.map(
            \.element)
        for egress in egress {
            var addresses: [IPAddress] = []
            if case .container(let address) = egress.source { addresses.append(address) }
            let flow = ImportedHost.Flow(
                kind: .egress, source: name(egress.source), destination: egress.destination,
                ports: (egress.ports ?? []).map(\.text))
            statements.append(([flow], [], addresses))
        }

        for chain in table.chains where !Names.chains.contains(chain.name) {
            notImported.append("chain \(chain.name): not one the native layout writes (\(chain.rules.count) rule(s))")
        }
        for set in table.sets where !Names.isLayoutSet(set.name) {
            notImported.append("set \(set.name): not one the native layout writes (\(set.elements.count) element(s))")
        }

        var imported = ImportedHost()
        imported.header = [
            "Imported from a host run by Portcullis' native layout (table inet portcullis).",
            "Containers are named after their address (c-A-B-C-D) and networks after their bridge",
            "(net-BRIDGE; the default bridge is 'bridge'): the table holds no names. It cannot tell",
            "which addresses are one container's on several networks (each is a container here),",
            "which containers a group held (a statement naming several has a group flow-N-from or",
            "flow-N-to), or a network's host-binding (its publishes name the address). Containers",
            "with no published port, flow or egress are in no set and not listed.",
        ]
        imported.settings = settings
        let known: Set<String>
        let written: Set<IPAddress>
        (imported.networks, known) = HostDeclarations.networkDeclarations(
            networks, containers: containers, notImported: &notImported, assumed: &assumed)
        (imported.containers, written) = HostDeclarations.containerDeclarations(
            containers, networks: networks, known: known, daemonChosenPorts: false, notImported: &notImported)
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

    /// Port specs of one protocol whose ranges overlap or touch (one statement would merge them).
    static func touch(_ a: PortSpecKey, _ b: PortSpecKey) -> Bool {
        a.transport == b.transport && Int(a.ports.first) <= Int(b.ports.last) + 1
            && Int(b.ports.first) <= Int(a.ports.last) + 1
    }

    // MARK: Flow rules

    struct FlowRule {
        let index: Int
        /// `allow` (accept) or `deny` (drop).
        let kind: ImportedHost.Flow.Kind
        let comment: String?
    }

    /// The forward chain's flow rules in order, once per statement (both families' rules and a
    /// drop's log rule are one).
    func flowRules(_ forward: Chain?) -> [FlowRule] {
        var rules: [FlowRule] = []
        for rule in forward?.rules ?? [] {
            guard rule.action == .accept || rule.action == .drop else { continue }
            for match in rule.matches {
                guard case .inSet(_, let set, false) = match, let index = Names.flowIndex(set),
                    !rules.contains(where: { $0.index == index })
                else { continue }
                let comment = rule.comment.map {
                    $0.text.hasPrefix("portcullis: ") ? String($0.text.dropFirst(12)) : $0.text
                }
                rules.append(FlowRule(index: index, kind: rule.action == .accept ? .allow : .deny, comment: comment))
            }
        }
        return rules
    }

    // MARK: Published ports

    /// One port of a publish map (or a range of the range map): host address (nil: every
    /// address), protocol, host port(s), container address and port.
    struct PublishEntry {
        let host: IPAddress?
        let transport: TransportProtocol
        let hostPort: UInt16
        let containerPort: UInt16
        let target: IPAddress
        var count = 1

        var signature: String { "\(transport.rawValue)/\(hostPort)/\(containerPort)/\(count)" }
    }

    func publishEntries(_ family: IPFamily) -> [PublishEntry] {
        var entries: [PublishEntry] = []
        for (base, withHost) in [(Names.publishes, false), (Names.publishesOn, true)] {
            let ports = elements(Names.named(Names.portMap(base), family))
            for element in elements(Names.named(Names.addressMap(base), family)) {
                let key = element.key
                guard key.count == (withHost ? 3 : 2), case .data(let values)? = element.value,
                    let target = Self.prefix(values.first), case .transport(let transport) = key[key.count - 2],
                    case .ports(let hostPort) = key[key.count - 1],
                    case .data(let portValues)? = ports.first(where: { $0.key == key })?.value,
                    case .ports(let containerPort)? = portValues.first
                else { continue }
                let host = withHost ? Self.prefix(key[0])?.address : nil
                entries.append(
                    PublishEntry(
                        host: host, transport: transport, hostPort: hostPort.first, containerPort: containerPort.first,
                        target: target.address))
            }
        }
        for element in elements(Names.named(Names.publishRange, family)) {
            let key = element.key
            guard key.count == 3, let host = Self.prefix(key[0]), case .transport(let transport) = key[1],
                case .ports(let range) = key[2], case .data(let values)? = element.value,
                let target = Self.prefix(values.first)
            else { continue }
            entries.append(
                PublishEntry(
                    host: host.length == 0 ? nil : host.address, transport: transport, hostPort: range.first,
                    containerPort: range.first, target: target.address, count: range.count))
        }
        return entries
    }

    /// Publishes from map entries: an allow-list's range is one publish; other single ports run
    /// together while host and container ports step together (never with equal numbers: a range
    /// that keeps its ports is an element of the range map, not of the single-port maps).
    func coalesced(
        _ entries: [PublishEntry], restricted: [(host: IPAddress?, transport: TransportProtocol, ports: PortRange)]
    ) -> [(target: IPAddress, publish: ImportedPublish)] {
        func range(of entry: PublishEntry) -> PortRange? {
            restricted.first { list in
                list.host == entry.host && list.transport == entry.transport && list.ports.contains(entry.hostPort)
            }?.ports
        }
        let sorted = entries.enumerated().sorted { a, b in
            (a.element.target.description, a.element.hostPort, a.offset)
                < (b.element.target.description, b.element.hostPort, b.offset)
        }.map(\.element)
        var runs: [PublishEntry] = []
        for entry in sorted {
            if var last = runs.last, entry.count == 1, last.containerPort != last.hostPort,
                entry.target == last.target, entry.host == last.host, entry.transport == last.transport,
                Int(entry.hostPort) == Int(last.hostPort) + last.count,
                Int(entry.containerPort) == Int(last.containerPort) + last.count,
                range(of: entry) == range(of: last), range(of: entry).map({ $0.first != entry.hostPort }) ?? true
            {
                last.count += 1
                runs[runs.count - 1] = last
            } else {
                runs.append(entry)
            }
        }
        // Containers in the order of their first entry in the maps.
        var order: [IPAddress] = []
        for entry in entries where !order.contains(entry.target) { order.append(entry.target) }
        return order.flatMap { target in
            runs.filter { $0.target == target }.map { run in
                (
                    target,
                    ImportedPublish(
                        hostAddress: run.host, hostPort: run.hostPort, containerPort: run.containerPort,
                        transport: run.transport, count: run.count)
                )
            }
        }
    }
}
