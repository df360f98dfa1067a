import Foundation
import PortcullisIR
import PortcullisNet

/// A problem that stops reading: the ruleset is not valid `iptables-save` output or not a
/// libnftables JSON ruleset. Text errors name their line; JSON errors name the JSON path in
/// their message (and have line 0, or the line of a JSON syntax error).
public struct ReadError: Error, Sendable, CustomStringConvertible {
    public let line: Int
    public let message: String
    /// The input is well formed but uses something the IR cannot hold (a set type, ...).
    public let unsupported: Bool

    public init(line: Int, message: String, unsupported: Bool = false) {
        self.line = line
        self.message = message
        self.unsupported = unsupported
    }

    public var description: String { line > 0 ? "line \(line): \(message)" : message }
}

/// Something read that Portcullis does not model; it is kept verbatim, never dropped.
public struct ReadWarning: Sendable, CustomStringConvertible {
    public let line: Int
    /// The JSON path of what the warning is about, for JSON input.
    public let path: String?
    public let message: String

    public init(line: Int, message: String) {
        self.line = line
        self.path = nil
        self.message = message
    }

    public init(path: String, message: String) {
        self.line = 0
        self.path = path
        self.message = message
    }

    public var description: String { path.map { "\($0): \(message)" } ?? "line \(line): \(message)" }
}

/// Reads `iptables-save` / `ip6tables-save` output (nft or legacy variant, with or without
/// counters) back into the IR, so that audits, imports and `explain` can work on a live host.
/// Every match and target Docker writes is modelled; anything else becomes an opaque match or
/// target with a warning, and renders back unchanged.
public struct IptablesSaveReader {
    public let family: TableFamily
    public let source: String

    public init(family: TableFamily = .ip, source: String = "iptables-save") {
        self.family = family
        self.source = source
    }

    public func read(_ text: String) throws(ReadError) -> (Ruleset, [ReadWarning]) {
        var tables: [Table] = []
        var warnings: [ReadWarning] = []
        var open: Table?
        /// The open table's chains by name, with their positions in it.
        var declaredChains: [String: Int] = [:]
        var sawComment = false
        let lines = Self.lines(text)
        for (index, raw) in lines.enumerated() {
            let number = index + 1
            let line = try Self.trustedLine(raw, number: number)
            if line.hasPrefix("#") { sawComment = true }
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("*") {
                guard open == nil else { throw ReadError(line: number, message: "table \(line) starts before COMMIT") }
                let name = String(line.dropFirst())
                guard !name.isEmpty else { throw ReadError(line: number, message: "table name missing after '*'") }
                open = Table(family: family, name: name)
                declaredChains = [:]
                continue
            }
            // Taken out of `open` (and put back) so that appending a rule never copies the table.
            guard var table = open.take() else {
                throw ReadError(line: number, message: "'\(line.prefix(40))' outside a table (expected '*TABLE')")
            }
            if line == "COMMIT" {
                tables.append(table)
                open = nil
                continue
            }
            if line.hasPrefix(":") {
                let chain = try Self.chain(line, in: table, number: number, warnings: &warnings)
                guard declaredChains[chain.name] == nil else {
                    throw ReadError(line: number, message: "chain \(chain.name) declared twice")
                }
                declaredChains[chain.name] = table.chains.count
                table.chains.append(chain)
                open = table
                continue
            }
            let (chainIndex, rule) = try self.rule(line, number: number, chains: declaredChains, warnings: &warnings)
            table.chains[chainIndex].rules.append(rule)
            open = table
        }
        if let open {
            throw ReadError(line: lines.count, message: "table \(open.name) has no COMMIT (truncated?)")
        }
        // iptables-save prints nothing at all for a host without tables; comments alone are
        // something else (a damaged copy, another tool's output) and must not audit as clean.
        if tables.isEmpty && sawComment {
            throw ReadError(line: 1, message: "only comments, no table (expected a line such as '*filter')")
        }
        return (Ruleset(tables: tables), warnings)
    }

    /// A line without surrounding blanks, refused where no iptables-save output could hold it.
    private static func trustedLine(_ raw: Substring, number: Int) throws(ReadError) -> String {
        if let bad = raw.unicodeScalars.first(where: Self.isControl) {
            throw ReadError(
                line: number,
                message:
                    "control character U+\(String(bad.value, radix: 16, uppercase: true)) (iptables-save writes none: a binary file or a damaged copy?)"
            )
        }
        let line = raw.trimmingCharacters(in: .whitespaces)
        if line.hasPrefix(Self.legacyTablesWarning) {
            throw ReadError(
                line: number,
                message:
                    "iptables-save says iptables-legacy tables are present; they are not in this text, so reading it would miss rules (read them with iptables-legacy-save)"
            )
        }
        return line
    }

