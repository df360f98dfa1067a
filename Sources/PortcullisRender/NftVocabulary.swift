import PortcullisIR
import PortcullisNet

/// nftables' own rule vocabulary (the shape of libnftables-json(5)). The IR is translated into
/// it once; the text and JSON renderers only print it, so both backends say the same thing.
enum NftExpression {
    case match(NftOperand, negated: Bool, NftValue)
    case counter
    case log(prefix: String)
    case limit(Rate)
    case verdict(String)
    case jump(String)
    case goto(String)
    case dnat(family: IPFamily, address: IPAddress, ports: PortRange?)
    case snat(family: IPFamily, address: IPAddress)
    case masquerade
    case verdictMap(NftOperand, map: String)
    /// `dnat ip to KEY map @addresses` with `:KEY map @ports` when the port is mapped too.
    case dnatMap(family: IPFamily, key: NftOperand, addressMap: String, portMap: String?)
    /// `meta mark set meta mark | BITS`.
    case addMarkBits(UInt32)
}

enum NftOperand {
    case payload(protocol: String, field: String)
    case meta(String)
    case fib(String)
    case ct(key: String, direction: String?, family: String?)
    case concat([NftOperand])
    /// `OPERAND & MASK`, compared with `==`.
    indirect case bitwiseAnd(NftOperand, UInt32)
}

enum NftValue {
    case address(IPPrefix)
    case string(String)
    case keyword(String)
    case ports(PortRange)
    case flags([String])
    case setReference(String)
    /// An anonymous set of keywords: `{ tcp, udp }`.
    case keywords([String])
    /// A number nft prints in hex (marks).
    case hex(UInt32)
}

struct NftRule {
    var expressions: [NftExpression]
    var comment: String?
}

enum NftVocabulary {
    static func family(of table: Table, _ prefixFamily: IPFamily? = nil) -> IPFamily {
        table.family.ipFamily ?? prefixFamily ?? .ipv4
    }

    static func addressProtocol(_ family: IPFamily) -> String { family == .ipv4 ? "ip" : "ip6" }

    static func translate(_ rule: Rule, in table: Table) throws(RenderError) -> NftRule {
        let hasPort = rule.matches.contains {
            if case .port = $0 { return true }
            return false
        }
        let transport = rule.matches.lazy.compactMap { m -> TransportProtocol? in
            if case .transport(let t, false) = m { return t }
            return nil
        }.first
        var expressions: [NftExpression] = []
        for match in orderedMatches(rule, in: table) {
            if let expression = try translate(match, of: rule, in: table, transport: transport, hasPort: hasPort) {
                expressions.append(expression)
            }
        }
        for effect in rule.effects {
            switch effect {
            case .counter: expressions.append(.counter)
            case .log(let prefix): expressions.append(.log(prefix: prefix.text))
            case .addMarkBits(let bits): expressions.append(.addMarkBits(bits))
            }
        }
        if let action = rule.action { expressions.append(try translate(action, of: rule, in: table)) }
        return NftRule(expressions: expressions, comment: rule.comment?.text)
    }

    /// iptables-nft's order: interfaces, addresses, protocol and ports, then the rest; rules
    /// read from nft keep the order they were listed in.
    private static func orderedMatches(_ rule: Rule, in table: Table) -> [Match] {
        func rank(_ m: Match) -> Int {
            switch m {
            case .interface(.source, _, _): 0
            case .interface(.destination, _, _): 1
            case .address(.source, _, _): 2
            case .address(.destination, _, _): 3
            case .transport, .icmp, .port: 4
            default: 5
            }
        }
        guard !table.keepsMatchOrder else { return rule.matches }
        return rule.matches.enumerated().sorted { (rank($0.element), $0.offset) < (rank($1.element), $1.offset) }
            .map(\.element)
    }

