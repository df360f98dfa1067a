import PortcullisNet
import PortcullisSyntax

/// `allow`, `deny` and `egress` statements.
extension Checker {
    mutating func checkRule(_ rule: Setting) -> PolicyRule? {
        guard let kind = PolicyRule.Kind(rawValue: rule.keyword.value) else {
            error("unknown rule '\(rule.keyword.value)'", at: rule.keyword.range)
            return nil
        }
        // The grammar requires `-> TARGET`; a tree built in memory may leave it out.
        guard let source = value(of: rule) else { return nil }
        guard let target = rule.clause("->")?.values.first else {
            error("'\(rule.keyword.value)' needs '-> TARGET'", at: rule.keyword.range)
            return nil
        }
        let sources = endpoints(source)
        var destinations: [Endpoint]? = []
        var egress = EgressDestination.anywhere
        if kind == .egress {
            if let destination = egressDestination(target) { egress = destination } else { destinations = nil }
        } else {
            destinations = endpoints(target)
        }
        guard let sources, let destinations, let ports = ports(of: rule) else { return nil }
        if sources.isEmpty || (kind != .egress && destinations.isEmpty) {
            error("'\(rule.keyword.value)' names an empty group", at: rule.keyword.range)
            return nil
        }
        if kind == .egress { checkEgressSources(sources, at: source.range) }
        var text = "\(kind.rawValue) \(source.value) -> \(target.value)"
        if let p = rule.clause("port") { text += " port " + p.values.map(\.value).joined(separator: ",") }
        if let s = rule.clause("service") { text += " service " + s.values.map(\.value).joined(separator: ",") }
        return PolicyRule(
            kind: kind, sources: sources, destinations: destinations, egressDestination: egress, ports: ports,
            text: text,
            origin: Origin(text, at: rule.keyword.range.start))
    }

    private mutating func endpoints(_ value: Located<String>) -> [Endpoint]? {
        switch endpointKinds[value.value]?.kind {
        case "container": return [.container(value.value)]
        case "network": return [.network(value.value)]
        case "group": return groups[value.value]?.map { .container($0) } ?? []
        default:
            unknownName(value, expected: "container, group or network", among: .endpoints)
            return nil
        }
    }

    /// `any`, an address set or a literal prefix.
    private mutating func egressDestination(_ target: Located<String>) -> EgressDestination? {
        if target.value == "any" { return .anywhere }
        if let set = addressSets[target.value] { return .prefixes(set) }
        if target.value.first?.isLetter == true && !target.value.utf8.contains(UInt8(ascii: ":")) {
            unknownName(target, expected: "address set (or 'any')", among: .addressSets)
            return nil
        }
        return prefix(target, what: "egress destination").map { .prefixes([$0.isHost ? $0 : $0.network]) }
    }

    /// Containers and networks with no route off the host have no egress to allow.
    private mutating func checkEgressSources(_ sources: [Endpoint], at range: SourceRange) {
        for case .container(let name) in sources {
            let attachments = containerPositions[name].map { containers[$0].attachments } ?? []
            if !attachments.isEmpty && attachments.allSatisfy({ network($0.network)?.internal == true }) {
                error(
                    "'\(name)' is attached only to internal networks, so it has no egress to allow",
                    at: range, hint: "internal networks have no route off the host")
            }
        }
        for case .network(let name) in sources where network(name)?.internal == true {
            error(
                "network '\(name)' is internal, so it has no egress to allow", at: range,
                hint: "internal networks have no route off the host")
        }
    }

    private mutating func ports(of rule: Setting) -> [PortSpec]? {
        var specs: [PortSpec] = []
        var ok = true
        for value in rule.clause("port")?.values ?? [] {
            if let spec = portSpec(value) { specs.append(spec) } else { ok = false }
        }
        for value in rule.clause("service")?.values ?? [] {
            if let service = services[value.value] {
                specs += service
            } else if listNames["service \(value.value)"] == nil {
                unknownName(value, expected: "service", among: .services)
                ok = false
            }
        }
        return ok ? specs : nil
    }
}
