import PortcullisIR
import PortcullisNet

/// The first packet of a connection, as it arrives at the host (or as the host sends it).
public struct Packet: Sendable, Hashable {
    /// Empty for a packet the host sends itself.
    public var inputInterface: String
    public var source: IPAddress
    public var destination: IPAddress
    public var transport: TransportProtocol?
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    /// Sent by the host itself: it leaves through output (nat OUTPUT's DNAT, filter OUTPUT)
    /// and postrouting, and comes back through input over `lo` when it is for the host.
    public var locallyGenerated: Bool

    public init(
        inputInterface: String, source: IPAddress, destination: IPAddress, transport: TransportProtocol?,
        sourcePort: UInt16 = 40000, destinationPort: UInt16 = 0, locallyGenerated: Bool = false
    ) {
        self.locallyGenerated = locallyGenerated
        self.inputInterface = locallyGenerated ? "" : inputInterface
        self.source = source
        self.destination = destination
        self.transport = transport
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }
}

/// What the evaluator needs to know about the host besides its ruleset: which addresses are
/// its own (`fib daddr type local`, `-m addrtype --dst-type LOCAL`) and where it routes.
public struct HostRouting: Sendable {
    public var localAddresses: Set<IPAddress>
    /// Directly connected prefixes and their interfaces (the bridges).
    public var routes: [(prefix: IPPrefix, interface: String)]
    /// Where everything else goes.
    public var defaultInterface: String

    public init(
        localAddresses: Set<IPAddress>, routes: [(prefix: IPPrefix, interface: String)], defaultInterface: String
    ) {
        self.localAddresses = localAddresses
        self.routes = routes
        self.defaultInterface = defaultInterface
    }

    /// The longest matching route's interface.
    public func interface(for address: IPAddress) -> String {
        routes.filter { $0.prefix.contains(address) }.max { $0.prefix.length < $1.prefix.length }?.interface
            ?? defaultInterface
    }
}

/// One step of an evaluation: a rule that matched (or a chain's policy), where, and its effect.
public struct TraceStep: Sendable {
    public let table: String
    public let chain: String
    /// nil when the step is a base chain's policy.
    public let rule: Rule?
    public let outcome: String
    /// The map element that decided the step (a published port in a DNAT map, a bridge pair in
    /// a verdict map), whose provenance names the statement behind it.
    public let element: SetElement?

    /// The policy statement behind the step: the element's when a map element decided it.
    public var provenance: Provenance? { element?.provenance ?? rule?.provenance }

    init(table: String, chain: String, rule: Rule?, outcome: String, element: SetElement? = nil) {
        self.table = table
        self.chain = chain
        self.rule = rule
        self.outcome = outcome
        self.element = element
    }
}

public enum Verdict: String, Sendable {
    case accept
    case drop
}

public struct Evaluation: Sendable {
    public let verdict: Verdict
    /// The hook that decided: `forward` for routed traffic, `input` for the host itself,
    /// `output` for what the host sends elsewhere.
    public let path: Hook
    public let outputInterface: String?
    /// The destination after DNAT and the source after SNAT/MASQUERADE, when translated.
    public let translatedDestination: (address: IPAddress, port: UInt16)?
    public let translatedSource: String?
    public let trace: [TraceStep]
}

/// Walks a ruleset as the kernel walks the first packet of a connection: prerouting (DNAT),
/// the routing decision, forward or input, then postrouting (SNAT/MASQUERADE); in each hook the
/// base chains of every table in priority order, following jumps, gotos and returns.
public struct Evaluator: Sendable {
    public let ruleset: Ruleset
    public let routing: HostRouting

    public init(ruleset: Ruleset, routing: HostRouting) {
        self.ruleset = ruleset
        self.routing = routing
    }

    /// The state of the packet as it moves through the hooks.
    struct State {
        var packet: Packet
        var outputInterface: String?
        var originalDestination: IPAddress
        var originalDestinationPort: UInt16
        var destinationTranslated = false
        var sourceTranslation: String?
        /// The packet's firewall mark, which a rule may set and a later base chain test.
        var mark: UInt32 = 0
        var trace: [TraceStep] = []
    }

    public func evaluate(_ packet: Packet) -> Evaluation {
        var state = State(
            packet: packet, originalDestination: packet.destination, originalDestinationPort: packet.destinationPort)
        if packet.locallyGenerated { return evaluateLocallyGenerated(&state) }
        var verdict = run(.prerouting, &state)
        let local = routing.localAddresses.contains(state.packet.destination)
        let path: Hook = local ? .input : .forward
        if verdict == .accept {
            if !local { state.outputInterface = routing.interface(for: state.packet.destination) }
            verdict = run(path, &state)
        }
        if verdict == .accept && !local { verdict = run(.postrouting, &state) }
        return Evaluation(
            verdict: verdict, path: path, outputInterface: state.outputInterface,
            translatedDestination: state.destinationTranslated
                ? (state.packet.destination, state.packet.destinationPort) : nil,
            translatedSource: state.sourceTranslation, trace: state.trace)
    }

