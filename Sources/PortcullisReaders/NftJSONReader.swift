import JanssonKit
import PortcullisIR
import PortcullisNet

/// Reads a libnftables JSON ruleset (`nft -j list ruleset`, a saved file, or Portcullis' own
/// nftables-json output) into the IR. Expressions Portcullis models become IR matches and
/// actions; a rule with anything else is an error naming its JSON path, so that nothing read
/// is silently changed.
public struct NftJSONReader {
    public let source: String

    public init(source: String = "nft -j list ruleset") { self.source = source }

    public func read(_ text: String) throws(ReadError) -> Ruleset {
        let document: JSON
        do {
            document = try JSON.parse(text)
        } catch {
            throw ReadError(line: error.line, message: "invalid JSON at column \(error.column): \(error.message)")
        }
        guard let objects = document["nftables"]?.arrayValue else {
            throw ReadError(line: 1, message: "$: expected an object with an 'nftables' array")
        }
        var tables: [Table] = []
        for (index, object) in objects.enumerated() {
            let path = "$.nftables[\(index)]"
            if let table = object["table"] {
                tables.append(
                    Table(family: try family(table, path), name: try string(table, "name", path + ".table")))
            } else if let chain = object["chain"] {
                let at = try tableIndex(chain, in: tables, path + ".chain")
                var parsed = Chain(name: try string(chain, "name", path + ".chain"))
                if let hook = chain["hook"]?.stringValue {
                    guard let hook = Hook(rawValue: hook),
                        let type = ChainType(rawValue: chain["type"]?.stringValue ?? ""),
                        let priority = chain["prio"]?.integerValue,
                        let policy = ChainPolicy(rawValue: chain["policy"]?.stringValue ?? "accept")
                    else { throw ReadError(line: 1, message: "\(path).chain: unsupported base chain") }
                    parsed.base = BaseChain(type: type, hook: hook, priority: priority, policy: policy)
                }
                tables[at].chains.append(parsed)
            } else if let rule = object["rule"] {
                let at = try tableIndex(rule, in: tables, path + ".rule")
                let chainName = try string(rule, "chain", path + ".rule")
                guard let chainIndex = tables[at].chains.firstIndex(where: { $0.name == chainName }) else {
                    throw ReadError(line: 1, message: "\(path).rule: chain \(chainName) is not declared")
                }
                var parsed = try self.rule(rule, family: tables[at].family, path: path + ".rule")
                parsed.provenance = Provenance(statement: "read from \(source)", file: source, line: index)
                tables[at].chains[chainIndex].rules.append(parsed)
            } else if object["metainfo"] == nil {
                throw ReadError(
                    line: 1, message: "\(path): unsupported object (sets, maps and others are not read yet)")
            }
        }
        return Ruleset(tables: tables)
    }

    func string(_ object: JSON, _ key: String, _ path: String) throws(ReadError) -> String {
        guard let value = object[key]?.stringValue else {
            throw ReadError(line: 1, message: "\(path): missing '\(key)'")
        }
        return value
    }

    func family(_ object: JSON, _ path: String) throws(ReadError) -> TableFamily {
        guard let family = TableFamily(rawValue: try string(object, "family", path)) else {
            throw ReadError(line: 1, message: "\(path): unsupported family")
        }
        return family
    }

    func tableIndex(_ object: JSON, in tables: [Table], _ path: String) throws(ReadError) -> Int {
        let family = try family(object, path)
        let name = try string(object, "table", path)
        guard let index = tables.firstIndex(where: { $0.family == family && $0.name == name }) else {
            throw ReadError(line: 1, message: "\(path): table \(family.rawValue) \(name) is not declared")
        }
        return index
    }

