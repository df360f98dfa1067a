import PortcullisNet
import PortcullisPolicy
import PortcullisSyntax

/// What is legal but likely a mistake in a checked policy: names declared and never used,
/// flows no packet can reach (an earlier flow decides everything they match), allows that open
/// an internal network to another one, and ports published to everyone on a host with an
/// uplink. Each finding is a warning at the statement it is about.
public struct PolicyLint {
    let policy: Policy
    let statements: [Statement]

    public init(policy: Policy, statements: [Statement]) {
        self.policy = policy
        self.statements = statements
    }

    public func findings() -> [Diagnostic] {
        (unusedNames() + shadowedFlows() + allowsIntoInternalNetworks() + publishesToEveryone())
            .sorted { $0.range.start < $1.range.start }
    }

    /// Groups, address sets and services no statement names.
    func unusedNames() -> [Diagnostic] {
        let words = Set(
            (policy.rules.map(\.text) + policy.containers.flatMap { $0.publishes.map(\.allowedSourcesText) }
                + statements.compactMap { statement -> [String]? in
                    guard case .list(let list) = statement else { return nil }
                    return list.items.map(\.value)
                }.flatMap { $0 })
                .flatMap { $0.split(whereSeparator: { " ,".contains($0) }).map(String.init) })
        return statements.compactMap { statement in
            guard case .list(let list) = statement, !words.contains(list.name.value) else { return nil }
            return Diagnostic(
                "\(list.kind.rawValue) '\(list.name.value)' is never used", at: list.name.range,
                hint: "name it in a statement, or remove it", severity: .warning)
        }
    }

    /// allow and deny statements that an earlier one covers entirely: the first match decides,
    /// so the later one never does.
    func shadowedFlows() -> [Diagnostic] {
        let flows = policy.rules.filter { $0.kind != .egress }
        return flows.enumerated().compactMap { index, flow in
            guard let earlier = flows[..<index].first(where: { covers($0, flow) }) else { return nil }
            return Diagnostic(
                "'\(flow.text)' never decides: '\(earlier.text)' (line \(earlier.origin.location.line)) matches all it matches",
                at: SourceRange(start: flow.origin.location, length: flow.text.utf8.count),
                hint: "remove it, or move it above the wider statement", severity: .warning)
        }
    }

    func covers(_ wide: PolicyRule, _ narrow: PolicyRule) -> Bool {
        containers(wide.sources).isSuperset(of: containers(narrow.sources))
            && containers(wide.destinations).isSuperset(of: containers(narrow.destinations))
            && (wide.ports.isEmpty
                || (!narrow.ports.isEmpty
                    && narrow.ports.allSatisfy { port in
                        wide.ports.contains {
                            $0.transport == port.transport && $0.ports.first <= port.ports.first
                                && port.ports.last <= $0.ports.last
                        }
                    }))
    }

    /// The containers an endpoint list stands for (a network: every container on it).
    func containers(_ endpoints: [Endpoint]) -> Set<String> {
        Set(
            endpoints.flatMap { endpoint -> [String] in
                switch endpoint {
                case .container(let name): [name]
                case .network(let name):
                    policy.containers.filter { $0.attachments.contains { $0.network == name } }.map(\.name)
                }
            })
    }

    /// allow statements from a container to one on an internal network it is not on itself.
    func allowsIntoInternalNetworks() -> [Diagnostic] {
        policy.rules.filter { $0.kind == .allow }.compactMap { rule in
            let crossings = containers(rule.sources).flatMap { source in
                containers(rule.destinations).flatMap { destination in
                    internalNetworks(of: destination).subtracting(networks(of: source)).map {
                        "\(source) -> \(destination) into \($0)"
                    }
                }
            }.sorted()
            guard let first = crossings.first else { return nil }
            return Diagnostic(
                "'\(rule.text)' opens an internal network to another network (\(first)"
                    + (crossings.count > 1 ? " and \(crossings.count - 1) more" : "") + ")",
                at: SourceRange(start: rule.origin.location, length: rule.text.utf8.count),
                hint:
                    "internal networks are usually meant to be reached from themselves only; make sure this is wanted",
                severity: .warning)
        }
    }

    func networks(of container: String) -> Set<String> {
        Set(policy.container(container)?.attachments.map(\.network) ?? [])
    }

    func internalNetworks(of container: String) -> Set<String> {
        networks(of: container).filter { policy.network($0)?.internal == true }
    }

    /// Publishes without a `from` allow-list on a host with an `external` uplink.
    func publishesToEveryone() -> [Diagnostic] {
        guard let uplink = policy.host.externalInterfaces.first else { return [] }
        return policy.containers.flatMap { container in
            container.publishes.filter { publish in
                publish.allowedSources.isEmpty
                    && !(publish.hostAddress.map { IPPrefix.loopback($0.family).contains($0) } ?? false)
            }.map { publish in
                Diagnostic(
                    "'\(publish.origin.statement)' is open to everyone who reaches \(uplink)",
                    at: SourceRange(start: publish.origin.location, length: publish.origin.statement.utf8.count),
                    hint: "add 'from ADDRESSES' to name who may connect, or publish on 127.0.0.1",
                    severity: .warning)
            }
        }
    }
}

extension Application {
    /// Lints a policy: its warnings and the lint's findings; findings exit 1.
    public func runLint(_ path: String) throws -> RunStatus {
        let (policy, sources) = try check(path)
        let (loaded, _) = PolicyLoader.load(path)
        let findings = PolicyLint(policy: policy, statements: loaded.statements).findings()
        for finding in findings { console.note(finding.rendered(sources: sources)) }
        console.output(
            findings.isEmpty
                ? "\(path): no findings\n" : "\(path): \(findings.count) finding\(findings.count == 1 ? "" : "s")\n")
        return findings.isEmpty ? .clean : .findings
    }
}
