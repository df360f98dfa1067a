import Foundation
import PortcullisEvaluator
import PortcullisLayouts
import PortcullisNet
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
    /// compiles for; a failed one is reported with the rules that decided it.
    public func runPolicyTests(_ paths: [String]) throws -> RunStatus {
        var failed = 0
        for path in paths {
            let file = try PolicyTestFile.read(path)
            let (policy, sources) = try check(file.policy)
            let targets = Layouts.all.flatMap { layout in
                [Backend.iptables, .nftables].filter { layout.firewalls.contains($0.firewall) }.compactMap {
                    backend in
                    (try? compiler.lower(policy, sources: sources, layout: layout, backend: backend).get()) == nil
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
        }
        return failed == 0 ? .clean : .findings
    }
}
