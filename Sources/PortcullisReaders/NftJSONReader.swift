import JanssonKit
import PortcullisIR
import PortcullisNet

/// Reads a libnftables JSON ruleset (`nft -j list ruleset`, a saved file, the live ruleset
/// listed through libnftables, or Portcullis' own nftables-json output) into the IR.
///
/// Tables of the `ip`, `ip6` and `inet` families are read with their chains, named sets and
/// maps (plain, interval, concatenated keys, verdict and data maps) and rules. Expressions
/// Portcullis models become IR matches and actions; anything else (iptables-nft's `xt`
/// expressions, anonymous sets, `reject`, marks, ...) is kept as an opaque match or target with a
/// warning naming its JSON path, never dropped. Counters, handles and comments are read
/// safely: counter values and handles are ignored, comments kept. Tables of other families
/// (`bridge`, `arp`, `netdev`) cannot be held by the IR: they are listed in `skippedTables`
/// with a warning. A document that is not a ruleset is an error naming the JSON path.
public struct NftJSONReader {
    public let source: String

    public init(source: String = "nft -j list ruleset") { self.source = source }

    /// What was read: the ruleset, what was kept opaque or skipped, and the tables of families
    /// the IR cannot hold ("bridge b"), which an audit must not pass over in silence.
    public struct Result: Sendable {
        public var ruleset: Ruleset
        public var warnings: [ReadWarning]
        public var skippedTables: [String]
    }

    /// Statement keys that end a rule's evaluation (or decide its verdict): unmodelled ones
    /// are kept as opaque targets, other unmodelled expressions as opaque matches.
    static let terminalStatements: Set<String> = [
        "reject", "queue", "vmap", "dnat", "snat", "redirect", "tproxy", "synproxy", "fwd", "continue", "masquerade",
        "goto", "jump", "accept", "drop", "return",
    ]

    /// Named stateful objects a rule may refer to; they hold no verdicts of their own.
    static let statefulObjects: Set<String> = [
        "counter", "quota", "limit", "ct helper", "ct timeout", "ct expectation", "secmark", "synproxy", "flowtable",
    ]

