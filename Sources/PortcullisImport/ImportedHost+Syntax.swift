import PortcullisNet
import PortcullisSyntax

extension ImportedHost {
    /// The policy that says this host, as a syntax tree (printed, it is in canonical form):
    /// the header above the host block, what was assumed and not imported at the end.
    /// `explain` checks the same tree.
    public func syntax(path: String) -> SyntaxFile {
        func words(_ values: [String]) -> [Located<String>] { values.map { .unplaced($0) } }
        func setting(_ keyword: String, _ values: [String], _ clauses: [(String, [String])] = []) -> Setting {
            Setting(
                keyword: .unplaced(keyword), values: words(values),
                clauses: clauses.filter { !$0.1.isEmpty }.map { Clause(keyword: .unplaced($0.0), values: words($0.1)) })
        }
        func comments(_ lines: [String], _ prefix: String = "") -> [Trivia] {
            lines.map { .comment("# " + prefix + $0) }
        }

        let host = settings.map { hostSetting -> Setting in
            switch hostSetting {
            case .layout(let name): return setting("layout", [name])
            case .backend(let name): return setting("backend", [name])
            case .userlandProxyOff: return setting("userland-proxy", ["off"])
            case .ip6tablesOn: return setting("ip6tables", ["on"])
            case .forwardPolicy(let policy): return setting("forward-policy", [policy])
            case .external(let interfaces): return setting("external", interfaces)
            case .logDrops(let rate, let prefix):
                return setting("log-drops", [], [("rate", rate.map { [$0] } ?? []), ("prefix", [prefix])])
            case .countDropsOn: return setting("count-drops", ["on"])
            case .unknownContainersDrop: return setting("unknown-containers", ["drop"])
            }
        }
        var statements: [Statement] = [
            .block(Block(kind: .host, name: nil, settings: host, leadingTrivia: comments(header) + [.blankLine]))
        ]
        for (at, set) in addressSets.enumerated() {
            statements.append(
                .list(
                    ListBlock(
                        kind: .addresses, name: .unplaced(set.name),
                        entries: set.members.map { ListEntry(.unplaced($0)) },
                        leadingTrivia: at == 0 ? [] : [])))
        }
        for service in services {
            statements.append(
                .list(
                    ListBlock(
                        kind: .service, name: .unplaced(service.name),
                        entries: service.members.map { ListEntry(.unplaced($0)) })))
        }
        for network in networks {
            var lines = [setting("bridge", [network.bridge])] + network.subnets.map { setting("subnet", [$0]) }
            lines += network.gateways.map { setting("gateway", [$0]) }
            if network.internal { lines.append(setting("internal", [])) }
            if network.iccDeny { lines.append(setting("icc", ["deny"])) }
            if network.masqueradeOff { lines.append(setting("masquerade", ["off"])) }
            if let mode = network.gatewayMode { lines.append(setting("gateway-mode", [mode])) }
            if let address = network.hostBinding { lines.append(setting("host-binding", [address])) }
            statements.append(.block(Block(kind: .network, name: .unplaced(network.name), settings: lines)))
        }
        for container in containers {
            let attachments = container.attachments.map {
                setting("attach", [$0.network, $0.address], [("mac", $0.mac.map { [$0] } ?? [])])
            }
            let publishes = container.publishes.map { publish in
                let clauses = [("from", publish.sources), ("chosen", publish.chosen.map { [$0] } ?? [])]
                return publish.hostSide.map { setting("publish", [$0], [("->", [publish.containerSide])] + clauses) }
                    ?? setting("publish", [publish.containerSide], clauses)
            }
            let exposed = container.exposed.isEmpty ? [] : [setting("expose", container.exposed)]
            let publishAll = container.publishAll ? [setting("publish-all", [])] : []
            statements.append(
                .block(
                    Block(
                        kind: .container, name: .unplaced(container.name),
                        settings: attachments + publishes + exposed + publishAll)))
        }
        for (at, group) in groups.enumerated() {
            statements.append(
                .list(
                    ListBlock(
                        kind: .group, name: .unplaced(group.name),
                        entries: group.members.map { ListEntry(.unplaced($0)) },
                        leadingTrivia: at == 0 ? [.blankLine] : [])))
        }
        for (at, flow) in scopedFlows().enumerated() {
            let ports = flow.service.map { ("service", [$0]) } ?? ("port", flow.ports)
            var rule = setting(flow.kind.rawValue, [flow.source], [("->", [flow.destination]), ports])
            rule.leadingTrivia =
                (at == 0 ? [.blankLine] + comments(flowsHeading.map { [$0] } ?? []) : [])
                + comments(flow.comment.map { [$0] } ?? [])
            statements.append(.rule(rule))
        }
        return SyntaxFile(
            path: path, statements: statements,
            endTrivia: comments(assumed, "assumed: ") + comments(notImported, "not imported: "))
    }
}
