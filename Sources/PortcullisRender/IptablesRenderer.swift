import PortcullisIR
import PortcullisNet

/// Renders `ip` tables as `iptables-restore` input and `ip6` tables as `ip6tables-restore`
/// input, in exactly the form `iptables-save` prints (so a saved host and a compiled policy
/// compare byte for byte once counters are zeroed).
public struct IptablesRenderer: Renderer {
    public init() {}

    public func render(_ ruleset: Ruleset) throws(RenderError) -> [RenderedFile] {
        var files: [RenderedFile] = []
        for (family, fileExtension) in [(TableFamily.ip, "iptables"), (.ip6, "ip6tables")] {
            let tables = ruleset.tables.filter { $0.family == family }
            if tables.isEmpty && family == .ip6 { continue }
            var lines = TextLines()
            for table in tables { try renderTable(table, into: &lines) }
            files.append(RenderedFile(fileExtension: fileExtension, text: lines.text, ruleOrigins: lines.origins))
        }
        if let inet = ruleset.tables.first(where: { $0.family == .inet }) {
            throw RenderError("iptables cannot express the inet table '\(inet.name)'; use an nftables backend")
        }
        return files
    }

    /// `*table`, built-in chains with policies, user chains sorted by name, then every chain's
    /// rules in that same order, then `COMMIT`.
    func renderTable(_ table: Table, into lines: inout TextLines) throws(RenderError) {
        if let set = table.sets.first {
            throw RenderError("iptables cannot express the named set '\(set.name)'; use an nftables backend")
        }
        let chains =
            table.chains.filter(\.isBuiltin)
            + table.chains.filter { !$0.isBuiltin }.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        lines.append("*\(table.name)")
        for chain in chains {
            lines.append(":\(chain.name) \(chain.base.map { $0.policy.rawValue.uppercased() } ?? "-") [0:0]")
        }
        for chain in chains {
            for rule in chain.rules {
                lines.append(try renderRule(rule, chain: chain.name, family: table.family), from: rule.provenance)
            }
        }
        lines.append("COMMIT")
    }

    /// One rule as `iptables-save` prints it (`-A CHAIN ...`); also how traces show rules.
    public func renderRule(_ rule: Rule, chain: String, family: TableFamily) throws(RenderError) -> String {
        // Appended word by word into one string: large hosts have tens of thousands of rules.
        var line = "-A " + chain
        var words: [String] {
            get { [] }
            set { for word in newValue { line += " " + word } }
        }
        let core = rule.matches.filter { $0.iptablesCoreOrder != nil }.sorted {
            $0.iptablesCoreOrder! < $1.iptablesCoreOrder!
        }
        for match in core { words += coreWords(match, family: family) }
        let transport = rule.matches.lazy.compactMap { match -> TransportProtocol? in
            if case .transport(let t, false) = match { return t }
            return nil
        }.first
        // Match modules in the order given; consecutive matches of one module share one `-m`.
        var currentModule: String?
        for match in rule.matches where match.iptablesCoreOrder == nil {
            let (module, options) = try moduleWords(match, transport: transport, provenance: rule.provenance)
            if module.isEmpty {  // opaque text carries its own -m
                words += options
                currentModule = nil
                continue
            }
            if module != currentModule || module == "limit" {
                words += ["-m", module]
                currentModule = module
            }
            words += options
        }
        if let comment = rule.comment { words += ["-m", "comment", "--comment", Self.saveString(comment.text)] }
        words += try targetWords(rule, family: family)
        return line
    }

    func coreWords(_ match: Match, family: TableFamily) -> [String] {
        switch match {
        case .address(let direction, let prefix, let negated):
            return (negated ? ["!"] : []) + [direction == .source ? "-s" : "-d", prefix.network.description]
        case .interface(let direction, let name, let negated):
            return (negated ? ["!"] : []) + [direction == .source ? "-i" : "-o", name]
        case .transport(let transport, let negated):
            return (negated ? ["!"] : []) + ["-p", transport.rawValue]
        case .icmp:
            return ["-p", family == .ip6 ? "ipv6-icmp" : "icmp"]
        default:
            return []
        }
    }