    /// `:CHAIN POLICY [COUNTERS]`: a built-in chain with its policy, or `-` for a user chain.
    private static func chain(_ line: String, in table: Table, number: Int, warnings: inout [ReadWarning])
        throws(ReadError) -> Chain
    {
        let parts = line.dropFirst().split(separator: " ")
        guard parts.count >= 2 else { throw ReadError(line: number, message: "malformed chain line '\(line)'") }
        let name = String(parts[0])
        let policy = String(parts[1])
        var chain = Chain(name: name)
        guard policy != "-" else { return chain }
        guard let chainPolicy = ChainPolicy(rawValue: policy.lowercased()) else {
            throw ReadError(line: number, message: "unknown policy '\(policy)' for chain \(name)")
        }
        let builtin = XtablesTableKind(rawValue: table.name)?.baseChain(name, policy: chainPolicy)
        chain.base = builtin ?? BaseChain(type: .filter, hook: .forward, priority: 0, policy: chainPolicy)
        if builtin == nil {
            warnings.append(ReadWarning(line: number, message: "unknown built-in chain \(table.name)/\(name)"))
        }
        return chain
    }

    /// `[COUNTERS] -A CHAIN ...`: the rule, and the position of its chain in the table.
    private func rule(_ line: String, number: Int, chains: [String: Int], warnings: inout [ReadWarning])
        throws(ReadError) -> (Int, Rule)
    {
        var ruleText = Substring(line)
        if ruleText.hasPrefix("["), let close = ruleText.firstIndex(of: "]") {
            ruleText = ruleText[ruleText.index(after: close)...].drop { $0 == " " }
        }
        let tokens = try Self.tokenize(ruleText, line: number)
        let words = tokens.map(\.text)
        guard words.count >= 2, words[0] == "-A" else {
            throw ReadError(line: number, message: "expected a rule ('-A CHAIN ...'), found '\(line.prefix(40))'")
        }
        guard let chainIndex = chains[words[1]] else {
            throw ReadError(line: number, message: "rule for undeclared chain \(words[1])")
        }
        var parser = RuleParser(
            tokens: Array(tokens.dropFirst(2)), line: number, chains: chains,
            provenance: Provenance(statement: "read from \(source)", file: source, line: number))
        let rule = try parser.parse()
        warnings += parser.warnings
        return (chainIndex, rule)
    }

    /// What iptables-nft-save appends when the legacy tables hold rules it does not print.
    static let legacyTablesWarning = "# Warning: iptables-legacy tables present"

    /// The lines of `text`, ended by LF or CRLF (a file saved on Windows or sent through a
    /// CRLF channel reads the same as the original).
    static func lines(_ text: String) -> [Substring] {
        // Split by bytes (splitting by characters costs as much as reading the rules); a CR
        // before the LF goes with it, as "\r\n" is one character.
        var lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map {
            $0.last == UInt8(ascii: "\r") ? Substring($0.dropLast()) : Substring($0)
        }
        if lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }

    /// Characters iptables-save never writes (it separates with spaces, sometimes tabs).
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        (scalar.value < 0x20 && scalar != "\t") || scalar.value == 0x7F
    }

    /// A word of a rule: its value, and the text it was written as (quotes included), which is
    /// what an unmodelled option is rendered back from.
    struct Token {
        let text: String
        let raw: String
    }

    /// Splits a rule line into words; double quotes group (with `\"` and `\\` escapes), as
    /// `iptables-save` quotes comments and log prefixes. It reads scalars, not characters, so a
    /// combining mark after a quote cannot hide the quote.
    static func tokenize(_ text: Substring, line: Int) throws(ReadError) -> [Token] {
        // Most lines quote nothing: their words are split by bytes, each its own raw text.
        if !text.utf8.contains(UInt8(ascii: "\"")) {
            return text.utf8.split { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }.map {
                let word = String(Substring($0))
                return Token(text: word, raw: word)
            }
        }
        var tokens: [Token] = []
        var current = String.UnicodeScalarView()
        var raw = String.UnicodeScalarView()
        var inQuotes = false
        var hasWord = false
        var iterator = text.unicodeScalars.makeIterator()
        while let c = iterator.next() {
            if inQuotes {
                raw.append(c)
                if c == "\\" {
                    guard let next = iterator.next() else { break }
                    raw.append(next)
                    current.append(next)
                } else if c == "\"" {
                    inQuotes = false
                } else {
                    current.append(c)
                }
            } else if c == "\"" {
                raw.append(c)
                inQuotes = true
                hasWord = true
            } else if c == " " || c == "\t" {
                if hasWord { tokens.append(Token(text: String(current), raw: String(raw))) }
                current = String.UnicodeScalarView()
                raw = String.UnicodeScalarView()
                hasWord = false
            } else {
                current.append(c)
                raw.append(c)
                hasWord = true
            }
        }
        if inQuotes { throw ReadError(line: line, message: "unterminated quoted string") }
        if hasWord { tokens.append(Token(text: String(current), raw: String(raw))) }
        return tokens
    }
}

