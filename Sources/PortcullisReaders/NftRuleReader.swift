import JanssonKit
import PortcullisIR
import PortcullisNet

/// Reads one rule's expressions.
struct RuleReader {
    let path: String
    let family: TableFamily
    /// Named sets of the table that were read (a reference to any other is kept opaque).
    let sets: [String: NamedSet]
    var warnings: [ReadWarning] = []

    init(path: String, family: TableFamily, sets: [String: NamedSet]) {
        self.path = path
        self.family = family
        self.sets = sets
    }

    /// The rule read so far: its parts in order, and the transport protocol a match fixed.
    private var matches: [Match] = []
    private var effects: [Effect] = []
    private var action: Action?
    private var transport: TransportProtocol?

    mutating func rule(_ object: JSON) throws(ReadError) -> Rule {
        guard let expressions = object["expr"]?.arrayValue else {
            throw ReadError(line: 0, message: "\(path): missing 'expr'")
        }
        (matches, effects, action, transport) = ([], [], nil, nil)
        for (index, expression) in expressions.enumerated() {
            let at = "\(path).expr[\(index)]"
            guard case .object(let members) = expression, members.count == 1, let kind = members.first?.0,
                let body = members.first?.1
            else {
                throw ReadError(line: 0, message: "\(at): expected an object with one key")
            }
            if action != nil {
                throw ReadError(line: 0, message: "\(at): '\(kind)' after the rule's verdict")
            }
            var fixed = transport
            if kind == "match", let read = self.match(body, transport: &fixed) {
                matches += read
                transport = fixed
                continue
            }
            readStatement(kind, body, expression, at)
        }
        let comment = object["comment"]?.stringValue.flatMap(RuleComment.init)
        if let text = object["comment"]?.stringValue, comment == nil {
            warnings.append(ReadWarning(path: path, message: "comment '\(text)' dropped: it cannot be written back"))
        }
        return Rule(matches, effects: effects, action, comment: comment)
    }

    /// Anything but a modelled match: an effect, a rate limit, an iptables-nft extension, a
    /// verdict or NAT; kept opaque where it is not modelled.
    private mutating func readStatement(_ kind: String, _ body: JSON, _ expression: JSON, _ at: String) {
        switch kind {
        case "counter" where body["packets"] != nil || body == .null:
            effects.append(.counter)
        case "mangle" where body["key"]?["meta"]?["key"]?.stringValue == "mark":
            // `meta mark set meta mark | BITS`.
            let mark = JSON.object([("meta", .object([("key", .string("mark"))]))])
            if let or = body["value"]?["|"]?.arrayValue, or.count == 2, or[0] == mark,
                let bits = or[1].integerValue.flatMap(UInt32.init(exactly:))
            {
                effects.append(.addMarkBits(bits))
            } else {
                matches.append(opaque(expression, at))
            }
        case "log":
            if let text = body["prefix"]?.stringValue, let prefix = RuleComment(text),
                case .object(let members) = body, members.count == 1
            {
                effects.append(.log(prefix: prefix))
            } else {
                matches.append(opaque(expression, at))
            }
        case "limit":
            if let rate = Self.limit(body) {
                matches.append(.limit(rate))
            } else {
                matches.append(opaque(expression, at))
            }
        case "xt":
            readExtension(body, at)
        default:
            readVerdict(kind, body, expression, at)
        }
    }

    /// `limit rate N/UNIT` with nft's default burst, in packets.
    private static func limit(_ body: JSON) -> Rate? {
        guard let rate = body["rate"]?.integerValue, rate > 0,
            let unit = body["per"]?.stringValue.flatMap(Rate.Unit.init(rawValue:)),
            body["burst"] == nil || body["burst"]?.integerValue == 5, body["inv"] == nil,
            body["rate_unit"] == nil || body["rate_unit"]?.stringValue == "packets"
        else { return nil }
        return Rate(count: rate, unit: unit)
    }

    /// An iptables-nft `xt` expression: its options are not in the listing.
    private mutating func readExtension(_ body: JSON, _ at: String) {
        let name = body["name"]?.stringValue ?? "?"
        let type = body["type"]?.stringValue ?? "match"
        let text = "xt \(type) \(name)"
        warnings.append(
            ReadWarning(
                path: at,
                message:
                    "kept as written, not modelled: \(text) (an iptables-nft extension; its options are not in the listing, read the host with iptables-save for them)"
            ))
        if type == "target" {
            action = .opaque(text)
        } else {
            matches.append(.opaque(text))
        }
    }

