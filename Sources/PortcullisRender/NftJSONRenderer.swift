import JanssonKit
import PortcullisIR
import PortcullisNet

/// Renders the IR as a libnftables JSON document (libnftables-json(5)), built and serialised
/// with libjansson. It has the shape `nft -j list ruleset` prints, which libnftables also
/// accepts as input (each object is an implicit `add`).
public struct NftJSONRenderer: Renderer {
    public init() {}

    public func render(_ ruleset: Ruleset) throws(RenderError) -> [RenderedFile] {
        var objects: [JSON] = [.object([("metainfo", .object([("json_schema_version", .integer(1))]))])]
        for table in ruleset.tables {
            let family = JSON.string(table.family.rawValue)
            let tableName = JSON.string(table.name)
            objects.append(.object([("table", .object([("family", family), ("name", tableName)]))]))
            for chain in table.chains {
                var members: [(String, JSON)] = [
                    ("family", family), ("table", tableName), ("name", .string(chain.name)),
                ]
                if let base = chain.base {
                    members += [
                        ("type", .string(base.type.rawValue)), ("hook", .string(base.hook.rawValue)),
                        ("prio", .integer(base.priority)), ("policy", .string(base.policy.rawValue)),
                    ]
                }
                objects.append(.object([("chain", .object(members))]))
            }
            for set in table.sets { objects.append(try setObject(set, family: family, table: tableName)) }
            for chain in table.chains {
                for rule in chain.rules {
                    let nft = try NftVocabulary.translate(rule, in: table)
                    var members: [(String, JSON)] = [
                        ("family", family), ("table", tableName), ("chain", .string(chain.name)),
                        ("expr", .array(nft.expressions.map { expressionJSON($0, inet: table.family == .inet) })),
                    ]
                    if let comment = nft.comment { members.append(("comment", .string(comment))) }
                    objects.append(.object([("rule", .object(members))]))
                }
            }
        }
        let document = JSON.object([("nftables", .array(objects))])
        return [
            RenderedFile(fileExtension: Backend.nftablesJSON.fileExtension, text: document.rendered(indent: 2) + "\n")
        ]
    }

    func setObject(_ set: NamedSet, family: JSON, table: JSON) throws(RenderError) -> JSON {
        func typeJSON(_ types: [NamedSet.KeyType]) -> JSON {
            types.count == 1 ? .string(types[0].rawValue) : .array(types.map { .string($0.rawValue) })
        }
        var members: [(String, JSON)] = [
            ("family", family), ("table", table), ("name", .string(set.name)), ("type", typeJSON(set.keyTypes)),
        ]
        switch set.mapValue {
        case nil: break
        case .verdict?: members.append(("map", .string("verdict")))
        case .data(let types)?: members.append(("map", typeJSON(types)))
        }
        if set.interval { members.append(("flags", .array([.string("interval")]))) }
        if !set.elements.isEmpty {
            members.append(
                (
                    "elem",
                    .array(
                        try set.elements.map { element throws(RenderError) in
                            let key = keyJSON(element.key)
                            switch element.value {
                            case nil: return key
                            case .verdict(let action)?: return .array([key, try verdictJSON(action)])
                            case .data(let values)?: return .array([key, keyJSON(values)])
                            }
                        })
                ))
        }
        return .object([(set.mapValue == nil ? "set" : "map", .object(members))])
    }

    func keyJSON(_ values: [SetValue]) -> JSON {
        let parts = values.map { value -> JSON in
            switch value {
            case .address(let prefix): prefixJSON(prefix)
            case .ports(let ports): portsJSON(ports)
            case .transport(let t): .string(t.rawValue)
            case .interface(let name): .string(name)
            }
        }
        return parts.count == 1 ? parts[0] : .object([("concat", .array(parts))])
    }

    func verdictJSON(_ action: Action) throws(RenderError) -> JSON {
        switch action {
        case .jump(let chain): .object([("jump", .object([("target", .string(chain))]))])
        case .goto(let chain): .object([("goto", .object([("target", .string(chain))]))])
        case .accept: .object([("accept", .null)])
        case .drop: .object([("drop", .null)])
        case .return: .object([("return", .null)])
        default: throw RenderError("a verdict map can only map to verdicts, not \(action)")
        }
    }

    func prefixJSON(_ prefix: IPPrefix) -> JSON {
        prefix.isHost
            ? .string(prefix.address.description)
            : .object([
                ("prefix", .object([("addr", .string(prefix.first.description)), ("len", .integer(prefix.length))]))
            ])
    }

