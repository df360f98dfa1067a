import Foundation
import PortcullisEvaluator
import PortcullisHarness
import PortcullisLayouts
import PortcullisNet
import PortcullisPolicy
import PortcullisRender
import PortcullisSyntax

/// A policy's own tests: what its rules must accept and drop, checked on every layout and
/// firewall the policy compiles for.
///
///     # policies/web-stack.test
///     policy web-stack.policy                      (default: the test file's name, .policy)
///     expect accept web -> api port 8000/tcp
///     expect drop web -> db port 5432/tcp
///     expect accept outside:203.0.113.9 -> host port 80/tcp
///
/// Endpoints are those of `explain`: a container, a network, an address, `outside:ADDRESS`, or
/// `host`; without a port, the packet has none.
public struct PolicyTestFile: Sendable {
    public struct Expectation: Sendable {
        public let verdict: Verdict
        public let from: String
        public let to: String
        public let port: String?
        public let location: SourceLocation
    }

    public let path: String
    public let policy: String
    public let expectations: [Expectation]

    /// Reads a test file; every line that is not an expectation, a `policy` line, a comment or
    /// blank is a diagnostic at its line and column.
    public static func read(_ path: String) throws(CompileFailure) -> PolicyTestFile {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw CompileFailure.usage("cannot read test file \(path)")
        }
        var sources = SourceStore()
        sources.add(file: path, text: text)
        let folder = (path as NSString).deletingLastPathComponent
        var policy = ((path as NSString).deletingPathExtension as NSString).appendingPathExtension("policy") ?? path
        var expectations: [Expectation] = []
        var diagnostics: [Diagnostic] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.prefix { $0 != "#" }
            let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            let column = line.distance(from: line.startIndex, to: line.firstIndex { $0 != " " } ?? line.startIndex) + 1
            let location = SourceLocation(file: path, line: index + 1, column: column)
            func problem(_ message: String, hint: String) {
                diagnostics.append(
                    Diagnostic(message, at: SourceRange(start: location, length: max(1, line.count)), hint: hint))
            }
            switch words.first {
            case nil: continue
            case "policy" where words.count == 2:
                policy = words[1].hasPrefix("/") ? words[1] : (folder as NSString).appendingPathComponent(words[1])
            case "expect":
                guard words.count == 5 || (words.count == 7 && words[5] == "port"), words[3] == "->",
                    let verdict = Verdict(rawValue: words[1])
                else {
                    problem(
                        "an expectation is 'expect accept|drop FROM -> TO [port PORT/PROTOCOL]'",
                        hint: "e.g. expect accept web -> api port 8000/tcp")
                    continue
                }
                expectations.append(
                    Expectation(
                        verdict: verdict, from: words[2], to: words[4], port: words.count == 7 ? words[6] : nil,
                        location: location))
            default:
                problem(
                    "unknown line '\(words[0])'", hint: "test files hold 'policy FILE' and 'expect ...' lines")
            }
        }
        guard diagnostics.isEmpty else { throw CompileFailure.diagnostics(diagnostics, sources) }
        return PolicyTestFile(path: path, policy: policy, expectations: expectations)
    }
}

extension Application {
    /// Checks every expectation of each test file on every layout and firewall its policy
    /// compiles for; a failed one is reported with the rules that decided it. With `kernel`
    /// (this program, for running inside namespaces), each target's rules are also applied to
    /// a throwaway host and every expectation with a port is sent as a real connection.
    public func runPolicyTests(_ paths: [String], kernel executable: String? = nil) throws -> RunStatus {
        if executable != nil && geteuid() != 0 {
            throw CompileFailure.usage("test --kernel needs root, to create network namespaces; nothing was changed")
        }
        var failed = 0
        for path in paths {
            let file = try PolicyTestFile.read(path)
            let (policy, sources) = try check(file.policy)
            let targets = Layouts.all.flatMap { layout in
                [Backend.iptables, .nftables].filter { layout.firewalls.contains($0.firewall) }.compactMap {
                    backend in
                    // Lowered and rendered: some rules exist in one firewall's words only.
                    (try? compiler.render(policy, sources: sources, layout: layout, backend: backend).get()) == nil
                        ? nil : (layout.name, backend)
                }
            }
            guard !targets.isEmpty else { throw CompileFailure.usage("\(file.policy) compiles for no layout") }
            var failures = 0
            for expectation in file.expectations {
                for (layout, backend) in targets {
                    let report = try explain(
                        ExplainRequest(
                            policy: file.policy, from: expectation.from, to: expectation.to, port: expectation.port,
                            layout: layout, backend: backend.rawValue))
                    guard report.evaluation.verdict != expectation.verdict else { continue }
                    failures += 1
                    console.note(
                        "\(expectation.location): error: expected \(expectation.verdict.rawValue), but \(layout) "
                            + "(\(backend.firewall.rawValue)) says \(report.rendered(.text))"
                            .split(separator: "\n").joined(separator: "\n    "))
                }
            }
            let checks = file.expectations.count * targets.count
            let names = targets.map { "\($0.0)/\($0.1.firewall.rawValue)" }.joined(separator: ", ")
            console.output(
                "\(path): \(file.expectations.count) expectations on \(targets.count) targets (\(names)): "
                    + (failures == 0 ? "all \(checks) hold\n" : "\(failures) of \(checks) failed\n"))
            failed += failures
            if let executable {
                for (layout, backend) in targets {
                    failed += try sendExpectations(file, policy: policy, layout: layout, backend: backend, executable)
                }
            }
        }
        return failed == 0 ? .clean : .findings
    }
}

