import Foundation
import PortcullisCompiler
import PortcullisPolicy
import PortcullisSyntax
import Testing

/// Real packets through applied rulesets: each scenario's policy is applied with
/// `portcullis apply` inside the host namespace of a `ContainerHost`, and TCP connections
/// between the namespaces must succeed exactly where the policy says, for every layout and
/// backend that can express the policy.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct TrafficTests {
    struct Probe: Sendable {
        let what: String
        let from: String
        let to: String
        let port: String
        var source: String? = nil
        let expected: Bool
        /// Layouts on which the opposite is expected (Docker versions differ).
        var except: Set<String> = []

        func expected(on layout: String) -> Bool { except.contains(layout) ? !expected : expected }
    }

    struct Scenario: Sendable, CustomTestStringConvertible {
        let name: String
        let policy: String
        let outsideAddresses: [String]
        let servers: [String: [String]]
        let probes: [Probe]
        let targets: [(layout: String, backend: String)]
        var testDescription: String { name }
    }

    static let uplink = ContainerHost.uplinkHost
    static let internet = ContainerHost.internetAddress

    static let webStack = Scenario(
        name: "flows, allow-lists and egress",
        policy: """
            host {
                external eth0
            }
            addresses office { 198.19.0.10 }
            network front {
                bridge br-front
                subnet 198.18.101.0/24
            }
            network back {
                bridge br-back
                subnet 198.18.102.0/24
                icc deny
            }
            container web {
                attach front 198.18.101.10
                publish 8080 -> 80/tcp
                publish 8443 -> 443/tcp from office
                publish 5353 -> 53/udp
            }
            container worker {
                attach front 198.18.101.20
            }
            container api {
                attach back 198.18.102.10
            }
            container db {
                attach back 198.18.102.20
            }
            allow web -> api port 8000/tcp
            egress worker -> any port 9999/tcp
            """,
        outsideAddresses: ["198.19.0.10"],
        servers: [
            "web": ["80", "81", "443", "53/udp"], "api": ["8000", "8001"], "db": ["5432"],
            "internet": ["9998", "9999", "9999/udp"],
        ],
        probes: [
            Probe(what: "published port, anyone", from: "outside", to: uplink, port: "8080", expected: true),
            Probe(
                what: "allow-listed port, office", from: "outside", to: uplink, port: "8443", source: "198.19.0.10",
                expected: true),
            Probe(what: "allow-listed port, elsewhere", from: "outside", to: uplink, port: "8443", expected: false),
            Probe(what: "unpublished port, routed", from: "outside", to: "198.18.101.10", port: "81", expected: false),
            Probe(
                what: "published port, routed (Docker 20.10 allows; 28, 29 and native drop)", from: "outside",
                to: "198.18.101.10",
                port: "80",
                expected: true,
                except: ["docker-28", "docker-29", "native"]),
            Probe(
                what: "allow-listed port, routed", from: "outside", to: "198.18.101.10", port: "443",
                source: "198.19.0.10", expected: false),
            Probe(what: "allowed flow across networks", from: "web", to: "198.18.102.10", port: "8000", expected: true),
            Probe(what: "other port across networks", from: "web", to: "198.18.102.10", port: "8001", expected: false),
            Probe(
                what: "reverse direction across networks", from: "api", to: "198.18.101.10", port: "80", expected: false
            ),
            Probe(what: "same network, icc on", from: "worker", to: "198.18.101.10", port: "80", expected: true),
            Probe(
                what: "same network, allow-listed port directly", from: "worker", to: "198.18.101.10", port: "443",
                expected: true),
            Probe(what: "same network, icc deny", from: "api", to: "198.18.102.20", port: "5432", expected: false),
            Probe(what: "egress, allowed port", from: "worker", to: internet, port: "9999", expected: true),
            Probe(what: "egress, other port", from: "worker", to: internet, port: "9998", expected: false),
            Probe(what: "unrestricted egress", from: "web", to: internet, port: "9998", expected: true),
            Probe(what: "published UDP port", from: "outside", to: uplink, port: "5353/udp", expected: true),
            Probe(what: "the host to a container", from: "host", to: "198.18.101.10", port: "80", expected: true),
            Probe(
                what: "the host to a published port on its own address", from: "host", to: uplink, port: "8080",
                expected: true),
            Probe(
                what: "egress, allowed port over the other protocol", from: "worker", to: internet, port: "9999/udp",
                expected: false),
            Probe(what: "unrestricted egress over UDP", from: "web", to: internet, port: "9999/udp", expected: true),
        ],
        targets: [
            ("docker-20.10", "iptables"), ("docker-20.10", "nftables"), ("docker-20.10", "nftables-json"),
            ("docker-28", "iptables"), ("docker-28", "nftables"), ("docker-29", "iptables"), ("docker-29", "nftables"),
            ("docker-29", "nftables-json"), ("native", "nftables"), ("native", "nftables-json"),
        ])

    static let singleBridge = Scenario(
        name: "Docker 1.5 single bridge",
        policy: """
            host {
                icc deny
            }
            network bridge {
                bridge docker0
                subnet 198.18.110.0/24
            }
            container app {
                attach bridge 198.18.110.2
                publish 8080 -> 80/tcp from 198.19.0.10
            }
            container cache {
                attach bridge 198.18.110.3
            }
            container batch {
                attach bridge 198.18.110.4
            }
            allow app -> cache port 6379/tcp
            egress batch -> 198.19.1.2 port 9999/tcp
            """,
        outsideAddresses: ["198.19.0.10"],
        servers: ["app": ["80"], "cache": ["6379", "6380"], "internet": ["9998", "9999"]],
        probes: [
            Probe(
                what: "allow-listed publish, allowed source", from: "outside", to: uplink, port: "8080",
                source: "198.19.0.10", expected: true),
            Probe(
                what: "allow-listed publish, other source", from: "outside", to: uplink, port: "8080", expected: false),
            Probe(what: "icc deny, allowed flow", from: "app", to: "198.18.110.3", port: "6379", expected: true),
            Probe(what: "icc deny, other port", from: "app", to: "198.18.110.3", port: "6380", expected: false),
            Probe(what: "icc deny, other pair", from: "batch", to: "198.18.110.3", port: "6379", expected: false),
            Probe(what: "egress, allowed", from: "batch", to: internet, port: "9999", expected: true),
            Probe(what: "egress, other port", from: "batch", to: internet, port: "9998", expected: false),
            Probe(what: "unrestricted egress", from: "cache", to: internet, port: "9998", expected: true),
        ],
        targets: [
            ("docker-1.5", "iptables"), ("docker-1.5", "nftables"), ("docker-20.10", "iptables"),
            ("docker-20.10", "nftables"), ("docker-29", "nftables"), ("native", "nftables"),
        ])

    static let internalAndHairpin = Scenario(
        name: "internal networks and hairpin without the userland proxy",
        policy: """
            host {
                userland-proxy off
            }
            network front {
                bridge br-front
                subnet 198.18.120.0/24
            }
            network data {
                bridge br-data
                subnet 198.18.121.0/24
                internal
            }
            container app {
                attach front 198.18.120.2
                attach data 198.18.121.2
                publish 8080 -> 80/tcp
            }
            container db {
                attach data 198.18.121.3
            }
            container other {
                attach front 198.18.120.3
            }
            """,
        outsideAddresses: [],
        servers: ["app": ["80"], "db": ["5432"], "internet": ["9999"]],
        probes: [
            Probe(
                what: "hairpin: a container through its own published port", from: "app", to: uplink, port: "8080",
                expected: true),
            Probe(
                what: "a neighbour through the published port", from: "other", to: uplink, port: "8080", expected: true),
            Probe(what: "published port from outside", from: "outside", to: uplink, port: "8080", expected: true),
            Probe(
                what: "internal network, same network", from: "app", to: "198.18.121.3", port: "5432", expected: true),
            Probe(
                what: "internal network, from another network", from: "other", to: "198.18.121.3", port: "5432",
                expected: false),
            Probe(what: "internal network, to the outside", from: "db", to: internet, port: "9999", expected: false),
            Probe(what: "normal network, to the outside", from: "other", to: internet, port: "9999", expected: true),
        ],
        targets: [
            ("docker-20.10", "iptables"), ("docker-20.10", "nftables"), ("docker-28", "iptables"),
            ("docker-29", "nftables"), ("native", "nftables"),
        ])

    /// A container on an edge and an internal network: an unscoped allow reaches it only on the
    /// network the two ends share, never through the edge into the internal network; a scoped
    /// one (`app@data`) crosses exactly where it says.
    static let flowsStayOnTheirNetworks = Scenario(
        name: "flows stay on the networks they name",
        policy: """
            network edge {
                bridge br-edge
                subnet 198.18.130.0/24
                icc deny
            }
            network data {
                bridge br-data
                subnet 198.18.131.0/24
                internal
                icc deny
            }
            container proxy {
                attach edge 198.18.130.2
            }
            container app {
                attach edge 198.18.130.3
                attach data 198.18.131.3
            }
            container db {
                attach data 198.18.131.4
            }
            allow proxy -> app port 8080/tcp
            allow app -> db port 5432/tcp
            allow proxy -> app@data port 9090/tcp
            """,
        outsideAddresses: [],
        servers: ["app": ["8080", "9090"], "db": ["5432"]],
        probes: [
            Probe(
                what: "allowed, on the shared network", from: "proxy", to: "198.18.130.3", port: "8080", expected: true),
            Probe(
                what: "allowed port, but into the internal network", from: "proxy", to: "198.18.131.3", port: "8080",
                expected: false),
            Probe(
                what: "allowed, on the internal network", from: "app", to: "198.18.131.4", port: "5432", expected: true),
            Probe(what: "not allowed at all", from: "proxy", to: "198.18.131.4", port: "5432", expected: false),
            Probe(
                what: "scoped into the internal network", from: "proxy", to: "198.18.131.3", port: "9090",
                expected: true),
            Probe(what: "scoped port, edge address", from: "proxy", to: "198.18.130.3", port: "9090", expected: false),
        ],
        targets: [("docker-20.10", "iptables"), ("docker-28", "iptables"), ("native", "nftables")])

    static let cases: [(Scenario, String, String)] = [
        webStack, singleBridge, internalAndHairpin, flowsStayOnTheirNetworks,
    ].flatMap { scenario in
        scenario.targets.map { (scenario, $0.layout, $0.backend) }
    }

    @Test(arguments: cases)
    func connectionsFollowThePolicy(_ scenario: Scenario, _ layout: String, _ backend: String) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let directory = NSTemporaryDirectory() + "portcullis-traffic-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let policyPath = directory + "/traffic.policy"
        try scenario.policy.write(toFile: policyPath, atomically: true, encoding: .utf8)
        let (loaded, diagnostics) = PolicyLoader.load(policyPath)
        try #require(diagnostics.isEmpty)
        let policy = try Checker.check(loaded).get()
        let machine = try ContainerHost(policy: policy, outsideAddresses: scenario.outsideAddresses)
        let apply = machine.host.exec([
            CommandLineTests.binary, "apply", policyPath, "--layout", layout, "--backend", backend, "--state-dir",
            directory + "/state",
        ])
        try #require(apply.status == 0, "\(apply.stderr)")
        for (name, ports) in scenario.servers {
            try machine.serve(in: name == "internet" ? machine.internet : machine.containers[name]!, ports: ports)
        }
        for probe in scenario.probes {
            let namespace =
                switch probe.from {
                case "outside": machine.outside
                case "host": machine.host
                default: machine.containers[probe.from]!
                }
            let connected = machine.connects(from: namespace, to: probe.to, port: probe.port, source: probe.source)
            let what = "\(layout)/\(backend): \(probe.what): \(probe.from) -> \(probe.to):\(probe.port)"
            #expect(connected == probe.expected(on: layout), "\(what)")
            // explain, on the same rules, says what the kernel did.
            let from = probe.from == "outside" ? "outside:\(probe.source ?? ContainerHost.uplinkOutside)" : probe.from
            let explained = inProcess { application in
                let report = try application.explain(
                    ExplainRequest(
                        policy: policyPath, from: from, to: probe.to, port: probe.port, layout: layout,
                        backend: backend, hostAddress: Self.uplink))
                application.console.output(report.evaluation.verdict.rawValue)
                return .clean
            }
            #expect(explained.stdout == (connected ? "accept" : "drop"), "explain: \(what)\n\(explained.stderr)")
        }
    }
}