    func rule(_ object: JSON, family: TableFamily, path: String) throws(ReadError) -> Rule {
        var matches: [Match] = []
        var effects: [Effect] = []
        var action: Action?
        var transport: TransportProtocol?
        for (index, expression) in (object["expr"]?.arrayValue ?? []).enumerated() {
            let at = "\(path).expr[\(index)]"
            func unsupported() -> ReadError { ReadError(line: 1, message: "\(at): expression not modelled") }
            if let match = expression["match"] {
                let negated = match["op"]?.stringValue == "!="
                guard let left = match["left"], let right = match["right"] else { throw unsupported() }
                if let payload = left["payload"], let field = payload["field"]?.stringValue,
                    let proto = payload["protocol"]?.stringValue
                {
                    if proto == "ip" || proto == "ip6" {
                        guard field == "saddr" || field == "daddr", let prefix = Self.prefix(right) else {
                            throw unsupported()
                        }
                        matches.append(.address(field == "saddr" ? .source : .destination, prefix, negated: negated))
                    } else if let known = TransportProtocol(rawValue: proto), field == "dport" || field == "sport",
                        let ports = Self.ports(right), !negated
                    {
                        if transport == nil {
                            transport = known
                            matches.append(.transport(known))
                        }
                        matches.append(.port(field == "dport" ? .destination : .source, ports))
                    } else {
                        throw unsupported()
                    }
                } else if let key = left["meta"]?["key"]?.stringValue {
                    switch (key, right.stringValue) {
                    case ("iifname", let name?): matches.append(.interface(.source, name, negated: negated))
                    case ("oifname", let name?): matches.append(.interface(.destination, name, negated: negated))
                    case ("l4proto", let name?):
                        guard let known = TransportProtocol(rawValue: name) else { throw unsupported() }
                        transport = known
                        matches.append(.transport(known, negated: negated))
                    default: throw unsupported()
                    }
                } else if let flags = left["fib"]?["flags"]?.arrayValue?.first?.stringValue,
                    right.stringValue == "local"
                {
                    matches.append(.localAddress(flags == "saddr" ? .source : .destination, negated: negated))
                } else if let ct = left["ct"], let key = ct["key"]?.stringValue {
                    let values = right.arrayValue?.compactMap(\.stringValue) ?? right.stringValue.map { [$0] } ?? []
                    switch (key, ct["dir"]?.stringValue) {
                    case ("state", nil):
                        let states = values.compactMap { ConnectionState(rawValue: $0) }
                        guard states.count == values.count, !negated else { throw unsupported() }
                        matches.append(.connectionState(Set(states)))
                    case ("status", nil) where values == ["dnat"]:
                        matches.append(.destinationTranslated(negated: negated))
                    case ("daddr", "original"):
                        guard let prefix = Self.prefix(right) else { throw unsupported() }
                        matches.append(.originalDestination(prefix))
                    case ("proto-dst", "original"):
                        guard let ports = Self.ports(right) else { throw unsupported() }
                        matches.append(.originalDestinationPort(ports))
                    default: throw unsupported()
                    }
                } else {
                    throw unsupported()
                }
            } else if expression["counter"] != nil {
                effects.append(.counter)
            } else if let log = expression["log"] {
                guard let prefix = log["prefix"]?.stringValue.flatMap(RuleComment.init) else { throw unsupported() }
                effects.append(.log(prefix: prefix))
            } else if let limit = expression["limit"] {
                guard let rate = limit["rate"]?.integerValue,
                    let unit = limit["per"]?.stringValue.flatMap(Rate.Unit.init(rawValue:))
                else { throw unsupported() }
                matches.append(.limit(Rate(count: rate, unit: unit)))
            } else if expression["accept"] != nil {
                action = .accept
            } else if expression["drop"] != nil {
                action = .drop
            } else if expression["return"] != nil {
                action = .return
            } else if let target = expression["jump"]?["target"]?.stringValue {
                action = .jump(target)
            } else if let target = expression["goto"]?["target"]?.stringValue {
                action = .goto(target)
            } else if expression["masquerade"] != nil {
                action = .masquerade
            } else if let dnat = expression["dnat"], let address = dnat["addr"]?.stringValue.flatMap(IPAddress.init) {
                action = .dnat(address, dnat["port"].flatMap(Self.ports))
            } else if let snat = expression["snat"], let address = snat["addr"]?.stringValue.flatMap(IPAddress.init) {
                action = .snat(address)
            } else {
                throw unsupported()
            }
        }
        let comment = object["comment"]?.stringValue.flatMap(RuleComment.init)
        return Rule(matches, effects: effects, action, comment: comment)
    }

    static func prefix(_ value: JSON) -> IPPrefix? {
        if let text = value.stringValue, let address = IPAddress(text) { return IPPrefix(host: address) }
        guard let prefix = value["prefix"], let address = prefix["addr"]?.stringValue.flatMap(IPAddress.init),
            let length = prefix["len"]?.integerValue
        else { return nil }
        return IPPrefix(address: address, length: length)
    }

    static func ports(_ value: JSON) -> PortRange? {
        if let port = value.integerValue, let single = UInt16(exactly: port) { return PortRange(single) }
        guard let range = value["range"]?.arrayValue, range.count == 2, let first = range[0].integerValue,
            let last = range[1].integerValue, let low = UInt16(exactly: first), let high = UInt16(exactly: last)
        else { return nil }
        return PortRange(low, high)
    }
}