    /// A packet the host sends: routed first, output (where nat OUTPUT may DNAT it, which routes
    /// it again), postrouting; one for the host itself then comes in over `lo` through input.
    /// Connection tracking has made its NAT choice by then: prerouting's NAT is not consulted.
    func evaluateLocallyGenerated(_ state: inout State) -> Evaluation {
        let routed = { (state: State) in
            routing.localAddresses.contains(state.packet.destination)
                ? "lo" : routing.interface(for: state.packet.destination)
        }
        state.outputInterface = routed(state)
        var verdict = run(.output, &state)
        let local = routing.localAddresses.contains(state.packet.destination)
        if verdict == .accept { verdict = run(.postrouting, &state) }
        if verdict == .accept && local {
            state.packet.inputInterface = "lo"
            verdict = run(.input, &state)
        }
        return Evaluation(
            verdict: verdict, path: local ? .input : .output, outputInterface: state.outputInterface,
            translatedDestination: state.destinationTranslated
                ? (state.packet.destination, state.packet.destinationPort) : nil,
            translatedSource: state.sourceTranslation, trace: state.trace)
    }

    /// Every base chain on `hook`, lowest priority first; the first drop wins.
    func run(_ hook: Hook, _ state: inout State) -> Verdict {
        let chains = ruleset.tables.flatMap { table in
            table.chains.compactMap { chain -> (Table, Chain, BaseChain)? in
                guard let base = chain.base, base.hook == hook, family(table, matches: state.packet) else { return nil }
                return (table, chain, base)
            }
        }.sorted { $0.2.priority < $1.2.priority }
        for (table, chain, base) in chains {
            let destination = state.packet.destination
            if run(chain: chain, in: table, base: base, &state) == .drop { return .drop }
            // nat OUTPUT's DNAT routes the packet again before the chains after it.
            if hook == .output && state.packet.destination != destination {
                state.outputInterface =
                    routing.localAddresses.contains(state.packet.destination)
                    ? "lo" : routing.interface(for: state.packet.destination)
            }
        }
        return .accept
    }

    func family(_ table: Table, matches packet: Packet) -> Bool {
        table.family.ipFamily.map { $0 == packet.source.family } ?? true
    }

    enum Flow {
        case verdict(Verdict)
        case continueNext
    }

    /// A base chain with its jumps; returns its verdict (the policy when nothing decided).
    func run(chain: Chain, in table: Table, base: BaseChain, _ state: inout State) -> Verdict {
        if case .verdict(let verdict) = walk(chain, in: table, &state, depth: 0) { return verdict }
        state.trace.append(
            TraceStep(table: table.name, chain: chain.name, rule: nil, outcome: "policy \(base.policy.rawValue)"))
        return base.policy == .accept ? .accept : .drop
    }

    func walk(_ chain: Chain, in table: Table, _ state: inout State, depth: Int) -> Flow {
        guard depth < 64 else { return .verdict(.drop) }  // the kernel refuses loops; never hang on one
        for rule in chain.rules where matches(rule, state, table: table) {
            var element: SetElement?
            func step(_ outcome: String) {
                state.trace.append(
                    TraceStep(table: table.name, chain: chain.name, rule: rule, outcome: outcome, element: element))
            }
            for case .addMarkBits(let bits) in rule.effects { state.mark |= bits }
            guard var action = rule.action else {
                step(rule.effects.isEmpty ? "matched" : "log")
                continue
            }
            // A map lookup decides the action; a packet no element covers goes on to the next rule.
            switch action {
            case .verdictMap(let keys, let map):
                guard let found = lookup(keys, in: map, table: table, state),
                    case .verdict(let verdict)? = found.value
                else { continue }
                element = found
                action = verdict
            case .dnatMap(_, let keys, let addressMap, let portMap):
                guard let found = lookup(keys, in: addressMap, table: table, state),
                    case .data(let data)? = found.value, case .address(let address)? = data.first
                else { continue }
                var port: PortRange?
                if let portMap {
                    guard let mapped = lookup(keys, in: portMap, table: table, state),
                        case .data(let data)? = mapped.value, case .ports(let ports)? = data.first
                    else { continue }
                    port = ports
                }
                element = found
                action = .dnat(address.address, port)
            default: break
            }
            switch action {
            case .accept:
                step("accept")
                return .verdict(.accept)
            case .drop:
                step("drop")
                return .verdict(.drop)
            case .return:
                step("return")
                return .continueNext
            case .jump(let target), .goto(let target):
                step(action == .jump(target) ? "jump \(target)" : "goto \(target)")
                guard let next = table.chain(target) else { continue }
                let flow = walk(next, in: table, &state, depth: depth + 1)
                if case .verdict = flow { return flow }
                if case .goto = action { return .continueNext }
            case .dnat(let address, let ports):
                state.packet.destination = address
                if let ports { state.packet.destinationPort = ports.first }
                state.destinationTranslated = true
                step("dnat to \(address)\(ports.map { ":\($0)" } ?? "")")
                return .verdict(.accept)
            case .snat(let address):
                state.sourceTranslation = address.description
                step("snat to \(address)")
                return .verdict(.accept)
            case .masquerade:
                state.sourceTranslation = "the address of \(state.outputInterface ?? "the output interface")"
                step("masquerade")
                return .verdict(.accept)
            case .checksumFill:
                step("checksum fill")
            case .verdictMap, .dnatMap:
                continue  // resolved above
            case .opaque(let text):
                step("\(text) (not evaluated)")
            }
        }
        return .continueNext
    }