    /// A verdict, NAT or verdict-map lookup; other terminal statements are kept as opaque
    /// actions, anything else as an opaque match.
    private mutating func readVerdict(_ kind: String, _ body: JSON, _ expression: JSON, _ at: String) {
        if let verdict = Self.verdict(expression) {
            action = verdict
        } else if let nat = self.nat(kind, body) {
            action = nat
        } else if kind == "vmap", let (map, keys) = lookup(body["data"], key: body["key"]),
            map.mapValue == .verdict
        {
            action = .verdictMap(keys: keys.fields, map: map.name)
            if let implied = keys.transport, transport == nil {
                transport = implied
                matches.append(.transport(implied))
            }
        } else if NftJSONReader.terminalStatements.contains(kind) {
            let text = JSON.object([(kind, body)]).rendered(indent: 0)
            warnings.append(ReadWarning(path: at, message: "kept as written, not modelled: \(text)"))
            action = .opaque(text)
        } else {
            matches.append(opaque(expression, at))
        }
    }

    mutating func opaque(_ expression: JSON, _ at: String) -> Match {
        let text = expression.rendered(indent: 0)
        warnings.append(ReadWarning(path: at, message: "kept as written, not modelled: \(text)"))
        return .opaque(text)
    }

    /// A `match` expression as IR matches, or nil when it is not modelled.
    func match(_ match: JSON, transport: inout TransportProtocol?) -> [Match]? {
        guard let op = match["op"]?.stringValue, ["==", "!=", "in"].contains(op), let left = match["left"],
            let right = match["right"]
        else { return nil }
        let negated = op == "!="
        if let reference = right.stringValue, reference.hasPrefix("@") {
            return setLookup(String(reference.dropFirst()), left, negated: negated, transport: &transport)
        }
        if let payload = left["payload"], let field = payload["field"]?.stringValue,
            let proto = payload["protocol"]?.stringValue
        {
            return payloadMatch(proto, field, right, negated: negated, transport: &transport)
        }
        if !negated, op == "==", let mark = Self.markMatch(left, right) { return [mark] }
        if let key = left["meta"]?["key"]?.stringValue {
            return metaMatch(key, right, negated: negated, transport: &transport)
        }
        if let fib = left["fib"], fib["result"]?.stringValue == "type", let flags = fib["flags"]?.arrayValue,
            flags.count == 1, let flag = flags[0].stringValue, flag == "saddr" || flag == "daddr",
            right.stringValue == "local"
        {
            return [.localAddress(flag == "saddr" ? .source : .destination, negated: negated)]
        }
        if let ct = left["ct"], let key = ct["key"]?.stringValue {
            return Self.conntrackMatch(key, direction: ct["dir"]?.stringValue, right, negated: negated)
        }
        return nil
    }

    /// A lookup in a named set: `ip saddr . tcp dport @name`.
    private func setLookup(_ name: String, _ left: JSON, negated: Bool, transport: inout TransportProtocol?)
        -> [Match]?
    {
        guard let (set, keys) = lookup(.string("@" + name), key: left) else { return nil }
        var result: [Match] = []
        if let implied = keys.transport, transport == nil {
            transport = implied
            result.append(.transport(implied))
        }
        return result + [.inSet(keys: keys.fields, set: set.name, negated: negated)]
    }

    /// The named set or map a lookup refers to (`"@name"`) and the packet fields of its key, when
    /// the set was read and the key has a field of a fitting type for each of the set's key
    /// types, as nft requires: a key of no fields (`{"concat": []}`) or of the wrong fields would
    /// leave whoever reads the IR looking up fields that are not there.
    func lookup(_ reference: JSON?, key: JSON?) -> (
        set: NamedSet, keys: (fields: [SetKeyField], transport: TransportProtocol?)
    )? {
        guard let reference = reference?.stringValue, reference.hasPrefix("@"),
            let set = sets[String(reference.dropFirst())], let keys = key.flatMap(Self.keyFields),
            keys.fields.count == set.keyTypes.count, zip(keys.fields, set.keyTypes).allSatisfy(Self.fits)
        else { return nil }
        return (set, keys)
    }

    /// Whether a packet field can be looked up in a set of the given key type.
    static func fits(_ field: SetKeyField, _ type: NamedSet.KeyType) -> Bool {
        switch field {
        case .sourceAddress, .destinationAddress, .originalDestinationAddress:
            type == .ipv4Address || type == .ipv6Address
        case .inputInterface, .outputInterface: type == .interfaceName
        case .transport: type == .transport
        case .destinationPort, .originalDestinationPort: type == .service
        }
    }

