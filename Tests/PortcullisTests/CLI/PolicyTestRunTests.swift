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
        #expect(result.stdout.contains("11 of 11 failed"))
        #expect(result.stderr.contains("\(path):2:1: error: expected drop, but docker-20.10 (iptables) says accept:"))
        #expect(result.stderr.contains("from allow web -> api port 8000/tcp (\(Repo.policies)/web-stack.policy:40:1)"))
    }

    /// `--kernel`: the rules applied to a throwaway host, the expectations sent as real
    /// connections (published port from outside, flows, an egress restriction, the host
    /// itself), on every target; a wrong expectation is one the kernel decides otherwise too.
    @Test(.enabled(if: Kernel.enabled, Kernel.reason), .timeLimit(.minutes(5)))
    func expectationsAreSentAsRealPackets() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let policy = try scratchFile(
            "kernel.policy",
            """
            network front {
                bridge br-kfront
                subnet 198.18.140.0/24
            }
            network back {
                bridge br-kback
                subnet 198.18.141.0/24
            }
            container web {
                attach front 198.18.140.10
                publish 8080 -> 80/tcp from 198.19.9.9
            }
            container api {
                attach back 198.18.141.10
            }
            allow web -> api port 9000/tcp
            egress api -> 198.18.142.7 port 443/tcp

            """)
        defer { try? FileManager.default.removeItem(atPath: policy) }
        let right = try scratchFile(
            "kernel.test",
            """
            policy \(policy)
            expect accept outside:198.19.9.9 -> host port 8080/tcp
            expect drop outside:198.19.9.10 -> host port 8080/tcp
            expect accept web -> api port 9000/tcp
            expect drop web -> api port 9001/tcp
            expect accept api -> 198.18.142.7 port 443/tcp
            expect drop api -> 198.18.142.7 port 80/tcp
            expect accept host -> web port 80/tcp
            expect drop web -> api

            """)
        defer { try? FileManager.default.removeItem(atPath: right) }
        let result = run([CommandLineTests.binary, "test", right, "--kernel"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        for target in ["docker-20.10/iptables", "docker-28/iptables", "docker-29/nftables", "native/nftables"] {
            #expect(
                result.stdout.contains(
                    "kernel \(target): 7 connections sent, all as expected; not sent (line: why): 9: no TCP or UDP port"
                ),
                "\(result.stdout)")
        }
        let wrong = try scratchFile(
            "kernel-wrong.test", "policy \(policy)\nexpect accept web -> api port 9001/tcp\n")
        defer { try? FileManager.default.removeItem(atPath: wrong) }
        let failed = run([CommandLineTests.binary, "test", wrong, "--kernel"])
        #expect(failed.status == 1)
        #expect(failed.stdout.contains("kernel docker-20.10/iptables: 1 connections sent, 1 not as expected"))
        #expect(
            failed.stderr.contains(
                "\(wrong):2:1: error: expected accept, but the kernel (docker-20.10/iptables, real packets) dropped it"),
            "\(failed.stderr)")
        #expect(!run(["ip", "netns", "list"]).stdout.contains("pc-kernel-"), "namespaces left behind")
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