    func moduleWords(_ match: Match, transport: TransportProtocol?, provenance: Provenance?) throws(RenderError) -> (
        String, [String]
    ) {
        switch match {
        case .port(let direction, let ports):
            guard let transport else {
                throw RenderError("a port match needs a protocol match in the same rule", provenance: provenance)
            }
            return (transport.rawValue, [direction == .source ? "--sport" : "--dport", portText(ports)])
        case .localAddress(let direction, let negated):
            return ("addrtype", (negated ? ["!"] : []) + [direction == .source ? "--src-type" : "--dst-type", "LOCAL"])
        case .connectionState(let states):
            let ordered = ConnectionState.allCases.filter(states.contains).map { $0.rawValue.uppercased() }
            return ("conntrack", ["--ctstate", ordered.joined(separator: ",")])
        case .destinationTranslated(let negated):
            return ("conntrack", (negated ? ["!"] : []) + ["--ctstate", "DNAT"])
        case .originalDestination(let prefix):
            return ("conntrack", ["--ctorigdst", prefix.network.description])
        case .originalDestinationPort(let ports):
            return ("conntrack", ["--ctorigdstport", portText(ports)])
        case .limit(let rate):
            let unit = ["second": "sec", "minute": "min", "hour": "hour", "day": "day"][rate.unit.rawValue]!
            return ("limit", ["--limit", "\(rate.count)/\(unit)"])
        case .mark(let value, let mask):
            return ("mark", ["--mark", Self.hex(value) + (mask.map { "/" + Self.hex($0) } ?? "")])
        case .inSet(_, let set, _):
            throw RenderError("iptables cannot look up the nftables set '\(set)'", provenance: provenance)
        case .transports(let transports):
            throw RenderError(
                "iptables matches one protocol per rule, not \(transports.map(\.rawValue).joined(separator: ", "))",
                provenance: provenance)
        case .opaque(let text):
            return ("", [text])
        case .address, .interface, .transport, .icmp:
            return ("", [])  // core options, printed before the modules
        }
    }

    func targetWords(_ rule: Rule, family: TableFamily) throws(RenderError) -> [String] {
        let logs = rule.effects.compactMap { effect -> RuleComment? in
            if case .log(let prefix) = effect { return prefix }
            return nil
        }
        if let prefix = logs.first {
            guard rule.action == nil else {
                throw RenderError(
                    "iptables needs a rule of its own to log before a verdict", provenance: rule.provenance)
            }
            return ["-j", "LOG", "--log-prefix", Self.saveString(prefix.text)]
        }
        if rule.effects.contains(where: { if case .addMarkBits = $0 { true } else { false } }) {
            throw RenderError("iptables needs a MARK rule of its own to set a mark", provenance: rule.provenance)
        }
        guard let action = rule.action else { return [] }
        switch action {
        case .accept: return ["-j", "ACCEPT"]
        case .drop: return ["-j", "DROP"]
        case .return: return ["-j", "RETURN"]
        case .jump(let chain): return ["-j", chain]
        case .goto(let chain): return ["-g", chain]
        case .masquerade: return ["-j", "MASQUERADE"]
        case .checksumFill: return ["-j", "CHECKSUM", "--checksum-fill"]
        case .snat(let address): return ["-j", "SNAT", "--to-source", address.description]
        case .dnat(let address, let ports):
            let host = address.family == .ipv6 ? "[\(address)]" : address.description
            return ["-j", "DNAT", "--to-destination", host + (ports.map { ":\($0)" } ?? "")]
        case .verdictMap(_, let map), .dnatMap(_, _, let map, _):
            throw RenderError("iptables cannot use the nftables map '\(map)'", provenance: rule.provenance)
        case .opaque(let text):
            return ["-j", text]
        }
    }

    /// `0x10000000`: marks as `iptables-save` prints them.
    static func hex(_ value: UInt32) -> String { "0x" + String(value, radix: 16) }

    /// `80` or `8000:8010`, the port syntax of iptables.
    func portText(_ ports: PortRange) -> String { ports.isSingle ? "\(ports.first)" : "\(ports.first):\(ports.last)" }

    /// Quotes a string the way `iptables-save` does (`xtables_save_string`): bare when it is
    /// made only of letters, digits, `_` and `-`; otherwise in double quotes with `"`, `\` and
    /// `'` escaped. (Policy text never contains the escaped characters; see `RulesetText`.)
    public static func saveString(_ value: String) -> String {
        let bare =
            !value.isEmpty && value.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
        if bare { return value }
        var quoted = "\""
        for c in value {
            if c == "\"" || c == "\\" || c == "'" { quoted.append("\\") }
            quoted.append(c)
        }
        return quoted + "\""
    }
}