    public func read(_ text: String) throws(ReadError) -> Result {
        let document: JSON
        do {
            document = try JSON.parse(text)
        } catch {
            throw ReadError(line: error.line, message: "invalid JSON at column \(error.column): \(error.message)")
        }
        // libnftables writes integers only; a real would have to be rounded or range-checked
        // wherever it is used, so it is refused once, by path.
        if let (path, number) = document.firstReal {
            throw ReadError(line: 0, message: "\(path): \(number) is not an integer (libnftables writes integers only)")
        }
        guard let objects = document["nftables"]?.arrayValue else {
            throw ReadError(line: 0, message: "$: expected an object with an 'nftables' array")
        }
        var tables: [Table] = []
        var warnings: [ReadWarning] = []
        // What was read so far, by name, so that a document of many tables, chains and sets is
        // read in linear time: tables by "family name", and the names in each table.
        var tablePositions: [String: Int] = [:]
        var names: [TableNames] = []
        var skipped: [String] = []
        var skippedKeys: Set<String> = []
        func isSkipped(_ object: JSON) -> Bool {
            skippedKeys.contains("\(object["family"]?.stringValue ?? "") \(object["table"]?.stringValue ?? "")")
        }
        func tableIndex(_ object: JSON, _ path: String) throws(ReadError) -> Int {
            let key = "\(try string(object, "family", path)) \(try string(object, "table", path))"
            guard let index = tablePositions[key] else {
                throw ReadError(line: 0, message: "\(path): table \(key) is not declared")
            }
            return index
        }
        for (index, object) in objects.enumerated() {
            let path = "$.nftables[\(index)]"
            guard case .object(let members) = object, members.count == 1, let kind = members.first?.0,
                let body = members.first?.1
            else {
                throw ReadError(line: 0, message: "\(path): expected an object with one key (table, chain, rule, ...)")
            }
            let at = "\(path).\(kind)"
            switch kind {
            case "metainfo":
                continue
            case "table":
                let name = try string(body, "name", at)
                let familyName = try string(body, "family", at)
                guard let family = TableFamily(rawValue: familyName) else {
                    skipped.append("\(familyName) \(name)")
                    skippedKeys.insert("\(familyName) \(name)")
                    warnings.append(
                        ReadWarning(
                            path: at,
                            message:
                                "table \(familyName) \(name) not read: Portcullis reads ip, ip6 and inet tables only"))
                    continue
                }
                guard tablePositions["\(familyName) \(name)"] == nil else {
                    throw ReadError(line: 0, message: "\(at): table \(familyName) \(name) listed twice")
                }
                tablePositions["\(familyName) \(name)"] = tables.count
                names.append(TableNames())
                // Rules keep the order their expressions were listed in, so that they render back as read.
                tables.append(Table(family: family, name: name, keepsMatchOrder: true))
            case "chain":
                if isSkipped(body) { continue }
                let table = try tableIndex(body, at)
                let name = try string(body, "name", at)
                guard names[table].chains[name] == nil else {
                    throw ReadError(line: 0, message: "\(at): chain \(name) listed twice")
                }
                var chain = Chain(name: name)
                if body["hook"] != nil { chain.base = try baseChain(body, at) }
                names[table].chains[name] = tables[table].chains.count
                tables[table].chains.append(chain)
            case "set", "map":
                if isSkipped(body) { continue }
                let table = try tableIndex(body, at)
                do throws(ReadError) {
                    let (set, setWarnings) = try self.set(body, path: at)
                    guard names[table].sets.insert(set.name).inserted else {
                        throw ReadError(line: 0, message: "\(at): set \(set.name) listed twice")
                    }
                    tables[table].sets.append(set)
                    if !names[table].unreadSets.contains(set.name) { names[table].usableSets[set.name] = set }
                    warnings += setWarnings
                } catch {
                    guard error.unsupported else { throw error }
                    // A set of a type the IR cannot hold: rules that use it are kept opaque.
                    let name = try string(body, "name", at)
                    names[table].unreadSets.insert(name)
                    names[table].usableSets[name] = nil
                    warnings.append(ReadWarning(path: at, message: "\(kind) \(name) not read: \(error.message)"))
                }
            case "rule":
                if isSkipped(body) { continue }
                let table = try tableIndex(body, at)
                let chainName = try string(body, "chain", at)
                guard let chainIndex = names[table].chains[chainName] else {
                    throw ReadError(line: 0, message: "\(at): chain \(chainName) is not declared")
                }
                var parser = RuleReader(path: at, family: tables[table].family, sets: names[table].usableSets)
                var rule = try parser.rule(body)
                let handle = body["handle"]?.integerValue.map { " (handle \($0))" } ?? ""
                rule.provenance = Provenance(statement: "rule at \(path)\(handle)", file: source)
                tables[table].chains[chainIndex].rules.append(rule)
                warnings += parser.warnings
            case let other where Self.statefulObjects.contains(other):
                if isSkipped(body) { continue }
                warnings.append(
                    ReadWarning(path: at, message: "named \(other) object not read (it holds no rules or verdicts)"))
            default:
                throw ReadError(line: 0, message: "\(path): unsupported object '\(kind)'")
            }
        }
        return Result(ruleset: Ruleset(tables: tables), warnings: warnings, skippedTables: skipped)
    }

    /// The names read so far in one table.
    struct TableNames {
        /// Chains by name, with their positions in the table.
        var chains: [String: Int] = [:]
        var sets: Set<String> = []
        /// Sets of types the IR cannot hold.
        var unreadSets: Set<String> = []
        /// The sets rules may look up: read, and sharing no name with a set that could not be read.
        var usableSets: [String: NamedSet] = [:]
    }

    func string(_ object: JSON, _ key: String, _ path: String) throws(ReadError) -> String {
        guard let value = object[key]?.stringValue else {
            throw ReadError(line: 0, message: "\(path): missing '\(key)'")
        }
        return value
    }