/// Parses the words after `-A CHAIN`.
struct RuleParser {
    let words: [String]
    let rawWords: [String]
    let line: Int
    /// The table's chains declared so far (by name), which a target can jump to.
    let chains: [String: Int]
    let provenance: Provenance
    var warnings: [ReadWarning] = []
    var position = 0

    init(tokens: [IptablesSaveReader.Token], line: Int, chains: [String: Int], provenance: Provenance) {
        self.words = tokens.map(\.text)
        self.rawWords = tokens.map(\.raw)
        self.line = line
        self.chains = chains
        self.provenance = provenance
    }

    mutating func next() throws(ReadError) -> String {
        guard position < words.count else { throw ReadError(line: line, message: "rule ends too early") }
        defer { position += 1 }
        return words[position]
    }

    var peek: String? { position < words.count ? words[position] : nil }

    func prefix(_ text: String) throws(ReadError) -> IPPrefix {
        guard case .success(let prefix) = IPPrefix.parse(Substring(text)) else {
            throw ReadError(line: line, message: "'\(text)' is not an address")
        }
        return prefix
    }

    /// `P` or `P:Q` with P <= Q.
    func ports(_ text: String) throws(ReadError) -> PortRange {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, let first = UInt16(parts[0]), let last = UInt16(parts.last!), first <= last else {
            throw ReadError(line: line, message: "'\(text)' is not a port or port range")
        }
        return PortRange(first, last)
    }

    /// The words of one match module or target, up to the next option that starts another.
    mutating func moduleWords() -> (words: [String], raw: [String]) {
        let start = position
        var taken: [String] = []
        while let word = peek {
            if ["-m", "-j", "-g", "-s", "-d", "-i", "-o", "-p"].contains(word) { break }
            if word == "!", position + 1 < words.count,
                ["-m", "-j", "-g", "-s", "-d", "-i", "-o", "-p"].contains(words[position + 1])
            {
                break
            }
            taken.append(word)
            position += 1
        }
        return (taken, Array(rawWords[start..<position]))
    }

    mutating func parse() throws(ReadError) -> Rule {
        var matches: [Match] = []
        var comment: RuleComment?
        var effects: [Effect] = []
        var action: Action?
        var transport: TransportProtocol?
        var negate = false
        while let word = peek {
            position += 1
            switch word {
            case "!":
                negate = true
                continue
            case "-s", "--source": matches.append(.address(.source, try prefix(try next()), negated: negate))
            case "-d", "--destination": matches.append(.address(.destination, try prefix(try next()), negated: negate))
            case "-i", "--in-interface": matches.append(.interface(.source, try next(), negated: negate))
            case "-o", "--out-interface": matches.append(.interface(.destination, try next(), negated: negate))
            case "-p", "--protocol":
                let name = try next()
                if let known = TransportProtocol(rawValue: name) {
                    transport = known
                    matches.append(.transport(known, negated: negate))
                } else if !negate, ["icmp", "ipv6-icmp", "icmpv6"].contains(name) {
                    matches.append(.icmp)  // Docker's accept into routed networks
                } else {
                    matches.append(.opaque((negate ? "! " : "") + "-p \(name)"))
                    warnings.append(ReadWarning(line: line, message: "kept as written, not modelled: -p \(name)"))
                }
            case "-m", "--match":
                let module = try next()
                let (options, raw) = moduleWords()
                if module == "comment", options.count == 2, options[0] == "--comment",
                    let text = RuleComment(options[1])
                {
                    comment = text
                } else {
                    matches += modelled(module, options, raw: raw, transport: transport)
                }
            case "-j", "--jump", "-g", "--goto":
                let target = try next()
                let (options, raw) = moduleWords()
                (action, effects) = self.target(target, options, raw: raw, goto: word == "-g" || word == "--goto")
            default:
                throw ReadError(line: line, message: "unexpected '\(word)' in rule")
            }
            negate = false
        }
        return Rule(matches, effects: effects, action, comment: comment, provenance: provenance)
    }

