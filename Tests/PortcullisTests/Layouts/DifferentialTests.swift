import Foundation
import PortcullisCompiler
import PortcullisEvaluator
import PortcullisIR
import PortcullisLayouts
import PortcullisNet
import PortcullisPolicy
import PortcullisSyntax
import Testing

/// The layouts promise one meaning for a policy: for every shipped policy and for randomly
/// generated ones, the evaluator's verdict for each flow must be the same on docker-20.10,
/// docker-28 and native, wherever they promise the same thing. (The kernel agrees with the
/// evaluator on every traffic probe: `EvaluatorTests`.)
///
/// Where the layouts differ by design the flow is compared only among those that agree:
/// traffic routed from outside straight to a container address (Docker 20.10 forwards it to
/// a published container port; 28 and native need the DNAT), and containers connecting to a
/// published port with an allow-list (Docker's userland proxy carries them past it; native
/// applies the allow-list to every client), or to a published port of a container that an
/// `allow` or `deny` statement pairs it with (through the proxy, Docker's connection comes from
/// the host and escapes the statement; native judges it by the statement).
@Suite struct DifferentialTests {
    static let layouts = ["docker-20.10", "docker-28", "native"]
    static let hostAddress = IPAddress("192.0.2.1")!
    static let internet = [IPAddress("203.0.113.50")!, IPAddress("198.51.100.7")!]
    static let outsiders = [IPAddress("203.0.113.9")!, IPAddress("198.51.100.20")!]

    /// What a flow is, for deciding which layouts must agree on it.
    enum Kind: String, CaseIterable {
        case betweenContainers = "container to container"
        case toTheInternet = "container to the internet"
        case toPublishedPort = "outside to a published port"
        case routedToContainer = "outside straight to a container"
        case containerToPublishedPort = "container to a published port"
        case containerToRestrictedPort = "container to an allow-listed published port"
        case flowToPublishedPort = "container to a published port, with a flow statement between them"

        var layouts: [String] {
            switch self {
            case .routedToContainer: ["docker-28", "native"]
            case .containerToRestrictedPort, .flowToPublishedPort: ["docker-20.10", "docker-28"]
            default: DifferentialTests.layouts
            }
        }
    }

    struct Flow {
        let kind: Kind
        let packet: Packet
        let text: String
    }

    struct Report {
        var flows = 0
        var disagreements: [String] = []
    }

    /// Compares the layouts on every flow of one policy; layouts that cannot express the policy
    /// are left out.
    static func compare(_ policy: Policy, name: String, into report: inout Report) {
        let explanation = Explanation(policy: policy, hostAddress: hostAddress)
        var evaluators: [String: Evaluator] = [:]
        for layout in layouts {
            guard case .success(let ruleset) = Layouts.named(layout)!.lower(policy, for: .nftables) else { continue }
            evaluators[layout] = Evaluator(ruleset: ruleset, routing: explanation.routing)
        }
        for flow in flows(policy, explanation: explanation) {
            let verdicts = flow.kind.layouts.compactMap { layout in
                evaluators[layout].map { (layout, $0.evaluate(flow.packet).verdict) }
            }
            report.flows += 1
            if Set(verdicts.map(\.1)).count > 1 {
                report.disagreements.append(
                    "\(name): \(flow.kind.rawValue): \(flow.text): "
                        + verdicts.map { "\($0.0) \($0.1.rawValue)" }.joined(separator: ", "))
            }
        }
    }

