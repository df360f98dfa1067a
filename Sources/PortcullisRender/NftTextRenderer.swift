import PortcullisIR
import PortcullisNet

/// Renders the IR as an nft script (`nft -f`), laid out the way `nft list ruleset` prints.
public struct NftTextRenderer: Renderer {
    public init() {}

    public func render(_ ruleset: Ruleset) throws(RenderError) -> [RenderedFile] {
        var lines = TextLines()
        for (index, table) in ruleset.tables.enumerated() {
            if index > 0 { lines.append("") }
            try renderTable(table, into: &lines)
        }
        return [
            RenderedFile(
                fileExtension: Backend.nftables.fileExtension,
                text: lines.text, ruleOrigins: lines.origins
            )
        ]
    }

    /// `table FAMILY NAME {`, its sets and chains separated by blank lines, `}`.
    func renderTable(_ table: Table, into lines: inout TextLines) throws(RenderError) {
        lines.append("table \(table.family.rawValue) \(try identifier(table.name)) {")
        var first = true
        func separate() {
            if !first { lines.append("") }
            first = false
        }
        for set in table.sets {
            separate()
            // A set's elements span several lines; none of them is a rule.
            for line in try renderSet(set) { lines.append(line) }
        }
        for chain in table.chains {
            separate()
            try renderChain(chain, in: table, into: &lines)
        }
        lines.append("}")
    }

    func renderChain(_ chain: Chain, in table: Table, into lines: inout TextLines) throws(RenderError) {
        lines.append("\tchain \(try identifier(chain.name)) {")
        if let base = chain.base {
            lines.append(
                "\t\ttype \(base.type.rawValue) hook \(base.hook.rawValue) priority \(NftVocabulary.priorityText(base)); policy \(base.policy.rawValue);"
            )
        }
        for rule in chain.rules { lines.append("\t\t" + (try renderRule(rule, in: table)), from: rule.provenance) }
        lines.append("\t}")
    }

    /// One rule as `nft list` prints it inside its chain, for explain and audit.
    public func renderRule(_ rule: Rule, in table: Table) throws(RenderError) -> String {
        let nft = try NftVocabulary.translate(rule, in: table)
        var text = try nft.expressions.map { e throws(RenderError) in try expressionText(e, in: table) }.joined(
            separator: " ")
        if let comment = nft.comment { text += " comment \"\(comment)\"" }
        return text
    }

    /// One set or map element as it is written between `elements = { }`.
    public func renderElement(_ element: SetElement) throws(RenderError) -> String {
        var text = element.key.map(setValueText).joined(separator: " . ")
        switch element.value {
        case nil: break
        case .verdict(let action)?: text += " : " + (try verdictText(action))
        case .data(let values)?: text += " : " + values.map(setValueText).joined(separator: " . ")
        }
        return text
    }

    /// A set or map declaration, line by line, elements one per line as `nft list` prints them.
    func renderSet(_ set: NamedSet) throws(RenderError) -> [String] {
        var type = set.keyTypes.map(\.rawValue).joined(separator: " . ")
        switch set.mapValue {
        case nil: break
        case .verdict?: type += " : verdict"
        case .data(let types)?: type += " : " + types.map(\.rawValue).joined(separator: " . ")
        }
        var lines = ["\t\(set.mapValue == nil ? "set" : "map") \(try identifier(set.name)) {", "\t\ttype \(type)"]
        if set.interval { lines.append("\t\tflags interval") }
        for (index, element) in set.elements.enumerated() {
            let last = index == set.elements.count - 1
            lines.append(
                (index == 0 ? "\t\telements = { " : "\t\t\t     ") + (try renderElement(element)) + (last ? " }" : ","))
        }
        lines.append("\t}")
        return lines
    }

    func setValueText(_ value: SetValue) -> String {
        switch value {
        case .address(let prefix): prefixText(prefix)
        case .ports(let ports): ports.description
        case .transport(let t): t.rawValue
        case .interface(let name): "\"\(name)\""
        }
    }

    func verdictText(_ action: Action) throws(RenderError) -> String {
        switch action {
        case .accept: "accept"
        case .drop: "drop"
        case .return: "return"
        case .jump(let chain): "jump \(try identifier(chain))"
        case .goto(let chain): "goto \(try identifier(chain))"
        default: throw RenderError("a verdict map can only map to verdicts, not \(action)")
        }
    }

    func prefixText(_ prefix: IPPrefix) -> String {
        prefix.isHost ? prefix.address.description : prefix.network.description
    }