    /// One match; nil for a protocol match a port match of the rule already implies.
    private static func translate(
        _ match: Match, of rule: Rule, in table: Table, transport: TransportProtocol?, hasPort: Bool
    ) throws(RenderError) -> NftExpression? {
        switch match {
        case .address(let direction, let prefix, let negated):
            return .match(
                .payload(
                    protocol: addressProtocol(prefix.family), field: direction == .source ? "saddr" : "daddr"),
                negated: negated, .address(prefix.network))
        case .interface(let direction, let name, let negated):
            return .match(.meta(direction == .source ? "iifname" : "oifname"), negated: negated, .string(name))
        case .transport(let t, let negated):
            // A port match implies the protocol.
            guard !hasPort || negated else { return nil }
            return .match(.meta("l4proto"), negated: negated, .keyword(t.rawValue))
        case .transports(let transports):
            return .match(.meta("l4proto"), negated: false, .keywords(transports.map(\.rawValue)))
        case .icmp:
            // As Docker's nftables firewaller writes them.
            return table.family == .ip6
                ? .match(.meta("l4proto"), negated: false, .keyword("ipv6-icmp"))
                : .match(.payload(protocol: "ip", field: "protocol"), negated: false, .keyword("icmp"))
        case .port(let direction, let ports):
            guard let transport else {
                throw RenderError(
                    "a port match needs a protocol match in the same rule", provenance: rule.provenance)
            }
            return .match(
                .payload(protocol: transport.rawValue, field: direction == .source ? "sport" : "dport"),
                negated: false, .ports(ports))
        case .localAddress(let direction, let negated):
            return .match(.fib(direction == .source ? "saddr" : "daddr"), negated: negated, .keyword("local"))
        case .connectionState(let states):
            // nft lists states in the order of their bit values.
            let order: [ConnectionState] = [.invalid, .established, .related, .new, .untracked]
            return .match(
                .ct(key: "state", direction: nil, family: nil), negated: false,
                .flags(order.filter(states.contains).map(\.rawValue)))
        case .destinationTranslated(let negated):
            return .match(.ct(key: "status", direction: nil, family: nil), negated: negated, .flags(["dnat"]))
        case .originalDestination(let prefix):
            return .match(
                .ct(key: "daddr", direction: "original", family: addressProtocol(prefix.family)),
                negated: false,
                .address(prefix.network))
        case .originalDestinationPort(let ports):
            return .match(.ct(key: "proto-dst", direction: "original", family: nil), negated: false, .ports(ports))
        case .limit(let rate):
            return .limit(rate)
        case .mark(let value, let mask):
            return .match(mask.map { .bitwiseAnd(.meta("mark"), $0) } ?? .meta("mark"), negated: false, .hex(value))
        case .opaque(let text):
            throw RenderError("'\(text)' has no nftables form known to Portcullis", provenance: rule.provenance)
        case .inSet(let keys, let set, let negated):
            return .match(operand(keys, table: table, set: set), negated: negated, .setReference(set))
        }
    }

    private static func translate(_ action: Action, of rule: Rule, in table: Table) throws(RenderError)
        -> NftExpression
    {
        switch action {
        case .accept: return .verdict("accept")
        case .drop: return .verdict("drop")
        case .return: return .verdict("return")
        case .jump(let chain): return .jump(chain)
        case .goto(let chain): return .goto(chain)
        case .masquerade: return .masquerade
        case .dnat(let address, let ports):
            return .dnat(family: address.family, address: address, ports: ports)
        case .snat(let address): return .snat(family: address.family, address: address)
        case .verdictMap(let keys, let map):
            return .verdictMap(operand(keys, table: table, set: map), map: map)
        case .dnatMap(let family, let keys, let addressMap, let portMap):
            return .dnatMap(
                family: family, key: operand(keys, table: table, set: addressMap), addressMap: addressMap,
                portMap: portMap)
        case .opaque(let text):
            throw RenderError(
                "target '\(text)' has no nftables form known to Portcullis", provenance: rule.provenance)
        case .checksumFill:
            throw RenderError(
                "nftables has no CHECKSUM target (Docker writes it for SCTP publishes); use the iptables backend",
                provenance: rule.provenance)
        }
    }

    /// The packet fields a set or map is keyed by, typed from the set's declaration.
    static func operand(_ keys: [SetKeyField], table: Table, set name: String) -> NftOperand {
        let keyTypes = table.sets.first { $0.name == name }?.keyTypes ?? []
        var addressIndex = 0
        let addressFamilies = keyTypes.compactMap { type -> IPFamily? in
            switch type {
            case .ipv4Address: .ipv4
            case .ipv6Address: .ipv6
            default: nil
            }
        }
        let parts = keys.map { key -> NftOperand in
            func nextFamily() -> String {
                defer { addressIndex += 1 }
                return addressProtocol(
                    addressIndex < addressFamilies.count ? addressFamilies[addressIndex] : family(of: table))
            }
            switch key {
            case .sourceAddress: return .payload(protocol: nextFamily(), field: "saddr")
            case .destinationAddress: return .payload(protocol: nextFamily(), field: "daddr")
            case .inputInterface: return .meta("iifname")
            case .outputInterface: return .meta("oifname")
            case .transport: return .meta("l4proto")
            case .destinationPort: return .payload(protocol: "th", field: "dport")
            case .originalDestinationAddress: return .ct(key: "daddr", direction: "original", family: nextFamily())
            case .originalDestinationPort: return .ct(key: "proto-dst", direction: "original", family: nil)
            }
        }
        return parts.count == 1 ? parts[0] : .concat(parts)
    }

    /// Named priorities as `nft list` prints them, for the hooks where nft accepts the name.
    static func priorityText(_ base: BaseChain) -> String {
        switch (base.priority, base.hook) {
        case (0, _): "filter"
        case (-300, _): "raw"
        case (-150, _): "mangle"
        case (-100, .prerouting): "dstnat"
        case (100, .postrouting): "srcnat"
        default: "\(base.priority)"
        }
    }
}