    /// Every container to every address of every other container, to the internet, and from
    /// outside to each published port, on the ports the policy talks about plus one it doesn't.
    static func flows(_ policy: Policy, explanation: Explanation) -> [Flow] {
        var ports: Set<PortSpec> = [PortSpec(PortRange(9), .tcp), PortSpec(PortRange(9), .udp)]
        for rule in policy.rules {
            ports.formUnion(rule.ports.map { PortSpec(PortRange($0.ports.first), $0.transport) })
        }
        for publish in policy.containers.flatMap(\.publishes) {
            ports.insert(PortSpec(PortRange(publish.containerPorts.first), publish.transport))
        }
        let specs = ports.sorted { ($0.ports.first, $0.transport.rawValue) < ($1.ports.first, $1.transport.rawValue) }
        var flows: [Flow] = []
        func packet(from: Explanation.Endpoint, to address: IPAddress, _ spec: PortSpec) -> Packet {
            Packet(
                inputInterface: from.interface, source: from.address, destination: address, transport: spec.transport,
                destinationPort: spec.ports.first)
        }
        for source in policy.containers {
            for destination in policy.containers where destination.name != source.name {
                for address in destination.attachments.compactMap(\.address4) {
                    guard let from = try? explanation.endpoint(source.name, toward: address) else { continue }
                    for spec in specs {
                        flows.append(
                            Flow(
                                kind: .betweenContainers, packet: packet(from: from, to: address, spec),
                                text: "\(source.name) -> \(destination.name) \(address) \(spec)"))
                    }
                }
            }
            for address in internet {
                guard let from = try? explanation.endpoint(source.name, toward: address) else { continue }
                for spec in specs {
                    flows.append(
                        Flow(
                            kind: .toTheInternet, packet: packet(from: from, to: address, spec),
                            text: "\(source.name) -> \(address) \(spec)"))
                }
            }
        }
        for container in policy.containers {
            guard let (_, network) = container.gatewayAttachment(network: policy.network) else { continue }
            for publish in container.publishes {
                let hostAddress = publish.hostAddress ?? network.hostBinding
                let loopback = IPPrefix(address: IPAddress("127.0.0.0")!, length: 8)
                guard hostAddress.map({ $0.family == .ipv4 && !loopback.contains($0) }) ?? true else { continue }
                let target = hostAddress.flatMap { $0.isUnspecified ? nil : $0 } ?? Self.hostAddress
                let spec = PortSpec(PortRange(publish.hostPorts.first), publish.transport)
                let sources = outsiders + publish.allowedSources.filter { $0.family == .ipv4 }.map(\.address)
                for outsider in sources {
                    guard let from = try? explanation.endpoint("outside:\(outsider)") else { continue }
                    flows.append(
                        Flow(
                            kind: .toPublishedPort, packet: packet(from: from, to: target, spec),
                            text: "\(outsider) -> \(target) \(spec) (\(container.name))"))
                    for address in container.attachments.compactMap(\.address4) {
                        let direct = PortSpec(PortRange(publish.containerPorts.first), publish.transport)
                        flows.append(
                            Flow(
                                kind: .routedToContainer, packet: packet(from: from, to: address, direct),
                                text: "\(outsider) -> \(container.name) \(address) \(direct)"))
                    }
                }
                for client in policy.containers where client.name != container.name {
                    guard let from = try? explanation.endpoint(client.name, toward: target) else { continue }
                    let kind: Kind =
                        !publish.allowedSources.isEmpty
                        ? .containerToRestrictedPort
                        : flowStatement(policy, from: client, to: container)
                            ? .flowToPublishedPort
                            : .containerToPublishedPort
                    flows.append(
                        Flow(
                            kind: kind,
                            packet: packet(from: from, to: target, spec),
                            text: "\(client.name) -> \(target) \(spec) (\(container.name))"))
                }
            }
        }
        return flows
    }

    /// Whether an `allow` or `deny` statement names both containers (directly, by group or by
    /// network).
    static func flowStatement(_ policy: Policy, from client: Container, to server: Container) -> Bool {
        func names(_ endpoint: Endpoint, _ container: Container) -> Bool {
            switch endpoint {
            case .container(let name): name == container.name
            case .network(let name): container.attachments.contains { $0.network == name }
            }
        }
        return policy.rules.contains { rule in
            rule.kind != .egress && rule.sources.contains { names($0, client) }
                && rule.destinations.contains { names($0, server) }
        }
    }