    func matches(_ rule: Rule, _ state: State, table: Table) -> Bool {
        let packet = state.packet
        return rule.matches.allSatisfy { match in
            switch match {
            case .address(let direction, let prefix, let negated):
                return prefix.contains(direction == .source ? packet.source : packet.destination) != negated
            case .interface(let direction, let name, let negated):
                let interface = direction == .source ? packet.inputInterface : state.outputInterface
                return (interface == name) != negated
            case .transport(let transport, let negated):
                return (packet.transport == transport) != negated
            case .transports(let transports):
                return packet.transport.map(transports.contains) ?? false
            case .icmp:
                return false  // explained packets are TCP, UDP or SCTP
            case .port(let direction, let ports):
                return ports.contains(direction == .source ? packet.sourcePort : packet.destinationPort)
            case .localAddress(let direction, let negated):
                return routing.localAddresses.contains(direction == .source ? packet.source : packet.destination)
                    != negated
            case .connectionState(let states):
                return states.contains(.new)  // the first packet of a connection
            case .destinationTranslated(let negated):
                return state.destinationTranslated != negated
            case .originalDestination(let prefix):
                return prefix.contains(state.originalDestination)
            case .originalDestinationPort(let ports):
                return ports.contains(state.originalDestinationPort)
            case .limit:
                return true  // a rate limit lets the first packet through
            case .inSet(let keys, let name, let negated):
                // An address key of the other family means the rule does not apply to the packet
                // (`ip saddr` implies an IPv4 packet), negated or not.
                guard let set = table.sets.first(where: { $0.name == name }),
                    let key = keyValues(keys, set: set, state)
                else { return false }
                return (set.element(covering: key) != nil) != negated
            case .mark(let value, let mask):
                return state.mark & (mask ?? .max) == value
            case .opaque:
                return false  // not modelled: the rule is taken not to match
            }
        }
    }

    /// The packet's values for a set's key fields; nil when the packet has no such value (no
    /// output interface before routing, no port) or an address field is of the other family.
    func keyValues(_ fields: [SetKeyField], set: NamedSet, _ state: State) -> [SetValue]? {
        let packet = state.packet
        var values: [SetValue] = []
        for (index, field) in fields.enumerated() {
            let type = index < set.keyTypes.count ? set.keyTypes[index] : nil
            func address(_ address: IPAddress) -> SetValue? {
                let family: IPFamily? =
                    switch type {
                    case .ipv4Address?: .ipv4
                    case .ipv6Address?: .ipv6
                    default: nil
                    }
                return family == address.family ? .address(IPPrefix(host: address)) : nil
            }
            let value: SetValue? =
                switch field {
                case .sourceAddress: address(packet.source)
                case .destinationAddress: address(packet.destination)
                case .originalDestinationAddress: address(state.originalDestination)
                case .inputInterface: .interface(packet.inputInterface)
                case .outputInterface: state.outputInterface.map { .interface($0) }
                case .transport: packet.transport.map { .transport($0) }
                case .destinationPort: packet.transport == nil ? nil : .ports(PortRange(packet.destinationPort))
                case .originalDestinationPort:
                    packet.transport == nil ? nil : .ports(PortRange(state.originalDestinationPort))
                }
            guard let value else { return nil }
            values.append(value)
        }
        return values
    }

    /// The element of a table's set or map that covers the packet's key fields.
    func lookup(_ keys: [SetKeyField], in name: String, table: Table, _ state: State) -> SetElement? {
        guard let set = table.sets.first(where: { $0.name == name }), let key = keyValues(keys, set: set, state) else {
            return nil
        }
        return set.element(covering: key)
    }
}
