import PortcullisNet
import PortcullisSyntax

/// Values as written: words read as switches, addresses, prefixes and ports, each problem
/// reported at the word.
extension Checker {
    mutating func onOff(_ value: Located<String>, _ on: String = "on", _ off: String = "off") -> Bool? {
        switch value.value {
        case on: return true
        case off: return false
        default:
            error("expected '\(on)' or '\(off)', found '\(value.value)'", at: value.range)
            return nil
        }
    }

    mutating func address(_ value: Located<String>, what: String) -> IPAddress? {
        guard let address = IPAddress(value.value) else {
            error(
                "invalid \(what) '\(value.value)'", at: value.range,
                hint: "write an IPv4 address like 198.18.0.10 or an IPv6 address like fd00::10")
            return nil
        }
        return address
    }

    mutating func prefix(_ value: Located<String>, what: String) -> IPPrefix? {
        switch IPPrefix.parse(Substring(value.value)) {
        case .success(let prefix): return prefix
        case .failure(.badAddress):
            error(
                "invalid \(what) '\(value.value)'", at: value.range,
                hint: "write a CIDR prefix like 198.18.0.0/24 or fd00::/64")
        case .failure(.badLength(let max)):
            error("invalid prefix length in '\(value.value)'", at: value.range, hint: "the length must be 0 to \(max)")
        }
        return nil
    }

    mutating func portRange(_ text: Substring, at range: SourceRange) -> PortRange? {
        switch PortRange.parse(text) {
        case .success(let ports): return ports
        case .failure(.notANumber):
            // Docker's `-p HOST:CONTAINER`, written the way `docker run` takes it.
            let parts = text.split(separator: ":")
            let dockerStyle = parts.count == 2 && parts.allSatisfy { UInt16($0) != nil }
            error(
                "invalid port '\(text)'", at: range,
                hint: dockerStyle
                    ? "Docker's -p \(text) is written 'publish \(parts[0]) -> \(parts[1])' here (host port, then container port)"
                    : "write a port like 80 or a range like 8000-8010")
        case .failure(.outOfRange):
            error("port out of range in '\(text)'", at: range, hint: "ports are 1 to 65535")
        case .failure(.reversed):
            error("port range '\(text)' ends before it starts", at: range, hint: "write the lower port first")
        }
        return nil
    }

    /// `PORTS[/PROTO]`; the protocol defaults to tcp, as in Docker.
    mutating func portSpec(_ value: Located<String>, requireProtocol: Bool = false) -> PortSpec? {
        let parts = value.value.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        var transport = TransportProtocol.tcp
        if parts.count == 2 {
            guard let t = TransportProtocol(rawValue: String(parts[1])) else {
                let column = value.range.start.column + parts[0].count + 1
                error(
                    "unknown protocol '\(parts[1])'",
                    at: SourceRange(
                        start: SourceLocation(
                            file: value.range.start.file, line: value.range.start.line, column: column),
                        length: parts[1].count),
                    hint: "protocols are tcp, udp and sctp")
                return nil
            }
            transport = t
        } else if requireProtocol {
            error("missing protocol in '\(value.value)'", at: value.range, hint: "write e.g. \(value.value)/tcp")
            return nil
        }
        guard let ports = portRange(parts[0], at: value.range) else { return nil }
        return PortSpec(ports, transport)
    }

    // MARK: - What the grammar guarantees

    /// A named block's name. The parser never leaves one out, but a tree built in memory (by
    /// `import`) is not parsed, so a missing name is reported rather than trusted.
    mutating func name(of block: Block) -> Located<String>? {
        guard let name = block.name else {
            error("\(block.kind.rawValue) block without a name", at: block.keyword.range)
            return nil
        }
        return name
    }

    /// The first `count` values of a setting, which its shape in `Grammar` asks for; reported
    /// like `name(of:)` when a tree built in memory has fewer.
    mutating func values(of setting: Setting, count: Int = 1) -> [Located<String>]? {
        guard setting.values.count >= count else {
            error(
                "'\(setting.keyword.value)' needs \(count) value\(count == 1 ? "" : "s")", at: setting.keyword.range)
            return nil
        }
        return Array(setting.values.prefix(count))
    }

    /// The one value of a setting whose shape is `.one`.
    mutating func value(of setting: Setting) -> Located<String>? { values(of: setting)?.first }

    // MARK: - Unknown names

    /// The declared names an unknown name may be a typo of.
    enum Candidates {
        case containers
        case networks
        case endpoints
        case addressSets
        case services
    }

    private func names(_ candidates: Candidates) -> [String] {
        switch candidates {
        case .containers: endpointKinds.filter { $0.value.kind == "container" }.map(\.key).sorted()
        case .networks: endpointKinds.filter { $0.value.kind == "network" }.map(\.key).sorted()
        case .endpoints: endpointKinds.keys.sorted()
        case .addressSets: addressSets.keys.sorted()
        case .services: services.keys.sorted()
        }
    }

    /// A hint compares the name with every candidate; past this many unknown names hints
    /// suggest nothing, so that a file of thousands of typos is still checked in linear time.
    static let suggestionLimit = 100

    mutating func unknownName(_ name: Located<String>, expected: String, among candidates: Candidates) {
        guard suggestionsMade < Self.suggestionLimit else {
            error(
                "unknown \(expected) '\(name.value)'", at: name.range,
                hint: "check the spelling (names are suggested for the first \(Self.suggestionLimit) unknown names)")
            return
        }
        suggestionsMade += 1
        let candidates = names(candidates)
        let suggestion = closestMatch(name.value, in: candidates)
        error(
            "unknown \(expected) '\(name.value)'", at: name.range,
            hint: suggestion.map { "did you mean '\($0)'?" }
                ?? (candidates.isEmpty ? "none is declared" : "known: \(candidates.prefix(8).joined(separator: ", "))"))
    }
}
