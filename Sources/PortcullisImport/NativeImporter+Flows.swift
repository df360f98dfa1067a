import PortcullisIR
import PortcullisLayouts
import PortcullisNet

/// The native layout's flow sets and egress sets, read back as statements.
extension NativeImporter {
    // MARK: Endpoints of flows and egress

    func endpoint(_ prefix: IPPrefix) -> Endpoint? {
        if let network = networks.first(where: { $0.subnet(of: prefix.family) == prefix }) {
            return .network(network.name)
        }
        guard prefix.isHost, let held = containers.first(holding: prefix.address) else { return nil }
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
            guard let held = containers.first(holding: address) else { return [] }
            return (family == .ipv4 ? [held.address] : held.address6.map { [$0] } ?? []).map { IPPrefix(host: $0) }
        }
    }

    // MARK: allow / deny

    /// One flow rule's statement, from its set's elements; nil (and a note) when an element
    /// names what no container or network holds.
    mutating func statement(for flow: FlowRule) -> Statement? {
        let perFamily = Self.families.map { family in
            (family, flowSets[Names.named(Names.flow(flow.index), family)] ?? [])
        }
        let read = flowElements(perFamily)
        let (sources, destinations, ports, pairs, unknown) = (
            read.sources, read.destinations, read.ports, read.pairs, read.unknown
        )
        let said = flow.comment.map { " (its comment: \($0))" } ?? ""
        guard unknown.isEmpty else {
            notImported.append("flow-\(flow.index)\(said): \(unknown.joined(separator: "; "))")
            return nil
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
        if sources.isEmpty || destinations.isEmpty {
            // A set with no elements matches nothing, and no statement names nobody.
            notImported.append("flow-\(flow.index)\(said): its set has no elements, so it matches nothing")
            return statement
        }
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
        return statement
    }

    /// What one flow rule's elements name, in element order.
    struct FlowElements {
        var sources: [Endpoint] = []
        var destinations: [Endpoint] = []
        var ports: [PortSpecKey] = []
        var pairs: [(Endpoint, Endpoint, PortSpecKey?)] = []
        /// Elements of another shape, or naming what no container or network holds.
        var unknown: [String] = []
    }

    func flowElements(_ perFamily: [(IPFamily, [SetElement])]) -> FlowElements {
        var read = FlowElements()
        for (_, elements) in perFamily {
            for element in elements {
                guard element.key.count == 2 || element.key.count == 4,
                    let source = Self.prefix(element.key[0]), let destination = Self.prefix(element.key[1])
                else {
                    read.unknown.append("an element of another shape")
                    continue
                }
                guard let from = endpoint(source), let to = endpoint(destination) else {
                    read.unknown.append("\(source) -> \(destination): no container or network holds it")
                    continue
                }
                let spec = Self.portSpec(element.key.dropFirst(2))
                if !read.sources.contains(from) { read.sources.append(from) }
                if !read.destinations.contains(to) { read.destinations.append(to) }
                if let spec, !read.ports.contains(spec) { read.ports.append(spec) }
                read.pairs.append((from, to, spec))
            }
        }
        return read
    }

    // MARK: egress

    typealias Egress = (source: Endpoint, destination: String, ports: [PortSpecKey]?)

    /// egress: a statement per source, destination (or any) and whether ports are named.
    mutating func readEgress() {
        var egress = egressSets()
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

    }

    /// The egress sets' elements, merged into statements the way the layout writes them.
    mutating func egressSets() -> [Egress] {
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
        return egress
    }

    /// Chains and sets the native layout does not write.
    mutating func reportWhatTheLayoutDoesNotWrite() {
        for chain in table.chains where !Names.chains.contains(chain.name) {
            notImported.append("chain \(chain.name): not one the native layout writes (\(chain.rules.count) rule(s))")
        }
        for set in table.sets where !Names.isLayoutSet(set.name) {
            notImported.append("set \(set.name): not one the native layout writes (\(set.elements.count) element(s))")
        }
    }

    /// Port specs of one protocol whose ranges overlap or touch (one statement would merge them).
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

}