    /// `ip saddr`, `ip6 daddr`, `tcp dport` and `ip protocol icmp`.
    private func payloadMatch(
        _ proto: String, _ field: String, _ right: JSON, negated: Bool, transport: inout TransportProtocol?
    ) -> [Match]? {
        // `ip protocol icmp`: Docker's accept into routed networks (ip and inet tables).
        if proto == "ip", field == "protocol", !negated, family != .ip6, Self.isICMP(right, .ipv4) {
            return [.icmp]
        }
        if proto == "ip" || proto == "ip6" {
            guard field == "saddr" || field == "daddr", let prefix = Self.prefix(right),
                prefix.family == (proto == "ip" ? .ipv4 : .ipv6)
            else { return nil }
            return [.address(field == "saddr" ? .source : .destination, prefix, negated: negated)]
        }
        guard let known = TransportProtocol(rawValue: proto), field == "dport" || field == "sport",
            let ports = Self.ports(right), !negated, transport == nil || transport == known
        else { return nil }
        var result: [Match] = []
        if transport == nil {
            transport = known
            result.append(.transport(known))
        }
        return result + [.port(field == "dport" ? .destination : .source, ports)]
    }

    /// `meta mark & MASK == VALUE`, `meta mark VALUE`.
    private static func markMatch(_ left: JSON, _ right: JSON) -> Match? {
        guard let value = right.integerValue.flatMap(UInt32.init(exactly:)) else { return nil }
        if left["meta"]?["key"]?.stringValue == "mark" { return .mark(value) }
        if let and = left["&"]?.arrayValue, and.count == 2, and[0]["meta"]?["key"]?.stringValue == "mark",
            let mask = and[1].integerValue.flatMap(UInt32.init(exactly:))
        {
            return .mark(value, mask: mask)
        }
        return nil
    }

    /// `meta iifname`, `meta oifname` and `meta l4proto`.
    private func metaMatch(_ key: String, _ right: JSON, negated: Bool, transport: inout TransportProtocol?)
        -> [Match]?
    {
        // `meta l4proto { tcp, udp }`: one of several protocols.
        if key == "l4proto", !negated, let items = right["set"]?.arrayValue {
            let known = items.compactMap { $0.stringValue.flatMap(TransportProtocol.init(rawValue:)) }
            guard !known.isEmpty, known.count == items.count else { return nil }
            return [.transports(known)]
        }
        switch (key, right.stringValue) {
        case ("iifname", let name?): return [.interface(.source, name, negated: negated)]
        case ("oifname", let name?): return [.interface(.destination, name, negated: negated)]
        case ("l4proto", _) where !negated && family != .inet && Self.isICMP(right, family == .ip6 ? .ipv6 : .ipv4):
            // The ICMP of the table's family (`meta l4proto ipv6-icmp` in ip6 tables).
            return [.icmp]
        case ("l4proto", let name?):
            guard let known = TransportProtocol(rawValue: name) else { return nil }
            if !negated { transport = known }
            return [.transport(known, negated: negated)]
        default: return nil
        }
    }

    /// `ct state`, `ct status dnat`, `ct original daddr` and `ct original proto-dst`.
    private static func conntrackMatch(_ key: String, direction: String?, _ right: JSON, negated: Bool) -> [Match]? {
        let values = right.arrayValue?.compactMap(\.stringValue) ?? right.stringValue.map { [$0] } ?? []
        switch (key, direction) {
        case ("state", nil):
            let states = values.compactMap { ConnectionState(rawValue: $0) }
            guard !values.isEmpty, states.count == values.count, !negated else { return nil }
            return [.connectionState(Set(states))]
        case ("status", nil) where values == ["dnat"]:
            return [.destinationTranslated(negated: negated)]
        case ("daddr", "original"):
            guard let prefix = Self.prefix(right), !negated else { return nil }
            return [.originalDestination(prefix)]
        case ("proto-dst", "original"):
            guard let ports = Self.ports(right), !negated else { return nil }
            return [.originalDestinationPort(ports)]
        default: return nil
        }
    }

    /// The ICMP protocol of an address family, by name or number (`icmp` / 1, `ipv6-icmp` / 58).
    static func isICMP(_ value: JSON, _ family: IPFamily) -> Bool {
        switch family {
        case .ipv4: value.stringValue == "icmp" || value.integerValue == 1
        case .ipv6: value.stringValue == "ipv6-icmp" || value.stringValue == "icmpv6" || value.integerValue == 58
        }
    }

