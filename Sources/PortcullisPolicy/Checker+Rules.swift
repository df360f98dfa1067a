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
        let (sources, sourceScope) = scopedEndpoints(source)
        var destinations: [Endpoint]? = []
        var destinationScope: String?
        var egress = EgressDestination.anywhere
        if kind == .egress {
            if let destination = egressDestination(target) { egress = destination } else { destinations = nil }
        } else {
            (destinations, destinationScope) = scopedEndpoints(target)
        }
        guard let sources, let destinations, let ports = ports(of: rule) else { return nil }
        if sources.isEmpty || (kind != .egress && destinations.isEmpty) {
            error("'\(rule.keyword.value)' names an empty group", at: rule.keyword.range)
            return nil
        }
        if kind == .egress { checkEgressSources(sources, at: source.range) }
        if kind == .allow {
            checkInternalCrossings(
                (sources, sourceScope, source), (destinations, destinationScope, target), at: rule.keyword.range)
        }
        var text = "\(kind.rawValue) \(source.value) -> \(target.value)"
        if let p = rule.clause("port") { text += " port " + p.values.map(\.value).joined(separator: ",") }
        if let s = rule.clause("service") { text += " service " + s.values.map(\.value).joined(separator: ",") }
        return PolicyRule(
            kind: kind, sources: sources, destinations: destinations, egressDestination: egress, ports: ports,
            text: text, origin: Origin(text, at: rule.keyword.range.start), sourceScope: sourceScope,
            destinationScope: destinationScope)
    }

    /// `NAME` or `NAME@NETWORK`: a container or group kept to its addresses on one network.
    /// Every container the scope covers must be attached to that network.
    private mutating func scopedEndpoints(_ value: Located<String>) -> ([Endpoint]?, scope: String?) {
        guard let at = value.value.firstIndex(of: "@") else { return (endpoints(value), nil) }
        let nameText = String(value.value[..<at])
        let scopeText = String(value.value[value.value.index(after: at)...])
        let nameRange = SourceRange(start: value.range.start, length: nameText.count)
        let scopeRange = SourceRange(
            start: SourceLocation(
                file: value.range.start.file, line: value.range.start.line,
                column: value.range.start.column + nameText.count + 1),
            length: scopeText.count)
        let name = Located(nameText, at: nameRange)
        let scope = Located(scopeText, at: scopeRange)
        guard let network = network(scope.value) else {
            unknownName(scope, expected: "network", among: .networks)
            return (nil, nil)
        }
        guard let resolved = endpoints(name) else { return (nil, nil) }
        var valid = true
        for endpoint in resolved {
            switch endpoint {
            case .network:
                error(
                    "'\(name.value)' is a network; only containers and groups take a network scope", at: value.range,
                    hint: "write \(name.value) alone")
                valid = false
            case .container(let container):
                let attached = containerPositions[container].map { containers[$0].attachments } ?? []
                guard attached.contains(where: { $0.network == network.name }) else {
                    error(
                        "container '\(container)' is not attached to network '\(network.name)'", at: scope.range,
                        hint:
                            "attach it there, or scope the rule to a network it is on: \(attached.map { "\(name.value)@\($0.network)" }.joined(separator: ", "))"
                    )
                    valid = false
                    continue
                }
            }
        }
        return (valid ? resolved : nil, network.name)
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

    /// Unscoped, an `allow` between ends that share no network crosses bridges, but never into
    /// an internal network (the layouts leave those pairs out): an end that is only on
    /// internal networks must be scoped to one, or the statement would open nothing.
    private mutating func checkInternalCrossings(
        _ from: (endpoints: [Endpoint], scope: String?, written: Located<String>),
        _ to: (endpoints: [Endpoint], scope: String?, written: Located<String>), at range: SourceRange
    ) {
        func networks(_ endpoint: Endpoint, scope: String?) -> [String] {
            if let scope { return [scope] }
            switch endpoint {
            case .network(let name): return [name]
            case .container(let name):
                return containerPositions[name].map { containers[$0].attachments.map(\.network) } ?? []
            }
        }
        for source in from.endpoints {
            let sourceNetworks = networks(source, scope: from.scope)
            for destination in to.endpoints {
                let destinationNetworks = networks(destination, scope: to.scope)
                guard Set(sourceNetworks).isDisjoint(with: destinationNetworks) else { continue }
                for (end, side, other) in [(destination, to, source), (source, from, destination)]
                where side.scope == nil {
                    let onNetworks = end == destination ? destinationNetworks : sourceNetworks
                    guard !onNetworks.isEmpty, onNetworks.allSatisfy({ network($0)?.internal == true }) else {
                        continue
                    }
                    error(
                        "'\(end.name)' is only on internal network\(onNetworks.count == 1 ? "" : "s") \(onNetworks.joined(separator: ", ")), which '\(other.name)' is not on: an allow crosses into an internal network only where it names it",
                        at: side.written.range,
                        hint: end == .network(end.name)
                            ? "allow its containers instead, scoped to it: CONTAINER@\(end.name)"
                            : "write \(side.written.value)@\(onNetworks[0]) to allow it")
                    return
                }
            }
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