extension Application {
    /// One expectation as a real connection: who sends (a namespace, and the address it sends
    /// from), where the server listens after any DNAT, and what the rules say.
    struct Connection {
        let expectation: PolicyTestFile.Expectation
        let port: Probe.Port
        let from: Sender
        let explained: ExplainReport
        /// Where the connection ends up, after DNAT: the server's address and port.
        let server: (address: IPAddress, port: Probe.Port)

        enum Sender {
            case host
            case outside(String)
            case container(String)
        }
    }

    /// Applies one target's rules to a throwaway host and sends each expectation with a port;
    /// returns how many the kernel decided otherwise.
    func sendExpectations(
        _ file: PolicyTestFile, policy: Policy, layout: String, backend: Backend, _ executable: String
    ) throws -> Int {
        var connections: [Connection] = []
        var skipped: [String] = []
        for expectation in file.expectations {
            guard let portText = expectation.port, let port = Probe.Port(portText) else {
                skipped.append("\(expectation.location.line): no TCP or UDP port")
                continue
            }
            let from: Connection.Sender
            if expectation.from == "host" {
                from = .host
            } else if expectation.from.hasPrefix("outside:") {
                from = .outside(String(expectation.from.dropFirst("outside:".count)))
            } else if policy.container(expectation.from) != nil {
                from = .container(expectation.from)
            } else {
                skipped.append("\(expectation.location.line): the harness sends from containers, outside and host")
                continue
            }
            let report = try explain(
                ExplainRequest(
                    policy: file.policy, from: expectation.from, to: expectation.to, port: portText, layout: layout,
                    backend: backend.rawValue, hostAddress: ThrowawayHost.uplinkHost))
            let destination = report.packet.destination
            guard destination.family == .ipv4 else {
                skipped.append("\(expectation.location.line): IPv6")
                continue
            }
            let translated = report.evaluation.translatedDestination
            let serverPort =
                translated.flatMap { $0.port > 0 ? Probe.Port("\($0.port)/\(port.udp ? "udp" : "tcp")") : nil } ?? port
            connections.append(
                Connection(
                    expectation: expectation, port: port, from: from, explained: report,
                    server: (translated?.address ?? destination, serverPort)))
        }
        let holders = Self.addressHolders(policy)
        let senders = connections.compactMap { if case .outside(let address) = $0.from { address } else { nil } }
        console.progress("building a throwaway host for \(layout)/\(backend.rawValue)")
        // Remote: every server address no container holds and the host does not have.
        let hostOnly = ThrowawayHost.localAddresses(of: policy)
        let external = connections.map(\.server.address.description).filter {
            holders[$0] == nil && !hostOnly.contains($0)
        }
        let machine = try ThrowawayHost(policy: policy, remoteAddresses: senders + external)
        defer { machine.remove() }
        let state = FileManager.default.temporaryDirectory.appendingPathComponent(
            "portcullis-test-kernel-\(getpid())-\(UUID().uuidString.prefix(8))"
        ).path
        defer { try? FileManager.default.removeItem(atPath: state) }
        let applied = machine.run(
            in: machine.host,
            [executable, "apply", file.policy, "--layout", layout, "--backend", backend.rawValue, "--state-dir", state])
        guard applied.status == 0 else {
            throw CompileFailure.usage(
                "applying \(file.policy) for \(layout)/\(backend.rawValue) failed: \(applied.output)")
        }
        let namespace = { (address: String) -> String in
            holders[address].flatMap { machine.containers[$0] }
                ?? (machine.localAddresses.contains(address) ? machine.host : machine.internet)
        }
        let servers = Dictionary(grouping: connections) { namespace($0.server.address.description) }
        for (place, wanted) in servers {
            let ports = wanted.compactMap { connection in
                connection.server.port.udp
                    ? connection.server.port.bound(to: connection.server.address.description) : connection.server.port
            }
            try machine.serve(in: place, ports: ports, executable: executable)
        }
        var failures = 0
        for connection in connections {
            console.progress(
                "sending \(connection.expectation.from) -> \(connection.expectation.to) \(connection.port)")
            let (sender, source): (String, String?) =
                switch connection.from {
                case .host: (machine.host, nil)
                case .outside(let address): (machine.internet, address)
                case .container(let name): (machine.containers[name] ?? machine.outside, nil)
                }
            let target = connection.explained.packet.destination.description
            let connected = machine.connects(
                from: sender, to: target, port: connection.port, source: source, executable: executable)
            let kernel: Verdict = connected ? .accept : .drop
            guard kernel != connection.expectation.verdict else { continue }
            failures += 1
            console.note(
                "\(connection.expectation.location): error: expected \(connection.expectation.verdict.rawValue), but "
                    + "the kernel (\(layout)/\(backend.rawValue), real packets) \(connected ? "accepted" : "dropped") it; "
                    + "the rules say \(connection.explained.rendered(.text))".split(separator: "\n").joined(
                        separator: "\n    "))
        }
        console.output(
            "\(file.path): kernel \(layout)/\(backend.rawValue): \(connections.count) connections sent, "
                + (failures == 0 ? "all as expected" : "\(failures) not as expected")
                + (skipped.isEmpty ? "" : "; not sent (line: why): \(skipped.joined(separator: "; "))") + "\n")
        return failures
    }

    /// The container holding each IPv4 address.
    static func addressHolders(_ policy: Policy) -> [String: String] {
        var holders: [String: String] = [:]
        for container in policy.containers {
            for attachment in container.attachments {
                if let address = attachment.address4 { holders[address.description] = container.name }
            }
        }
        return holders
    }
}