    /// nft's named priorities, for documents that spell them out.
    static let namedPriorities: [String: Int] = [
        "raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100,
    ]

    func baseChain(_ chain: JSON, _ path: String) throws(ReadError) -> BaseChain {
        let hookName = try string(chain, "hook", path)
        guard let hook = Hook(rawValue: hookName) else {
            throw ReadError(line: 0, message: "\(path): hook '\(hookName)' is not supported")
        }
        let typeName = try string(chain, "type", path)
        guard let type = ChainType(rawValue: typeName) else {
            throw ReadError(line: 0, message: "\(path): chain type '\(typeName)' is not supported")
        }
        let priority: Int
        if let number = chain["prio"]?.integerValue {
            // The kernel holds a chain priority in 32 bits.
            guard Int32(exactly: number) != nil else {
                throw ReadError(line: 0, message: "\(path).prio: \(number) is out of range (a 32-bit priority)")
            }
            priority = number
        } else if let name = chain["prio"]?.stringValue, let number = Self.namedPriorities[name] {
            priority = number
        } else {
            throw ReadError(line: 0, message: "\(path): missing or unknown 'prio'")
        }
        let policyName = chain["policy"]?.stringValue ?? "accept"
        guard let policy = ChainPolicy(rawValue: policyName) else {
            throw ReadError(line: 0, message: "\(path): policy '\(policyName)' is not supported")
        }
        return BaseChain(type: type, hook: hook, priority: priority, policy: policy)
    }

    // MARK: sets and maps

    func types(_ value: JSON?, _ path: String) throws(ReadError) -> [NamedSet.KeyType] {
        let names: [String]
        if let text = value?.stringValue {
            names = text.split(separator: " . ").map(String.init)
        } else if let items = value?.arrayValue {
            names = items.compactMap(\.stringValue)
            guard names.count == items.count else { throw ReadError(line: 0, message: "\(path): malformed type") }
        } else {
            throw ReadError(line: 0, message: "\(path): missing type")
        }
        var result: [NamedSet.KeyType] = []
        for name in names {
            guard let type = NamedSet.KeyType(rawValue: name) else {
                throw ReadError(line: 0, message: "type \(name) is not modelled", unsupported: true)
            }
            result.append(type)
        }
        guard !result.isEmpty else { throw ReadError(line: 0, message: "\(path): empty type") }
        return result
    }

    /// A range of a concatenated key reads as the product of its parts' prefixes (up to 254²
    /// per element for two IPv6 ranges), so a small document could ask for gigabytes: beyond
    /// this many elements a set is an error rather than an out-of-memory kill.
    static let maximumElements = 1 << 20

    func set(_ body: JSON, path: String) throws(ReadError) -> (NamedSet, [ReadWarning]) {
        let name = try string(body, "name", path)
        let keyTypes = try types(body["type"], path + ".type")
        var mapValue: NamedSet.MapValue?
        if let map = body["map"] {
            mapValue = map.stringValue == "verdict" ? .verdict : .data(try types(map, path + ".map"))
        }
        var warnings: [ReadWarning] = []
        let flags =
            body["flags"]?.arrayValue?.compactMap(\.stringValue) ?? body["flags"]?.stringValue.map { [$0] } ?? []
        for flag in flags where !["interval", "constant"].contains(flag) {
            warnings.append(
                ReadWarning(path: path, message: "set flag '\(flag)' not modelled (elements are read as listed)"))
        }
        var elements: [SetElement] = []
        for (index, item) in (body["elem"]?.arrayValue ?? []).enumerated() {
            let at = "\(path).elem[\(index)]"
            var keyJSON = item
            var valueJSON: JSON?
            if mapValue != nil {
                guard let pair = item.arrayValue, pair.count == 2 else {
                    throw ReadError(line: 0, message: "\(at): a map element is a [key, value] pair")
                }
                keyJSON = pair[0]
                valueJSON = pair[1]
            }
            // Elements with a timeout, comment or counter come wrapped: {"elem": {"val": ...}}.
            if let wrapped = keyJSON["elem"]?["val"] { keyJSON = wrapped }
            let keys = try key(keyJSON, types: keyTypes, at, warnings: &warnings)
            var value: MapResult?
            switch (mapValue, valueJSON) {
            case (.verdict?, let json?):
                guard let action = RuleReader.verdict(json) else {
                    throw ReadError(line: 0, message: "\(at): not a verdict")
                }
                value = .verdict(action)
            case (.data(let types)?, let json?):
                let values = try key(json, types: types, at, warnings: &warnings)
                guard values.count == 1 else {
                    throw ReadError(line: 0, message: "\(at): a map value must be one value, not a range")
                }
                value = .data(values[0])
            default: break
            }
            guard elements.count + keys.count <= Self.maximumElements else {
                throw ReadError(
                    line: 0,
                    message:
                        "\(at): \(name) holds more than \(Self.maximumElements) elements once address ranges are read as prefixes"
                )
            }
            elements += keys.map { SetElement(key: $0, value: value) }
        }
        let set = NamedSet(
            name: name, keyTypes: keyTypes, mapValue: mapValue, interval: flags.contains("interval"),
            elements: elements)
        return (set, warnings)
    }

