import Foundation
import PortcullisCompiler
import PortcullisLayouts
import PortcullisPolicy
import PortcullisRender
import PortcullisSyntax
import Testing

/// Real packets through compiled rulesets: a policy is compiled, loaded into the host namespace
/// of a `ContainerHost`, and TCP connections between the namespaces must succeed exactly where
/// the policy says. Both backends must give the same answers.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct TrafficTests {
    static let policy = """
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
        """

    /// (description, from, to address, port, source address, expected)
    typealias Probe = (String, String, String, Int, String?, Bool)

    static let probes: [Probe] = [
        ("published port, anyone", "outside", ContainerHost.uplinkHost, 8080, nil, true),
        ("allow-listed port, from the office", "outside", ContainerHost.uplinkHost, 8443, "198.19.0.10", true),
        ("allow-listed port, from elsewhere", "outside", ContainerHost.uplinkHost, 8443, nil, false),
        ("unpublished container port, routed from outside", "outside", "198.18.101.10", 81, nil, false),
        (
            "published container port, routed from outside (Docker 20.10 allows it)", "outside", "198.18.101.10", 80,
            nil, true
        ),
        ("allow-listed container port, routed from outside", "outside", "198.18.101.10", 443, "198.19.0.10", false),
        ("allowed flow across networks", "web", "198.18.102.10", 8000, nil, true),
        ("other port across networks (isolation)", "web", "198.18.102.10", 8001, nil, false),
        ("reverse direction across networks", "api", "198.18.101.10", 80, nil, false),
        ("same network, icc on", "worker", "198.18.101.10", 80, nil, true),
        ("same network, allow-listed port reached directly", "worker", "198.18.101.10", 443, nil, true),
        ("same network, icc deny", "api", "198.18.102.20", 5432, nil, false),
        ("egress on the allowed port", "worker", ContainerHost.uplinkOutside, 9999, nil, true),
        ("egress on another port", "worker", ContainerHost.uplinkOutside, 9998, nil, false),
        ("unrestricted egress", "web", ContainerHost.uplinkOutside, 9998, nil, true),
    ]

    @Test(arguments: [Backend.iptables, .nftables])
    func connectionsFollowThePolicy(_ backend: Backend) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let (loaded, loadDiagnostics) = PolicyLoader.load("traffic.policy") { _ in Self.policy }
        try #require(loadDiagnostics.isEmpty)
        let policy = try Checker.check(loaded).get()
        let files = try Compiler().render(
            policy, sources: loaded.sources, layout: Layouts.named("docker-20.10")!, backend: backend
        ).get()
        let machine = try ContainerHost(policy: policy, outsideAddresses: ["198.19.0.10"])
        switch backend {
        case .iptables:
            let restore = machine.host.exec(["iptables-restore"], input: files[0].text)
            try #require(restore.status == 0, "\(restore.stderr)")
        default:
            let (applied, _) = try machine.host.nftApplyAndList(files[0].text)
            try #require(applied.succeeded, "\(applied.error)")
        }
        try machine.serve(in: machine.containers["web"]!, ports: [80, 81, 443])
        try machine.serve(in: machine.containers["api"]!, ports: [8000, 8001])
        try machine.serve(in: machine.containers["db"]!, ports: [5432])
        try machine.serve(in: machine.outside, ports: [9998, 9999])
        for (what, from, address, port, source, expected) in Self.probes {
            let namespace = from == "outside" ? machine.outside : machine.containers[from]!
            let connected = machine.connects(from: namespace, to: address, port: port, source: source)
            #expect(connected == expected, "\(backend.rawValue): \(what): \(from) -> \(address):\(port)")
        }
    }
}