    /// The packet fields of a set or map lookup key, and the transport a `tcp dport` part implies.
    static func keyFields(_ operand: JSON) -> (fields: [SetKeyField], transport: TransportProtocol?)? {
        let parts = operand["concat"]?.arrayValue ?? [operand]
        var fields: [SetKeyField] = []
        var transport: TransportProtocol?
        for part in parts {
            if let payload = part["payload"], let field = payload["field"]?.stringValue,
                let proto = payload["protocol"]?.stringValue
            {
                switch (proto, field) {
                case ("ip", "saddr"), ("ip6", "saddr"): fields.append(.sourceAddress)
                case ("ip", "daddr"), ("ip6", "daddr"): fields.append(.destinationAddress)
                case ("th", "dport"): fields.append(.destinationPort)
                case (let name, "dport"):
                    guard let known = TransportProtocol(rawValue: name), transport == nil || transport == known else {
                        return nil
                    }
                    transport = known
                    fields.append(.destinationPort)
                default: return nil
                }
            } else if let key = part["meta"]?["key"]?.stringValue {
                switch key {
                case "iifname": fields.append(.inputInterface)
                case "oifname": fields.append(.outputInterface)
                case "l4proto": fields.append(.transport)
                default: return nil
                }
            } else if let ct = part["ct"], ct["dir"]?.stringValue == "original" {
                switch ct["key"]?.stringValue {
                case "daddr": fields.append(.originalDestinationAddress)
                case "proto-dst": fields.append(.originalDestinationPort)
                default: return nil
                }
            } else {
                return nil
            }
        }
        return (fields, transport)
    }

    /// `accept`, `drop`, `return`, `jump`, `goto`: also the values of verdict maps.
    static func verdict(_ json: JSON) -> Action? {
        guard case .object(let members) = json, members.count == 1, let (kind, body) = members.first else {
            return nil
        }
        switch kind {
        case "accept" where body == .null: return .accept
        case "drop" where body == .null: return .drop
        case "return" where body == .null: return .return
        case "jump": return body["target"]?.stringValue.map { .jump($0) }
        case "goto": return body["target"]?.stringValue.map { .goto($0) }
        default: return nil
        }
    }

    /// `masquerade`, `dnat to A[:P]`, `snat to A` without options.
    func nat(_ kind: String, _ body: JSON) -> Action? {
        func only(_ keys: Set<String>) -> Bool {
            guard case .object(let members) = body else { return body == .null && keys.isEmpty }
            return members.allSatisfy { keys.contains($0.0) }
        }
        switch kind {
        case "masquerade" where body == .null || only([]): return .masquerade
        case "dnat" where only(["addr", "port", "family"]) && body["addr"]?["map"] != nil:
            // `dnat ip to KEY map @addresses[:KEY map @ports]`: what named maps yield for the key.
            func mapName(_ expression: JSON?, yielding values: Set<[NamedSet.KeyType]>) -> (String, [SetKeyField])? {
                guard let expression = expression?["map"],
                    let (map, keys) = lookup(expression["data"], key: expression["key"]), keys.transport == nil,
                    case .data(let types)? = map.mapValue, values.contains(types)
                else { return nil }
                return (map.name, keys.fields)
            }
            let addresses: Set<[NamedSet.KeyType]> = [[.ipv4Address], [.ipv6Address]]
            guard let (addressMap, keys) = mapName(body["addr"], yielding: addresses) else { return nil }
            var portMap: String?
            if body["port"] != nil {
                guard let (name, portKeys) = mapName(body["port"], yielding: [[.service]]), portKeys == keys else {
                    return nil
                }
                portMap = name
            }
            let ipFamily: IPFamily
            switch (body["family"]?.stringValue, family) {
            case ("ip", _), (nil, .ip): ipFamily = .ipv4
            case ("ip6", _), (nil, .ip6): ipFamily = .ipv6
            default: return nil
            }
            return .dnatMap(ipFamily, keys: keys, addressMap: addressMap, portMap: portMap)
        case "dnat" where only(["addr", "port", "family"]):
            guard let address = body["addr"]?.stringValue.flatMap(IPAddress.init) else { return nil }
            let ports = body["port"].flatMap(Self.ports)
            if body["port"] != nil && ports == nil { return nil }
            return .dnat(address, ports)
        case "snat" where only(["addr", "family"]):
            return body["addr"]?.stringValue.flatMap(IPAddress.init).map { .snat($0) }
        default: return nil
        }
    }

    static func prefix(_ value: JSON) -> IPPrefix? {
        if let text = value.stringValue, let address = IPAddress(text) { return IPPrefix(host: address) }
        guard let prefix = value["prefix"], let address = prefix["addr"]?.stringValue.flatMap(IPAddress.init),
            let length = prefix["len"]?.integerValue, length >= 0, length <= address.family.bitWidth
        else { return nil }
        return IPPrefix(address: address, length: length)
    }

    static func ports(_ value: JSON) -> PortRange? {
        if let port = value.integerValue, let single = UInt16(exactly: port) { return PortRange(single) }
        guard let range = value["range"]?.arrayValue, range.count == 2, let first = range[0].integerValue,
            let last = range[1].integerValue, let low = UInt16(exactly: first), let high = UInt16(exactly: last),
            low <= high
        else { return nil }
        return PortRange(low, high)
    }
}
