import Foundation
import JanssonKit
import PortcullisCompiler
import PortcullisEvaluator
import PortcullisIR
import PortcullisLayouts
import PortcullisNet
import PortcullisPolicy
import PortcullisSyntax
import Testing

/// The evaluator against the kernel: every probe of the traffic scenarios (whose expectations
/// real packets confirm in `TrafficTests`) must get the same verdict from `Evaluator`, for
/// every layout the scenario runs on.
@Suite struct EvaluatorTests {
    /// Each scenario and layout once per kind of firewall (nft text and JSON load the same rules).
    static let cases = TrafficTests.cases.map { ($0.0.name, $0.1, $0.2 == "iptables" ? "iptables" : "nftables") }
        .reduce(into: [(String, String, String)]()) { list, item in
            if !list.contains(where: { $0 == item }) { list.append(item) }
        }

    @Test(arguments: cases)
    func agreesWithTheKernel(_ scenarioName: String, _ layout: String, _ firewall: String) throws {
        let scenario = try #require(TrafficTests.cases.first { $0.0.name == scenarioName }?.0)
        let (loaded, diagnostics) = PolicyLoader.load("traffic.policy") { _ in scenario.policy }
        try #require(diagnostics.isEmpty)
        let policy = try Checker.check(loaded).get()
        let ruleset = try Layouts.named(layout)!.lower(policy, for: Firewall(rawValue: firewall)!).get()
        let explanation = Explanation(policy: policy, hostAddress: IPAddress(ContainerHost.uplinkHost)!)
        let evaluator = Evaluator(ruleset: ruleset, routing: explanation.routing)
        var disagreements: [String] = []
        for probe in scenario.probes {
            let (inputInterface, source): (String, IPAddress)
            if probe.from == "outside" {
                (inputInterface, source) = ("eth0", IPAddress(probe.source ?? ContainerHost.uplinkOutside)!)
            } else {
                let endpoint = try explanation.endpoint(probe.from, toward: IPAddress(probe.to))
                (inputInterface, source) = (endpoint.interface, endpoint.address)
            }
            let parts = probe.port.split(separator: "/")
            let packet = Packet(
                inputInterface: inputInterface, source: source, destination: IPAddress(probe.to)!,
                transport: TransportProtocol(rawValue: parts.count > 1 ? String(parts[1]) : "tcp"),
                destinationPort: UInt16(parts[0])!)
            let verdict = evaluator.evaluate(packet).verdict
            if (verdict == .accept) != probe.expected(on: layout) { disagreements.append("\(probe.what): \(verdict)") }
        }
        #expect(disagreements.isEmpty, "\(layout) on \(firewall): \(disagreements)")
    }

    @Test func explainPrintsTheVerdictFirstWithTheDecidingRules() {
        let result = run([
            CommandLineTests.binary, "explain", Repo.policies + "/web-stack.policy", "--from", "api", "--to", "web",
            "--port",
            "8080/tcp",
        ])
        #expect(result.status == 0)
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("drop: api (198.18.2.10 on br-back) -> web (198.18.1.10 on br-front)") == true)
        #expect(lines.last?.contains("from network front (") == true)
        #expect(
            result.stdout.contains("filter DOCKER-ISOLATION-STAGE-2: -A DOCKER-ISOLATION-STAGE-2 -o br-front -j DROP"))
    }

    @Test func explainJSONHasVerdictNatAndTrace() throws {
        let result = run([
            CommandLineTests.binary, "explain", Repo.policies + "/source-restricted.policy", "--from",
            "outside:203.0.113.200",
            "--to", "host", "--port", "8443/tcp", "--format", "json",
        ])
        #expect(result.status == 0)
        let document = try JSON.parse(result.stdout)
        #expect(document["verdict"]?.stringValue == "drop")
        #expect(document["nat"]?["destination"]?.stringValue == "172.17.0.3:443")
        let trace = try #require(document["trace"]?.arrayValue)
        #expect(trace.last?["outcome"]?.stringValue == "drop")
        #expect(trace.last?["statement"]?.stringValue == "publish 8443 -> 443/tcp (container admin)")
        #expect(trace.last?["location"]?.stringValue?.hasSuffix("source-restricted.policy:25") == true)
    }

    @Test func explainRejectsUnknownEndpoints() {
        let result = run([
            CommandLineTests.binary, "explain", Repo.policies + "/web-stack.policy", "--from", "wbe", "--to", "api",
        ])
        #expect(result.status == 2 && result.stderr.contains("did you mean 'web'?"))
    }
}
