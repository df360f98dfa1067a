import Foundation
import Testing

/// `portcullis import`: a host Docker 20.10 managed becomes a policy that compiles back to the
/// same rules, for every real capture; what rules cannot tell is reported.
@Suite struct ImportTests {
    static let directory = Repo.fixtures + "/docker-20.10"
    /// s09: networks that neither masquerade nor are internal leave their subnet out of the
    /// rules; s16: Docker's own order varies between runs.
    static let captures = DockerCaptureTests.scenarios.filter { $0 != "s09-masq-off" }

    func importAndCompile(_ rules: String) throws -> (policy: String, compiled: String, stderr: String) {
        let scratch = NSTemporaryDirectory() + "portcullis-import-\(getpid())-\(UUID().uuidString.prefix(6)).policy"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let imported = run([CommandLineTests.binary, "import", rules, "-o", scratch])
        try #require(imported.status == 0, "\(imported.stderr)")
        let compiled = run([CommandLineTests.binary, "compile", scratch])
        try #require(compiled.status == 0, "\(compiled.stderr)")
        return (Repo.read(scratch), compiled.stdout, imported.stderr)
    }

    @Test(arguments: captures)
    func importedPolicyCompilesBackToTheCapture(_ scenario: String) throws {
        let (policy, compiled, stderr) = try importAndCompile("\(Self.directory)/\(scenario).rules")
        let expected = DockerCaptureTests.captured(scenario)
        #expect(stderr.hasPrefix("detected layout docker-20.10\n"))
        if DockerCaptureTests.unorderedScenarios.contains(scenario) {
            #expect(compiled.split(separator: "\n").sorted() == expected.split(separator: "\n").sorted())
        } else {
            #expect(compiled == expected, "\(policy)")
        }
    }

    @Test func unknownSubnetsAreReportedNotInvented() throws {
        let result = run([CommandLineTests.binary, "import", "\(Self.directory)/s09-masq-off.rules"])
        #expect(result.status == 0)
        #expect(result.stderr.contains("not imported: network on bridge br-nomasq: its subnet is not in the rules"))
        #expect(result.stdout.contains("# not imported: network on bridge br-nomasq"))
        #expect(result.stdout.contains("network net2-br-masq {\n    bridge br-masq\n    subnet 198.18.6.0/24\n}"))
    }

    @Test func userRulesAreReported() throws {
        let result = run([CommandLineTests.binary, "import", Repo.golden + "/web-stack/docker-20.10.iptables"])
        #expect(result.stderr.contains("not imported: 3 rule(s) in DOCKER-USER"))
    }

    @Test func otherErasAreDetectedAndRefused() {
        let result = run([CommandLineTests.binary, "import", Repo.golden + "/web-stack/docker-28.iptables"])
        #expect(result.status == 2 && result.stderr.contains("detected docker-28"))
    }
}
