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

    /// Rules read from nft JSON list interfaces before addresses; the import reads matches in
    /// `iptables-save` order (addresses, interfaces, protocol, then the modules), so both
    /// sources are put in that order first.
    public init(ruleset: Ruleset) {
        var ordered = ruleset
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
        public let policy: String
        /// What could not be imported, one line each.
        public let notImported: [String]
        /// User rules the language cannot say, with their chain, for the caller to print.
        public let notImportedRules: [(chain: String, rule: Rule)]
    }

    struct ImportedNetwork {
        let bridge: String
        var subnet: IPPrefix?
        var `internal` = false
        var icc = true
        var masquerade = false
        var name = ""
    }

    struct ImportedPublish {
        let hostAddress: IPAddress?
        let hostPort: UInt16
        let containerPort: UInt16
        let transport: TransportProtocol
    }

    struct ImportedContainer {
        let address: IPAddress
        var bridge: String?
        var publishes: [ImportedPublish] = []
        var name: String {
            "c-" + address.description.map { $0 == "." || $0 == ":" ? "-" : String($0) }.joined()
        }
    }

    static let ephemeral = PortRange(32768, 60999)

    var filter: Table? { ruleset.table(.ip, "filter") }
    var nat: Table? { ruleset.table(.ip, "nat") }
    var raw: Table? { ruleset.table(.ip, "raw") }

    public func importPolicy(as layout: Layout) -> Result {
        var notImported: [String] = []
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
            // DOCKER-FORWARD gets each network's ICC / outgoing rules appended.
            for rule in filter?.chain("DOCKER-FORWARD")?.rules ?? [] {
                if case .interface(.source, let bridge, false)? = rule.matches.first { _ = index(bridge) }
            }
        }
        for chain in ["DOCKER-ISOLATION-STAGE-1", "DOCKER-INTERNAL"] {
            for rule in filter?.chain(chain)?.rules ?? [] {
                if let (subnet, bridge) = Self.internalDrop(rule) {
                    let at = index(bridge)
                    networks[at].internal = true
                    networks[at].subnet = subnet
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
        for rule in nat?.chain("POSTROUTING")?.rules ?? [] where rule.action == .masquerade {
            if case .address(.source, let subnet, false) = rule.matches.first, !subnet.isHost,
                case .interface(.destination, let bridge, true)? = rule.matches.dropFirst().first
            {
                let at = index(bridge)
                networks[at].subnet = subnet
                networks[at].masquerade = true
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
        var containers: [ImportedContainer] = []
        func container(_ address: IPAddress) -> Int {
            if let at = containers.firstIndex(where: { $0.address == address }) { return at }
            containers.append(ImportedContainer(address: address))
            return containers.count - 1
        }
        for rule in raw?.chain("PREROUTING")?.rules ?? [] where rule.action == .drop && rule.matches.count == 2 {
            if case .address(.destination, let prefix, false) = rule.matches[0], prefix.isHost,
                case .interface(.source, let bridge, true) = rule.matches[1], bridge != "lo",
                networks.contains(where: { $0.bridge == bridge })
            {
                containers[container(prefix.address)].bridge = bridge
            }
        }
        for rule in nat?.chain("DOCKER")?.rules ?? [] {
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

        // Names: the default bridge is 'bridge', others are named after their bridge.
        for at in networks.indices {
            networks[at].name = networks[at].bridge == "docker0" ? "bridge" : "net-" + networks[at].bridge
        }
        var users = UserRuleImport(networks: networks, containers: containers, layout: layout)
        let userChain = layout == .docker15 ? "PORTCULLIS-FORWARD" : "DOCKER-USER"
        users.read(filter?.chain(userChain)?.rules ?? [], raw: raw?.chain("PREROUTING")?.rules ?? [])
        containers = users.containers

        var lines = ["# Imported from a host managed by Docker (\(layout.rawValue) layout)."]
        lines.append("# Containers are named after their address (c-A-B-C-D) and networks after their bridge")
        lines.append("# (net-BRIDGE; the default bridge is 'bridge'): a ruleset holds no names. Containers that")
        lines.append("# left no rule are not listed; host ports in 32768-60999 (the ephemeral range) are taken")
        lines.append("# as chosen by the daemon (-P).")
        var host: [String] = ["    layout \(layout.rawValue)"]
        if proxyOff { host.append("    userland-proxy off") }
        let forwardPolicy = filter?.chain("FORWARD")?.base?.policy
        if layout == .docker15 {
            if forwardPolicy == .drop { host.append("    forward-policy drop") }
        } else if forwardPolicy == .accept {
            host.append("    forward-policy accept")
        }
        for name in users.externals { host.append("    external \(name)") }
        lines += ["", "host {"] + host + ["}"]
        var known: Set<String> = []
        for network in networks {
            guard let subnet = network.subnet else {
                notImported.append(
                    "network on bridge \(network.bridge): its subnet is not in the rules (no MASQUERADE)")
                continue
            }
            known.insert(network.bridge)
            lines += ["", "network \(network.name) {", "    bridge \(network.bridge)", "    subnet \(subnet.network)"]
            if network.internal { lines.append("    internal") }
            if !network.icc { lines.append("    icc deny") }
            if !network.masquerade && !network.internal { lines.append("    masquerade off") }
            lines.append("}")
        }
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
            lines += ["", "container \(imported.name) {", "    attach \(network.name) \(imported.address)"]
            for publish in imported.publishes {
                // Docker's default ephemeral range holds the ports it chose itself (-P, -p PORT):
                // imported as such, the allocator picks them again and in Docker's order.
                if publish.hostAddress == nil && Self.ephemeral.contains(publish.hostPort) {
                    lines.append("    publish \(publish.containerPort)/\(publish.transport.rawValue)")
                    continue
                }
                let host = publish.hostAddress.map { "\($0):" } ?? ""
                lines.append(
                    "    publish \(host)\(publish.hostPort) -> \(publish.containerPort)/\(publish.transport.rawValue)")
            }
            lines.append("}")
        }
        let statements = users.statements.filter { statement in
            statement.addresses.allSatisfy { written.contains($0) }
        }
        if !statements.isEmpty {
            lines += ["", "# From the rules in \(userChain):"] + statements.map(\.text)
        }
        var rules = users.notImported
        for statement in users.statements where !statements.contains(where: { $0.text == statement.text }) {
            rules.append(contentsOf: statement.rules.map { (userChain, $0) })
        }
        for chain in Set(rules.map(\.chain)).sorted() {
            let table = chain == "PREROUTING" ? "raw " : ""
            notImported.append(
                "\(rules.filter { $0.chain == chain }.count) rule(s) in \(table)\(chain) the policy language cannot say (listed below)"
            )
        }
        for line in notImported { lines.append("# not imported: \(line)") }
        return Result(
            policy: lines.joined(separator: "\n") + "\n", notImported: notImported, notImportedRules: rules)
    }

    /// `! -s SUBNET -o BRIDGE -j DROP`: Docker's rule for an internal network.
    static func internalDrop(_ rule: Rule) -> (IPPrefix, String)? {
        guard rule.action == .drop, rule.matches.count == 2,
            case .address(.source, let subnet, true) = rule.matches[0],
            case .interface(.destination, let bridge, false) = rule.matches[1]
        else { return nil }
        return (subnet, bridge)
    }
}

/// The rules of the user chain as policy statements.
struct UserRuleImport {
    let networks: [DockerImporter.ImportedNetwork]
    var containers: [DockerImporter.ImportedContainer]
    let layout: DockerImporter.Layout
    var statements: [(text: String, addresses: [IPAddress], rules: [Rule])] = []
    var notImported: [(chain: String, rule: Rule)] = []
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

        var portText: String {
            guard let transport else { return "" }
            return ports.map { " port \($0)/\(transport.rawValue)" } ?? ""
        }
    }

    func network(_ bridge: String?) -> DockerImporter.ImportedNetwork? { networks.first { $0.bridge == bridge } }

    /// The endpoint a prefix on a bridge stands for: a container's address, or a network's subnet.
    mutating func endpoint(_ prefix: IPPrefix?, bridge: String?) -> (name: String, address: IPAddress?)? {
        guard let prefix, let network = network(bridge), let subnet = network.subnet else { return nil }
        if prefix.network == subnet.network && prefix.length == subnet.length { return (network.name, nil) }
        guard prefix.isHost, subnet.contains(prefix.address) else { return nil }
        if let known = containers.first(where: { $0.address == prefix.address }) {
            return (known.name, known.address)
        }
        // A container that left no rule of Docker's: its address is known now.
        var added = DockerImporter.ImportedContainer(address: prefix.address)
        added.bridge = network.bridge
        containers.append(added)
        return (added.name, added.address)
    }

    mutating func read(_ rules: [Rule], raw: [Rule]) {
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
            let kind = rule.action == .accept ? "allow" : rule.action == .drop ? "deny" : nil
            // allow / deny: both ends on bridges.
            if let kind, !fields.outputNegated, network(fields.input) != nil, network(fields.output) != nil,
                let source = endpoint(fields.source, bridge: fields.input),
                let destination = endpoint(fields.destination, bridge: fields.output)
            {
                statements.append(
                    (
                        "\(kind) \(source.name) -> \(destination.name)\(fields.portText)",
                        [source.address, destination.address].compactMap { $0 }, [rule]
                    ))
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
                statements.append(
                    ("egress \(source.name) -> \(destination)\(fields.portText)", [source.address!], [rule]))
                egressSources.insert(source.name)
                continue
            }
            pending.append((index, rule))
        }
        // What egress rules imply: returns to other bridges and the final drop of each source.
        for (_, rule) in pending {
            if let fields = Fields(rule), rule.effects.isEmpty, let input = fields.input,
                let source = containers.first(where: {
                    $0.address == fields.source?.address && fields.source?.isHost == true
                }),
                egressSources.contains(source.name), fields.destination == nil, fields.transport == nil,
                (rule.action == .drop && fields.outputNegated && fields.output == input)
                    || (rule.action == .return && !fields.outputNegated && network(fields.output) != nil)
            {
                continue
            }
            notImported.append((layout == .docker15 ? "PORTCULLIS-FORWARD" : "DOCKER-USER", rule))
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
            if !shape || !statements.contains(where: { $0.text.hasPrefix("allow ") }) {
                notImported.append(("PREROUTING", rule))
            }
        }
    }
}
