import Foundation
import PortcullisCompiler
import PortcullisEvaluator
import PortcullisIR
import PortcullisLayouts
import PortcullisNet
import PortcullisPolicy
import PortcullisSyntax
import Testing

/// The evaluator against the kernel on random policies: each generated host is built from
/// network namespaces, applied with docker-20.10 (iptables) and then native (nftables), and a
/// sample of flows (between containers, to the internet, from outside to published ports and
/// straight to containers) must connect exactly where the evaluator says. Together with
/// `DifferentialTests` (layouts agree with each other) this ties all three to real packets.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct KernelDifferentialTests {
    static let targets = [("docker-20.10", "iptables"), ("native", "nftables")]
    /// Every container answers on these; the internet on the egress ones.
    static let containerPorts = ["80", "443", "5432", "8000", "9", "53"].flatMap { [$0, $0 + "/udp"] }
    static let internetPorts = ["80", "443", "9", "53"].flatMap { [$0, $0 + "/udp"] }

    struct Flow {
        let from: String  // a container name or "outside"
        let source: String?  // for outside: the address to send from
        let to: String
        let port: String

        var text: String { "\(from)\(source.map { " (\($0))" } ?? "") -> \(to):\(port)" }
    }

    /// A deterministic sample of the flows the policy talks about.
    static func flows(_ policy: Policy, generator: inout PolicyGenerator) -> [Flow] {
        var flows: [Flow] = []
        let containers = policy.containers
        for _ in 0..<6 {
            let source = generator.pick(containers)
            let destination = generator.pick(containers)
            guard source.name != destination.name, let address = generator.pick(destination.attachments).address4
            else { continue }
            flows.append(Flow(from: source.name, source: nil, to: "\(address)", port: generator.pick(containerPorts)))
        }
        for _ in 0..<3 {
            flows.append(
                Flow(
                    from: generator.pick(containers).name, source: nil, to: ContainerHost.internetAddress,
                    port: generator.pick(internetPorts)))
        }
        let outsiders = [ContainerHost.uplinkOutside, "198.19.0.10", "198.19.0.20"]
        for container in containers {
            for publish in container.publishes where publish.hostAddress == nil {
                let port = "\(publish.hostPorts.first)" + (publish.transport == .udp ? "/udp" : "")
                flows.append(
                    Flow(from: "outside", source: generator.pick(outsiders), to: ContainerHost.uplinkHost, port: port))
                if let address = container.attachments.first?.address4 {
                    let direct = "\(publish.containerPorts.first)" + (publish.transport == .udp ? "/udp" : "")
                    flows.append(
                        Flow(from: "outside", source: generator.pick(outsiders), to: "\(address)", port: direct))
                }
            }
        }
        return flows
    }

    @Test func randomPoliciesAgreeWithTheKernel() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let seed = ProcessInfo.processInfo.environment["PORTCULLIS_DIFFERENTIAL_SEED"].flatMap { UInt64($0) } ?? 7
        var generator = PolicyGenerator(seed: seed, forNamespaces: true)
        var checked = 0
        var disagreements: [String] = []
        for index in 0..<3 {
            let text = generator.policy()
            let directory = NSTemporaryDirectory() + "portcullis-kdiff-\(getpid())-\(index)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let path = directory + "/random.policy"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let policy = try DifferentialTests.check(text, name: path)
            let flows = Self.flows(policy, generator: &generator)
            let machine = try ContainerHost(
                policy: policy, outsideAddresses: ["198.19.0.10", "198.19.0.20"])
            for name in machine.containers.keys.sorted() {
                try machine.serve(in: machine.containers[name]!, ports: Self.containerPorts)
            }
            try machine.serve(in: machine.internet, ports: Self.internetPorts)
            let explanation = Explanation(policy: policy, hostAddress: IPAddress(ContainerHost.uplinkHost)!)
            for (number, (layout, backend)) in Self.targets.enumerated() {
                if number > 0 {
                    let back = machine.host.exec([
                        CommandLineTests.binary, "rollback", "--state-dir", directory + "/state",
                    ])
                    try #require(back.status == 0, "\(back.stderr)")
                }
                let apply = machine.host.exec([
                    CommandLineTests.binary, "apply", path, "--layout", layout, "--backend", backend, "--state-dir",
                    directory + "/state",
                ])
                try #require(apply.status == 0, "\(layout): \(apply.stderr)\n\(text)")
                let ruleset = try Layouts.named(layout)!.lower(policy, for: Firewall(rawValue: backend)!).get()
                let evaluator = Evaluator(ruleset: ruleset, routing: explanation.routing)
                for flow in flows {
                    let destination = IPAddress(flow.to)!
                    let (interface, source): (String, IPAddress)
                    if flow.from == "outside" {
                        (interface, source) = ("eth0", IPAddress(flow.source!)!)
                    } else {
                        let endpoint = try explanation.endpoint(flow.from, toward: destination)
                        (interface, source) = (endpoint.interface, endpoint.address)
                    }
                    let parts = flow.port.split(separator: "/")
                    let verdict = evaluator.evaluate(
                        Packet(
                            inputInterface: interface, source: source, destination: destination,
                            transport: parts.count > 1 ? .udp : .tcp, destinationPort: UInt16(parts[0])!)
                    ).verdict
                    let namespace = flow.from == "outside" ? machine.outside : machine.containers[flow.from]!
                    let connected = machine.connects(from: namespace, to: flow.to, port: flow.port, source: flow.source)
                    checked += 1
                    if connected != (verdict == .accept) {
                        disagreements.append(
                            "policy \(index), \(layout): \(flow.text): kernel \(connected ? "connects" : "drops"), evaluator \(verdict.rawValue)"
                        )
                    }
                }
            }
            if !disagreements.isEmpty { print("seed \(seed), policy \(index):\n\(text)") }
        }
        print("kernel differential (seed \(seed)): \(checked) flows, \(disagreements.count) disagreements")
        #expect(checked > 40)
        #expect(disagreements.isEmpty, "\(disagreements.joined(separator: "\n"))")
    }
}