    /// One key (or map value) as IR values. Usually one; an address range that is not one prefix
    /// becomes the prefixes that cover it exactly (the IR has no address ranges), with a warning.
    func key(_ json: JSON, types: [NamedSet.KeyType], _ path: String, warnings: inout [ReadWarning]) throws(ReadError)
        -> [[SetValue]]
    {
        let parts = types.count == 1 ? [json] : (json["concat"]?.arrayValue ?? [])
        guard parts.count == types.count else {
            throw ReadError(line: 0, message: "\(path): expected a key of \(types.count) parts")
        }
        var keys: [[SetValue]] = [[]]
        for (part, type) in zip(parts, types) {
            let values = try value(part, type: type, path, warnings: &warnings)
            guard keys.count * values.count <= Self.maximumElements else {
                throw ReadError(line: 0, message: "\(path): the key's address ranges read as too many prefixes")
            }
            keys = keys.flatMap { key in values.map { key + [$0] } }
        }
        return keys
    }

    func value(_ json: JSON, type: NamedSet.KeyType, _ path: String, warnings: inout [ReadWarning]) throws(ReadError)
        -> [SetValue]
    {
        func bad() -> ReadError { ReadError(line: 0, message: "\(path): not a valid \(type.rawValue) value") }
        switch type {
        case .ipv4Address, .ipv6Address:
            let family: IPFamily = type == .ipv4Address ? .ipv4 : .ipv6
            if let prefix = RuleReader.prefix(json), prefix.family == family { return [.address(prefix)] }
            guard let range = json["range"]?.arrayValue, range.count == 2,
                let first = range[0].stringValue.flatMap(IPAddress.init),
                let last = range[1].stringValue.flatMap(IPAddress.init), first.family == family,
                last.family == family, first <= last
            else { throw bad() }
            let prefixes = Self.prefixes(from: first, to: last)
            if prefixes.count > 1 {
                warnings.append(
                    ReadWarning(
                        path: path, message: "address range \(first)-\(last) read as \(prefixes.count) prefixes"))
            }
            return prefixes.map { .address($0) }
        case .service:
            guard let ports = RuleReader.ports(json) else { throw bad() }
            return [.ports(ports)]
        case .transport:
            let numbers: [Int: TransportProtocol] = [6: .tcp, 17: .udp, 132: .sctp]
            guard
                let transport = json.stringValue.flatMap(TransportProtocol.init(rawValue:))
                    ?? json.integerValue.flatMap({ numbers[$0] })
            else { throw bad() }
            return [.transport(transport)]
        case .interfaceName:
            guard let name = json.stringValue else { throw bad() }
            return [.interface(name)]
        }
    }