    /// A match module as IR matches, or one opaque match with a warning.
    mutating func modelled(_ module: String, _ options: [String], raw: [String], transport: TransportProtocol?)
        -> [Match]
    {
        let opaque = [Match.opaque((["-m", module] + raw).joined(separator: " "))]
        var result: [Match] = []
        var index = 0
        func value() -> String? {
            index += 1
            return index < options.count ? options[index] : nil
        }
        while index < options.count {
            let option = options[index]
            switch (module, option) {
            case ("tcp", "--dport"), ("udp", "--dport"), ("sctp", "--dport"), ("tcp", "--sport"), ("udp", "--sport"),
                ("sctp", "--sport"):
                guard module == transport?.rawValue, let text = value(), let range = try? ports(text) else {
                    return warn(opaque)
                }
                result.append(.port(option == "--dport" ? .destination : .source, range))
            case ("addrtype", "--dst-type"), ("addrtype", "--src-type"):
                guard value() == "LOCAL" else { return warn(opaque) }
                result.append(.localAddress(option == "--dst-type" ? .destination : .source))
            case ("addrtype", "!"):
                let next = value()
                guard next == "--dst-type" || next == "--src-type", value() == "LOCAL" else { return warn(opaque) }
                result.append(.localAddress(next == "--dst-type" ? .destination : .source, negated: true))
            case ("conntrack", "--ctstate"), ("conntrack", "--state"), ("state", "--state"):
                guard let text = value() else { return warn(opaque) }
                if text == "DNAT" && module == "conntrack" {
                    result.append(.destinationTranslated())
                } else {
                    let states = text.split(separator: ",").compactMap { ConnectionState(rawValue: $0.lowercased()) }
                    guard states.count == text.split(separator: ",").count, module != "state" else {
                        return warn(opaque)
                    }
                    result.append(.connectionState(Set(states)))
                }
            case ("conntrack", "!"):
                guard value() == "--ctstate", value() == "DNAT" else { return warn(opaque) }
                result.append(.destinationTranslated(negated: true))
            case ("conntrack", "--ctorigdst"):
                guard let text = value(), let address = try? prefix(text) else { return warn(opaque) }
                result.append(.originalDestination(address))
            case ("conntrack", "--ctorigdstport"):
                guard let text = value(), let range = try? ports(text) else { return warn(opaque) }
                result.append(.originalDestinationPort(range))
            case ("limit", "--limit"):
                guard let text = value(), let rate = Self.rate(text) else { return warn(opaque) }
                result.append(.limit(rate))
            default:
                return warn(opaque)
            }
            index += 1
        }
        return result.isEmpty ? warn(opaque) : result
    }

    mutating func warn(_ matches: [Match]) -> [Match] {
        if case .opaque(let text) = matches.first {
            warnings.append(ReadWarning(line: line, message: "kept as written, not modelled: \(text)"))
        }
        return matches
    }

    static func rate(_ text: String) -> Rate? {
        let parts = text.split(separator: "/")
        let units: [String: Rate.Unit] = ["sec": .second, "min": .minute, "hour": .hour, "day": .day]
        guard parts.count == 2, let count = Int(parts[0]), count > 0, let unit = units[String(parts[1])] else {
            return nil
        }
        return Rate(count: count, unit: unit)
    }

    mutating func target(_ name: String, _ options: [String], raw: [String], goto: Bool) -> (Action?, [Effect]) {
        let opaque = ([name] + raw).joined(separator: " ")
        switch (name, options.count) {
        case ("ACCEPT", 0): return (.accept, [])
        case ("DROP", 0): return (.drop, [])
        case ("RETURN", 0): return (.return, [])
        case ("MASQUERADE", 0): return (.masquerade, [])
        case ("CHECKSUM", 1) where options[0] == "--checksum-fill": return (.checksumFill, [])
        case ("LOG", 2) where options[0] == "--log-prefix":
            if let prefix = RuleComment(options[1]) { return (nil, [.log(prefix: prefix)]) }
        case ("DNAT", 2) where options[0] == "--to-destination":
            if let (address, ports) = Self.destination(options[1]) { return (.dnat(address, ports), []) }
        case ("SNAT", 2) where options[0] == "--to-source":
            if let address = IPAddress(options[1]) { return (.snat(address), []) }
        default:
            if options.isEmpty && chains[name] != nil { return (goto ? .goto(name) : .jump(name), []) }
        }
        warnings.append(ReadWarning(line: line, message: "kept as written, not modelled: -j \(opaque)"))
        return (.opaque(opaque), [])
    }

    /// `A`, `A:P`, `A:P-Q`, `[V6]:P`.
    static func destination(_ text: String) -> (IPAddress, PortRange?)? {
        var host = Substring(text)
        var portText: Substring?
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if rest.hasPrefix(":") { portText = rest.dropFirst() }
        } else if let colon = host.lastIndex(of: ":"), !host[..<colon].contains(":") {
            portText = host[host.index(after: colon)...]
            host = host[..<colon]
        }
        guard let address = IPAddress(host) else { return nil }
        guard let portText else { return (address, nil) }
        guard case .success(let ports) = PortRange.parse(portText) else { return nil }
        return (address, ports)
    }
}
