import PortcullisIR
import PortcullisLayouts
import PortcullisNet

/// The rules of the user chain as policy statements.
struct UserRuleImport {
    let networks: [ImportedNetwork]
    var containers: ImportedContainers
    let layout: any Layout
    var statements: [(flow: ImportedHost.Flow, addresses: [IPAddress], rules: [(family: TableFamily, rule: Rule)])] =
        []
    var notImported: [(chain: String, family: TableFamily, rule: Rule)] = []
    /// The family of the rules being read.
    var family: TableFamily = .ip
    var externals: [String] = []
    /// `log-drops`: the rate and prefix of the LOG rules in front of the drops.
    var logDrops: (rate: Rate, prefix: String)?
    /// `count-drops on`: the drops count (nftables shows it; iptables counts every rule).
    var countDrops = false
    /// Allow-listed publishes read so far: container address, container port and protocol.
    var allowListed: Set<String> = []
    /// `unknown-containers drop`: the addresses its rules let through.
    var known = KnownAddresses()
    var unknownContainersDrop = false

    init(
        networks: [ImportedNetwork], containers: [ImportedContainer],
        layout: any Layout
    ) {
        self.networks = networks
        self.containers = ImportedContainers(containers)
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

    func network(_ bridge: String?) -> ImportedNetwork? { networks.first { $0.bridge == bridge } }

    /// The endpoint a prefix on a bridge stands for: a container's address, or a network's subnet.
    mutating func endpoint(_ prefix: IPPrefix?, bridge: String?) -> (name: String, address: IPAddress?)? {
        guard let prefix, let network = network(bridge), let subnet = network.subnet(of: prefix.family) else {
            return nil
        }
        if prefix.network == subnet.network && prefix.length == subnet.length { return (network.name, nil) }
        guard prefix.isHost, subnet.contains(prefix.address) else { return nil }
        if let known = containers.first(holding: prefix.address) {
            return (known.name, known.address)
        }
        // A container that left no rule of Docker's: its address is known now (an IPv6 one
        // alone cannot be a container: Docker gives every endpoint an IPv4 address).
        guard prefix.family == .ipv4 else { return nil }
        var added = ImportedContainer(address: prefix.address)
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

    /// The user chain's rules of one family; `sets`: the sets of its table (nftables).
    mutating func read(_ rules: [Rule], raw: [Rule], family: TableFamily, sets: [NamedSet] = []) {
        self.family = family
        var egressSources: Set<String> = []
        var pending: [(Int, Rule)] = []
        let body = rules.enumerated().filter { _, rule in
            // Docker's own last rule, and the replies rule Portcullis writes with any flow.
            !(rule.matches.isEmpty && rule.action == .return)
        }
        let hasFlows = body.contains { _, rule in rule.action == .accept || rule.action == .drop }
        let logged = loggedDrops(body)
        let unknown = unknownContainerRules(body.filter { !logged.contains($0.offset) }, sets: sets)
        for (index, rule) in body {
            if logged.contains(index) || unknown.contains(index) { continue }
            var rule = rule
            if rule.action == .drop && rule.effects == [.counter] {
                rule.effects = []
                countDrops = true
            }
            if allowList(rule) || directAccessDrop(rule) { continue }
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
                let source = fields.source.flatMap({ $0.isHost ? containers.first(holding: $0.address) : nil }),
                egressSources.contains(source.name), fields.destination == nil, fields.transport == nil,
                (rule.action == .drop && fields.outputNegated && fields.output == input)
                    || (rule.action == .return && !fields.outputNegated && network(fields.output) != nil)
            {
                continue
            }
            notImported.append((layout.userChain, family, rule))
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

    /// `unknown-containers drop`'s rules, when they are all there: on every network of the
    /// family, in each direction, a RETURN for each address it knows and a drop of the rest of
    /// its subnet, or (nftables) one drop of the subnet's addresses not in the set of known
    /// ones. Their indices; the addresses go to `known`.
    mutating func unknownContainerRules(_ body: [(offset: Int, element: Rule)], sets: [NamedSet]) -> Set<Int> {
        let ipFamily: IPFamily = family == .ip ? .ipv4 : .ipv6
        let managed = networks.filter { $0.subnet(of: ipFamily) != nil }
        var lists: [Direction: [String: [IPAddress]]] = [:]
        var run: [(index: Int, direction: Direction, bridge: String, address: IPAddress)] = []
        var found: Set<Int> = []
        var knownSet: String?
        var counted = false
        for (index, rule) in body {
            guard let (direction, bridge, prefix, set) = Self.unknownShape(rule),
                let subnet = network(bridge)?.subnet(of: ipFamily), prefix.family == ipFamily
            else {
                run = []
                continue
            }
            if rule.action == .return {
                guard prefix.isHost, subnet.contains(prefix.address) else {
                    run = []
                    continue
                }
                run.append((index, direction, bridge, prefix.address))
                continue
            }
            // The drop of the rest of the subnet ends a run of the same bridge and direction.
            let returns = run.filter { $0.direction == direction && $0.bridge == bridge }
            run = []
            guard prefix == subnet, lists[direction]?[bridge] == nil,
                set == nil || returns.isEmpty, set == nil || knownSet == nil || knownSet == set
            else { continue }
            knownSet = set ?? knownSet
            lists[direction, default: [:]][bridge] = returns.map(\.address)
            found.formUnion(returns.map(\.index) + [index])
            counted = counted || rule.effects == [.counter]
        }
        // Every managed network in both directions, the same addresses each way.
        let complete = [Direction.source, .destination].allSatisfy { direction in
            managed.allSatisfy { lists[direction]?[$0.bridge] != nil }
        }
        guard !managed.isEmpty, complete, lists[.source] == lists[.destination] else { return [] }
        if let knownSet {
            let elements = sets.first { $0.name == knownSet }?.elements.compactMap { element -> IPAddress? in
                guard element.key.count == 1, case .address(let prefix) = element.key[0], prefix.isHost else {
                    return nil
                }
                return prefix.address
            }
            guard let elements else { return [] }
            known.add(set: elements, family: ipFamily, networks: networks)
        } else {
            for (bridge, addresses) in lists[.source] ?? [:] {
                known.addresses[ipFamily, default: [:]][bridge] = addresses
            }
        }
        unknownContainersDrop = true
        countDrops = countDrops || counted
        return found
    }

    /// A rule of `unknown-containers drop`: a RETURN of an address on a bridge, or a drop of a
    /// prefix on a bridge (with nftables: of its addresses not in a set), in one direction.
    static func unknownShape(_ rule: Rule) -> (Direction, String, IPPrefix, set: String?)? {
        guard rule.action == .return || rule.action == .drop,
            rule.effects.isEmpty || (rule.action == .drop && rule.effects == [.counter])
        else { return nil }
        var address: (Direction, IPPrefix)?
        var interface: (Direction, String)?
        var set: (Direction, String)?
        for match in rule.matches {
            switch match {
            case .address(let direction, let prefix, false) where address == nil: address = (direction, prefix)
            case .interface(let direction, let name, false) where interface == nil: interface = (direction, name)
            case .inSet(let keys, let name, true) where set == nil && rule.action == .drop && keys.count == 1:
                switch keys[0] {
                case .sourceAddress: set = (.source, name)
                case .destinationAddress: set = (.destination, name)
                default: return nil
                }
            default: return nil
            }
        }
        guard let address, let interface, address.0 == interface.0, set.map({ $0.0 == address.0 }) ?? true else {
            return nil
        }
        return (address.0, interface.1, address.1, set?.1)
    }

    /// The LOG rules `log-drops` writes in front of each drop (the drop's matches and a rate
    /// limit, the same comment), when every one has the same rate and prefix: their indices.
    mutating func loggedDrops(_ body: [(offset: Int, element: Rule)]) -> Set<Int> {
        var found: Set<Int> = []
        for (position, (index, rule)) in body.enumerated() where position + 1 < body.count {
            guard rule.action == nil, case .log(let prefix)? = rule.effects.first(where: { $0 != .counter }),
                let rate = rule.matches.lazy.compactMap({ match -> Rate? in
                    if case .limit(let rate) = match { return rate }
                    return nil
                }).first
            else { continue }
            let next = body[position + 1].element
            let unlimited = rule.matches.filter { if case .limit = $0 { false } else { true } }
            guard next.action == .drop, next.matches == unlimited, next.comment == rule.comment else { continue }
            if let known = logDrops, known.rate != rate || known.prefix != prefix.text { return [] }
            logDrops = (rate, prefix.text)
            found.insert(index)
        }
        return found
    }

    /// A rule of a `from` allow-list (`publish ... from SOURCES`): an allowed source's RETURN or
    /// the drop after them, matching the container's address and port through conntrack's
    /// original destination. The publish gets the source.
    mutating func allowList(_ rule: Rule) -> Bool {
        guard rule.effects.isEmpty, rule.action == .return || rule.action == .drop else { return false }
        var source: IPPrefix?
        var address: IPAddress?
        var bridge: String?
        var transport: TransportProtocol?
        var hostPorts: PortRange?
        var containerPorts: PortRange?
        var hostAddress: IPAddress?
        var translated = false
        for match in rule.matches {
            switch match {
            case .address(.source, let prefix, false) where source == nil: source = prefix
            case .address(.destination, let prefix, false) where prefix.isHost && address == nil:
                address = prefix.address
            case .interface(.destination, let name, false) where bridge == nil: bridge = name
            case .transport(let t, false) where transport == nil: transport = t
            case .destinationTranslated(false): translated = true
            case .originalDestination(let prefix) where prefix.isHost: hostAddress = prefix.address
            case .originalDestinationPort(let range): hostPorts = range
            case .port(.destination, let range): containerPorts = range
            default: return false
            }
        }
        guard translated, let address, let bridge, network(bridge) != nil, let transport, let hostPorts,
            let containerPorts, (rule.action == .return) == (source != nil),
            let at = containers.index(holding: address)
        else { return false }
        let count = Int(hostPorts.last) - Int(hostPorts.first) + 1
        guard count == Int(containerPorts.last) - Int(containerPorts.first) + 1 else { return false }
        let matching = { (publish: ImportedPublish, offset: Int) in
            publish.transport == transport && publish.hostPort == UInt16(Int(hostPorts.first) + offset)
                && publish.containerPort == UInt16(Int(containerPorts.first) + offset)
                && (publish.hostAddress.map { $0 == hostAddress || $0.isUnspecified } ?? true)
                && (publish.hostAddress.map { $0.family == address.family } ?? true)
        }
        guard let first = containers[at].publishes.firstIndex(where: { matching($0, 0) }) else { return false }
        // A range is one publish line: its ports, one publish each as read from the DNAT rules,
        // are one publish again.
        if count > 1 && containers[at].publishes[first].count == 1 {
            var others: [Int] = []
            for offset in 1..<count {
                guard
                    let other = containers[at].publishes.indices.first(where: {
                        matching(containers[at].publishes[$0], offset)
                    })
                else { return false }
                others.append(other)
            }
            containers[at].publishes[first].count = count
            containers[at].publishes[first].daemonChosen = false
            for other in others.sorted(by: >) { containers[at].publishes.remove(at: other) }
        }
        let index = containers[at].publishes.firstIndex { matching($0, 0) && $0.count == count }!
        if let source, !containers[at].publishes[index].allowedSources.contains(source) {
            containers[at].publishes[index].allowedSources.append(source)
        }
        allowListed.insert("\(address) \(containerPorts)/\(transport.rawValue)")
        return true
    }

    /// The drop an allow-list adds for traffic routed straight to the container port.
    func directAccessDrop(_ rule: Rule) -> Bool {
        guard rule.action == .drop, rule.effects.isEmpty, rule.matches.count == 6,
            case .address(.destination, let prefix, false) = rule.matches[0], prefix.isHost,
            rule.matches.contains(.destinationTranslated(negated: true)),
            let ports = rule.matches.lazy.compactMap({ match -> PortRange? in
                if case .port(.destination, let range) = match { return range }
                return nil
            }).first,
            let transport = rule.matches.lazy.compactMap({ match -> TransportProtocol? in
                if case .transport(let t, false) = match { return t }
                return nil
            }).first
        else { return false }
        return allowListed.contains("\(prefix.address) \(ports)/\(transport.rawValue)")
    }
}