    /// The fewest prefixes that cover `first...last` exactly.
    static func prefixes(from first: IPAddress, to last: IPAddress) -> [IPPrefix] {
        var result: [IPPrefix] = []
        var start = first
        let width = first.family.bitWidth
        while true {
            var length = width
            while length > 0, start.masked(prefixLength: length - 1) == start,
                start.lastInPrefix(prefixLength: length - 1) <= last
            {
                length -= 1
            }
            result.append(IPPrefix(address: start, length: length))
            let end = start.lastInPrefix(prefixLength: length)
            if end >= last { break }
            start = end.adding(1)
        }
        return result
    }
}

/// Reads one rule's expressions.
struct RuleReader {
    let path: String
    let family: TableFamily
    /// Named sets of the table that were read, by name (a reference to any other is kept opaque).
    let sets: [String: NamedSet]
    var warnings: [ReadWarning] = []

    init(path: String, family: TableFamily, sets: [String: NamedSet]) {
        self.path = path
        self.family = family
        self.sets = sets
    }

    mutating func rule(_ object: JSON) throws(ReadError) -> Rule {
        guard let expressions = object["expr"]?.arrayValue else {
            throw ReadError(line: 0, message: "\(path): missing 'expr'")
        }
        var matches: [Match] = []
        var effects: [Effect] = []
        var action: Action?
        var transport: TransportProtocol?
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
            if kind == "match", let read = self.match(body, transport: &transport) {
                matches += read
                continue
            }
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
                if let rate = body["rate"]?.integerValue, rate > 0,
                    let unit = body["per"]?.stringValue.flatMap(Rate.Unit.init(rawValue:)),
                    body["burst"] == nil || body["burst"]?.integerValue == 5, body["inv"] == nil,
                    body["rate_unit"] == nil || body["rate_unit"]?.stringValue == "packets"
                {
                    matches.append(.limit(Rate(count: rate, unit: unit)))
                } else {
                    matches.append(opaque(expression, at))
                }
            case "xt":
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
            default:
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
        }
        let comment = object["comment"]?.stringValue.flatMap(RuleComment.init)
        if let text = object["comment"]?.stringValue, comment == nil {
            warnings.append(ReadWarning(path: path, message: "comment '\(text)' dropped: it cannot be written back"))
        }
        return Rule(matches, effects: effects, action, comment: comment)
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
        // A lookup in a named set: `ip saddr . tcp dport @name`.
        if let reference = right.stringValue, reference.hasPrefix("@") {
            guard let (set, keys) = lookup(right, key: left) else { return nil }
            var result: [Match] = []
            if let implied = keys.transport, transport == nil {
                transport = implied
                result.append(.transport(implied))
            }
            return result + [.inSet(keys: keys.fields, set: set.name, negated: negated)]
        }
        if let payload = left["payload"], let field = payload["field"]?.stringValue,
            let proto = payload["protocol"]?.stringValue
        {
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
        // `meta mark & MASK == VALUE`, `meta mark VALUE`.
        if let value = right.integerValue.flatMap(UInt32.init(exactly:)), !negated, op == "==" {
            if left["meta"]?["key"]?.stringValue == "mark" { return [.mark(value)] }
            if let and = left["&"]?.arrayValue, and.count == 2, and[0]["meta"]?["key"]?.stringValue == "mark",
                let mask = and[1].integerValue.flatMap(UInt32.init(exactly:))
            {
                return [.mark(value, mask: mask)]
            }
        }
        if let key = left["meta"]?["key"]?.stringValue {
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
        if let fib = left["fib"], fib["result"]?.stringValue == "type", let flags = fib["flags"]?.arrayValue,
            flags.count == 1, let flag = flags[0].stringValue, flag == "saddr" || flag == "daddr",
            right.stringValue == "local"
        {
            return [.localAddress(flag == "saddr" ? .source : .destination, negated: negated)]
        }
        if let ct = left["ct"], let key = ct["key"]?.stringValue {
            let values = right.arrayValue?.compactMap(\.stringValue) ?? right.stringValue.map { [$0] } ?? []
            switch (key, ct["dir"]?.stringValue) {
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
        return nil
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
