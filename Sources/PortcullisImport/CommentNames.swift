import PortcullisIR
import PortcullisNet

/// Rules Portcullis wrote carry the statement they come from in their comment
/// (`portcullis: allow scheduler -> workers port 7070/tcp`, `portcullis: publish 8443/tcp of
/// admin from office`): names no ruleset holds otherwise. `named` gives the imported host
/// those names back (containers, networks, groups, address sets) and makes the rules of one
/// statement one statement again, so that the policy compiles to the same rules, comments
/// included. The importer keeps the result only when it does (`Verification`).
enum CommentNames {
    static let prefix = "portcullis: "
    static let unknownPrefix = prefix + "unknown-containers drop: "

    /// The one host address a rule matches, source or destination.
    static func hostAddress(_ rule: Rule) -> IPAddress? {
        rule.matches.lazy.compactMap { match -> IPAddress? in
            if case .address(_, let prefix, false) = match, prefix.isHost { return prefix.address }
            return nil
        }.first
    }

    /// - Parameters:
    ///   - comments: the comment of each flow's rules, in `host.flows`' order.
    ///   - rules: the user chain's rules of every family.
    static func named(_ host: ImportedHost, comments: [String?], rules: [Rule]) -> ImportedHost {
        var host = host
        var renames: [String: String] = [:]
        var taken = Set(host.networks.map(\.name) + host.containers.map(\.name))
        let containers = Set(host.containers.map(\.name))
        func rename(_ old: String, _ new: String) -> Bool {
            if old == new { return true }
            if let known = renames[old] { return known == new }
            guard !taken.contains(new), !new.isEmpty,
                new.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." })
            else { return false }
            // Only imported containers share a name: one container's addresses on several
            // networks, each imported as a container of its own.
            let sharing = renames.filter { $0.value == new }.keys
            guard sharing.isEmpty || (containers.contains(old) && sharing.allSatisfy(containers.contains)) else {
                return false
            }
            renames[old] = new
            return true
        }
        // `unknown-containers drop`: `CONTAINER is known on NETWORK` (or `the gateway is`) on
        // the RETURN of its address, `from addresses on NETWORK the rules do not know` on a drop.
        for rule in rules {
            guard let text = rule.comment?.text, text.hasPrefix(unknownPrefix) else { continue }
            let said = text.dropFirst(unknownPrefix.count)
            let network: Substring
            if let known = said.range(of: " is known on ") {
                network = said[known.upperBound...]
                let container = said[..<known.lowerBound]
                if container != "the gateway", let address = Self.hostAddress(rule) {
                    _ = rename(HostDeclarations.containerName(address), String(container))
                }
            } else if let on = said.range(of: "addresses on "), let end = said.range(of: " the rules do not know") {
                network = said[on.upperBound..<end.lowerBound]
            } else {
                continue
            }
            if let bridge = rule.matches.lazy.compactMap({ match -> String? in
                if case .interface(_, let name, false) = match { return name }
                return nil
            }).first {
                _ = rename(HostDeclarations.networkName(bridge), String(network))
            }
        }
        // Allow-lists: `publish PORTS/PROTO of CONTAINER from SOURCES`.
        var sets: [ImportedHost.Group] = []
        var sourceTexts: [String: [String]] = [:]
        for rule in rules {
            guard let text = rule.comment?.text, text.hasPrefix(prefix + "publish "),
                let of = text.range(of: " of "), let from = text.range(of: " from "),
                let slash = text.firstIndex(of: "/"), slash < of.lowerBound
            else { continue }
            let name = String(text[of.upperBound..<from.lowerBound])
            guard
                case .address(.destination, let prefix, false)? = rule.matches.first(where: {
                    if case .address(.destination, _, false) = $0 { true } else { false }
                }), prefix.isHost
            else { continue }
            let container = HostDeclarations.containerName(prefix.address)
            _ = rename(container, name)
            let ports = text[text.index(text.startIndex, offsetBy: (Self.prefix + "publish ").count)..<slash]
            sourceTexts[container + " " + ports] = text[from.upperBound...].components(separatedBy: ", ")
        }
        for at in host.containers.indices {
            for p in host.containers[at].publishes.indices where !host.containers[at].publishes[p].sources.isEmpty {
                let publish = host.containers[at].publishes[p]
                guard let side = publish.hostSide?.split(separator: ":").last,
                    let words = sourceTexts[host.containers[at].name + " " + side]
                else { continue }
                let literal = words.filter { IPPrefix.parse(Substring($0)).isSuccess || IPAddress($0) != nil }
                let named = words.filter { !literal.contains($0) }
                guard named.count == 1 else { continue }
                let members = publish.sources.filter { !literal.contains($0) }
                guard !members.isEmpty else { continue }
                if let known = sets.first(where: { $0.name == named[0] }) {
                    guard known.members == members else { continue }
                } else {
                    guard !taken.contains(named[0]) else { continue }
                    sets.append(ImportedHost.Group(name: named[0], members: members))
                    taken.insert(named[0])
                }
                host.containers[at].publishes[p].sources = words
            }
        }
        host.addressSets = sets
        /// A statement's `service NAME`: the ports of its rules, one service of that name.
        func service(named name: String, ports: [String]) -> Bool {
            guard !ports.isEmpty else { return false }
            if let known = host.services.first(where: { $0.name == name }) { return known.members == ports }
            host.services.append(ImportedHost.Group(name: name, members: ports))
            return true
        }
        // Flows and egress: the rules of one statement, in a row with one comment.
        var flows: [ImportedHost.Flow] = []
        var at = 0
        while at < host.flows.count {
            let comment = comments[at]
            var end = at + 1
            while end < host.flows.count, comments[end] == comment, comment != nil { end += 1 }
            let run = Array(host.flows[at..<end])
            at = end
            // A statement of several ports has a rule per port and pair of ends.
            var ports: [String] = []
            for port in run.flatMap(\.ports) where !ports.contains(port) { ports.append(port) }
            let pairs = Dictionary(grouping: run) { [$0.source, $0.destination] }
            guard let comment, comment.hasPrefix(prefix), let statement = Statement(comment.dropFirst(prefix.count)),
                run.allSatisfy({ $0.kind.rawValue == statement.kind }),
                pairs.values.allSatisfy({ Set($0.flatMap(\.ports)) == Set(ports) }),
                statement.service.map({ service(named: $0, ports: ports) })
                    ?? (Set(statement.ports) == Set(ports) && statement.ports.count == ports.count)
            else {
                flows += run
                continue
            }
            func endpoint(_ names: [String], _ name: String) -> Bool {
                var unique: [String] = []
                for n in names where !unique.contains(n) { unique.append(n) }
                if unique.count == 1 { return rename(unique[0], name) }
                guard !taken.contains(name), !host.groups.contains(where: { $0.name == name }) else {
                    return host.groups.contains { $0.name == name && $0.members == unique }
                }
                host.groups.append(ImportedHost.Group(name: name, members: unique))
                return true
            }
            /// An egress destination: `any`, an address or prefix as written, or an address set.
            func egressDestination(_ values: [String], _ name: String) -> Bool {
                var unique: [String] = []
                for value in values where !unique.contains(value) { unique.append(value) }
                if name == "any" || IPAddress(name) != nil || IPPrefix.parse(Substring(name)).isSuccess {
                    return unique == [name]
                }
                if let known = host.addressSets.first(where: { $0.name == name }) { return known.members == unique }
                guard !taken.contains(name), !host.groups.contains(where: { $0.name == name }) else { return false }
                host.addressSets.append(ImportedHost.Group(name: name, members: unique))
                taken.insert(name)
                return true
            }
            guard endpoint(run.map(\.source), statement.source),
                statement.kind == "egress"
                    ? egressDestination(run.map(\.destination), statement.destination)
                    : endpoint(run.map(\.destination), statement.destination)
            else {
                flows += run
                continue
            }
            flows.append(
                ImportedHost.Flow(
                    kind: run[0].kind, source: statement.source, destination: statement.destination,
                    ports: statement.service == nil ? statement.ports : ports, service: statement.service))
        }
        host.flows = flows
        // The names, everywhere they are used.
        let renamed = { (name: String) in renames[name] ?? name }
        for n in host.networks.indices { host.networks[n].name = renamed(host.networks[n].name) }
        for c in host.containers.indices {
            host.containers[c].name = renamed(host.containers[c].name)
            for a in host.containers[c].attachments.indices {
                host.containers[c].attachments[a].network = renamed(host.containers[c].attachments[a].network)
            }
        }
        // Containers of one name are one container, on each of their networks, where the
        // first of them was found.
        var merged: [ImportedHost.Container] = []
        for container in host.containers {
            guard let at = merged.firstIndex(where: { $0.name == container.name }) else {
                merged.append(container)
                continue
            }
            merged[at].attachments += container.attachments
            merged[at].publishes += container.publishes
            merged[at].exposed += container.exposed
            merged[at].publishAll = merged[at].publishAll || container.publishAll
        }
        host.containers = merged
        for g in host.groups.indices { host.groups[g].members = host.groups[g].members.map(renamed) }
        for f in host.flows.indices {
            host.flows[f].source = renamed(host.flows[f].source)
            host.flows[f].destination = renamed(host.flows[f].destination)
        }
        return host
    }

    /// `KIND SOURCE -> DESTINATION [port PORTS | service NAME]` as a statement's comment
    /// says it.
    struct Statement {
        let kind: String
        let source: String
        let destination: String
        let ports: [String]
        let service: String?

        init?(_ text: Substring) {
            let words = text.split(separator: " ", maxSplits: 4).map(String.init)
            guard words.count == 4 || words.count == 5, words[2] == "->" else { return nil }
            kind = words[0]
            source = words[1]
            destination = words[3]
            ports =
                words.count == 5 && words[4].hasPrefix("port ")
                ? words[4].dropFirst(5).components(separatedBy: ",").map { String($0.filter { $0 != " " }) } : []
            let named = words.count == 5 && words[4].hasPrefix("service ") ? words[4].dropFirst(8) : nil
            service = named.map(String.init)
            guard words.count == 4 || !ports.isEmpty || named?.allSatisfy({ $0 != " " && $0 != "," }) == true
            else { return nil }
        }
    }
}

extension Result {
    fileprivate var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}
