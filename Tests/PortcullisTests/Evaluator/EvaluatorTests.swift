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
                destinationPort: UInt16(parts[0])!, locallyGenerated: probe.from == "host")
            let verdict = evaluator.evaluate(packet).verdict
            if (verdict == .accept) != probe.expected(on: layout) { disagreements.append("\(probe.what): \(verdict)") }
        }
        #expect(disagreements.isEmpty, "\(layout) on \(firewall): \(disagreements)")
    }

    /// `explain` in-process.
    func explain(_ request: ExplainRequest, format: ReportFormat = .text) -> CommandResult {
        inProcess { try $0.runExplain(request, format: format) }
    }

    @Test func explainPrintsTheVerdictFirstWithTheDecidingRules() {
        let result = explain(
            ExplainRequest(policy: Repo.policies + "/web-stack.policy", from: "api", to: "web", port: "8080/tcp"))
        #expect(result.status == 0)
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("drop: api (198.18.2.10 on br-back) -> web (198.18.1.10 on br-front)") == true)
        #expect(lines.last?.contains("from network front (") == true)
        #expect(
            result.stdout.contains("filter DOCKER-ISOLATION-STAGE-2: -A DOCKER-ISOLATION-STAGE-2 -o br-front -j DROP"))
    }

    @Test func explainJSONHasVerdictNatAndTrace() throws {
        let request = ExplainRequest(
            policy: Repo.policies + "/source-restricted.policy", from: "outside:203.0.113.200", to: "host",
            port: "8443/tcp")
        let result = explain(request, format: .json)
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
        let result = explain(ExplainRequest(policy: Repo.policies + "/web-stack.policy", from: "wbe", to: "api"))
        #expect(result.status == 2 && result.stderr.contains("did you mean 'web'?"))
    }

    /// `--ruleset FILE` walks saved rules: names come from the policy when one is given, else
    /// from the rules themselves (imported, containers named by address).
    @Test func explainWalksASavedRuleset() throws {
        let saved = compiledRuleset(Repo.policies + "/web-stack.policy")
        try #require(saved.status == 0)
        let capture = HostCapture.text(saved.stdout, source: "-", format: nil)
        let imported = explain(
            ExplainRequest(capture: capture, from: "198.18.1.10", to: "198.18.2.10", port: "8000/tcp"))
        #expect(imported.status == 0)
        #expect(imported.stdout.hasPrefix("accept: 198.18.1.10 on br-front -> 198.18.2.10 on br-back port 8000/tcp"))
        #expect(imported.stdout.contains("portcullis: allow web -> api port 8000/tcp"))
        let other = explain(ExplainRequest(capture: capture, from: "198.18.1.10", to: "198.18.2.10", port: "8001/tcp"))
        #expect(other.stdout.hasPrefix("drop: "))
        // nft JSON of the native layout, with the policy naming the endpoints.
        let native = explain(
            ExplainRequest(
                policy: Repo.policies + "/web-stack.policy",
                capture: .file(Repo.golden + "/web-stack/native.nft.json", format: nil), from: "outside:203.0.113.9",
                to: "host", port: "443/tcp"))
        #expect(native.status == 0)
        #expect(
            native.stdout.hasPrefix(
                "accept: 203.0.113.9 via eth0 -> host 192.0.2.1 port 443/tcp, forwarded to 198.18.1.10:8443"))
        #expect(native.stdout.contains("(element tcp . 443 : 198.18.1.10)"))
        let neither = explain(ExplainRequest(from: "a", to: "b"))
        #expect(neither.status == 2 && neither.stderr.contains("give a policy, or the host's rules"))
    }

    /// `--live` walks the rules of the current network namespace with its own routes.
    @Test(.enabled(if: Kernel.enabled, Kernel.reason), arguments: ["iptables", "nftables"])
    func explainWalksTheLiveRules(_ backend: String) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        for (bridge, address) in [("br-front", "198.18.1.1/24"), ("br-back", "198.18.2.1/24")] {
            for command in [
                ["ip", "link", "add", bridge, "type", "bridge"], ["ip", "address", "add", address, "dev", bridge],
                ["ip", "link", "set", bridge, "up"],
            ] {
                try #require(namespace.exec(command).status == 0)
            }
        }
        let layout = backend == "iptables" ? "docker-20.10" : "native"
        let state = NSTemporaryDirectory() + "portcullis-explain-\(getpid())-\(backend)"
        defer { try? FileManager.default.removeItem(atPath: state) }
        let apply = namespace.exec([
            CommandLineTests.binary, "apply", Repo.policies + "/web-stack.policy", "--layout", layout, "--backend",
            backend, "--state-dir", state,
        ])
        try #require(apply.status == 0, "\(apply.stderr)")
        func explain(_ port: String) -> CommandResult {
            namespace.exec([
                CommandLineTests.binary, "explain", "--live", "--backend", backend, "--from", "198.18.2.10", "--to",
                "198.18.1.10", "--port", port,
            ])
        }
        // api -> web crosses networks with no flow for it: isolation drops it; routing comes
        // from the namespace (out of br-front).
        let dropped = explain("8080/tcp")
        #expect(dropped.status == 0, "\(dropped.stderr)")
        #expect(
            dropped.stdout.hasPrefix(
                "drop: 198.18.2.10 on br-back -> 198.18.1.10 on br-front port 8080/tcp out of br-front"),
            "\(dropped.stdout)")
        let flow = namespace.exec([
            CommandLineTests.binary, "explain", "--live", "--backend", backend, "--from", "198.18.1.10", "--to",
            "198.18.2.10", "--port", "8000/tcp",
        ])
        #expect(flow.stdout.hasPrefix("accept: "), "\(flow.stdout)")
    }
}