    static func check(_ text: String, name: String) throws -> Policy {
        let (loaded, diagnostics) = PolicyLoader.load(name) { _ in text }
        try #require(diagnostics.isEmpty, "\(diagnostics)")
        switch Checker.check(loaded) {
        case .success(let policy): return policy
        case .failure(let error):
            Issue.record("the generator wrote an invalid policy:\n\(text)\n\(error.diagnostics)")
            throw error
        }
    }

    @Test func shippedPoliciesMeanTheSameOnEveryLayout() throws {
        var report = Report()
        let policies = try FileManager.default.contentsOfDirectory(atPath: Repo.policies).filter {
            $0.hasSuffix(".policy")
        }.sorted()
        for file in policies {
            guard case .success(let (policy, _)) = Compiler().check(Repo.policies + "/" + file) else {
                Issue.record("\(file) does not compile")
                continue
            }
            Self.compare(policy, name: file, into: &report)
        }
        print("differential, shipped policies: \(report.flows) flows, \(report.disagreements.count) disagreements")
        #expect(report.flows > 500)
        #expect(report.disagreements.isEmpty, "\(report.disagreements.prefix(20).joined(separator: "\n"))")
    }

    @Test func randomPoliciesMeanTheSameOnEveryLayout() throws {
        let seed =
            ProcessInfo.processInfo.environment["PORTCULLIS_DIFFERENTIAL_SEED"].flatMap { UInt64($0) } ?? 20_261_129
        var generator = PolicyGenerator(seed: seed)
        var report = Report()
        for index in 0..<150 {
            let text = generator.policy()
            let policy = try Self.check(text, name: "random-\(index).policy")
            var one = Report()
            Self.compare(policy, name: "random-\(index)", into: &one)
            report.flows += one.flows
            if !one.disagreements.isEmpty {
                report.disagreements += one.disagreements
                print("seed \(seed), policy \(index):\n\(text)")
            }
        }
        print(
            "differential, 150 random policies (seed \(seed), PORTCULLIS_DIFFERENTIAL_SEED replays): \(report.flows) flows, \(report.disagreements.count) disagreements"
        )
        #expect(report.flows > 10000)
        #expect(
            report.disagreements.isEmpty, "seed \(seed): \(report.disagreements.prefix(20).joined(separator: "\n"))")
    }
}

/// Random valid policies: networks with random ICC, internal and masquerade settings,
/// containers on one or two networks with publishes (some allow-listed), a group, and allow,
/// deny and egress rules between them.
struct PolicyGenerator {
    var random: SeededGenerator
    /// The outside world the policies talk about: documentation addresses for the evaluator,
    /// the traffic harness's own (198.18.0.0/15) for policies applied in namespaces.
    let office: String
    let fromChoices: [String]
    let egressChoices: [String]

    init(seed: UInt64, forNamespaces: Bool = false) {
        random = SeededGenerator(seed: seed)
        if forNamespaces {
            office = "198.19.0.10, 198.19.0.16/28"
            fromChoices = ["office", "198.19.0.10", "198.19.0.0/24"]
            egressChoices = ["any", "office", ContainerHost.internetAddress]
        } else {
            office = "203.0.113.9, 198.51.100.0/28"
            fromChoices = ["office", "203.0.113.9", "198.51.100.0/24"]
            egressChoices = ["any", "office", "203.0.113.50"]
        }
    }

    mutating func below(_ bound: Int) -> Int { Int(random.next() % UInt64(bound)) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }

    mutating func policy() -> String {
        var lines: [String] = []
        var host: [String] = []
        if chance(25) { host.append("icc deny") }
        if chance(25) { host.append("userland-proxy off") }
        if chance(30) { host.append("external eth0") }
        if !host.isEmpty { lines += ["host {"] + host.map { "    " + $0 } + ["}"] }
        lines.append("addresses office { \(office) }")

        struct Net {
            let name: String
            let octet: Int
            let `internal`: Bool
        }
        var networks: [Net] = []
        for index in 0..<(1 + below(3)) {
            let name = "net\(index)"
            let isInternal = index > 0 && chance(25)
            let octet = 20 + index
            networks.append(Net(name: name, octet: octet, internal: isInternal))
            lines += ["network \(name) {", "    bridge br-\(name)", "    subnet 198.18.\(octet).0/24"]
            if chance(30) { lines.append("    icc \(chance(50) ? "deny" : "allow")") }
            if isInternal {
                lines.append("    internal")
            } else if chance(10) {
                lines.append("    masquerade off")
            }
            lines.append("}")
        }
        var containers: [(name: String, outbound: Bool)] = []
        /// The networks of each container an endpoint stands for.
        var networksOf: [String: [[Net]]] = Dictionary(uniqueKeysWithValues: networks.map { ($0.name, [[$0]]) })
        var hostPort = 8000
        for index in 0..<(2 + below(4)) {
            let name = "c\(index)"
            var attached = [pick(networks)]
            if chance(30), let other = networks.first(where: { $0.name != attached[0].name }) { attached.append(other) }
            lines.append("container \(name) {")
            for network in attached { lines.append("    attach \(network.name) 198.18.\(network.octet).\(10 + index)") }
            let outbound = attached.contains { !$0.internal }
            if outbound {
                for _ in 0..<below(3) {
                    hostPort += 1 + below(3)
                    let containerPort = pick([80, 443, 5432, 8000])
                    let transport = chance(75) ? "tcp" : "udp"
                    let from = chance(25) ? " from \(pick(fromChoices))" : ""
                    lines.append("    publish \(hostPort) -> \(containerPort)/\(transport)\(from)")
                }
            }
            lines.append("}")
            containers.append((name, outbound))
            networksOf[name] = [attached]
        }
        var endpoints = containers.map(\.name) + networks.map(\.name)
        if containers.count >= 3 {
            lines.append("group pair { \(containers[0].name), \(containers[1].name) }")
            endpoints.append("pair")
            networksOf["pair"] = (networksOf[containers[0].name] ?? []) + (networksOf[containers[1].name] ?? [])
        }
        let isContainer = Set(containers.map(\.name))
        /// An allow between ends that share no network must scope an end that is only on
        /// internal networks (the checker's rule); a container's end may be scoped at random.
        func allow(_ source: String, _ destination: String) -> String? {
            var ends = [(source, networksOf[source] ?? []), (destination, networksOf[destination] ?? [])]
            for at in ends.indices where isContainer.contains(ends[at].0) && chance(25) {
                let network = pick(ends[at].1[0])
                ends[at] = ("\(ends[at].0)@\(network.name)", [[network]])
            }
            for source in ends[0].1 {
                for destination in ends[1].1 where Set(source.map(\.name)).isDisjoint(with: destination.map(\.name)) {
                    for (at, networks) in [(0, source), (1, destination)]
                    where !ends[at].0.contains("@") && networks.allSatisfy(\.internal) {
                        guard isContainer.contains(ends[at].0) else { return nil }
                        ends[at].0 += "@\(networks[0].name)"
                    }
                }
            }
            return "allow \(ends[0].0) -> \(ends[1].0)"
        }
        for _ in 0..<below(5) {
            let ports =
                chance(60) ? " port \(pick(["80/tcp", "443/tcp", "5432/tcp", "8000/tcp", "53/udp", "80-443/tcp"]))" : ""
            switch below(3) {
            case 0:
                guard let statement = allow(pick(endpoints), pick(endpoints)) else { continue }
                lines.append(statement + ports)
            case 1: lines.append("deny \(pick(endpoints)) -> \(pick(endpoints))\(ports)")
            default:
                let sources = containers.filter(\.outbound).map(\.name)
                guard !sources.isEmpty else { continue }
                lines.append("egress \(pick(sources)) -> \(pick(egressChoices))\(ports)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
