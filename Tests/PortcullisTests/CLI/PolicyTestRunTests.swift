import Foundation
import PortcullisCompiler
import Testing

/// `portcullis test`: expectations checked on every layout and firewall a policy compiles for.
struct PolicyTestRunTests {
    func scratchFile(_ name: String, _ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "portcullis-\(getpid())-\(name)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func everyShippedTestFileHolds() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Repo.policies).filter { $0.hasSuffix(".test") }
        #expect(files.count == Repo.shippedPolicies.count, "each shipped policy has its test file")
        let result = inProcess { try $0.runPolicyTests(files.sorted().map { Repo.policies + "/" + $0 }) }
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.split(separator: "\n").allSatisfy { $0.contains(" hold") })
    }

    /// A wrong expectation fails on every target, at its line, with the rules that decided.
    @Test func aFailedExpectationIsReportedWithItsTrace() throws {
        let path = try scratchFile(
            "wrong.test", "policy \(Repo.policies)/web-stack.policy\nexpect drop web -> api port 8000/tcp\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = inProcess { try $0.runPolicyTests([path]) }
        #expect(result.status == 1)
        #expect(result.stdout.contains("7 of 7 failed"))
        #expect(result.stderr.contains("\(path):2:1: error: expected drop, but docker-20.10 (iptables) says accept:"))
        #expect(result.stderr.contains("from allow web -> api port 8000/tcp (\(Repo.policies)/web-stack.policy:40:1)"))
    }

    @Test func malformedLinesAreDiagnosedAtTheirPlace() throws {
        let path = try scratchFile("bad.test", "# fine\nexpect allow web -> api\n  frobnicate\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = inProcess { try $0.runPolicyTests([path]) }
        #expect(result.status == 2)
        #expect(result.stderr.contains("\(path):2:1: error: an expectation is 'expect accept|drop FROM -> TO"))
        #expect(result.stderr.contains("\(path):3:3: error: unknown line 'frobnicate'"))
    }

    /// A connection to or from an IPv6 address uses the containers' IPv6 addresses.
    @Test func explainTakesTheFamilyOfTheAddressItIsGiven() throws {
        let report = try Application(console: Transcript()).explain(
            ExplainRequest(
                policy: Repo.policies + "/dual-stack.policy", from: "client", to: "2001:db8::9", port: "443/tcp"))
        #expect(report.connection.hasPrefix("client (fd00:17::2 on docker0) -> 2001:db8::9"), "\(report.connection)")
        #expect(report.evaluation.verdict == .accept)
    }
}