    /// `inet` tables must say which family a NAT statement translates; `ip`/`ip6` tables imply it.
    func natFamily(_ family: IPFamily, _ table: Table) -> String {
        table.family == .inet ? NftVocabulary.addressProtocol(family) + " " : ""
    }

    func operandText(_ operand: NftOperand) -> String {
        switch operand {
        case .payload(let proto, let field): "\(proto) \(field)"
        case .meta(let key): key == "iifname" || key == "oifname" ? key : "meta \(key)"
        case .fib(let flag): "fib \(flag) type"
        case .ct(let key, let direction, let family):
            ["ct", direction, family, key].compactMap { $0 }.joined(separator: " ")
        case .concat(let parts): parts.map(operandText).joined(separator: " . ")
        case .bitwiseAnd(let operand, let mask): "\(operandText(operand)) & \(hexText(mask))"
        }
    }

    func valueText(_ value: NftValue) -> String {
        switch value {
        case .address(let prefix): prefixText(prefix)
        case .string(let s): "\"\(s)\""
        case .keyword(let k): k
        case .ports(let ports): ports.description
        case .flags(let flags): flags.joined(separator: ",")
        case .setReference(let name): "@\(name)"
        case .keywords(let words): "{ " + words.joined(separator: ", ") + " }"
        case .hex(let value): hexText(value)
        }
    }

    /// `0x10000000`, as nft prints marks.
    func hexText(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }

    func expressionText(_ expression: NftExpression, in table: Table) throws(RenderError) -> String {
        switch expression {
        case .match(let left, let negated, let right):
            if case .bitwiseAnd = left { return "\(operandText(left)) \(negated ? "!=" : "==") \(valueText(right))" }
            return "\(operandText(left)) \(negated ? "!= " : "")\(valueText(right))"
        case .counter: return "counter"
        case .log(let prefix): return "log prefix \"\(prefix)\""
        case .limit(let rate): return "limit rate \(rate.count)/\(rate.unit.rawValue)"
        case .verdict(let v): return v
        case .jump(let chain): return "jump \(try identifier(chain))"
        case .goto(let chain): return "goto \(try identifier(chain))"
        case .masquerade: return "masquerade"
        case .dnat(let family, let address, let ports):
            let host = family == .ipv6 && ports != nil ? "[\(address)]" : address.description
            return "dnat \(natFamily(family, table))to \(host)\(ports.map { ":\($0)" } ?? "")"
        case .snat(let family, let address):
            return "snat \(natFamily(family, table))to \(address)"
        case .verdictMap(let key, let map):
            return "\(operandText(key)) vmap @\(map)"
        case .dnatMap(let family, let key, let addressMap, let portMap):
            let address = "\(operandText(key)) map @\(try identifier(addressMap))"
            let port = try portMap.map { map throws(RenderError) in ":\(operandText(key)) map @\(try identifier(map))" }
            return "dnat \(natFamily(family, table))to \(address)\(port ?? "")"
        case .addMarkBits(let bits):
            return "meta mark set meta mark | \(hexText(bits))"
        }
    }

    /// nft 1.0.6 accepts neither quoted chain names nor keywords (`fwd`, `counter`...) as bare
    /// ones, so a name that is not a plain identifier cannot be written at all. Layouts choose
    /// every table, chain and set name (no policy text reaches them); this guards that promise.
    func identifier(_ name: String) throws(RenderError) -> String {
        let plain =
            name.first?.isLetter == true
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
        guard plain, !NftTextRenderer.keywords.contains(name) else {
            throw RenderError("'\(name)' cannot be written as an nft identifier")
        }
        return name
    }

    /// Words nft 1.0.6 rejects as a chain name (measured: `nft -c` on `chain WORD {}` for each).
    /// Names with an uppercase letter, `-` or `_` never collide: every keyword is lowercase.
    static let keywords: Set<String> = [
        "fwd", "dup", "ip", "ip6", "inet", "arp", "bridge", "netdev", "table", "chain", "set", "map", "rule", "element",
        "counter", "meter", "flow", "flowtable", "accept", "drop", "return", "jump", "goto", "continue", "queue",
        "reject",
        "log", "limit", "masquerade", "snat", "dnat", "redirect", "tcp", "udp", "sctp", "icmp", "ct", "meta", "fib",
        "type",
        "hook", "priority", "policy", "comment", "quota", "secmark", "synproxy", "th", "vmap", "add", "delete", "list",
        "flush", "insert", "replace", "reset", "define", "include", "describe", "monitor", "export", "import", "handle",
        "position", "index",
    ]
}