    func portsJSON(_ ports: PortRange) -> JSON {
        ports.isSingle
            ? .integer(Int(ports.first))
            : .object([("range", .array([.integer(Int(ports.first)), .integer(Int(ports.last))]))])
    }

    func operandJSON(_ operand: NftOperand) -> JSON {
        switch operand {
        case .payload(let proto, let field):
            return .object([("payload", .object([("protocol", .string(proto)), ("field", .string(field))]))])
        case .meta(let key):
            return .object([("meta", .object([("key", .string(key))]))])
        case .fib(let flag):
            return .object([("fib", .object([("result", .string("type")), ("flags", .array([.string(flag)]))]))])
        case .ct(let key, let direction, let family):
            var members: [(String, JSON)] = [("key", .string(key))]
            if let family { members.append(("family", .string(family))) }
            if let direction { members.append(("dir", .string(direction))) }
            return .object([("ct", .object(members))])
        case .concat(let parts):
            return .object([("concat", .array(parts.map(operandJSON)))])
        case .bitwiseAnd(let operand, let mask):
            return .object([("&", .array([operandJSON(operand), .integer(Int(mask))]))])
        }
    }

    func valueJSON(_ value: NftValue) -> JSON {
        switch value {
        case .address(let prefix): prefixJSON(prefix)
        case .string(let s), .keyword(let s): .string(s)
        case .ports(let ports): portsJSON(ports)
        case .flags(let flags): .array(flags.map { .string($0) })
        case .setReference(let name): .string("@\(name)")
        case .keywords(let words): .object([("set", .array(words.map { .string($0) }))])
        case .hex(let value): .integer(Int(value))
        }
    }

    /// `inet` tables must say which family a NAT statement translates; `ip`/`ip6` tables imply it.
    func expressionJSON(_ expression: NftExpression, inet: Bool) -> JSON {
        switch expression {
        case .match(let left, let negated, let right):
            let op: String
            if case .flags = right { op = negated ? "!=" : "in" } else { op = negated ? "!=" : "==" }
            return .object([
                ("match", .object([("op", .string(op)), ("left", operandJSON(left)), ("right", valueJSON(right))]))
            ])
        case .counter:
            return .object([("counter", .object([("packets", .integer(0)), ("bytes", .integer(0))]))])
        case .log(let prefix):
            return .object([("log", .object([("prefix", .string(prefix))]))])
        case .limit(let rate):
            return .object([("limit", .object([("rate", .integer(rate.count)), ("per", .string(rate.unit.rawValue))]))])
        case .verdict(let v):
            return .object([(v, .null)])
        case .jump(let chain):
            return .object([("jump", .object([("target", .string(chain))]))])
        case .goto(let chain):
            return .object([("goto", .object([("target", .string(chain))]))])
        case .masquerade:
            return .object([("masquerade", .null)])
        case .dnat(let family, let address, let ports):
            var members: [(String, JSON)] = inet ? [("family", .string(NftVocabulary.addressProtocol(family)))] : []
            members.append(("addr", .string(address.description)))
            if let ports { members.append(("port", portsJSON(ports))) }
            return .object([("dnat", .object(members))])
        case .snat(let family, let address):
            var members: [(String, JSON)] = inet ? [("family", .string(NftVocabulary.addressProtocol(family)))] : []
            members.append(("addr", .string(address.description)))
            return .object([("snat", .object(members))])
        case .verdictMap(let key, let map):
            return .object([("vmap", .object([("key", operandJSON(key)), ("data", .string("@\(map)"))]))])
        case .dnatMap(let family, let key, let addressMap, let portMap):
            func lookup(_ map: String) -> JSON {
                .object([("map", .object([("key", operandJSON(key)), ("data", .string("@\(map)"))]))])
            }
            var members: [(String, JSON)] = inet ? [("family", .string(NftVocabulary.addressProtocol(family)))] : []
            members.append(("addr", lookup(addressMap)))
            if let portMap { members.append(("port", lookup(portMap))) }
            return .object([("dnat", .object(members))])
        case .addMarkBits(let bits):
            let mark = JSON.object([("meta", .object([("key", .string("mark"))]))])
            return .object([
                ("mangle", .object([("key", mark), ("value", .object([("|", .array([mark, .integer(Int(bits))]))]))]))
            ])
        }
    }
}
